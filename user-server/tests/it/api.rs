//! Every line of `shared/API.md`, over the real warp filters.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{app, app_with, claims, config, req};
use serde_json::json;
use user_core::ServiceConfig;
use user_core::auth::SigningConfig;
use user_core::store::TaskKind;

// ---------------------------------------------------------------- conventions

#[tokio::test]
async fn an_unknown_route_is_404_in_the_contract_shape() {
    let app = app().await;
    let msg = app.send(req("GET", "/nope")).await.error(404);
    assert!(!msg.is_empty());
    app.send(req("POST", "/user/login/extra")).await.error(404);
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405() {
    let app = app().await;
    for (method, path, allow) in [
        ("GET", "/user/login", "POST"),
        ("HEAD", "/user/login", "POST"),
        ("POST", "/user/get", "GET, HEAD"),
        ("GET", "/user/delete", "DELETE"),
        ("PUT", "/user/all", "GET, HEAD"),
        ("PUT", "/user/track/favorite", "GET, HEAD, POST, DELETE"),
        ("GET", "/user/track/favorite/42", "POST, DELETE"),
        ("TRACE", "/healthz", "GET, HEAD"),
    ] {
        let reply = app.send(req(method, path)).await;
        reply.error(405);
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = app().await;
    let msg = app.send(req("POST", "/user/register").raw("application/json", "{\"username\": ")).await.error(400);
    assert!(msg.contains("malformed JSON"), "{msg}");
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_400() {
    let app = app().await;
    for body in ["[]", "\"alice\"", "42", "null", ""] {
        app.send(req("POST", "/user/login").raw("application/json", body)).await.error(400);
    }
}

#[tokio::test]
async fn a_missing_field_is_400_naming_it() {
    let app = app().await;
    let msg = app
        .send(req("POST", "/user/register").json(json!({"username": "alice", "password": "correct horse"})))
        .await
        .error(400);
    assert!(msg.contains("email"), "{msg}");
}

#[tokio::test]
async fn a_mistyped_field_is_400_naming_it() {
    let app = app().await;
    let body = json!({"username": "alice", "password": 12345678, "email": "a@example.com"});
    let msg = app.send(req("POST", "/user/register").json(body)).await.error(400);
    assert!(msg.starts_with("password:"), "{msg}");
}

#[tokio::test]
async fn unknown_fields_in_a_body_are_ignored() {
    let app = app().await;
    let body = json!({"username": "alice", "password": "correct horse", "email": "a@example.com", "age": 7});
    assert_eq!(app.send(req("POST", "/user/register").json(body)).await.status, 200);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = app().await;
    let big = format!("{{\"username\": \"{}\"}}", "a".repeat(64 * 1024));
    app.send(req("POST", "/user/register").raw("application/json", big)).await.error(413);
    let exactly = format!("{{\"u\": \"{}\"}}", "a".repeat(64 * 1024 - 9));
    assert_eq!(exactly.len(), 64 * 1024);
    app.send(req("POST", "/user/register").raw("application/json", exactly)).await.error(400);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = app().await;
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        app.send(req("POST", "/user/login").raw(ct, "username=alice")).await.error(415);
    }
    app.send(req("POST", "/user/login")).await.error(415);
    let session = app.user("alice").await;
    app.send(req("PUT", "/user/update").bearer(&session.access).raw("text/plain", "{}")).await.error(415);
}

#[tokio::test]
async fn every_401_carries_www_authenticate_bearer() {
    let app = app().await;
    for (method, path) in
        [("GET", "/user/get"), ("POST", "/user/logout"), ("POST", "/user/refresh"), ("GET", "/user/all")]
    {
        let reply = app.send(req(method, path)).await;
        reply.error(401);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{path}");
    }
}

#[tokio::test]
async fn an_internal_error_is_500_and_leaks_nothing() {
    let app = app().await;
    let session = app.user("alice").await;
    app.store.set_unavailable(true);
    let reply = app.send(req("POST", "/user/track/favorite?track_id=1").bearer(&session.access)).await;
    let msg = reply.error(500);
    assert_eq!(msg, "internal server error");
    assert!(!String::from_utf8_lossy(&reply.raw).contains("memory store"), "the cause stays in the log");
}

#[tokio::test]
async fn every_response_is_json_and_hardened() {
    let app = app().await;
    for request in [req("GET", "/healthz"), req("GET", "/nope"), req("POST", "/user/register").json(json!({}))] {
        let reply = app.send(request).await;
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert!(reply.header("content-security-policy").unwrap().contains("default-src 'none'"));
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = app().await;
    let reply = app.send(req("GET", "/healthz").header("x-request-id", "trace-123")).await;
    assert_eq!(reply.header("x-request-id"), Some("trace-123"));
    let generated = app.send(req("GET", "/nope").header("x-request-id", "bad id with spaces")).await;
    let id = generated.header("x-request-id").unwrap();
    assert!(id.len() >= 16 && !id.contains(' '), "{id}");
}

// -------------------------------------------------------------- authentication

#[tokio::test]
async fn the_access_token_is_accepted_from_the_header_or_the_cookie() {
    let app = app().await;
    let session = app.user("alice").await;
    assert_eq!(app.send(req("GET", "/user/get").bearer(&session.access)).await.status, 200);
    assert_eq!(app.send(req("GET", "/user/get").cookie("access_token", &session.access)).await.status, 200);
    app.send(req("GET", "/user/get").header("authorization", &format!("Basic {}", session.access))).await.error(401);
    app.send(req("GET", "/user/get").bearer("not.a.jwt")).await.error(401);
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token_nor_the_reverse() {
    let app = app().await;
    let session = app.user("alice").await;
    app.send(req("GET", "/user/get").bearer(&session.refresh)).await.error(401);
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.access)).await.error(401);
}

#[tokio::test]
async fn tokens_carry_the_decided_claims() {
    let app = app().await;
    let session = app.user("alice").await;
    let access = claims(&session.access);
    let mut keys: Vec<_> = access.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "role", "sid", "sub", "typ"]);
    assert_eq!((access["typ"].as_str(), access["role"].as_str()), (Some("access"), Some("user")));
    assert_eq!(access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(), 900);
    let refresh = claims(&session.refresh);
    let mut keys: Vec<_> = refresh.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "sid", "sub", "typ"]);
    assert_eq!(refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(), 30 * 86_400);
}

