//! Statement helpers and the mapping from rows to records, written once for this backend.

use chrono::{DateTime, Utc};
use rusqlite::types::FromSql;
use rusqlite::{Connection, ErrorCode, Params, Row};

use crate::domain::{Role, SessionId, TrackId, UserId};
use crate::error::{ConflictField, Error, Result};
use crate::store::{DeferredTask, SessionRecord, TaskKind, TaskStatus, User, UserRecord};

pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::internal(format!("timestamp out of range: {ms}")))
}

pub(super) fn opt_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

/// Turns a constraint violation into the caller's error; anything else is ours.
pub(super) fn map_err(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(failure, message) = &e
        && failure.code == ErrorCode::ConstraintViolation
    {
        let message = message.as_deref().unwrap_or_default();
        match failure.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                if message.contains("users_username_key") {
                    return Error::Conflict(ConflictField::Username);
                }
                if message.contains("users.email") || message.contains("users_email_key") {
                    return Error::Conflict(ConflictField::Email);
                }
            }
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Error::UserNotFound,
            _ => {}
        }
    }
    Error::internal(e)
}

/// One column by name.
pub(super) fn col<T: FromSql>(row: &Row<'_>, name: &str) -> Result<T> {
    row.get(name).map_err(Error::internal)
}

/// The first row `sql` returns, mapped.
pub(super) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    rows.next().map_err(map_err)?.map(map).transpose()
}

/// Every row `sql` returns, mapped.
pub(super) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Runs one statement; the number of rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<u64> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    Ok(stmt.execute(params).map_err(map_err)? as u64)
}

pub(super) fn user_record(row: &Row<'_>) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: UserId::from_uuid(col(row, "id")?),
            username: col::<String>(row, "username")?.try_into().map_err(Error::internal)?,
            email: col::<String>(row, "email")?.try_into().map_err(Error::internal)?,
            role: col::<String>(row, "role")?.parse::<Role>().map_err(Error::internal)?,
            disabled_at: opt_time(col(row, "disabled_at")?)?,
            email_verified: col(row, "email_verified")?,
            locale: col::<String>(row, "locale")?.parse().map_err(Error::internal)?,
            last_login_at: opt_time(col(row, "last_login_at")?)?,
            created_at: time(col(row, "created_at")?)?,
            updated_at: time(col(row, "updated_at")?)?,
        },
        password_hash: col(row, "password_hash")?,
        failed_logins: col::<i64>(row, "failed_logins")? as u32,
        locked_until: opt_time(col(row, "locked_until")?)?,
        credential_version: col(row, "credential_version")?,
    })
}

pub(super) fn session_record(row: &Row<'_>) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId::from_uuid(col(row, "id")?),
        user_id: UserId::from_uuid(col(row, "user_id")?),
        refresh_jti: col(row, "refresh_jti")?,
        previous_jti: col(row, "previous_jti")?,
        rotated_at: opt_time(col(row, "rotated_at")?)?,
        created_at: time(col(row, "created_at")?)?,
        last_used_at: time(col(row, "last_used_at")?)?,
        expires_at: time(col(row, "expires_at")?)?,
        revoked_at: opt_time(col(row, "revoked_at")?)?,
        user_agent: col(row, "user_agent")?,
        ip: col(row, "ip")?,
        device_name: col(row, "device_name")?,
    })
}

pub(super) fn task_record(row: &Row<'_>) -> Result<DeferredTask> {
    let track: Option<String> = col(row, "track_id")?;
    let payload: Option<String> = col(row, "payload")?;
    Ok(DeferredTask {
        id: col(row, "id")?,
        kind: TaskKind::parse(&col::<String>(row, "kind")?)?,
        user_id: UserId::from_uuid(col(row, "user_id")?),
        track_id: track.map(TrackId::try_from).transpose().map_err(Error::internal)?,
        payload: payload.map(|p| serde_json::from_str(&p)).transpose().map_err(Error::internal)?,
        occurred_at: time(col(row, "occurred_at")?)?,
        status: TaskStatus::parse(&col::<String>(row, "status")?)?,
        attempts: col::<i64>(row, "attempts")? as u32,
        available_at: time(col(row, "available_at")?)?,
        last_error: col(row, "last_error")?,
        leased_until: opt_time(col(row, "leased_until")?)?,
        updated_at: time(col(row, "updated_at")?)?,
    })
}

/// Ids as a JSON array, for `id in (select value from json_each(?))`. Built
/// by hand: integers need no escaping, so this cannot fail.
pub(super) fn json_ids(ids: &[i64]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(2 + ids.len() * 8);
    out.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{id}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_become_a_json_array() {
        assert_eq!(super::json_ids(&[]), "[]");
        assert_eq!(super::json_ids(&[1, -2, i64::MAX]), format!("[1,-2,{}]", i64::MAX));
    }
}
