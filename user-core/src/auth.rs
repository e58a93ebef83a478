//! Authentication: password hashing ([`PasswordHasher`]) and signed tokens
//! ([`Tokens`], [`KeySet`]).

mod password;
mod tokens;

pub use password::{HashingConfig, PasswordHasher, Verified};
pub(crate) use tokens::generate_secret;
pub use tokens::{AccessClaims, IssuedTokens, KeySet, RefreshClaims, SigningConfig, TokenConfig, TokenType, Tokens};
