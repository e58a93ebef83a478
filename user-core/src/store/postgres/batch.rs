//! Request batching for a networked database: concurrent callers of one
//! operation share a round trip. Under load, the requests that arrive while a
//! batch is in flight go out together in the next one; alone, a request goes
//! out at once, so nobody waits for a batch to fill.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Error, Result};

type Request<Q, R> = (Q, oneshot::Sender<Result<R>>);

/// Runs a batch operation for many callers. Cheap to clone; its tasks end
/// when the last clone is dropped.
pub(crate) struct Batcher<Q, R> {
    requests: mpsc::UnboundedSender<Request<Q, R>>,
}

impl<Q, R> Clone for Batcher<Q, R> {
    fn clone(&self) -> Self {
        Self { requests: self.requests.clone() }
    }
}

impl<Q: Send + 'static, R: Send + 'static> Batcher<Q, R> {
    /// Starts `in_flight` tasks on the current tokio runtime, each sending at
    /// most `max_batch` requests to `run` at a time. `run` answers every
    /// request in order; its error fails the whole batch.
    pub(crate) fn spawn<F, Fut>(in_flight: usize, max_batch: usize, run: F) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Result<R>>>> + Send + 'static,
    {
        let (requests, queue) = mpsc::unbounded_channel::<Request<Q, R>>();
        let queue = Arc::new(Mutex::new(queue));
        let run = Arc::new(run);
        for _ in 0..in_flight.max(1) {
            let (queue, run) = (queue.clone(), run.clone());
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    {
                        // One task gathers at a time; the others are running
                        // their batches meanwhile.
                        let mut queue = queue.lock().await;
                        let Some(first) = queue.recv().await else { return };
                        batch.push(first);
                        while batch.len() < max_batch {
                            match queue.try_recv() {
                                Ok(request) => batch.push(request),
                                Err(_) => break,
                            }
                        }
                    }
                    let (queries, replies): (Vec<Q>, Vec<_>) = batch.into_iter().unzip();
                    let answers = run(queries).await.and_then(|answers| {
                        if answers.len() == replies.len() {
                            Ok(answers)
                        } else {
                            Err(Error::internal(format!("a batch of {} got {} answers", replies.len(), answers.len())))
                        }
                    });
                    match answers {
                        Ok(answers) => {
                            for (reply, answer) in replies.into_iter().zip(answers) {
                                let _ = reply.send(answer);
                            }
                        }
                        Err(error) => {
                            let message = error.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(Error::internal(message.clone())));
                            }
                        }
                    }
                }
            });
        }
        Self { requests }
    }

    /// Queues `query` for the next batch and waits for its answer.
    pub(crate) async fn call(&self, query: Q) -> Result<R> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((query, reply)).map_err(|_| Error::internal("the batching tasks have stopped"))?;
        answer.await.map_err(|_| Error::internal("a batch was dropped unanswered"))?
    }
}

#[cfg(test)]
mod tests {
    use super::Batcher;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_batches_and_each_gets_its_own_answer() {
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn(2, 8, move |queries: Vec<u32>| {
            seen.lock().unwrap().push(queries.len());
            async move {
                tokio::task::yield_now().await;
                Ok(queries
                    .into_iter()
                    .map(|q| if q == 13 { Err(crate::Error::UserNotFound) } else { Ok(q * 2) })
                    .collect())
            }
        });
        let calls = (0..100u32).map(|q| {
            let batcher = batcher.clone();
            tokio::spawn(async move { (q, batcher.call(q).await) })
        });
        for call in futures_util::future::join_all(calls).await {
            let (q, answer) = call.unwrap();
            match answer {
                Ok(doubled) => assert_eq!(doubled, q * 2),
                Err(e) => assert!(q == 13 && matches!(e, crate::Error::UserNotFound), "{q}: {e}"),
            }
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.iter().all(|&n| (1..=8).contains(&n)), "{sizes:?}");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers() {
        let batcher: Batcher<u32, u32> =
            Batcher::spawn(1, 8, |_queries| async { Err(crate::Error::internal("database unreachable")) });
        let error = batcher.call(1).await.unwrap_err();
        assert!(error.to_string().contains("database unreachable"), "{error}");
    }
}
