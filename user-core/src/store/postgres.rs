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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::batch::Batcher;
use super::{
    AuditRecord, AuditStore, Claim, DeferredTask, Favorite, FavoriteStore, LockRule, LoginAttempt, NewSession,
    Rotation, SecretStore, SessionRecord, SessionStore, Store, TaskCounts, TaskKind, TaskStatus, TaskStore, User,
    UserChanges, UserKey, UserRecord, UserStore, WaitingTasks,
};
use crate::domain::{Role, SessionId, TrackId, UserId, ValidationError};
use crate::error::{ConflictField, Error, Result};

/// Serialises relay claims across replicas (any constant unique to this use).
const CLAIM_LOCK: i64 = 0x7573_6572_7461_736b; // "usertask"

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

/// One [`SessionStore::session_user`] question.
struct SessionLookup {
    session: SessionId,
    user: UserId,
    now: DateTime<Utc>,
}

/// Session checks answered per round trip at most.
const MAX_SESSION_BATCH: usize = 64;

/// Answers a batch of session checks with one query; `n` is the 1-based
/// position of the question a row answers.
async fn lookup_sessions(pool: PgPool, batch: Vec<SessionLookup>) -> Result<Vec<Result<Option<UserRecord>>>> {
    let sessions: Vec<Uuid> = batch.iter().map(|q| q.session.as_uuid()).collect();
    let users: Vec<Uuid> = batch.iter().map(|q| q.user.as_uuid()).collect();
    let nows: Vec<DateTime<Utc>> = batch.iter().map(|q| q.now).collect();
    let rows = sqlx::query(
        "select q.n, u.* from unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) with ordinality as q(sid, uid, at, n) \
         join sessions s on s.id = q.sid and s.user_id = q.uid and s.revoked_at is null and s.expires_at > q.at \
         join users u on u.id = s.user_id",
    )
    .bind(&sessions)
    .bind(&users)
    .bind(&nows)
    .fetch_all(&pool)
    .await
    .map_err(map_err)?;
    let mut answers: Vec<Result<Option<UserRecord>>> = (0..batch.len()).map(|_| Ok(None)).collect();
    for row in &rows {
        let n: i64 = row.try_get("n").map_err(Error::internal)?;
        if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| answers.get_mut(i)) {
            *slot = user_record(row).map(Some);
        }
    }
    Ok(answers)
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

    async fn begin(&self) -> Result<Transaction<'_, Postgres>> {
        self.pool.begin().await.map_err(Error::internal)
    }
}

/// Turns a constraint violation into the caller's error; anything else is ours.
fn map_err(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        match db.constraint() {
            Some("users_username_key") => return Error::Conflict(ConflictField::Username),
            Some("users_email_key") => return Error::Conflict(ConflictField::Email),
            _ => {}
        }
        if db.is_foreign_key_violation() {
            return Error::UserNotFound;
        }
    }
    Error::internal(e)
}

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(row: &'r PgRow, col: &str) -> Result<T> {
    row.try_get(col).map_err(Error::internal)
}

fn user_record(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: UserId::from_uuid(get(row, "id")?),
            username: get::<String>(row, "username")?.try_into().map_err(Error::internal)?,
            email: get::<String>(row, "email")?.try_into().map_err(Error::internal)?,
            role: get::<String>(row, "role")?.parse::<Role>().map_err(Error::internal)?,
            disabled_at: get(row, "disabled_at")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        },
        password_hash: get(row, "password_hash")?,
        failed_logins: get::<i32>(row, "failed_logins")? as u32,
        locked_until: get(row, "locked_until")?,
        credential_version: get(row, "credential_version")?,
    })
}

fn session_record(row: &PgRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId::from_uuid(get(row, "id")?),
        user_id: UserId::from_uuid(get(row, "user_id")?),
        refresh_jti: get(row, "refresh_jti")?,
        previous_jti: get(row, "previous_jti")?,
        rotated_at: get(row, "rotated_at")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
    })
}

