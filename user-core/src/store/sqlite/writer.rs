//! The writer thread: one write connection, group commit, a savepoint per operation.

use std::sync::Mutex;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::SqliteStore;
use super::pool::lock;
use crate::error::{Error, Result};

/// Most operations one group commit carries; bounds the latency a caller
/// queued behind a large group can see.
const MAX_GROUP: usize = 256;

impl SqliteStore {
    /// Runs `f` on the writer thread inside the next group commit; resolves
    /// once that commit is durable (or failed).
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, outcome) = oneshot::channel();
        // The caller's span is not current on the writer thread; its trace
        // goes along for the tasks the write enqueues.
        let traceparent = crate::trace::traceparent();
        let work = move |conn: &Connection| crate::trace::carrying(traceparent, || f(conn));
        let job = Box::new(Pending { work: Some(work), outcome: None, reply });
        self.inner.jobs.send(job).map_err(|_| Error::internal("the SQLite writer thread has stopped"))?;
        outcome.await.map_err(|_| Error::internal("the SQLite writer thread has stopped"))?
    }
}

/// One queued write: runs inside a group, answers after its commit.
pub(super) trait Job: Send {
    /// Runs the work; `false` if it failed, so its savepoint is rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the outcome, or the group's commit error.
    fn finish(self: Box<Self>, commit: std::result::Result<(), &str>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T> + Send> Job for Pending<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(Error::internal("a SQLite write panicked")));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), &str>) {
        let outcome = match (commit, self.outcome) {
            // A failed operation rolled back alone; its own error stands.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(ok)) => ok,
            (Err(e), _) => Err(Error::internal(format!("SQLite commit failed: {e}"))),
            (Ok(()), None) => Err(Error::internal("a SQLite write did not run")),
        };
        // The caller may have gone away; the change is committed regardless.
        let _ = self.reply.send(outcome);
    }
}

pub(super) fn write_loop(writer: &Mutex<Connection>, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let commit = run_group(&mut lock(writer), &mut group).map_err(|e| e.to_string());
        for job in group {
            job.finish(commit.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

fn run_group(conn: &mut Connection, group: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in group.iter_mut() {
        let savepoint = tx.savepoint()?;
        if job.run(&savepoint) {
            savepoint.commit()?;
        } else {
            // Rolled back to where this job began; should even that fail, the
            // whole group fails rather than commit half of a failed job.
            savepoint.finish()?;
        }
    }
    tx.commit()
}
