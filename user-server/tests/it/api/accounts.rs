//! Register, login, logout, refresh, get, update, delete.

use super::*;

// ------------------------------------------------------------------- register

#[tokio::test]
async fn register_answers_the_documented_body() {
    let app = app().await;
    let body = json!({"username": "Alice", "password": "correct horse", "email": "Alice@Example.COM"});
    let reply = app.send(req("POST", "/user/register").json(body)).await;
    assert_eq!(reply.status, 200);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.body,
        json!({"response": {"message": "success", "status": 200}, "username": "Alice", "email": "alice@example.com", "id": id})
    );
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
}

#[tokio::test]
async fn register_rejects_each_invalid_field_naming_it() {
    let app = app().await;
    let cases = [
        ("username", "ab", "correct horse", "a@example.com"),
        ("username", "al@ice", "correct horse", "a@example.com"),
        ("username", &"a".repeat(33), "correct horse", "a@example.com"),
        ("password", "alice", "short", "a@example.com"),
        ("password", "alice", &"p".repeat(129), "a@example.com"),
        ("email", "alice", "correct horse", "not-an-email"),
    ];
    for (field, username, password, email) in cases {
        let body = json!({"username": username, "password": password, "email": email});
        let msg = app.send(req("POST", "/user/register").json(body)).await.error(400);
        assert!(msg.starts_with(&format!("{field}:")), "{field}: {msg}");
    }
}

#[tokio::test]
async fn register_answers_409_for_a_taken_username_in_any_case_or_a_taken_email() {
    let app = app().await;
    app.register("alice").await;
    let same_name = json!({"username": "ALICE", "password": "correct horse", "email": "x@example.com"});
    assert!(app.send(req("POST", "/user/register").json(same_name)).await.error(409).contains("username"));
    let same_email = json!({"username": "bob", "password": "correct horse", "email": "ALICE@example.com"});
    assert!(app.send(req("POST", "/user/register").json(same_email)).await.error(409).contains("email"));
}

// ---------------------------------------------------------------------- login

#[tokio::test]
async fn login_answers_the_documented_body_and_sets_both_cookies() {
    let app = app().await;
    let registered = app.register("alice").await;
    for name in ["alice", "alice@example.com"] {
        let reply =
            app.send(req("POST", "/user/login").json(json!({"username": name, "password": "correct horse"}))).await;
        assert_eq!(reply.status, 200);
        let token = reply.body["token"].as_str().unwrap();
        assert_eq!(
            reply.body,
            json!({"response": {"message": "success login", "status": 200}, "token": token, "id": registered.body["id"]})
        );
        assert_eq!(reply.cookie_value("access_token"), token);
        assert!(!reply.cookie_value("refresh_token").is_empty());
    }
}

#[tokio::test]
async fn login_errors_are_400_401_403_404() {
    let app = app().await;
    app.register("alice").await;
    let login = |u: &str, p: &str| req("POST", "/user/login").json(json!({"username": u, "password": p}));
    app.send(req("POST", "/user/login").json(json!({"username": "alice"}))).await.error(400);
    app.send(login("alice", "wrong horse")).await.error(401);
    app.send(login("nobody", "correct horse")).await.error(404);
    let id = app.send(login("alice", "correct horse")).await.body["id"].as_str().unwrap().parse().unwrap();
    let disable = user_core::store::AccountChanges { disabled: Some(true), ..Default::default() };
    app.state.service.change_account(id, disable, &Default::default()).await.unwrap();
    app.send(login("alice", "wrong horse")).await.error(401);
    app.send(login("alice", "correct horse")).await.error(403);
}

// --------------------------------------------------------------------- logout

#[tokio::test]
async fn logout_revokes_the_session_and_clears_both_cookies() {
    let app = app().await;
    let session = app.user("alice").await;
    let reply = app.send(req("POST", "/user/logout").bearer(&session.access)).await;
    assert_eq!((reply.status, reply.body.clone()), (200, json!({"message": "success", "status": 200})));
    assert!(
        reply.cookie("access_token").starts_with("access_token=;")
            && reply.cookie("access_token").contains("Max-Age=0")
    );
    assert!(reply.cookie("refresh_token").contains("Max-Age=0"));
    app.send(req("GET", "/user/get").bearer(&session.access)).await.error(401);
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await.error(401);
}

#[tokio::test]
async fn logout_works_with_the_refresh_cookie_alone_after_the_access_token_expired() {
    let app = app().await;
    let session = app.user("alice").await;
    app.clock.advance(Duration::from_secs(16 * 60));
    let reply =
        app.send(req("POST", "/user/logout").bearer(&session.access).cookie("refresh_token", &session.refresh)).await;
    assert_eq!(reply.status, 200);
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await.error(401);
}

#[tokio::test]
async fn logout_without_a_valid_token_is_401() {
    let app = app().await;
    app.send(req("POST", "/user/logout")).await.error(401);
    app.send(req("POST", "/user/logout").bearer("garbage")).await.error(401);
}

// -------------------------------------------------------------------- refresh

#[tokio::test]
async fn refresh_rotates_both_tokens_into_cookies() {
    let app = app().await;
    let session = app.user("alice").await;
    let reply = app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await;
    assert_eq!(reply.status, 200);
    let token = reply.body["token"].as_str().unwrap();
    let ends = reply.body["session_expires_at"].as_str().unwrap();
    assert_eq!(reply.body, json!({"message": "success", "status": 200, "token": token, "session_expires_at": ends}));
    assert_eq!(reply.cookie_value("access_token"), token);
    let new_refresh = reply.cookie_value("refresh_token");
    assert_ne!(new_refresh, session.refresh);
    assert!(reply.cookie("refresh_token").contains("Max-Age=2592000"));
    assert_eq!(app.send(req("GET", "/user/get").bearer(token)).await.status, 200);
}

