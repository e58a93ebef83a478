//! [`PasskeyStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Row, params};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{col, execute, millis, opt_time, query_all, query_opt, time};
use super::tokens::enqueue_mails;
use crate::domain::{SessionId, UserId};
use crate::error::{Error, Result};
use crate::store::{Ceremony, CeremonyPurpose, NewMail, PasskeyRecord, PasskeyStore};

const PASSKEY_COLUMNS: &str = "p.id, p.user_id, p.rp_id, p.credential_id, p.public_key, p.sign_count, p.backup_eligible, \
                               p.backed_up, p.transports, p.name, p.created_at, p.last_used_at";

fn passkey(row: &Row<'_>) -> Result<PasskeyRecord> {
    let transports: String = col(row, "transports")?;
    Ok(PasskeyRecord {
        id: col(row, "id")?,
        user_id: UserId::from_uuid(col(row, "user_id")?),
        rp_id: col(row, "rp_id")?,
        credential_id: col(row, "credential_id")?,
        public_key: col(row, "public_key")?,
        sign_count: u32::try_from(col::<i64>(row, "sign_count")?).map_err(Error::internal)?,
        backup_eligible: col(row, "backup_eligible")?,
        backed_up: col(row, "backed_up")?,
        transports: transports.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        name: col(row, "name")?,
        created_at: time(col(row, "created_at")?)?,
        last_used_at: opt_time(col(row, "last_used_at")?)?,
    })
}

fn stored_digest(bytes: Option<Vec<u8>>) -> Result<Option<[u8; 32]>> {
    bytes.map(|b| <[u8; 32]>::try_from(b.as_slice()).map_err(Error::internal)).transpose()
}

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn webauthn_handle(&self, user: UserId, candidate: &[u8]) -> Result<Option<Vec<u8>>> {
        let candidate = candidate.to_vec();
        self.write(move |conn| {
            execute(
                conn,
                "update users set webauthn_handle = ?2 where id = ?1 and webauthn_handle is null",
                params![user.as_uuid(), candidate],
            )?;
            query_opt(conn, "select webauthn_handle from users where id = ?1", [user.as_uuid()], |row| {
                col(row, "webauthn_handle")
            })
        })
        .await
    }

    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>> {
        self.read(|conn| {
            let sql =
                format!("select {PASSKEY_COLUMNS} from passkeys p where p.user_id = ?1 order by p.created_at, p.id");
            query_all(conn, &sql, [user.as_uuid()], passkey)
        })
    }

    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<(PasskeyRecord, Vec<u8>)>> {
        let credential_id = credential_id.to_vec();
        self.read(move |conn| {
            let sql = format!(
                "select {PASSKEY_COLUMNS}, u.webauthn_handle from passkeys p join users u on u.id = p.user_id \
                 where p.credential_id = ?1"
            );
            query_opt(conn, &sql, [credential_id], |row| Ok((passkey(row)?, col(row, "webauthn_handle")?)))
        })
    }

    async fn insert_passkey(&self, p: &PasskeyRecord, mails: &[NewMail]) -> Result<bool> {
        let (p, mails) = (p.clone(), mails.to_vec());
        self.write(move |conn| {
            let inserted = execute(
                conn,
                "insert into passkeys (id, user_id, rp_id, credential_id, public_key, sign_count, backup_eligible, backed_up, \
                   transports, name, created_at) \
                 select ?1, id, ?11, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 from users where id = ?2 \
                 on conflict (credential_id) do nothing",
                params![
                    p.id,
                    p.user_id.as_uuid(),
                    p.credential_id,
                    p.public_key,
                    i64::from(p.sign_count),
                    p.backup_eligible,
                    p.backed_up,
                    p.transports.join(","),
                    p.name,
                    millis(p.created_at),
                    p.rp_id,
                ],
            )?;
            if inserted == 1 {
                enqueue_mails(conn, p.user_id, &mails, p.created_at)?;
            }
            Ok(inserted == 1)
        })
        .await
    }

    async fn use_passkey(
        &self,
        id: Uuid,
        expected: u32,
        sign_count: u32,
        backed_up: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(move |conn| {
            let used = execute(
                conn,
                "update passkeys set sign_count = ?3, backed_up = ?4, last_used_at = ?5 \
                 where id = ?1 and sign_count = ?2",
                params![id, i64::from(expected), i64::from(sign_count), backed_up, millis(now)],
            )?;
            Ok(used == 1)
        })
        .await
    }

    async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |conn| {
            let renamed = execute(
                conn,
                "update passkeys set name = ?3 where id = ?2 and user_id = ?1",
                params![user.as_uuid(), id, name],
            )?;
            Ok(renamed == 1)
        })
        .await
    }

    async fn remove_passkey(&self, user: UserId, id: Uuid, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool> {
        let mails = mails.to_vec();
        self.write(move |conn| {
            let removed =
                execute(conn, "delete from passkeys where id = ?2 and user_id = ?1", params![user.as_uuid(), id])?;
            if removed == 1 {
                enqueue_mails(conn, user, &mails, now)?;
            }
            Ok(removed == 1)
        })
        .await
    }

    async fn remove_second_factors(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool> {
        let mails = mails.to_vec();
        self.write(move |conn| {
            let id = user.as_uuid();
            let removed =
                execute(conn, "delete from totp_factors where user_id = ?1 and confirmed_at is not null", [id])?
                    + execute(conn, "delete from passkeys where user_id = ?1", [id])?;
            execute(conn, "delete from totp_factors where user_id = ?1", [id])?;
            execute(conn, "delete from recovery_codes where user_id = ?1", [id])?;
            if removed > 0 {
                enqueue_mails(conn, user, &mails, now)?;
            }
            Ok(removed > 0)
        })
        .await
    }

    async fn passkey_rp_ids(&self) -> Result<Vec<String>> {
        self.read(|conn| query_all(conn, "select distinct rp_id from passkeys limit 10", [], |row| col(row, "rp_id")))
    }

    async fn insert_ceremony(&self, c: &Ceremony) -> Result<()> {
        let c = c.clone();
        self.write(move |conn| {
            execute(
                conn,
                "insert into ceremonies (digest, purpose, challenge, user_id, session_id, mfa_digest, \
                   created_at, expires_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    c.digest.as_slice(),
                    c.purpose.as_str(),
                    c.challenge,
                    c.user.map(|u| u.as_uuid()),
                    c.session.map(|s| s.as_uuid()),
                    c.mfa_digest.as_ref().map(|d| d.as_slice()),
                    millis(c.created_at),
                    millis(c.expires_at),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_ceremony(
        &self,
        digest: &[u8; 32],
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>> {
        let digest = *digest;
        self.write(move |conn| {
            query_opt(
                conn,
                "delete from ceremonies where digest = ?1 and purpose = ?2 and expires_at > ?3 \
                 returning challenge, user_id, session_id, mfa_digest, created_at, expires_at",
                params![digest.as_slice(), purpose.as_str(), millis(now)],
                |row| {
                    Ok(Ceremony {
                        digest,
                        purpose,
                        challenge: col(row, "challenge")?,
                        user: col::<Option<Uuid>>(row, "user_id")?.map(UserId::from_uuid),
                        session: col::<Option<Uuid>>(row, "session_id")?.map(SessionId::from_uuid),
                        mfa_digest: stored_digest(col(row, "mfa_digest")?)?,
                        created_at: time(col(row, "created_at")?)?,
                        expires_at: time(col(row, "expires_at")?)?,
                    })
                },
            )
        })
        .await
    }
}
