//! The outbox as an operator sees it: listing, retrying dead tasks, purging
//! delivered ones. Delivery itself is the relay's ([`crate::tasks::Relay`]).

use std::time::Duration;

use super::{AuditEvent, ClientInfo, UserService};
use crate::error::{Error, Result};
use crate::page::{self, Page, PageRequest};
use crate::store::{DeferredTask, TaskStatus};

impl UserService {
    /// Tasks in id order, optionally of one status, one page at a time.
    ///
    /// # Errors
    /// [`Error::Validation`] on `cursor` for a
    /// cursor of another listing.
    pub async fn list_tasks(&self, status: Option<TaskStatus>, page: &PageRequest) -> Result<Page<DeferredTask>> {
        let rows = self.store.list_tasks(status, page.task_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |t| page::task_cursor(t.id)))
    }

    /// Puts one dead task back in the queue with its attempts reset, and
    /// wakes the relay.
    ///
    /// # Errors
    /// [`Error::TaskNotFound`]; [`Error::TaskNotDead`] for a task that is
    /// pending or delivered.
    pub async fn retry_task(&self, id: i64, client: &ClientInfo) -> Result<()> {
        let task = self.store.list_tasks(None, Some(id.saturating_sub(1)), 1).await?;
        let user = match task.first() {
            Some(task) if task.id == id => task.user_id,
            _ => return Err(Error::TaskNotFound),
        };
        // The store decides, so a task delivered or retried meanwhile is refused.
        if self.store.retry_dead_tasks(Some(id), self.clock.now()).await? == 0 {
            return Err(Error::TaskNotDead);
        }
        self.task_waker.wake();
        self.audit(AuditEvent::TaskRetried, Some(user), client, Some(format!("task {id}"))).await;
        Ok(())
    }

    /// Puts every dead task back in the queue with attempts reset; how many.
    /// Wakes the relay.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn retry_dead_tasks(&self, client: &ClientInfo) -> Result<u64> {
        let n = self.store.retry_dead_tasks(None, self.clock.now()).await?;
        if n > 0 {
            self.task_waker.wake();
            self.audit(AuditEvent::TaskRetried, None, client, Some(format!("{n} dead task(s)"))).await;
        }
        Ok(n)
    }

    /// Deletes delivered tasks older than `older_than` (dead ones are kept);
    /// how many.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn purge_delivered_tasks(&self, older_than: Duration) -> Result<u64> {
        crate::tasks::purge_delivered(&*self.store, older_than, self.clock.now(), u32::MAX).await
    }
}
