//! API.md v1.2 "Account protection": recent authentication for the changes
//! a stolen session could take an account over with, and the absolute
//! session lifetime.

use std::time::Duration;

use serde_json::json;

use crate::common::{PASSWORD, TestApp, app, app_with, config, req};

const ELEVEN_MINUTES: Duration = Duration::from_secs(11 * 60);

/// Asserts RFC 9470's refusal in the contract's shape, with its code.
fn assert_reauth_required(reply: &crate::common::Reply) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.body["code"], "reauth_required", "{}", reply.body);
    assert_eq!(reply.body["status"], 401);
    assert!(reply.body["message"].as_str().unwrap().contains("current_password"), "{}", reply.body);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_user_authentication", max_age=600"#)
    );
}

async fn update(app: &TestApp, access: &str, body: serde_json::Value) -> crate::common::Reply {
    app.send(req("PUT", "/user/update").bearer(access).json(body)).await
}

#[tokio::test]
async fn a_session_older_than_the_window_cannot_change_the_address_or_password_or_delete() {
    let app = app().await;
    let stolen = app.user("alice").await;
    app.clock.advance(ELEVEN_MINUTES);

    assert_reauth_required(&update(&app, &stolen.access, json!({"email": "thief@example.com"})).await);
    assert_reauth_required(&update(&app, &stolen.access, json!({"password": "thief's password"})).await);
    assert_reauth_required(&app.send(req("DELETE", "/user/delete").bearer(&stolen.access)).await);
    let me = app.send(req("GET", "/user/get").bearer(&stolen.access)).await;
    assert_eq!(me.body["email"], "alice@example.com", "nothing changed");

    // What a stolen session cannot take the account over with stays as it was.
    let renamed = update(&app, &stolen.access, json!({"username": "alicia", "locale": "ru"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);

    // The password stands for a recent sign-in; a wrong one is refused and counted.
    let wrong = update(&app, &stolen.access, json!({"email": "a2@example.com", "current_password": "guess"})).await;
    assert_eq!(wrong.error(401), "current_password is wrong");
    assert!(wrong.body.get("code").is_none(), "v1's errors keep their shape");
    let right = update(&app, &stolen.access, json!({"email": "a2@example.com", "current_password": PASSWORD})).await;
    assert_eq!((right.status, right.body["email"].as_str()), (200, Some("a2@example.com")));
    // That proof made the session recent: the next change within the window needs none.
    let next = update(&app, &stolen.access, json!({"password": "another passphrase"})).await;
    assert_eq!(next.status, 200, "{}", next.body);
}

#[tokio::test]
async fn a_fresh_sign_in_may_change_them_and_refreshing_does_not_make_a_session_recent() {
    let app = app().await;
    let session = app.user("alice").await;
    app.clock.advance(Duration::from_secs(9 * 60));
    let changed = update(&app, &session.access, json!({"email": "new@example.com"})).await;
    assert_eq!(changed.status, 200, "within the window: {}", changed.body);

    app.clock.advance(Duration::from_secs(2 * 60));
    let refreshed = app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await;
    let token = refreshed.body["token"].as_str().unwrap();
    assert_reauth_required(&update(&app, token, json!({"password": "another passphrase"})).await);

    let fresh = app.login("alice").await;
    let deleted = app.send(req("DELETE", "/user/delete").bearer(&fresh.access)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
}

#[tokio::test]
async fn deleting_takes_an_optional_current_password_and_refuses_a_bad_body() {
    let app = app().await;
    let session = app.user("alice").await;
    app.clock.advance(ELEVEN_MINUTES);
    let delete = || req("DELETE", "/user/delete").bearer(&session.access);

    assert_eq!(
        app.send(delete().json(json!({"current_password": "guess"}))).await.error(401),
        "current_password is wrong"
    );
    assert!(app.send(delete().raw("application/json", "{")).await.error(400).contains("malformed JSON"));
    assert!(app.send(delete().json(json!({"current_password": 1}))).await.error(400).contains("current_password"));
    app.send(delete().json(json!({"current_password": ""}))).await.error(400);
    app.send(delete().raw("text/plain", "current_password=x")).await.error(415);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&session.access)).await.status, 200, "still there");

    let deleted = app.send(delete().json(json!({"current_password": PASSWORD}))).await;
    assert_eq!(deleted.body, json!({"message": "success", "status": 200}));
    assert_eq!(app.send(req("GET", "/user/get").bearer(&session.access)).await.status, 401);
}

#[tokio::test]
async fn with_the_window_off_v1_behaviour_returns() {
    let app = app_with(user_core::ServiceConfig { reauth_window: None, ..config() }).await;
    let session = app.user("alice").await;
    app.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(update(&app, &session.access, json!({"email": "new@example.com"})).await.status, 200);
    assert_eq!(app.send(req("DELETE", "/user/delete").bearer(&session.access)).await.status, 200);
}

