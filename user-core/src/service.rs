//! [`UserService`]: the one facade every frontend calls.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::auth::{
    AccessClaims, HashingConfig, IssuedTokens, KeySet, PasswordHasher, RefreshClaims, SigningConfig, TokenConfig,
    Tokens, Verified,
};
use crate::clock::{Clock, SystemClock};
use crate::domain::{Email, Login, MAX_BATCH, Password, Role, SessionId, TrackId, UserId, Username, ValidationError};
use crate::error::{Error, ForbiddenReason, Result, UnauthorizedReason};
use crate::page::{self, Page, PageRequest};
use crate::store::{
    AuditRecord, Favorite, LoginAttempt, NewSession, Rotation, SessionRecord, Store, User, UserChanges, UserKey,
    UserRecord,
};
use crate::tasks::TaskWaker;

/// Everything that tunes the service; `Default` is production-ready.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Token lifetimes, issuer and audience.
    pub tokens: TokenConfig,
    /// Where signing keys come from (default: HS256, generated and stored).
    pub signing: SigningConfig,
    /// argon2id parameters and hashing concurrency.
    pub hashing: HashingConfig,
    /// How long after a rotation the replaced refresh token is refused without
    /// revoking the session (default 10 s): covers a client that sent two
    /// refreshes at once.
    pub refresh_grace: Duration,
    /// Require `current_password` for password and email changes.
    pub require_current_password: bool,
    /// How repeated failed logins of one account are slowed down.
    pub lockout: LockoutPolicy,
}

/// Account protection: after `threshold` consecutive failed logins, further
/// attempts are refused for a wait that doubles with each further failure,
/// from `base` up to `cap`. It slows guessing down without letting anyone
/// lock a victim out for good; a successful login resets it. The state lives
/// in the store, so every replica enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures before the first wait (default 5).
    pub threshold: u32,
    /// The first wait (default 2 s).
    pub base: Duration,
    /// The longest wait (default 15 min).
    pub cap: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { threshold: 5, base: Duration::from_secs(2), cap: Duration::from_secs(15 * 60) }
    }
}

impl LockoutPolicy {
    /// The wait imposed after `failures` consecutive failures, if any.
    pub fn wait_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.threshold)?;
        Some(self.base.saturating_mul(1u32 << over.min(31)).min(self.cap))
    }
}

/// Security events written to the audit trail (tracing target `audit`, and
/// the store's `audit_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// An account was created.
    Registered,
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed (unknown user, wrong password, disabled account).
    LoginFailed,
    /// A login was refused by account protection.
    LoginThrottled,
    /// A rotated refresh token was presented again; the session was revoked.
    RefreshReuseDetected,
    /// A session ended by logout.
    LoggedOut,
    /// A password was changed.
    PasswordChanged,
    /// An email address was changed.
    EmailChanged,
    /// An operator changed a role.
    RoleChanged,
    /// An operator disabled an account.
    AccountDisabled,
    /// An operator enabled an account.
    AccountEnabled,
    /// An account was deleted.
    AccountDeleted,
    /// An operator ended every session of an account.
    SessionsRevoked,
}

impl AuditEvent {
    /// The stored name, e.g. `login.failure`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditEvent::Registered => "register",
            AuditEvent::LoginSucceeded => "login.success",
            AuditEvent::LoginFailed => "login.failure",
            AuditEvent::LoginThrottled => "login.throttled",
            AuditEvent::RefreshReuseDetected => "refresh.reuse",
            AuditEvent::LoggedOut => "logout",
            AuditEvent::PasswordChanged => "password.change",
            AuditEvent::EmailChanged => "email.change",
            AuditEvent::RoleChanged => "role.change",
            AuditEvent::AccountDisabled => "account.disable",
            AuditEvent::AccountEnabled => "account.enable",
            AuditEvent::AccountDeleted => "account.delete",
            AuditEvent::SessionsRevoked => "sessions.revoke",
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            tokens: TokenConfig::default(),
            signing: SigningConfig::default(),
            hashing: HashingConfig::default(),
            refresh_grace: Duration::from_secs(10),
            require_current_password: false,
            lockout: LockoutPolicy::default(),
        }
    }
}

