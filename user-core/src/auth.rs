//! Authentication: password hashing ([`PasswordHasher`]) and signed tokens
//! ([`Tokens`], [`KeySet`]).

#[cfg(feature = "breach-check")]
mod breach;
mod password;
mod tokens;

#[cfg(feature = "breach-check")]
pub use breach::BreachChecker;
pub use password::{HashingConfig, PasswordHasher, Verified};
pub(crate) use tokens::generate_secret;
pub use tokens::{AccessClaims, IssuedTokens, KeySet, RefreshClaims, SigningConfig, TokenConfig, TokenType, Tokens};
