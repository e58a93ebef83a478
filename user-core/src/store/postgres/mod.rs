//! The PostgreSQL backend: for deployments where several stateless server
//! replicas share one database (or a PostgreSQL-compatible distributed one).
//!
//! Races between replicas are decided by the database: unique indexes for
//! registrations, compare-and-swap updates for refresh rotation, a row lock
//! on the user for the order of their outbox rows, and `FOR UPDATE SKIP
//! LOCKED` claims (serialised by a transaction-scoped advisory lock, so two
//! relays never split one user's sequence) for the relay.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::store::rules::Gcra;
use crate::store::{SessionUser, Store};

mod audit;
mod batch;
mod devices;
mod factors;
mod favorites;
mod identities;
mod passkeys;
mod rows;
mod secrets;
mod sessions;
mod tasks;
mod tokens;
mod users;

use batch::Batcher;
use favorites::{ADD_FAVORITES, FavoriteChange, MAX_FAVORITE_BATCH, REMOVE_FAVORITES, change_favorites};
use rows::map_err;
use sessions::{MAX_SESSION_BATCH, SessionLookup, lookup_sessions};

/// A PostgreSQL database. Cheap to clone. Connecting starts background tasks
/// on the current tokio runtime that batch concurrent session checks (the
/// query behind every authenticated request) and concurrent favorite changes,
/// each kind into one round trip.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    sessions: Batcher<SessionLookup, Option<SessionUser>>,
    favorite_adds: Batcher<FavoriteChange, (bool, u64)>,
    favorite_removes: Batcher<FavoriteChange, (bool, u64)>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`, any libpq-style
    /// parameters such as `?sslmode=` or `?options=-c search_path=…`) with a
    /// pool of at most `max_connections`. Call [`Store::migrate`] before first use.
    ///
    /// # Errors
    /// [`Error::Validation`] for a malformed URL; [`Error::Internal`] if the
    /// database cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| ValidationError::new("database", format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(Error::internal)?;
        // A few batches in flight keep the pool and both sides' cores busy.
        let batch_pool = pool.clone();
        let sessions = Batcher::spawn(4, MAX_SESSION_BATCH, move |batch| lookup_sessions(batch_pool.clone(), batch));
        // Two favorite batches in flight: one user's batches serialize on the
        // user's row lock anyway (1, 2 and 4 gave 6.9k, 7.8k and 5.7k/s for one
        // user), and two still let different users' batches overlap.
        let batch_pool = pool.clone();
        let favorite_adds = Batcher::spawn(2, MAX_FAVORITE_BATCH, move |batch| {
            change_favorites(batch_pool.clone(), ADD_FAVORITES, batch)
        });
        let batch_pool = pool.clone();
        let favorite_removes = Batcher::spawn(2, MAX_FAVORITE_BATCH, move |batch| {
            change_favorites(batch_pool.clone(), REMOVE_FAVORITES, batch)
        });
        Ok(Self { pool, sessions, favorite_adds, favorite_removes })
    }

    pub(super) async fn begin(&self) -> Result<Transaction<'_, Postgres>> {
        self.pool.begin().await.map_err(Error::internal)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/postgres").run(&self.pool).await.map_err(Error::internal)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    fn system(&self) -> &'static str {
        "postgresql"
    }

    fn shares_rate_limits(&self) -> bool {
        true
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        count: u32,
        period: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<std::time::Duration>> {
        let gcra = Gcra::new(count, period);
        let now_us = now.timestamp_micros();
        // GCRA: each request moves the theoretical arrival time one emission
        // interval on from now or from where it was; it is let through while
        // that stays within one period of now. One statement, so concurrent
        // requests on any replica each see the other's step.
        let row = sqlx::query(
            "insert into rate_limits as r (key, tat, allowed) values ($1, $2 + $3, true) \
             on conflict (key) do update set \
               allowed = greatest(r.tat, $2) + $3 <= $2 + $4, \
               tat = case when greatest(r.tat, $2) + $3 <= $2 + $4 then greatest(r.tat, $2) + $3 else r.tat end \
             returning tat, allowed",
        )
        .bind(key)
        .bind(now_us)
        .bind(gcra.emission_us)
        .bind(gcra.period_us)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let (tat, allowed): (i64, bool) = (rows::get(&row, "tat")?, rows::get(&row, "allowed")?);
        if allowed {
            return Ok(None);
        }
        Ok(Some(gcra.wait(tat, now_us)))
    }

    async fn refund_rate_limit(&self, key: &str, count: u32, period: std::time::Duration) -> Result<()> {
        sqlx::query("update rate_limits set tat = tat - $2 where key = $1")
            .bind(key)
            .bind(Gcra::new(count, period).emission_us)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn purge_rate_limits(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("delete from rate_limits where tat <= $1")
            .bind(now.timestamp_micros())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    crate::store::conformance::suite!(async {
        match crate::testing::postgres_schema_url().await {
            Some(url) => {
                let store = super::PostgresStore::connect(&url, 4).await.unwrap();
                crate::store::Store::migrate(&store).await.unwrap();
                Some(std::sync::Arc::new(store) as std::sync::Arc<dyn crate::store::Store>)
            }
            None => None,
        }
    });

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_rate_limit_lets_exactly_its_budget_through_under_concurrency() {
        use crate::store::Store as _;
        let Some(url) = crate::testing::postgres_schema_url().await else { return };
        let store = std::sync::Arc::new(super::PostgresStore::connect(&url, 8).await.unwrap());
        store.migrate().await.unwrap();
        let now = chrono::Utc::now();
        let minute = std::time::Duration::from_secs(60);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
        let hits = (0..20).map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.hit_rate_limit("login:192.0.2.1", 5, minute, now).await.unwrap()
            })
        });
        let outcomes: Vec<_> = futures_util::future::join_all(hits).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 5, "{outcomes:?}");
        let wait = outcomes.iter().flatten().max().copied().unwrap();
        assert!(wait > std::time::Duration::from_secs(11) && wait <= std::time::Duration::from_secs(12), "{wait:?}");
        assert!(store.hit_rate_limit("login:192.0.2.2", 5, minute, now).await.unwrap().is_none(), "per key");
        store.refund_rate_limit("login:192.0.2.1", 5, minute).await.unwrap();
        assert!(store.hit_rate_limit("login:192.0.2.1", 5, minute, now).await.unwrap().is_none(), "one given back");
        assert_eq!(store.hit_rate_limit("login:192.0.2.1", 5, minute, now).await.unwrap(), Some(wait));
        let later = now + chrono::TimeDelta::seconds(12);
        assert!(store.hit_rate_limit("login:192.0.2.1", 5, minute, later).await.unwrap().is_none(), "one back");
        assert!(store.hit_rate_limit("login:192.0.2.1", 5, minute, later).await.unwrap().is_some());
        assert_eq!(store.purge_rate_limits(now + chrono::TimeDelta::seconds(61)).await.unwrap(), 1, "a full budget");
        assert_eq!(store.purge_rate_limits(now + chrono::TimeDelta::seconds(72)).await.unwrap(), 1);
    }
}
