//! Accounts: registration, lookup, profile changes, deletion.

use super::{AuditEvent, ClientInfo, UserService};
use crate::domain::{Amr, Email, Locale, Password, Role, SessionId, UserId, Username, ValidationError};
use crate::error::{Error, Result, UnauthorizedReason};
use crate::store::{MailPayload, NewMail, TaskKind, User, UserChanges, UserKey, UserRecord};

/// A new account's fields, already valid.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The username.
    pub username: Username,
    /// The email.
    pub email: Email,
    /// The password.
    pub password: Password,
    /// The language of the account's mails.
    pub locale: Locale,
}

/// A change to one's own account; at least one of `username`, `email`,
/// `password` must be set.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// A new username.
    pub username: Option<Username>,
    /// A new email.
    pub email: Option<Email>,
    /// A new password; other sessions of the user are revoked.
    pub password: Option<Password>,
    /// The current password; verified when present.
    pub current_password: Option<Password>,
    /// A new mail language.
    pub locale: Option<Locale>,
}

impl UserService {
    /// Creates an account with the `user` role; with mail configured, a
    /// verification mail goes out with it (same transaction).
    ///
    /// # Errors
    /// [`Error::Conflict`] if the username (case-insensitively) or email is
    /// taken; [`Error::Overloaded`] if hashing is saturated.
    #[tracing::instrument(skip_all, fields(username = %reg.username))]
    pub async fn register(&self, reg: Registration, client: &ClientInfo) -> Result<User> {
        let user = self.insert_user(reg, Role::User).await?;
        self.audit(AuditEvent::Registered, Some(user.id), client, None).await;
        Ok(user)
    }

    /// Creates an account with a chosen role, for an operator (this
    /// bootstraps the first admin) or an admin (`client.actor`).
    ///
    /// # Errors
    /// As [`UserService::register`].
    pub async fn create_user(&self, reg: Registration, role: Role, client: &ClientInfo) -> Result<User> {
        if role == Role::Guest {
            return Err(ValidationError::new("role", "must be user or admin").into());
        }
        let user = self.insert_user(reg, role).await?;
        let detail = format!("by an operator, role {role}");
        self.audit(AuditEvent::Registered, Some(user.id), client, Some(detail)).await;
        Ok(user)
    }

    pub(super) async fn insert_user(&self, reg: Registration, role: Role) -> Result<User> {
        let password_hash = self.hash_new_password(&reg.password).await?;
        let now = self.clock.now();
        let user = User {
            id: UserId::new(),
            username: Some(reg.username),
            email: Some(reg.email),
            role,
            disabled_at: None,
            email_verified: false,
            locale: reg.locale,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let record = UserRecord {
            user: user.clone(),
            password_hash: Some(password_hash),
            failed_logins: 0,
            locked_until: None,
            credential_version: 0,
        };
        let mails =
            if self.mail.enabled { vec![self.verification_mail(user.require_email()?, None)?] } else { Vec::new() };
        self.store.insert_user(&record, &mails).await?;
        if !mails.is_empty() {
            self.task_waker.wake();
        }
        Ok(user)
    }

    /// One account by id.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn get(&self, id: UserId) -> Result<User> {
        self.find(UserKey::Id(id)).await
    }

