//! [`SessionStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{execute, millis, query_all, query_opt, session_columns, session_record, session_user, user_columns};
use crate::domain::{Amr, SessionId, UserId};
use crate::error::Result;
use crate::store::{NewSession, Rotation, SessionRecord, SessionStore, SessionUser};

/// Ends a user's sessions but `except`, voids the account's device cookies
/// and the device approvals the sessions gave
/// (declined, so the device hears `access_denied`).
pub(super) fn revoke_sessions(
    conn: &Connection,
    user: UserId,
    except: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let except = except.map(|s| s.as_uuid());
    execute(conn, "delete from device_cookies where user_id = ?1", params![user.as_uuid()])?;
    execute(
        conn,
        "update device_grants set decision = 'denied' where user_id = ?1 and decision = 'approved' \
           and (?2 is null or approver_session is not ?2)",
        params![user.as_uuid(), except],
    )?;
    execute(
        conn,
        "update sessions set revoked_at = ?1 \
         where user_id = ?2 and revoked_at is null and (?3 is null or id <> ?3)",
        params![millis(now), user.as_uuid(), except],
    )
}

/// Opens the session of a login on the caller's transaction (see
/// [`SessionStore::open_session`]).
pub(super) fn insert_session(conn: &Connection, login: &NewSession) -> Result<bool> {
    let s = &login.session;
    let current = execute(
        conn,
        "update users set failed_logins = 0, locked_until = null, \
           password_hash = coalesce(?3, password_hash), last_login_at = ?4 \
         where id = ?1 and credential_version = ?2 and disabled_at is null",
        params![s.user_id.as_uuid(), login.credential_version, login.rehash, millis(s.created_at)],
    )?;
    if current == 0 {
        return Ok(false);
    }
    execute(
        conn,
        "insert into sessions (id, user_id, refresh_jti, previous_jti, rotated_at, created_at, last_used_at, \
         expires_at, revoked_at, user_agent, ip, device_name, authenticated_at, amr) \
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            s.id.as_uuid(),
            s.user_id.as_uuid(),
            s.refresh_jti,
            s.previous_jti,
            s.rotated_at.map(millis),
            millis(s.created_at),
            millis(s.last_used_at),
            millis(s.expires_at),
            s.revoked_at.map(millis),
            s.user_agent,
            s.ip,
            s.device_name,
            s.authenticated_at.map(millis),
            s.amr.bits(),
        ],
    )?;
    Ok(true)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn open_session(&self, login: &NewSession) -> Result<bool> {
        let login = login.clone();
        self.write(move |conn| insert_session(conn, &login)).await
    }

    async fn list_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        self.read(|conn| {
            query_all(
                conn,
                concat!(
                    "select ",
                    session_columns!(),
                    " from sessions where user_id = ?1 and revoked_at is null and expires_at > ?2 \
                     order by created_at desc, id desc"
                ),
                params![user.as_uuid(), millis(now)],
                session_record,
            )
        })
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        self.read(|conn| {
            query_opt(
                conn,
                concat!("select ", session_columns!(), " from sessions where id = ?1"),
                [id.as_uuid()],
                session_record,
            )
        })
    }

    async fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<SessionUser>> {
        self.read(|conn| {
            query_opt(
                conn,
                concat!(
                    "select ",
                    user_columns!("u"),
                    ", s.amr from sessions s join users u on u.id = s.user_id \
                     where s.id = ?1 and s.user_id = ?2 and s.revoked_at is null and s.expires_at > ?3"
                ),
                params![id.as_uuid(), user.as_uuid(), millis(now)],
                session_user,
            )
        })
    }

    async fn rotate_session(&self, r: &Rotation) -> Result<bool> {
        let r = r.clone();
        self.write(move |conn| {
            let changed = execute(
                conn,
                "update sessions set previous_jti = refresh_jti, refresh_jti = ?3, rotated_at = ?4, \
                 last_used_at = ?4, expires_at = ?5 where id = ?1 and refresh_jti = ?2 and revoked_at is null",
                params![r.session.as_uuid(), r.expected_jti, r.new_jti, millis(r.now), millis(r.expires_at)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |conn| {
            execute(
                conn,
                "update device_grants set decision = 'denied' where approver_session = ?1 and decision = 'approved'",
                params![id.as_uuid()],
            )?;
            let changed = execute(
                conn,
                "update sessions set revoked_at = ?2 where id = ?1 and revoked_at is null",
                params![id.as_uuid(), millis(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64> {
        self.write(move |conn| revoke_sessions(conn, user, except, now)).await
    }

    async fn record_authentication(&self, id: SessionId, at: DateTime<Utc>, proved: Amr, recent: bool) -> Result<bool> {
        self.write(move |conn| {
            let changed = execute(
                conn,
                "update sessions set amr = amr | ?3, authenticated_at = case when ?4 then ?2 else authenticated_at end \
                 where id = ?1 and revoked_at is null and expires_at > ?2",
                params![id.as_uuid(), millis(at), proved.bits(), recent],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}
