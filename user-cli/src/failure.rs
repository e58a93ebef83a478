//! Why a command failed, and the exit code that says so:
//! 1 the operation was refused, 2 usage, 3 the server or database is unreachable.

use std::fmt;

/// A failed command; `Display` is the one line printed to stderr.
#[derive(Debug)]
pub enum Failure {
    /// The server or store said no (exit 1).
    Refused(String),
    /// The command line or its input is wrong (exit 2).
    Usage(String),
    /// The server or database could not be reached (exit 3).
    Unreachable(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Usage(m) | Failure::Unreachable(m) => f.write_str(m),
        }
    }
}

impl From<user_client::Error> for Failure {
    fn from(e: user_client::Error) -> Self {
        match &e {
            user_client::Error::Invalid(v) => Failure::Usage(v.to_string()),
            user_client::Error::Transport(t) => Failure::Unreachable(format!(
                "cannot reach the server ({}); is it running, is --server right, and (for https) is its \
                 certificate trusted (--ca-cert)?",
                user_core::error_chain(t)
            )),
            _ if e.is_unauthorized() => {
                Failure::Refused(format!("{}; log in again with `user-cli login`", api_message(&e)))
            }
            _ => Failure::Refused(api_message(&e)),
        }
    }
}

fn api_message(e: &user_client::Error) -> String {
    match e {
        user_client::Error::Api { status, message, .. } => format!("{message} (HTTP {status})"),
        other => other.to_string(),
    }
}

impl From<user_core::Error> for Failure {
    fn from(e: user_core::Error) -> Self {
        match e {
            user_core::Error::Validation(v) => Failure::Usage(v.to_string()),
            user_core::Error::Internal(cause) => Failure::Unreachable(format!(
                "database error: {cause}; check --database, and run `user-cli --database … migrate` on a new database"
            )),
            other => Failure::Refused(other.public_message()),
        }
    }
}

impl From<user_core::domain::ValidationError> for Failure {
    fn from(e: user_core::domain::ValidationError) -> Self {
        Failure::Usage(e.to_string())
    }
}
