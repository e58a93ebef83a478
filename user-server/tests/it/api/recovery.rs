//! API.md "Account recovery and email verification": tokens come from the
//! mail tasks in the outbox (what the relay hands to the mail transport).

use std::time::Duration;

use serde_json::json;
use user_core::service::MailPolicy;
use user_core::store::{TaskKind, TaskStatus};
use user_server::security::{Policy, Throttle};

use crate::common::{TestApp, app, app_with, config, req};

fn mail_config() -> user_core::ServiceConfig {
    user_core::ServiceConfig { mail: MailPolicy { enabled: true, ..MailPolicy::default() }, ..config() }
}

async fn mail_app() -> TestApp {
    app_with(mail_config()).await
}

/// The token of the newest pending mail of `kind`, and where it goes.
pub(crate) async fn mailed_token(app: &TestApp, kind: TaskKind) -> (String, Option<String>) {
    let task = app.tasks().await.into_iter().rev().find(|t| t.kind == kind && t.status == TaskStatus::Pending);
    let payload = task.and_then(|t| t.payload).unwrap_or_else(|| panic!("no {kind:?} mail"));
    (payload.token.expect("a link"), payload.to.map(|e| e.to_string()))
}

async fn mail_kinds(app: &TestApp) -> Vec<TaskKind> {
    app.tasks().await.into_iter().map(|t| t.kind).filter(|k| k.as_str().starts_with("email.")).collect()
}

#[tokio::test]
async fn without_mail_the_recovery_endpoints_are_503_and_nothing_is_enqueued() {
    let app = app().await;
    let session = app.user("alice").await;
    let forgot = app.send(req("POST", "/user/password/forgot").json(json!({"email": "alice@example.com"}))).await;
    assert_eq!(forgot.error(503), "mail is not configured");
    let request = app.send(req("POST", "/user/email/verify/request").bearer(&session.access)).await;
    assert_eq!(request.error(503), "mail is not configured");
    assert!(mail_kinds(&app).await.is_empty(), "registration sent nothing");
}

#[tokio::test]
async fn registration_sends_a_verification_link_that_verifies_once() {
    let app = mail_app().await;
    let session = app.user("alice").await;
    assert_eq!(mail_kinds(&app).await, [TaskKind::EmailVerify]);
    let (token, _) = mailed_token(&app, TaskKind::EmailVerify).await;
    let get = app.send(req("GET", "/user/get").bearer(&session.access)).await;
    assert_eq!(get.body["email_verified"], json!(false));

    let verify = app.send(req("POST", "/user/email/verify").json(json!({"token": token}))).await;
    assert_eq!((verify.status, verify.body.clone()), (200, json!({"message": "success", "status": 200})));
    let get = app.send(req("GET", "/user/get").bearer(&session.access)).await;
    assert_eq!(get.body["email_verified"], json!(true));
    let again = app.send(req("POST", "/user/email/verify").json(json!({"token": token}))).await;
    assert_eq!(again.error(400), "invalid or expired token");
    for bad in ["", "short", &"A".repeat(43), &format!("{token}x"), "a b c"] {
        let reply = app.send(req("POST", "/user/email/verify").json(json!({"token": bad}))).await;
        assert_eq!(reply.error(400), "invalid or expired token", "{bad:?}");
    }
    app.send(req("POST", "/user/email/verify").json(json!({}))).await.error(400);
    let requested = app.send(req("POST", "/user/email/verify/request").bearer(&session.access)).await;
    assert_eq!(requested.error(409), "email already verified");
}

