//! [`FactorStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{col, execute, millis, opt_time, query_all, query_opt, time};
use super::sessions::insert_session;
use super::tokens::enqueue_mails;
use crate::domain::{Amr, UserId, Username};
use crate::error::{Error, Result};
use crate::store::rules::admins_without_second_factor_statement;
use crate::store::{FactorStore, MfaChallenge, NewMail, NewMfaChallenge, NewSession, TotpFactor};

#[async_trait]
impl FactorStore for SqliteStore {
    async fn start_totp(&self, user: UserId, sealed: &str, now: DateTime<Utc>) -> Result<bool> {
        let sealed = sealed.to_owned();
        self.write(move |conn| {
            // Inserted, or a pending one replaced; a confirmed one stays.
            let changed = execute(
                conn,
                "insert into totp_factors (user_id, secret, started_at) select id, ?2, ?3 from users where id = ?1 \
                 on conflict (user_id) do update set secret = excluded.secret, started_at = excluded.started_at, \
                   last_step = null \
                 where totp_factors.confirmed_at is null",
                params![user.as_uuid(), sealed, millis(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn totp(&self, user: UserId) -> Result<Option<TotpFactor>> {
        self.read(|conn| {
            query_opt(
                conn,
                "select secret, started_at, confirmed_at, last_step from totp_factors where user_id = ?1",
                [user.as_uuid()],
                |row| {
                    Ok(TotpFactor {
                        sealed_secret: col(row, "secret")?,
                        started_at: time(col(row, "started_at")?)?,
                        confirmed_at: opt_time(col(row, "confirmed_at")?)?,
                        last_step: col(row, "last_step")?,
                    })
                },
            )
        })
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
        let (codes, mails) = (codes.to_vec(), mails.to_vec());
        self.write(move |conn| {
            let confirmed = execute(
                conn,
                "update totp_factors set confirmed_at = ?4, last_step = ?5 \
                 where user_id = ?1 and confirmed_at is null and started_at = ?2 and started_at > ?3",
                params![user.as_uuid(), millis(started_at), millis(pending_after), millis(now), step],
            )?;
            if confirmed == 0 {
                return Ok(false);
            }
            install_codes(conn, user, &codes, now)?;
            enqueue_mails(conn, user, &mails, now)?;
            Ok(true)
        })
        .await
    }

    async fn accept_totp_step(&self, user: UserId, step: i64, resealed: Option<&str>) -> Result<bool> {
        let resealed = resealed.map(str::to_owned);
        self.write(move |conn| {
            let accepted = execute(
                conn,
                "update totp_factors set last_step = ?2, secret = coalesce(?3, secret) \
                 where user_id = ?1 and confirmed_at is not null and (last_step is null or last_step < ?2)",
                params![user.as_uuid(), step, resealed],
            )?;
            Ok(accepted == 1)
        })
        .await
    }

    async fn remove_totp(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool> {
        let mails = mails.to_vec();
        self.write(move |conn| {
            let removed = execute(conn, "delete from totp_factors where user_id = ?1", [user.as_uuid()])?;
            if removed == 0 {
                return Ok(false);
            }
            execute(conn, "delete from recovery_codes where user_id = ?1", [user.as_uuid()])?;
            enqueue_mails(conn, user, &mails, now)?;
            Ok(true)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[[u8; 32]],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (codes, mails) = (codes.to_vec(), mails.to_vec());
        self.write(move |conn| {
            let known = query_opt(conn, "select 1 from users where id = ?1", [user.as_uuid()], |_| Ok(()))?;
            if known.is_none() {
                return Ok(false);
            }
            install_codes(conn, user, &codes, now)?;
            enqueue_mails(conn, user, &mails, now)?;
            Ok(true)
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        digest: &[u8; 32],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (digest, mails) = (*digest, mails.to_vec());
        self.write(move |conn| {
            let used = execute(
                conn,
                "update recovery_codes set used_at = ?3 where user_id = ?1 and digest = ?2 and used_at is null",
                params![user.as_uuid(), digest.as_slice(), millis(now)],
            )?;
            if used == 1 {
                enqueue_mails(conn, user, &mails, now)?;
            }
            Ok(used == 1)
        })
        .await
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32> {
        self.read(|conn| {
            let left: Option<i64> = query_opt(
                conn,
                "select count(*) as n from recovery_codes where user_id = ?1 and used_at is null",
                [user.as_uuid()],
                |row| col(row, "n"),
            )?;
            Ok(left.unwrap_or(0) as u32)
        })
    }

    async fn admins_without_second_factor(&self, limit: u32) -> Result<Vec<Username>> {
        self.read(move |conn| {
            let names: Vec<String> =
                query_all(conn, &admins_without_second_factor_statement('?'), [limit], |row| col(row, "username"))?;
            names.into_iter().map(|n| Username::try_from(n).map_err(Error::internal)).collect()
        })
    }

    async fn insert_mfa_challenge(&self, challenge: &NewMfaChallenge) -> Result<()> {
        let c = challenge.clone();
        self.write(move |conn| {
            execute(
                conn,
                "insert into mfa_challenges (digest, user_id, credential_version, created_at, expires_at, first_factor) \
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    c.digest.as_slice(),
                    c.user.as_uuid(),
                    c.credential_version,
                    millis(c.created_at),
                    millis(c.expires_at),
                    c.first_factor.bits()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn mfa_challenge(
        &self,
        digest: &[u8; 32],
        max_failures: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<MfaChallenge>> {
        self.read(|conn| {
            query_opt(
                conn,
                "select user_id, credential_version, failures, first_factor from mfa_challenges \
                 where digest = ?1 and expires_at > ?2 and failures < ?3",
                params![digest.as_slice(), millis(now), max_failures],
                |row| {
                    Ok(MfaChallenge {
                        user: UserId::from_uuid(col(row, "user_id")?),
                        credential_version: col(row, "credential_version")?,
                        first_factor: Amr::from_bits(col(row, "first_factor")?),
                        failures: col::<i64>(row, "failures")? as u32,
                    })
                },
            )
        })
    }

    async fn reserve_mfa_guess(&self, digest: &[u8; 32], max_failures: u32, now: DateTime<Utc>) -> Result<bool> {
        let digest = *digest;
        self.write(move |conn| {
            let taken = execute(
                conn,
                "update mfa_challenges set failures = failures + 1 \
                 where digest = ?1 and expires_at > ?2 and failures < ?3",
                params![digest.as_slice(), millis(now), max_failures],
            )?;
            Ok(taken == 1)
        })
        .await
    }

    async fn complete_mfa_challenge(&self, digest: &[u8; 32], max_failures: u32, login: &NewSession) -> Result<bool> {
        let digest = *digest;
        let login = login.clone();
        self.write(move |conn| {
            let s = &login.session;
            let taken = execute(
                conn,
                "delete from mfa_challenges where digest = ?1 and user_id = ?2 and credential_version = ?3 \
                   and expires_at > ?4 and failures <= ?5",
                params![
                    digest.as_slice(),
                    s.user_id.as_uuid(),
                    login.credential_version,
                    millis(s.created_at),
                    max_failures
                ],
            )?;
            Ok(taken == 1 && insert_session(conn, &login)?)
        })
        .await
    }
}

/// Replaces the account's recovery codes with `codes`.
fn install_codes(conn: &Connection, user: UserId, codes: &[[u8; 32]], now: DateTime<Utc>) -> Result<()> {
    execute(conn, "delete from recovery_codes where user_id = ?1", [user.as_uuid()])?;
    for digest in codes {
        execute(
            conn,
            "insert into recovery_codes (user_id, digest, created_at) values (?1, ?2, ?3)",
            params![user.as_uuid(), digest.as_slice(), millis(now)],
        )?;
    }
    Ok(())
}
