//! Every line of `shared/API.md`, over the real warp filters.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{app, app_with, claims, config, req};
use serde_json::json;
use user_core::ServiceConfig;
use user_core::auth::SigningConfig;
use user_core::store::TaskKind;

mod accounts;
mod admin;
mod admin_ops;
mod device;
mod factors;
mod favorites;
mod guests;
mod passkeys;
mod protection;
mod recovery;
mod sessions;
mod step_up;

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
    app.db.break_schema();
    let reply = app.send(req("POST", "/user/track/favorite?track_id=1").bearer(&session.access)).await;
    let msg = reply.error(500);
    assert_eq!(msg, "internal server error");
    assert!(!String::from_utf8_lossy(&reply.raw).contains("no such table"), "the cause stays in the log");
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
    assert_eq!(keys, ["amr", "aud", "exp", "iat", "iss", "jti", "role", "sid", "sub", "typ"]);
    assert_eq!((access["typ"].as_str(), access["role"].as_str()), (Some("access"), Some("user")));
    assert_eq!(access["amr"], json!(["pwd"]), "RFC 8176: a password");
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
