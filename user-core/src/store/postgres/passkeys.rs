//! [`PasskeyStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PostgresStore;
use super::rows::{get, map_err};
use super::tokens::enqueue_mails;
use crate::domain::{SessionId, UserId};
use crate::error::{Error, Result};
use crate::store::{Ceremony, CeremonyPurpose, NewMail, PasskeyRecord, PasskeyStore};

const PASSKEY_COLUMNS: &str = "p.id, p.user_id, p.rp_id, p.credential_id, p.public_key, p.sign_count, p.backup_eligible, \
                               p.backed_up, p.transports, p.name, p.created_at, p.last_used_at";

fn passkey(row: &PgRow) -> Result<PasskeyRecord> {
    let transports: String = get(row, "transports")?;
    Ok(PasskeyRecord {
        id: get(row, "id")?,
        user_id: UserId::from_uuid(get(row, "user_id")?),
        rp_id: get(row, "rp_id")?,
        credential_id: get(row, "credential_id")?,
        public_key: get(row, "public_key")?,
        sign_count: u32::try_from(get::<i64>(row, "sign_count")?).map_err(Error::internal)?,
        backup_eligible: get(row, "backup_eligible")?,
        backed_up: get(row, "backed_up")?,
        transports: transports.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        name: get(row, "name")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
    })
}

#[async_trait]
impl PasskeyStore for PostgresStore {
    async fn webauthn_handle(&self, user: UserId, candidate: &[u8]) -> Result<Option<Vec<u8>>> {
        // One statement: set it if unset, then read whatever is there.
        let row = sqlx::query(
            "with set_once as (update users set webauthn_handle = $2 where id = $1 and webauthn_handle is null \
               returning webauthn_handle) \
             select coalesce((select webauthn_handle from set_once), webauthn_handle) as handle \
             from users where id = $1",
        )
        .bind(user.as_uuid())
        .bind(candidate)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|row| get(&row, "handle")).transpose()
    }

    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>> {
        let sql = format!("select {PASSKEY_COLUMNS} from passkeys p where p.user_id = $1 order by p.created_at, p.id");
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_uuid()).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(passkey).collect()
    }

    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<(PasskeyRecord, Vec<u8>)>> {
        let sql = format!(
            "select {PASSKEY_COLUMNS}, u.webauthn_handle from passkeys p join users u on u.id = p.user_id \
             where p.credential_id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|row| Ok((passkey(&row)?, get(&row, "webauthn_handle")?))).transpose()
    }

    async fn insert_passkey(&self, p: &PasskeyRecord, mails: &[NewMail]) -> Result<bool> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "insert into passkeys (id, user_id, rp_id, credential_id, public_key, sign_count, backup_eligible, backed_up, \
               transports, name, created_at) \
             select $1, id, $11, $3, $4, $5, $6, $7, $8, $9, $10 from users where id = $2 \
             on conflict (credential_id) do nothing",
        )
        .bind(p.id)
        .bind(p.user_id.as_uuid())
        .bind(&p.credential_id)
        .bind(&p.public_key)
        .bind(i64::from(p.sign_count))
        .bind(p.backup_eligible)
        .bind(p.backed_up)
        .bind(p.transports.join(","))
        .bind(&p.name)
        .bind(p.created_at)
        .bind(&p.rp_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted == 1 {
            enqueue_mails(&mut tx, p.user_id, mails, p.created_at).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(inserted == 1)
    }

    async fn use_passkey(
        &self,
        id: Uuid,
        expected: u32,
        sign_count: u32,
        backed_up: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let used = sqlx::query(
            "update passkeys set sign_count = $3, backed_up = $4, last_used_at = $5 where id = $1 and sign_count = $2",
        )
        .bind(id)
        .bind(i64::from(expected))
        .bind(i64::from(sign_count))
        .bind(backed_up)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(used == 1)
    }

    async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<bool> {
        let renamed = sqlx::query("update passkeys set name = $3 where id = $2 and user_id = $1")
            .bind(user.as_uuid())
            .bind(id)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(renamed == 1)
    }

    async fn remove_passkey(&self, user: UserId, id: Uuid, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query("delete from passkeys where id = $2 and user_id = $1")
            .bind(user.as_uuid())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if removed == 1 {
            enqueue_mails(&mut tx, user, mails, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(removed == 1)
    }

    async fn remove_second_factors(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut removed = [0u64; 4];
        // Confirmed factors count as removed; a pending TOTP and the codes just go.
        for (n, sql) in [
            "delete from totp_factors where user_id = $1 and confirmed_at is not null",
            "delete from passkeys where user_id = $1",
            "delete from totp_factors where user_id = $1",
            "delete from recovery_codes where user_id = $1",
        ]
        .into_iter()
        .enumerate()
        {
            removed[n] =
                sqlx::query(sql).bind(user.as_uuid()).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
        }
        let any = removed[0] + removed[1] > 0;
        if any {
            enqueue_mails(&mut tx, user, mails, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(any)
    }

    async fn passkey_rp_ids(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("select distinct rp_id from passkeys limit 10").fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(|row| get(row, "rp_id")).collect()
    }

    async fn insert_ceremony(&self, c: &Ceremony) -> Result<()> {
        sqlx::query(
            "insert into ceremonies (digest, purpose, challenge, user_id, session_id, mfa_digest, \
               created_at, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.digest.as_slice())
        .bind(c.purpose.as_str())
        .bind(&c.challenge)
        .bind(c.user.map(|u| u.as_uuid()))
        .bind(c.session.map(|s| s.as_uuid()))
        .bind(c.mfa_digest.as_ref().map(|d| d.as_slice()))
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        digest: &[u8; 32],
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>> {
        let row = sqlx::query(
            "delete from ceremonies where digest = $1 and purpose = $2 and expires_at > $3 \
             returning challenge, user_id, session_id, mfa_digest, created_at, expires_at",
        )
        .bind(digest.as_slice())
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|row| {
            let mfa: Option<Vec<u8>> = row.try_get("mfa_digest").map_err(map_err)?;
            Ok(Ceremony {
                digest: *digest,
                purpose,
                challenge: get(&row, "challenge")?,
                user: get::<Option<Uuid>>(&row, "user_id")?.map(UserId::from_uuid),
                session: get::<Option<Uuid>>(&row, "session_id")?.map(SessionId::from_uuid),
                mfa_digest: mfa.map(|d| <[u8; 32]>::try_from(d.as_slice()).map_err(Error::internal)).transpose()?,
                created_at: get(&row, "created_at")?,
                expires_at: get(&row, "expires_at")?,
            })
        })
        .transpose()
    }
}
