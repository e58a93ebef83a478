//! The records the store traits read and write: accounts, sessions,
//! favorites, outbox tasks, audit events.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[cfg(doc)]
use super::{DeviceStore, SessionStore, UserStore};
use crate::domain::{Amr, Email, Locale, Role, SessionId, TrackId, UserCode, UserId, Username};
use crate::error::{Error, Result};

/// A user account as callers see it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Time-ordered id.
    pub id: UserId,
    /// The name as the user typed it; `None` for a guest.
    pub username: Option<Username>,
    /// The lower-cased email; `None` for a guest, or an account a provider
    /// created without an address it could vouch for.
    pub email: Option<Email>,
    /// What the account may do.
    pub role: Role,
    /// Set when an operator disabled the account; it can then neither log in
    /// nor refresh.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Whether the address is known to reach the user (by a verification
    /// link, or set by an operator); a new address starts unverified.
    pub email_verified: bool,
    /// The language of the account's mails.
    pub locale: Locale,
    /// The last successful login, if any.
    pub last_login_at: Option<DateTime<Utc>>,
    /// When the account was created (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// What to call the account in a mail or an authenticator's list: the
    /// username, else the address, else nothing.
    pub fn display_name(&self) -> &str {
        match (&self.username, &self.email) {
            (Some(name), _) => name.as_str(),
            (None, Some(email)) => email.as_str(),
            (None, None) => "",
        }
    }

    /// What an authenticator app or a passkey list shows for the account:
    /// the address, else the username.
    pub fn account_label(&self) -> &str {
        self.email.as_ref().map_or_else(|| self.display_name(), Email::as_str)
    }

    /// Whether this is a guest account (`POST /user/guest`).
    pub fn is_guest(&self) -> bool {
        self.role == Role::Guest
    }

    /// The address, or a validation error naming `email` for an account
    /// without one (a guest, or a provider account that brought none).
    ///
    /// # Errors
    /// As above.
    pub fn require_email(&self) -> Result<&Email> {
        self.email.as_ref().ok_or_else(|| {
            Error::Validation(crate::domain::ValidationError::new("email", "the account has no address"))
        })
    }
}

/// A stored user with its password hash and login-protection state.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The account.
    pub user: User,
    /// The argon2 PHC string; `None` for an account without a password (a
    /// guest, or one that signs in only with a provider or passkey).
    pub password_hash: Option<String>,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Until when login attempts are refused (account protection).
    pub locked_until: Option<DateTime<Utc>>,
    /// Grows whenever what a login proves changes: the password, the role, a
    /// disable. A session is opened only if it is still the version the login
    /// verified (see [`SessionStore::open_session`]).
    pub credential_version: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord").field("user", &self.user).finish_non_exhaustive()
    }
}

/// Which accounts a listing includes, as to guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestFilter {
    /// Every account.
    #[default]
    Include,
    /// Every account but guests (`/user/all`).
    Exclude,
    /// Guests only.
    Only,
}

impl GuestFilter {
    /// The SQL condition on `users.role` this filter adds (`and …`), the
    /// same on both backends.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            GuestFilter::Include => "",
            GuestFilter::Exclude => " and role <> 'guest'",
            GuestFilter::Only => " and role = 'guest'",
        }
    }
}

