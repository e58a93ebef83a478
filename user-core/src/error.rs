//! The one error type of the library: each variant is one outcome a caller must
//! tell apart, and maps to exactly one HTTP status in `user-server`.

use std::fmt;

use chrono::TimeDelta;

use crate::domain::ValidationError;

/// The result type of every fallible `user-core` operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `user-core`.
///
/// Variants split "the caller's fault" (validation, credentials, conflicts, …)
/// from "ours" ([`Error::Internal`]). The `Display` text of caller-facing
/// variants is safe to show to the caller; an internal error's cause is for the
/// log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value broke a rule; the error names the field and the rule (HTTP 400).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The password did not match (HTTP 401).
    #[error("wrong password")]
    InvalidCredentials,
    /// No user has that name, email or id (HTTP 404).
    #[error("user not found")]
    UserNotFound,
    /// The change would leave no active admin: the last one cannot be
    /// demoted, disabled or deleted (HTTP 409).
    #[error("the last active admin cannot be demoted, disabled or deleted")]
    LastAdmin,
    /// No deferred task has that id (HTTP 404).
    #[error("task not found")]
    TaskNotFound,
    /// Only a dead task can be put back in the queue (HTTP 409).
    #[error("only a dead task can be retried")]
    TaskNotDead,
    /// A mail token that is unknown, used, expired or void (HTTP 400).
    #[error("invalid or expired token")]
    InvalidToken,
    /// A user code that is unknown, expired, already decided or void (HTTP 400).
    #[error("invalid or expired code")]
    InvalidUserCode,
    /// A device sign-in or token request refused with an OAuth error code
    /// (RFC 6749 §5.2, RFC 8628 §3.5): HTTP 400, 401 for an unknown client.
    #[error("{}", .0.description())]
    Grant(GrantError),
    /// The address is verified already (HTTP 409).
    #[error("email already verified")]
    EmailAlreadyVerified,
    /// No mail transport is configured, so nothing that sends mail can work
    /// (HTTP 503).
    #[error("mail is not configured")]
    MailNotConfigured,
    /// The session is not a live session of the caller (HTTP 404).
    #[error("session not found")]
    SessionNotFound,
    /// A unique value is already taken by another account (HTTP 409).
    #[error("{0} is already taken")]
    Conflict(ConflictField),
    /// The token is missing, malformed, expired, revoked or of the wrong type
    /// (HTTP 401). The reason is for logs; callers should show one generic text.
    #[error("unauthorized: {0}")]
    Unauthorized(UnauthorizedReason),
    /// The change needs a recent proof of a credential: give
    /// `current_password`, or sign in again (HTTP 401, code `reauth_required`).
    #[error("recent authentication required: give current_password or sign in again")]
    ReauthRequired {
        /// How recent a sign-in must be.
        max_age: TimeDelta,
    },
    /// The password was right and the account has a second factor: the
    /// sign-in completes with [`crate::UserService::complete_sign_in`] and
    /// the challenge's token. No session exists yet. (The REST login
    /// answers this with 200 and `mfa_required`; elsewhere HTTP 401, code
    /// `mfa_required`.)
    #[error("second factor required")]
    SecondFactorRequired(Box<SecondFactorChallenge>),
    /// A second-factor code (TOTP or recovery code) that is wrong, used, or
    /// for a sign-in that expired or was given up (HTTP 401).
    #[error("invalid code")]
    InvalidCode,
    /// A step-up with the password alone, for an account with a second
    /// factor: it steps up with the factor (HTTP 401, code `mfa_required`).
    #[error("this account steps up with its second factor: send a code or use a passkey")]
    SecondFactorNeeded,
    /// A passkey assertion failed a check, named no passkey of the account,
    /// or its ceremony was unknown, used or expired (HTTP 401, "invalid
    /// credentials"); what failed is in the audit.
    #[error("invalid credentials")]
    PasskeyRefused,
    /// Passkeys are off: `USER_WEBAUTHN_RP_ID` is not set (HTTP 503).
    #[error("passkeys are not configured")]
    PasskeysNotConfigured,
    /// No passkey of the caller has that id (HTTP 404).
    #[error("passkey not found")]
    PasskeyNotFound,
    /// Removing this would leave the account no way to sign in (HTTP 409).
    #[error("this is the account's last way to sign in")]
    LastSignInMethod,
    /// (v1.2) The identity belongs to another account, or the account has
    /// one at that provider already (409, `identity_in_use`).
    #[error("this identity is linked to another account, or this account has one at that provider")]
    IdentityInUse,
    /// (v1.2) No provider of that name is configured (404).
    #[error("no such provider")]
    UnknownProvider,
    /// (v1.2) The provider cannot be reached or answered nonsense (503,
    /// `provider_error`); the detail is logged.
    #[error("the provider is unavailable")]
    ProviderUnavailable(String),
    /// (v1.2) A native app's ID token failed a check (401,
    /// `invalid_id_token`); the detail is logged.
    #[error("the ID token is not valid for this service")]
    InvalidIdToken,
    /// (v1.2) The provider's identity must be linked by the account that
    /// has its verified address: sign in to it, then
    /// `POST /user/identities/link` (409, `link_required`).
    #[error("an account has this address: sign in to it, then link this provider")]
    LinkRequired,
    /// (v1.2) The account has no identity at that provider (404).
    #[error("no identity at that provider")]
    IdentityNotFound,
    /// (v1.2) A guest account was asked for by a client that is signed in
    /// already (409, `already_signed_in`).
    #[error("already signed in: sign out first, or keep using this session")]
    AlreadySignedIn,
    /// The account already has this second factor (HTTP 409); remove it first.
    #[error("two-factor authentication is already on")]
    FactorActive,
    /// The change needs a second factor the account does not have (HTTP 409).
    #[error("no second factor: turn on two-factor authentication first")]
    NoSecondFactor,
    /// An admin cannot reset their own second factors (HTTP 409): another
    /// admin must, so a stolen admin session cannot strip the factor.
    #[error("an admin cannot reset their own second factors")]
    OwnSecondFactors,
    /// The caller is known but not allowed to do this (HTTP 403).
    #[error("{0}")]
    Forbidden(ForbiddenReason),
    /// Too many attempts: wait `retry_after` before trying again (HTTP 429).
    #[error("too many attempts; retry in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// Too many password hashes are already queued; try again shortly (HTTP 503).
    #[error("the service is overloaded, try again shortly")]
    Overloaded,
    /// Something failed on our side (HTTP 500). The cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps any unexpected failure (database, I/O, crypto) as [`Error::Internal`].
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }

    /// The HTTP status code this error maps to; the single source of that mapping.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Validation(_) | Error::InvalidToken | Error::InvalidUserCode => 400,
            Error::Grant(GrantError::InvalidClient) => 401,
            Error::Grant(_) => 400,
            Error::InvalidCredentials
            | Error::Unauthorized(_)
            | Error::ReauthRequired { .. }
            | Error::SecondFactorRequired(_)
            | Error::SecondFactorNeeded
            | Error::PasskeyRefused
            | Error::InvalidIdToken
            | Error::InvalidCode => 401,
            Error::Forbidden(_) => 403,
            Error::UserNotFound | Error::SessionNotFound | Error::TaskNotFound | Error::PasskeyNotFound => 404,
            Error::Conflict(_)
            | Error::LastAdmin
            | Error::TaskNotDead
            | Error::EmailAlreadyVerified
            | Error::FactorActive
            | Error::NoSecondFactor
            | Error::OwnSecondFactors
            | Error::LastSignInMethod
            | Error::AlreadySignedIn
            | Error::IdentityInUse
            | Error::LinkRequired => 409,
            Error::UnknownProvider | Error::IdentityNotFound => 404,
            Error::ProviderUnavailable(_) => 503,
            Error::Throttled { .. } => 429,
            Error::Overloaded | Error::MailNotConfigured | Error::PasskeysNotConfigured => 503,
            Error::Internal(_) => 500,
        }
    }

    /// The stable code of the error body's `code` field, for clients to
    /// branch on (never on `message`); `None` for v1's errors.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::ReauthRequired { .. } => Some("reauth_required"),
            Error::SecondFactorRequired(_) => Some("mfa_required"),
            Error::InvalidCode => Some("invalid_code"),
            Error::FactorActive => Some("factor_active"),
            Error::NoSecondFactor => Some("no_second_factor"),
            Error::OwnSecondFactors => Some("own_account"),
            Error::Forbidden(ForbiddenReason::MfaEnrollmentRequired) => Some("mfa_enrollment_required"),
            Error::Forbidden(ForbiddenReason::GuestNotAllowed) => Some("registration_required"),
            Error::Forbidden(ForbiddenReason::NotAGuest) => Some("not_a_guest"),
            Error::Forbidden(ForbiddenReason::GuestLimit(_)) => Some("guest_limit"),
            Error::SecondFactorNeeded => Some("mfa_required"),
            Error::LastSignInMethod => Some("last_sign_in_method"),
            Error::AlreadySignedIn => Some("already_signed_in"),
            Error::IdentityInUse => Some("identity_in_use"),
            Error::ProviderUnavailable(_) => Some("provider_error"),
            Error::InvalidIdToken => Some("invalid_id_token"),
            Error::LinkRequired => Some("link_required"),
            Error::Forbidden(ForbiddenReason::GuestsOff) => Some("guests_off"),
            Error::Forbidden(ForbiddenReason::GuestAccessDenied) => Some("access_denied"),
            _ => None,
        }
    }

    /// The text to show to a client: never a cause of an internal error, never
    /// the reason a token was refused (that goes to the log).
    pub fn public_message(&self) -> String {
        match self {
            Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword) => "current_password is wrong".to_owned(),
            Error::Unauthorized(_) => "unauthorized: the token is missing, invalid, expired or revoked".to_owned(),
            Error::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        }
    }
}

