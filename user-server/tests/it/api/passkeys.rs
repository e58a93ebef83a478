//! Contract v1.2, passkeys over REST, with a software authenticator written
//! from the WebAuthn specification (ES256 and EdDSA, attestation none).

use serde_json::Value;
use user_core::service::{MfaPolicy, PasskeyConfig};
use user_core::testing::{Algorithm, Authenticator};

use super::*;
use crate::common::{PASSWORD, Reply, Session, TestApp};

const ORIGIN: &str = "https://music.example";

fn passkey_config() -> ServiceConfig {
    let passkeys =
        PasskeyConfig { rp_id: "music.example".into(), rp_name: "Music".into(), origins: vec![ORIGIN.into()] };
    ServiceConfig { mfa: MfaPolicy { passkeys: Some(passkeys), ..MfaPolicy::default() }, ..config() }
}

async fn passkey_app() -> TestApp {
    app_with(passkey_config()).await
}

/// Adds a passkey made by `authenticator` to the account of `session`.
async fn add_passkey(app: &TestApp, session: &Session, authenticator: &mut Authenticator) -> Value {
    let start = app.send(req("POST", "/user/passkeys/register/start").bearer(&session.access)).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let credential = authenticator.create(&start.body["options"]);
    let body = json!({"ceremony": start.body["ceremony"], "name": "Phone", "credential": credential});
    let finish = app.send(req("POST", "/user/passkeys/register/finish").bearer(&session.access).json(body)).await;
    assert_eq!(finish.status, 201, "{}", finish.body);
    finish.body
}

/// A discoverable sign-in's options and ceremony.
async fn login_start(app: &TestApp) -> (Value, Value) {
    let start = app.send(req("POST", "/user/passkeys/login/start")).await;
    assert_eq!(start.status, 200, "{}", start.body);
    (start.body["options"].clone(), start.body["ceremony"].clone())
}

async fn login_finish(app: &TestApp, ceremony: &Value, credential: &Value) -> Reply {
    let body = json!({"ceremony": ceremony, "credential": credential});
    app.send(req("POST", "/user/passkeys/login/finish").json(body)).await
}

async fn audit_events(app: &TestApp) -> Vec<String> {
    app.store.list_audit(&Default::default(), None, 100).await.unwrap().into_iter().map(|e| e.event).collect()
}

#[tokio::test]
async fn a_passkey_is_added_listed_renamed_and_signs_in_alone() {
    for algorithm in [Algorithm::Es256, Algorithm::EdDsa] {
        let app = passkey_app().await;
        let alice = app.user("alice").await;
        let mut phone = Authenticator::new(ORIGIN, algorithm);
        let start = app.send(req("POST", "/user/passkeys/register/start").bearer(&alice.access)).await;
        let options = &start.body["options"];
        assert_eq!(options["rp"]["id"], "music.example");
        assert_eq!(options["user"]["name"], "alice@example.com");
        assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
        let credential = phone.create(options);
        let body = json!({"ceremony": start.body["ceremony"], "name": "Phone", "credential": credential});
        let added = app.send(req("POST", "/user/passkeys/register/finish").bearer(&alice.access).json(body)).await;
        assert_eq!(added.status, 201, "{}", added.body);
        assert_eq!(added.body["response"], json!({"message": "success", "status": 201}));
        let id = added.body["id"].as_str().unwrap().to_owned();

        let (options, ceremony) = login_start(&app).await;
        assert_eq!(
            (options["allowCredentials"].clone(), options["userVerification"].clone()),
            (json!([]), json!("required"))
        );
        let signed_in = login_finish(&app, &ceremony, &phone.get(&options)).await;
        assert_eq!(signed_in.status, 200, "{}", signed_in.body);
        assert_eq!(signed_in.body["response"]["message"], "success login");
        assert!(!signed_in.cookie_value("refresh_token").is_empty());
        let access = signed_in.body["token"].as_str().unwrap();
        assert_eq!(claims(access)["amr"], json!(["pop", "user", "mfa"]), "{algorithm:?}");
        assert_eq!(claims(access)["sub"], claims(&alice.access)["sub"]);

        let rename = req("PATCH", &format!("/user/passkeys/{id}")).bearer(access).json(json!({"name": "Work phone"}));
        assert_eq!(app.send(rename).await.status, 200);
        let security = app.send(req("GET", "/user/security").bearer(access)).await;
        let listed = &security.body["passkeys"][0];
        assert_eq!((listed["id"].as_str(), listed["name"].as_str()), (Some(id.as_str()), Some("Work phone")));
        assert!(listed["last_used_at"].is_string());
        let events = audit_events(&app).await;
        assert!(events.contains(&"passkey.add".into()) && events.contains(&"passkey.login".into()), "{events:?}");
    }
}