/// A guest becoming an account (see [`UserStore::upgrade_guest`]).
#[derive(Clone)]
pub struct GuestUpgrade {
    /// The guest.
    pub id: UserId,
    /// Its username from now on.
    pub username: Username,
    /// Its address, if it has one now.
    pub email: Option<Email>,
    /// Whether that address is verified (a provider vouched for it).
    pub email_verified: bool,
    /// Its password's hash (none when a provider's identity signs it in).
    pub password_hash: Option<String>,
    /// The identity it upgrades by, linked in the same transaction.
    pub identity: Option<IdentityRecord>,
    /// Mails to enqueue with it (the verification mail).
    pub mails: Vec<NewMail>,
    /// When.
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for GuestUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestUpgrade").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

/// How to find one user.
#[derive(Debug, Clone, Copy)]
pub enum UserKey<'a> {
    /// By id.
    Id(UserId),
    /// By username, case-insensitively.
    Username(&'a Username),
    /// By (lower-cased) email.
    Email(&'a Email),
}

/// A change to an account; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// A new username.
    pub username: Option<Username>,
    /// A new email.
    pub email: Option<Email>,
    /// A new password hash; when set, every session but `keep_session` is revoked
    /// in the same transaction.
    pub password_hash: Option<String>,
    /// The session that made the change and survives a password change.
    pub keep_session: Option<SessionId>,
    /// When set, the change applies only while the account still has this
    /// credential version (the one whose `current_password` was verified), so
    /// a concurrent password change, role change or disable wins.
    pub expected_credential_version: Option<i64>,
    /// A new mail language.
    pub locale: Option<Locale>,
    /// Mails the change sends, enqueued in the same transaction. A new email
    /// also clears `email_verified` and voids the account's verification
    /// tokens; a new password voids its reset tokens.
    pub mails: Vec<NewMail>,
    /// With a new email: the undo link mailed to the old address, stored in
    /// the same transaction (it reserves the old address until it expires).
    pub revert: Option<NewEmailRevert>,
}

/// An undo link of an address change (see [`UserChanges::revert`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NewEmailRevert {
    /// SHA-256 of the raw token.
    pub digest: [u8; 32],
    /// The address the link restores.
    pub old_email: Email,
    /// When it stops working (and the old address is free again).
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewEmailRevert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEmailRevert")
            .field("old_email", &self.old_email)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What redeeming an undo link does (see [`super::TokenStore::revert_email`]).
#[derive(Clone)]
pub struct EmailRevert {
    /// SHA-256 of the token presented.
    pub digest: [u8; 32],
    /// A hash of a secret nobody knows: the password becomes unusable.
    pub unusable_password_hash: String,
    /// The password-reset mail to the restored address (its token included;
    /// the store sets the token's address to the restored one).
    pub reset_mail: NewMail,
}

impl std::fmt::Debug for EmailRevert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailRevert").finish_non_exhaustive()
    }
}

/// What a mail token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Verifies the address it was sent to.
    Verify,
    /// Sets a new password.
    Reset,
}

impl TokenPurpose {
    /// `verify` or `reset`, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenPurpose::Verify => "verify",
            TokenPurpose::Reset => "reset",
        }
    }
}

/// A single-use token to store with its mail: only its digest is kept once
/// the mail is out.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// SHA-256 of the raw token.
    pub digest: [u8; 32],
    /// What it is for.
    pub purpose: TokenPurpose,
    /// The address it was sent to (a verification token verifies only this).
    pub email: Email,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("purpose", &self.purpose).field("expires_at", &self.expires_at).finish()
    }
}

/// What a mail task carries until it is delivered or dead (then the store
/// clears it): the address when it is not the account's current one, and
/// the raw token of a link.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailPayload {
    /// Where to send it; the account's address at delivery when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Email>,
    /// The raw token for the mail's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// What changed, for `email.security_changed`: the audit event's name
    /// (`totp.enable`, `totp.disable`, `recovery_codes.new`, `recovery_code.used`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

impl std::fmt::Debug for MailPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailPayload")
            .field("to", &self.to)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("change", &self.change)
            .finish()
    }
}

/// A mail to enqueue in the outbox with the change that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// One of the `email.*` kinds.
    pub kind: TaskKind,
    /// Its payload.
    pub payload: MailPayload,
    /// The token its link carries, stored (as a digest) in the same
    /// transaction; it replaces the account's older tokens of its purpose.
    pub token: Option<NewToken>,
}

impl NewMail {
    /// This mail with its token's address set to `address` (as stored).
    ///
    /// # Errors
    /// [`Error::Internal`] if `address` is not a valid address.
    pub fn for_address(&self, address: &str) -> Result<NewMail> {
        let mut mail = self.clone();
        if let Some(token) = &mut mail.token {
            token.email = Email::parse(address).map_err(Error::internal)?;
        }
        Ok(mail)
    }
}

/// An operator's change to an account (see [`UserStore::change_account`]);
/// `None` fields stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountChanges {
    /// A new role. A different role ends every session of the account.
    pub role: Option<Role>,
    /// Disable (ending every session) or enable the account.
    pub disabled: Option<bool>,
    /// Mark the address verified or not.
    pub email_verified: Option<bool>,
}

