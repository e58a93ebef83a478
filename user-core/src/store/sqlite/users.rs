//! [`UserStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{col, execute, millis, opt_time, query_all, query_opt, user_columns, user_record};
use super::sessions::revoke_sessions;
use super::tasks::enqueue;
use super::tokens::{enqueue_mails, void_stale_verification, void_tokens};
use crate::domain::{Email, UserId, Username};
use crate::error::{ConflictField, Error, Result};
use crate::store::{
    AccountChanges, GuestFilter, GuestUpgrade, LockRule, LoginAttempt, NewMail, TaskKind, TokenPurpose, User,
    UserChanges, UserKey, UserRecord, UserStore,
};

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, record: &UserRecord, mails: &[NewMail]) -> Result<()> {
        let record = record.clone();
        let mails = mails.to_vec();
        self.write(move |conn| {
            insert_user_row(conn, &record)?;
            enqueue_mails(conn, record.user.id, &mails, record.user.created_at)
        })
        .await
    }

    async fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>> {
        self.read(|conn| match key {
            UserKey::Id(id) => query_opt(
                conn,
                concat!("select ", user_columns!(), " from users where id = ?1"),
                [id.as_uuid()],
                user_record,
            ),
            UserKey::Username(name) => query_opt(
                conn,
                concat!("select ", user_columns!(), " from users where lower(username) = ?1"),
                [name.folded()],
                user_record,
            ),
            UserKey::Email(email) => query_opt(
                conn,
                concat!("select ", user_columns!(), " from users where email = ?1"),
                [email.as_str()],
                user_record,
            ),
        })
    }

    async fn update_user(&self, id: UserId, changes: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        let changes = changes.clone();
        self.write(move |conn| {
            if let Some(email) = &changes.email {
                check_reserved(conn, email, id, now)?;
            }
            let record = query_opt(
                conn,
                concat!(
                    "update users set \
                   username = coalesce(?2, username), \
                   email = coalesce(?3, email), \
                   email_verified = email_verified and coalesce(?3, email) = email, \
                   password_hash = coalesce(?4, password_hash), \
                   credential_version = credential_version + (?4 is not null), \
                   locale = coalesce(?7, locale), \
                   updated_at = ?5 \
                 where id = ?1 and (?6 is null or credential_version = ?6) \
                 returning ",
                    user_columns!()
                ),
                params![
                    id.as_uuid(),
                    changes.username.as_ref().map(|u| u.as_str()),
                    changes.email.as_ref().map(|e| e.as_str()),
                    changes.password_hash.as_deref(),
                    millis(now),
                    changes.expected_credential_version,
                    changes.locale.map(|l| l.as_str()),
                ],
                user_record,
            )?;
            let Some(record) = record else { return Ok(None) };
            if changes.password_hash.is_some() {
                revoke_sessions(conn, id, changes.keep_session, now)?;
                void_tokens(conn, id, TokenPurpose::Reset)?;
            }
            if changes.email.is_some() {
                void_stale_verification(conn, id)?;
            }
            if let Some(revert) = &changes.revert {
                execute(
                    conn,
                    "insert into email_reverts (digest, user_id, old_email, created_at, expires_at) \
                     values (?1, ?2, ?3, ?4, ?5)",
                    params![
                        revert.digest.as_slice(),
                        id.as_uuid(),
                        revert.old_email.as_str(),
                        millis(now),
                        millis(revert.expires_at)
                    ],
                )?;
            }
            enqueue_mails(conn, id, &changes.mails, now)?;
            Ok(Some(record))
        })
        .await
    }

    async fn reserve_login_attempt(
        &self,
        id: UserId,
        device: Option<[u8; 32]>,
        now: DateTime<Utc>,
        lock_until: LockRule,
    ) -> Result<Option<LoginAttempt>> {
        self.write(move |conn| {
            if let Some(digest) = device {
                let count = query_opt(
                    conn,
                    "update device_cookies set failed_logins = failed_logins + 1 \
                     where digest = ?1 and user_id = ?2 and expires_at > ?3 \
                       and (locked_until is null or locked_until <= ?3) returning failed_logins",
                    params![digest.as_slice(), id.as_uuid(), millis(now)],
                    |row| col::<i64>(row, "failed_logins"),
                )?;
                if let Some(count) = count {
                    let failures = count as u32;
                    if let Some(until) = lock_until(failures) {
                        execute(
                            conn,
                            "update device_cookies set locked_until = max(coalesce(locked_until, 0), ?2) \
                             where digest = ?1",
                            params![digest.as_slice(), millis(until)],
                        )?;
                    }
                    return Ok(Some(LoginAttempt::Allowed { failures }));
                }
                let locked = query_opt(
                    conn,
                    "select locked_until from device_cookies where digest = ?1 and user_id = ?2 and expires_at > ?3",
                    params![digest.as_slice(), id.as_uuid(), millis(now)],
                    |row| opt_time(col(row, "locked_until")?),
                )?;
                if locked.is_some() {
                    return Ok(crate::store::rules::refused_attempt(locked, now));
                }
            }
            let count = query_opt(
                conn,
                "update users set failed_logins = failed_logins + 1 \
                 where id = ?1 and (locked_until is null or locked_until <= ?2) returning failed_logins",
                params![id.as_uuid(), millis(now)],
                |row| col::<i64>(row, "failed_logins"),
            )?;
            let Some(count) = count else {
                let locked = query_opt(conn, "select locked_until from users where id = ?1", [id.as_uuid()], |row| {
                    opt_time(col(row, "locked_until")?)
                })?;
                return Ok(crate::store::rules::refused_attempt(locked, now));
            };
            let failures = count as u32;
            if let Some(until) = lock_until(failures) {
                execute(
                    conn,
                    "update users set locked_until = max(coalesce(locked_until, 0), ?2) where id = ?1",
                    params![id.as_uuid(), millis(until)],
                )?;
            }
            Ok(Some(LoginAttempt::Allowed { failures }))
        })
        .await
    }

    async fn reset_login_failures(&self, id: UserId) -> Result<()> {
        self.write(move |conn| {
            execute(conn, "update users set failed_logins = 0, locked_until = null where id = ?1", [id.as_uuid()])?;
            execute(
                conn,
                "update device_cookies set failed_logins = 0, locked_until = null where user_id = ?1",
                [id.as_uuid()],
            )?;
            Ok(())
        })
        .await
    }

    async fn remember_device(
        &self,
        user: UserId,
        presented: Option<[u8; 32]>,
        fresh: [u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(move |conn| {
            if let Some(digest) = presented {
                let kept = execute(
                    conn,
                    "update device_cookies set failed_logins = 0, locked_until = null \
                     where digest = ?1 and user_id = ?2 and expires_at > ?3",
                    params![digest.as_slice(), user.as_uuid(), millis(now)],
                )?;
                if kept == 1 {
                    return Ok(false);
                }
            }
            execute(
                conn,
                "insert into device_cookies (digest, user_id, created_at, expires_at) values (?1, ?2, ?3, ?4)",
                params![fresh.as_slice(), user.as_uuid(), millis(now), millis(expires_at)],
            )?;
            Ok(true)
        })
        .await
    }

    async fn change_account(&self, id: UserId, changes: &AccountChanges, now: DateTime<Utc>) -> Result<Option<User>> {
        let changes = *changes;
        self.write(move |conn| {
            let Some(before) = query_opt(
                conn,
                concat!("select ", user_columns!(), " from users where id = ?1"),
                [id.as_uuid()],
                user_record,
            )?
            else {
                return Ok(None);
            };
            let before = before.user;
            let role_changes = changes.role.is_some_and(|role| role != before.role);
            let disabling = changes.disabled == Some(true) && before.disabled_at.is_none();
            if role_changes || disabling {
                keep_an_admin(conn, id)?;
            }
            let ends_sessions = role_changes || disabling;
            let user = query_opt(
                conn,
                concat!(
                    "update users set role = coalesce(?2, role), \
                   disabled_at = case when ?3 is null then disabled_at when ?3 then coalesce(disabled_at, ?5) end, \
                   email_verified = coalesce(?4, email_verified), \
                   credential_version = credential_version + ?6, updated_at = ?5 \
                 where id = ?1 returning ",
                    user_columns!()
                ),
                params![
                    id.as_uuid(),
                    changes.role.map(|r| r.as_str()),
                    changes.disabled,
                    changes.email_verified,
                    millis(now),
                    ends_sessions
                ],
                user_record,
            )?;
            if ends_sessions {
                revoke_sessions(conn, id, None, now)?;
            }
            Ok(user.map(|r| r.user))
        })
        .await
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |conn| {
            keep_an_admin(conn, id)?;
            // Sessions and favorites go with the user by `on delete cascade`.
            if execute(conn, "delete from users where id = ?1", [id.as_uuid()])? == 0 {
                return Ok(false);
            }
            enqueue(conn, TaskKind::UserDeleted, id, None, now)?;
            Ok(true)
        })
        .await
    }

    async fn list_users(&self, after: Option<UserId>, limit: u32, guests: GuestFilter) -> Result<Vec<User>> {
        // A plain range (the nil UUID sorts first) keeps the scan on the index
        // at any depth; `?1 is null or …` would scan from the start.
        let sql = format!("select {} from users where id > ?1{} order by id limit ?2", user_columns!(), guests.sql());
        self.read(move |conn| {
            query_all(conn, &sql, params![after.map_or(uuid::Uuid::nil(), |a| a.as_uuid()), i64::from(limit)], |row| {
                user_record(row).map(|r| r.user)
            })
        })
    }

    async fn upgrade_guest(&self, upgrade: &GuestUpgrade) -> Result<Option<UserRecord>> {
        let upgrade = upgrade.clone();
        self.write(move |conn| {
            let id = upgrade.id;
            if let Some(email) = &upgrade.email {
                check_reserved(conn, email, id, upgrade.now)?;
            }
            let record = query_opt(
                conn,
                concat!(
                    "update users set username = ?2, email = ?3, email_verified = ?6, password_hash = ?4, \
                       role = 'user', updated_at = ?5 \
                     where id = ?1 and role = 'guest' returning ",
                    user_columns!()
                ),
                params![
                    id.as_uuid(),
                    upgrade.username.as_str(),
                    upgrade.email.as_ref().map(Email::as_str),
                    upgrade.password_hash,
                    millis(upgrade.now),
                    upgrade.email_verified
                ],
                user_record,
            )?;
            if record.is_some() {
                if let Some(identity) = &upgrade.identity
                    && !super::identities::insert_identity(conn, identity)?
                {
                    return Err(Error::IdentityInUse);
                }
                enqueue_mails(conn, id, &upgrade.mails, upgrade.now)?;
            }
            Ok(record)
        })
        .await
    }

    async fn merge_guest(&self, guest: UserId, into: UserId, now: DateTime<Utc>) -> Result<Option<u64>> {
        self.write(move |conn| {
            let is_guest = query_opt(
                conn,
                "select 1 as found from users where id = ?1 and role = 'guest'",
                [guest.as_uuid()],
                |row| col::<i64>(row, "found"),
            )?;
            if is_guest.is_none() || guest == into {
                return Ok(None);
            }
            let tracks = query_all(
                conn,
                "select track_id, created_at from favorites where user_id = ?1 order by created_at",
                [guest.as_uuid()],
                |row| Ok((col::<String>(row, "track_id")?, col::<i64>(row, "created_at")?)),
            )?;
            let mut moved = 0;
            for (track, added_at) in &tracks {
                let inserted = execute(
                    conn,
                    "insert into favorites (user_id, track_id, created_at) values (?1, ?2, ?3) \
                     on conflict (user_id, track_id) do nothing",
                    params![into.as_uuid(), track, added_at],
                )?;
                if inserted == 1 {
                    let track = crate::domain::TrackId::parse(track).map_err(Error::internal)?;
                    enqueue(conn, TaskKind::FavoriteAdded, into, Some(&track), now)?;
                    moved += 1;
                }
            }
            execute(conn, "delete from users where id = ?1 and role = 'guest'", [guest.as_uuid()])?;
            enqueue(conn, TaskKind::UserDeleted, guest, None, now)?;
            Ok(Some(moved))
        })
        .await
    }

    async fn delete_idle_guests(&self, idle_since: DateTime<Utc>, limit: u32, now: DateTime<Utc>) -> Result<u64> {
        self.write(move |conn| {
            let idle = query_all(
                conn,
                "select id from users u where role = 'guest' and created_at < ?1 \
                   and not exists (select 1 from sessions s where s.user_id = u.id and s.last_used_at >= ?1) \
                 order by created_at limit ?2",
                params![millis(idle_since), i64::from(limit)],
                |row| col::<uuid::Uuid>(row, "id"),
            )?;
            for id in &idle {
                // Sessions and favorites go with the guest by `on delete cascade`.
                execute(conn, "delete from users where id = ?1 and role = 'guest'", [id])?;
                enqueue(conn, TaskKind::UserDeleted, UserId::from_uuid(*id), None, now)?;
            }
            Ok(idle.len() as u64)
        })
        .await
    }

    async fn search_users(&self, prefix: &str, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // A prefix is a range on the lower(username) and email indexes. When
        // it matches few accounts, those ranges are read and sorted by id;
        // when it matches many, walking the id index and testing each row
        // finds a page sooner. SQLite's planner cannot tell the two apart
        // (it keeps no histograms), so a bounded count on the indexes decides.
        let upper = crate::store::rules::prefix_upper_bound(prefix);
        let after = after.map_or(uuid::Uuid::nil(), |a| a.as_uuid());
        self.read(|conn| {
            let matches = query_opt(
                conn,
                "select count(*) as n from (select 1 from users where lower(username) >= ?1 and lower(username) < ?2 \
                   union all select 1 from users where email >= ?1 and email < ?2 limit ?3)",
                params![prefix, upper, SEARCH_PLAN_SWITCH],
                |row| col::<i64>(row, "n"),
            )?
            .unwrap_or_default();
            if matches < SEARCH_PLAN_SWITCH {
                // Planned as a multi-index OR over the two ranges, then a sort.
                let sql = concat!(
                    "select ",
                    user_columns!(),
                    " from users \
                           where ((lower(username) >= ?1 and lower(username) < ?2) or (email >= ?1 and email < ?2)) \
                             and id > ?3 order by id limit ?4"
                );
                return query_all(conn, sql, params![prefix, upper, after, i64::from(limit)], |row| {
                    user_record(row).map(|r| r.user)
                });
            }
            // SQLite's LIKE ignores ASCII case (usernames are ASCII, emails
            // stored lower-cased), and on these BINARY-collated columns it
            // cannot use the prefix indexes: the walk stays on the id order.
            let sql = concat!(
                "select ",
                user_columns!(),
                " from users where id > ?1 \
                         and (username like ?2 escape '\\' or email like ?2 escape '\\') \
                       order by id limit ?3"
            );
            query_all(conn, sql, params![after, crate::store::rules::like_prefix(prefix), i64::from(limit)], |row| {
                user_record(row).map(|r| r.user)
            })
        })
    }
}

