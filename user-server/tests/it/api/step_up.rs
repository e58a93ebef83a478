//! Contract v1.2: `amr` on sessions and tokens, the `USER_MFA_REQUIRED`
//! policy's restricted sessions, and the step-up `POST /user/reauth`.

use serde_json::Value;
use user_core::clock::Clock;
use user_core::service::{MfaPolicy, MfaRequired};

use super::factors::{alice_with_totp, app_code, password_step};
use super::*;
use crate::common::{PASSWORD, Reply, Session, TestApp};

fn with_policy(required: MfaRequired) -> ServiceConfig {
    ServiceConfig { mfa: MfaPolicy { required, ..MfaPolicy::default() }, ..config() }
}

/// `name`, promoted to admin, signed in by password alone.
async fn admin_by_password(app: &TestApp, name: &str) -> Session {
    let reply = app.register(name).await;
    let id: user_core::domain::UserId = reply.body["id"].as_str().unwrap().parse().unwrap();
    let promote = user_core::store::AccountChanges { role: Some(user_core::domain::Role::Admin), ..Default::default() };
    app.state.service.change_account(id, promote, &Default::default()).await.unwrap();
    app.login(name).await
}

fn restricted(reply: &Reply) {
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["code"], "mfa_enrollment_required", "{}", reply.body);
    assert!(reply.body["message"].as_str().unwrap().contains("second factor"));
}

fn amr_of_sessions(reply: &Reply) -> Vec<Value> {
    reply.body["sessions"].as_array().unwrap().iter().map(|s| s["amr"].clone()).collect()
}