#[tokio::test]
async fn token_cookies_are_httponly_strict_rooted_and_live_as_long_as_their_token() {
    let app = app().await;
    app.register("alice").await;
    let reply =
        app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": "correct horse"}))).await;
    let access = reply.cookie("access_token");
    assert!(access.ends_with("; HttpOnly; SameSite=Strict; Path=/; Max-Age=900"), "{access}");
    let refresh = reply.cookie("refresh_token");
    assert!(refresh.ends_with("; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000"), "{refresh}");
    assert!(!access.contains("Secure"), "insecure cookies for local http");
}

#[tokio::test]
async fn cookies_are_secure_when_the_policy_says_so() {
    let mut app = app().await;
    app.state.cookies.secure = true;
    app.register("alice").await;
    let reply =
        app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": "correct horse"}))).await;
    assert!(reply.cookie("access_token").ends_with("; Secure"));
    assert!(reply.cookie("refresh_token").ends_with("; Secure"));
}

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
    app.state.service.disable(id).await.unwrap();
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
    assert_eq!(reply.body, json!({"message": "success", "status": 200, "token": token}));
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
               "email": "alice@example.com", "role": "user", "created_at": created})
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

// ------------------------------------------------------------------ favorites

#[tokio::test]
async fn favorites_are_added_and_removed_by_query_or_path_writing_one_task_each() {
    let app = app().await;
    let s = app.user("alice").await;
    let ok = json!({"message": "success", "status": 200});
    assert_eq!(app.send(req("POST", "/user/track/favorite?track_id=42").bearer(&s.access)).await.body, ok);
    assert_eq!(app.send(req("POST", "/user/track/favorite/spotify:track:7").bearer(&s.access)).await.body, ok);
    let encoded = app.send(req("POST", "/user/track/favorite/spotify%3Atrack%3A7").bearer(&s.access)).await;
    assert_eq!(encoded.body, ok, "a percent-encoded path id is the same id");
    assert_eq!(app.send(req("DELETE", "/user/track/favorite?track_id=42").bearer(&s.access)).await.body, ok);
    assert_eq!(app.send(req("DELETE", "/user/track/favorite/spotify:track:7").bearer(&s.access)).await.body, ok);
    let kinds: Vec<_> = app.tasks().await.iter().map(|t| (t.kind, t.track_id.clone().unwrap().to_string())).collect();
    assert_eq!(
        kinds,
        [
            (TaskKind::FavoriteAdded, "42".into()),
            (TaskKind::FavoriteAdded, "spotify:track:7".into()),
            (TaskKind::FavoriteRemoved, "42".into()),
            (TaskKind::FavoriteRemoved, "spotify:track:7".into())
        ]
    );
}