#[tokio::test]
async fn a_verification_link_expires_and_another_can_be_asked_for_once_a_minute() {
    let app = mail_app().await;
    let session = app.user("alice").await;
    let (first, _) = mailed_token(&app, TaskKind::EmailVerify).await;
    let soon = app.send(req("POST", "/user/email/verify/request").bearer(&session.access)).await;
    soon.error(429);
    assert!(soon.header("retry-after").is_some());
    app.clock.advance(Duration::from_secs(61));
    let asked = app.send(req("POST", "/user/email/verify/request").bearer(&session.access)).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let (second, _) = mailed_token(&app, TaskKind::EmailVerify).await;
    assert_ne!(first, second);
    let old = app.send(req("POST", "/user/email/verify").json(json!({"token": first}))).await;
    assert_eq!(old.error(400), "invalid or expired token", "a new link voids the older one");
    app.clock.advance(Duration::from_secs(24 * 3600));
    let expired = app.send(req("POST", "/user/email/verify").json(json!({"token": second}))).await;
    assert_eq!(expired.error(400), "invalid or expired token");
    app.send(req("POST", "/user/email/verify/request")).await.error(401);
}

#[tokio::test]
async fn forgot_answers_the_same_for_any_address_and_mails_only_an_account() {
    let app = mail_app().await;
    app.register("alice").await;
    let before = app.tasks().await.len();
    let expected = json!({"message": "if an account has this address, a message is on its way", "status": 202});
    let unknown = app.send(req("POST", "/user/password/forgot").json(json!({"email": "nobody@example.com"}))).await;
    assert_eq!((unknown.status, unknown.body.clone()), (202, expected.clone()));
    // The same work as for an account: one task, for an id no account has
    // (the relay drops it), and no token.
    let tasks = app.tasks().await;
    assert_eq!(tasks.len(), before + 1);
    let stand_in = tasks.last().unwrap().user_id;
    assert!(app.state.service.get(stand_in).await.is_err(), "no account: nothing will be sent");
    let known = app.send(req("POST", "/user/password/forgot").json(json!({"email": "Alice@Example.com"}))).await;
    assert_eq!((known.status, known.body.clone()), (202, expected));
    assert_eq!(known.raw, unknown.raw, "byte for byte the same answer");
    assert_eq!(
        mail_kinds(&app).await,
        [TaskKind::EmailVerify, TaskKind::EmailPasswordReset, TaskKind::EmailPasswordReset]
    );
    let malformed = app.send(req("POST", "/user/password/forgot").json(json!({"email": "not-an-address"}))).await;
    assert!(malformed.error(400).contains("email"));
}

#[tokio::test]
async fn a_reset_sets_the_password_ends_every_session_and_is_single_use() {
    let app = mail_app().await;
    let first = app.user("alice").await;
    let second = app.login("alice").await;
    for n in 0..3 {
        let wrong = json!({"username": "alice", "password": format!("wrong guess {n}")});
        app.send(req("POST", "/user/login").json(wrong)).await.error(401);
    }
    app.send(req("POST", "/user/password/forgot").json(json!({"email": "alice@example.com"}))).await;
    let (token, _) = mailed_token(&app, TaskKind::EmailPasswordReset).await;
    let weak = app.send(req("POST", "/user/password/reset").json(json!({"token": token, "password": "short"}))).await;
    assert!(weak.error(400).contains("password"));
    let body = json!({"token": token, "password": "a brand new secret"});
    let reset = app.send(req("POST", "/user/password/reset").json(body.clone())).await;
    assert_eq!((reset.status, reset.body.clone()), (200, json!({"message": "success", "status": 200})));
    for session in [&first, &second] {
        app.send(req("POST", "/user/refresh").cookie("refresh_token", &session.refresh)).await.error(401);
        app.send(req("GET", "/user/get").bearer(&session.access)).await.error(401);
    }
    let old = json!({"username": "alice", "password": "correct horse"});
    app.send(req("POST", "/user/login").json(old)).await.error(401);
    let new = json!({"username": "alice", "password": "a brand new secret"});
    assert_eq!(app.send(req("POST", "/user/login").json(new)).await.status, 200);
    let reused = app.send(req("POST", "/user/password/reset").json(body)).await;
    assert_eq!(reused.error(400), "invalid or expired token");
    assert_eq!(mail_kinds(&app).await.last(), Some(&TaskKind::EmailPasswordChanged));
}

