//! [`SecretStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use super::rows::map_err;
use crate::error::Result;
use crate::store::SecretStore;

#[async_trait]
impl SecretStore for PostgresStore {
    async fn get_or_insert_secret(&self, name: &str, candidate: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>> {
        // Insert-if-absent then read: the first replica wins, all read the winner.
        sqlx::query(
            "insert into service_secrets (name, value, created_at) values ($1, $2, $3) on conflict (name) do nothing",
        )
        .bind(name)
        .bind(candidate)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        sqlx::query_scalar("select value from service_secrets where name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}
