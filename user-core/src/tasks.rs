//! Deferred tasks: the relay that delivers the `deferred_tasks` outbox
//! downstream, at least once, in order per user, surviving crashes.
//!
//! A task's life: `pending` → leased by a relay → `done`; or, on a transient
//! failure, back to `pending` with `attempts + 1` and `available_at` pushed out
//! by exponential backoff with jitter; or `dead` after `max_attempts` (or at
//! once on a permanent failure), keeping the last error. A relay that dies
//! mid-delivery loses nothing: its lease runs out and another relay claims
//! the tasks again. Consumers deduplicate on the task id, which only grows.

#[cfg(feature = "nats")]
mod nats;
pub(crate) mod sink;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

#[cfg(feature = "nats")]
pub use nats::{NatsConfig, NatsSink};
#[cfg(feature = "webhook")]
pub use sink::WebhookSink;
pub use sink::{DeliveryError, LogSink, TaskSink};

use crate::clock::{Clock, SystemClock};
use crate::error::Result;
use crate::mail::Mailer;
use crate::store::{DeferredTask, Store, TaskChannel, UserKey};

/// What a sink receives: the task as delivered downstream (the webhook body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// The task id: increases with time; deduplicate and order on it.
    pub id: i64,
    /// `favorite.added`, `favorite.removed` or `user.deleted`.
    pub kind: String,
    /// The user.
    pub user_id: Uuid,
    /// The track, for favorite events.
    pub track_id: Option<String>,
    /// When it happened, RFC 3339 UTC.
    pub occurred_at: DateTime<Utc>,
    /// Which delivery attempt this is, from 1.
    pub attempt: u32,
}

impl From<&DeferredTask> for TaskEvent {
    fn from(t: &DeferredTask) -> Self {
        Self {
            id: t.id,
            kind: t.kind.as_str().to_owned(),
            user_id: t.user_id.as_uuid(),
            track_id: t.track_id.as_ref().map(ToString::to_string),
            occurred_at: t.occurred_at,
            attempt: t.attempts + 1,
        }
    }
}

/// Wakes the relay as soon as a task is written in this process, instead of
/// waiting for its next poll.
#[derive(Debug, Clone, Default)]
pub struct TaskWaker(Arc<Notify>);