impl AccountChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.role.is_none() && self.disabled.is_none() && self.email_verified.is_none()
    }
}

/// One login: the server-side state of a refresh token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id (the `sid` claim).
    pub id: SessionId,
    /// The user who logged in.
    pub user_id: UserId,
    /// The `jti` of the only refresh token that may be used next.
    pub refresh_jti: Uuid,
    /// The `jti` the last rotation replaced, tolerated for a grace period.
    pub previous_jti: Option<Uuid>,
    /// When the last rotation happened.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When the user logged in.
    pub created_at: DateTime<Utc>,
    /// The last login or refresh.
    pub last_used_at: DateTime<Utc>,
    /// When the session ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (logout, reuse, password change, disable).
    pub revoked_at: Option<DateTime<Utc>>,
    /// The client's `User-Agent`, if given.
    pub user_agent: Option<String>,
    /// The client's IP, if known.
    pub ip: Option<String>,
    /// The name the client gave the session at login, if any.
    pub device_name: Option<String>,
    /// When this session last proved a credential (its login); `None` for a
    /// session that never did (opened by a device grant). Changes of
    /// address or password, and deletion, need it recent.
    pub authenticated_at: Option<DateTime<Utc>>,
    /// How the session signed in, with what it proved since (a step-up,
    /// a second factor confirmed from it).
    pub amr: Amr,
}

impl SessionRecord {
    /// Whether tokens of this session may still be used at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// An active session's account, read with the session
/// ([`SessionStore::session_user`]).
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The account.
    pub record: UserRecord,
    /// How the session signed in, with what it proved since.
    pub amr: Amr,
}

/// What [`UserStore::reserve_login_attempt`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Check the password; the attempt is already counted, `failures` being
    /// the consecutive failures including it.
    Allowed {
        /// Consecutive failures, this attempt included.
        failures: u32,
    },
    /// Refused without checking until then.
    Locked {
        /// When attempts are allowed again.
        until: DateTime<Utc>,
    },
}

/// A session to open at the end of a login (see [`SessionStore::open_session`]).
#[derive(Clone)]
pub struct NewSession {
    /// The session.
    pub session: SessionRecord,
    /// The user's [`UserRecord::credential_version`] when the password was read.
    pub credential_version: i64,
    /// A hash of the same password with the current parameters, to store.
    pub rehash: Option<String>,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("session", &self.session)
            .field("credential_version", &self.credential_version)
            .field("rehash", &self.rehash.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A compare-and-swap of a session's refresh `jti`.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The session.
    pub session: SessionId,
    /// The `jti` presented; the swap happens only if it is still current.
    pub expected_jti: Uuid,
    /// The `jti` of the newly issued refresh token.
    pub new_jti: Uuid,
    /// When it happens.
    pub now: DateTime<Utc>,
    /// The session's new end.
    pub expires_at: DateTime<Utc>,
}

/// A favorite track of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Favorite {
    /// The track.
    pub track_id: TrackId,
    /// When it was added (the first time: adding again changes nothing).
    pub added_at: DateTime<Utc>,
    /// Insertion order within the store, for keyset pagination.
    pub seq: i64,
}

/// What happened, as named in a deferred task's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskKind {
    /// `favorite.added`
    FavoriteAdded,
    /// `favorite.removed`
    FavoriteRemoved,
    /// `user.deleted`
    UserDeleted,
    /// `email.verify`: a link that verifies the address.
    EmailVerify,
    /// `email.password_reset`: a link that sets a new password.
    EmailPasswordReset,
    /// `email.password_changed`: a notice.
    EmailPasswordChanged,
    /// `email.email_changed`: a notice to the old address.
    EmailChanged,
    /// `email.security_changed`: a sign-in method changed, or a recovery
    /// code was used (see [`MailPayload::change`]).
    EmailSecurityChanged,
}

/// The outbox channels: a user's tasks keep their order within a channel,
/// and the channels do not wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskChannel {
    /// Events for downstream services (favorites, deletions).
    Events,
    /// Mails to the user.
    Mail,
}

