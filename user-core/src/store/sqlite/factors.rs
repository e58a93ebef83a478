//! [`FactorStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{col, execute, millis, opt_time, query_opt, time};
use super::tokens::enqueue_mails;
use crate::domain::UserId;
use crate::error::Result;
use crate::store::{FactorStore, NewMail, TotpFactor};

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

    async fn use_recovery_code(&self, user: UserId, digest: &[u8; 32], now: DateTime<Utc>) -> Result<bool> {
        let digest = *digest;
        self.write(move |conn| {
            let used = execute(
                conn,
                "update recovery_codes set used_at = ?3 where user_id = ?1 and digest = ?2 and used_at is null",
                params![user.as_uuid(), digest.as_slice(), millis(now)],
            )?;
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