impl TaskWaker {
    /// Says new tasks exist.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

/// How the relay works. `Default` holds the production values (the only
/// place they are written; `user-server --help` shows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Tasks claimed at once.
    pub batch_size: u32,
    /// How often to look for due tasks when not woken.
    pub poll_interval: Duration,
    /// How long to let tasks gather after a wake before claiming: under
    /// steady writes, a relay woken by every write would claim them one or
    /// two at a time, and each claim costs the database a write.
    pub linger: Duration,
    /// How long a claim holds its tasks; a relay that dies releases them after
    /// this. Longer than the slowest batch, or tasks may be delivered twice.
    pub lease: Duration,
    /// Attempts before a task is dead.
    pub max_attempts: u32,
    /// The first retry's delay; it doubles with each attempt.
    pub backoff_base: Duration,
    /// The longest delay between attempts.
    pub backoff_cap: Duration,
    /// How long delivered tasks are kept before the relay deletes them
    /// (`None` keeps them forever). Dead tasks are never deleted: they wait
    /// for an operator.
    pub retention: Option<Duration>,
    /// How long a guest account may stay idle (no sign-in or refresh of
    /// any of its sessions) before the relay's periodic pass deletes it,
    /// with a `user.deleted` task (`USER_GUEST_TTL`, default 30 days);
    /// `None` keeps guests forever.
    pub guest_ttl: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            linger: Duration::from_millis(10),
            lease: Duration::from_secs(300),
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            guest_ttl: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

impl RelayConfig {
    /// The delay before attempt `failures + 1`: `base · 2^(failures-1)`
    /// capped, of which a random half is kept ("equal jitter"), so retries of
    /// many tasks do not arrive in lockstep yet still grow.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let full = self.backoff_base.saturating_mul(1u32 << exp).min(self.backoff_cap);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// How often a running relay deletes delivered tasks past their retention.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Tasks deleted per statement, so other writers are never held up for long.
const PURGE_BATCH: u32 = 1000;
/// Statements per purge pass of a running relay; what is left waits for the next pass.
const PURGE_MAX_BATCHES: u32 = 100;

/// Deletes tasks delivered more than `older_than` before `now`, a thousand
/// per statement and at most `max_batches` statements; returns how many.
/// An age reaching before the calendar's start deletes nothing.
///
/// # Errors
/// [`crate::Error::Internal`] if the store fails (batches deleted before
/// that stay deleted).
pub async fn purge_delivered(
    store: &dyn Store,
    older_than: Duration,
    now: DateTime<Utc>,
    max_batches: u32,
) -> Result<u64> {
    let Some(before) = chrono::TimeDelta::from_std(older_than).ok().and_then(|age| now.checked_sub_signed(age)) else {
        return Ok(0);
    };
    in_batches(max_batches, |limit| store.purge_done_tasks(before, limit)).await
}

/// Runs `delete` (which deletes up to its limit and says how many) until a
/// batch comes back short, at most `max_batches` times; returns the total.
/// Yields between batches so other writers are never held up for long.
async fn in_batches<F, Fut>(max_batches: u32, mut delete: F) -> Result<u64>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut purged = 0;
    for _ in 0..max_batches {
        let n = delete(PURGE_BATCH).await?;
        purged += n;
        if n < u64::from(PURGE_BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(purged)
}

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Tasks claimed.
    pub claimed: usize,
    /// Delivered and marked done.
    pub delivered: usize,
    /// Failed and scheduled for a retry.
    pub retried: usize,
    /// Failed for good.
    pub dead: usize,
    /// Given back untouched (behind a failed task of the same user).
    pub released: usize,
}

/// Delivers deferred tasks to a [`TaskSink`].
///
/// ```no_run
/// # async fn run(store: std::sync::Arc<dyn user_core::store::Store>, service: user_core::UserService) {
/// use std::sync::Arc;
/// use user_core::tasks::{LogSink, Relay, RelayConfig};
///
/// // `store` is the one the service was built on (from `store::open`).
/// let relay = Relay::new(store, Arc::new(LogSink), RelayConfig::default())
///     .with_waker(service.task_waker());
/// relay.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Relay {
    store: Arc<dyn Store>,
    sink: Arc<dyn TaskSink>,
    mailer: Option<Arc<Mailer>>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
    waker: TaskWaker,
}

impl Relay {
    /// A relay over `store` delivering to `sink`.
    pub fn new(store: Arc<dyn Store>, sink: Arc<dyn TaskSink>, config: RelayConfig) -> Self {
        Self { store, sink, mailer: None, clock: Arc::new(SystemClock), config, waker: TaskWaker::default() }
    }

