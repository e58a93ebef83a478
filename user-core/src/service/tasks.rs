//! The outbox as an operator sees it: listing, retrying dead tasks, purging
//! delivered ones. Delivery itself is the relay's ([`crate::tasks::Relay`]).

use std::time::Duration;

use super::UserService;
use crate::error::Result;
use crate::store::{DeferredTask, TaskStatus};

impl UserService {
    /// Tasks in id order after `after`, at most `limit`, optionally of one status.
    ///
    /// # Errors
    /// [`Error::Internal`](crate::Error::Internal) if the store fails.
    pub async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeferredTask>> {
        self.store.list_tasks(status, after, limit).await
    }

    /// Puts dead tasks back in the queue with their attempts reset: the one
    /// with `id`, or every dead task with `None`; how many. Wakes the relay.
    ///
    /// # Errors
    /// [`Error::Internal`](crate::Error::Internal) if the store fails.
    pub async fn retry_dead_tasks(&self, id: Option<i64>) -> Result<u64> {
        let n = self.store.retry_dead_tasks(id, self.clock.now()).await?;
        if n > 0 {
            self.task_waker.wake();
        }
        Ok(n)
    }

    /// Deletes delivered tasks older than `older_than` (dead ones are kept);
    /// how many.
    ///
    /// # Errors
    /// [`Error::Internal`](crate::Error::Internal) if the store fails.
    pub async fn purge_delivered_tasks(&self, older_than: Duration) -> Result<u64> {
        crate::tasks::purge_delivered(&*self.store, older_than, self.clock.now(), u32::MAX).await
    }
}