/// A new account's fields, already valid.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The username.
    pub username: Username,
    /// The email.
    pub email: Email,
    /// The password.
    pub password: Password,
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
}

/// Who is calling, as far as the transport knows; kept on the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client's address.
    pub ip: Option<IpAddr>,
}

/// A successful login: the account and its new token pair.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The account.
    pub user: User,
    /// The new session's tokens.
    pub tokens: IssuedTokens,
}

/// The user service: registration, login, sessions, profile, admin
/// operations and favorites over one [`Store`].
///
/// Cheap to clone; clones share the store, keys and hashing pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), user_core::Error> {
/// use user_core::{domain::*, service::*, store};
///
/// let store = store::open("sqlite::memory:").await?;
/// store.migrate().await?;
/// let service = UserService::new(store, ServiceConfig::default()).await?;
///
/// let user = service.register(Registration {
///     username: Username::parse("alice")?,
///     email: Email::parse("alice@example.com")?,
///     password: Password::parse("correct horse battery")?,
/// }, &ClientInfo::default()).await?;
/// let login = service
///     .login(&Login::parse("alice")?, &Password::parse("correct horse battery")?, &ClientInfo::default())
///     .await?;
/// let claims = service.authenticate(&login.tokens.access).await?;
/// service.add_favorites(claims.sub, &TrackId::parse_batch("42,43")?).await?;
/// assert_eq!(claims.sub, user.id);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct UserService {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    tokens: Tokens,
    clock: Arc<dyn Clock>,
    refresh_grace: chrono::Duration,
    require_current_password: bool,
    lockout: LockoutPolicy,
    task_waker: TaskWaker,
}

impl UserService {
    /// A service over `store` (already migrated) with the system clock. Loads
    /// or generates the signing keys.
    ///
    /// # Errors
    /// [`Error::Validation`] for bad configuration; [`Error::Internal`] if the
    /// store fails.
    pub async fn new(store: Arc<dyn Store>, config: ServiceConfig) -> Result<Self> {
        Self::with_clock(store, config, Arc::new(SystemClock)).await
    }

    /// Like [`UserService::new`] with an injected clock (for tests).
    ///
    /// # Errors
    /// As [`UserService::new`].
    pub async fn with_clock(store: Arc<dyn Store>, config: ServiceConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let now = clock.now();
        let keys = match &config.signing {
            SigningConfig::GeneratedHs256 => {
                let secret = store.get_or_insert_secret("jwt.hs256", &crate::auth::generate_secret(), now).await?;
                KeySet::hs256(&[secret])?
            }
            SigningConfig::GeneratedEd25519 => {
                let seed = store.get_or_insert_secret("jwt.ed25519.seed", &crate::auth::generate_secret(), now).await?;
                let seed: [u8; 32] =
                    seed.try_into().map_err(|_| Error::internal("stored Ed25519 seed is not 32 bytes"))?;
                KeySet::ed25519_from_seeds(&[seed])?
            }
            SigningConfig::Hs256(secrets) => KeySet::hs256(secrets)?,
            SigningConfig::Ed25519Pem(pems) => KeySet::ed25519_from_pem(pems)?,
        };
        Ok(Self {
            store,
            hasher: PasswordHasher::new(&config.hashing)?,
            tokens: Tokens::new(keys, config.tokens),
            clock,
            refresh_grace: chrono::Duration::from_std(config.refresh_grace).map_err(Error::internal)?,
            require_current_password: config.require_current_password,
            lockout: config.lockout,
            task_waker: TaskWaker::default(),
        })
    }

    /// The token issuer (its key set publishes the JWKS).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Woken whenever this service writes a deferred task; give it to the
    /// [`Relay`](crate::tasks::Relay) so it delivers at once.
    pub fn task_waker(&self) -> TaskWaker {
        self.task_waker.clone()
    }

    /// The password hasher (for its counters).
    pub fn password_hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The store, for operator tooling and health checks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates an account with the `user` role.
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

