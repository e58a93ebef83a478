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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::store::{Store, UserRecord};

mod audit;
mod batch;
mod devices;
mod favorites;
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
    sessions: Batcher<SessionLookup, Option<UserRecord>>,
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
}
