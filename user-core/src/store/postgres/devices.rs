//! [`DeviceStore`] on PostgreSQL: device sign-in requests (`device_grants`).

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use super::rows::{get, map_err};
use super::sessions::insert_session;
use crate::domain::{SessionId, UserCode, UserId};
use crate::error::{Error, Result, UnauthorizedReason};
use crate::store::{
    Approval, DeviceDecision, DeviceGrant, DevicePoll, DeviceStore, NewDeviceGrant, NewSession, UserCodeAction,
};

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn insert_device_grant(&self, g: &NewDeviceGrant) -> Result<bool> {
        let done = sqlx::query(
            "insert into device_grants (digest, user_code, client_id, device_name, created_at, expires_at, \
               interval_secs, request_ip) values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (user_code) do nothing",
        )
        .bind(g.digest.as_slice())
        .bind(g.user_code.as_str())
        .bind(&g.client_id)
        .bind(g.device_name.as_deref())
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(i32::try_from(g.interval_secs).map_err(Error::internal)?)
        .bind(g.request_ip.as_deref())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn poll_device_grant(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
        leeway: TimeDelta,
        step: u32,
    ) -> Result<Option<DevicePoll>> {
        let mut tx = self.begin().await?;
        // The row lock orders concurrent polls of one device: each sees the
        // time of the one before it.
        let row = sqlx::query("select * from device_grants where digest = $1 for update")
            .bind(digest.as_slice())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut grant = device_grant(&row)?;
        let too_fast = crate::store::rules::polled_too_fast(&grant, get(&row, "polled_at")?, now, leeway);
        if too_fast {
            grant.interval_secs += step;
        }
        sqlx::query("update device_grants set polled_at = $2, interval_secs = $3 where digest = $1")
            .bind(digest.as_slice())
            .bind(now)
            .bind(i32::try_from(grant.interval_secs).map_err(Error::internal)?)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(DevicePoll { grant, too_fast }))
    }

    async fn resolve_user_code(
        &self,
        code: &UserCode,
        action: UserCodeAction,
        max_wrong: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceGrant>> {
        let max_wrong = i32::try_from(max_wrong).unwrap_or(i32::MAX);
        let (decision, user, session) = match action {
            UserCodeAction::Look => (None, None, None),
            UserCodeAction::Approve { user, session } => (Some("approved"), Some(user.as_uuid()), Some(session)),
            UserCodeAction::Deny(user) => (Some("denied"), Some(user.as_uuid()), None),
        };
        let mut tx = self.begin().await?;
        if let Some(session) = session {
            // The share lock holds off the revocation of the approving
            // session until this commits; the approval then reads the
            // credential version that revocation's change replaces, so the
            // redeem sees the change whichever commits first.
            let live = sqlx::query(
                "select 1 from sessions where id = $1 and user_id = $2 and revoked_at is null and expires_at > $3 \
                 for share",
            )
            .bind(session.as_uuid())
            .bind(user)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if live.is_none() {
                return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked));
            }
        }
        // A decision is one conditional update: of two racing, one finds the
        // request still pending.
        let sql = if decision.is_some() {
            "update device_grants set decision = $4, user_id = $5, decided_at = $2, approver_session = $6, \
               approver_version = case when $6::uuid is null then null \
                 else (select credential_version from users where id = $5) end \
             where user_code = $1 and decision is null and expires_at > $2 and wrong_tries < $3 returning *"
        } else {
            "select * from device_grants \
             where user_code = $1 and decision is null and expires_at > $2 and wrong_tries < $3"
        };
        let mut query = sqlx::query(sql).bind(code.as_str()).bind(now).bind(max_wrong);
        if decision.is_some() {
            query = query.bind(decision).bind(user).bind(session.map(|s| s.as_uuid()));
        }
        let row = query.fetch_optional(&mut *tx).await.map_err(map_err)?;
        let grant = match row {
            Some(row) => Some(device_grant(&row)?),
            None => {
                count_wrong_try(&mut tx, code, max_wrong, now).await?;
                None
            }
        };
        tx.commit().await.map_err(map_err)?;
        Ok(grant)
    }

    async fn redeem_device_grant(&self, digest: &[u8; 32], login: &NewSession) -> Result<bool> {
        let s = &login.session;
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "delete from device_grants where digest = $1 and decision = 'approved' and user_id = $2 \
               and expires_at > $3 \
               and approver_version = (select credential_version from users where id = $2) \
               and exists (select 1 from sessions where id = approver_session and revoked_at is null \
                             and expires_at > $3)",
        )
        .bind(digest.as_slice())
        .bind(s.user_id.as_uuid())
        .bind(s.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let opened = taken.rows_affected() == 1 && insert_session(&mut *tx, login).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(opened)
    }
}

/// Counts a wrong try against the pending requests whose code shares a half with `code`.
async fn count_wrong_try(
    tx: &mut Transaction<'_, Postgres>,
    code: &UserCode,
    max_wrong: i32,
    now: DateTime<Utc>,
) -> Result<()> {
    let (head, tail) = code.halves();
    sqlx::query(
        "update device_grants set wrong_tries = wrong_tries + 1 \
         where (substr(user_code, 1, 4) = $1 or substr(user_code, 5, 4) = $2) \
           and decision is null and expires_at > $3 and wrong_tries < $4",
    )
    .bind(head)
    .bind(tail)
    .bind(now)
    .bind(max_wrong)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

fn device_grant(row: &PgRow) -> Result<DeviceGrant> {
    let user = get::<Option<Uuid>>(row, "user_id")?.map(UserId::from_uuid);
    let decision = match (get::<Option<String>>(row, "decision")?.as_deref(), user) {
        (None, _) => DeviceDecision::Pending,
        (Some("approved"), Some(user)) => DeviceDecision::Approved(user),
        (Some("denied"), Some(user)) => DeviceDecision::Denied(user),
        (Some(other), _) => return Err(Error::internal(format!("device grant decision {other:?} without a user"))),
    };
    let count = |name| get::<i32>(row, name).and_then(|n| u32::try_from(n).map_err(Error::internal));
    let session = get::<Option<Uuid>>(row, "approver_session")?.map(SessionId::from_uuid);
    let version = get::<Option<i64>>(row, "approver_version")?;
    Ok(DeviceGrant {
        user_code: UserCode::parse(&get::<String>(row, "user_code")?).map_err(Error::internal)?,
        client_id: get(row, "client_id")?,
        device_name: get(row, "device_name")?,
        created_at: get(row, "created_at")?,
        request_ip: get(row, "request_ip")?,
        expires_at: get(row, "expires_at")?,
        interval_secs: count("interval_secs")?,
        wrong_tries: count("wrong_tries")?,
        decision,
        approval: session.zip(version).map(|(session, credential_version)| Approval { session, credential_version }),
    })
}
