//! `UserService` through its public API, as an embedder uses it: every rule of
//! registration, login, sessions, profile, admin operations and favorites.

use std::sync::Arc;
use std::time::Duration;

use user_core::auth::{HashingConfig, SigningConfig};
use user_core::clock::ManualClock;
use user_core::domain::{DeviceName, Email, Login, Password, Role, TrackBatch, TrackId, UserId, Username};
use user_core::page::PageRequest;
use user_core::service::{ClientInfo, ProfileUpdate, Registration};
use user_core::store::{self, AccountChanges, AuditFilter, GuestFilter, Store, TaskKind, User, UserKey};
use user_core::{ConflictField, Error, ForbiddenReason, ServiceConfig, UnauthorizedReason, UserService};

mod accounts;
mod factors;
mod favorites;
mod keys_and_stores;
mod postgres_tls;
mod races;
mod sessions;

struct TestApp {
    service: UserService,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
}

impl TestApp {
    /// An operator's role change, as `user-cli user set-role` makes it.
    async fn set_role(&self, id: UserId, role: Role) -> user_core::Result<User> {
        let changes = AccountChanges { role: Some(role), ..AccountChanges::default() };
        self.service.change_account(id, changes, &ClientInfo::default()).await
    }

    /// An operator's disable (`true`) or enable.
    async fn set_disabled(&self, id: UserId, disabled: bool) -> user_core::Result<User> {
        let changes = AccountChanges { disabled: Some(disabled), ..AccountChanges::default() };
        self.service.change_account(id, changes, &ClientInfo::default()).await
    }
}

fn config() -> ServiceConfig {
    ServiceConfig { hashing: HashingConfig::insecure_for_tests(), ..ServiceConfig::default() }
}

async fn app() -> TestApp {
    app_with(config()).await
}

async fn app_with(config: ServiceConfig) -> TestApp {
    let store = user_core::testing::memory_store().await;
    let clock = Arc::new(ManualClock::default());
    let service = UserService::with_clock(store.clone(), config, clock.clone()).await.unwrap();
    TestApp { service, clock, store }
}

fn pw(s: &str) -> Password {
    Password::parse(s).unwrap()
}

fn registration(name: &str) -> Registration {
    Registration {
        username: Username::parse(name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        password: pw("correct horse"),
        locale: Default::default(),
    }
}

fn login_name(s: &str) -> Login {
    Login::parse(s).unwrap()
}

fn unauthorized(result: Result<impl std::fmt::Debug, Error>) -> UnauthorizedReason {
    match result {
        Err(Error::Unauthorized(reason)) => reason,
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

impl TestApp {
    async fn register(&self, name: &str) -> user_core::store::User {
        self.service.register(registration(name), &ClientInfo::default()).await.unwrap()
    }

    async fn login(&self, name: &str) -> user_core::auth::IssuedTokens {
        self.service.login(&login_name(name), &pw("correct horse"), &ClientInfo::default()).await.unwrap().tokens
    }
}
