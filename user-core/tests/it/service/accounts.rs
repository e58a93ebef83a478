//! Accounts through the service: registration, profile changes, deletion, operators.

use super::*;

#[tokio::test]
async fn register_creates_a_user_with_the_user_role() {
    let app = app().await;
    let user = app.register("Alice").await;
    assert_eq!(
        (user.username.as_ref().unwrap().as_str(), user.email.as_ref().unwrap().as_str(), user.role),
        ("Alice", "alice@example.com", Role::User)
    );
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
    assert_eq!(
        (renamed.username.as_ref().unwrap().as_str(), renamed.email.as_ref().unwrap().as_str()),
        ("alicia", "alice@example.com")
    );
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
    assert_eq!(app.service.get(user.id).await.unwrap().username.as_ref().unwrap().as_str(), "alice");
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
        let result = app.service.list_users(&page, GuestFilter::Include).await.unwrap();
        seen.extend(result.items.iter().map(|u| u.id));
        match result.next_cursor {
            Some(c) => page = PageRequest::first(2).unwrap().after(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let exact = app.service.list_users(&PageRequest::first(5).unwrap(), GuestFilter::Include).await.unwrap();
    assert_eq!((exact.items.len(), exact.next_cursor), (5, None));
}

#[tokio::test]
async fn a_foreign_cursor_is_a_validation_error() {
    let app = app().await;
    let user = app.register("alice").await;
    app.service.add_favorites(user.id, &TrackBatch::parse("1,2").unwrap()).await.unwrap();
    let favs = app.service.list_favorites(user.id, &PageRequest::first(1).unwrap()).await.unwrap();
    let foreign = PageRequest::first(1).unwrap().after(favs.next_cursor.unwrap());
    assert!(
        matches!(app.service.list_users(&foreign, GuestFilter::Include).await, Err(Error::Validation(e)) if e.field == "cursor")
    );
}

#[tokio::test]
async fn only_admin_claims_pass_the_admin_check_and_a_role_change_ends_the_sessions_at_once() {
    // The role alone is under test here: admins sign in by password.
    let mut config = config();
    config.mfa.required = user_core::service::MfaRequired::None;
    let app = app_with(config).await;
    let user = app.register("alice").await;
    let tokens = app.login("alice").await;
    let claims = app.service.authenticate(&tokens.access).await.unwrap();
    assert!(matches!(claims.require_admin(), Err(Error::Forbidden(ForbiddenReason::AdminOnly))));
    assert_eq!(app.set_role(user.id, Role::Admin).await.unwrap().role, Role::Admin);
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::SessionRevoked);
    assert!(app.service.refresh(&tokens.refresh, &ClientInfo::default()).await.is_err());
    let admin = app.login("alice").await;
    app.service.authenticate(&admin.access).await.unwrap().require_admin().unwrap();
    // A demoted admin's token stops working at once, not when it expires
    // (another admin remains: the last one cannot be demoted).
    let other = app.register("bob").await;
    app.set_role(other.id, Role::Admin).await.unwrap();
    app.set_role(user.id, Role::User).await.unwrap();
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
async fn an_operator_can_create_an_admin_and_revoke_sessions() {
    let app = app().await;
    let admin = app.service.create_user(registration("root"), Role::Admin, &ClientInfo::default()).await.unwrap();
    assert_eq!(admin.role, Role::Admin);
    let tokens = app.login("root").await;
    assert_eq!(app.service.revoke_sessions(admin.id, &ClientInfo::default()).await.unwrap(), 1);
    assert_eq!(unauthorized(app.service.authenticate(&tokens.access).await), UnauthorizedReason::SessionRevoked);
    assert!(matches!(
        app.service.revoke_sessions(user_core::domain::UserId::new(), &ClientInfo::default()).await,
        Err(Error::UserNotFound)
    ));
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

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = app().await;
    let root = app.register("root").await;
    app.set_role(root.id, Role::Admin).await.unwrap();
    assert!(matches!(app.set_role(root.id, Role::User).await, Err(Error::LastAdmin)));
    assert!(matches!(app.set_disabled(root.id, true).await, Err(Error::LastAdmin)));
    assert!(matches!(app.service.delete(root.id, &ClientInfo::default()).await, Err(Error::LastAdmin)));
    assert_eq!(Error::LastAdmin.http_status(), 409);
    let second = app.register("second").await;
    app.set_role(second.id, Role::Admin).await.unwrap();
    app.service.delete(root.id, &ClientInfo::default()).await.unwrap();
}
