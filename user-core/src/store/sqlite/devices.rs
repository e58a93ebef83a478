//! [`DeviceStore`] on SQLite: device sign-in requests (`device_grants`).

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, Row, params};

use super::SqliteStore;
use super::rows::{col, execute, millis, opt_time, query_opt, time};
use super::sessions::insert_session;
use crate::domain::{SessionId, UserCode, UserId};
use crate::error::{Error, Result, UnauthorizedReason};
use crate::store::{
    Approval, DeviceDecision, DeviceGrant, DevicePoll, DeviceStore, NewDeviceGrant, NewSession, UserCodeAction,
};

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_device_grant(&self, grant: &NewDeviceGrant) -> Result<bool> {
        let g = grant.clone();
        self.write(move |conn| {
            let inserted = execute(
                conn,
                "insert into device_grants (digest, user_code, client_id, device_name, created_at, expires_at, \
                   interval_secs, request_ip) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) on conflict (user_code) do nothing",
                params![
                    g.digest.as_slice(),
                    g.user_code.as_str(),
                    g.client_id,
                    g.device_name,
                    millis(g.created_at),
                    millis(g.expires_at),
                    g.interval_secs,
                    g.request_ip
                ],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn poll_device_grant(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
        leeway: TimeDelta,
        step: u32,
    ) -> Result<Option<DevicePoll>> {
        let digest = *digest;
        // A poll with a code nobody issued costs a read on the caller's
        // thread, not a turn of the one writer: anyone can send those.
        let known = self.read(|conn| {
            query_opt(
                conn,
                "select 1 as known from device_grants where digest = ?1",
                params![digest.as_slice()],
                |row| col::<i64>(row, "known"),
            )
        })?;
        if known.is_none() {
            return Ok(None);
        }
        self.write(move |conn| {
            let Some((mut grant, previous)) =
                query_opt(conn, "select * from device_grants where digest = ?1", params![digest.as_slice()], |row| {
                    Ok((device_grant(row)?, opt_time(col(row, "polled_at")?)?))
                })?
            else {
                return Ok(None);
            };
            let too_fast = crate::store::rules::polled_too_fast(&grant, previous, now, leeway);
            if too_fast {
                grant.interval_secs += step;
            }
            execute(
                conn,
                "update device_grants set polled_at = ?2, interval_secs = ?3 where digest = ?1",
                params![digest.as_slice(), millis(now), grant.interval_secs],
            )?;
            Ok(Some(DevicePoll { grant, too_fast }))
        })
        .await
    }

    async fn resolve_user_code(
        &self,
        code: &UserCode,
        action: UserCodeAction,
        max_wrong: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceGrant>> {
        let code = code.clone();
        self.write(move |conn| {
            let found = query_opt(
                conn,
                "select * from device_grants where user_code = ?1 and decision is null and expires_at > ?2 \
                   and wrong_tries < ?3",
                params![code.as_str(), millis(now), max_wrong],
                device_grant,
            )?;
            let Some(mut grant) = found else {
                count_wrong_try(conn, &code, max_wrong, now)?;
                return Ok(None);
            };
            let (decision, user, session) = match action {
                UserCodeAction::Look => return Ok(Some(grant)),
                UserCodeAction::Approve { user, session } => (DeviceDecision::Approved(user), user, Some(session)),
                UserCodeAction::Deny(user) => (DeviceDecision::Denied(user), user, None),
            };
            if let Some(session) = session {
                let version = query_opt(
                    conn,
                    "select u.credential_version from sessions s join users u on u.id = s.user_id \
                     where s.id = ?1 and s.user_id = ?2 and s.revoked_at is null and s.expires_at > ?3",
                    params![session.as_uuid(), user.as_uuid(), millis(now)],
                    |row| col::<i64>(row, "credential_version"),
                )?;
                let Some(credential_version) = version else {
                    return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked));
                };
                grant.approval = Some(Approval { session, credential_version });
            }
            execute(
                conn,
                "update device_grants set decision = ?2, user_id = ?3, decided_at = ?4, approver_session = ?5, \
                   approver_version = ?6 where user_code = ?1",
                params![
                    code.as_str(),
                    decision_name(decision),
                    user.as_uuid(),
                    millis(now),
                    grant.approval.map(|a| a.session.as_uuid()),
                    grant.approval.map(|a| a.credential_version)
                ],
            )?;
            grant.decision = decision;
            Ok(Some(grant))
        })
        .await
    }

    async fn redeem_device_grant(&self, digest: &[u8; 32], login: &NewSession) -> Result<bool> {
        let digest = *digest;
        let login = login.clone();
        self.write(move |conn| {
            let s = &login.session;
            let taken = execute(
                conn,
                "delete from device_grants where digest = ?1 and decision = 'approved' and user_id = ?2 \
                   and expires_at > ?3 \
                   and approver_version = (select credential_version from users where id = ?2) \
                   and exists (select 1 from sessions where id = approver_session and revoked_at is null \
                                 and expires_at > ?3)",
                params![digest.as_slice(), s.user_id.as_uuid(), millis(s.created_at)],
            )?;
            Ok(taken == 1 && insert_session(conn, &login)?)
        })
        .await
    }
}

/// Counts a wrong try against the pending requests whose code shares a half with `code`.
fn count_wrong_try(conn: &Connection, code: &UserCode, max_wrong: u32, now: DateTime<Utc>) -> Result<()> {
    let (head, tail) = code.halves();
    execute(
        conn,
        "update device_grants set wrong_tries = wrong_tries + 1 \
         where (substr(user_code, 1, 4) = ?1 or substr(user_code, 5, 4) = ?2) \
           and decision is null and expires_at > ?3 and wrong_tries < ?4",
        params![head, tail, millis(now), max_wrong],
    )?;
    Ok(())
}

fn decision_name(decision: DeviceDecision) -> Option<&'static str> {
    match decision {
        DeviceDecision::Pending => None,
        DeviceDecision::Approved(_) => Some("approved"),
        DeviceDecision::Denied(_) => Some("denied"),
    }
}

fn device_grant(row: &Row<'_>) -> Result<DeviceGrant> {
    let user = col::<Option<uuid::Uuid>>(row, "user_id")?.map(UserId::from_uuid);
    let decision = match (col::<Option<String>>(row, "decision")?.as_deref(), user) {
        (None, _) => DeviceDecision::Pending,
        (Some("approved"), Some(user)) => DeviceDecision::Approved(user),
        (Some("denied"), Some(user)) => DeviceDecision::Denied(user),
        (Some(other), _) => return Err(Error::internal(format!("device grant decision {other:?} without a user"))),
    };
    let session = col::<Option<uuid::Uuid>>(row, "approver_session")?.map(SessionId::from_uuid);
    let version = col::<Option<i64>>(row, "approver_version")?;
    Ok(DeviceGrant {
        user_code: UserCode::parse(&col::<String>(row, "user_code")?).map_err(Error::internal)?,
        client_id: col(row, "client_id")?,
        device_name: col(row, "device_name")?,
        created_at: time(col(row, "created_at")?)?,
        request_ip: col(row, "request_ip")?,
        expires_at: time(col(row, "expires_at")?)?,
        interval_secs: col(row, "interval_secs")?,
        wrong_tries: col(row, "wrong_tries")?,
        decision,
        approval: session.zip(version).map(|(session, credential_version)| Approval { session, credential_version }),
    })
}
