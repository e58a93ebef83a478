//! What tunes the service: [`ServiceConfig`] and its parts. Each default is written
//! here once; the server's and the CLI's settings show these values.

use std::time::Duration;

use crate::auth::{HashingConfig, SigningConfig, TokenConfig};

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
    /// How recently a session must have proved a credential to change the
    /// address or password or delete the account without `current_password`
    /// (default 10 min); `None` asks nothing (v1's behaviour: a stolen
    /// session could take the account over).
    pub reauth_window: Option<Duration>,
    /// How repeated failed logins of one account are slowed down.
    pub lockout: LockoutPolicy,
    /// Verification and password-reset mails.
    pub mail: MailPolicy,
    /// Device sign-in (RFC 8628).
    pub device: DevicePolicy,
    /// Refuse new passwords an HIBP-compatible range API reports breached
    /// (default: off; the bundled list of common passwords always applies).
    pub breach_check: Option<BreachCheck>,
    /// Second factors: how TOTP secrets are sealed, what apps call us.
    pub mfa: MfaPolicy,
    /// What guest accounts may keep.
    pub guests: super::GuestPolicy,
    /// Providers to sign in with (`USER_OIDC_PROVIDERS`); none by default.
    #[cfg(feature = "oidc")]
    pub providers: Vec<crate::auth::oidc::ProviderConfig>,
}

/// Second factors (TOTP, recovery codes).
#[derive(Debug, Clone)]
pub struct MfaPolicy {
    /// Whose sessions must have proved a second factor (default
    /// [`MfaRequired::Admins`]): a covered account without one signs in to
    /// a restricted session that can only enroll a factor.
    pub required: MfaRequired,
    /// The name authenticator apps show next to the account (default
    /// `user-service`; `user-server` uses the product name of its mails).
    pub totp_issuer: String,
    /// The keys TOTP secrets are sealed with (`USER_DATA_KEY`). `None`: a
    /// key generated once and kept in the database, which protects nothing
    /// against a copy of the database; production sets its own.
    pub data_keys: Option<std::sync::Arc<crate::auth::DataKeys>>,
    /// How long a sign-in waits for its second factor (default 5 min).
    pub challenge_ttl: Duration,
    /// Wrong codes one sign-in allows before it must start again (default 5).
    pub max_wrong_codes: u32,
    /// How long a TOTP enrollment waits for its first code (default 10 min).
    pub enrollment_ttl: Duration,
    /// Passkeys: the relying party (`USER_WEBAUTHN_RP_ID`,
    /// `USER_WEBAUTHN_ORIGINS`). `None` (the default) turns them off.
    pub passkeys: Option<PasskeyConfig>,
    /// How long a WebAuthn ceremony may take (default 5 min).
    pub ceremony_ttl: Duration,
}

/// Where passkeys work: the relying party's id and the origins that speak
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyConfig {
    /// The registrable domain the apps share, e.g. `music.example`
    /// (`localhost` in development). Passkeys are bound to it for good: the
    /// service refuses to start with another while passkeys exist.
    pub rp_id: String,
    /// The name authenticators show (the product name).
    pub rp_name: String,
    /// Web origins (`https://music.example`) and Android app origins
    /// (`android:apk-key-hash:…`) allowed to use them.
    pub origins: Vec<String>,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        Self {
            required: MfaRequired::Admins,
            totp_issuer: "user-service".to_owned(),
            data_keys: None,
            challenge_ttl: Duration::from_secs(300),
            max_wrong_codes: 5,
            enrollment_ttl: Duration::from_secs(600),
            passkeys: None,
            ceremony_ttl: Duration::from_secs(300),
        }
    }
}

/// Which accounts must sign in with a second factor (`USER_MFA_REQUIRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaRequired {
    /// Nobody: a second factor is each person's choice.
    None,
    /// Accounts with the `admin` role (the default).
    #[default]
    Admins,
    /// Every account.
    All,
}

impl MfaRequired {
    /// Whether an account with `role` is covered.
    pub fn covers(self, role: crate::domain::Role) -> bool {
        match self {
            MfaRequired::None => false,
            MfaRequired::Admins => role == crate::domain::Role::Admin,
            // A guest has no credential to add a factor to.
            MfaRequired::All => role != crate::domain::Role::Guest,
        }
    }

