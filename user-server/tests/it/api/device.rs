//! API.md "Device login (RFC 8628) and the token endpoint for native apps".

use std::time::Duration;

use serde_json::{Value, json};
use user_core::service::{DevicePolicy, MailPolicy};
use user_core::store::TaskKind;

use super::recovery::mailed_token;
use crate::common::{Reply, TestApp, app_with, config, req};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn device_app() -> TestApp {
    let device = DevicePolicy { clients: vec!["tv-app".into(), "car".into()], ..DevicePolicy::default() };
    let mail = MailPolicy { enabled: true, ..MailPolicy::default() };
    app_with(user_core::ServiceConfig { device, mail, ..config() }).await
}

/// Resets alice's password through the mailed link, as the owner would.
async fn reset_password(app: &TestApp, password: &str) {
    let forgot = app.send(req("POST", "/user/password/forgot").json(json!({"email": "alice@example.com"}))).await;
    assert_eq!(forgot.status, 202, "{}", forgot.body);
    let (token, _) = mailed_token(app, TaskKind::EmailPasswordReset).await;
    let reset = app.send(req("POST", "/user/password/reset").json(json!({"token": token, "password": password}))).await;
    assert_eq!(reset.status, 200, "{}", reset.body);
}

/// Asserts RFC 6749's error shape with the contract's fields; the `error` code.
fn oauth_error(reply: &Reply, status: u16) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    let obj = reply.body.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "error_description", "message", "status"], "{}", reply.body);
    assert_eq!(reply.body["status"], json!(status));
    assert_eq!(reply.body["message"], reply.body["error_description"]);
    reply.body["error"].as_str().unwrap().to_owned()
}

