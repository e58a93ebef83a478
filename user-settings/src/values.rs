//! The value types shared by the server's and the CLI's settings: the
//! signing algorithm, secrets that never print, and the loader's error.

use clap::ValueEnum;

/// Token signing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// Ed25519 signatures; public keys at `/.well-known/jwks.json`.
    Eddsa,
}

/// Why loading the settings failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The command line or a variable does not parse (clap's message, `--help`…).
    #[error(transparent)]
    Usage(clap::Error),
    /// A setting is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// A secret setting: `Debug` prints `[redacted]`, so logging the
/// configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A duration that can be turned off: `off`, or a duration such as `10m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationOrOff(pub Option<std::time::Duration>);

impl std::fmt::Display for DurationOrOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => humantime::Duration::from(d).fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl std::str::FromStr for DurationOrOff {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        match humantime::parse_duration(s.trim()) {
            Ok(d) if !d.is_zero() => Ok(Self(Some(d))),
            Ok(_) => Err("a zero duration; write `off` to turn it off".into()),
            Err(e) => Err(format!("{e}; give a duration such as `10m`, or `off`")),
        }
    }
}
