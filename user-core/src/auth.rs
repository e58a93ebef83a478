//! Authentication: password hashing ([`PasswordHasher`]), signed tokens
//! ([`Tokens`], [`KeySet`]), second factors ([`TotpSecret`],
//! [`RecoveryCode`], passkeys: [`RelyingParty`]) and secrets sealed at rest
//! ([`DataKeys`]).

#[cfg(feature = "breach-check")]
mod breach;
pub(crate) mod cbor;
mod data_key;
#[cfg(feature = "oidc")]
pub mod oidc;
mod password;
mod recovery_codes;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod soft_authenticator;
mod tokens;
mod totp;
mod webauthn;

#[cfg(feature = "breach-check")]
pub use breach::BreachChecker;
pub use data_key::DataKeys;
pub use password::{HashingConfig, PasswordHasher, Verified};
pub use recovery_codes::RecoveryCode;
pub(crate) use tokens::generate_secret;
pub use tokens::{AccessClaims, IssuedTokens, KeySet, RefreshClaims, SigningConfig, TokenConfig, TokenType, Tokens};
pub use totp::{TotpCode, TotpSecret};
pub use webauthn::{Assertion, AssertionFailure, NewCredential, RelyingParty, StoredCredential, VerifiedAssertion};