/// A sign-in waiting for its second factor: what the client needs to
/// complete it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecondFactorChallenge {
    /// Single use, for [`crate::UserService::complete_sign_in`]; a few minutes.
    pub mfa_token: String,
    /// What the account can answer with, in the contract's words.
    pub methods: Vec<SecondFactorMethod>,
    /// When `mfa_token` stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl fmt::Debug for SecondFactorChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondFactorChallenge")
            .field("mfa_token", &"[redacted]")
            .field("methods", &self.methods)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A second factor a sign-in can be completed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecondFactorMethod {
    /// A code from an authenticator app (RFC 6238).
    Totp,
    /// One of the account's single-use recovery codes.
    RecoveryCode,
    /// One of the account's passkeys.
    Passkey,
}

impl SecondFactorMethod {
    /// `totp`, `recovery_code`: as the API names it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecondFactorMethod::Totp => "totp",
            SecondFactorMethod::RecoveryCode => "recovery_code",
            SecondFactorMethod::Passkey => "passkey",
        }
    }
}

/// Why a device sign-in or token request was refused: the OAuth error
/// codes of RFC 6749 §5.2 and RFC 8628 §3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantError {
    /// The `client_id` is not one of the configured public clients.
    InvalidClient,
    /// The request is malformed: a parameter missing, repeated or invalid.
    InvalidRequest,
    /// The `grant_type` is not one this server supports.
    UnsupportedGrantType,
    /// Nobody has approved or declined the device yet: poll again after the interval.
    AuthorizationPending,
    /// Polled sooner than the interval: wait 5 s longer from now on.
    SlowDown,
    /// The user declined the device.
    AccessDenied,
    /// The device code expired (or was voided by wrong user codes): start again.
    ExpiredToken,
    /// The code or refresh token is unknown, used, revoked, or another client's.
    InvalidGrant,
}