#[tokio::test]
async fn with_a_passkey_a_right_password_asks_for_it_second() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let mut key = Authenticator::new(ORIGIN, Algorithm::Es256);
    add_passkey(&app, &alice, &mut key).await;
    let login = app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!((login.body["mfa_required"].clone(), login.body["methods"].clone()), (json!(true), json!(["passkey"])));
    let mfa_token = login.body["mfa_token"].clone();
    let start = app.send(req("POST", "/user/passkeys/login/start").json(json!({"mfa_token": mfa_token}))).await;
    assert_eq!(start.body["options"]["userVerification"], "discouraged", "beside a password");
    // A security key without a PIN is enough as the second step.
    key.user_verified = false;
    let answer = key.get(&start.body["options"]);
    let body = json!({"mfa_token": mfa_token, "ceremony": start.body["ceremony"], "credential": answer});
    let done = app.send(req("POST", "/user/login/mfa").json(body.clone())).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(claims(done.body["token"].as_str().unwrap())["amr"], json!(["pwd", "pop", "mfa"]));
    let again = app.send(req("POST", "/user/login/mfa").json(body)).await;
    assert_eq!(again.status, 401, "the ceremony and the sign-in are spent");
    // Without UV the passkey does not sign in alone.
    let (options, ceremony) = login_start(&app).await;
    login_finish(&app, &ceremony, &key.get(&options)).await.error(401);
    let bad = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": "x"}))).await;
    bad.error(400);
}

#[tokio::test]
async fn every_failed_check_is_401_invalid_credentials_and_audited() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let mut key = Authenticator::new(ORIGIN, Algorithm::EdDsa);
    add_passkey(&app, &alice, &mut key).await;
    let refused = |reply: Reply| {
        assert_eq!(reply.error(401), "invalid credentials");
    };

    let mut phishing = key.clone();
    phishing.origin = "https://music.example.evil".into();
    let (options, ceremony) = login_start(&app).await;
    refused(login_finish(&app, &ceremony, &phishing.get(&options)).await);
    let mut other_rp = key.clone();
    other_rp.rp_id_override = Some("evil.example".into());
    let (options, ceremony) = login_start(&app).await;
    refused(login_finish(&app, &ceremony, &other_rp.get(&options)).await);
    let mut unverified = key.clone();
    unverified.user_verified = false;
    let (options, ceremony) = login_start(&app).await;
    refused(login_finish(&app, &ceremony, &unverified.get(&options)).await);

    // A replayed ceremony: the first use spends it, right or wrong.
    let (options, ceremony) = login_start(&app).await;
    let answer = key.get(&options);
    assert_eq!(login_finish(&app, &ceremony, &answer).await.status, 200);
    refused(login_finish(&app, &ceremony, &answer).await);
    // A replayed answer on a new ceremony: another challenge.
    let (_, fresh) = login_start(&app).await;
    refused(login_finish(&app, &fresh, &answer).await);
    // A cloned authenticator: its counter goes back.
    let mut clone = key.clone();
    let (options, ceremony) = login_start(&app).await;
    assert_eq!(login_finish(&app, &ceremony, &key.get(&options)).await.status, 200);
    let (options, ceremony) = login_start(&app).await;
    refused(login_finish(&app, &ceremony, &clone.get(&options)).await);
    // Junk, an unknown ceremony, an unknown credential.
    let (_, ceremony) = login_start(&app).await;
    refused(login_finish(&app, &ceremony, &json!({"id": "x"})).await);
    refused(login_finish(&app, &json!("not-a-ceremony"), &answer).await);
    let mut stranger = Authenticator::new(ORIGIN, Algorithm::Es256);
    let bob = app.user("bob").await;
    add_passkey(&app, &bob, &mut stranger).await;
    let (options, ceremony) = login_start(&app).await;
    let mut forged = stranger.get(&options);
    forged["response"]["userHandle"] = key.get(&options)["response"]["userHandle"].clone();
    refused(login_finish(&app, &ceremony, &forged).await);

    let events = audit_events(&app).await;
    assert!(events.contains(&"passkey.counter_regression".into()), "{events:?}");
    assert!(events.iter().filter(|e| *e == "passkey.login.failure").count() >= 5, "{events:?}");
    for body in [json!({}), json!({"ceremony": "x"}), json!({"ceremony": 1, "credential": {}})] {
        app.send(req("POST", "/user/passkeys/login/finish").json(body)).await.error(400);
    }
}

