//! Email verification and password reset: single-use tokens sent by mail
//! through the outbox.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use super::accounts::notice;
use super::{AuditEvent, ClientInfo, UserService};
use crate::domain::{Email, Password, UserId};
use crate::error::{Error, Result};
use crate::store::{
    EmailRevert, MailPayload, NewEmailRevert, NewMail, NewToken, TaskKind, TokenMail, TokenOwner, TokenPurpose,
};

/// Raw token bytes: 32, sent as 43 characters of URL-safe base64.
const TOKEN_BYTES: usize = 32;

impl UserService {
    /// Sends a new verification mail to the account's current address; its
    /// link replaces any sent before.
    ///
    /// # Errors
    /// [`Error::MailNotConfigured`]; [`Error::UserNotFound`];
    /// [`Error::EmailAlreadyVerified`]; [`Error::Throttled`] when one was
    /// sent less than the resend interval ago.
    pub async fn request_verification(&self, id: UserId) -> Result<()> {
        self.mail_enabled()?;
        let user = self.get(id).await?;
        if user.email_verified {
            return Err(Error::EmailAlreadyVerified);
        }
        let mail = self.verification_mail(user.require_email()?, None)?;
        match self
            .store
            .send_token_mail(TokenOwner::Id(id), &mail, Some(self.resend_horizon()?), self.clock.now())
            .await?
        {
            TokenMail::Sent(_) => {
                self.task_waker.wake();
                Ok(())
            }
            TokenMail::TooSoon => Err(Error::Throttled { retry_after: self.mail.resend_interval }),
            TokenMail::NoAccount => Err(Error::UserNotFound),
        }
    }

