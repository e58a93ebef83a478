//! Sessions through the service: login, refresh rotation and reuse, logout, lockout.

use super::*;

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
    app.set_disabled(user.id, true).await.unwrap();
    let wrong = app.service.login(&login_name("alice"), &pw("wrong horse"), &ClientInfo::default()).await;
    assert!(matches!(wrong, Err(Error::InvalidCredentials)));
    // More tries than the lockout allows: a right password never counts.
    for _ in 0..7 {
        let right = app.service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await;
        assert!(matches!(right, Err(Error::Forbidden(ForbiddenReason::AccountDisabled))), "{right:?}");
    }
    app.set_disabled(user.id, false).await.unwrap();
    app.login("alice").await;
}

#[tokio::test]
async fn disabling_ends_every_session_at_once() {
    let app = app().await;
    let user = app.register("alice").await;
    let tokens = app.login("alice").await;
    app.set_disabled(user.id, true).await.unwrap();
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
    let client = ClientInfo {
        user_agent: Some("x".repeat(300)),
        ip: Some("10.1.2.3".parse().unwrap()),
        device_name: Some(DeviceName::parse("Kitchen speaker").unwrap()),
        ..ClientInfo::default()
    };
    let tokens = app.service.login(&login_name("alice"), &pw("correct horse"), &client).await.unwrap().tokens;
    let session = app.store.session(tokens.session_id).await.unwrap().unwrap();
    assert_eq!(session.ip.as_deref(), Some("10.1.2.3"));
    assert_eq!(session.device_name.as_deref(), Some("Kitchen speaker"));
    assert_eq!(session.user_agent.unwrap().len(), 256, "user agents are truncated");
    assert_eq!(session.expires_at, tokens.refresh_expires_at);
}

#[tokio::test]
async fn a_user_lists_their_live_sessions_and_signs_one_or_all_others_out() {
    let app = app().await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    let mut opened = Vec::new();
    for device in ["TV", "Phone", "Car"] {
        let client = ClientInfo { device_name: Some(DeviceName::parse(device).unwrap()), ..ClientInfo::default() };
        opened.push(app.service.login(&login_name("alice"), &pw("correct horse"), &client).await.unwrap().tokens);
        app.clock.advance(Duration::from_secs(1));
    }
    let bobs = app.service.login(&login_name("bob"), &pw("correct horse"), &ClientInfo::default()).await.unwrap();
    let names = |sessions: Vec<user_core::store::SessionRecord>| {
        sessions.into_iter().map(|s| s.device_name.unwrap_or_default()).collect::<Vec<_>>()
    };
    assert_eq!(names(app.service.sessions(alice.id).await.unwrap()), ["Car", "Phone", "TV"], "newest first");

    // Someone else's session, or one already ended, is not found.
    let none = ClientInfo::default();
    let foreign = app.service.revoke_own_session(alice.id, bobs.tokens.session_id, &none).await;
    assert!(matches!(foreign, Err(Error::SessionNotFound)));
    app.service.revoke_own_session(alice.id, opened[0].session_id, &none).await.unwrap();
    let again = app.service.revoke_own_session(alice.id, opened[0].session_id, &none).await;
    assert!(matches!(again, Err(Error::SessionNotFound)));
    assert_eq!(unauthorized(app.service.authenticate(&opened[0].access).await), UnauthorizedReason::SessionRevoked);

    // Signing the others out keeps the caller's own and nobody else's.
    assert_eq!(app.service.revoke_other_sessions(alice.id, opened[2].session_id, &none).await.unwrap(), 1);
    assert_eq!(names(app.service.sessions(alice.id).await.unwrap()), ["Car"]);
    app.service.authenticate(&bobs.tokens.access).await.unwrap();
    assert_eq!(app.service.revoke_other_sessions(alice.id, opened[2].session_id, &none).await.unwrap(), 0);
}

#[test]
fn device_names_are_1_to_64_printable_characters() {
    for ok in ["TV", "Kitchen speaker", "Телевизор", &"x".repeat(64)] {
        assert!(DeviceName::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "   ", &"x".repeat(65), "tab\there", "new\nline"] {
        assert_eq!(DeviceName::parse(bad).unwrap_err().field, "device_name", "{bad:?}");
    }
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
    assert!(stored(app.store.clone()).await.unwrap().contains("m=16"));
    let upgraded = UserService::with_clock(app.store.clone(), config(), app.clock.clone()).await.unwrap();
    upgraded.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await.unwrap();
    assert!(stored(app.store.clone()).await.unwrap().contains("m=8,"));
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
    let events = app.store.list_audit(&AuditFilter { user: Some(user.id), event: None }, None, 100).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_calls_to_end_one_session_succeed_exactly_once() {
    let app = app().await;
    let alice = app.register("alice").await;
    let tv = app.service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (service, barrier) = (app.service.clone(), barrier.clone());
            let session = tv.tokens.session_id;
            tokio::spawn(async move {
                barrier.wait().await;
                service.revoke_own_session(alice.id, session, &ClientInfo::default()).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().filter(|o| o.is_err()).all(|o| matches!(o, Err(Error::SessionNotFound))));
    let revoked = app.store.list_audit(&AuditFilter { user: Some(alice.id), event: None }, None, 100).await.unwrap();
    assert_eq!(revoked.iter().filter(|e| e.event == "session.revoke").count(), 1, "audited once");
}
