//! [`FavoriteStore`] on PostgreSQL: changes batched per round trip, each with its outbox task.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::PostgresStore;
use super::rows::{get, map_err};
use crate::domain::{TrackId, UserId};
use crate::error::{Error, Result};
use crate::store::{Favorite, FavoriteStore};

/// A statement that changes the favorites of a batch of requests (`q`: one
/// row per requested track, `n` in request order) and writes one task per
/// change into the `tasks` CTE, in one round trip and one implicit
/// transaction. The rows of every user in the batch are locked first, in id
/// order (so concurrent batches cannot deadlock), and held to the commit, so
/// task ids and commit order agree per user: the relay can never see a later
/// task of a user before an earlier one. Answers with the users found and the
/// `user track` keys that changed.
macro_rules! favorite_batch {
    ($change:literal) => {
        concat!(
            "with q as materialized ( \
               select * from unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[]) \
                 with ordinality as q(user_id, track_id, at, traceparent, n)), \
             locked as materialized ( \
               select id from users where id in (select user_id from q) order by id for no key update), ",
            $change,
            " select array(select id from locked) as found, \
                     array(select user_id::text || ' ' || track_id from tasks) as changed"
        )
    };
}

/// Adds favorites; a `favorite.added` task for each new one, in request order.
pub(super) const ADD_FAVORITES: &str = favorite_batch!(
    "added as ( \
       insert into favorites (user_id, track_id, created_at) \
       select q.user_id, q.track_id, q.at from q join locked l on l.id = q.user_id order by q.n \
       on conflict (user_id, track_id) do nothing \
       returning id, user_id, track_id, created_at), \
     tasks as ( \
       insert into deferred_tasks \
         (kind, user_id, track_id, occurred_at, available_at, created_at, updated_at, traceparent) \
       select 'favorite.added', a.user_id, a.track_id, a.created_at, a.created_at, a.created_at, a.created_at, \
              (select q.traceparent from q where q.user_id = a.user_id and q.track_id = a.track_id \
               order by q.n limit 1) \
       from added a order by a.id \
       returning user_id, track_id)"
);

/// Removes favorites; a `favorite.removed` task for each one that was there,
/// in request order.
pub(super) const REMOVE_FAVORITES: &str = favorite_batch!(
    "removed as ( \
       delete from favorites f using locked l \
       where f.user_id = l.id and (f.user_id, f.track_id) in (select user_id, track_id from q) \
       returning f.user_id, f.track_id), \
     tasks as ( \
       insert into deferred_tasks \
         (kind, user_id, track_id, occurred_at, available_at, created_at, updated_at, traceparent) \
       select 'favorite.removed', r.user_id, r.track_id, first.at, first.at, first.at, first.at, first.traceparent \
       from removed r cross join lateral ( \
         select q.at, q.n, q.traceparent from q where q.user_id = r.user_id and q.track_id = r.track_id order by q.n limit 1) first \
       order by first.n \
       returning user_id, track_id)"
);

/// One request to add or remove favorites.
pub(super) struct FavoriteChange {
    user: UserId,
    tracks: Vec<TrackId>,
    now: DateTime<Utc>,
    /// The caller's trace, captured here: the batch runs on another task.
    traceparent: Option<String>,
}

/// Favorite requests answered per round trip at most (each up to 50 tracks).
pub(super) const MAX_FAVORITE_BATCH: usize = 64;

/// Runs [`ADD_FAVORITES`] or [`REMOVE_FAVORITES`] for a batch: for each
/// request, whether its user exists and how many favorites it changed, as if
/// the requests had run one after another in batch order.
pub(super) async fn change_favorites(
    pool: PgPool,
    statement: &'static str,
    batch: Vec<FavoriteChange>,
) -> Result<Vec<Result<(bool, u64)>>> {
    let rows = batch
        .iter()
        .flat_map(|c| c.tracks.iter().map(move |t| (c.user.as_uuid(), t.as_str(), c.now, c.traceparent.as_deref())));
    let (mut users, mut tracks, mut ats, mut traces) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (user, track, at, trace) in rows {
        users.push(user);
        tracks.push(track);
        ats.push(at);
        traces.push(trace);
    }
    let (found, changed): (Vec<Uuid>, Vec<String>) = sqlx::query_as(statement)
        .bind(&users)
        .bind(&tracks)
        .bind(&ats)
        .bind(&traces)
        .fetch_one(&pool)
        .await
        .map_err(map_err)?;
    let found: std::collections::HashSet<Uuid> = found.into_iter().collect();
    // A favorite changed by several requests of the batch counts for the first.
    let mut changed: std::collections::HashSet<String> = changed.into_iter().collect();
    Ok(batch
        .iter()
        .map(|c| {
            let user = c.user.as_uuid();
            let count = c.tracks.iter().filter(|t| changed.remove(&format!("{user} {}", t.as_str()))).count();
            Ok((found.contains(&user), count as u64))
        })
        .collect())
}

#[async_trait]
impl FavoriteStore for PostgresStore {
    async fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let change = FavoriteChange { user, tracks: tracks.to_vec(), now, traceparent: crate::trace::traceparent() };
        let (found, added) = self.favorite_adds.call(change).await?;
        if !found {
            return Err(Error::UserNotFound);
        }
        Ok(added)
    }

    async fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let change = FavoriteChange { user, tracks: tracks.to_vec(), now, traceparent: crate::trace::traceparent() };
        Ok(self.favorite_removes.call(change).await?.1)
    }

    async fn count_favorites(&self, user: UserId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("select count(*) from favorites where user_id = $1")
            .bind(user.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn favorites_contain(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>> {
        let ids: Vec<&str> = tracks.iter().map(TrackId::as_str).collect();
        let found: Vec<String> =
            sqlx::query_scalar("select track_id from favorites where user_id = $1 and track_id = any($2)")
                .bind(user.as_uuid())
                .bind(&ids)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(tracks.iter().map(|t| found.iter().any(|f| f == t.as_str())).collect())
    }

    async fn list_favorites(&self, user: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>> {
        let rows = sqlx::query(
            "select id, track_id, created_at from favorites where user_id = $1 and id < $2 \
             order by id desc limit $3",
        )
        .bind(user.as_uuid())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(Favorite {
                    seq: get(row, "id")?,
                    track_id: get::<String>(row, "track_id")?.try_into().map_err(Error::internal)?,
                    added_at: get(row, "created_at")?,
                })
            })
            .collect()
    }
}