    /// Delivers mail tasks through `mailer` (without one they wait, retried
    /// with backoff, until a relay that has one takes them, or they die).
    #[must_use]
    pub fn with_mailer(mut self, mailer: Arc<Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Wakes on this waker (take it from `UserService::task_waker`).
    #[must_use]
    pub fn with_waker(mut self, waker: TaskWaker) -> Self {
        self.waker = waker;
        self
    }

    /// Uses `clock` for leases and backoff (for tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Claims one batch and delivers it: each user's tasks in order, different
    /// users concurrently. A task that fails transiently is retried later and
    /// the rest of its user's batch is given back, so order holds.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the store fails; deliveries made before
    /// that are delivered again later (at-least-once).
    pub async fn run_once(&self) -> Result<RelayStats> {
        let now = self.clock.now();
        let claim = self.store.claim_tasks(now, now + self.config.lease, self.config.batch_size).await?;
        let mut stats = RelayStats { claimed: claim.tasks.len(), ..RelayStats::default() };
        if claim.tasks.is_empty() {
            return Ok(stats);
        }
        // Order holds per user within a channel; channels do not wait for each other.
        let mut by_user: HashMap<_, Vec<DeferredTask>> = HashMap::new();
        for task in claim.tasks {
            by_user.entry((task.user_id, task.kind.channel())).or_default().push(task);
        }
        let outcomes = futures_util::future::join_all(
            by_user.into_values().map(|tasks| self.deliver_in_order(claim.lease_id, tasks)),
        )
        .await;
        let mut done = Vec::new();
        for outcome in outcomes {
            let outcome = outcome?;
            done.extend(outcome.delivered);
            stats.retried += outcome.retried;
            stats.dead += outcome.dead;
            stats.released += outcome.released;
        }
        stats.delivered = self.store.complete_tasks(claim.lease_id, &done, self.clock.now()).await? as usize;
        if stats.delivered < done.len() {
            tracing::warn!(
                lost = done.len() - stats.delivered,
                "lease ran out during delivery; tasks may be delivered again"
            );
        }
        Ok(stats)
    }

    async fn deliver_in_order(&self, lease_id: Uuid, tasks: Vec<DeferredTask>) -> Result<UserOutcome> {
        let mut outcome = UserOutcome::default();
        let mut pending = tasks.into_iter();
        while let Some(task) = pending.next() {
            let started = Instant::now();
            let result = self.deliver(&task).await;
            metrics::histogram!("task_delivery_seconds").record(started.elapsed().as_secs_f64());
            let now = self.clock.now();
            match result {
                Ok(()) => {
                    metrics::counter!("task_deliveries_total", "outcome" => "delivered").increment(1);
                    outcome.delivered.push(task.id);
                }
                Err(DeliveryError::Permanent(error)) => {
                    metrics::counter!("task_deliveries_total", "outcome" => "dead").increment(1);
                    tracing::error!(task_id = task.id, kind = task.kind.as_str(), %error, "task rejected downstream; dead");
                    self.store.fail_task(lease_id, task.id, &error, None, now).await?;
                    outcome.dead += 1;
                }
                Err(DeliveryError::Transient(error)) => {
                    let failures = task.attempts + 1;
                    if failures >= self.config.max_attempts {
                        metrics::counter!("task_deliveries_total", "outcome" => "dead").increment(1);
                        tracing::error!(task_id = task.id, attempts = failures, %error, "task failed too often; dead");
                        self.store.fail_task(lease_id, task.id, &error, None, now).await?;
                        outcome.dead += 1;
                        continue;
                    }
                    let retry_at = now + self.config.backoff(failures);
                    metrics::counter!("task_deliveries_total", "outcome" => "retry").increment(1);
                    tracing::warn!(task_id = task.id, attempts = failures, %error, %retry_at, "task delivery failed; will retry");
                    self.store.fail_task(lease_id, task.id, &error, Some(retry_at), now).await?;
                    outcome.retried += 1;
                    let rest: Vec<i64> = pending.by_ref().map(|t| t.id).collect();
                    outcome.released += self.store.release_tasks(lease_id, &rest, now).await? as usize;
                }
            }
        }
        Ok(outcome)
    }

    /// Delivers one task inside a span that continues the trace of the
    /// request that wrote it; sinks send that span's `traceparent` on.
    async fn deliver(&self, task: &DeferredTask) -> std::result::Result<(), DeliveryError> {
        let span = tracing::debug_span!(
            "deliver",
            otel.name = %format_args!("deliver {}", task.kind.as_str()),
            otel.kind = "producer",
            task.id = task.id,
            task.kind = task.kind.as_str(),
            task.attempt = task.attempts + 1,
        );
        if let Some(parent) = &task.traceparent {
            crate::trace::continue_trace(&span, parent);
        }
        self.deliver_now(task).instrument(span).await
    }

    async fn deliver_now(&self, task: &DeferredTask) -> std::result::Result<(), DeliveryError> {
        if task.kind.channel() == TaskChannel::Events {
            return self.sink.deliver(&TaskEvent::from(task)).await;
        }
        let Some(mailer) = &self.mailer else {
            return Err(DeliveryError::Transient("mail is not configured on this relay".into()));
        };
        match self.store.find_user(UserKey::Id(task.user_id)).await {
            Ok(Some(record)) => mailer.deliver(task, &record.user).await,
            // The account is gone, and its address with it: nothing to send.
            Ok(None) => Ok(()),
            Err(e) => Err(DeliveryError::Transient(crate::error_chain(&e))),
        }
    }

    /// Deletes tasks delivered longer than [`RelayConfig::retention`] ago, a
    /// batch at a time; returns how many. Without a retention, deletes nothing.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the store fails (batches deleted before
    /// that stay deleted).
    pub async fn purge_delivered(&self) -> Result<u64> {
        let Some(retention) = self.config.retention else { return Ok(0) };
        let purged = purge_delivered(&*self.store, retention, self.clock.now(), PURGE_MAX_BATCHES).await?;
        metrics::counter!("tasks_purged_total").increment(purged);
        Ok(purged)
    }

    /// Deletes mail tokens that have expired, a batch at a time; returns how many.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the store fails.
    pub async fn purge_expired_tokens(&self) -> Result<u64> {
        let now = self.clock.now();
        in_batches(PURGE_MAX_BATCHES, |limit| self.store.purge_expired_tokens(now, limit)).await
    }

    /// Deletes guests idle for longer than [`RelayConfig::guest_ttl`], a
    /// batch at a time, each with a `user.deleted` task; returns how many.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the store fails (batches deleted before
    /// that stay deleted).
    pub async fn purge_idle_guests(&self) -> Result<u64> {
        let Some(ttl) = self.config.guest_ttl else { return Ok(0) };
        let now = self.clock.now();
        let idle_since = now - chrono::Duration::from_std(ttl).map_err(crate::Error::internal)?;
        let deleted =
            in_batches(PURGE_MAX_BATCHES, |limit| self.store.delete_idle_guests(idle_since, limit, now)).await?;
        if deleted > 0 {
            metrics::counter!("guests_expired_total").increment(deleted);
            self.waker.wake();
        }
        Ok(deleted)
    }

    /// Delivers until `shutdown` completes: a full batch is followed at once
    /// by the next, otherwise the relay sleeps until woken (then lingers for
    /// more tasks to gather) or the poll interval passes. Once a minute it
    /// also deletes delivered tasks past their retention, expired mail
    /// tokens and idle guests. A batch in flight at
    /// shutdown is finished (its deliveries are bounded by the sink's
    /// timeout); nothing is lost if the process dies instead, as leases run out.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_gauge = None::<Instant>;
        let mut last_purge = None::<Instant>;
        loop {
            let full = match self.run_once().await {
                Ok(stats) => stats.claimed as u32 >= self.config.batch_size,
                Err(e) => {
                    tracing::error!(error = %e, "relay pass failed");
                    false
                }
            };
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                match self.purge_delivered().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "deleted delivered tasks past their retention"),
                    Err(e) => tracing::warn!(error = %e, "could not delete delivered tasks"),
                }
                match self.purge_expired_tokens().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "deleted expired mail tokens"),
                    Err(e) => tracing::warn!(error = %e, "could not delete expired mail tokens"),
                }
                match self.purge_idle_guests().await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(target: "audit", event = "guest.expire", deleted, "deleted idle guests")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not delete idle guests"),
                }
                last_purge = Some(Instant::now());
            }
            if last_gauge.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                self.publish_queue_depth().await;
                last_gauge = Some(Instant::now());
            }
            if full {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = std::future::ready(()) => continue,
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.waker.woken() => {
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(self.config.linger) => {}
                    }
                }
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!("relay stopped");
    }

    async fn publish_queue_depth(&self) {
        // Only what waits: counting delivered tasks would read the whole
        // outbox every few seconds.
        match self.store.count_waiting_tasks().await {
            Ok(counts) => {
                metrics::gauge!("tasks_queue_depth", "status" => "pending").set(counts.pending as f64);
                metrics::gauge!("tasks_queue_depth", "status" => "dead").set(counts.dead as f64);
            }
            Err(e) => tracing::warn!(error = %e, "could not count tasks"),
        }
    }
}

#[derive(Default)]
struct UserOutcome {
    delivered: Vec<i64>,
    retried: usize,
    dead: usize,
    released: usize,
}
