//! [`FavoriteStore`] on SQLite: favorites and their outbox tasks in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use super::rows::{col, execute, favorite_columns, favorite_record, millis, query_all, query_first, query_opt};
use super::tasks::enqueue;
use crate::domain::{TrackId, UserId};
use crate::error::{Error, Result};
use crate::store::{Favorite, FavoriteStore, TaskKind};

/// A page of a user's favorites, newest first: a backward walk of the
/// `(user_id, id)` index, stopped after the page (see [`query_first`]).
pub(super) const LIST_FAVORITES: &str =
    concat!("select ", favorite_columns!(), " from favorites where user_id = ?1 and id < ?2 order by id desc");

#[async_trait]
impl FavoriteStore for SqliteStore {
    async fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let tracks = tracks.to_vec();
        self.write(move |conn| {
            let mut added = 0;
            for track in &tracks {
                let inserted = execute(
                    conn,
                    "insert into favorites (user_id, track_id, created_at) values (?1, ?2, ?3) \
                     on conflict (user_id, track_id) do nothing",
                    params![user.as_uuid(), track.as_str(), millis(now)],
                )?;
                if inserted == 1 {
                    enqueue(conn, TaskKind::FavoriteAdded, user, Some(track), now)?;
                    added += 1;
                }
            }
            Ok(added)
        })
        .await
    }

    async fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let tracks = tracks.to_vec();
        self.write(move |conn| {
            let mut removed = 0;
            for track in &tracks {
                let deleted = execute(
                    conn,
                    "delete from favorites where user_id = ?1 and track_id = ?2",
                    params![user.as_uuid(), track.as_str()],
                )?;
                if deleted == 1 {
                    enqueue(conn, TaskKind::FavoriteRemoved, user, Some(track), now)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn count_favorites(&self, user: UserId) -> Result<u64> {
        self.read(move |conn| {
            let n =
                query_opt(conn, "select count(*) as n from favorites where user_id = ?1", [user.as_uuid()], |row| {
                    col::<i64>(row, "n")
                })?;
            Ok(n.unwrap_or_default() as u64)
        })
    }

    async fn favorites_contain(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>> {
        // One statement, so one read transaction whatever the batch's size.
        let wanted =
            serde_json::to_string(&tracks.iter().map(TrackId::as_str).collect::<Vec<_>>()).map_err(Error::internal)?;
        let found = self.read(|conn| {
            query_all(
                conn,
                "select track_id from favorites \
                 where user_id = ?1 and track_id in (select value from json_each(?2))",
                params![user.as_uuid(), wanted],
                |row| col::<String>(row, "track_id"),
            )
        })?;
        Ok(tracks.iter().map(|t| found.iter().any(|f| f == t.as_str())).collect())
    }

    async fn list_favorites(&self, user: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>> {
        self.read(|conn| {
            let params = params![user.as_uuid(), before.unwrap_or(i64::MAX)];
            query_first(conn, LIST_FAVORITES, params, limit as usize, favorite_record)
        })
    }
}
