//! `UserService` through its public API, as an embedder uses it: every rule of
//! registration, login, sessions, profile, admin operations and favorites.

use std::sync::Arc;
use std::time::Duration;

use user_core::auth::{HashingConfig, SigningConfig};
use user_core::clock::ManualClock;
use user_core::domain::{Email, Login, Password, Role, TrackBatch, TrackId, Username};
use user_core::page::PageRequest;
use user_core::service::{ClientInfo, ProfileUpdate, Registration};
use user_core::store::{self, Store, TaskKind, UserKey};
use user_core::{ConflictField, Error, ForbiddenReason, ServiceConfig, UnauthorizedReason, UserService};

struct TestApp {
    service: UserService,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
}

fn config() -> ServiceConfig {
    ServiceConfig { hashing: HashingConfig::insecure_for_tests(), ..ServiceConfig::default() }
}

async fn app() -> TestApp {
    app_with(config()).await
}

async fn app_with(config: ServiceConfig) -> TestApp {
    let store = store::open("memory:").await.unwrap();
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

#[tokio::test]
async fn register_creates_a_user_with_the_user_role() {
    let app = app().await;
    let user = app.register("Alice").await;
    assert_eq!((user.username.as_str(), user.email.as_str(), user.role), ("Alice", "alice@example.com", Role::User));
    assert_eq!(app.service.get(user.id).await.unwrap(), user);
}

#[tokio::test]
async fn register_reports_a_taken_username_in_any_case_or_a_taken_email() {
    let app = app().await;
    app.register("alice").await;
    let same_name = Registration { email: Email::parse("other@example.com").unwrap(), ..registration("ALICE") };
    assert!(matches!(
        app.service.register(same_name, &ClientInfo::default()).await,
        Err(Error::Conflict(ConflictField::Username))
    ));
    let same_email = Registration { email: Email::parse("Alice@Example.com").unwrap(), ..registration("bob") };
    assert!(matches!(
        app.service.register(same_email, &ClientInfo::default()).await,
        Err(Error::Conflict(ConflictField::Email))
    ));
}

#[tokio::test]
async fn login_works_by_username_in_any_case_and_by_email() {
    let app = app().await;
    let user = app.register("alice").await;
    for name in ["alice", "ALICE", "alice@example.com", "Alice@Example.COM"] {
        let outcome = app.service.login(&login_name(name), &pw("correct horse"), &ClientInfo::default()).await.unwrap();
        assert_eq!(outcome.user.id, user.id, "{name}");
        assert_eq!(app.service.authenticate(&outcome.tokens.access).await.unwrap().sub, user.id);
    }
}

#[tokio::test]
async fn login_tells_a_wrong_password_from_an_unknown_user() {
    let app = app().await;
    app.register("alice").await;
    let wrong = app.service.login(&login_name("alice"), &pw("wrong horse"), &ClientInfo::default()).await;
    assert!(matches!(wrong, Err(Error::InvalidCredentials)));
    let unknown = app.service.login(&login_name("nobody"), &pw("correct horse"), &ClientInfo::default()).await;
    assert!(matches!(unknown, Err(Error::UserNotFound)));
}

#[tokio::test]
async fn a_disabled_account_is_refused_only_after_its_password_verifies() {
    let app = app().await;
    let user = app.register("alice").await;
    app.service.disable(user.id).await.unwrap();
    let wrong = app.service.login(&login_name("alice"), &pw("wrong horse"), &ClientInfo::default()).await;
    assert!(matches!(wrong, Err(Error::InvalidCredentials)));
    let right = app.service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await;
    assert!(matches!(right, Err(Error::Forbidden(ForbiddenReason::AccountDisabled))));
    app.service.enable(user.id).await.unwrap();
    app.login("alice").await;
}

#[tokio::test]
async fn disabling_ends_every_session_at_once() {
    let app = app().await;
    let user = app.register("alice").await;
    let tokens = app.login("alice").await;
    app.service.disable(user.id).await.unwrap();
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::SessionRevoked);
    assert_eq!(
        unauthorized(app.service.refresh(&tokens.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::SessionRevoked
    );
}

#[tokio::test]
async fn login_records_the_client_on_the_session() {
    let app = app().await;
    app.register("alice").await;
    let client = ClientInfo { user_agent: Some("x".repeat(300)), ip: Some("10.1.2.3".parse().unwrap()) };
    let tokens = app.service.login(&login_name("alice"), &pw("correct horse"), &client).await.unwrap().tokens;
    let session = app.store.session(tokens.session_id).await.unwrap().unwrap();
    assert_eq!(session.ip.as_deref(), Some("10.1.2.3"));
    assert_eq!(session.user_agent.unwrap().len(), 256, "user agents are truncated");
    assert_eq!(session.expires_at, tokens.refresh_expires_at);
}

#[tokio::test]
async fn login_rehashes_a_password_hashed_with_old_parameters() {
    let old =
        ServiceConfig { hashing: HashingConfig { memory_kib: 16, ..HashingConfig::insecure_for_tests() }, ..config() };
    let app = app_with(old).await;
    let user = app.register("alice").await;
    let stored = |store: Arc<dyn Store>| async move {
        store.find_user(UserKey::Id(user.id)).await.unwrap().unwrap().password_hash
    };
    assert!(stored(app.store.clone()).await.contains("m=16"));
    let upgraded = UserService::with_clock(app.store.clone(), config(), app.clock.clone()).await.unwrap();
    upgraded.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await.unwrap();
    assert!(stored(app.store.clone()).await.contains("m=8,"));
}

#[tokio::test]
async fn refresh_rotates_and_the_new_pair_works() {
    let app = app().await;
    app.register("alice").await;
    let first = app.login("alice").await;
    app.clock.advance(Duration::from_secs(60));
    let second = app.service.refresh(&first.refresh, &ClientInfo::default()).await.unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh, first.refresh);
    app.service.authenticate(&second.access).await.unwrap();
    let third = app.service.refresh(&second.refresh, &ClientInfo::default()).await.unwrap();
    app.service.authenticate(&third.access).await.unwrap();
}

#[tokio::test]
async fn the_replaced_refresh_token_within_the_grace_period_is_refused_without_revoking() {
    let app = app().await;
    app.register("alice").await;
    let first = app.login("alice").await;
    let second = app.service.refresh(&first.refresh, &ClientInfo::default()).await.unwrap();
    app.clock.advance(Duration::from_secs(10));
    assert_eq!(
        unauthorized(app.service.refresh(&first.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::RefreshRecentlyRotated
    );
    // The session and its newest refresh token stay valid.
    app.service.authenticate(&second.access).await.unwrap();
    app.service.refresh(&second.refresh, &ClientInfo::default()).await.unwrap();
}

#[tokio::test]
async fn reuse_of_a_rotated_refresh_token_after_the_grace_period_revokes_the_session() {
    let app = app().await;
    app.register("alice").await;
    let first = app.login("alice").await;
    let second = app.service.refresh(&first.refresh, &ClientInfo::default()).await.unwrap();
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(
        unauthorized(app.service.refresh(&first.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::RefreshReused
    );
    assert_eq!(unauthorized(app.service.authenticate(&second.access).await), UnauthorizedReason::SessionRevoked);
    assert_eq!(
        unauthorized(app.service.refresh(&second.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::SessionRevoked
    );
}

#[tokio::test]
async fn reuse_of_an_older_refresh_token_revokes_even_within_the_grace_period() {
    let app = app().await;
    app.register("alice").await;
    let first = app.login("alice").await;
    let second = app.service.refresh(&first.refresh, &ClientInfo::default()).await.unwrap();
    let third = app.service.refresh(&second.refresh, &ClientInfo::default()).await.unwrap();
    // `first` is two rotations old: only the immediately previous token has grace.
    assert_eq!(
        unauthorized(app.service.refresh(&first.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::RefreshReused
    );
    assert_eq!(unauthorized(app.service.authenticate(&third.access).await), UnauthorizedReason::SessionRevoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_with_one_token_have_exactly_one_winner_and_the_session_survives() {
    let app = app().await;
    app.register("alice").await;
    let first = app.login("alice").await;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let service = app.service.clone();
            let token = first.refresh.clone();
            tokio::spawn(async move { service.refresh(&token, &ClientInfo::default()).await })
        })
        .collect();
    let mut winners = Vec::new();
    for h in handles {
        match h.await.unwrap() {
            Ok(tokens) => winners.push(tokens),
            Err(Error::Unauthorized(UnauthorizedReason::RefreshRecentlyRotated)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    app.service.refresh(&winners[0].refresh, &ClientInfo::default()).await.unwrap();
}

#[tokio::test]
async fn an_access_token_is_not_a_refresh_token_nor_the_reverse() {
    let app = app().await;
    app.register("alice").await;
    let tokens = app.login("alice").await;
    assert_eq!(unauthorized(app.service.authenticate(&tokens.refresh).await), UnauthorizedReason::WrongType);
    assert_eq!(
        unauthorized(app.service.refresh(&tokens.access, &ClientInfo::default()).await),
        UnauthorizedReason::WrongType
    );
}

#[tokio::test]
async fn access_tokens_expire_after_fifteen_minutes_and_refresh_tokens_after_thirty_days() {
    let app = app().await;
    app.register("alice").await;
    let tokens = app.login("alice").await;
    app.clock.advance(Duration::from_secs(15 * 60 + 6));
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::Expired);
    let renewed = app.service.refresh(&tokens.refresh, &ClientInfo::default()).await.unwrap();
    app.clock.advance(Duration::from_secs(30 * 24 * 3600 + 6));
    assert_eq!(
        unauthorized(app.service.refresh(&renewed.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::Expired
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_only_that_session() {
    let app = app().await;
    app.register("alice").await;
    let phone = app.login("alice").await;
    let laptop = app.login("alice").await;
    let claims = app.service.authenticate_refresh(&phone.refresh).await.unwrap();
    app.service.logout(claims.sub, claims.sid, &ClientInfo::default()).await.unwrap();
    assert_eq!(unauthorized(app.service.authenticate(&phone.access).await), UnauthorizedReason::SessionRevoked);
    assert_eq!(
        unauthorized(app.service.refresh(&phone.refresh, &ClientInfo::default()).await),
        UnauthorizedReason::SessionRevoked
    );
    app.service.authenticate(&laptop.access).await.unwrap();
    app.service.logout(claims.sub, claims.sid, &ClientInfo::default()).await.unwrap();
}

#[tokio::test]
async fn an_empty_update_is_a_validation_error() {
    let app = app().await;
    let user = app.register("alice").await;
    match app.service.update(user.id, None, ProfileUpdate::default(), &ClientInfo::default()).await {
        Err(Error::Validation(e)) => assert_eq!(e.field, "body"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn update_changes_any_subset_and_reports_conflicts_per_field() {
    let app = app().await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    let renamed = app
        .service
        .update(
            alice.id,
            None,
            ProfileUpdate { username: Some(Username::parse("alicia").unwrap()), ..Default::default() },
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!((renamed.username.as_str(), renamed.email.as_str()), ("alicia", "alice@example.com"));
    let taken = ProfileUpdate { email: Some(Email::parse("BOB@example.com").unwrap()), ..Default::default() };
    assert!(matches!(
        app.service.update(alice.id, None, taken, &ClientInfo::default()).await,
        Err(Error::Conflict(ConflictField::Email))
    ));
    let taken = ProfileUpdate { username: Some(Username::parse("Bob").unwrap()), ..Default::default() };
    assert!(matches!(
        app.service.update(alice.id, None, taken, &ClientInfo::default()).await,
        Err(Error::Conflict(ConflictField::Username))
    ));
}

#[tokio::test]
async fn a_password_change_revokes_every_other_session_and_keeps_the_callers() {
    let app = app().await;
    let user = app.register("alice").await;
    let mine = app.login("alice").await;
    let other = app.login("alice").await;
    let change = ProfileUpdate { password: Some(pw("new password!")), ..Default::default() };
    app.service.update(user.id, Some(mine.session_id), change, &ClientInfo::default()).await.unwrap();
    app.service.authenticate(&mine.access).await.unwrap();
    assert_eq!(unauthorized(app.service.authenticate(&other.access).await), UnauthorizedReason::SessionRevoked);
    let old = app.service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await;
    assert!(matches!(old, Err(Error::InvalidCredentials)));
    app.service.login(&login_name("alice"), &pw("new password!"), &ClientInfo::default()).await.unwrap();
}

#[tokio::test]
async fn a_wrong_current_password_is_unauthorized_and_changes_nothing() {
    let app = app().await;
    let user = app.register("alice").await;
    let change = ProfileUpdate {
        username: Some(Username::parse("mallory").unwrap()),
        current_password: Some(pw("not my password")),
        ..Default::default()
    };
    let result = app.service.update(user.id, None, change, &ClientInfo::default()).await;
    assert_eq!(unauthorized(result), UnauthorizedReason::WrongCurrentPassword);
    assert_eq!(app.service.get(user.id).await.unwrap().username.as_str(), "alice");
    let change = ProfileUpdate {
        username: Some(Username::parse("alicia").unwrap()),
        current_password: Some(pw("correct horse")),
        ..Default::default()
    };
    app.service.update(user.id, None, change, &ClientInfo::default()).await.unwrap();
}

#[tokio::test]
async fn current_password_can_be_made_mandatory_for_password_and_email_changes() {
    let app = app_with(ServiceConfig { require_current_password: true, ..config() }).await;
    let user = app.register("alice").await;
    let email = ProfileUpdate { email: Some(Email::parse("new@example.com").unwrap()), ..Default::default() };
    match app.service.update(user.id, None, email, &ClientInfo::default()).await {
        Err(Error::Validation(e)) => assert_eq!(e.field, "current_password"),
        other => panic!("{other:?}"),
    }
    let rename = ProfileUpdate { username: Some(Username::parse("alicia").unwrap()), ..Default::default() };
    app.service.update(user.id, None, rename, &ClientInfo::default()).await.unwrap();
}

#[tokio::test]
async fn delete_removes_the_user_sessions_and_favorites_and_enqueues_user_deleted() {
    let app = app().await;
    let user = app.register("alice").await;
    let tokens = app.login("alice").await;
    app.service.add_favorites(user.id, &TrackBatch::parse("1,2").unwrap()).await.unwrap();
    app.service.delete(user.id, &ClientInfo::default()).await.unwrap();
    assert!(matches!(app.service.get(user.id).await, Err(Error::UserNotFound)));
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::SessionRevoked);
    let tasks = app.store.list_tasks(None, None, 10).await.unwrap();
    assert_eq!(tasks.last().unwrap().kind, TaskKind::UserDeleted);
    assert!(matches!(app.service.delete(user.id, &ClientInfo::default()).await, Err(Error::UserNotFound)));
}

#[tokio::test]
async fn users_are_listed_oldest_first_page_by_page() {
    let app = app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.register(&format!("user{n}")).await.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2).unwrap();
    loop {
        let result = app.service.list_users(&page).await.unwrap();
        seen.extend(result.items.iter().map(|u| u.id));
        match result.next_cursor {
            Some(c) => page = PageRequest::first(2).unwrap().after(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let exact = app.service.list_users(&PageRequest::first(5).unwrap()).await.unwrap();
    assert_eq!((exact.items.len(), exact.next_cursor), (5, None));
}

#[tokio::test]
async fn a_foreign_cursor_is_a_validation_error() {
    let app = app().await;
    let user = app.register("alice").await;
    app.service.add_favorites(user.id, &TrackBatch::parse("1,2").unwrap()).await.unwrap();
    let favs = app.service.list_favorites(user.id, &PageRequest::first(1).unwrap()).await.unwrap();
    let foreign = PageRequest::first(1).unwrap().after(favs.next_cursor.unwrap());
    assert!(matches!(app.service.list_users(&foreign).await, Err(Error::Validation(e)) if e.field == "cursor"));
}

#[tokio::test]
async fn only_admin_claims_pass_the_admin_check_and_a_role_change_ends_the_sessions_at_once() {
    let app = app().await;
    let user = app.register("alice").await;
    let tokens = app.login("alice").await;
    let claims = app.service.authenticate(&tokens.access).await.unwrap();
    assert!(matches!(claims.require_admin(), Err(Error::Forbidden(ForbiddenReason::AdminOnly))));
    assert_eq!(app.service.set_role(user.id, Role::Admin).await.unwrap().role, Role::Admin);
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::SessionRevoked);
    assert!(app.service.refresh(&tokens.refresh, &ClientInfo::default()).await.is_err());
    let admin = app.login("alice").await;
    app.service.authenticate(&admin.access).await.unwrap().require_admin().unwrap();
    // A demoted admin's token stops working at once, not when it expires.
    app.service.set_role(user.id, Role::User).await.unwrap();
    assert_eq!(unauthorized(app.service.authenticate(&admin.access).await), UnauthorizedReason::SessionRevoked);
}

#[tokio::test]
async fn forty_concurrent_wrong_guesses_get_no_more_checks_than_the_lockout_allows() {
    let app = app().await;
    app.register("alice").await;
    let hasher = app.service.password_hasher().clone();
    let before = hasher.completed();
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let (service, barrier) = (app.service.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                service.login(&login_name("alice"), &pw(&format!("guess number {i}")), &ClientInfo::default()).await
            })
        })
        .collect();
    let (mut checked, mut throttled) = (0, 0);
    for guess in guesses {
        match guess.await.unwrap() {
            Err(Error::InvalidCredentials) => checked += 1,
            Err(Error::Throttled { .. }) => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((checked, throttled), (5, 35));
    assert_eq!(hasher.completed() - before, 5, "one argon2 computation per allowed guess only");
}

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lockout_like_failed_logins() {
    let app = app().await;
    let user = app.register("alice").await;
    let guess = |n: u32| ProfileUpdate {
        password: Some(pw("new password 1")),
        current_password: Some(pw(&format!("guess number {n}"))),
        ..Default::default()
    };
    for n in 0..5 {
        let result = app.service.update(user.id, None, guess(n), &ClientInfo::default()).await;
        assert_eq!(unauthorized(result), UnauthorizedReason::WrongCurrentPassword);
    }
    let result = app.service.update(user.id, None, guess(5), &ClientInfo::default()).await;
    assert!(matches!(result, Err(Error::Throttled { .. })), "{result:?}");
    let login = app.service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await;
    assert!(matches!(login, Err(Error::Throttled { .. })), "the account is throttled for logins too");
    let events = app.store.list_audit(Some(user.id), None, 100).await.unwrap();
    let failures = events.iter().filter(|e| e.event == "login.failure").count();
    assert_eq!(failures, 5, "each wrong current password is audited as a failed login");
    assert!(events.iter().any(|e| e.detail.as_deref() == Some("wrong current password (5 in a row)")));
    // Once the wait is over, the right password works and clears the count.
    app.clock.advance(Duration::from_secs(3));
    let ok = ProfileUpdate { current_password: Some(pw("correct horse")), ..guess(0) };
    app.service.update(user.id, None, ok, &ClientInfo::default()).await.unwrap();
    let record = app.store.find_user(UserKey::Id(user.id)).await.unwrap().unwrap();
    assert_eq!((record.failed_logins, record.locked_until), (0, None));
}

/// Logins racing password changes, many rounds through a barrier. The login
/// service hashes with other parameters than the one changing the password,
/// so every login also rehashes: the old password's hash must never be
/// written back, and no session minted from an old password may survive.
async fn logins_racing_password_changes(store: Arc<dyn Store>) {
    let changer = UserService::new(store.clone(), config()).await.unwrap();
    let mut login_config = config();
    login_config.hashing.memory_kib = 16;
    let logins = UserService::new(store.clone(), login_config).await.unwrap();
    let user = changer.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let password = |round: usize| if round == 0 { pw("correct horse") } else { pw(&format!("password {round}")) };
    let (mut sessions_minted, mut logins_refused) = (0, 0);
    for round in 0..60 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let login = {
            let (logins, barrier, old) = (logins.clone(), barrier.clone(), password(round));
            tokio::spawn(async move {
                barrier.wait().await;
                logins.login(&login_name("alice"), &old, &ClientInfo::default()).await
            })
        };
        let change = {
            let (changer, barrier, new) = (changer.clone(), barrier.clone(), password(round + 1));
            tokio::spawn(async move {
                barrier.wait().await;
                let update = ProfileUpdate { password: Some(new), ..Default::default() };
                changer.update(user.id, None, update, &ClientInfo::default()).await
            })
        };
        change.await.unwrap().unwrap();
        match login.await.unwrap() {
            Ok(outcome) => {
                sessions_minted += 1;
                let access = logins.authenticate(&outcome.tokens.access).await;
                assert_eq!(unauthorized(access), UnauthorizedReason::SessionRevoked, "round {round}");
            }
            Err(Error::InvalidCredentials) => logins_refused += 1,
            Err(e) => panic!("round {round}: {e:?}"),
        }
        // The stored hash is the new password's, whichever finished last.
        let now = logins.login(&login_name("alice"), &password(round + 1), &ClientInfo::default()).await;
        assert!(now.is_ok(), "round {round}: the new password works: {now:?}");
        let old = logins.login(&login_name("alice"), &password(round), &ClientInfo::default()).await;
        assert!(matches!(old, Err(Error::InvalidCredentials)), "round {round}: the old one does not: {old:?}");
        store.reset_login_failures(user.id).await.unwrap();
    }
    println!("{sessions_minted} logins won the race (and were revoked), {logins_refused} were refused");
}

/// Two password changes checked against the same `current_password`, released
/// together, many rounds: exactly one applies; the other is refused, never
/// written over the winner on the strength of a password that is no longer current.
async fn password_changes_racing_each_other(store: Arc<dyn Store>) {
    let service = UserService::new(store, config()).await.unwrap();
    let user = service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let mut current = "correct horse".to_owned();
    for round in 0..40 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let changes: Vec<_> = (0..2)
            .map(|n| {
                let (service, barrier, current) = (service.clone(), barrier.clone(), current.clone());
                tokio::spawn(async move {
                    let update = ProfileUpdate {
                        password: Some(pw(&format!("round {round} writer {n}"))),
                        current_password: Some(pw(&current)),
                        ..Default::default()
                    };
                    barrier.wait().await;
                    service.update(user.id, None, update, &ClientInfo::default()).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (n, change) in changes.into_iter().enumerate() {
            match change.await.unwrap() {
                Ok(_) => winners.push(n),
                Err(Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword)) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one change applies");
        current = format!("round {round} writer {}", winners[0]);
        let login = service.login(&login_name("alice"), &pw(&current), &ClientInfo::default()).await;
        assert!(login.is_ok(), "round {round}: the winner's password is the one stored: {login:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_password_changes_with_one_current_password_apply_exactly_once() {
    password_changes_racing_each_other(store::open("memory:").await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
    sqlite.migrate().await.unwrap();
    password_changes_racing_each_other(sqlite).await;
    if let Some(url) = user_core::testing::postgres_schema_url().await {
        let postgres = store::open(&url).await.unwrap();
        postgres.migrate().await.unwrap();
        password_changes_racing_each_other(postgres).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_password_change_never_keeps_a_session_or_restores_the_old_hash() {
    logins_racing_password_changes(store::open("memory:").await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_password_change_on_sqlite_never_keeps_a_session_or_restores_the_old_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    logins_racing_password_changes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_password_change_on_postgres_never_keeps_a_session_or_restores_the_old_hash() {
    let Some(url) = user_core::testing::postgres_schema_url().await else { return };
    let store = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    logins_racing_password_changes(store).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let store = store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    store.migrate().await.unwrap();
    let service = UserService::new(store, config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}

#[tokio::test]
async fn an_operator_can_create_an_admin_and_revoke_sessions() {
    let app = app().await;
    let admin = app.service.create_user(registration("root"), Role::Admin).await.unwrap();
    assert_eq!(admin.role, Role::Admin);
    let tokens = app.login("root").await;
    assert_eq!(app.service.revoke_sessions(admin.id).await.unwrap(), 1);
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::SessionRevoked);
    assert!(matches!(app.service.revoke_sessions(user_core::domain::UserId::new()).await, Err(Error::UserNotFound)));
}

#[tokio::test]
async fn favorites_are_idempotent_listed_newest_first_and_checked_in_request_order() {
    let app = app().await;
    let user = app.register("alice").await;
    let ids = |s: &str| TrackBatch::parse(s).unwrap();
    app.service.add_favorites(user.id, &ids("a,b,c")).await.unwrap();
    app.service.add_favorites(user.id, &ids("d")).await.unwrap();
    app.service.add_favorites(user.id, &ids("a")).await.unwrap();
    app.service.remove_favorites(user.id, &ids("b,zz")).await.unwrap();
    let page = app.service.list_favorites(user.id, &PageRequest::default()).await.unwrap();
    let listed: Vec<_> = page.items.iter().map(|f| f.track_id.as_str()).collect();
    assert_eq!(listed, ["d", "c", "a"]);
    assert_eq!(app.service.contains(user.id, &ids("zz,d,a,b")).await.unwrap(), [false, true, true, false]);
    let kinds: Vec<_> = app.store.list_tasks(None, None, 100).await.unwrap().iter().map(|t| t.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == TaskKind::FavoriteAdded).count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == TaskKind::FavoriteRemoved).count(), 1);
}

#[test]
fn favorite_batches_hold_one_to_fifty_distinct_ids() {
    let ids = |n: usize| (0..n).map(|n| TrackId::parse(&n.to_string()).unwrap()).collect::<Vec<_>>();
    for refused in [ids(51), ids(0)] {
        assert!(matches!(TrackBatch::new(refused), Err(e) if e.field == "track_id"));
    }
    assert_eq!(TrackBatch::new(ids(50)).unwrap().len(), 50);
    // A repeated id counts once: 50 distinct ones and a repeat are a batch.
    let mut repeated = ids(50);
    repeated.push(repeated[0].clone());
    assert_eq!(TrackBatch::new(repeated).unwrap().len(), 50);
}

#[tokio::test]
async fn generated_signing_keys_are_kept_in_the_store_so_restarts_keep_sessions() {
    for signing in [SigningConfig::GeneratedHs256, SigningConfig::GeneratedEd25519] {
        let app = app_with(ServiceConfig { signing: signing.clone(), ..config() }).await;
        app.register("alice").await;
        let tokens = app.login("alice").await;
        let restarted =
            UserService::with_clock(app.store.clone(), ServiceConfig { signing, ..config() }, app.clock.clone())
                .await
                .unwrap();
        restarted.authenticate(&tokens.access).await.unwrap();
        assert_eq!(restarted.tokens().keys().signing_kid(), app.service.tokens().keys().signing_kid());
    }
}

#[tokio::test]
async fn configured_secrets_sign_and_a_foreign_secret_is_refused() {
    let mine = app_with(ServiceConfig { signing: SigningConfig::Hs256(vec![vec![1; 32]]), ..config() }).await;
    mine.register("alice").await;
    let tokens = mine.login("alice").await;
    let other = UserService::with_clock(
        mine.store.clone(),
        ServiceConfig { signing: SigningConfig::Hs256(vec![vec![2; 32]]), ..config() },
        mine.clock.clone(),
    )
    .await
    .unwrap();
    assert_eq!(unauthorized(other.authenticate(&tokens.access).await), UnauthorizedReason::Malformed);
    let short = UserService::new(
        mine.store.clone(),
        ServiceConfig { signing: SigningConfig::Hs256(vec![vec![1; 8]]), ..config() },
    );
    assert!(matches!(short.await, Err(Error::Validation(_))));
}

#[tokio::test]
async fn the_service_works_the_same_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    let service = UserService::new(store, config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let tokens =
        service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await.unwrap().tokens;
    let rotated = service.refresh(&tokens.refresh, &ClientInfo::default()).await.unwrap();
    let claims = service.authenticate(&rotated.access).await.unwrap();
    service.add_favorites(claims.sub, &TrackBatch::parse("1,2").unwrap()).await.unwrap();
    assert_eq!(service.contains(claims.sub, &TrackBatch::parse("2,3").unwrap()).await.unwrap(), [true, false]);
}

#[tokio::test]
async fn an_unknown_database_scheme_is_a_validation_error_naming_the_database() {
    match store::open("mysql://localhost/x").await {
        Err(Error::Validation(e)) => assert_eq!(e.field, "database"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_user_costs_one_verification_like_a_wrong_password() {
    let app = app().await;
    app.register("alice").await;
    let hasher = app.service.password_hasher();
    let attempt = |name: &'static str| {
        let service = app.service.clone();
        async move { service.login(&login_name(name), &pw("wrong horse"), &ClientInfo::default()).await }
    };
    attempt("nobody").await.unwrap_err(); // the first one also makes the dummy hash
    let before = hasher.completed();
    attempt("nobody").await.unwrap_err();
    let unknown_cost = hasher.completed() - before;
    let before = hasher.completed();
    attempt("alice").await.unwrap_err();
    assert_eq!((unknown_cost, hasher.completed() - before), (1, 1));
}

#[tokio::test]
async fn postgres_connects_over_tls_with_sslmode_require_and_verify_full_checks_the_certificate() {
    use sqlx::Connection as _;
    let Some(url) = user_core::testing::postgres_schema_url().await else { return };
    let mut plain = sqlx::PgConnection::connect(&url).await.unwrap();
    let ssl_on: String = sqlx::query_scalar("show ssl").fetch_one(&mut plain).await.unwrap();
    if ssl_on != "on" {
        user_core::testing::skipped(&format!("TLS to PostgreSQL: this server has ssl = {ssl_on}"));
        return;
    }
    let required = format!("{url}&sslmode=require");
    let store = store::open(&required).await.unwrap();
    store.migrate().await.unwrap();
    let service = UserService::new(store, config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&required).await.unwrap();
    let encrypted: bool = sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(encrypted, "sslmode=require runs over TLS");
    // The local server's certificate is self-signed: verify-full refuses it
    // unless sslrootcert names its issuer.
    let refused = store::open(&format!("{url}&sslmode=verify-full")).await.unwrap_err();
    assert!(refused.to_string().to_lowercase().contains("certificate"), "{refused}");
}

/// A PostgreSQL cluster of the test's own, reachable over TCP with TLS only,
/// its certificate issued by a throwaway CA; stopped when dropped.
struct TlsOnlyPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    ca: std::path::PathBuf,
}

impl TlsOnlyPostgres {
    /// `None` (with the reason printed) where PostgreSQL's own programs are
    /// not installed, unless `USER_TEST_REQUIRE_POSTGRES=1`.
    fn start() -> Option<TlsOnlyPostgres> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use std::os::unix::fs::PermissionsExt;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|v| Some(v.ok()?.path().join("bin")))
            .find(|bin| bin.join("initdb").exists());
        let Some(bin) = bin else {
            let required = std::env::var("USER_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true");
            assert!(!required, "USER_TEST_REQUIRE_POSTGRES=1 but initdb is not installed");
            user_core::testing::skipped(
                "a TLS-only PostgreSQL cluster: initdb is not installed (the postgresql server package)",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ca_path = dir.path().join("ca.pem");
        let mut cluster = TlsOnlyPostgres { dir, bin, port, ca: ca_path.clone() };
        if let Some((uid, gid)) = postgres_user_when_root() {
            std::os::unix::fs::chown(cluster.dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut init = cluster.as_owner("initdb");
        init.args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        let init = init.output().unwrap();
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
        let owner = std::fs::metadata(&data).unwrap();
        for (name, text) in [("server.crt", cert.pem()), ("server.key", key.serialize_pem())] {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        }
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let conf = format!(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nlisten_addresses = '127.0.0.1'\n\
             port = {port}\nunix_socket_directories = '{}'\nfsync = off\n",
            cluster.dir.path().display()
        );
        let mut postgresql_conf = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut postgresql_conf, conf.as_bytes()).unwrap();
        // TCP only with TLS; the socket is for pg_ctl's readiness check.
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").unwrap();
        let log = cluster.dir.path().join("postgres.log");
        let started = cluster
            .as_owner("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(started.status.success(), "pg_ctl start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        cluster.ca = ca_path;
        Some(cluster)
    }

    /// One of PostgreSQL's programs, run as the owner of the cluster (the
    /// `postgres` user when the tests run as root, which PostgreSQL refuses).
    fn as_owner(&self, program: &str) -> std::process::Command {
        let program = self.bin.join(program);
        if postgres_user_when_root().is_some() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

/// The `postgres` user's uid and gid when the tests run as root.
fn postgres_user_when_root() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = std::process::Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

impl Drop for TlsOnlyPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.as_owner("pg_ctl").args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output();
    }
}

#[tokio::test]
async fn a_tls_only_postgresql_with_a_private_ca_is_reached_with_verify_full() {
    let Some(pg) = TlsOnlyPostgres::start() else { return };
    let ca = pg.ca.display().to_string();
    for (host, mode) in [("localhost", "verify-full"), ("127.0.0.1", "verify-full"), ("localhost", "verify-ca")] {
        let url = pg.url(host, &format!("sslmode={mode}&sslrootcert={ca}"));
        let store = store::open(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
    }
    let url = pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let service = UserService::new(store::open(&url).await.unwrap(), config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    // Without TLS the server refuses; without the CA the client refuses.
    let plain = store::open(&pg.url("localhost", "sslmode=disable")).await.unwrap_err();
    assert!(plain.to_string().contains("no pg_hba.conf entry") || plain.to_string().contains("SSL off"), "{plain}");
    let untrusted = store::open(&pg.url("localhost", "sslmode=verify-full")).await.unwrap_err();
    assert!(untrusted.to_string().to_lowercase().contains("certificate"), "{untrusted}");
}
