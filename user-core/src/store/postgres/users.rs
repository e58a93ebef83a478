//! [`UserStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use super::rows::{get, map_err, user_record};
use super::sessions::revoke_sessions;
use super::tasks::enqueue;
use super::tokens::{enqueue_mails, void_stale_verification, void_tokens};
use crate::domain::{Email, Role, UserId, Username};
use crate::error::{ConflictField, Error, Result};
use crate::store::{
    AccountChanges, GuestFilter, GuestUpgrade, LockRule, LoginAttempt, NewMail, TaskKind, TokenPurpose, User,
    UserChanges, UserKey, UserRecord, UserStore,
};

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, record: &UserRecord, mails: &[NewMail]) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_user_row(&mut tx, record).await?;
        enqueue_mails(&mut tx, record.user.id, mails, record.user.created_at).await?;
        tx.commit().await.map_err(map_err)
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
        if let Some(email) = &changes.email {
            check_reserved(&mut tx, email, id, now).await?;
        }
        let row = sqlx::query(
            "update users set \
               username = coalesce($2, username), \
               email = coalesce($3, email), \
               email_verified = email_verified and coalesce($3, email) = email, \
               password_hash = coalesce($4, password_hash), \
               credential_version = credential_version + case when $4 is null then 0 else 1 end, \
               locale = coalesce($7, locale), \
               updated_at = $5 \
             where id = $1 and ($6::bigint is null or credential_version = $6) returning *",
        )
        .bind(id.as_uuid())
        .bind(changes.username.as_ref().map(|u| u.as_str()))
        .bind(changes.email.as_ref().map(|e| e.as_str()))
        .bind(changes.password_hash.as_deref())
        .bind(now)
        .bind(changes.expected_credential_version)
        .bind(changes.locale.map(|l| l.as_str()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let record = user_record(&row)?;
        if changes.password_hash.is_some() {
            revoke_sessions(&mut tx, id, changes.keep_session, now).await?;
            void_tokens(&mut tx, id, TokenPurpose::Reset).await?;
        }
        if changes.email.is_some() {
            void_stale_verification(&mut tx, id).await?;
        }
        if let Some(revert) = &changes.revert {
            sqlx::query(
                "insert into email_reverts (digest, user_id, old_email, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(revert.digest.as_slice())
            .bind(id.as_uuid())
            .bind(revert.old_email.as_str())
            .bind(now)
            .bind(revert.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        enqueue_mails(&mut tx, id, &changes.mails, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(record))
    }

    async fn reserve_login_attempt(
        &self,
        id: UserId,
        device: Option<[u8; 32]>,
        now: DateTime<Utc>,
        lock_until: LockRule,
    ) -> Result<Option<LoginAttempt>> {
        let mut tx = self.begin().await?;
        if let Some(digest) = device {
            // The device cookie's row lock queues concurrent guesses from
            // that browser as the account's row does for the others.
            let count: Option<i32> = sqlx::query_scalar(
                "update device_cookies set failed_logins = failed_logins + 1 \
                 where digest = $1 and user_id = $2 and expires_at > $3 \
                   and (locked_until is null or locked_until <= $3) returning failed_logins",
            )
            .bind(digest.as_slice())
            .bind(id.as_uuid())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if let Some(count) = count {
                let failures = count as u32;
                if let Some(until) = lock_until(failures) {
                    sqlx::query(
                        "update device_cookies set locked_until = greatest(locked_until, $2) where digest = $1",
                    )
                    .bind(digest.as_slice())
                    .bind(until)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                return Ok(Some(LoginAttempt::Allowed { failures }));
            }
            let locked: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
                "select locked_until from device_cookies where digest = $1 and user_id = $2 and expires_at > $3",
            )
            .bind(digest.as_slice())
            .bind(id.as_uuid())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if locked.is_some() {
                return Ok(crate::store::rules::refused_attempt(locked, now));
            }
        }
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
            return Ok(crate::store::rules::refused_attempt(locked, now));
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
        let mut tx = self.begin().await?;
        sqlx::query("update users set failed_logins = 0, locked_until = null where id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("update device_cookies set failed_logins = 0, locked_until = null where user_id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn remember_device(
        &self,
        user: UserId,
        presented: Option<[u8; 32]>,
        fresh: [u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        if let Some(digest) = presented {
            let kept = sqlx::query(
                "update device_cookies set failed_logins = 0, locked_until = null \
                 where digest = $1 and user_id = $2 and expires_at > $3",
            )
            .bind(digest.as_slice())
            .bind(user.as_uuid())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            if kept.rows_affected() == 1 {
                return Ok(false);
            }
        }
        sqlx::query("insert into device_cookies (digest, user_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(fresh.as_slice())
            .bind(user.as_uuid())
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(true)
    }

    async fn change_account(&self, id: UserId, changes: &AccountChanges, now: DateTime<Utc>) -> Result<Option<User>> {
        let mut tx = self.begin().await?;
        // Admin rows are locked before the target's (keep_an_admin's order),
        // whenever the change could take an admin away.
        if changes.role == Some(Role::User) || changes.disabled == Some(true) {
            keep_an_admin(&mut tx, id).await?;
        }
        let before = sqlx::query("select * from users where id = $1 for update")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(before) = before.as_ref().map(user_record).transpose()? else { return Ok(None) };
        let before = before.user;
        let ends_sessions = changes.role.is_some_and(|role| role != before.role)
            || (changes.disabled == Some(true) && before.disabled_at.is_none());
        let row = sqlx::query(
            "update users set role = coalesce($2, role), \
               disabled_at = case when $3::boolean is null then disabled_at when $3 then coalesce(disabled_at, $5) end, \
               email_verified = coalesce($4, email_verified), \
               credential_version = credential_version + case when $6 then 1 else 0 end, updated_at = $5 \
             where id = $1 returning *",
        )
        .bind(id.as_uuid())
        .bind(changes.role.map(|r| r.as_str()))
        .bind(changes.disabled)
        .bind(changes.email_verified)
        .bind(now)
        .bind(ends_sessions)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let user = user_record(&row)?.user;
        if ends_sessions {
            revoke_sessions(&mut tx, id, None, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(user))
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        keep_an_admin(&mut tx, id).await?;
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

    async fn list_users(&self, after: Option<UserId>, limit: u32, guests: GuestFilter) -> Result<Vec<User>> {
        // A plain range (the nil UUID sorts first) keeps the scan on the index at any depth.
        let sql = format!("select * from users where id > $1{} order by id limit $2", guests.sql());
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.map_or(Uuid::nil(), |a| a.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| user_record(r).map(|r| r.user)).collect()
    }

    async fn upgrade_guest(&self, upgrade: &GuestUpgrade) -> Result<Option<UserRecord>> {
        let mut tx = self.begin().await?;
        if let Some(email) = &upgrade.email {
            check_reserved(&mut tx, email, upgrade.id, upgrade.now).await?;
        }
        let row = sqlx::query(
            "update users set username = $2, email = $3, email_verified = $6, password_hash = $4, \
               role = 'user', updated_at = $5 \
             where id = $1 and role = 'guest' returning *",
        )
        .bind(upgrade.id.as_uuid())
        .bind(upgrade.username.as_str())
        .bind(upgrade.email.as_ref().map(Email::as_str))
        .bind(&upgrade.password_hash)
        .bind(upgrade.now)
        .bind(upgrade.email_verified)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        if let Some(identity) = &upgrade.identity
            && !super::identities::insert_identity(&mut tx, identity).await?
        {
            return Err(Error::IdentityInUse);
        }
        enqueue_mails(&mut tx, upgrade.id, &upgrade.mails, upgrade.now).await?;
        tx.commit().await.map_err(map_err)?;
        user_record(&row).map(Some)
    }

    async fn merge_guest(&self, guest: UserId, into: UserId, now: DateTime<Utc>) -> Result<Option<u64>> {
        if guest == into {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        // The guest's row, locked: two merges (or a merge and an upgrade) of
        // one guest cannot both go on.
        let locked: Option<i32> = sqlx::query_scalar("select 1 from users where id = $1 and role = 'guest' for update")
            .bind(guest.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if locked.is_none() {
            return Ok(None);
        }
        let moved: Vec<String> = sqlx::query_scalar(
            "insert into favorites (user_id, track_id, created_at) \
               select $2, track_id, created_at from favorites where user_id = $1 order by created_at \
             on conflict (user_id, track_id) do nothing returning track_id",
        )
        .bind(guest.as_uuid())
        .bind(into.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for track in &moved {
            let track = crate::domain::TrackId::parse(track).map_err(Error::internal)?;
            enqueue(&mut tx, TaskKind::FavoriteAdded, into, Some(&track), now).await?;
        }
        sqlx::query("delete from users where id = $1")
            .bind(guest.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        enqueue(&mut tx, TaskKind::UserDeleted, guest, None, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(moved.len() as u64))
    }

    async fn delete_idle_guests(&self, idle_since: DateTime<Utc>, limit: u32, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin().await?;
        // `skip locked`: replicas running the pass at once take different guests.
        let deleted: Vec<Uuid> = sqlx::query_scalar(
            "delete from users where id in ( \
               select id from users u where role = 'guest' and created_at < $1 \
                 and not exists (select 1 from sessions s where s.user_id = u.id and s.last_used_at >= $1) \
               order by created_at limit $2 for update skip locked) \
             and role = 'guest' returning id",
        )
        .bind(idle_since)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for id in &deleted {
            enqueue(&mut tx, TaskKind::UserDeleted, UserId::from_uuid(*id), None, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(deleted.len() as u64)
    }

    async fn search_users(&self, prefix: &str, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // A prefix is a range on the text_pattern_ops indexes. When it
        // matches few accounts (a name or an address an operator types),
        // their ids are collected and sorted; when many, walking the id order
        // finds a page sooner. The planner takes matches to be spread evenly
        // over the id order, which they are not (names made together sit
        // together), so one statement collects a bounded number of ids and
        // pages through them only when none was left out.
        let after = after.map_or(Uuid::nil(), |a| a.as_uuid());
        if let Some(users) = self.search_collected(prefix, after, limit).await? {
            return Ok(users);
        }
        // `|| ''` keeps the prefix indexes out: for this many matches,
        // walking the id order finds a page soonest.
        let rows = sqlx::query(
            "select * from users where ((lower(username) || '') like $1 or (email || '') like $1) and id > $2 \
             order by id limit $3",
        )
        .bind(crate::store::rules::like_prefix(prefix))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(|r| user_record(r).map(|r| r.user)).collect()
    }
}

impl PostgresStore {
    /// A page of the accounts whose username or email starts with `prefix`,
    /// or `None` when either index holds `SEARCH_COLLECT_AT_MOST` or more.
    /// The range is written with the pattern operators (`~>=~`, `~<~`), which
    /// the text_pattern_ops indexes serve in any plan (`like $1` needs the
    /// value at planning time); each range is read in its index's order, so
    /// only an index scan can serve the bound (a sequential scan, which the
    /// planner may pick for a broad prefix, starts anywhere in the table).
    async fn search_collected(&self, prefix: &str, after: Uuid, limit: u32) -> Result<Option<Vec<User>>> {
        let rows = sqlx::query(
            "with u as materialized (select id from users \
                   where lower(username) ~>=~ $1 and lower(username) ~<~ $2 order by lower(username) using ~<~ limit $5), \
                 e as materialized (select id from users \
                   where email ~>=~ $1 and email ~<~ $2 order by email using ~<~ limit $5), \
                 verdict as (select (select count(*) from u) < $5 and (select count(*) from e) < $5 as complete) \
             select v.complete, p.* from verdict v left join lateral ( \
               select * from users where v.complete and id in ( \
                 select id from u where id > $3 union select id from e where id > $3 order by id limit $4)) p on true \
             order by p.id",
        )
        .bind(prefix)
        .bind(crate::store::rules::prefix_upper_bound(prefix))
        .bind(after)
        .bind(i64::from(limit))
        .bind(SEARCH_COLLECT_AT_MOST)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        if !rows.first().map(|r| get::<bool>(r, "complete")).transpose()?.unwrap_or(true) {
            return Ok(None);
        }
        // No match at all is one row with only the verdict.
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            if get::<Option<Uuid>>(row, "id")?.is_some() {
                users.push(user_record(row)?.user);
            }
        }
        Ok(Some(users))
    }
}

/// From this many matches of a search prefix in either index (username or
/// email), walking the id order finds a page sooner than collecting and
/// sorting the matches; the two cost the same near here at 1,000,000
/// accounts.
const SEARCH_COLLECT_AT_MOST: i64 = 3000;

/// Refuses a change that would leave no active admin, when `id` is the only
/// one. Locks every active admin's row first, in id order and before any
/// other row, so two admins demoting each other queue instead of both
/// passing (or deadlocking): the second re-reads the first's change once it
/// commits and finds itself the last.
async fn keep_an_admin(tx: &mut Transaction<'_, Postgres>, id: UserId) -> Result<()> {
    let admins: Vec<Uuid> =
        sqlx::query_scalar("select id from users where role = 'admin' and disabled_at is null order by id for update")
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
    if crate::store::rules::is_last_admin(&admins, id) {
        return Err(Error::LastAdmin);
    }
    Ok(())
}

/// Refuses `email` for `user` while another account's undo link reserves it.
/// Inserts the account `record`, unless its address is reserved by an undo link.
pub(super) async fn insert_user_row(tx: &mut Transaction<'_, Postgres>, record: &UserRecord) -> Result<()> {
    let u = &record.user;
    if let Some(email) = &u.email {
        check_reserved(tx, email, u.id, u.created_at).await?;
    }
    sqlx::query(
        "insert into users (id, username, email, password_hash, role, disabled_at, created_at, updated_at, \
         credential_version, email_verified, last_login_at, locale) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(u.id.as_uuid())
    .bind(u.username.as_ref().map(Username::as_str))
    .bind(u.email.as_ref().map(Email::as_str))
    .bind(&record.password_hash)
    .bind(u.role.as_str())
    .bind(u.disabled_at)
    .bind(u.created_at)
    .bind(u.updated_at)
    .bind(record.credential_version)
    .bind(u.email_verified)
    .bind(u.last_login_at)
    .bind(u.locale.as_str())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn check_reserved(
    tx: &mut Transaction<'_, Postgres>,
    email: &Email,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<()> {
    let reserved: Option<i32> = sqlx::query_scalar(
        "select 1 from email_reverts where old_email = $1 and user_id <> $2 and expires_at > $3 limit 1",
    )
    .bind(email.as_str())
    .bind(user.as_uuid())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    match reserved {
        Some(_) => Err(Error::Conflict(ConflictField::Email)),
        None => Ok(()),
    }
}