async fn start(app: &TestApp, name: &str) -> Value {
    let form = format!("client_id=tv-app&scope=anything&device_name={}", name.replace(' ', "+"));
    let reply = app
        .send(req("POST", "/oauth/device/code").header("host", "music.example").raw(crate::common::FORM, form))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn poll(app: &TestApp, device_code: &str) -> Reply {
    let form = format!("grant_type={GRANT}&device_code={device_code}&client_id=tv-app");
    app.send(req("POST", "/oauth/token").raw(crate::common::FORM, form)).await
}

async fn approve(app: &TestApp, access: &str, code: &str, approve: bool) -> Reply {
    app.send(req("POST", "/user/device/approve").bearer(access).json(json!({"user_code": code, "approve": approve})))
        .await
}

#[tokio::test]
async fn a_device_code_answers_rfc_8628_fields_for_forms_and_json() {
    let app = device_app().await;
    let started = start(&app, "Living room TV").await;
    let code = started["user_code"].as_str().unwrap();
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");
    assert!(code.chars().filter(|c| *c != '-').all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{code}");
    assert_eq!(started["verification_uri"], "http://music.example/device");
    assert_eq!(started["verification_uri_complete"], format!("http://music.example/device?user_code={code}"));
    assert_eq!((started["expires_in"].as_u64(), started["interval"].as_u64()), (Some(600), Some(5)));
    assert_eq!(started["device_code"].as_str().unwrap().len(), 43);

    let by_json = app.send(req("POST", "/oauth/device/code").json(json!({"client_id": "car"}))).await;
    assert_eq!(by_json.status, 200, "{}", by_json.body);
    assert_ne!(by_json.body["user_code"], started["user_code"]);
}

#[tokio::test]
async fn oauth_errors_take_the_rfc_shape() {
    let app = device_app().await;
    let unknown = app.send(req("POST", "/oauth/device/code").raw(crate::common::FORM, "client_id=stranger")).await;
    assert_eq!(oauth_error(&unknown, 401), "invalid_client");
    let missing = app.send(req("POST", "/oauth/device/code").raw(crate::common::FORM, "scope=x")).await;
    assert_eq!(oauth_error(&missing, 400), "invalid_request");
    let twice =
        app.send(req("POST", "/oauth/device/code").raw(crate::common::FORM, "client_id=car&client_id=car")).await;
    assert_eq!(oauth_error(&twice, 400), "invalid_request", "a parameter given twice (RFC 6749 §3.2)");
    let text = app.send(req("POST", "/oauth/token").raw("text/plain", "grant_type=refresh_token")).await;
    assert_eq!(oauth_error(&text, 400), "invalid_request");
    let bad_name =
        app.send(req("POST", "/oauth/device/code").json(json!({"client_id": "car", "device_name": ""}))).await;
    assert_eq!(oauth_error(&bad_name, 400), "invalid_request");
    assert!(bad_name.body["message"].as_str().unwrap().contains("device_name"), "{}", bad_name.body);
    let reversed = json!({"client_id": "car", "device_name": "\u{202e}VT moor gniviL"});
    let bidi = app.send(req("POST", "/oauth/device/code").json(reversed)).await;
    assert_eq!(oauth_error(&bidi, 400), "invalid_request", "a bidi override would disguise the name");
    assert!(bidi.body["message"].as_str().unwrap().contains("device_name"), "{}", bidi.body);
    let hidden = json!({"username": "nobody", "password": "x", "device_name": "TV\u{200b}"});
    assert!(app.send(req("POST", "/user/login").json(hidden)).await.error(400).contains("device_name"));

    let grant = app.send(req("POST", "/oauth/token").raw(crate::common::FORM, "grant_type=password")).await;
    assert_eq!(oauth_error(&grant, 400), "unsupported_grant_type");
    let no_grant = app.send(req("POST", "/oauth/token").json(json!({}))).await;
    assert_eq!(oauth_error(&no_grant, 400), "invalid_request");
    let no_code = app.send(req("POST", "/oauth/token").raw(crate::common::FORM, format!("grant_type={GRANT}"))).await;
    assert_eq!(oauth_error(&no_code, 400), "invalid_request");
    let forged = poll(&app, "not-a-device-code").await;
    assert_eq!(oauth_error(&forged, 400), "invalid_grant");
    let bad_refresh =
        app.send(req("POST", "/oauth/token").json(json!({"grant_type": "refresh_token", "refresh_token": "x"}))).await;
    assert_eq!(oauth_error(&bad_refresh, 400), "invalid_grant");
}

#[tokio::test]
async fn an_approved_device_gets_one_session_that_is_listed_and_revocable() {
    let app = device_app().await;
    let phone = app.user("alice").await;
    let started = start(&app, "Living room TV").await;
    let (device_code, code) = (started["device_code"].as_str().unwrap(), started["user_code"].as_str().unwrap());

    assert_eq!(oauth_error(&poll(&app, device_code).await, 400), "authorization_pending");
    app.clock.advance(Duration::from_secs(2));
    let fast = poll(&app, device_code).await;
    assert_eq!(oauth_error(&fast, 400), "slow_down");
    app.clock.advance(Duration::from_secs(5));
    assert_eq!(oauth_error(&poll(&app, device_code).await, 400), "slow_down", "5 s is under the new 10 s");
    app.clock.advance(Duration::from_secs(15));
    assert_eq!(oauth_error(&poll(&app, device_code).await, 400), "authorization_pending");

    // Typed as a person might: lower case, no dash.
    let typed = code.replace('-', "").to_lowercase();
    let approved = approve(&app, &phone.access, &typed, true).await;
    assert_eq!(approved.body, json!({"message": "success", "status": 200}));
    app.clock.advance(Duration::from_secs(10));
    let tokens = poll(&app, device_code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 900);
    let access = tokens.body["access_token"].as_str().unwrap();
    assert!(tokens.body["refresh_token"].as_str().is_some());
    app.clock.advance(Duration::from_secs(10));
    assert_eq!(oauth_error(&poll(&app, device_code).await, 400), "invalid_grant", "exactly once");

    let me = app.send(req("GET", "/user/get").bearer(access)).await;
    assert_eq!(me.body["username"], "alice");
    let sessions = app.send(req("GET", "/user/sessions").bearer(&phone.access)).await;
    let tv = sessions.body["sessions"].as_array().unwrap().iter().find(|s| s["device_name"] == "Living room TV");
    let tv_id = tv.expect("the device's session is listed")["id"].as_str().unwrap().to_owned();
    let revoked = app.send(req("DELETE", &format!("/user/sessions/{tv_id}")).bearer(&phone.access)).await;
    assert_eq!(revoked.status, 200);
    app.send(req("GET", "/user/get").bearer(access)).await.error(401);

    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    let approval = audit.iter().find(|e| e.event == "device.approve").expect("the approval is audited");
    assert!(approval.detail.as_deref().unwrap().contains("Living room TV"));
}

#[tokio::test]
async fn a_declined_or_expired_device_gets_its_rfc_error() {
    let app = device_app().await;
    let phone = app.user("alice").await;
    let declined = start(&app, "Kitchen speaker").await;
    let expiring = start(&app, "Car").await;
    let no = approve(&app, &phone.access, declined["user_code"].as_str().unwrap(), false).await;
    assert_eq!(no.status, 200);
    assert_eq!(oauth_error(&poll(&app, declined["device_code"].as_str().unwrap()).await, 400), "access_denied");
    let again = approve(&app, &phone.access, declined["user_code"].as_str().unwrap(), true).await;
    assert_eq!(again.error(400), "invalid or expired code", "decided once");

    app.clock.advance(Duration::from_secs(600));
    assert_eq!(oauth_error(&poll(&app, expiring["device_code"].as_str().unwrap()).await, 400), "expired_token");
    let late = approve(&app, &phone.access, expiring["user_code"].as_str().unwrap(), true).await;
    assert_eq!(late.error(400), "invalid or expired code");
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "device.deny"), "the denial is audited");
}