    /// `none`, `admins` or `all`, as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaRequired::None => "none",
            MfaRequired::Admins => "admins",
            MfaRequired::All => "all",
        }
    }
}

impl std::str::FromStr for MfaRequired {
    type Err = crate::domain::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(MfaRequired::None),
            "admins" => Ok(MfaRequired::Admins),
            "all" => Ok(MfaRequired::All),
            _ => Err(crate::domain::ValidationError::new("USER_MFA_REQUIRED", "must be none, admins or all")),
        }
    }
}

/// Where and how to look new passwords up in an HIBP-compatible range API
/// (`GET {url}/{first 5 hex of the SHA-1}`): only those 5 characters leave
/// the process. A lookup that fails lets the password through and counts
/// in `password_breach_check_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachCheck {
    /// The range API's base, e.g. `https://api.pwnedpasswords.com/range`.
    pub url: String,
    /// How long one lookup may take (default 2 s); a slower one lets the
    /// password through.
    pub timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            tokens: TokenConfig::default(),
            signing: SigningConfig::default(),
            hashing: HashingConfig::default(),
            refresh_grace: Duration::from_secs(10),
            require_current_password: false,
            reauth_window: Some(Duration::from_secs(600)),
            lockout: LockoutPolicy::default(),
            mail: MailPolicy::default(),
            device: DevicePolicy::default(),
            breach_check: None,
            mfa: MfaPolicy::default(),
            guests: super::GuestPolicy::default(),
            #[cfg(feature = "oidc")]
            providers: Vec::new(),
        }
    }
}

/// Verification and password-reset mails: whether they can be sent, how
/// long their links work, and whether login waits for a verified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailPolicy {
    /// A mail transport is configured (the relay delivers `email.*` tasks).
    /// Without one (the default) no mail is enqueued, and asking for a
    /// verification or reset mail is [`crate::Error::MailNotConfigured`].
    pub enabled: bool,
    /// How long a verification link works (default 24 h).
    pub verify_token_ttl: Duration,
    /// How long a password-reset link works (default 1 h).
    pub reset_token_ttl: Duration,
    /// How long the undo link of an address change works, and the old
    /// address stays reserved for its owner (default 7 days).
    pub revert_token_ttl: Duration,
    /// The shortest time between two mails of one kind to one account or
    /// address (default 60 s).
    pub resend_interval: Duration,
    /// Login of an account whose address is not verified is refused (403)
    /// once the password verifies (default off).
    pub require_verified_email: bool,
}

impl Default for MailPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            verify_token_ttl: Duration::from_secs(24 * 3600),
            reset_token_ttl: Duration::from_secs(3600),
            revert_token_ttl: Duration::from_secs(7 * 24 * 3600),
            resend_interval: Duration::from_secs(60),
            require_verified_email: false,
        }
    }
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

/// Device sign-in (RFC 8628): which clients may start it, how long its codes
/// live, how often a device may poll, and how many wrong user codes a person
/// may type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePolicy {
    /// The public client ids that may start a device sign-in; empty (the
    /// default) turns device sign-in off: every client is unknown.
    pub clients: Vec<String>,
    /// How long the codes work (default 10 min).
    pub code_ttl: Duration,
    /// The least time between two polls (default 5 s); `slow_down` adds 5 s.
    pub interval: Duration,
    /// Wrong user codes sharing half of a code that void it (default 5).
    pub max_wrong_tries: u32,
    /// Wrong user codes one account may type per window (default 10).
    pub wrong_codes_per_user: u32,
    /// Wrong user codes one client address (IPv6: its /64) may send per window (default 20).
    pub wrong_codes_per_ip: u32,
    /// The window of the two limits above (default 15 min).
    pub wrong_code_window: Duration,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            code_ttl: Duration::from_secs(600),
            interval: Duration::from_secs(5),
            max_wrong_tries: 5,
            wrong_codes_per_user: 10,
            wrong_codes_per_ip: 20,
            wrong_code_window: Duration::from_secs(15 * 60),
        }
    }
}