fn task_record(row: &PgRow) -> Result<DeferredTask> {
    let track: Option<String> = get(row, "track_id")?;
    Ok(DeferredTask {
        id: get(row, "id")?,
        kind: TaskKind::parse(&get::<String>(row, "kind")?)?,
        user_id: UserId::from_uuid(get(row, "user_id")?),
        track_id: track.map(TrackId::try_from).transpose().map_err(Error::internal)?,
        occurred_at: get(row, "occurred_at")?,
        status: TaskStatus::parse(&get::<String>(row, "status")?)?,
        attempts: get::<i32>(row, "attempts")? as u32,
        available_at: get(row, "available_at")?,
        last_error: get(row, "last_error")?,
        leased_until: get(row, "leased_until")?,
        updated_at: get(row, "updated_at")?,
    })
}

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
               select * from unnest($1::uuid[], $2::text[], $3::timestamptz[]) \
                 with ordinality as q(user_id, track_id, at, n)), \
             locked as materialized ( \
               select id from users where id in (select user_id from q) order by id for no key update), ",
            $change,
            " select array(select id from locked) as found, \
                     array(select user_id::text || ' ' || track_id from tasks) as changed"
        )
    };
}

/// Adds favorites; a `favorite.added` task for each new one, in request order.
const ADD_FAVORITES: &str = favorite_batch!(
    "added as ( \
       insert into favorites (user_id, track_id, created_at) \
       select q.user_id, q.track_id, q.at from q join locked l on l.id = q.user_id order by q.n \
       on conflict (user_id, track_id) do nothing \
       returning id, user_id, track_id, created_at), \
     tasks as ( \
       insert into deferred_tasks (kind, user_id, track_id, occurred_at, available_at, created_at, updated_at) \
       select 'favorite.added', a.user_id, a.track_id, a.created_at, a.created_at, a.created_at, a.created_at \
       from added a order by a.id \
       returning user_id, track_id)"
);

/// Removes favorites; a `favorite.removed` task for each one that was there,
/// in request order.
const REMOVE_FAVORITES: &str = favorite_batch!(
    "removed as ( \
       delete from favorites f using locked l \
       where f.user_id = l.id and (f.user_id, f.track_id) in (select user_id, track_id from q) \
       returning f.user_id, f.track_id), \
     tasks as ( \
       insert into deferred_tasks (kind, user_id, track_id, occurred_at, available_at, created_at, updated_at) \
       select 'favorite.removed', r.user_id, r.track_id, first.at, first.at, first.at, first.at \
       from removed r cross join lateral ( \
         select q.at, q.n from q where q.user_id = r.user_id and q.track_id = r.track_id order by q.n limit 1) first \
       order by first.n \
       returning user_id, track_id)"
);

/// One request to add or remove favorites.
struct FavoriteChange {
    user: UserId,
    tracks: Vec<TrackId>,
    now: DateTime<Utc>,
}

/// Favorite requests answered per round trip at most (each up to 50 tracks).
const MAX_FAVORITE_BATCH: usize = 64;