#[tokio::test]
async fn wrong_codes_are_limited_per_account_and_void_the_code_they_aim_at() {
    let app = device_app().await;
    let alice = app.user("alice").await;
    let started = start(&app, "TV").await;
    let code = started["user_code"].as_str().unwrap().to_owned();
    let head = &code[..4];
    let other_tail = if &code[5..] == "BBBB" { "CCCC" } else { "BBBB" };
    // Five wrong codes sharing the first half void it.
    for _ in 0..5 {
        let wrong = approve(&app, &alice.access, &format!("{head}-{other_tail}"), true).await;
        assert_eq!(wrong.error(400), "invalid or expired code");
    }
    assert_eq!(approve(&app, &alice.access, &code, true).await.error(400), "invalid or expired code");
    let device = poll(&app, started["device_code"].as_str().unwrap()).await;
    assert_eq!(oauth_error(&device, 400), "expired_token", "the device starts again");
    for garbage in ["", "BCDF", "not a code at all"] {
        assert_eq!(approve(&app, &alice.access, garbage, true).await.error(400), "invalid or expired code");
    }

    // Ten wrong codes per account per window; then 429 with a wait, right code or not.
    let fresh = start(&app, "TV").await;
    for _ in 0..4 {
        approve(&app, &alice.access, "ZZZZ-ZZZZ", true).await.error(400);
    }
    let limited = approve(&app, &alice.access, fresh["user_code"].as_str().unwrap(), true).await;
    limited.error(429);
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() > 60);
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.event == "device.wrong_code").count(), 10);
    app.clock.advance(Duration::from_secs(15 * 60));
    let after_the_window = start(&app, "TV").await;
    assert_eq!(approve(&app, &alice.access, after_the_window["user_code"].as_str().unwrap(), true).await.status, 200);
}

#[tokio::test]
async fn approving_needs_a_session_and_a_same_site_cookie() {
    let app = device_app().await;
    let alice = app.user("alice").await;
    let started = start(&app, "TV").await;
    let body = json!({"user_code": started["user_code"], "approve": true});
    app.send(req("POST", "/user/device/approve").json(body.clone())).await.error(401);
    let cross = req("POST", "/user/device/approve")
        .cookie("access_token", &alice.access)
        .header("host", "api.example")
        .header("origin", "https://evil.example")
        .json(body.clone());
    app.send(cross).await.error(403);
    let missing =
        app.send(req("POST", "/user/device/approve").bearer(&alice.access).json(json!({"approve": true}))).await;
    assert!(missing.error(400).contains("user_code"));
}

#[tokio::test]
async fn the_refresh_grant_rotates_in_the_body_and_detects_reuse_like_the_cookie_path() {
    let app = device_app().await;
    let alice = app.user("alice").await;
    let refresh = |token: &str| {
        req("POST", "/oauth/token").raw(crate::common::FORM, format!("grant_type=refresh_token&refresh_token={token}"))
    };
    let first = app.send(refresh(&alice.refresh)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.cookies().is_empty(), "tokens in the body, not in cookies");
    let rotated = first.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, alice.refresh);
    // Within the grace period the replaced token is refused and the session lives on.
    assert_eq!(oauth_error(&app.send(refresh(&alice.refresh)).await, 400), "invalid_grant");
    let second = app.send(refresh(&rotated)).await;
    assert_eq!(second.status, 200);
    let newest = second.body["refresh_token"].as_str().unwrap().to_owned();
    // After it, reuse revokes the session: the newest token stops working too.
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(oauth_error(&app.send(refresh(&rotated)).await, 400), "invalid_grant");
    assert_eq!(oauth_error(&app.send(refresh(&newest)).await, 400), "invalid_grant");
    app.send(req("GET", "/user/get").bearer(second.body["access_token"].as_str().unwrap())).await.error(401);
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "refresh.reuse"));
}

