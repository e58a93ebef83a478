//! [`FactorStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::PostgresStore;
use super::rows::{get, map_err};
use super::sessions::insert_session;
use super::tokens::enqueue_mails;
use crate::domain::{Amr, UserId, Username};
use crate::error::{Error, Result};
use crate::store::rules::admins_without_second_factor_statement;
use crate::store::{FactorStore, MfaChallenge, NewMail, NewMfaChallenge, NewSession, TotpFactor};

#[async_trait]
impl FactorStore for PostgresStore {
    async fn start_totp(&self, user: UserId, sealed: &str, now: DateTime<Utc>) -> Result<bool> {
        // Inserted, or a pending one replaced; a confirmed one stays.
        let changed = sqlx::query(
            "insert into totp_factors (user_id, secret, started_at) select id, $2, $3 from users where id = $1 \
             on conflict (user_id) do update set secret = excluded.secret, started_at = excluded.started_at, \
               last_step = null \
             where totp_factors.confirmed_at is null",
        )
        .bind(user.as_uuid())
        .bind(sealed)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn totp(&self, user: UserId) -> Result<Option<TotpFactor>> {
        let row =
            sqlx::query("select secret, started_at, confirmed_at, last_step from totp_factors where user_id = $1")
                .bind(user.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|row| {
            Ok(TotpFactor {
                sealed_secret: get(&row, "secret")?,
                started_at: get(&row, "started_at")?,
                confirmed_at: get(&row, "confirmed_at")?,
                last_step: get(&row, "last_step")?,
            })
        })
        .transpose()
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        started_at: DateTime<Utc>,
        pending_after: DateTime<Utc>,
        step: i64,
        codes: &[[u8; 32]],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let confirmed = sqlx::query(
            "update totp_factors set confirmed_at = $4, last_step = $5 \
             where user_id = $1 and confirmed_at is null and started_at = $2 and started_at > $3",
        )
        .bind(user.as_uuid())
        .bind(started_at)
        .bind(pending_after)
        .bind(now)
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if confirmed == 0 {
            return Ok(false);
        }
        install_codes(&mut tx, user, codes, now).await?;
        enqueue_mails(&mut tx, user, mails, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn accept_totp_step(&self, user: UserId, step: i64, resealed: Option<&str>) -> Result<bool> {
        let accepted = sqlx::query(
            "update totp_factors set last_step = $2, secret = coalesce($3, secret) \
             where user_id = $1 and confirmed_at is not null and (last_step is null or last_step < $2)",
        )
        .bind(user.as_uuid())
        .bind(step)
        .bind(resealed)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(accepted == 1)
    }

    async fn remove_totp(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query("delete from totp_factors where user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        sqlx::query("delete from recovery_codes where user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        enqueue_mails(&mut tx, user, mails, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[[u8; 32]],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Locks the account row: two replacements at once end with one set.
        let known = sqlx::query("select 1 from users where id = $1 for no key update")
            .bind(user.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if known.is_none() {
            return Ok(false);
        }
        install_codes(&mut tx, user, codes, now).await?;
        enqueue_mails(&mut tx, user, mails, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        digest: &[u8; 32],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let used = sqlx::query(
            "update recovery_codes set used_at = $3 where user_id = $1 and digest = $2 and used_at is null",
        )
        .bind(user.as_uuid())
        .bind(digest.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if used == 1 {
            enqueue_mails(&mut tx, user, mails, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(used == 1)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32> {
        let row = sqlx::query("select count(*) as n from recovery_codes where user_id = $1 and used_at is null")
            .bind(user.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let left: i64 = row.try_get("n").map_err(map_err)?;
        Ok(left as u32)
    }

    async fn admins_without_second_factor(&self, limit: u32) -> Result<Vec<Username>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(admins_without_second_factor_statement('$')))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Username::try_from(row.try_get::<String, _>("username").map_err(map_err)?).map_err(Error::internal)
            })
            .collect()
    }

    async fn insert_mfa_challenge(&self, challenge: &NewMfaChallenge) -> Result<()> {
        sqlx::query(
            "insert into mfa_challenges (digest, user_id, credential_version, created_at, expires_at, first_factor) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(challenge.digest.as_slice())
        .bind(challenge.user.as_uuid())
        .bind(challenge.credential_version)
        .bind(challenge.created_at)
        .bind(challenge.expires_at)
        .bind(challenge.first_factor.bits())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn mfa_challenge(
        &self,
        digest: &[u8; 32],
        max_failures: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<MfaChallenge>> {
        let row = sqlx::query(
            "select user_id, credential_version, failures, first_factor from mfa_challenges \
             where digest = $1 and expires_at > $2 and failures < $3",
        )
        .bind(digest.as_slice())
        .bind(now)
        .bind(max_failures as i32)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|row| {
            Ok(MfaChallenge {
                user: UserId::from_uuid(get(&row, "user_id")?),
                credential_version: get(&row, "credential_version")?,
                first_factor: Amr::from_bits(get(&row, "first_factor")?),
                failures: get::<i32>(&row, "failures")? as u32,
            })
        })
        .transpose()
    }

    async fn reserve_mfa_guess(&self, digest: &[u8; 32], max_failures: u32, now: DateTime<Utc>) -> Result<bool> {
        let taken = sqlx::query(
            "update mfa_challenges set failures = failures + 1 \
             where digest = $1 and expires_at > $2 and failures < $3",
        )
        .bind(digest.as_slice())
        .bind(now)
        .bind(max_failures as i32)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn complete_mfa_challenge(&self, digest: &[u8; 32], max_failures: u32, login: &NewSession) -> Result<bool> {
        let s = &login.session;
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "delete from mfa_challenges where digest = $1 and user_id = $2 and credential_version = $3 \
               and expires_at > $4 and failures <= $5",
        )
        .bind(digest.as_slice())
        .bind(s.user_id.as_uuid())
        .bind(login.credential_version)
        .bind(s.created_at)
        .bind(max_failures as i32)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let opened = taken.rows_affected() == 1 && insert_session(&mut *tx, login).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(opened)
    }
}

/// Replaces the account's recovery codes with `codes`.
async fn install_codes(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    codes: &[[u8; 32]],
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("delete from recovery_codes where user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let digests: Vec<&[u8]> = codes.iter().map(|d| d.as_slice()).collect();
    sqlx::query("insert into recovery_codes (user_id, digest, created_at) select $1, d, $3 from unnest($2::bytea[]) d")
        .bind(user.as_uuid())
        .bind(&digests)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}
