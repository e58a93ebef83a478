//! Authentication: password hashing ([`PasswordHasher`]), signed tokens
//! ([`Tokens`], [`KeySet`]), second factors ([`TotpSecret`],
//! [`RecoveryCode`]) and secrets sealed at rest ([`DataKeys`]).

#[cfg(feature = "breach-check")]
mod breach;
mod data_key;
mod password;
mod recovery_codes;
mod tokens;
mod totp;

#[cfg(feature = "breach-check")]
pub use breach::BreachChecker;
pub use data_key::DataKeys;
pub use password::{HashingConfig, PasswordHasher, Verified};
pub use recovery_codes::RecoveryCode;
pub(crate) use tokens::generate_secret;
pub use tokens::{AccessClaims, IssuedTokens, KeySet, RefreshClaims, SigningConfig, TokenConfig, TokenType, Tokens};
pub use totp::{TotpCode, TotpSecret};