#[tokio::test]
async fn a_session_ends_at_its_maximum_lifetime_however_often_it_is_refreshed() {
    let app = app().await;
    let session = app.user("alice").await;
    let mut refresh = session.refresh.clone();
    let mut ends = None;
    // Refreshed every 29 days: never idle past the refresh lifetime (30 days).
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(29 * 86_400));
        let reply = app.send(req("POST", "/user/refresh").cookie("refresh_token", &refresh)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let this_end = reply.body["session_expires_at"].as_str().unwrap().to_owned();
        assert_eq!(ends.get_or_insert_with(|| this_end.clone()), &this_end, "the end does not move");
        refresh = reply.cookie_value("refresh_token");
    }
    // Day 87: the refresh cookie lives only until day 90.
    let listed = app.send(req("POST", "/user/refresh").cookie("refresh_token", &refresh)).await;
    let max_age = listed.cookie("refresh_token");
    assert!(max_age.ends_with(&format!("Max-Age={}", 3 * 86_400)), "{max_age}");
    refresh = listed.cookie_value("refresh_token");
    let token = listed.body["token"].as_str().unwrap().to_owned();
    let sessions = app.send(req("GET", "/user/sessions").bearer(&token)).await;
    assert_eq!(sessions.body["sessions"][0]["session_expires_at"].as_str(), ends.as_deref());

    app.clock.advance(Duration::from_secs(3 * 86_400));
    app.send(req("POST", "/user/refresh").cookie("refresh_token", &refresh)).await.error(401);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&token)).await.status, 401, "day 90: over");
}