/// Runs [`ADD_FAVORITES`] or [`REMOVE_FAVORITES`] for a batch: for each
/// request, whether its user exists and how many favorites it changed, as if
/// the requests had run one after another in batch order.
async fn change_favorites(
    pool: PgPool,
    statement: &'static str,
    batch: Vec<FavoriteChange>,
) -> Result<Vec<Result<(bool, u64)>>> {
    let rows = batch.iter().flat_map(|c| c.tracks.iter().map(move |t| (c.user.as_uuid(), t.as_str(), c.now)));
    let (mut users, mut tracks, mut ats) = (Vec::new(), Vec::new(), Vec::new());
    for (user, track, at) in rows {
        users.push(user);
        tracks.push(track);
        ats.push(at);
    }
    let (found, changed): (Vec<Uuid>, Vec<String>) =
        sqlx::query_as(statement).bind(&users).bind(&tracks).bind(&ats).fetch_one(&pool).await.map_err(map_err)?;
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

async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    kind: TaskKind,
    user: UserId,
    track: Option<&TrackId>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "insert into deferred_tasks (kind, user_id, track_id, occurred_at, available_at, created_at, updated_at) \
         values ($1, $2, $3, $4, $4, $4, $4)",
    )
    .bind(kind.as_str())
    .bind(user.as_uuid())
    .bind(track.map(TrackId::as_str))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn revoke_sessions(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    except: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let done = sqlx::query(
        "update sessions set revoked_at = $1 \
         where user_id = $2 and revoked_at is null and ($3::uuid is null or id <> $3)",
    )
    .bind(now)
    .bind(user.as_uuid())
    .bind(except.map(|s| s.as_uuid()))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, record: &UserRecord) -> Result<()> {
        let u = &record.user;
        sqlx::query(
            "insert into users (id, username, email, password_hash, role, disabled_at, created_at, updated_at, \
             credential_version) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(u.id.as_uuid())
        .bind(u.username.as_str())
        .bind(u.email.as_str())
        .bind(&record.password_hash)
        .bind(u.role.as_str())
        .bind(u.disabled_at)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(record.credential_version)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>> {
        let query = match key {
            UserKey::Id(id) => sqlx::query("select * from users where id = $1").bind(id.as_uuid()),
            UserKey::Username(name) => {
                sqlx::query("select * from users where lower(username) = $1").bind(name.folded())
            }
            UserKey::Email(email) => {
                sqlx::query("select * from users where email = $1").bind(email.as_str().to_owned())
            }
        };
        let row = query.fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(user_record).transpose()
    }

    async fn update_user(&self, id: UserId, changes: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "update users set \
               username = coalesce($2, username), \
               email = coalesce($3, email), \
               password_hash = coalesce($4, password_hash), \
               credential_version = credential_version + case when $4 is null then 0 else 1 end, \
               updated_at = $5 \
             where id = $1 and ($6::bigint is null or credential_version = $6) returning *",
        )
        .bind(id.as_uuid())
        .bind(changes.username.as_ref().map(|u| u.as_str()))
        .bind(changes.email.as_ref().map(|e| e.as_str()))
        .bind(changes.password_hash.as_deref())
        .bind(now)
        .bind(changes.expected_credential_version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let record = user_record(&row)?;
        if changes.password_hash.is_some() {
            revoke_sessions(&mut tx, id, changes.keep_session, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(record))
    }

    async fn reserve_login_attempt(
        &self,
        id: UserId,
        now: DateTime<Utc>,
        lock_until: LockRule,
    ) -> Result<Option<LoginAttempt>> {
        let mut tx = self.begin().await?;
        // The row lock the update takes makes concurrent reservations, from
        // any replica, queue; each re-reads `locked_until` once it has the row.
        let count: Option<i32> = sqlx::query_scalar(
            "update users set failed_logins = failed_logins + 1 \
             where id = $1 and (locked_until is null or locked_until <= $2) returning failed_logins",
        )
        .bind(id.as_uuid())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(count) = count else {
            let locked: Option<Option<DateTime<Utc>>> =
                sqlx::query_scalar("select locked_until from users where id = $1")
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            return Ok(locked.map(|until| LoginAttempt::Locked { until: until.unwrap_or(now) }));
        };
        let failures = count as u32;
        if let Some(until) = lock_until(failures) {
            sqlx::query("update users set locked_until = greatest(locked_until, $2) where id = $1")
                .bind(id.as_uuid())
                .bind(until)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(LoginAttempt::Allowed { failures }))
    }

    async fn reset_login_failures(&self, id: UserId) -> Result<()> {
        sqlx::query("update users set failed_logins = 0, locked_until = null where id = $1")
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn set_role(&self, id: UserId, role: Role, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let current: Option<String> = sqlx::query_scalar("select role from users where id = $1 for update")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        match current {
            None => return Ok(false),
            Some(current) if current == role.as_str() => return Ok(true),
            Some(_) => {}
        }
        sqlx::query(
            "update users set role = $2, credential_version = credential_version + 1, updated_at = $3 where id = $1",
        )
        .bind(id.as_uuid())
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        revoke_sessions(&mut tx, id, None, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn set_disabled(&self, id: UserId, disabled: bool, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "update users set disabled_at = case when $2 then coalesce(disabled_at, $3) end, \
             credential_version = credential_version + case when $2 then 1 else 0 end, updated_at = $3 \
             where id = $1",
        )
        .bind(id.as_uuid())
        .bind(disabled)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if disabled {
            revoke_sessions(&mut tx, id, None, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("delete from users where id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        enqueue(&mut tx, TaskKind::UserDeleted, id, None, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn list_users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // A plain range (the nil UUID sorts first) keeps the scan on the index at any depth.
        let rows = sqlx::query("select * from users where id > $1 order by id limit $2")
            .bind(after.map_or(Uuid::nil(), |a| a.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| user_record(r).map(|r| r.user)).collect()
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn open_session(&self, login: &NewSession) -> Result<bool> {
        let s = &login.session;
        // One statement: the user's row is locked by the update and held to
        // the commit, so a concurrent password change either waits for this
        // session (and then revokes it) or commits first (and this inserts nothing).
        let done = sqlx::query(
            "with current_user_row as ( \
               update users set failed_logins = 0, locked_until = null, password_hash = coalesce($12, password_hash) \
               where id = $2 and credential_version = $13 and disabled_at is null returning id) \
             insert into sessions (id, user_id, refresh_jti, previous_jti, rotated_at, created_at, last_used_at, \
               expires_at, revoked_at, user_agent, ip) \
             select $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11 from current_user_row",
        )
        .bind(s.id.as_uuid())
        .bind(s.user_id.as_uuid())
        .bind(s.refresh_jti)
        .bind(s.previous_jti)
        .bind(s.rotated_at)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .bind(s.user_agent.as_deref())
        .bind(s.ip.as_deref())
        .bind(login.rehash.as_deref())
        .bind(login.credential_version)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        let row = sqlx::query("select * from sessions where id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(session_record).transpose()
    }

    async fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        self.sessions.call(SessionLookup { session: id, user, now }).await
    }

    async fn rotate_session(&self, r: &Rotation) -> Result<bool> {
        let done = sqlx::query(
            "update sessions set previous_jti = refresh_jti, refresh_jti = $3, rotated_at = $4, last_used_at = $4, \
             expires_at = $5 where id = $1 and refresh_jti = $2 and revoked_at is null",
        )
        .bind(r.session.as_uuid())
        .bind(r.expected_jti)
        .bind(r.new_jti)
        .bind(r.now)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query("update sessions set revoked_at = $2 where id = $1 and revoked_at is null")
            .bind(id.as_uuid())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = revoke_sessions(&mut tx, user, except, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }
}

#[async_trait]
impl FavoriteStore for PostgresStore {
    async fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let change = FavoriteChange { user, tracks: tracks.to_vec(), now };
        let (found, added) = self.favorite_adds.call(change).await?;
        if !found {
            return Err(Error::UserNotFound);
        }
        Ok(added)
    }

    async fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let change = FavoriteChange { user, tracks: tracks.to_vec(), now };
        Ok(self.favorite_removes.call(change).await?.1)
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

#[async_trait]
impl TaskStore for PostgresStore {
    async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeferredTask>> {
        let rows = sqlx::query(
            "select * from deferred_tasks where ($1::text is null or status = $1) and id > $2 \
             order by id limit $3",
        )
        .bind(status.map(|s| s.as_str()))
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(task_record).collect()
    }

    async fn claim_tasks(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Claim> {
        let lease_id = Uuid::now_v7();
        let mut tx = self.begin().await?;
        // Without the lock, two relays could each see the other's claim as not
        // yet committed and split one user's sequence. Claims are one short
        // statement. The work_mem raise keeps the held users' hash table (see
        // below) in memory up to about two million of them.
        sqlx::query("select pg_advisory_xact_lock($1), set_config('work_mem', '64MB', true)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // A user's tasks wait while any pending task of theirs is leased or
        // backing off (stricter than "an earlier one", and as good for order).
        // Held users are found once and probed through a hashed NOT IN, which
        // keeps the id-ordered scan and costs O(1) per task: both earlier
        // forms went quadratic in a backlog — a correlated NOT EXISTS became a
        // hash anti-join over one user's 18k tasks (25 s per claim), and a
        // nested-loop anti-join over a CTE of 10k held users took 569 s to scan
        // 1M pending tasks; this takes 0.47 s for the same.
        let rows = sqlx::query(
            "with held as materialized ( \
               select user_id from deferred_tasks \
               where status = 'pending' \
                 and (available_at > $1 or (leased_until is not null and leased_until > $1))) \
             update deferred_tasks set leased_until = $2, lease_id = $3, updated_at = $1 \
             where id in ( \
               select t.id from deferred_tasks t \
               where t.status = 'pending' and t.available_at <= $1 \
                 and (t.leased_until is null or t.leased_until <= $1) \
                 and t.user_id not in (select user_id from held) \
               order by t.id limit $4 \
               for update skip locked) \
             returning *",
        )
        .bind(now)
        .bind(lease_until)
        .bind(lease_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let mut tasks = rows.iter().map(task_record).collect::<Result<Vec<_>>>()?;
        tasks.sort_by_key(|t| t.id);
        Ok(Claim { lease_id, tasks })
    }

    async fn complete_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "update deferred_tasks set status = 'done', leased_until = null, lease_id = null, updated_at = $3 \
             where lease_id = $1 and status = 'pending' and id = any($2)",
        )
        .bind(lease_id)
        .bind(ids)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn fail_task(
        &self,
        lease_id: Uuid,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "update deferred_tasks set attempts = attempts + 1, last_error = $3, leased_until = null, lease_id = null, \
               status = case when $4::timestamptz is null then 'dead' else 'pending' end, \
               available_at = coalesce($4, available_at), updated_at = $5 \
             where id = $2 and lease_id = $1 and status = 'pending'",
        )
        .bind(lease_id)
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "update deferred_tasks set leased_until = null, lease_id = null, updated_at = $3 \
             where lease_id = $1 and status = 'pending' and id = any($2)",
        )
        .bind(lease_id)
        .bind(ids)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn retry_dead_tasks(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "update deferred_tasks set status = 'pending', attempts = 0, available_at = $2, updated_at = $2 \
             where status = 'dead' and ($1::bigint is null or id = $1)",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn count_tasks(&self) -> Result<TaskCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as("select status, count(*) from deferred_tasks group by status")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut counts = TaskCounts::default();
        for (status, n) in rows {
            counts.add(TaskStatus::parse(&status)?, n as u64);
        }
        Ok(counts)
    }

    async fn count_waiting_tasks(&self) -> Result<WaitingTasks> {
        let (pending, dead): (i64, i64) = sqlx::query_as(
            "select (select count(*) from deferred_tasks where status = 'pending'), \
                    (select count(*) from deferred_tasks where status = 'dead')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(WaitingTasks { pending: pending as u64, dead: dead as u64 })
    }

    async fn purge_done_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        // Walks deferred_tasks_status_idx from the oldest done task.
        let purged = sqlx::query(
            "delete from deferred_tasks where id in (select id from deferred_tasks \
             where status = 'done' and updated_at < $1 order by id limit $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(purged.rows_affected())
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn record_audit(&self, e: &AuditRecord) -> Result<()> {
        sqlx::query(
            "insert into audit_events (created_at, event, user_id, ip, user_agent, detail) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.created_at)
        .bind(&e.event)
        .bind(e.user_id.map(|u| u.as_uuid()))
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.detail.as_deref())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_audit(&self, user: Option<UserId>, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "select * from audit_events where ($1::uuid is null or user_id = $1) and id < $2 \
             order by id desc limit $3",
        )
        .bind(user.map(|u| u.as_uuid()))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let user: Option<Uuid> = get(row, "user_id")?;
                Ok(AuditRecord {
                    id: get(row, "id")?,
                    created_at: get(row, "created_at")?,
                    event: get(row, "event")?,
                    user_id: user.map(UserId::from_uuid),
                    ip: get(row, "ip")?,
                    user_agent: get(row, "user_agent")?,
                    detail: get(row, "detail")?,
                })
            })
            .collect()
    }
}

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
