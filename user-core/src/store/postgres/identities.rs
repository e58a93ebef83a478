//! [`IdentityStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Transaction};

use super::PostgresStore;
use super::rows::{get, map_err};
use super::sessions::revoke_sessions;
use super::tokens::enqueue_mails;
use super::users::insert_user_row;
use crate::domain::{Email, UserId};
use crate::error::{Error, Result};
use crate::store::rules::unlink_identity_statement;
use crate::store::{IdentityRecord, IdentityStore, NewMail, Unlinked, UserRecord};

fn identity(row: &PgRow) -> Result<IdentityRecord> {
    Ok(IdentityRecord {
        issuer: get(row, "issuer")?,
        subject: get(row, "subject")?,
        provider: get(row, "provider")?,
        user: UserId::from_uuid(get(row, "user_id")?),
        email: get::<Option<String>>(row, "email")?.map(TryInto::try_into).transpose().map_err(Error::internal)?,
        email_verified: get(row, "email_verified")?,
        linked_at: get(row, "linked_at")?,
    })
}

/// Inserts `i`; `false` when its key or its account's provider is taken.
pub(super) async fn insert_identity(tx: &mut Transaction<'_, Postgres>, i: &IdentityRecord) -> Result<bool> {
    let inserted = sqlx::query(
        "insert into identities (issuer, subject, provider, user_id, email, email_verified, linked_at) \
         values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
    )
    .bind(&i.issuer)
    .bind(&i.subject)
    .bind(&i.provider)
    .bind(i.user.as_uuid())
    .bind(i.email.as_ref().map(Email::as_str))
    .bind(i.email_verified)
    .bind(i.linked_at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(inserted.rows_affected() == 1)
}

#[async_trait]
impl IdentityStore for PostgresStore {
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRecord>> {
        let row = sqlx::query("select * from identities where issuer = $1 and subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(identity).transpose()
    }

    async fn identities(&self, user: UserId) -> Result<Vec<IdentityRecord>> {
        let rows = sqlx::query("select * from identities where user_id = $1 order by linked_at")
            .bind(user.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(identity).collect()
    }

    async fn link_identity(&self, i: &IdentityRecord, mails: &[NewMail]) -> Result<bool> {
        let mut tx = self.begin().await?;
        if !insert_identity(&mut tx, i).await? {
            return Ok(false);
        }
        enqueue_mails(&mut tx, i.user, mails, i.linked_at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn insert_provider_account(&self, record: &UserRecord, i: &IdentityRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_user_row(&mut tx, record).await?;
        if !insert_identity(&mut tx, i).await? {
            return Err(Error::IdentityInUse);
        }
        tx.commit().await.map_err(map_err)
    }

    async fn claim_unverified_account(&self, i: &IdentityRecord, email: &Email, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let id = i.user.as_uuid();
        let claimed = sqlx::query(
            "update users set email_verified = true, password_hash = null, \
               credential_version = credential_version + 1, updated_at = $3 \
             where id = $1 and email = $2 and not email_verified",
        )
        .bind(id)
        .bind(email.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        for table in ["passkeys", "totp_factors", "recovery_codes", "identities"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("delete from {table} where user_id = $1")))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        revoke_sessions(&mut tx, i.user, None, now).await?;
        if !insert_identity(&mut tx, i).await? {
            // Linked elsewhere meanwhile: dropping the transaction undoes it all.
            return Ok(false);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn unlink_identity(
        &self,
        user: UserId,
        provider: &str,
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<Unlinked> {
        let mut tx = self.begin().await?;
        // The account's row lock orders every removal of a way to sign in:
        // two unlinks at once cannot each count on the other's identity.
        sqlx::query("select 1 from users where id = $1 for update")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let removed = sqlx::query(sqlx::AssertSqlSafe(unlink_identity_statement('$')))
            .bind(user.as_uuid())
            .bind(provider)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if removed.rows_affected() == 1 {
            enqueue_mails(&mut tx, user, mails, now).await?;
            tx.commit().await.map_err(map_err)?;
            return Ok(Unlinked::Removed);
        }
        let exists: Option<i32> = sqlx::query_scalar("select 1 from identities where user_id = $1 and provider = $2")
            .bind(user.as_uuid())
            .bind(provider)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(if exists.is_some() { Unlinked::LastSignInMethod } else { Unlinked::NotFound })
    }
}
