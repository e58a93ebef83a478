//! Storage: the backends (SQLite, PostgreSQL), [`open`] to pick one by URL,
//! and [`Store`], what `UserService` and the relay are built on. The traits
//! a backend implements and the records only they carry are the crate's own
//! (see `traits.rs`); an embedder opens a store, migrates it and hands it to
//! `UserService`, which is the one way to change data.
//!
//! Each trait method that writes more than one row is one atomic unit: the
//! backend runs it in one transaction (a favorite and its deferred task, a
//! deleted user and its `user.deleted` task, a password change and the
//! revocation of other sessions). That keeps the transaction inside the
//! backend, so a new backend fits these traits without changing them.
//! Uniqueness is decided by the backend's unique indexes and reported as
//! [`Error::Conflict`], never by a check-then-insert.

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod records;
pub(crate) mod rules;
#[cfg(feature = "sqlite")]
mod sqlite;
mod traced;
pub(crate) mod traits;

use std::sync::Arc;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use records::{
    AccountChanges, AuditFilter, AuditRecord, Ceremony, CeremonyPurpose, DeferredTask, Favorite, GuestFilter,
    IdentityRecord, MailPayload, PasskeyRecord, SessionRecord, TaskCounts, TaskKind, TaskStatus, Unlinked, User,
    UserKey,
};
pub(crate) use records::{
    Approval, Claim, DeviceDecision, DeviceGrant, DevicePoll, EmailRevert, GuestUpgrade, LoginAttempt, MfaChallenge,
    NewDeviceGrant, NewEmailRevert, NewMail, NewMfaChallenge, NewSession, NewToken, Rotation, SessionUser, TaskChannel,
    TokenPurpose, TotpFactor, UserChanges, UserCodeAction, UserRecord, WaitingTasks,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use traced::traced;
pub use traits::Store;
pub(crate) use traits::{
    AuditStore, DEVICE_GRANT_KEPT, DeviceStore, FactorStore, FavoriteStore, IdentityStore, LockRule, PasskeyStore,
    SecretStore, SessionStore, TaskStore, TokenMail, TokenOwner, TokenStore, UserStore,
};

/// The storage traits and the records they carry (feature `backend`), for
/// tests and tools that read or write rows directly, such as the
/// benchmark's seeder. Without the feature they are the crate's own, and
/// `UserService` is the way in.
#[cfg(feature = "backend")]
pub mod backend {
    pub use crate::store::records::{
        Approval, Claim, DeviceDecision, DeviceGrant, DevicePoll, EmailRevert, LoginAttempt, MfaChallenge,
        NewDeviceGrant, NewEmailRevert, NewMail, NewMfaChallenge, NewSession, NewToken, Rotation, TaskChannel,
        TokenPurpose, TotpFactor, UserChanges, UserCodeAction, UserRecord, WaitingTasks,
    };
    pub use crate::store::traits::{
        AuditStore, DEVICE_GRANT_KEPT, DeviceStore, FactorStore, FavoriteStore, IdentityStore, LockRule, PasskeyStore,
        SecretStore, SessionStore, TaskStore, TokenMail, TokenOwner, TokenStore, UserStore,
    };
}

/// How to open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// The most database connections to hold (default 10): the pool on
    /// PostgreSQL, the idle read connections kept on SQLite (which adds one writer).
    pub max_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self { max_connections: 10 }
    }
}

/// Opens the backend a URL names, without migrating, with default options;
/// see [`open_with`].
///
/// # Errors
/// As [`open_with`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, OpenOptions::default()).await
}

/// Opens the backend a URL names, without migrating: `sqlite://path` /
/// `sqlite::memory:` (feature `sqlite`; the file is created if missing;
/// `memory:` is short for `sqlite::memory:`), or `postgres://…` /
/// `postgresql://…` (feature `postgres`).
///
/// # Errors
/// [`Error::Validation`] on field `database` for an unknown scheme;
/// [`Error::Internal`] if the database cannot be opened.
pub async fn open_with(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>> {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(url, options.max_connections).await?));
    }
    let _ = options;
    #[cfg(feature = "sqlite")]
    if url == "memory:" {
        return Ok(Arc::new(SqliteStore::connect_with("sqlite::memory:", options.max_connections).await?));
    }
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::connect_with(url, options.max_connections).await?));
    }
    Err(crate::domain::ValidationError::new(
        "database",
        format!(
            "unsupported database URL {:?} (expected sqlite://…, sqlite::memory: or postgres://…)",
            crate::error::redact_url(url)
        ),
    )
    .into())
}
