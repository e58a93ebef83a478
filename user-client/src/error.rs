//! The one error type of the SDK.

use user_core::domain::ValidationError;

/// The result type of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call can fail with.
///
/// Match on [`Error::Api`] for the server's answer, or use the helpers
/// ([`Error::is_not_found`], [`Error::is_conflict`], …), which also cover
/// input the client refused before sending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error: its status, message and, for
    /// v1.2's errors, a stable `code`.
    #[error("{status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's `message`, for people.
        message: String,
        /// The server's `code` (`reauth_required`, …), for programs.
        code: Option<String>,
    },
    /// An `/oauth/*` route refused: RFC 6749's error code (`invalid_grant`,
    /// `authorization_pending`, …), its status and description.
    #[error("{status} {error}: {message}")]
    Grant {
        /// The HTTP status.
        status: u16,
        /// The RFC's error code.
        error: String,
        /// The server's `message` (its `error_description`).
        message: String,
    },
    /// The input broke a rule of the contract; nothing was sent.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// The request could not be made or its answer not read (connection,
    /// timeout, TLS).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// (v1.2) The password was right and the account has a second factor:
    /// call [`crate::Client::login_mfa`] with [`MfaPending::mfa_token`] and
    /// a code. No session exists yet.
    #[error("second factor required ({})", .0.methods.join(", "))]
    MfaRequired(MfaPending),
    /// The server answered something that is not the documented body.
    #[error("unexpected response ({status}): {source}; body: {body}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// What came back (truncated to 1 KiB).
        body: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
}

/// A sign-in waiting for its second factor.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaPending {
    /// For [`crate::Client::login_mfa`]: single use, 5 minutes, 5 guesses.
    pub mfa_token: String,
    /// What the account can answer with: `totp`, `recovery_code`.
    pub methods: Vec<String>,
}

impl std::fmt::Debug for MfaPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaPending").field("mfa_token", &"[redacted]").field("methods", &self.methods).finish()
    }
}

impl Error {
    /// The HTTP status: the server's, or 400 for input refused locally
    /// (200 for [`Error::MfaRequired`], which the server answers with 200).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Grant { status, .. } | Error::Decode { status, .. } => Some(*status),
            Error::Invalid(_) => Some(400),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            Error::MfaRequired(_) => Some(200),
        }
    }

    /// The pending sign-in of [`Error::MfaRequired`].
    pub fn mfa_pending(&self) -> Option<&MfaPending> {
        match self {
            Error::MfaRequired(pending) => Some(pending),
            _ => None,
        }
    }

    /// The OAuth error code of an `/oauth/*` refusal (`invalid_grant`,
    /// `access_denied`, `expired_token`, …).
    pub fn grant_error(&self) -> Option<&str> {
        match self {
            Error::Grant { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The stable code of a v1.2 error (`reauth_required`, …): branch on
    /// this, never on the message.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => code.as_deref(),
            Error::MfaRequired(_) => Some("mfa_required"),
            _ => None,
        }
    }

    /// 401 `reauth_required`: the change needs a recent sign-in. Step up
    /// ([`crate::Client::reauth_with_password`], or
    /// [`crate::Client::reauth_with_code`] for an account with a second
    /// factor) and try again; refreshing does not help, so the client does
    /// not refresh on it.
    pub fn is_reauth_required(&self) -> bool {
        self.code() == Some("reauth_required")
    }

    /// 403 `mfa_enrollment_required`: the server's policy makes this
    /// account use a second factor and the session has none yet. Only
    /// [`crate::Client::me`], [`crate::Client::security`], refresh, logout,
    /// step-up and turning TOTP on ([`crate::Client::totp_enroll`],
    /// [`crate::Client::totp_confirm`]) work until it does; confirming TOTP
    /// lifts the restriction for this session.
    pub fn is_mfa_enrollment_required(&self) -> bool {
        self.code() == Some("mfa_enrollment_required")
    }

    /// 400: the request was malformed or a field broke a rule.
    pub fn is_bad_request(&self) -> bool {
        self.status() == Some(400)
    }

    /// 401: no valid session (missing, expired or revoked token, wrong password).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// 403: not allowed (not an admin, account disabled).
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// 404: no such user.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: the username or email is taken.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// 429: throttled; retry later.
    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }

    /// 503: the server is overloaded or its database unreachable (retry
    /// later), or it has no mail transport for a call that sends mail.
    pub fn is_unavailable(&self) -> bool {
        self.status() == Some(503)
    }
}