#[tokio::test]
async fn a_replaced_refresh_token_within_grace_is_401_and_the_session_stays_valid() {
    let app = app().await;
    let session = app.user("alice").await;
    let rotated = app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await;
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await.error(401);
    let newest = rotated.cookie_value("refresh_token");
    assert_eq!(app.send(req("POST", "/user/refresh").cookie("refresh_token", &newest)).await.status, 200);
}

#[tokio::test]
async fn reuse_of_a_replaced_refresh_token_after_grace_revokes_the_session() {
    let app = app().await;
    let session = app.user("alice").await;
    let rotated = app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await;
    app.clock.advance(Duration::from_secs(11));
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await.error(401);
    let newest = rotated.cookie_value("refresh_token");
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &newest)).await.error(401);
    app.send(req("GET", "/user/get").bearer(&rotated.cookie_value("access_token"))).await.error(401);
}

// ------------------------------------------------------------------------ get

#[tokio::test]
async fn get_answers_the_documented_body_with_extensions() {
    let app = app().await;
    let session = app.user("alice").await;
    let reply = app.send(req("GET", "/user/get").bearer(&session.access)).await;
    assert_eq!(reply.status, 200);
    let created = reply.body["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).unwrap().offset().local_minus_utc() == 0
            && created.ends_with('Z')
    );
    assert_eq!(
        reply.body,
        json!({"response": {"message": "success", "status": 200}, "username": "alice", "id": session.id,
               "email": "alice@example.com", "role": "user", "created_at": created, "email_verified": false,
               "locale": "en"})
    );
}

// --------------------------------------------------------------------- update

#[tokio::test]
async fn update_changes_any_subset_and_answers_the_documented_body() {
    let app = app().await;
    let session = app.user("alice").await;
    let reply = app.send(req("PUT", "/user/update").bearer(&session.access).json(json!({"username": "alicia"}))).await;
    assert_eq!(
        reply.body,
        json!({"response": {"message": "success", "status": 200}, "username": "alicia", "email": "alice@example.com", "id": session.id})
    );
    let reply =
        app.send(req("PUT", "/user/update").bearer(&session.access).json(json!({"email": "New@Example.com"}))).await;
    assert_eq!(reply.body["email"], "new@example.com");
}

#[tokio::test]
async fn update_errors_are_400_401_409() {
    let app = app().await;
    let session = app.user("alice").await;
    app.register("bob").await;
    let update = |body| req("PUT", "/user/update").bearer(&session.access).json(body);
    app.send(update(json!({}))).await.error(400);
    assert!(app.send(update(json!({"password": "short"}))).await.error(400).starts_with("password:"));
    assert!(app.send(update(json!({"email": "nope"}))).await.error(400).starts_with("email:"));
    assert!(app.send(update(json!({"username": "BOB"}))).await.error(409).contains("username"));
    assert!(app.send(update(json!({"email": "bob@example.com"}))).await.error(409).contains("email"));
    app.send(req("PUT", "/user/update").json(json!({"username": "x"}))).await.error(401);
    let wrong = app.send(update(json!({"username": "alicia", "current_password": "wrong horse"}))).await;
    assert!(wrong.error(401).contains("current_password"));
}

#[tokio::test]
async fn a_password_change_revokes_every_other_session() {
    let app = app().await;
    let mine = app.user("alice").await;
    let other = app.login("alice").await;
    let reply =
        app.send(req("PUT", "/user/update").bearer(&mine.access).json(json!({"password": "a new password"}))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&mine.access)).await.status, 200);
    app.send(req("GET", "/user/get").bearer(&other.access)).await.error(401);
}

#[tokio::test]
async fn current_password_can_be_required_for_password_and_email_changes() {
    let app = app_with(ServiceConfig { require_current_password: true, ..config() }).await;
    let session = app.user("alice").await;
    let update = |body| req("PUT", "/user/update").bearer(&session.access).json(body);
    assert!(app.send(update(json!({"password": "a new password"}))).await.error(400).starts_with("current_password"));
    let ok = app.send(update(json!({"password": "a new password", "current_password": "correct horse"}))).await;
    assert_eq!(ok.status, 200);
}

// --------------------------------------------------------------------- delete

#[tokio::test]
async fn delete_removes_the_account_clears_cookies_and_enqueues_user_deleted() {
    let app = app().await;
    let session = app.user("alice").await;
    app.send(req("POST", "/user/track/favorite?track_id=1").bearer(&session.access)).await;
    let reply = app.send(req("DELETE", "/user/delete").bearer(&session.access)).await;
    assert_eq!((reply.status, reply.body.clone()), (200, json!({"message": "success", "status": 200})));
    assert!(reply.cookie("access_token").contains("Max-Age=0") && reply.cookie("refresh_token").contains("Max-Age=0"));
    app.send(req("GET", "/user/get").bearer(&session.access)).await.error(401);
    app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": "correct horse"})))
        .await
        .error(404);
    assert_eq!(app.tasks().await.last().unwrap().kind, TaskKind::UserDeleted);
    app.send(req("DELETE", "/user/delete")).await.error(401);
}