    /// Creates an account with a chosen role (operators bootstrap the first
    /// admin with this).
    ///
    /// # Errors
    /// As [`UserService::register`].
    pub async fn create_user(&self, reg: Registration, role: Role) -> Result<User> {
        let user = self.insert_user(reg, role).await?;
        let detail = format!("by an operator, role {role}");
        self.audit(AuditEvent::Registered, Some(user.id), &ClientInfo::default(), Some(detail)).await;
        Ok(user)
    }

    async fn insert_user(&self, reg: Registration, role: Role) -> Result<User> {
        let password_hash = self.hasher.hash(&reg.password).await?;
        let now = self.clock.now();
        let user = User {
            id: UserId::new(),
            username: reg.username,
            email: reg.email,
            role,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        };
        let record = UserRecord {
            user: user.clone(),
            password_hash,
            failed_logins: 0,
            locked_until: None,
            credential_version: 0,
        };
        self.store.insert_user(&record).await?;
        Ok(user)
    }

    /// Writes a security event to the log (target `audit`) and the store. A
    /// failure to store it is logged, never fatal: the operation already happened.
    async fn audit(&self, event: AuditEvent, user: Option<UserId>, client: &ClientInfo, detail: Option<String>) {
        let ip = client.ip.map(|ip| ip.to_string());
        tracing::info!(
            target: "audit",
            event = event.as_str(),
            user_id = user.map(|u| u.to_string()).unwrap_or_default(),
            ip = ip.as_deref().unwrap_or_default(),
            user_agent = client.user_agent.as_deref().unwrap_or_default(),
            detail = detail.as_deref().unwrap_or_default(),
            "security event"
        );
        let entry = AuditRecord {
            id: 0,
            created_at: self.clock.now(),
            event: event.as_str().to_owned(),
            user_id: user,
            ip,
            user_agent: client.user_agent.as_deref().map(|ua| ua.chars().take(256).collect()),
            detail,
        };
        if let Err(e) = self.store.record_audit(&entry).await {
            tracing::error!(error = %e, event = event.as_str(), "could not store an audit event");
        }
    }

