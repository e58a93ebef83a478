//! `user-core`: every rule of the user service — accounts, argon2id passwords,
//! JWT access/refresh tokens with server-side sessions, favorites, and the
//! deferred-task outbox — as an embeddable library.
//!
//! Frontends (`user-server`, `user-client`, `user-cli`) only translate to and
//! from `UserService`, which takes the validated types of [`domain`] and
//! returns domain types or an [`Error`].
//!
//! Features: `service` (the service itself; implied by each backend),
//! `sqlite`, `postgres` (backends), `webhook` (the webhook task sink),
//! `smtp`, `nats`, `breach-check`, `opentelemetry` (trace context through
//! the outbox, see [`trace`]), `openapi` (schemas for the wire types),
//! `testing` (PostgreSQL test helpers). With no features the crate is just [`domain`] and [`api`], which
//! is what `user-client` uses.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), user_core::Error> {
//! use user_core::{store, ServiceConfig, UserService};
//!
//! let store = store::open("sqlite::memory:").await?; // or "sqlite://users.db", "memory:"
//! store.migrate().await?;
//! let service = UserService::new(store, ServiceConfig::default()).await?;
//! # let _ = service;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod api;
#[cfg(feature = "service")]
pub mod auth;
pub mod clock;
pub mod domain;
mod error;
#[cfg(feature = "service")]
pub mod mail;
#[cfg(feature = "service")]
pub mod page;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "service")]
pub mod trace;

pub use error::{
    ConflictField, Error, ForbiddenReason, GrantError, Result, SecondFactorChallenge, SecondFactorMethod,
    UnauthorizedReason, error_chain, redact_url,
};
#[cfg(feature = "service")]
pub use service::{ServiceConfig, UserService};