#[tokio::test]
async fn a_reset_link_expires_after_an_hour() {
    let app = mail_app().await;
    app.register("alice").await;
    app.send(req("POST", "/user/password/forgot").json(json!({"email": "alice@example.com"}))).await;
    let (token, _) = mailed_token(&app, TaskKind::EmailPasswordReset).await;
    app.clock.advance(Duration::from_secs(3600));
    let body = json!({"token": token, "password": "a brand new secret"});
    assert_eq!(app.send(req("POST", "/user/password/reset").json(body)).await.error(400), "invalid or expired token");
}

#[tokio::test]
async fn a_new_address_is_unverified_gets_a_link_and_the_old_one_a_notice() {
    let app = mail_app().await;
    let session = app.user("alice").await;
    let (old_link, _) = mailed_token(&app, TaskKind::EmailVerify).await;
    let change = json!({"email": "alice@new.example"});
    assert_eq!(app.send(req("PUT", "/user/update").bearer(&session.access).json(change)).await.status, 200);
    let (link, to) = mailed_token(&app, TaskKind::EmailVerify).await;
    assert_eq!(to.as_deref(), Some("alice@new.example"));
    let notice = app.tasks().await.into_iter().find(|t| t.kind == TaskKind::EmailChanged).unwrap();
    assert_eq!(notice.payload.unwrap().to.unwrap().as_str(), "alice@example.com", "the notice goes to the old address");
    let stale = app.send(req("POST", "/user/email/verify").json(json!({"token": old_link}))).await;
    stale.error(400);
    assert_eq!(app.send(req("POST", "/user/email/verify").json(json!({"token": link}))).await.status, 200);
    let password = json!({"password": "another good secret"});
    app.send(req("PUT", "/user/update").bearer(&session.access).json(password)).await;
    assert_eq!(mail_kinds(&app).await.last(), Some(&TaskKind::EmailPasswordChanged));
}

#[tokio::test]
async fn with_verified_email_required_login_waits_for_the_link() {
    let mut config = mail_config();
    config.mail.require_verified_email = true;
    let app = app_with(config).await;
    app.register("alice").await;
    let login = json!({"username": "alice", "password": "correct horse"});
    // More tries than the lockout allows: a right password never counts.
    for _ in 0..7 {
        let refused = app.send(req("POST", "/user/login").json(login.clone())).await;
        assert_eq!(refused.error(403), "email not verified");
    }
    let wrong = json!({"username": "alice", "password": "not the password"});
    app.send(req("POST", "/user/login").json(wrong)).await.error(401);
    let (token, _) = mailed_token(&app, TaskKind::EmailVerify).await;
    app.send(req("POST", "/user/email/verify").json(json!({"token": token}))).await;
    assert_eq!(app.send(req("POST", "/user/login").json(login)).await.status, 200);
}

#[tokio::test]
async fn the_locale_comes_from_the_body_else_accept_language_else_english() {
    let app = mail_app().await;
    let body =
        |name: &str| json!({"username": name, "password": "correct horse", "email": format!("{name}@example.com")});
    let mut explicit = body("anna");
    explicit["locale"] = json!("ru");
    app.send(req("POST", "/user/register").json(explicit).header("accept-language", "en")).await;
    app.send(req("POST", "/user/register").json(body("boris")).header("accept-language", "ru-RU,ru;q=0.9,en;q=0.5"))
        .await;
    app.send(req("POST", "/user/register").json(body("carol")).header("accept-language", "de-DE")).await;
    for (name, locale) in [("anna", "ru"), ("boris", "ru"), ("carol", "en")] {
        let session = app.login(name).await;
        let get = app.send(req("GET", "/user/get").bearer(&session.access)).await;
        assert_eq!(get.body["locale"], json!(locale), "{name}");
    }
    let mut wrong = body("dmitri");
    wrong["locale"] = json!("de");
    assert!(app.send(req("POST", "/user/register").json(wrong)).await.error(400).contains("locale"));
    let session = app.login("carol").await;
    let to_ru = app.send(req("PUT", "/user/update").bearer(&session.access).json(json!({"locale": "ru"}))).await;
    assert_eq!(to_ru.status, 200, "{}", to_ru.body);
    let get = app.send(req("GET", "/user/get").bearer(&session.access)).await;
    assert_eq!(get.body["locale"], json!("ru"));
    let null = app.send(req("PUT", "/user/update").bearer(&session.access).json(json!({"locale": null}))).await;
    assert!(null.error(400).contains("locale"));
}