#[tokio::test]
async fn the_device_page_signs_in_shows_the_device_and_speaks_both_languages() {
    let app = device_app().await;
    let alice = app.user("alice").await;
    let started = start(&app, "Living room TV").await;
    let code = started["user_code"].as_str().unwrap();
    let page = |query: String| req("GET", &format!("/device{query}"));

    let anonymous = app.send(page(format!("?user_code={code}")).header("accept-language", "ru")).await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.header("content-language"), Some("ru"));
    let csp = anonymous.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let html = String::from_utf8_lossy(&anonymous.raw).into_owned();
    assert!(html.contains(r#"<main id="sign-in">"#) && html.contains("Войти") && html.contains(code), "{html}");
    assert!(!html.contains("Living room TV"), "nothing about the device before signing in");

    let signed_in = |query: String| page(query).cookie("access_token", &alice.access);
    let ask = String::from_utf8_lossy(&app.send(signed_in(String::new())).await.raw).into_owned();
    assert!(ask.contains(r#"<main id="enter-code">"#), "{ask}");
    let lower = code.to_lowercase();
    let confirm = String::from_utf8_lossy(&app.send(signed_in(format!("?user_code={lower}"))).await.raw).into_owned();
    assert!(confirm.contains(r#"<main id="confirm">"#) && confirm.contains("Living room TV"), "{confirm}");
    assert!(confirm.contains("<strong>alice</strong>") && confirm.contains(code), "{confirm}");
    let (client, claim) = (confirm.find(r#"<p class="device">tv-app</p>"#), confirm.find("The device calls itself"));
    assert!(client.is_some() && client < claim, "the registered client first, then the device's claim: {confirm}");
    let wrong = String::from_utf8_lossy(&app.send(signed_in("?user_code=ZZZZ-ZZZZ".into())).await.raw).into_owned();
    assert!(wrong.contains(r#"id="problem""#) && wrong.contains("not valid"), "{wrong}");
    let escaped =
        String::from_utf8_lossy(&app.send(signed_in("?user_code=%3Cscript%3E".into())).await.raw).into_owned();
    assert!(!escaped.contains("<script>") && escaped.contains("&lt;script&gt;"), "{escaped}");
    app.send(page("?user_code=a&user_code=b".into())).await.error(400);
    let long = app.send(page(format!("?user_code={}", "B".repeat(33)))).await.error(400);
    assert!(long.contains("user_code"), "{long}");
    // Looking is not deciding: the device still waits.
    assert_eq!(oauth_error(&poll(&app, started["device_code"].as_str().unwrap()).await, 400), "authorization_pending");
}

#[tokio::test]
async fn without_clients_device_sign_in_is_off() {
    let app = crate::common::app().await;
    let reply = app.send(req("POST", "/oauth/device/code").raw(crate::common::FORM, "client_id=tv-app")).await;
    assert_eq!(oauth_error(&reply, 401), "invalid_client");
}

#[tokio::test]
async fn wrong_codes_are_limited_per_client_address_across_accounts() {
    let device = DevicePolicy { clients: vec!["tv-app".into()], wrong_codes_per_ip: 3, ..DevicePolicy::default() };
    let app = app_with(user_core::ServiceConfig { device, ..config() }).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    approve(&app, &alice.access, "ZZZZ-ZZZZ", true).await.error(400);
    approve(&app, &alice.access, "ZZZZ-ZZZX", true).await.error(400);
    approve(&app, &bob.access, "ZZZZ-ZZZW", true).await.error(400);
    let started = start(&app, "TV").await;
    let limited = approve(&app, &bob.access, started["user_code"].as_str().unwrap(), true).await;
    limited.error(429);
    assert!(limited.header("retry-after").is_some());
}

#[tokio::test]
async fn right_codes_use_none_of_the_wrong_code_allowance() {
    let app = device_app().await;
    let alice = app.user("alice").await;
    for _ in 0..12 {
        let started = start(&app, "TV").await;
        assert_eq!(approve(&app, &alice.access, started["user_code"].as_str().unwrap(), true).await.status, 200);
    }
    for _ in 0..10 {
        approve(&app, &alice.access, "ZZZZ-ZZZZ", true).await.error(400);
    }
    approve(&app, &alice.access, "ZZZZ-ZZZZ", true).await.error(429);
}

#[tokio::test]
async fn an_approval_from_a_stolen_session_dies_with_a_password_reset() {
    let app = device_app().await;
    let _owner = app.user("alice").await;
    let stolen = app.login("alice").await;
    let started = start(&app, "Attacker box").await;
    let (device_code, code) = (started["device_code"].as_str().unwrap(), started["user_code"].as_str().unwrap());
    assert_eq!(approve(&app, &stolen.access, code, true).await.status, 200);

    reset_password(&app, "owner's new passphrase").await;
    assert_eq!(app.send(req("GET", "/user/get").bearer(&stolen.access)).await.status, 401);
    app.clock.advance(Duration::from_secs(10));
    assert_eq!(oauth_error(&poll(&app, device_code).await, 400), "access_denied", "no session from the old approval");

    // And logging the approving session out voids what it approved.
    let phone = app.login_with("alice", "owner's new passphrase").await;
    let started = start(&app, "Another box").await;
    let (device_code, code) = (started["device_code"].as_str().unwrap(), started["user_code"].as_str().unwrap());
    assert_eq!(approve(&app, &phone.access, code, true).await.status, 200);
    assert_eq!(app.send(req("POST", "/user/logout").bearer(&phone.access)).await.status, 200);
    assert_eq!(oauth_error(&poll(&app, device_code).await, 400), "access_denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_racing_a_password_reset_never_yields_a_session() {
    let app = std::sync::Arc::new(device_app().await);
    let _owner = app.user("alice").await;
    for round in 0..6 {
        let stolen =
            app.login_with("alice", if round == 0 { crate::common::PASSWORD } else { "passphrase after reset" }).await;
        let started = start(&app, "Attacker box").await;
        let (device_code, code) = (started["device_code"].as_str().unwrap(), started["user_code"].as_str().unwrap());
        app.send(req("POST", "/user/password/forgot").json(json!({"email": "alice@example.com"}))).await;
        let (token, _) = mailed_token(&app, TaskKind::EmailPasswordReset).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let approving = {
            let (app, barrier, access, code) = (app.clone(), barrier.clone(), stolen.access.clone(), code.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                approve(&app, &access, &code, true).await.status
            })
        };
        let resetting = {
            let (app, barrier) = (app.clone(), barrier.clone());
            let body = json!({"token": token, "password": "passphrase after reset"});
            tokio::spawn(async move {
                barrier.wait().await;
                app.send(req("POST", "/user/password/reset").json(body)).await.status
            })
        };
        let (approved, reset) = (approving.await.unwrap(), resetting.await.unwrap());
        assert_eq!(reset, 200, "round {round}");
        assert!(approved == 200 || approved == 401, "round {round}: {approved}");
        app.clock.advance(Duration::from_secs(61));
        let polled = oauth_error(&poll(&app, device_code).await, 400);
        let expected = if approved == 200 { "access_denied" } else { "authorization_pending" };
        assert_eq!(polled, expected, "round {round}: whichever came first, no session for the device");
    }
}

#[tokio::test]
async fn a_device_session_takes_the_approving_session_s_amr() {
    let app = device_app().await;
    let (alice, _, _) = super::factors::alice_with_totp(&app).await;
    // alice's phone session proved the password, then TOTP (enrolled from it).
    let started = start(&app, "TV").await;
    let (device_code, code) = (started["device_code"].as_str().unwrap(), started["user_code"].as_str().unwrap());
    assert_eq!(approve(&app, &alice.access, code, true).await.status, 200);
    app.clock.advance(Duration::from_secs(10));
    let tokens = poll(&app, device_code).await;
    let access = tokens.body["access_token"].as_str().unwrap();
    assert_eq!(crate::common::claims(access)["amr"], json!(["pwd", "otp", "mfa"]));

    // A session that proved only the password lends only that.
    let bob = app.user("bob").await;
    let started = start(&app, "Car").await;
    let (device_code, code) = (started["device_code"].as_str().unwrap(), started["user_code"].as_str().unwrap());
    assert_eq!(approve(&app, &bob.access, code, true).await.status, 200);
    app.clock.advance(Duration::from_secs(10));
    let tokens = poll(&app, device_code).await;
    let access = tokens.body["access_token"].as_str().unwrap();
    assert_eq!(crate::common::claims(access)["amr"], json!(["pwd"]));
    // And the device's session is not a recent sign-in.
    let change = json!({"email": "bob2@example.com"});
    let stale = app.send(req("PUT", "/user/update").bearer(access).json(change)).await;
    assert_eq!(stale.body["code"], "reauth_required");
}