#[tokio::test]
async fn bob_s_passkey_does_not_complete_alice_s_sign_in() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_key = Authenticator::new(ORIGIN, Algorithm::Es256);
    let mut bob_key = Authenticator::new(ORIGIN, Algorithm::Es256);
    add_passkey(&app, &alice, &mut alice_key).await;
    add_passkey(&app, &bob, &mut bob_key).await;
    let login = app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": PASSWORD}))).await;
    let mfa_token = login.body["mfa_token"].clone();
    let start = app.send(req("POST", "/user/passkeys/login/start").json(json!({"mfa_token": mfa_token}))).await;
    let body = json!({"ceremony": start.body["ceremony"], "credential": bob_key.get(&start.body["options"])});
    app.send(req("POST", "/user/login/mfa").json(body)).await.error(401);
    let wrong_token = json!({"mfa_token": "bogus", "ceremony": "x", "credential": {}});
    assert_eq!(app.send(req("POST", "/user/login/mfa").json(wrong_token)).await.status, 401);
}

#[tokio::test]
async fn failed_passkeys_never_lock_the_account_and_the_lockout_never_holds_a_passkey_back() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let mut key = Authenticator::new(ORIGIN, Algorithm::EdDsa);
    add_passkey(&app, &alice, &mut key).await;
    let mut phishing = key.clone();
    phishing.origin = "https://evil.example".into();
    for _ in 0..6 {
        let (options, ceremony) = login_start(&app).await;
        login_finish(&app, &ceremony, &phishing.get(&options)).await.error(401);
    }
    let login = app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!(login.status, 200, "failed passkeys do not count: {}", login.body);
    for _ in 0..6 {
        let wrong = json!({"username": "alice", "password": "not it at all"});
        app.send(req("POST", "/user/login").json(wrong)).await;
    }
    let locked = app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!(locked.status, 429, "the password is locked out");
    let (options, ceremony) = login_start(&app).await;
    assert_eq!(login_finish(&app, &ceremony, &key.get(&options)).await.status, 200, "the passkey is not");
}

#[tokio::test]
async fn adding_a_passkey_needs_a_recent_sign_in_and_the_session_that_started_it() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let other_tab = app.login("alice").await;
    let mut key = Authenticator::new(ORIGIN, Algorithm::Es256);
    let start = app.send(req("POST", "/user/passkeys/register/start").bearer(&alice.access)).await;
    let credential = key.create(&start.body["options"]);
    let body = json!({"ceremony": start.body["ceremony"], "credential": credential});
    let elsewhere =
        app.send(req("POST", "/user/passkeys/register/finish").bearer(&other_tab.access).json(body.clone())).await;
    assert!(elsewhere.error(400).starts_with("ceremony"), "another session's ceremony");
    let spent = app.send(req("POST", "/user/passkeys/register/finish").bearer(&alice.access).json(body)).await;
    spent.error(400);

    for bad_name in ["", "a\u{202e}b", &"x".repeat(65)] {
        let start = app.send(req("POST", "/user/passkeys/register/start").bearer(&alice.access)).await;
        let body = json!({"ceremony": start.body["ceremony"], "name": bad_name, "credential": key.create(&start.body["options"])});
        let reply = app.send(req("POST", "/user/passkeys/register/finish").bearer(&alice.access).json(body)).await;
        assert!(reply.error(400).starts_with("name"), "{bad_name:?}");
    }
    let added = add_passkey(&app, &alice, &mut key).await;
    assert_eq!(added["name"], "Phone");
    // The same credential again: excluded by the options, refused if sent anyway.
    let start = app.send(req("POST", "/user/passkeys/register/start").bearer(&alice.access)).await;
    let excluded = start.body["options"]["excludeCredentials"].as_array().unwrap().len();
    assert_eq!(excluded, 1);

    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = app.send(req("POST", "/user/passkeys/register/start").bearer(&alice.access)).await;
    assert_eq!((stale.status, stale.body["code"].clone()), (401, json!("reauth_required")));
    let id = added["id"].as_str().unwrap();
    let remove = app.send(req("DELETE", &format!("/user/passkeys/{id}")).bearer(&alice.access)).await;
    assert_eq!(remove.body["code"], "reauth_required");
    // A step-up with the passkey makes the session recent again.
    let start =
        app.send(req("POST", "/user/passkeys/login/start").bearer(&alice.access).json(json!({"reauth": true}))).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let body = json!({"ceremony": start.body["ceremony"], "credential": key.get(&start.body["options"])});
    let step_up = app.send(req("POST", "/user/reauth").bearer(&alice.access).json(body)).await;
    assert_eq!(step_up.status, 200, "{}", step_up.body);
    let removed = app.send(req("DELETE", &format!("/user/passkeys/{id}")).bearer(&alice.access)).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    app.send(req("DELETE", &format!("/user/passkeys/{id}")).bearer(&alice.access)).await.error(404);
    assert!(audit_events(&app).await.contains(&"passkey.remove".into()), "the removal is audited");
    app.send(req("DELETE", "/user/passkeys/not-an-id").bearer(&alice.access)).await.error(400);
    let rename = req("PATCH", &format!("/user/passkeys/{id}")).bearer(&alice.access).json(json!({"name": "x"}));
    app.send(rename).await.error(404);
    let anonymous = app.send(req("POST", "/user/passkeys/login/start").json(json!({"reauth": true}))).await;
    anonymous.error(401);
    let both = json!({"reauth": true, "mfa_token": "x"});
    app.send(req("POST", "/user/passkeys/login/start").bearer(&alice.access).json(both)).await.error(400);
}