impl TaskChannel {
    /// `events` or `mail`, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskChannel::Events => "events",
            TaskChannel::Mail => "mail",
        }
    }
}

impl TaskKind {
    /// The wire name, e.g. `favorite.added`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskKind::FavoriteAdded => "favorite.added",
            TaskKind::FavoriteRemoved => "favorite.removed",
            TaskKind::UserDeleted => "user.deleted",
            TaskKind::EmailVerify => "email.verify",
            TaskKind::EmailPasswordReset => "email.password_reset",
            TaskKind::EmailPasswordChanged => "email.password_changed",
            TaskKind::EmailChanged => "email.email_changed",
            TaskKind::EmailSecurityChanged => "email.security_changed",
        }
    }

    /// The channel its tasks travel on.
    pub fn channel(&self) -> TaskChannel {
        match self {
            TaskKind::FavoriteAdded | TaskKind::FavoriteRemoved | TaskKind::UserDeleted => TaskChannel::Events,
            TaskKind::EmailVerify
            | TaskKind::EmailPasswordReset
            | TaskKind::EmailPasswordChanged
            | TaskKind::EmailChanged
            | TaskKind::EmailSecurityChanged => TaskChannel::Mail,
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// [`Error::Internal`] for an unknown kind (only a corrupt store has one).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "favorite.added" => Ok(TaskKind::FavoriteAdded),
            "favorite.removed" => Ok(TaskKind::FavoriteRemoved),
            "user.deleted" => Ok(TaskKind::UserDeleted),
            "email.verify" => Ok(TaskKind::EmailVerify),
            "email.password_reset" => Ok(TaskKind::EmailPasswordReset),
            "email.password_changed" => Ok(TaskKind::EmailPasswordChanged),
            "email.email_changed" => Ok(TaskKind::EmailChanged),
            "email.security_changed" => Ok(TaskKind::EmailSecurityChanged),
            other => Err(Error::internal(format!("unknown task kind {other:?}"))),
        }
    }
}

/// Where a deferred task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskStatus {
    /// Waiting for delivery (or for a retry, or leased to a relay).
    Pending,
    /// Delivered.
    Done,
    /// Gave up after the maximum number of attempts.
    Dead,
}

impl TaskStatus {
    /// `pending`, `done` or `dead`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Done => "done",
            TaskStatus::Dead => "dead",
        }
    }

    /// Parses a stored status.
    ///
    /// # Errors
    /// [`Error::Internal`] for an unknown status.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(TaskStatus::Pending),
            "done" => Ok(TaskStatus::Done),
            "dead" => Ok(TaskStatus::Dead),
            other => Err(Error::internal(format!("unknown task status {other:?}"))),
        }
    }
}

/// A row of the `deferred_tasks` outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredTask {
    /// Increases with time; consumers can deduplicate and order on it.
    pub id: i64,
    /// What happened.
    pub kind: TaskKind,
    /// To whom.
    pub user_id: UserId,
    /// Which track, for favorite tasks.
    pub track_id: Option<TrackId>,
    /// A mail task's payload, until it is delivered or dead.
    pub payload: Option<MailPayload>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Delivery state.
    pub status: TaskStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub available_at: DateTime<Utc>,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// While in the future, a relay holds the task (it is in flight).
    pub leased_until: Option<DateTime<Utc>>,
    /// When its state last changed (for a `done` task: when it was delivered).
    pub updated_at: DateTime<Utc>,
    /// The W3C `traceparent` of the request that wrote it, when traces were
    /// exported: its delivery continues that trace.
    pub traceparent: Option<String>,
}