impl GrantError {
    /// The RFC's code, e.g. `authorization_pending`.
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::InvalidClient => "invalid_client",
            GrantError::InvalidRequest => "invalid_request",
            GrantError::UnsupportedGrantType => "unsupported_grant_type",
            GrantError::AuthorizationPending => "authorization_pending",
            GrantError::SlowDown => "slow_down",
            GrantError::AccessDenied => "access_denied",
            GrantError::ExpiredToken => "expired_token",
            GrantError::InvalidGrant => "invalid_grant",
        }
    }

    /// A sentence for people.
    pub fn description(&self) -> &'static str {
        match self {
            GrantError::InvalidClient => "unknown client_id",
            GrantError::InvalidRequest => "the request is missing a parameter or has an invalid one",
            GrantError::UnsupportedGrantType => "unsupported grant_type",
            GrantError::AuthorizationPending => "the user has not approved the device yet",
            GrantError::SlowDown => "polling too fast: wait longer between requests",
            GrantError::AccessDenied => "the user declined the device",
            GrantError::ExpiredToken => "the device code expired; start again",
            GrantError::InvalidGrant => "the code or token is invalid, used or revoked",
        }
    }
}

/// The unique field a [`Error::Conflict`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictField {
    /// The username (compared case-insensitively).
    Username,
    /// The email address (stored lower-cased).
    Email,
}