#[tokio::test]
async fn a_restricted_admin_lifts_the_restriction_by_adding_a_passkey() {
    let app = passkey_app().await;
    let reply = app.register("root").await;
    let id: user_core::domain::UserId = reply.body["id"].as_str().unwrap().parse().unwrap();
    let promote = user_core::store::AccountChanges { role: Some(user_core::domain::Role::Admin), ..Default::default() };
    app.state.service.change_account(id, promote, &Default::default()).await.unwrap();
    let root = app.login("root").await;
    assert_eq!(app.send(req("GET", "/user/all").bearer(&root.access)).await.status, 403);
    add_passkey(&app, &root, &mut Authenticator::new(ORIGIN, Algorithm::EdDsa)).await;
    assert_eq!(app.send(req("GET", "/user/all").bearer(&root.access)).await.status, 200);
}

#[tokio::test]
async fn an_admin_reset_removes_the_passkeys_too() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let mut key = Authenticator::new(ORIGIN, Algorithm::Es256);
    add_passkey(&app, &alice, &mut key).await;
    let root = app.admin("root").await;
    let alice_id = claims(&alice.access)["sub"].as_str().unwrap().to_owned();
    let reset = app.send(req("DELETE", &format!("/admin/users/{alice_id}/mfa")).bearer(&root.access)).await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let (options, ceremony) = login_start(&app).await;
    login_finish(&app, &ceremony, &key.get(&options)).await.error(401);
    app.login("alice").await;
}

#[tokio::test]
async fn without_an_rp_id_passkeys_are_off() {
    let app = app().await;
    let alice = app.user("alice").await;
    let start = app.send(req("POST", "/user/passkeys/register/start").bearer(&alice.access)).await;
    assert_eq!(start.error(503), "passkeys are not configured");
    app.send(req("POST", "/user/passkeys/login/start")).await.error(503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_answer_signs_in_once_even_sent_twelve_times_at_once() {
    let app = passkey_app().await;
    let alice = app.user("alice").await;
    let mut key = Authenticator::new(ORIGIN, Algorithm::EdDsa);
    add_passkey(&app, &alice, &mut key).await;
    let (options, ceremony) = login_start(&app).await;
    let answer = key.get(&options);
    let app = Arc::new(app);
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (app, barrier, ceremony, answer) = (app.clone(), barrier.clone(), ceremony.clone(), answer.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                login_finish(&app, &ceremony, &answer).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 401, 429].contains(s)), "{statuses:?}");
}

#[tokio::test]
async fn the_security_page_shows_the_sign_in_forms_then_the_account_s_methods() {
    let app = passkey_app().await;
    let signed_out = app.send(req("GET", "/account/security").header("accept-language", "ru")).await;
    assert_eq!(signed_out.status, 200);
    assert_eq!(signed_out.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(signed_out.header("content-language"), Some("ru"));
    let csp = signed_out.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let html = String::from_utf8_lossy(&signed_out.raw).into_owned();
    assert!(html.contains("id=\"password-form\"") && html.contains("Войти с ключом доступа"), "{html}");
    assert!(html.contains("/account/assets/security.js"));

    let alice = app.user("alice").await;
    add_passkey(&app, &alice, &mut Authenticator::new(ORIGIN, Algorithm::Es256)).await;
    let page = app.send(req("GET", "/account/security").cookie("access_token", &alice.access)).await;
    let html = String::from_utf8_lossy(&page.raw).into_owned();
    assert!(html.contains("Signed in as") && html.contains(">alice<") && html.contains(">Phone<"), "{html}");
    assert!(html.contains("Set up an authenticator app") && html.contains("this browser"), "{html}");

    // Turning TOTP on from the page draws the secret as a QR code, in the page.
    let totp = app.send(req("POST", "/account/security/totp").cookie("access_token", &alice.access)).await;
    assert_eq!(totp.status, 200, "{}", String::from_utf8_lossy(&totp.raw));
    let html = String::from_utf8_lossy(&totp.raw).into_owned();
    assert!(html.contains("<svg") && html.contains("id=\"totp-secret\"") && !html.contains("<?xml"), "{html}");
    let forged = req("POST", "/account/security/totp")
        .cookie("access_token", &alice.access)
        .header("origin", "https://evil.example");
    app.send(forged).await.error(403);
    app.send(req("POST", "/account/security/totp")).await.error(401);
    let script = app.send(req("GET", "/account/assets/security.js")).await;
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
}
