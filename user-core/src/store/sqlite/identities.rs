//! [`IdentityStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, params};

use super::SqliteStore;
use super::rows::{col, execute, millis, query_all, query_opt, time};
use super::sessions::revoke_sessions;
use super::tokens::enqueue_mails;
use super::users::insert_user_row;
use crate::domain::{Email, UserId};
use crate::error::{Error, Result};
use crate::store::rules::unlink_identity_statement;
use crate::store::{IdentityRecord, IdentityStore, NewMail, Unlinked, UserRecord};

const IDENTITY_COLUMNS: &str = "issuer, subject, provider, user_id, email, email_verified, linked_at";

fn identity(row: &Row<'_>) -> Result<IdentityRecord> {
    Ok(IdentityRecord {
        issuer: col(row, "issuer")?,
        subject: col(row, "subject")?,
        provider: col(row, "provider")?,
        user: UserId::from_uuid(col(row, "user_id")?),
        email: col::<Option<String>>(row, "email")?.map(TryInto::try_into).transpose().map_err(Error::internal)?,
        email_verified: col(row, "email_verified")?,
        linked_at: time(col(row, "linked_at")?)?,
    })
}

/// Inserts `i`; `false` when its key or its account's provider is taken.
pub(super) fn insert_identity(conn: &Connection, i: &IdentityRecord) -> Result<bool> {
    let inserted = execute(
        conn,
        "insert into identities (issuer, subject, provider, user_id, email, email_verified, linked_at) \
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7) on conflict do nothing",
        params![
            i.issuer,
            i.subject,
            i.provider,
            i.user.as_uuid(),
            i.email.as_ref().map(Email::as_str),
            i.email_verified,
            millis(i.linked_at)
        ],
    )?;
    Ok(inserted == 1)
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRecord>> {
        self.read(|conn| {
            query_opt(
                conn,
                &format!("select {IDENTITY_COLUMNS} from identities where issuer = ?1 and subject = ?2"),
                params![issuer, subject],
                identity,
            )
        })
    }

    async fn identities(&self, user: UserId) -> Result<Vec<IdentityRecord>> {
        self.read(|conn| {
            query_all(
                conn,
                &format!("select {IDENTITY_COLUMNS} from identities where user_id = ?1 order by linked_at"),
                [user.as_uuid()],
                identity,
            )
        })
    }

    async fn link_identity(&self, i: &IdentityRecord, mails: &[NewMail]) -> Result<bool> {
        let (i, mails) = (i.clone(), mails.to_vec());
        self.write(move |conn| {
            if !insert_identity(conn, &i)? {
                return Ok(false);
            }
            enqueue_mails(conn, i.user, &mails, i.linked_at)?;
            Ok(true)
        })
        .await
    }

    async fn insert_provider_account(&self, record: &UserRecord, i: &IdentityRecord) -> Result<()> {
        let (record, i) = (record.clone(), i.clone());
        self.write(move |conn| {
            insert_user_row(conn, &record)?;
            if !insert_identity(conn, &i)? {
                return Err(Error::IdentityInUse);
            }
            Ok(())
        })
        .await
    }

    async fn claim_unverified_account(&self, i: &IdentityRecord, email: &Email, now: DateTime<Utc>) -> Result<bool> {
        let (i, email) = (i.clone(), email.clone());
        self.write(move |conn| {
            let id = i.user.as_uuid();
            let claimed = execute(
                conn,
                "update users set email_verified = 1, password_hash = null, \
                   credential_version = credential_version + 1, updated_at = ?3 \
                 where id = ?1 and email = ?2 and email_verified = 0",
                params![id, email.as_str(), millis(now)],
            )?;
            if claimed == 0 {
                return Ok(false);
            }
            for table in ["passkeys", "totp_factors", "recovery_codes", "identities"] {
                execute(conn, &format!("delete from {table} where user_id = ?1"), [id])?;
            }
            revoke_sessions(conn, i.user, None, now)?;
            if !insert_identity(conn, &i)? {
                // Linked elsewhere meanwhile: undo it all (the group rolls back).
                return Err(Error::IdentityInUse);
            }
            Ok(true)
        })
        .await
        .or_else(|e| if matches!(e, Error::IdentityInUse) { Ok(false) } else { Err(e) })
    }

    async fn unlink_identity(
        &self,
        user: UserId,
        provider: &str,
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<Unlinked> {
        let (provider, mails) = (provider.to_owned(), mails.to_vec());
        self.write(move |conn| {
            // One writer: nothing changes between the statement's check and its delete.
            if execute(conn, &unlink_identity_statement('?'), params![user.as_uuid(), provider])? == 1 {
                enqueue_mails(conn, user, &mails, now)?;
                return Ok(Unlinked::Removed);
            }
            let exists = query_opt(
                conn,
                "select 1 as found from identities where user_id = ?1 and provider = ?2",
                params![user.as_uuid(), provider],
                |row| col::<i64>(row, "found"),
            )?;
            Ok(if exists.is_some() { Unlinked::LastSignInMethod } else { Unlinked::NotFound })
        })
        .await
    }
}