/// An account's TOTP factor as stored: pending until a first code confirms it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// The shared secret, sealed under the data key (see `auth::DataKeys`).
    pub sealed_secret: String,
    /// When this enrollment began; a pending one expires some minutes after.
    pub started_at: DateTime<Utc>,
    /// When a first code confirmed it; `None` while pending.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The last time step whose code was accepted: only later ones are.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("sealed_secret", &"[redacted]")
            .field("started_at", &self.started_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// A sign-in waiting for its second factor, as written when the password
/// proved right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMfaChallenge {
    /// SHA-256 of the `mfa_token` handed to the client.
    pub digest: [u8; 32],
    /// Whose sign-in it is.
    pub user: UserId,
    /// The account's credential version the password check saw: a change
    /// since (password, factors) voids the sign-in.
    pub credential_version: i64,
    /// What the first step proved: the password, or a provider.
    pub first_factor: Amr,
    /// When the first step proved right.
    pub created_at: DateTime<Utc>,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

/// A sign-in still waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// Whose sign-in it is.
    pub user: UserId,
    /// The credential version the password check saw.
    pub credential_version: i64,
    /// What the first step proved.
    pub first_factor: Amr,
    /// Wrong codes so far.
    pub failures: u32,
}

/// A batch of tasks leased to one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Names this lease; only it can settle these tasks.
    pub lease_id: Uuid,
    /// The tasks, in id order; a user's tasks appear in their order.
    pub tasks: Vec<DeferredTask>,
}

/// How many tasks are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Waiting (including leased and backing off).
    pub pending: u64,
    /// Delivered.
    pub done: u64,
    /// Given up on.
    pub dead: u64,
}

impl TaskCounts {
    /// Adds `n` tasks in `status`.
    pub fn add(&mut self, status: TaskStatus, n: u64) {
        match status {
            TaskStatus::Pending => self.pending += n,
            TaskStatus::Done => self.done += n,
            TaskStatus::Dead => self.dead += n,
        }
    }
}

/// The tasks still waiting for something: a relay, or an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitingTasks {
    /// Waiting for delivery (including leased and backing off).
    pub pending: u64,
    /// Given up on; waiting for an operator.
    pub dead: u64,
}

/// Which audit entries to list; `Default` is every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries about this account.
    pub user: Option<UserId>,
    /// Only entries of this event, e.g. `login.failure`.
    pub event: Option<String>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increases with time.
    pub id: i64,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// What happened, e.g. `login.failure` (see `service::AuditEvent`).
    pub event: String,
    /// Whose account, when known.
    pub user_id: Option<UserId>,
    /// The admin who acted on the account; `None` when the user acted, or an
    /// operator on the database host.
    pub actor_id: Option<UserId>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// A short detail (a reason, a new role); never a secret.
    pub detail: Option<String>,
}

/// A device's sign-in request (RFC 8628) to store: the device polls with
/// the raw device code, of which only the digest is kept; a person types
/// the user code on another screen.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDeviceGrant {
    /// SHA-256 of the raw device code.
    pub digest: [u8; 32],
    /// The user code, normalized (8 upper-case letters, no dash).
    pub user_code: UserCode,
    /// The public client that asked.
    pub client_id: String,
    /// The name the device gave itself, for the person approving and for the session.
    pub device_name: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When the codes stop working.
    pub expires_at: DateTime<Utc>,
    /// The least time between two polls, in seconds.
    pub interval_secs: u32,
    /// The address the device asked from, shown to the approver.
    pub request_ip: Option<String>,
}

impl std::fmt::Debug for NewDeviceGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDeviceGrant")
            .field("client_id", &self.client_id)
            .field("device_name", &self.device_name)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where a device's sign-in request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    /// Nobody has approved or declined it yet.
    Pending,
    /// The user approved it: the device may exchange it for a session.
    Approved(UserId),
    /// The user declined it.
    Denied(UserId),
}

/// A device's sign-in request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// The user code, normalized.
    pub user_code: UserCode,
    /// The public client that asked.
    pub client_id: String,
    /// The name the device gave itself.
    pub device_name: Option<String>,
    /// When the device asked.
    pub created_at: DateTime<Utc>,
    /// The address the device asked from.
    pub request_ip: Option<String>,
    /// When the codes stop working.
    pub expires_at: DateTime<Utc>,
    /// The least time between two polls, in seconds (grown by each `slow_down`).
    pub interval_secs: u32,
    /// Wrong user codes counted against this one (it is void at the limit).
    pub wrong_tries: u32,
    /// Approved, declined, or neither yet.
    pub decision: DeviceDecision,
    /// What an approval is bound to; `None` unless approved.
    pub approval: Option<Approval>,
}

