//! [`TokenStore`] on PostgreSQL: single-use mail tokens (`account_tokens`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row as _, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use super::rows::map_err;
use super::sessions::revoke_sessions;
use super::tasks::enqueue_with;
use crate::domain::UserId;
use crate::error::Result;
use crate::store::rules::{EXPIRING, purge_statement, stale_identities_statement};
use crate::store::{DEVICE_GRANT_KEPT, EmailRevert, NewMail, TokenMail, TokenOwner, TokenPurpose, TokenStore};

#[async_trait]
impl TokenStore for PostgresStore {
    async fn send_token_mail(
        &self,
        owner: TokenOwner<'_>,
        mail: &NewMail,
        not_before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<TokenMail> {
        let (id, email) = match owner {
            TokenOwner::Id(id) => (Some(id.as_uuid()), None),
            TokenOwner::Email(email) => (None, Some(email.as_str())),
        };
        let mut tx = self.begin().await?;
        // The row lock queues concurrent requests for one account, so the
        // interval check below sees the other's token.
        let user: Option<Uuid> = sqlx::query_scalar("select id from users where id = $1 or email = $2 for update")
            .bind(id)
            .bind(email)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let (user, known) = match (user, email.is_some()) {
            (Some(user), _) => (UserId::from_uuid(user), true),
            // An unknown address gets the same statements as a known one,
            // for an id no account has: the token insert finds no account
            // and writes nothing, the task is dropped by the relay. So the
            // request costs the same either way.
            (None, true) => (UserId::new(), false),
            (None, false) => return Ok(TokenMail::NoAccount),
        };
        if let (Some(since), Some(token)) = (not_before, &mail.token) {
            let recent: Option<i32> = sqlx::query_scalar(
                "select 1 from account_tokens where user_id = $1 and purpose = $2 and created_at > $3 limit 1",
            )
            .bind(user.as_uuid())
            .bind(token.purpose.as_str())
            .bind(since)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if recent.is_some() {
                return Ok(TokenMail::TooSoon);
            }
        }
        enqueue_mails(&mut tx, user, std::slice::from_ref(mail), now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(if known { TokenMail::Sent(user) } else { TokenMail::NoAccount })
    }

    async fn verify_email(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Result<Option<UserId>> {
        let mut tx = self.begin().await?;
        // The token goes whatever happens next: used once, or void.
        let Some((user, email)) = take_token(&mut tx, digest, TokenPurpose::Verify, now).await? else {
            return Ok(None);
        };
        let verified =
            sqlx::query("update users set email_verified = true, updated_at = $3 where id = $1 and email = $2")
                .bind(user.as_uuid())
                .bind(&email)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        if verified.rows_affected() == 1 {
            remove_stale_identities(&mut tx, user, &email).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok((verified.rows_affected() == 1).then_some(user))
    }

    async fn reset_password(
        &self,
        digest: &[u8; 32],
        password_hash: &str,
        mail: &NewMail,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>> {
        let mut tx = self.begin().await?;
        let Some((user, email)) = take_token(&mut tx, digest, TokenPurpose::Reset, now).await? else { return Ok(None) };
        remove_stale_identities(&mut tx, user, &email).await?;
        sqlx::query(
            "update users set password_hash = $2, credential_version = credential_version + 1, \
               failed_logins = 0, locked_until = null, updated_at = $3 where id = $1",
        )
        .bind(user.as_uuid())
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        void_tokens(&mut tx, user, TokenPurpose::Reset).await?;
        revoke_sessions(&mut tx, user, None, now).await?;
        enqueue_mails(&mut tx, user, std::slice::from_ref(mail), now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(user))
    }

    async fn revert_email(&self, revert: &EmailRevert, now: DateTime<Utc>) -> Result<Option<UserId>> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "delete from email_reverts where digest = $1 and expires_at > $2 returning user_id, old_email, created_at",
        )
        .bind(revert.digest.as_slice())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = taken else { return Ok(None) };
        let user = UserId::from_uuid(row.try_get::<Uuid, _>("user_id").map_err(crate::Error::internal)?);
        let old_email: String = row.try_get("old_email").map_err(crate::Error::internal)?;
        let changed_at: DateTime<Utc> = row.try_get("created_at").map_err(crate::Error::internal)?;
        sqlx::query("delete from email_reverts where user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "update users set email = $2, email_verified = true, password_hash = $3, \
               credential_version = credential_version + 1, failed_logins = 0, locked_until = null, \
               updated_at = $4 where id = $1",
        )
        .bind(user.as_uuid())
        .bind(&old_email)
        .bind(&revert.unusable_password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        void_tokens(&mut tx, user, TokenPurpose::Verify).await?;
        void_tokens(&mut tx, user, TokenPurpose::Reset).await?;
        revoke_sessions(&mut tx, user, None, now).await?;
        // A factor the taker may have added would lock the owner out after
        // the reset: every second factor goes; the owner adds it again.
        for table in ["totp_factors", "recovery_codes"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("delete from {table} where user_id = $1")))
                .bind(user.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        // Passkeys added since the address changed are the taker's; older ones the owner's.
        sqlx::query("delete from passkeys where user_id = $1 and created_at >= $2")
            .bind(user.as_uuid())
            .bind(changed_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let reset_mail = revert.reset_mail.for_address(&old_email)?;
        enqueue_mails(&mut tx, user, std::slice::from_ref(&reset_mail), now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(user))
    }

    async fn purge_expired_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64> {
        let purge = |table, before: DateTime<Utc>| async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(purge_statement(table, '$')))
                .bind(before)
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            Ok::<_, crate::Error>(done.rows_affected())
        };
        let mut purged = purge("device_grants", now - DEVICE_GRANT_KEPT).await?;
        for table in EXPIRING {
            purged += purge(table, now).await?;
        }
        Ok(purged)
    }
}

/// Deletes a live token of `purpose`; returns its account and address.
async fn take_token(
    tx: &mut Transaction<'_, Postgres>,
    digest: &[u8; 32],
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<(UserId, String)>> {
    let row = sqlx::query(
        "delete from account_tokens where digest = $1 and purpose = $2 and expires_at > $3 returning user_id, email",
    )
    .bind(digest.as_slice())
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    row.map(|r| Ok((UserId::from_uuid(r.try_get("user_id").map_err(map_err)?), r.try_get("email").map_err(map_err)?)))
        .transpose()
}

/// Stores each mail's token (voiding the user's older ones of its purpose)
/// and enqueues the mail, on the caller's transaction.
pub(super) async fn enqueue_mails(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    mails: &[NewMail],
    now: DateTime<Utc>,
) -> Result<()> {
    for mail in mails {
        if let Some(token) = &mail.token {
            void_tokens(tx, user, token.purpose).await?;
            sqlx::query(
                "insert into account_tokens (digest, user_id, purpose, email, created_at, expires_at) \
                 select $1, id, $3, $4, $5, $6 from users where id = $2",
            )
            .bind(token.digest.as_slice())
            .bind(user.as_uuid())
            .bind(token.purpose.as_str())
            .bind(token.email.as_str())
            .bind(now)
            .bind(token.expires_at)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        }
        enqueue_with(tx, mail.kind, user, None, Some(&mail.payload), now).await?;
    }
    Ok(())
}

/// Voids verification tokens sent to an address the account no longer has.
pub(super) async fn void_stale_verification(tx: &mut Transaction<'_, Postgres>, user: UserId) -> Result<()> {
    sqlx::query(
        "delete from account_tokens where user_id = $1 and purpose = 'verify' \
           and email <> (select email from users where id = $1)",
    )
    .bind(user.as_uuid())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn void_tokens(tx: &mut Transaction<'_, Postgres>, user: UserId, purpose: TokenPurpose) -> Result<()> {
    sqlx::query("delete from account_tokens where user_id = $1 and purpose = $2")
        .bind(user.as_uuid())
        .bind(purpose.as_str())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// See [`stale_identities_statement`].
async fn remove_stale_identities(tx: &mut Transaction<'_, Postgres>, user: UserId, email: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(stale_identities_statement('$')))
        .bind(user.as_uuid())
        .bind(email)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}