/// The `device_…` cookie a login set, as (name, value).
fn device_cookie(reply: &crate::common::Reply) -> (String, String) {
    let set = reply.cookies().into_iter().find(|c| c.starts_with("device_") && !clears(c));
    let set = set.expect("a device cookie");
    let (pair, attributes) = set.split_once(';').unwrap();
    assert!(attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"), "{set}");
    assert!(attributes.contains("Max-Age=31536000"), "a year: {set}");
    let (name, value) = pair.split_once('=').unwrap();
    (name.to_owned(), value.to_owned())
}

/// Whether a `Set-Cookie` clears its cookie.
fn clears(set_cookie: &str) -> bool {
    set_cookie.split("; ").any(|attribute| attribute == "Max-Age=0")
}

fn login_body(password: &str) -> serde_json::Value {
    json!({"username": "alice", "password": password})
}

#[tokio::test]
async fn guessing_elsewhere_cannot_lock_out_a_browser_that_signed_in_before() {
    let app = app().await;
    app.register("alice").await;
    let first = app.send(req("POST", "/user/login").json(login_body(PASSWORD))).await;
    let (name, value) = device_cookie(&first);
    let id = first.body["id"].as_str().unwrap();
    assert!(!name.contains(id) && name.len() == "device_".len() + 22, "names no account: {name}");

    // An attacker's wrong guesses lock the account for everyone without the cookie.
    for n in 0..6 {
        app.send(req("POST", "/user/login").json(login_body(&format!("guess {n}")))).await;
    }
    assert_eq!(app.send(req("POST", "/user/login").json(login_body(PASSWORD))).await.status, 429);
    let forged = req("POST", "/user/login").cookie(&name, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(app.send(forged.json(login_body(PASSWORD))).await.status, 429, "a made-up cookie is none");

    // The owner's browser is held only by its own count.
    let owner = || req("POST", "/user/login").cookie(&name, &value);
    let back = app.send(owner().json(login_body(PASSWORD))).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert!(back.cookies().iter().all(|c| !c.starts_with("device_")), "the cookie is kept, none new");
    for n in 0..5 {
        assert_eq!(app.send(owner().json(login_body(&format!("typo {n}")))).await.status, 401);
    }
    assert_eq!(app.send(owner().json(login_body(PASSWORD))).await.status, 429, "its own five");
}

#[tokio::test]
async fn a_password_reset_voids_the_device_cookies() {
    let mail = user_core::service::MailPolicy { enabled: true, ..Default::default() };
    let app = app_with(user_core::ServiceConfig { mail, ..config() }).await;
    app.register("alice").await;
    let (name, value) = device_cookie(&app.send(req("POST", "/user/login").json(login_body(PASSWORD))).await);
    app.send(req("POST", "/user/password/forgot").json(json!({"email": "alice@example.com"}))).await;
    let (token, _) = super::recovery::mailed_token(&app, user_core::store::TaskKind::EmailPasswordReset).await;
    let reset = app.send(req("POST", "/user/password/reset").json(json!({"token": token, "password": "fresh phrase"})));
    assert_eq!(reset.await.status, 200);
    for n in 0..6 {
        app.send(req("POST", "/user/login").json(login_body(&format!("guess {n}")))).await;
    }
    let stale = req("POST", "/user/login").cookie(&name, &value).json(login_body("fresh phrase"));
    assert_eq!(app.send(stale).await.status, 429, "the old cookie no longer exempts");
}

#[tokio::test]
async fn a_browser_keeps_at_most_five_device_cookies() {
    let app = app().await;
    let mut jar: Vec<(String, String)> = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        app.register(name).await;
        let body = json!({"username": name, "password": PASSWORD});
        let carried: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let login = req("POST", "/user/login").header("cookie", &carried.join("; "));
        let reply = app.send(login.json(body)).await;
        for cleared in reply.cookies().iter().filter(|c| c.starts_with("device_") && clears(c)) {
            let gone = cleared.split_once('=').unwrap().0;
            jar.retain(|(n, _)| n != gone);
        }
        jar.push(device_cookie(&reply));
    }
    assert_eq!(jar.len(), 5, "the sixth account made room");
}

/// An HIBP-compatible range server on loopback: reports `breached` (SHA-1
/// upper-case hex) with a count, pads with others, and records each request
/// (path and `Add-Padding`).
async fn range_server(breached: &str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>) {
    use warp::Filter as _;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (prefix, suffix) = breached.split_at(5);
    let (prefix, suffix) = (prefix.to_owned(), suffix.to_owned());
    let log = seen.clone();
    let route = warp::path!("range" / String).and(warp::header::optional::<String>("add-padding")).map(
        move |asked: String, padding: Option<String>| {
            log.lock().unwrap().push((asked.clone(), padding));
            let mut body =
                String::from("0018A45C4D1DEF81644B54AB7F969B88D65:0\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2\r\n");
            if asked == prefix {
                body.push_str(&format!("{suffix}:3861493\r\n"));
            }
            body
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/range"), seen)
}

fn sha1_hex(password: &str) -> String {
    use sha1::Digest as _;
    hex::encode_upper(sha1::Sha1::digest(password.as_bytes()))
}

#[tokio::test]
async fn common_and_breached_passwords_are_refused_where_a_password_is_set() {
    let breached = "Tr0ub4dor&3 is breached";
    let (url, seen) = range_server(&sha1_hex(breached)).await;
    let check = user_core::service::BreachCheck { url, timeout: Duration::from_secs(5) };
    let app = app_with(user_core::ServiceConfig { breach_check: Some(check), ..config() }).await;

    let register = |password: &str| json!({"username": "alice", "email": "alice@example.com", "password": password});
    let common = app.send(req("POST", "/user/register").json(register("iloveyou1"))).await;
    assert!(common.error(400).contains("password: is one of the most common passwords"), "{}", common.body);
    let listed = app.send(req("POST", "/user/register").json(register(breached))).await;
    assert!(listed.error(400).contains("password: appears in known data breaches"), "{}", listed.body);
    assert_eq!(app.send(req("POST", "/user/register").json(register(PASSWORD))).await.status, 200);

    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "the common one never left the process: {asked:?}");
    for (path, padding) in &asked {
        assert_eq!(path.len(), 5, "only 5 hex characters of the SHA-1 leave: {path}");
        assert_eq!(padding.as_deref(), Some("true"));
    }

    let session = app.login("alice").await;
    let update = json!({"password": breached, "current_password": PASSWORD});
    let refused = app.send(req("PUT", "/user/update").bearer(&session.access).json(update)).await;
    assert!(refused.error(400).contains("breaches"));
    let update = json!({"password": "Password123", "current_password": PASSWORD});
    let refused = app.send(req("PUT", "/user/update").bearer(&session.access).json(update)).await;
    assert!(refused.error(400).contains("most common"), "case does not make it uncommon");
}

#[tokio::test]
async fn a_failed_breach_lookup_lets_the_password_through_and_is_counted() {
    // A port nothing listens on: bound, then dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let check =
        user_core::service::BreachCheck { url: format!("http://{closed}/range"), timeout: Duration::from_secs(2) };
    let app = app_with(user_core::ServiceConfig { breach_check: Some(check), ..config() }).await;
    app.register("alice").await;
    let metrics = app.send(req("GET", "/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.raw);
    assert!(text.contains("password_breach_check_failures_total"), "{text}");
}

fn mail_app_config() -> user_core::ServiceConfig {
    user_core::ServiceConfig {
        mail: user_core::service::MailPolicy { enabled: true, ..Default::default() },
        ..config()
    }
}

/// The undo link's token in the newest `email.email_changed` mail, and where it goes.
async fn undo_token(app: &TestApp) -> (String, Option<String>) {
    super::recovery::mailed_token(app, user_core::store::TaskKind::EmailChanged).await
}

#[tokio::test]
async fn the_old_address_can_undo_a_takeover_and_only_its_mailbox_gets_back_in() {
    let app = app_with(mail_app_config()).await;
    let owner = app.user("alice").await;
    let thief = app.login("alice").await;
    let moved = update(&app, &thief.access, json!({"email": "thief@example.com"})).await;
    assert_eq!(moved.status, 200, "a fresh stolen session may: {}", moved.body);
    let (token, to) = undo_token(&app).await;
    assert_eq!(to.as_deref(), Some("alice@example.com"), "the undo link goes to the old address");

    // The old address is reserved for its owner meanwhile.
    let squat = json!({"username": "mallory", "email": "alice@example.com", "password": PASSWORD});
    assert_eq!(app.send(req("POST", "/user/register").json(squat)).await.error(409), "email is already taken");

    let page = app.send(req("GET", &format!("/account/revert?token={token}"))).await;
    let html = String::from_utf8_lossy(&page.raw).into_owned();
    assert!(
        html.contains(r#"data-endpoint="/user/email/revert""#) && html.contains("Undo the address change"),
        "{html}"
    );

    let foreign = req("POST", "/user/email/revert").header("origin", "https://evil.example");
    assert_eq!(app.send(foreign.json(json!({"token": token}))).await.status, 403, "the same-site rule");
    let undone = app.send(req("POST", "/user/email/revert").json(json!({"token": token}))).await;
    assert_eq!(undone.body, json!({"message": "success", "status": 200}));
    assert!(undone.cookie("access_token").contains("Max-Age=0"), "this browser is signed out");
    for session in [&owner, &thief] {
        assert_eq!(app.send(req("GET", "/user/get").bearer(&session.access)).await.status, 401, "every session ended");
    }
    let old_password = json!({"username": "alice", "password": PASSWORD});
    assert_eq!(app.send(req("POST", "/user/login").json(old_password)).await.status, 401, "the password is unusable");
    let again = app.send(req("POST", "/user/email/revert").json(json!({"token": token}))).await;
    assert_eq!(again.error(400), "invalid or expired token", "single use");

    // The reset link went to the restored address: only that mailbox gets back in.
    let (reset, reset_to) = super::recovery::mailed_token(&app, user_core::store::TaskKind::EmailPasswordReset).await;
    assert_eq!(reset_to, None, "to the account's address at delivery: the restored one");
    let body = json!({"token": reset, "password": "owner's fresh phrase"});
    assert_eq!(app.send(req("POST", "/user/password/reset").json(body)).await.status, 200);
    let back = app.login_with("alice", "owner's fresh phrase").await;
    let me = app.send(req("GET", "/user/get").bearer(&back.access)).await;
    assert_eq!(
        (me.body["email"].as_str(), me.body["email_verified"].as_bool()),
        (Some("alice@example.com"), Some(true))
    );
}

#[tokio::test]
async fn redeeming_one_undo_link_voids_the_later_ones_and_links_expire_after_seven_days() {
    let app = app_with(mail_app_config()).await;
    let session = app.user("alice").await;
    update(&app, &session.access, json!({"email": "second@example.com"})).await;
    let (first, _) = undo_token(&app).await;
    update(&app, &session.access, json!({"email": "third@example.com"})).await;
    let (second, to) = undo_token(&app).await;
    assert_eq!(to.as_deref(), Some("second@example.com"));
    assert_ne!(first, second, "a later change does not void the earlier link");

    let undone = app.send(req("POST", "/user/email/revert").json(json!({"token": first}))).await;
    assert_eq!(undone.status, 200, "{}", undone.body);
    let later = app.send(req("POST", "/user/email/revert").json(json!({"token": second}))).await;
    assert_eq!(later.error(400), "invalid or expired token", "redeeming one voids the others");

    let (reset, _) = super::recovery::mailed_token(&app, user_core::store::TaskKind::EmailPasswordReset).await;
    let body = json!({"token": reset, "password": "owner's fresh phrase"});
    assert_eq!(app.send(req("POST", "/user/password/reset").json(body)).await.status, 200);
    let back = app.login_with("alice", "owner's fresh phrase").await;
    assert_eq!(update(&app, &back.access, json!({"email": "fourth@example.com"})).await.status, 200);
    let (late, _) = undo_token(&app).await;
    app.clock.advance(Duration::from_secs(7 * 86_400 + 1));
    let expired = app.send(req("POST", "/user/email/revert").json(json!({"token": late}))).await;
    assert_eq!(expired.error(400), "invalid or expired token");
    let free = json!({"username": "bob", "email": "alice@example.com", "password": PASSWORD});
    assert_eq!(app.send(req("POST", "/user/register").json(free)).await.status, 200, "the reservation ended with it");
}
