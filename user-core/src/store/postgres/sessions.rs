//! [`SessionStore`] on PostgreSQL; session checks are batched per round trip.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::{PgExecutor, Postgres, Row, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use super::rows::{map_err, session_record, user_record};
use crate::domain::{Amr, SessionId, UserId};
use crate::error::{Error, Result};
use crate::store::{NewSession, Rotation, SessionRecord, SessionStore, SessionUser};

/// One [`SessionStore::session_user`] question.
pub(super) struct SessionLookup {
    session: SessionId,
    user: UserId,
    now: DateTime<Utc>,
}

/// Session checks answered per round trip at most.
pub(super) const MAX_SESSION_BATCH: usize = 64;

/// Answers a batch of session checks with one query; `n` is the 1-based
/// position of the question a row answers.
pub(super) async fn lookup_sessions(
    pool: PgPool,
    batch: Vec<SessionLookup>,
) -> Result<Vec<Result<Option<SessionUser>>>> {
    let sessions: Vec<Uuid> = batch.iter().map(|q| q.session.as_uuid()).collect();
    let users: Vec<Uuid> = batch.iter().map(|q| q.user.as_uuid()).collect();
    let nows: Vec<DateTime<Utc>> = batch.iter().map(|q| q.now).collect();
    let rows = sqlx::query(
        "select q.n, s.amr as session_amr, u.* from unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) with ordinality as q(sid, uid, at, n) \
         join sessions s on s.id = q.sid and s.user_id = q.uid and s.revoked_at is null and s.expires_at > q.at \
         join users u on u.id = s.user_id",
    )
    .bind(&sessions)
    .bind(&users)
    .bind(&nows)
    .fetch_all(&pool)
    .await
    .map_err(map_err)?;
    let mut answers: Vec<Result<Option<SessionUser>>> = (0..batch.len()).map(|_| Ok(None)).collect();
    for row in &rows {
        let n: i64 = row.try_get("n").map_err(Error::internal)?;
        if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| answers.get_mut(i)) {
            *slot = user_record(row).and_then(|record| {
                let amr: i16 = row.try_get("session_amr").map_err(Error::internal)?;
                Ok(Some(SessionUser { record, amr: Amr::from_bits(amr.into()) }))
            });
        }
    }
    Ok(answers)
}

/// Ends a user's sessions but `except`, voids the account's device cookies
/// and the device approvals the sessions gave
/// (declined, so the device hears `access_denied`).
pub(super) async fn revoke_sessions(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    except: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64> {
    sqlx::query("delete from device_cookies where user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "update device_grants set decision = 'denied' where user_id = $1 and decision = 'approved' \
           and ($2::uuid is null or approver_session is distinct from $2)",
    )
    .bind(user.as_uuid())
    .bind(except.map(|s| s.as_uuid()))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
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

/// Opens the session of a login (see [`SessionStore::open_session`]), on
/// the pool or inside the caller's transaction.
pub(super) async fn insert_session<'e>(executor: impl PgExecutor<'e>, login: &NewSession) -> Result<bool> {
    let s = &login.session;
    // One statement: the user's row is locked by the update and held to
    // the commit, so a concurrent password change either waits for this
    // session (and then revokes it) or commits first (and this inserts nothing).
    let done = sqlx::query(
        "with current_user_row as ( \
           update users set failed_logins = 0, locked_until = null, password_hash = coalesce($12, password_hash), \
             last_login_at = $6 \
           where id = $2 and credential_version = $13 and disabled_at is null returning id) \
         insert into sessions (id, user_id, refresh_jti, previous_jti, rotated_at, created_at, last_used_at, \
           expires_at, revoked_at, user_agent, ip, device_name, authenticated_at, amr) \
         select $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $14, $15, $16 from current_user_row",
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
    .bind(s.device_name.as_deref())
    .bind(s.authenticated_at)
    .bind(i16::try_from(s.amr.bits()).map_err(Error::internal)?)
    .execute(executor)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn open_session(&self, login: &NewSession) -> Result<bool> {
        insert_session(&self.pool, login).await
    }

    async fn list_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(
            "select * from sessions where user_id = $1 and revoked_at is null and expires_at > $2 \
             order by created_at desc, id desc",
        )
        .bind(user.as_uuid())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(session_record).collect()
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        let row = sqlx::query("select * from sessions where id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(session_record).transpose()
    }

    async fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<SessionUser>> {
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
        let mut tx = self.begin().await?;
        sqlx::query(
            "update device_grants set decision = 'denied' where approver_session = $1 and decision = 'approved'",
        )
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let done = sqlx::query("update sessions set revoked_at = $2 where id = $1 and revoked_at is null")
            .bind(id.as_uuid())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = revoke_sessions(&mut tx, user, except, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn record_authentication(&self, id: SessionId, at: DateTime<Utc>, proved: Amr, recent: bool) -> Result<bool> {
        let done = sqlx::query(
            "update sessions set amr = amr | $3, authenticated_at = case when $4 then $2 else authenticated_at end \
             where id = $1 and revoked_at is null and expires_at > $2",
        )
        .bind(id.as_uuid())
        .bind(at)
        .bind(i16::try_from(proved.bits()).map_err(Error::internal)?)
        .bind(recent)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
