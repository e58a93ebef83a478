//! Error mapping and the mapping from rows to records, written once for this backend.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::domain::{Amr, Role, SessionId, TrackId, UserId};
use crate::error::{ConflictField, Error, Result};
use crate::store::{DeferredTask, SessionRecord, TaskKind, TaskStatus, User, UserRecord};

/// Turns a constraint violation into the caller's error; anything else is ours.
pub(super) fn map_err(e: sqlx::Error) -> Error {
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

pub(super) fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(row: &'r PgRow, col: &str) -> Result<T> {
    row.try_get(col).map_err(Error::internal)
}

pub(super) fn user_record(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: UserId::from_uuid(get(row, "id")?),
            username: get::<Option<String>>(row, "username")?
                .map(TryInto::try_into)
                .transpose()
                .map_err(Error::internal)?,
            email: get::<Option<String>>(row, "email")?.map(TryInto::try_into).transpose().map_err(Error::internal)?,
            role: get::<String>(row, "role")?.parse::<Role>().map_err(Error::internal)?,
            disabled_at: get(row, "disabled_at")?,
            email_verified: get(row, "email_verified")?,
            locale: get::<String>(row, "locale")?.parse().map_err(Error::internal)?,
            last_login_at: get(row, "last_login_at")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        },
        password_hash: get(row, "password_hash")?,
        failed_logins: get::<i32>(row, "failed_logins")? as u32,
        locked_until: get(row, "locked_until")?,
        credential_version: get(row, "credential_version")?,
    })
}

pub(super) fn session_record(row: &PgRow) -> Result<SessionRecord> {
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
        device_name: get(row, "device_name")?,
        authenticated_at: get(row, "authenticated_at")?,
        amr: Amr::from_bits(get::<i16>(row, "amr")?.into()),
    })
}

pub(super) fn task_record(row: &PgRow) -> Result<DeferredTask> {
    let track: Option<String> = get(row, "track_id")?;
    let payload: Option<String> = get(row, "payload")?;
    Ok(DeferredTask {
        id: get(row, "id")?,
        kind: TaskKind::parse(&get::<String>(row, "kind")?)?,
        user_id: UserId::from_uuid(get(row, "user_id")?),
        track_id: track.map(TrackId::try_from).transpose().map_err(Error::internal)?,
        payload: payload.map(|p| serde_json::from_str(&p)).transpose().map_err(Error::internal)?,
        occurred_at: get(row, "occurred_at")?,
        status: TaskStatus::parse(&get::<String>(row, "status")?)?,
        attempts: get::<i32>(row, "attempts")? as u32,
        available_at: get(row, "available_at")?,
        last_error: get(row, "last_error")?,
        leased_until: get(row, "leased_until")?,
        updated_at: get(row, "updated_at")?,
        traceparent: get(row, "traceparent")?,
    })
}
