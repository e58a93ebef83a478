//! [`TokenStore`] on SQLite: single-use mail tokens (`account_tokens`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{col, execute, millis, query_opt};
use super::sessions::revoke_sessions;
use super::tasks::enqueue_with;
use crate::domain::UserId;
use crate::error::Result;
use crate::store::rules::{EXPIRING, purge_statement, stale_identities_statement};
use crate::store::{DEVICE_GRANT_KEPT, EmailRevert, NewMail, TokenMail, TokenOwner, TokenPurpose, TokenStore};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn send_token_mail(
        &self,
        owner: TokenOwner<'_>,
        mail: &NewMail,
        not_before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<TokenMail> {
        let (id, email) = match owner {
            TokenOwner::Id(id) => (Some(id.as_uuid()), None),
            TokenOwner::Email(email) => (None, Some(email.as_str().to_owned())),
        };
        let mail = mail.clone();
        self.write(move |conn| {
            let user =
                query_opt(conn, "select id from users where id = ?1 or email = ?2", params![id, email], |row| {
                    col::<uuid::Uuid>(row, "id")
                })?;
            let (user, known) = match (user, email.is_some()) {
                (Some(user), _) => (UserId::from_uuid(user), true),
                // An unknown address gets the same statements as a known
                // one, for an id no account has: the token insert finds no
                // account and writes nothing, the task is dropped by the
                // relay. So the request costs the same either way.
                (None, true) => (UserId::new(), false),
                (None, false) => return Ok(TokenMail::NoAccount),
            };
            if let (Some(since), Some(token)) = (not_before, &mail.token) {
                let recent = query_opt(
                    conn,
                    "select 1 as recent from account_tokens where user_id = ?1 and purpose = ?2 and created_at > ?3",
                    params![user.as_uuid(), token.purpose.as_str(), millis(since)],
                    |row| col::<i64>(row, "recent"),
                )?;
                if recent.is_some() {
                    return Ok(TokenMail::TooSoon);
                }
            }
            enqueue_mails(conn, user, std::slice::from_ref(&mail), now)?;
            Ok(if known { TokenMail::Sent(user) } else { TokenMail::NoAccount })
        })
        .await
    }

    async fn verify_email(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Result<Option<UserId>> {
        let digest = *digest;
        self.write(move |conn| {
            // The token goes whatever happens next: used once, or void.
            let Some((user, email)) = take_token(conn, &digest, TokenPurpose::Verify, now)? else { return Ok(None) };
            let verified = execute(
                conn,
                "update users set email_verified = 1, updated_at = ?3 where id = ?1 and email = ?2",
                params![user.as_uuid(), email, millis(now)],
            )?;
            if verified == 1 {
                execute(conn, &stale_identities_statement('?'), params![user.as_uuid(), email])?;
            }
            Ok((verified == 1).then_some(user))
        })
        .await
    }

    async fn reset_password(
        &self,
        digest: &[u8; 32],
        password_hash: &str,
        mail: &NewMail,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>> {
        let digest = *digest;
        let password_hash = password_hash.to_owned();
        let mail = mail.clone();
        self.write(move |conn| {
            let Some((user, email)) = take_token(conn, &digest, TokenPurpose::Reset, now)? else { return Ok(None) };
            execute(conn, &stale_identities_statement('?'), params![user.as_uuid(), email])?;
            execute(
                conn,
                "update users set password_hash = ?2, credential_version = credential_version + 1, \
                   failed_logins = 0, locked_until = null, updated_at = ?3 where id = ?1",
                params![user.as_uuid(), password_hash, millis(now)],
            )?;
            void_tokens(conn, user, TokenPurpose::Reset)?;
            revoke_sessions(conn, user, None, now)?;
            enqueue_mails(conn, user, std::slice::from_ref(&mail), now)?;
            Ok(Some(user))
        })
        .await
    }

    async fn revert_email(&self, revert: &EmailRevert, now: DateTime<Utc>) -> Result<Option<UserId>> {
        let revert = revert.clone();
        self.write(move |conn| {
            let taken = query_opt(
                conn,
                "delete from email_reverts where digest = ?1 and expires_at > ?2 \
                 returning user_id, old_email, created_at",
                params![revert.digest.as_slice(), millis(now)],
                |row| {
                    let user = UserId::from_uuid(col(row, "user_id")?);
                    Ok((user, col::<String>(row, "old_email")?, col::<i64>(row, "created_at")?))
                },
            )?;
            let Some((user, old_email, changed_at)) = taken else { return Ok(None) };
            execute(conn, "delete from email_reverts where user_id = ?1", params![user.as_uuid()])?;
            execute(
                conn,
                "update users set email = ?2, email_verified = 1, password_hash = ?3, \
                   credential_version = credential_version + 1, failed_logins = 0, locked_until = null, \
                   updated_at = ?4 where id = ?1",
                params![user.as_uuid(), old_email, revert.unusable_password_hash, millis(now)],
            )?;
            void_tokens(conn, user, TokenPurpose::Verify)?;
            void_tokens(conn, user, TokenPurpose::Reset)?;
            revoke_sessions(conn, user, None, now)?;
            // A factor the taker may have added would lock the owner out
            // after the reset: every second factor goes; the owner adds it again.
            execute(conn, "delete from totp_factors where user_id = ?1", params![user.as_uuid()])?;
            execute(conn, "delete from recovery_codes where user_id = ?1", params![user.as_uuid()])?;
            // Passkeys added since the address changed are the taker's; older ones the owner's.
            execute(
                conn,
                "delete from passkeys where user_id = ?1 and created_at >= ?2",
                params![user.as_uuid(), changed_at],
            )?;
            let reset_mail = revert.reset_mail.for_address(&old_email)?;
            enqueue_mails(conn, user, std::slice::from_ref(&reset_mail), now)?;
            Ok(Some(user))
        })
        .await
    }

    async fn purge_expired_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.write(move |conn| {
            let purge = |table, before: DateTime<Utc>| {
                execute(conn, &purge_statement(table, '?'), params![millis(before), i64::from(limit)])
            };
            let mut purged = purge("device_grants", now - DEVICE_GRANT_KEPT)?;
            for table in EXPIRING {
                purged += purge(table, now)?;
            }
            Ok(purged)
        })
        .await
    }
}

/// Deletes a live token of `purpose`; returns its account and address.
fn take_token(
    conn: &Connection,
    digest: &[u8; 32],
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<(UserId, String)>> {
    query_opt(
        conn,
        "delete from account_tokens where digest = ?1 and purpose = ?2 and expires_at > ?3 returning user_id, email",
        params![digest.as_slice(), purpose.as_str(), millis(now)],
        |row| Ok((UserId::from_uuid(col(row, "user_id")?), col::<String>(row, "email")?)),
    )
}

/// Stores each mail's token (voiding the user's older ones of its purpose)
/// and enqueues the mail, on the caller's transaction.
pub(super) fn enqueue_mails(conn: &Connection, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<()> {
    for mail in mails {
        if let Some(token) = &mail.token {
            void_tokens(conn, user, token.purpose)?;
            execute(
                conn,
                "insert into account_tokens (digest, user_id, purpose, email, created_at, expires_at) \
                 select ?1, id, ?3, ?4, ?5, ?6 from users where id = ?2",
                params![
                    token.digest.as_slice(),
                    user.as_uuid(),
                    token.purpose.as_str(),
                    token.email.as_str(),
                    millis(now),
                    millis(token.expires_at)
                ],
            )?;
        }
        enqueue_with(conn, mail.kind, user, None, Some(&mail.payload), now)?;
    }
    Ok(())
}

/// Voids verification tokens sent to an address the account no longer has.
pub(super) fn void_stale_verification(conn: &Connection, user: UserId) -> Result<()> {
    execute(
        conn,
        "delete from account_tokens where user_id = ?1 and purpose = 'verify' \
           and email <> (select email from users where id = ?1)",
        params![user.as_uuid()],
    )?;
    Ok(())
}

pub(super) fn void_tokens(conn: &Connection, user: UserId, purpose: TokenPurpose) -> Result<()> {
    execute(
        conn,
        "delete from account_tokens where user_id = ?1 and purpose = ?2",
        params![user.as_uuid(), purpose.as_str()],
    )?;
    Ok(())
}
