//! Statement helpers and the mapping from rows to records, written once for this backend.

use chrono::{DateTime, Utc};
use rusqlite::types::FromSql;
use rusqlite::{Connection, ErrorCode, Params, Row};

use crate::domain::{Amr, Role, SessionId, TrackId, UserId};
use crate::error::{ConflictField, Error, Result};
use crate::store::{DeferredTask, Favorite, SessionRecord, SessionUser, TaskKind, TaskStatus, User, UserRecord};

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
    query_first(conn, sql, params, usize::MAX, map)
}

/// The first `limit` rows `sql` returns, mapped.
///
/// For hot pages whose plan does not depend on the limit: `sql` has no
/// `limit ?`, because SQLite's planner reads a bound limit's value and so
/// prepares the statement again whenever another value is bound.
pub(super) fn query_first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    limit: usize,
    map: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while out.len() < limit
        && let Some(row) = rows.next().map_err(map_err)?
    {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Runs one statement; the number of rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<u64> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    Ok(stmt.execute(params).map_err(map_err)? as u64)
}

/// The columns [`user_record`] reads, in its order: a query selects
/// exactly these (`select {USER_COLUMNS} from users`), so a row is read by
/// position (by name, the lookups took a quarter of a page of users).
macro_rules! user_columns {
    () => {
        "id, username, email, role, disabled_at, email_verified, locale, last_login_at, created_at, updated_at, \
         password_hash, failed_logins, locked_until, credential_version"
    };
    ($table:literal) => {
        concat!(
            $table,
            ".id, ",
            $table,
            ".username, ",
            $table,
            ".email, ",
            $table,
            ".role, ",
            $table,
            ".disabled_at, ",
            $table,
            ".email_verified, ",
            $table,
            ".locale, ",
            $table,
            ".last_login_at, ",
            $table,
            ".created_at, ",
            $table,
            ".updated_at, ",
            $table,
            ".password_hash, ",
            $table,
            ".failed_logins, ",
            $table,
            ".locked_until, ",
            $table,
            ".credential_version"
        )
    };
}
pub(super) use user_columns;

pub(super) fn user_record(row: &Row<'_>) -> Result<UserRecord> {
    check_columns(row, user_columns!());
    Ok(UserRecord {
        user: User {
            id: UserId::from_uuid(at_col(row, 0)?),
            username: at_col::<Option<String>>(row, 1)?.map(TryInto::try_into).transpose().map_err(Error::internal)?,
            email: at_col::<Option<String>>(row, 2)?.map(TryInto::try_into).transpose().map_err(Error::internal)?,
            role: at_col::<String>(row, 3)?.parse::<Role>().map_err(Error::internal)?,
            disabled_at: opt_time(at_col(row, 4)?)?,
            email_verified: at_col(row, 5)?,
            locale: at_col::<String>(row, 6)?.parse().map_err(Error::internal)?,
            last_login_at: opt_time(at_col(row, 7)?)?,
            created_at: time(at_col(row, 8)?)?,
            updated_at: time(at_col(row, 9)?)?,
        },
        password_hash: at_col(row, 10)?,
        failed_logins: at_col::<i64>(row, 11)? as u32,
        locked_until: opt_time(at_col(row, 12)?)?,
        credential_version: at_col(row, 13)?,
    })
}

/// Column `i` of `row`.
fn at_col<T: FromSql>(row: &Row<'_>, i: usize) -> Result<T> {
    row.get(i).map_err(Error::internal)
}

/// An active session's account and how the session signed in: the
/// columns of [`user_columns`] then the session's `amr`.
pub(super) fn session_user(row: &Row<'_>) -> Result<SessionUser> {
    let record = user_record(row)?;
    Ok(SessionUser { record, amr: Amr::from_bits(at_col(row, 14)?) })
}

/// The columns [`session_record`] reads, in its order (see [`user_columns`]).
macro_rules! session_columns {
    () => {
        "id, user_id, refresh_jti, previous_jti, rotated_at, created_at, last_used_at, expires_at, revoked_at, \
         user_agent, ip, device_name, authenticated_at, amr"
    };
}
pub(super) use session_columns;

pub(super) fn session_record(row: &Row<'_>) -> Result<SessionRecord> {
    check_columns(row, session_columns!());
    Ok(SessionRecord {
        id: SessionId::from_uuid(at_col(row, 0)?),
        user_id: UserId::from_uuid(at_col(row, 1)?),
        refresh_jti: at_col(row, 2)?,
        previous_jti: at_col(row, 3)?,
        rotated_at: opt_time(at_col(row, 4)?)?,
        created_at: time(at_col(row, 5)?)?,
        last_used_at: time(at_col(row, 6)?)?,
        expires_at: time(at_col(row, 7)?)?,
        revoked_at: opt_time(at_col(row, 8)?)?,
        user_agent: at_col(row, 9)?,
        ip: at_col(row, 10)?,
        device_name: at_col(row, 11)?,
        authenticated_at: opt_time(at_col(row, 12)?)?,
        amr: Amr::from_bits(at_col(row, 13)?),
    })
}

/// The columns [`task_record`] reads, in its order (see [`user_columns`]).
macro_rules! task_columns {
    () => {
        "id, kind, user_id, track_id, payload, occurred_at, status, attempts, available_at, last_error, \
         leased_until, updated_at, traceparent"
    };
}
pub(super) use task_columns;

pub(super) fn task_record(row: &Row<'_>) -> Result<DeferredTask> {
    check_columns(row, task_columns!());
    let track: Option<String> = at_col(row, 3)?;
    let payload: Option<String> = at_col(row, 4)?;
    Ok(DeferredTask {
        id: at_col(row, 0)?,
        kind: TaskKind::parse(&at_col::<String>(row, 1)?)?,
        user_id: UserId::from_uuid(at_col(row, 2)?),
        track_id: track.map(TrackId::try_from).transpose().map_err(Error::internal)?,
        payload: payload.map(|p| serde_json::from_str(&p)).transpose().map_err(Error::internal)?,
        occurred_at: time(at_col(row, 5)?)?,
        status: TaskStatus::parse(&at_col::<String>(row, 6)?)?,
        attempts: at_col::<i64>(row, 7)? as u32,
        available_at: time(at_col(row, 8)?)?,
        last_error: at_col(row, 9)?,
        leased_until: opt_time(at_col(row, 10)?)?,
        updated_at: time(at_col(row, 11)?)?,
        traceparent: at_col(row, 12)?,
    })
}

/// The columns [`favorite_record`] reads, in its order (see [`user_columns`]).
macro_rules! favorite_columns {
    () => {
        "id, track_id, created_at"
    };
}
pub(super) use favorite_columns;

pub(super) fn favorite_record(row: &Row<'_>) -> Result<Favorite> {
    check_columns(row, favorite_columns!());
    Ok(Favorite {
        seq: at_col(row, 0)?,
        track_id: at_col::<String>(row, 1)?.try_into().map_err(Error::internal)?,
        added_at: time(at_col(row, 2)?)?,
    })
}

/// In debug builds (the tests), that a query selected `columns` in order.
fn check_columns(row: &Row<'_>, columns: &str) {
    if cfg!(debug_assertions) {
        let expected: Vec<&str> = columns.split(',').map(str::trim).collect();
        let names = row.as_ref().column_names();
        let first = &names[..expected.len().min(names.len())];
        assert_eq!(first, expected, "the query must select these columns first, in order");
    }
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