/// What an approved device request is bound to: it may be redeemed only
/// while the approving session lives and the account's credentials are
/// those it was approved under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    /// The session that approved it.
    pub session: SessionId,
    /// The account's [`UserRecord::credential_version`] at the approval.
    pub credential_version: i64,
}

/// One poll of a device's sign-in request (see [`DeviceStore::poll_device_grant`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePoll {
    /// The request, after the poll.
    pub grant: DeviceGrant,
    /// The poll came sooner than the interval after the previous one, and
    /// the interval grew.
    pub too_fast: bool,
}

/// What a person does with a user code (see [`DeviceStore::resolve_user_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCodeAction {
    /// Only look: which device is asking.
    Look,
    /// Approve it for this user, from this session of theirs (the approval
    /// is bound to it and to the account's current credentials).
    Approve {
        /// The account approving.
        user: UserId,
        /// The session it approves from.
        session: SessionId,
    },
    /// Decline it, as this user.
    Deny(UserId),
}

/// A passkey of an account, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// Its id in the API (`/user/passkeys/{id}`).
    pub id: Uuid,
    /// The account.
    pub user_id: UserId,
    /// The RP id it was registered for.
    pub rp_id: String,
    /// The WebAuthn credential id (unique across accounts).
    pub credential_id: Vec<u8>,
    /// The COSE public key.
    pub public_key: Vec<u8>,
    /// The last signature counter seen (0: the authenticator does not count).
    pub sign_count: u32,
    /// BE at registration: whether it may be synced (fixed).
    pub backup_eligible: bool,
    /// BS as last seen: whether it is synced.
    pub backed_up: bool,
    /// How the browser said it reaches the authenticator.
    pub transports: Vec<String>,
    /// The name the person gave it.
    pub name: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// Its last sign-in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a WebAuthn ceremony is for; a ceremony finishes only the purpose it
/// was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Adding a passkey to the signed-in account.
    Register,
    /// Signing in with a discoverable passkey (no account known yet).
    Login,
    /// The second step of a sign-in whose password was right.
    Mfa,
    /// A step-up of a session.
    Reauth,
    /// A sign-in at another provider in flight (`/auth/{provider}/start`
    /// to its callback): the challenge holds its [`ProviderState`](crate::auth::oidc::ProviderState).
    ProviderSignIn,
    /// A provider identity held until the account with its verified
    /// address signs in and links it (`link_required`).
    IdentityLink,
}

impl CeremonyPurpose {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Register => "register",
            CeremonyPurpose::Login => "login",
            CeremonyPurpose::Mfa => "mfa",
            CeremonyPurpose::Reauth => "reauth",
            CeremonyPurpose::ProviderSignIn => "provider",
            CeremonyPurpose::IdentityLink => "identity_link",
        }
    }
}

/// A short exchange as started — a WebAuthn ceremony, a provider sign-in,
/// an identity held for linking: single use, bound to its purpose, minutes long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// The SHA-256 of the token the client holds.
    pub digest: [u8; 32],
    /// What it is for.
    pub purpose: CeremonyPurpose,
    /// The challenge the authenticator must sign; for the other purposes,
    /// what they carry (JSON).
    pub challenge: Vec<u8>,
    /// The account, where known (registration, second step, step-up).
    pub user: Option<UserId>,
    /// The session that started it (registration, step-up).
    pub session: Option<SessionId>,
    /// The sign-in it completes (second step): `mfa_challenges.digest`.
    pub mfa_digest: Option<[u8; 32]>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// An account's identity at another provider, keyed as the provider keys
/// it: (issuer, subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    /// The provider's issuer URL (GitHub: `https://github.com`).
    pub issuer: String,
    /// The provider's id of the person.
    pub subject: String,
    /// The configured provider name (`google`, `apple`, …).
    pub provider: String,
    /// The account it signs in to.
    pub user: UserId,
    /// The address the provider named (lower-cased), if any.
    pub email: Option<Email>,
    /// Whether the provider said it verified that address.
    pub email_verified: bool,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

/// What removing an identity did (see [`super::IdentityStore::unlink_identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlinked {
    /// Removed.
    Removed,
    /// The account has no identity at that provider.
    NotFound,
    /// It is the account's last way to sign in: kept.
    LastSignInMethod,
}