#[tokio::test]
async fn each_address_gets_one_reset_mail_a_minute_known_or_not() {
    let mut app = mail_app().await;
    app.register("alice").await;
    let rate: user_server::security::Rate = "100/min".parse().unwrap();
    app.state.policy = std::sync::Arc::new(Policy {
        throttle: Some(Throttle::new([rate, rate, rate, rate, rate, rate])),
        ..Policy::default()
    });
    for email in ["alice@example.com", "nobody@example.com"] {
        let first = app.send(req("POST", "/user/password/forgot").json(json!({"email": email}))).await;
        assert_eq!(first.status, 202);
        let second = app.send(req("POST", "/user/password/forgot").json(json!({"email": email}))).await;
        second.error(429);
        assert!(second.header("retry-after").is_some(), "{email}");
    }
}

#[tokio::test]
async fn the_account_pages_show_a_form_in_the_readers_language_and_use_nothing_on_get() {
    let app = mail_app().await;
    app.register("alice").await;
    let (token, _) = mailed_token(&app, TaskKind::EmailVerify).await;
    for _ in 0..2 {
        let page = app.send(req("GET", &format!("/account/verify?token={token}"))).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        let html = String::from_utf8(page.raw.to_vec()).unwrap();
        assert!(html.contains(&format!(r#"name="token" value="{token}""#)), "{html}");
        assert!(html.contains(r#"data-endpoint="/user/email/verify""#) && html.contains(r#"lang="en""#));
        assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
    }
    // Showing the page twice used nothing: the token still verifies.
    assert_eq!(app.send(req("POST", "/user/email/verify").json(json!({"token": token}))).await.status, 200);

    let ru = app.send(req("GET", "/account/reset?token=abc").header("accept-language", "ru-RU,ru;q=0.9")).await;
    let html = String::from_utf8(ru.raw.to_vec()).unwrap();
    assert!(html.contains(r#"lang="ru""#) && html.contains("Новый пароль"), "{html}");
    assert_eq!(ru.header("content-language"), Some("ru"));
    assert!(
        html.contains(r#"type="password" name="password""#) && html.contains(r#"data-endpoint="/user/password/reset""#)
    );
    let hostile = app.send(req("GET", "/account/verify?token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")).await;
    let html = String::from_utf8(hostile.raw.to_vec()).unwrap();
    assert!(!html.contains("<script>alert"), "the token is escaped: {html}");
    let blank = app.send(req("GET", "/account/verify")).await;
    assert!(String::from_utf8(blank.raw.to_vec()).unwrap().contains(r#"<input name="token" required"#));
    for (path, kind) in [("/account/assets/pages.js", "text/javascript"), ("/account/assets/pages.css", "text/css")] {
        let asset = app.send(req("GET", path)).await;
        assert_eq!(asset.status, 200);
        assert!(asset.header("content-type").unwrap().starts_with(kind), "{path}");
    }
}

#[tokio::test]
async fn forgot_is_limited_per_client_address() {
    let mut app = mail_app().await;
    let (plenty, two): (user_server::security::Rate, _) = ("100/min".parse().unwrap(), "2/min".parse().unwrap());
    app.state.policy = std::sync::Arc::new(Policy {
        throttle: Some(Throttle::new([plenty, plenty, plenty, plenty, two, plenty])),
        ..Policy::default()
    });
    for n in 0..2 {
        let body = json!({"email": format!("someone{n}@example.com")});
        assert_eq!(app.send(req("POST", "/user/password/forgot").json(body)).await.status, 202);
    }
    let third = app.send(req("POST", "/user/password/forgot").json(json!({"email": "someone2@example.com"}))).await;
    third.error(429);
    assert!(third.header("retry-after").is_some());
}