    /// Uses a verification token: the address it was sent to is verified.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for an unknown, used or expired token, or one
    /// sent to an address the account no longer has.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<UserId> {
        let digest = token_digest(token)?;
        let user = self.store.verify_email(&digest, self.clock.now()).await?.ok_or(Error::InvalidToken)?;
        self.audit(AuditEvent::EmailVerified, Some(user), client, None).await;
        Ok(user)
    }

    /// Sends a password-reset mail to the account with this address, if
    /// there is one. The caller cannot tell which: the answer, and the work
    /// done on the way (a token made and hashed, the same store statements,
    /// one audit entry), are the same either way. Limiting requests per
    /// address and per client is the caller's (the server's) job, for
    /// existing and unknown addresses alike, or the limit itself would tell.
    ///
    /// # Errors
    /// [`Error::MailNotConfigured`] only.
    pub async fn forgot_password(&self, email: &Email, client: &ClientInfo) -> Result<()> {
        self.mail_enabled()?;
        let (raw, token) = self.new_token(TokenPurpose::Reset, email)?;
        let mail = NewMail {
            kind: TaskKind::EmailPasswordReset,
            payload: MailPayload { to: None, token: Some(raw), change: None },
            token: Some(token),
        };
        // Both outcomes write one task and one audit entry.
        let (user, detail) =
            match self.store.send_token_mail(TokenOwner::Email(email), &mail, None, self.clock.now()).await? {
                TokenMail::Sent(user) => (Some(user), None),
                _ => (None, Some("no account has the address".to_owned())),
            };
        self.task_waker.wake();
        self.audit(AuditEvent::PasswordResetRequested, user, client, detail).await;
        Ok(())
    }

    /// Uses a reset token: sets `password`, ends every session of the
    /// account, clears login throttling and sends a notice.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for an unknown, used or expired token;
    /// [`Error::Overloaded`] if hashing is saturated.
    pub async fn reset_password(&self, token: &str, password: &Password, client: &ClientInfo) -> Result<UserId> {
        let digest = token_digest(token)?;
        let hash = self.hash_new_password(password).await?;
        let mail = notice(TaskKind::EmailPasswordChanged, None);
        let user =
            self.store.reset_password(&digest, &hash, &mail, self.clock.now()).await?.ok_or(Error::InvalidToken)?;
        self.task_waker.wake();
        self.audit(AuditEvent::PasswordReset, Some(user), client, Some("every session revoked".into())).await;
        Ok(user)
    }

    /// Undoes an address change with the link mailed to the old address:
    /// the old address comes back, verified; every session ends (device
    /// cookies and device approvals with them); the password becomes
    /// unusable, and a reset link goes to the old address. For the owner
    /// whose account was taken over by a stolen session: whoever changed the
    /// address is out, and only the owner's mailbox gets back in.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for an unknown, used or expired link;
    /// [`Error::MailNotConfigured`]; [`Error::Overloaded`] if hashing is saturated.
    pub async fn revert_email_change(&self, token: &str, client: &ClientInfo) -> Result<UserId> {
        self.mail_enabled()?;
        let digest = token_digest(token)?;
        // A hash of a secret nobody ever sees: well-formed, so a login with
        // any password is a plain wrong password, and costs what one costs.
        let (unknowable, _) = new_secret();
        let unusable = self.hasher.hash(&Password::presented("password", &unknowable)?).await?;
        // The reset link goes to the restored address (the account's at delivery).
        let (raw, reset) = self.reset_token_to_restored_address()?;
        let reset_mail = NewMail {
            kind: TaskKind::EmailPasswordReset,
            payload: MailPayload { to: None, token: Some(raw), change: None },
            token: Some(reset),
        };
        let revert = EmailRevert { digest, unusable_password_hash: unusable, reset_mail };
        let user = self.store.revert_email(&revert, self.clock.now()).await?.ok_or(Error::InvalidToken)?;
        self.task_waker.wake();
        let detail = "address restored, every session ended, password reset sent".to_owned();
        self.audit(AuditEvent::EmailChangeReverted, Some(user), client, Some(detail)).await;
        Ok(user)
    }

    /// A reset token for the address an undo link restores; the address is
    /// only known inside the store's transaction, and a reset token's
    /// address is informational (it resets the account's password).
    fn reset_token_to_restored_address(&self) -> Result<(String, NewToken)> {
        let placeholder = Email::parse("restored@address.invalid").map_err(Error::internal)?;
        self.new_token(TokenPurpose::Reset, &placeholder)
    }

    /// The undo link of a change away from `old`, and its record.
    pub(super) fn revert_link(&self, old: &Email) -> Result<(String, NewEmailRevert)> {
        let ttl = chrono::Duration::from_std(self.mail.revert_token_ttl).map_err(Error::internal)?;
        let (raw, digest) = new_secret();
        Ok((raw, NewEmailRevert { digest, old_email: old.clone(), expires_at: self.clock.now() + ttl }))
    }

    /// A verification mail for `address`, sent to `to` (the account's
    /// address at delivery when `None`).
    pub(super) fn verification_mail(&self, address: &Email, to: Option<&Email>) -> Result<NewMail> {
        let (raw, token) = self.new_token(TokenPurpose::Verify, address)?;
        Ok(NewMail {
            kind: TaskKind::EmailVerify,
            payload: MailPayload { to: to.cloned(), token: Some(raw), change: None },
            token: Some(token),
        })
    }

    fn new_token(&self, purpose: TokenPurpose, email: &Email) -> Result<(String, NewToken)> {
        let ttl = match purpose {
            TokenPurpose::Verify => self.mail.verify_token_ttl,
            TokenPurpose::Reset => self.mail.reset_token_ttl,
        };
        let expires_at = self.clock.now() + chrono::Duration::from_std(ttl).map_err(Error::internal)?;
        let (raw, digest) = new_secret();
        Ok((raw, NewToken { digest, purpose, email: email.clone(), expires_at }))
    }

    fn mail_enabled(&self) -> Result<()> {
        if self.mail.enabled { Ok(()) } else { Err(Error::MailNotConfigured) }
    }

    /// Tokens made after this are too recent for another mail of their purpose.
    fn resend_horizon(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(self.clock.now() - chrono::Duration::from_std(self.mail.resend_interval).map_err(Error::internal)?)
    }
}

/// A new random secret to hand out (a mail token, a device code), and the
/// digest to store in its place.
pub(super) fn new_secret() -> (String, [u8; 32]) {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    let raw = URL_SAFE_NO_PAD.encode(bytes);
    let digest = Sha256::digest(raw.as_bytes()).into();
    (raw, digest)
}

/// The stored form of a secret a client sent back; anything that is not a
/// secret we could have made is refused like an unknown one.
pub(super) fn token_digest(token: &str) -> Result<[u8; 32]> {
    let well_formed = URL_SAFE_NO_PAD.decode(token).is_ok_and(|bytes| bytes.len() == TOKEN_BYTES);
    if !well_formed {
        return Err(Error::InvalidToken);
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}