#[tokio::test]
async fn tokens_and_sessions_say_how_they_signed_in() {
    let app = app().await;
    let (alice, secret, codes) = alice_with_totp(&app).await;
    assert_eq!(claims(&alice.access)["amr"], json!(["pwd"]));
    // The session that confirmed TOTP proved it: the store says so at once.
    let listed = app.send(req("GET", "/user/sessions").bearer(&alice.access)).await;
    assert_eq!(amr_of_sessions(&listed), [json!(["pwd", "otp", "mfa"])]);

    let token = password_step(&app).await;
    let code = app_code(&app, &secret);
    let done = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": code}))).await;
    let access = done.body["token"].as_str().unwrap();
    assert_eq!(claims(access)["amr"], json!(["pwd", "otp", "mfa"]));
    let token = password_step(&app).await;
    let rescue = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": codes[0]}))).await;
    assert_eq!(claims(rescue.body["token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]), "a recovery code");

    // A refresh keeps the session's methods.
    let refreshed =
        app.send(req("POST", "/user/refresh").cookie("refresh_token", &rescue.cookie_value("refresh_token"))).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(claims(refreshed.body["token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    // And a session that only ever proved a password says so.
    let bob = app.user("bob").await;
    let listed = app.send(req("GET", "/user/sessions").bearer(&bob.access)).await;
    assert_eq!(amr_of_sessions(&listed), [json!(["pwd"])]);
}

#[tokio::test]
async fn an_admin_without_a_factor_can_only_enroll_one_until_the_session_does() {
    let app = app().await; // the default policy: admins
    let root = admin_by_password(&app, "root").await;
    let other_tab = app.login("root").await;
    for (method, path) in [
        ("GET", "/user/all"),
        ("GET", "/admin/users"),
        ("GET", "/user/sessions"),
        ("POST", "/user/sessions/revoke-others"),
        ("POST", "/user/recovery-codes"),
        ("GET", "/user/track/favorite"),
        ("POST", "/user/track/favorite?track_id=1"),
        ("DELETE", "/user/delete"),
    ] {
        restricted(&app.send(req(method, path).bearer(&root.access)).await);
    }
    let update = app.send(req("PUT", "/user/update").bearer(&root.access).json(json!({"locale": "ru"}))).await;
    restricted(&update);
    // What a restricted session may do.
    assert_eq!(app.send(req("GET", "/user/get").bearer(&root.access)).await.status, 200);
    assert_eq!(app.send(req("GET", "/user/security").bearer(&root.access)).await.status, 200);
    let refreshed = app.send(req("POST", "/user/refresh").cookie("refresh_token", &root.refresh)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let root = Session { access: refreshed.body["token"].as_str().unwrap().to_owned(), ..root };
    restricted(&app.send(req("GET", "/user/all").bearer(&root.access)).await);
    let step_up = app.send(req("POST", "/user/reauth").bearer(&root.access).json(json!({"password": PASSWORD}))).await;
    assert_eq!(step_up.status, 200, "{}", step_up.body);
    restricted(&app.send(req("GET", "/user/all").bearer(&root.access)).await);

    // Turning TOTP on lifts it for this session, with the same token.
    let secret = app.enroll_totp(&root).await;
    assert_eq!(app.send(req("GET", "/user/all").bearer(&root.access)).await.status, 200);
    // Another session that proved only the password stays restricted until
    // it steps up with the new factor.
    restricted(&app.send(req("GET", "/user/all").bearer(&other_tab.access)).await);
    app.clock.advance(Duration::from_secs(30));
    let code = app_code(&app, &secret);
    let step_up = app.send(req("POST", "/user/reauth").bearer(&other_tab.access).json(json!({"code": code}))).await;
    assert_eq!(step_up.status, 200, "{}", step_up.body);
    assert_eq!(app.send(req("GET", "/user/all").bearer(&other_tab.access)).await.status, 200);
    // A new sign-in asks for the factor, and is a full session.
    app.clock.advance(Duration::from_secs(30));
    let login = app.send(req("POST", "/user/login").json(json!({"username": "root", "password": PASSWORD}))).await;
    let token = login.body["mfa_token"].as_str().unwrap();
    let body = json!({"mfa_token": token, "code": app_code(&app, &secret)});
    let done = app.send(req("POST", "/user/login/mfa").json(body)).await;
    let access = done.body["token"].as_str().unwrap();
    assert_eq!(app.send(req("GET", "/user/all").bearer(access)).await.status, 200);
    // A restricted session signs out like any other.
    let third = admin_by_password(&app, "third").await;
    assert_eq!(app.send(req("POST", "/user/logout").bearer(&third.access)).await.status, 200);
    app.send(req("GET", "/user/get").bearer(&third.access)).await.error(401);
}

#[tokio::test]
async fn the_policy_covers_whom_it_names() {
    let all = app_with(with_policy(MfaRequired::All)).await;
    let alice = all.user("alice").await;
    restricted(&all.send(req("GET", "/user/track/favorite").bearer(&alice.access)).await);
    all.enroll_totp(&alice).await;
    assert_eq!(all.send(req("GET", "/user/track/favorite").bearer(&alice.access)).await.status, 200);

    let none = app_with(with_policy(MfaRequired::None)).await;
    let root = admin_by_password(&none, "root").await;
    assert_eq!(none.send(req("GET", "/user/all").bearer(&root.access)).await.status, 200);

    let admins = app().await;
    let alice = admins.user("alice").await;
    assert_eq!(admins.send(req("GET", "/user/track/favorite").bearer(&alice.access)).await.status, 200, "not an admin");
}

#[tokio::test]
async fn a_restricted_session_approves_no_device() {
    let device = user_core::service::DevicePolicy { clients: vec!["tv-app".into()], ..Default::default() };
    let app = app_with(ServiceConfig { device, ..config() }).await;
    let root = admin_by_password(&app, "root").await;
    let form = "client_id=tv-app&device_name=TV";
    let started = app.send(req("POST", "/oauth/device/code").raw(crate::common::FORM, form)).await;
    let code = started.body["user_code"].as_str().unwrap();
    let body = json!({"user_code": code, "approve": true});
    restricted(&app.send(req("POST", "/user/device/approve").bearer(&root.access).json(body)).await);
}

#[tokio::test]
async fn a_step_up_makes_the_session_recent_with_the_password_or_the_factor() {
    let app = app().await;
    let bob = app.user("bob").await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let change = json!({"email": "bob2@example.com"});
    let stale = app.send(req("PUT", "/user/update").bearer(&bob.access).json(change.clone())).await;
    assert_eq!((stale.status, stale.body["code"].clone()), (401, json!("reauth_required")));
    let challenge = stale.header("www-authenticate").unwrap();
    assert!(challenge.contains("insufficient_user_authentication") && challenge.contains("max_age=600"), "{challenge}");

    for (body, status) in [
        (json!({}), 400),
        (json!({"password": PASSWORD, "code": "123456"}), 400),
        (json!({"password": ""}), 400),
        (json!({"password": 12}), 400),
    ] {
        let reply = app.send(req("POST", "/user/reauth").bearer(&bob.access).json(body.clone())).await;
        reply.error(status);
    }
    let wrong = app.send(req("POST", "/user/reauth").bearer(&bob.access).json(json!({"password": "wrong one"}))).await;
    wrong.error(401);
    let no_factor = app.send(req("POST", "/user/reauth").bearer(&bob.access).json(json!({"code": "123456"}))).await;
    assert_eq!((no_factor.status, no_factor.body["code"].clone()), (401, json!("invalid_code")));
    let anonymous = app.send(req("POST", "/user/reauth").json(json!({"password": PASSWORD}))).await;
    anonymous.error(401);

    let step_up = app.send(req("POST", "/user/reauth").bearer(&bob.access).json(json!({"password": PASSWORD}))).await;
    assert_eq!(step_up.status, 200, "{}", step_up.body);
    assert_eq!((step_up.body["message"].clone(), step_up.body["status"].clone()), (json!("success"), json!(200)));
    let until: chrono::DateTime<chrono::Utc> = step_up.body["reauth_until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until, app.clock.now() + chrono::TimeDelta::minutes(10));
    assert!(step_up.cookies().is_empty(), "a bearer client keeps its tokens");
    let changed = app.send(req("PUT", "/user/update").bearer(&bob.access).json(change)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let events: Vec<String> =
        app.store.list_audit(&Default::default(), None, 50).await.unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"reauth".to_owned()) && events.contains(&"reauth.failure".to_owned()), "{events:?}");
}

#[tokio::test]
async fn a_browser_s_step_up_rotates_its_cookies() {
    let app = app().await;
    let bob = app.user("bob").await;
    let cookies = format!("access_token={}; refresh_token={}", bob.access, bob.refresh);
    let step_up = req("POST", "/user/reauth").header("cookie", &cookies).json(json!({"password": PASSWORD}));
    let reply = app.send(step_up).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (access, refresh) = (reply.cookie_value("access_token"), reply.cookie_value("refresh_token"));
    assert!(!access.is_empty() && access != bob.access && refresh != bob.refresh);
    assert_eq!(app.send(req("GET", "/user/get").cookie("access_token", &access)).await.status, 200);
    // From another site's page, nothing happens.
    let forged = req("POST", "/user/reauth")
        .header("cookie", &format!("access_token={access}"))
        .header("origin", "https://evil.example")
        .json(json!({"password": PASSWORD}));
    app.send(forged).await.error(403);
}

#[tokio::test]
async fn wrong_step_ups_count_toward_the_lockout() {
    let app = app().await;
    let bob = app.user("bob").await;
    for _ in 0..5 {
        let wrong =
            app.send(req("POST", "/user/reauth").bearer(&bob.access).json(json!({"password": "wrong one"}))).await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    let locked = app.send(req("POST", "/user/reauth").bearer(&bob.access).json(json!({"password": PASSWORD}))).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.header("retry-after").is_some());
    let login = app.send(req("POST", "/user/login").json(json!({"username": "bob", "password": PASSWORD}))).await;
    assert_eq!(login.status, 429, "a stolen session cannot guess the password faster than a login");

    // Codes count too: the account with TOTP.
    let other = super::app().await;
    let (alice, _, _) = alice_with_totp(&other).await;
    for _ in 0..5 {
        let wrong = other.send(req("POST", "/user/reauth").bearer(&alice.access).json(json!({"code": "000000"}))).await;
        assert_eq!(wrong.body["code"], "invalid_code");
    }
    let locked = other.send(req("POST", "/user/reauth").bearer(&alice.access).json(json!({"code": "000000"}))).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_steps_up_one_session_once_even_sent_at_once() {
    let app = app().await;
    let (alice, secret, _) = alice_with_totp(&app).await;
    let code = app_code(&app, &secret);
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (app, barrier, alice, code) = (app.clone(), barrier.clone(), alice.clone(), code.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.send(req("POST", "/user/reauth").bearer(&alice.access).json(json!({"code": code}))).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    // The rest: the code is used (401), or the per-client limit of sign-in attempts (429).
    assert!(statuses.iter().all(|s| [200, 401, 429].contains(s)), "{statuses:?}");
}