    /// Checks the password and opens a new session.
    ///
    /// An unknown user costs one dummy verification, so timing does not tell
    /// unknown users from wrong passwords; a disabled account is reported only
    /// after its password verifies. When the stored hash was made with other
    /// parameters than the configured ones, it is replaced.
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::InvalidCredentials`],
    /// [`Error::Forbidden`] (disabled), [`Error::Overloaded`].
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, login: &Login, password: &Password, client: &ClientInfo) -> Result<LoginOutcome> {
        let key = match login {
            Login::Username(name) => UserKey::Username(name),
            Login::Email(email) => UserKey::Email(email),
        };
        let Some(record) = self.store.find_user(key).await? else {
            self.hasher.verify_dummy(password).await?;
            self.audit(AuditEvent::LoginFailed, None, client, Some("unknown user".into())).await;
            return Err(Error::UserNotFound);
        };
        let id = record.user.id;
        let verified = self.check_password(&record, password, client, "wrong password").await?;
        if record.user.disabled_at.is_some() {
            self.audit(AuditEvent::LoginFailed, Some(id), client, Some("account disabled".into())).await;
            return Err(Error::Forbidden(ForbiddenReason::AccountDisabled));
        }
        let Some(tokens) = self.open_session(&record, verified.rehashed, client).await? else {
            // The password, role or state changed between reading the
            // account and now: what was verified is no longer the credential.
            let detail = Some("credentials changed during the login".into());
            self.audit(AuditEvent::LoginFailed, Some(id), client, detail).await;
            return Err(Error::InvalidCredentials);
        };
        self.audit(AuditEvent::LoginSucceeded, Some(id), client, None).await;
        Ok(LoginOutcome { user: record.user, tokens })
    }

    /// Checks `password` against the account under the lockout: the attempt
    /// is reserved (and counted) in the store before any hashing, so
    /// concurrent guesses get no more checks than the lockout allows. A wrong
    /// password is audited as a failed login with `wrong` as the detail. A
    /// success leaves the attempt counted: the caller clears it, in the
    /// transaction that acts on the success.
    async fn check_password(
        &self,
        record: &UserRecord,
        password: &Password,
        client: &ClientInfo,
        wrong: &str,
    ) -> Result<Verified> {
        let id = record.user.id;
        let now = self.clock.now();
        let policy = self.lockout;
        let lock = Box::new(move |failures: u32| policy.wait_after(failures).map(|wait| now + wait));
        let failures = match self.store.reserve_login_attempt(id, now, lock).await? {
            Some(LoginAttempt::Allowed { failures }) => failures,
            Some(LoginAttempt::Locked { until }) => {
                self.audit(AuditEvent::LoginThrottled, Some(id), client, None).await;
                let retry_after = (until - now).to_std().unwrap_or_default();
                return Err(Error::Throttled { retry_after: retry_after.max(Duration::from_secs(1)) });
            }
            None => return Err(Error::UserNotFound),
        };
        match self.hasher.verify(password, &record.password_hash).await {
            Err(Error::InvalidCredentials) => {
                let detail = format!("{wrong} ({failures} in a row)");
                self.audit(AuditEvent::LoginFailed, Some(id), client, Some(detail)).await;
                Err(Error::InvalidCredentials)
            }
            other => other,
        }
    }

    /// Opens a session for a login that verified `record`'s password; `None`
    /// if the account's credentials changed since `record` was read.
    async fn open_session(
        &self,
        record: &UserRecord,
        rehash: Option<String>,
        client: &ClientInfo,
    ) -> Result<Option<IssuedTokens>> {
        let user = &record.user;
        let now = self.clock.now();
        let sid = SessionId::new();
        let jti = Uuid::now_v7();
        let (access, access_expires_at) = self.tokens.issue_access(user.id, sid, user.role, now)?;
        let (refresh, refresh_expires_at) = self.tokens.issue_refresh(user.id, sid, jti, now)?;
        let session = SessionRecord {
            id: sid,
            user_id: user.id,
            refresh_jti: jti,
            previous_jti: None,
            rotated_at: None,
            created_at: now,
            last_used_at: now,
            expires_at: refresh_expires_at,
            revoked_at: None,
            user_agent: client.user_agent.as_deref().map(|ua| ua.chars().take(256).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
        };
        let opened = self
            .store
            .open_session(&NewSession { session, credential_version: record.credential_version, rehash })
            .await?;
        Ok(opened.then_some(IssuedTokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
            session_id: sid,
            user_id: user.id,
        }))
    }

    /// Exchanges a refresh token for a new pair, rotating the session's refresh
    /// token by compare-and-swap: of two concurrent refreshes with one token,
    /// exactly one wins.
    ///
    /// Presenting the token just replaced, within the grace period, is refused
    /// without harm; presenting any other stale token of the session is taken
    /// as theft and revokes the session.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] with the reason.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<IssuedTokens> {
        let now = self.clock.now();
        let claims = self.tokens.verify_refresh(refresh_token, now)?;
        let mut session = self.active_session(claims.sid, claims.sub).await?;
        if session.refresh_jti == claims.jti {
            let user = match self.store.find_user(UserKey::Id(claims.sub)).await? {
                Some(record) if record.user.disabled_at.is_none() => record.user,
                _ => return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked)),
            };
            let new_jti = Uuid::now_v7();
            let (access, access_expires_at) = self.tokens.issue_access(user.id, session.id, user.role, now)?;
            let (refresh, refresh_expires_at) = self.tokens.issue_refresh(user.id, session.id, new_jti, now)?;
            let rotation = Rotation {
                session: session.id,
                expected_jti: claims.jti,
                new_jti,
                now,
                expires_at: refresh_expires_at,
            };
            if self.store.rotate_session(&rotation).await? {
                return Ok(IssuedTokens {
                    access,
                    access_expires_at,
                    refresh,
                    refresh_expires_at,
                    session_id: session.id,
                    user_id: user.id,
                });
            }
            // Another refresh with the same token won the race: judge the token again.
            session = self.active_session(claims.sid, claims.sub).await?;
        }
        let within_grace = session.previous_jti == Some(claims.jti)
            && session.rotated_at.is_some_and(|at| now <= at + self.refresh_grace);
        if within_grace {
            return Err(Error::Unauthorized(UnauthorizedReason::RefreshRecentlyRotated));
        }
        self.store.revoke_session(session.id, now).await?;
        let detail = format!("session {} revoked", session.id);
        self.audit(AuditEvent::RefreshReuseDetected, Some(claims.sub), client, Some(detail)).await;
        Err(Error::Unauthorized(UnauthorizedReason::RefreshReused))
    }

    async fn active_session(&self, sid: SessionId, user: UserId) -> Result<SessionRecord> {
        match self.store.session(sid).await? {
            Some(s) if s.user_id == user && s.is_active(self.clock.now()) => Ok(s),
            _ => Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked)),
        }
    }

    /// Verifies an access token and that its session is still active.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] if the token is malformed, expired, of the wrong
    /// type, or its session was revoked or deleted.
    pub async fn authenticate(&self, access_token: &str) -> Result<AccessClaims> {
        self.me(access_token).await.map(|(claims, _)| claims)
    }

    /// The account an access token belongs to, checked in one store round
    /// trip: token valid, session active, user present. The one path from an
    /// access token to a live session ([`UserService::authenticate`] takes it too).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] as [`UserService::authenticate`].
    pub async fn me(&self, access_token: &str) -> Result<(AccessClaims, User)> {
        let now = self.clock.now();
        let claims = self.tokens.verify_access(access_token, now)?;
        match self.store.session_user(claims.sid, claims.sub, now).await? {
            Some(record) => Ok((claims, record.user)),
            None => Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked)),
        }
    }

    /// Verifies a refresh token for logging out: its session must be active and
    /// the token its current or just-replaced one. Does not rotate.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] otherwise.
    pub async fn authenticate_refresh(&self, refresh_token: &str) -> Result<RefreshClaims> {
        let claims = self.tokens.verify_refresh(refresh_token, self.clock.now())?;
        let session = self.active_session(claims.sid, claims.sub).await?;
        if session.refresh_jti != claims.jti && session.previous_jti != Some(claims.jti) {
            return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked));
        }
        Ok(claims)
    }

    /// Ends a session; its access and refresh tokens stop working at once.
    /// Ending an already ended session is not an error.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn logout(&self, user: UserId, session: SessionId, client: &ClientInfo) -> Result<()> {
        if self.store.revoke_session(session, self.clock.now()).await? {
            self.audit(AuditEvent::LoggedOut, Some(user), client, None).await;
        }
        Ok(())
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
    /// session of the user (the calling session `keep` survives).
    ///
    /// # Errors
    /// [`Error::Validation`] for an empty update or a missing required
    /// `current_password`; [`Error::Unauthorized`] for a wrong
    /// `current_password`; [`Error::Conflict`] naming the taken field;
    /// [`Error::UserNotFound`].
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update(
        &self,
        id: UserId,
        keep: Option<SessionId>,
        update: ProfileUpdate,
        client: &ClientInfo,
    ) -> Result<User> {
        if update.username.is_none() && update.email.is_none() && update.password.is_none() {
            return Err(ValidationError::new("body", "give at least one of username, email, password").into());
        }
        let sensitive = update.password.is_some() || update.email.is_some();
        if self.require_current_password && sensitive && update.current_password.is_none() {
            return Err(ValidationError::new("current_password", "is required to change the password or email").into());
        }
        let mut verified_version = None;
        if let Some(current) = &update.current_password {
            // Counted and throttled like a login: a stolen access token must
            // not let anyone guess the password at hashing speed.
            let record = self.store.find_user(UserKey::Id(id)).await?.ok_or(Error::UserNotFound)?;
            match self.check_password(&record, current, client, "wrong current password").await {
                Err(Error::InvalidCredentials) => {
                    return Err(Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword));
                }
                other => other?,
            };
            self.store.reset_login_failures(id).await?;
            verified_version = Some(record.credential_version);
        }
        let password_hash = match &update.password {
            Some(p) => Some(self.hasher.hash(p).await?),
            None => None,
        };
        let email_changed = update.email.is_some();
        let changes = UserChanges {
            username: update.username,
            email: update.email,
            password_hash,
            keep_session: keep,
            expected_credential_version: verified_version,
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
        Ok(record.user)
    }

    /// Deletes the account, its sessions and favorites, and enqueues a
    /// `user.deleted` task, atomically.
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

    /// Every account, oldest first, one page at a time. Callers decide who may
    /// list (the server requires [`AccessClaims::require_admin`]).
    ///
    /// # Errors
    /// [`Error::Validation`] on `cursor` for a cursor of another listing.
    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        let rows = self.store.list_users(page.user_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |u| page::user_cursor(u.id)))
    }

    /// Changes an account's role. A change ends every session of the account
    /// at once (the role travels in access tokens, which must not outlive
    /// it); the new role shows from the next login on.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<User> {
        if !self.store.set_role(id, role, self.clock.now()).await? {
            return Err(Error::UserNotFound);
        }
        let detail = Some(format!("to {role}; sessions revoked"));
        self.audit(AuditEvent::RoleChanged, Some(id), &ClientInfo::default(), detail).await;
        self.get(id).await
    }

    /// Disables an account: it can no longer log in or refresh, and every
    /// session ends now.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn disable(&self, id: UserId) -> Result<()> {
        self.set_disabled(id, true).await
    }

    /// Enables a disabled account again.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn enable(&self, id: UserId) -> Result<()> {
        self.set_disabled(id, false).await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<()> {
        if !self.store.set_disabled(id, disabled, self.clock.now()).await? {
            return Err(Error::UserNotFound);
        }
        let event = if disabled { AuditEvent::AccountDisabled } else { AuditEvent::AccountEnabled };
        self.audit(event, Some(id), &ClientInfo::default(), None).await;
        Ok(())
    }

    /// Ends every session of an account; returns how many were active.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn revoke_sessions(&self, id: UserId) -> Result<u64> {
        self.get(id).await?;
        let n = self.store.revoke_user_sessions(id, None, self.clock.now()).await?;
        self.audit(AuditEvent::SessionsRevoked, Some(id), &ClientInfo::default(), Some(format!("{n} ended"))).await;
        Ok(n)
    }

    /// Marks 1–50 tracks favorite, each newly added one with a
    /// `favorite.added` task in the same transaction; all or nothing.
    /// Adding a favorite again changes nothing.
    ///
    /// # Errors
    /// [`Error::Validation`] on `track_id` for 0 or more than 50 ids.
    pub async fn add_favorites(&self, user: UserId, tracks: &[TrackId]) -> Result<()> {
        check_batch(tracks)?;
        if self.store.add_favorites(user, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// Unmarks 1–50 tracks, each removed one with a `favorite.removed` task in
    /// the same transaction; all or nothing. Removing an absent favorite
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::Validation`] on `track_id` for 0 or more than 50 ids.
    pub async fn remove_favorites(&self, user: UserId, tracks: &[TrackId]) -> Result<()> {
        check_batch(tracks)?;
        if self.store.remove_favorites(user, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// For each of 1–50 tracks, in order, whether it is a favorite.
    ///
    /// # Errors
    /// [`Error::Validation`] on `track_id` for 0 or more than 50 ids.
    pub async fn contains(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>> {
        check_batch(tracks)?;
        self.store.favorites_contain(user, tracks).await
    }

    /// The user's favorites, newest first (the last added is always first).
    ///
    /// # Errors
    /// [`Error::Validation`] on `cursor` for a cursor of another listing.
    pub async fn list_favorites(&self, user: UserId, page: &PageRequest) -> Result<Page<Favorite>> {
        let rows = self.store.list_favorites(user, page.favorite_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |f| page::favorite_cursor(f.seq)))
    }
}

fn check_batch(tracks: &[TrackId]) -> Result<()> {
    if tracks.is_empty() {
        return Err(ValidationError::new("track_id", "is required").into());
    }
    if tracks.len() > MAX_BATCH {
        return Err(ValidationError::new("track_id", "at most 50 ids at once").into());
    }
    Ok(())
}