impl fmt::Display for ConflictField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictField::Username => "username",
            ConflictField::Email => "email",
        })
    }
}

/// Why a token or session was refused; for logs and tests, not for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnauthorizedReason {
    /// No token was presented.
    Missing,
    /// Not a JWT we signed (bad format, signature, algorithm, issuer or audience).
    Malformed,
    /// The token's `exp` has passed.
    Expired,
    /// An access token where a refresh token was expected, or the reverse.
    WrongType,
    /// The session was revoked, has expired, or no longer exists.
    SessionRevoked,
    /// A refresh token that was already rotated; the session has been revoked.
    RefreshReused,
    /// A refresh token rotated moments ago (within the grace period); the
    /// session stays valid with its newer token.
    RefreshRecentlyRotated,
    /// The current password given for a sensitive change is wrong.
    WrongCurrentPassword,
}

impl fmt::Display for UnauthorizedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnauthorizedReason::Missing => "no token",
            UnauthorizedReason::Malformed => "malformed or foreign token",
            UnauthorizedReason::Expired => "token expired",
            UnauthorizedReason::WrongType => "wrong token type",
            UnauthorizedReason::SessionRevoked => "session revoked or expired",
            UnauthorizedReason::RefreshReused => "refresh token reused; session revoked",
            UnauthorizedReason::RefreshRecentlyRotated => "refresh token already rotated",
            UnauthorizedReason::WrongCurrentPassword => "wrong current password",
        })
    }
}

/// Why an authenticated caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForbiddenReason {
    /// The operation needs the `admin` role.
    AdminOnly,
    /// An operator disabled this account.
    AccountDisabled,
    /// The service requires a verified address before login.
    EmailNotVerified,
    /// The account must sign in with a second factor
    /// ([`crate::service::MfaRequired`]) and this session has not proved
    /// one: it may only enroll a factor or step up.
    MfaEnrollmentRequired,
    /// A guest account may not do this: it must register (upgrade) first.
    GuestNotAllowed,
    /// Only a guest account can upgrade.
    NotAGuest,
    /// A guest holds at most this many favorites.
    GuestLimit(u64),
    /// Guest accounts are off (`USER_GUEST_MAX_PER_HOUR=0`).
    GuestsOff,
    /// A guest account may not let another device in (`access_denied`).
    GuestAccessDenied,
}

impl fmt::Display for ForbiddenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForbiddenReason::AdminOnly => "admin role required",
            ForbiddenReason::AccountDisabled => "account disabled",
            ForbiddenReason::EmailNotVerified => "email not verified",
            ForbiddenReason::MfaEnrollmentRequired => {
                "this account must use a second factor: add a passkey or an authenticator app first"
            }
            ForbiddenReason::GuestNotAllowed => "a guest account cannot do this: register first",
            ForbiddenReason::NotAGuest => "only a guest account can upgrade",
            ForbiddenReason::GuestsOff => "guest accounts are off on this service",
            ForbiddenReason::GuestAccessDenied => "a guest account cannot let a device in: register first",
            ForbiddenReason::GuestLimit(n) => {
                return write!(f, "a guest account keeps at most {n} favorites: register to keep more");
            }
        })
    }
}

/// An error and every cause under it, `": "`-separated: what logs and
/// operators need (a client library keeps the useful part, such as "connection
/// refused" or "unknown issuer", in its causes).
///
/// ```
/// let io = std::io::Error::other("disk full");
/// assert_eq!(user_core::error_chain(&io), "disk full");
/// ```
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why handing a task or a mail to a downstream system failed, which
/// decides what the relay does next. Below both `tasks` and `mail`, which
/// each deliver.
#[cfg(feature = "service")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// May succeed later (timeout, connection refused, 408, 429, 5xx): retried
    /// with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (other 4xx): the task goes straight to `dead`.
    #[error("permanent: {0}")]
    Permanent(String),
}
/// `url` fit for a log or an error message: the password of its userinfo
/// and the values of query parameters that may hold a secret (`password`,
/// `token`, `secret`, `key`, …) become `***`. Anything that is not a URL
/// comes back as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (before_query, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    // The userinfo ends at the last `@` of the authority (a password may hold `@`).
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut shown = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// Whether a query parameter's name says it carries a credential.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key", "auth", "credential", "sig"].iter().any(|s| name.contains(s))
}
