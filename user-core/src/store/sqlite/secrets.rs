//! [`SecretStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use super::rows::{col, execute, millis, query_opt};
use crate::error::{Error, Result};
use crate::store::SecretStore;

#[async_trait]
impl SecretStore for SqliteStore {
    async fn get_or_insert_secret(&self, name: &str, candidate: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>> {
        let (name, candidate) = (name.to_owned(), candidate.to_vec());
        // Insert-if-absent then read: whoever inserts first wins, everyone reads the winner.
        self.write(move |conn| {
            execute(
                conn,
                "insert into service_secrets (name, value, created_at) values (?1, ?2, ?3) \
                 on conflict (name) do nothing",
                params![name, candidate, millis(now)],
            )?;
            query_opt(conn, "select value from service_secrets where name = ?1", [&name], |row| col(row, "value"))?
                .ok_or_else(|| Error::internal(format!("secret {name:?} vanished")))
        })
        .await
    }
}