#[tokio::test]
async fn favorites_are_idempotent() {
    let app = app().await;
    let s = app.user("alice").await;
    for _ in 0..2 {
        assert_eq!(app.send(req("POST", "/user/track/favorite?track_id=1").bearer(&s.access)).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(app.send(req("DELETE", "/user/track/favorite?track_id=1").bearer(&s.access)).await.status, 200);
    }
    assert_eq!(app.tasks().await.len(), 2);
}

#[tokio::test]
async fn favorite_batches_take_up_to_fifty_ids_counting_duplicates_once() {
    let app = app().await;
    let s = app.user("alice").await;
    let fifty = (0..50).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
    let path = format!("/user/track/favorite?track_id={fifty}");
    assert_eq!(app.send(req("POST", &path).bearer(&s.access)).await.status, 200);
    let reply = app.send(req("POST", "/user/track/favorite?track_id=a,b,a").bearer(&s.access)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(app.tasks().await.len(), 52);
    let fifty_one = format!("/user/track/favorite?track_id={fifty},x");
    app.send(req("POST", &fifty_one).bearer(&s.access)).await.error(400);
}

#[tokio::test]
async fn bad_track_ids_are_400_and_write_nothing() {
    let app = app().await;
    let s = app.user("alice").await;
    for path in [
        "/user/track/favorite",
        "/user/track/favorite?track_id=",
        "/user/track/favorite?track_id=a,,b",
        "/user/track/favorite?track_id=a%20b",
        "/user/track/favorite/x?track_id=y",
        "/user/track/favorite/%F0%9F%8E%B5",
    ] {
        for method in ["POST", "DELETE"] {
            let msg = app.send(req(method, path).bearer(&s.access)).await.error(400);
            assert!(msg.starts_with("track_id"), "{method} {path}: {msg}");
        }
    }
    let long = format!("/user/track/favorite?track_id={}", "x".repeat(65));
    app.send(req("POST", &long).bearer(&s.access)).await.error(400);
    assert!(app.tasks().await.is_empty());
}

#[tokio::test]
async fn favorites_need_an_access_token() {
    let app = app().await;
    app.send(req("POST", "/user/track/favorite?track_id=1")).await.error(401);
    app.send(req("DELETE", "/user/track/favorite/1")).await.error(401);
    app.send(req("GET", "/user/track/favorite")).await.error(401);
    app.send(req("GET", "/user/track/favorite/contains?track_id=1")).await.error(401);
}

#[tokio::test]
async fn favorites_are_listed_newest_first_page_by_page() {
    let app = app().await;
    let s = app.user("alice").await;
    for id in ["a", "b", "c"] {
        app.send(req("POST", &format!("/user/track/favorite?track_id={id}")).bearer(&s.access)).await;
    }
    let first = app.send(req("GET", "/user/track/favorite?limit=2").bearer(&s.access)).await;
    assert_eq!(first.body["response"], json!({"message": "success", "status": 200}));
    let ids: Vec<_> =
        first.body["tracks"].as_array().unwrap().iter().map(|t| t["track_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c", "b"]);
    assert!(first.body["tracks"][0]["added_at"].as_str().unwrap().ends_with('Z'));
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.send(req("GET", &format!("/user/track/favorite?limit=2&cursor={cursor}")).bearer(&s.access)).await;
    assert_eq!(second.body["tracks"][0]["track_id"], "a");
    assert_eq!(second.body["next_cursor"], json!(null));
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=zzz"] {
        app.send(req("GET", &format!("/user/track/favorite?{bad}")).bearer(&s.access)).await.error(400);
    }
}

#[tokio::test]
async fn contains_answers_in_request_order() {
    let app = app().await;
    let s = app.user("alice").await;
    app.send(req("POST", "/user/track/favorite?track_id=b,d").bearer(&s.access)).await;
    let reply = app.send(req("GET", "/user/track/favorite/contains?track_id=a,b,c,d").bearer(&s.access)).await;
    assert_eq!(
        reply.body,
        json!({"response": {"message": "success", "status": 200}, "contains": [false, true, false, true]})
    );
    app.send(req("GET", "/user/track/favorite/contains").bearer(&s.access)).await.error(400);
}

// ---------------------------------------------------------------------- admin

#[tokio::test]
async fn listing_users_needs_the_admin_role_in_the_token() {
    let app = app().await;
    let user = app.user("alice").await;
    app.send(req("GET", "/user/all").bearer(&user.access)).await.error(403);
    app.send(req("GET", "/user/all")).await.error(401);
}

#[tokio::test]
async fn admins_list_users_oldest_first_page_by_page() {
    let app = app().await;
    let admin = app.admin("root").await;
    for name in ["alice", "bob", "carol"] {
        app.register(name).await;
    }
    let first = app.send(req("GET", "/user/all?limit=3").bearer(&admin.access)).await;
    assert_eq!(first.status, 200);
    let names: Vec<_> =
        first.body["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["root", "alice", "bob"]);
    let mut keys: Vec<_> = first.body["users"][0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "email", "id", "role", "username"]);
    assert_eq!(first.body["users"][0]["role"], "admin");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = app.send(req("GET", &format!("/user/all?limit=3&cursor={cursor}")).bearer(&admin.access)).await;
    assert_eq!(rest.body["users"][0]["username"], "carol");
    assert_eq!(rest.body["next_cursor"], json!(null));
    let default = app.send(req("GET", "/user/all").bearer(&admin.access)).await;
    assert_eq!(default.body["users"].as_array().unwrap().len(), 4);
    for bad in ["limit=0", "limit=101", "limit=-5", "cursor=nope", "limit=1&limit=2"] {
        app.send(req("GET", &format!("/user/all?{bad}")).bearer(&admin.access)).await.error(400);
    }
}

// ----------------------------------------------------------------- operations

#[tokio::test]
async fn health_and_readiness_answer_main_responses() {
    let app = app().await;
    let health = app.send(req("GET", "/healthz")).await;
    assert_eq!((health.status, health.body["status"].clone()), (200, json!(200)));
    // HEAD answers as GET does (a real server then leaves the body out).
    assert_eq!(app.send(req("HEAD", "/healthz")).await.status, 200);
    assert_eq!(app.send(req("HEAD", "/user/get")).await.status, 401);
    assert_eq!(app.send(req("GET", "/readyz")).await.status, 200);
    app.store.set_unavailable(true);
    let down = app.send(req("GET", "/readyz")).await;
    down.error(503);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_requests_and_logins() {
    let app = app().await;
    app.user("alice").await;
    app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": "wrong horse"}))).await;
    let reply = app.send(req("GET", "/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8_lossy(&reply.raw);
    assert!(text.contains("http_requests_total{route=\"POST /user/login\",status=\"200\"}"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("login_attempts_total{outcome=\"wrong_password\"}"), "{text}");
}

#[tokio::test]
async fn metrics_report_the_task_queue_and_its_deliveries() {
    let app = app().await;
    let session = app.user("alice").await;
    app.send(req("POST", "/user/track/favorite?track_id=1,2").bearer(&session.access)).await;
    let store: Arc<dyn user_core::store::Store> = app.store.clone();
    let relay = user_core::tasks::Relay::new(store, Arc::new(user_core::tasks::LogSink), Default::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { relay.run(async { stopped.await.unwrap_or(()) }).await });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let reply = app.send(req("GET", "/metrics")).await;
        let text = String::from_utf8_lossy(&reply.raw).into_owned();
        if text.contains("task_deliveries_total{outcome=\"delivered\"} 2") && text.contains("tasks_queue_depth") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no task metrics: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    stop.send(()).unwrap();
    running.await.unwrap();
    assert!(text.contains("tasks_queue_depth{status=\"pending\"}"), "{text}");
    assert!(text.contains("tasks_queue_depth{status=\"dead\"} 0"), "{text}");
    assert!(text.contains("task_delivery_seconds"), "{text}");
}

#[tokio::test]
async fn the_committed_openapi_document_is_the_one_served() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    let served = serde_json::to_string_pretty(user_server::openapi_document()).unwrap() + "\n";
    assert!(
        committed == served,
        "docs/openapi.json is stale; regenerate it with\n  cargo run -q -p user-server -- --print-openapi > docs/openapi.json"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = app().await;
    let doc = app.send(req("GET", "/openapi.json")).await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let table = user_server::route_table();
    assert_eq!(table.len(), 19, "a new route: add it to API.md's tests too");
    for (method, path) in table {
        let operation = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} missing");
        // Every route answers with something of its own, never 404 or 405.
        let concrete = path.replace("{track_id}", "42");
        let status = app.send(req(method.as_str(), &concrete)).await.status;
        assert!(![404, 405].contains(&status) || path == "/.well-known/jwks.json", "{method} {path}: {status}");
        assert!(operation["responses"][status.to_string()].is_object(), "{method} {path}: {status} undocumented");
    }
    assert!(doc["components"]["schemas"]["MainResponse"].is_object());
}

#[tokio::test]
async fn jwks_is_published_only_for_eddsa() {
    let hs = app().await;
    hs.send(req("GET", "/.well-known/jwks.json")).await.error(404);
    let ed = app_with(ServiceConfig { signing: SigningConfig::GeneratedEd25519, ..config() }).await;
    let jwks = ed.send(req("GET", "/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
    let session = ed.user("alice").await;
    let header: serde_json::Value = {
        use base64::Engine as _;
        let h = session.access.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], jwks.body["keys"][0]["kid"]);
}

#[tokio::test]
async fn paths_match_segment_by_segment_with_one_optional_trailing_slash() {
    let app = app().await;
    for (method, path, status, allow) in [
        ("GET", "/user/get/", 401, None),
        ("GET", "/user/get?x=1", 401, None),
        ("GET", "//user/get", 404, None),
        ("GET", "/user//get", 404, None),
        ("GET", "/USER/GET", 404, None),
        ("GET", "/", 404, None),
        ("GET", "/healthz/", 200, None),
        ("GET", "/user/track/favorite/", 401, None),
        ("POST", "/user/track/favorite/", 401, None),
        ("POST", "/user/track/favorite//", 404, None),
        ("POST", "/user/track/favorite/a%2Fb", 401, None),
        ("POST", "/user/track/favorite/a/b", 404, None),
        // `contains` names the lookup route, never a track in the path.
        ("POST", "/user/track/favorite/contains", 405, Some("GET, HEAD")),
        ("GET", "/user/track/favorite/contains/", 401, None),
        ("OPTIONS", "/user/get", 405, Some("GET, HEAD")),
        ("PATCH", "/user/update", 405, Some("PUT")),
    ] {
        let reply = app.send(req(method, path)).await;
        assert_eq!((reply.status, reply.header("allow")), (status, allow), "{method} {path}");
    }
}