/// Inserts the account `record`, unless its address is reserved by an undo link.
pub(super) fn insert_user_row(conn: &Connection, record: &UserRecord) -> Result<()> {
    let u = &record.user;
    if let Some(email) = &u.email {
        check_reserved(conn, email, u.id, u.created_at)?;
    }
    execute(
        conn,
        "insert into users (id, username, email, password_hash, role, disabled_at, created_at, updated_at, \
         credential_version, email_verified, last_login_at, locale) \
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            u.id.as_uuid(),
            u.username.as_ref().map(Username::as_str),
            u.email.as_ref().map(Email::as_str),
            record.password_hash,
            u.role.as_str(),
            u.disabled_at.map(millis),
            millis(u.created_at),
            millis(u.updated_at),
            record.credential_version,
            u.email_verified,
            u.last_login_at.map(millis),
            u.locale.as_str(),
        ],
    )?;
    Ok(())
}

/// From this many matches of a search prefix (username and email together),
/// walking the id order finds a page sooner than reading and sorting the
/// matches; measured at 1,000,000 accounts, where the two cost the same near
/// 3,000 accounts matching by both name and email.
const SEARCH_PLAN_SWITCH: i64 = 6000;

/// Refuses a change that would leave no active admin, when `id` is the only
/// one. On the one writer connection, nothing changes in between.
fn keep_an_admin(conn: &Connection, id: UserId) -> Result<()> {
    let admins = query_all(conn, "select id from users where role = 'admin' and disabled_at is null", [], |row| {
        col::<uuid::Uuid>(row, "id")
    })?;
    if crate::store::rules::is_last_admin(&admins, id) {
        return Err(Error::LastAdmin);
    }
    Ok(())
}

/// Refuses `email` for `user` while another account's undo link reserves it.
fn check_reserved(conn: &Connection, email: &Email, user: UserId, now: DateTime<Utc>) -> Result<()> {
    let reserved = query_opt(
        conn,
        "select 1 as reserved from email_reverts where old_email = ?1 and user_id <> ?2 and expires_at > ?3 limit 1",
        params![email.as_str(), user.as_uuid(), millis(now)],
        |row| col::<i64>(row, "reserved"),
    )?;
    match reserved {
        Some(_) => Err(Error::Conflict(ConflictField::Email)),
        None => Ok(()),
    }
}