    /// One account by id, username or email.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn find(&self, key: UserKey<'_>) -> Result<User> {
        self.store.find_user(key).await?.map(|r| r.user).ok_or(Error::UserNotFound)
    }

    /// Changes one's own account. A password change revokes every other
    /// session of the user (the calling session `keep` survives). A new
    /// address or password needs `current_password`, or `keep` to have
    /// proved a credential within the re-authentication window.
    ///
    /// # Errors
    /// [`Error::Validation`] for an empty update or a missing required
    /// `current_password`; [`Error::Unauthorized`] for a wrong
    /// `current_password`; [`Error::ReauthRequired`] when the session's
    /// sign-in is not recent; [`Error::Conflict`] naming the taken field;
    /// [`Error::UserNotFound`].
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update(
        &self,
        id: UserId,
        keep: Option<SessionId>,
        update: ProfileUpdate,
        client: &ClientInfo,
    ) -> Result<User> {
        if update.username.is_none() && update.email.is_none() && update.password.is_none() && update.locale.is_none() {
            return Err(ValidationError::new("body", "give at least one of username, email, password, locale").into());
        }
        let sensitive = update.password.is_some() || update.email.is_some();
        if self.require_current_password && sensitive && update.current_password.is_none() {
            return Err(ValidationError::new("current_password", "is required to change the password or email").into());
        }
        let mut verified_version = None;
        let mut before = None;
        if let Some(current) = &update.current_password {
            let record = if sensitive {
                self.prove_recent(id, keep, Some(current), client).await?
            } else {
                self.verify_current_password(id, current, client).await?
            };
            verified_version = Some(record.credential_version);
            before = Some(record.user);
        } else if sensitive {
            self.require_recent_authentication(id, keep).await?;
        }
        // A new address gets a verification mail, the old one a notice with
        // an undo link.
        let mut mails = Vec::new();
        let mut revert = None;
        if let Some(email) = &update.email
            && self.mail.enabled
        {
            let before = match before {
                Some(user) => user,
                None => self.get(id).await?,
            };
            if Some(email) != before.email.as_ref() {
                mails.push(self.verification_mail(email, Some(email))?);
                // An account without an address (a provider's) has no old
                // address to notify, nor anything to undo.
                if let Some(old) = before.email {
                    let (raw, link) = self.revert_link(&old)?;
                    let payload = MailPayload { to: Some(old), token: Some(raw), change: None };
                    mails.push(NewMail { kind: TaskKind::EmailChanged, payload, token: None });
                    revert = Some(link);
                }
            }
        }
        if update.password.is_some() && self.mail.enabled {
            mails.push(notice(TaskKind::EmailPasswordChanged, None));
        }
        let password_hash = match &update.password {
            Some(p) => Some(self.hash_new_password(p).await?),
            None => None,
        };
        let email_changed = update.email.is_some();
        let changes = UserChanges {
            username: update.username,
            email: update.email,
            password_hash,
            keep_session: keep,
            expected_credential_version: verified_version,
            locale: update.locale,
            mails,
            revert,
        };
        let Some(record) = self.store.update_user(id, &changes, self.clock.now()).await? else {
            // Still there: the password was changed (or the account disabled)
            // after `current_password` was checked, which no longer proves anything.
            if verified_version.is_some() && self.store.find_user(UserKey::Id(id)).await?.is_some() {
                return Err(Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword));
            }
            return Err(Error::UserNotFound);
        };
        if changes.password_hash.is_some() {
            self.audit(AuditEvent::PasswordChanged, Some(id), client, Some("other sessions revoked".into())).await;
        }
        if email_changed {
            self.audit(AuditEvent::EmailChanged, Some(id), client, None).await;
        }
        if !changes.mails.is_empty() {
            self.task_waker.wake();
        }
        Ok(record.user)
    }

    /// Deletes one's own account from `session`, as
    /// [`UserService::delete`] does, once the session proved a credential
    /// recently ([`ServiceConfig::reauth_window`](crate::ServiceConfig::reauth_window))
    /// or `current_password` is right.
    ///
    /// # Errors
    /// [`Error::ReauthRequired`] without either; [`Error::Unauthorized`]
    /// for a wrong `current_password` (counted like a failed login);
    /// [`Error::UserNotFound`].
    pub async fn delete_own_account(
        &self,
        id: UserId,
        session: SessionId,
        current_password: Option<&Password>,
        client: &ClientInfo,
    ) -> Result<()> {
        self.prove_recent(id, Some(session), current_password, client).await?;
        self.delete(id, client).await
    }

    /// The hash of a password about to be set, once it passed the breach
    /// check (when configured). A lookup that fails lets the password
    /// through: an outage of the range API must not stop sign-ups.
    ///
    /// # Errors
    /// [`Error::Validation`] on `password` when the range API reports it
    /// breached; [`Error::Overloaded`] if hashing is saturated.
    pub(super) async fn hash_new_password(&self, password: &Password) -> Result<String> {
        #[cfg(feature = "breach-check")]
        if let Some(breaches) = &self.breaches {
            match breaches.is_breached(password).await {
                Ok(true) => {
                    return Err(
                        ValidationError::new("password", "appears in known data breaches; choose another").into()
                    );
                }
                Ok(false) => {}
                Err(why) => {
                    metrics::counter!("password_breach_check_failures_total").increment(1);
                    tracing::warn!(error = %why, "breach check failed; the password was let through");
                }
            }
        }
        self.hasher.hash(password).await
    }

    /// Checks `current` against the account's password, counted and
    /// throttled like a login (a stolen access token must not let anyone
    /// guess the password at hashing speed); the account as read.
    async fn verify_current_password(&self, id: UserId, current: &Password, client: &ClientInfo) -> Result<UserRecord> {
        let record = self.store.find_user(UserKey::Id(id)).await?.ok_or(Error::UserNotFound)?;
        match self.check_password(&record, current, client, "wrong current password").await {
            Err(Error::InvalidCredentials) => {
                return Err(Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword));
            }
            other => other?,
        };
        self.store.reset_login_failures(id).await?;
        Ok(record)
    }

    /// The proof a sensitive change of the account needs: `current_password`
    /// (checked like a login), or else `session` signed in within the
    /// re-authentication window. An account with a second factor needs the
    /// session's recent proof either way (a password alone is one factor);
    /// `current_password` is still checked when given. The account as read.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] (wrong password), [`Error::ReauthRequired`],
    /// [`Error::Throttled`], [`Error::UserNotFound`].
    pub(super) async fn prove_recent(
        &self,
        id: UserId,
        session: Option<SessionId>,
        current_password: Option<&Password>,
        client: &ClientInfo,
    ) -> Result<UserRecord> {
        let Some(current) = current_password else {
            self.require_recent_authentication(id, session).await?;
            return self.store.find_user(UserKey::Id(id)).await?.ok_or(Error::UserNotFound);
        };
        let record = self.verify_current_password(id, current, client).await?;
        if self.has_second_factor(id).await? {
            self.require_recent_authentication(id, session).await?;
        } else if let Some(session) = session {
            // The password is the account's whole credential, proved just
            // now: the session is recent for the window.
            self.store.record_authentication(session, self.clock.now(), Amr::PASSWORD, true).await?;
        }
        Ok(record)
    }

    /// Refuses a sensitive change from `session` unless it proved a
    /// credential within the re-authentication window and, for an account
    /// with a second factor, proved that factor too. Without a session
    /// (an operator's own call) or with the window off, nothing is asked.
    pub(super) async fn require_recent_authentication(&self, id: UserId, session: Option<SessionId>) -> Result<()> {
        let (Some(window), Some(session)) = (self.reauth_window, session) else { return Ok(()) };
        let now = self.clock.now();
        let record = self.active_session(session, id).await?;
        // A guest has no credential to prove: its session always counts
        // (upgrading, linking and deleting are all a guest may do here).
        if record.amr == Amr::NONE && self.is_guest(id).await? {
            return Ok(());
        }
        let recent = record.authenticated_at.is_some_and(|at| now - at <= window)
            && (record.amr.is_multi_factor() || !self.has_second_factor(id).await?);
        if recent { Ok(()) } else { Err(Error::ReauthRequired { max_age: window }) }
    }

    /// Deletes the account, its sessions and favorites, and enqueues a
    /// `user.deleted` task, atomically. For admins and operators; a person
    /// deleting their own account goes through [`UserService::delete_own_account`].
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn delete(&self, id: UserId, client: &ClientInfo) -> Result<()> {
        if !self.store.delete_user(id, self.clock.now()).await? {
            return Err(Error::UserNotFound);
        }
        self.task_waker.wake();
        self.audit(AuditEvent::AccountDeleted, Some(id), client, None).await;
        Ok(())
    }
}

/// A mail without a link, to the account's address or to `to`.
pub(super) fn notice(kind: TaskKind, to: Option<Email>) -> NewMail {
    NewMail { kind, payload: MailPayload { to, token: None, change: None }, token: None }
}
