//! Contract v1.2, second factors over REST: TOTP on and off, the two-step
//! login, recovery codes, and what each refuses.

use user_core::auth::TotpSecret;
use user_core::clock::Clock;

use super::*;
use crate::common::{PASSWORD, Session, TestApp};

/// The authenticator app: the code for `secret` (base32) now.
pub(super) fn app_code(app: &TestApp, secret: &str) -> String {
    TotpSecret::from_base32(secret).unwrap().code_at(app.clock.now())
}

/// Alice with TOTP on: her session, secret and recovery codes.
pub(super) async fn alice_with_totp(app: &TestApp) -> (Session, String, Vec<String>) {
    let alice = app.user("alice").await;
    let security = app.send(req("GET", "/user/security").bearer(&alice.access)).await;
    assert_eq!(security.status, 200, "{}", security.body);
    assert_eq!(security.body["totp"], false);
    assert_eq!(security.body["has_password"], true);
    assert_eq!(security.body["passkeys"], json!([]));
    let enroll = app.send(req("POST", "/user/totp/enroll").bearer(&alice.access)).await;
    assert_eq!(enroll.status, 200, "{}", enroll.body);
    let secret = enroll.body["secret"].as_str().unwrap().to_owned();
    let uri = enroll.body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/user-service:alice@example.com?secret=") && uri.contains(&secret));
    let code = app_code(app, &secret);
    let confirm = app.send(req("POST", "/user/totp/confirm").bearer(&alice.access).json(json!({"code": code}))).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let codes: Vec<String> =
        confirm.body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'), "{codes:?}");
    app.clock.advance(Duration::from_secs(30));
    (alice, secret, codes)
}

pub(super) async fn password_step(app: &TestApp) -> String {
    let login = app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["mfa_required"], true, "{}", login.body);
    assert_eq!(login.body["response"], json!({"message": "second factor required", "status": 200}));
    assert!(login.body.get("token").is_none() && login.cookies().is_empty(), "no session before the second factor");
    login.body["mfa_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_totp_on_login_takes_two_steps_and_each_code_works_once() {
    let app = app().await;
    let (alice, secret, codes) = alice_with_totp(&app).await;
    let security = app.send(req("GET", "/user/security").bearer(&alice.access)).await;
    assert_eq!((security.body["totp"].clone(), security.body["recovery_codes_left"].clone()), (json!(true), json!(10)));

    let token = password_step(&app).await;
    let login = app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": PASSWORD}))).await;
    assert_eq!(login.body["methods"], json!(["totp", "recovery_code"]));
    let wrong = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": "000000"}))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["code"], "invalid_code");
    let code = app_code(&app, &secret);
    let done = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": code}))).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["response"]["message"], "success login");
    assert!(!done.cookie_value("access_token").is_empty() && !done.cookie_value("refresh_token").is_empty());
    let me = app.send(req("GET", "/user/get").bearer(done.body["token"].as_str().unwrap())).await;
    assert_eq!(me.status, 200);

    // The token and the code are spent.
    let again = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": code}))).await;
    assert_eq!(again.body["code"], "invalid_code");
    let token = password_step(&app).await;
    let replay = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": code}))).await;
    assert_eq!(replay.body["code"], "invalid_code", "a code works once");
    // A recovery code, typed loosely, works once.
    let typed = codes[0].to_lowercase();
    let rescue = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": typed}))).await;
    assert_eq!(rescue.status, 200, "{}", rescue.body);
    let token = password_step(&app).await;
    let twice = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": codes[0]}))).await;
    assert_eq!(twice.body["code"], "invalid_code");
}

#[tokio::test]
async fn bad_second_step_bodies_are_400_and_unknown_tokens_401() {
    let app = app().await;
    let (alice, _, _) = alice_with_totp(&app).await;
    for body in [json!({"code": "123456"}), json!({"mfa_token": "x"}), json!({"mfa_token": 5, "code": "123456"})] {
        app.send(req("POST", "/user/login/mfa").json(body)).await.error(400);
    }
    let junk = app.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": "forged", "code": "123456"}))).await;
    assert_eq!((junk.status, junk.body["code"].clone()), (401, json!("invalid_code")));
    for body in [json!({}), json!({"code": 123456})] {
        app.send(req("POST", "/user/totp/confirm").bearer(&alice.access).json(body)).await.error(400);
    }
    let null =
        app.send(req("DELETE", "/user/totp").bearer(&alice.access).json(json!({"current_password": null}))).await;
    null.error(400);
}

#[tokio::test]
async fn turning_totp_on_twice_is_409_and_off_needs_a_recent_sign_in() {
    let app = app().await;
    let (alice, secret, _) = alice_with_totp(&app).await;
    let twice = app.send(req("POST", "/user/totp/enroll").bearer(&alice.access)).await;
    assert_eq!((twice.status, twice.body["code"].clone()), (409, json!("factor_active")));
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = app.send(req("DELETE", "/user/totp").bearer(&alice.access)).await;
    assert_eq!((stale.status, stale.body["code"].clone()), (401, json!("reauth_required")));
    let codes = app.send(req("POST", "/user/recovery-codes").bearer(&alice.access)).await;
    assert_eq!(codes.body["code"], "reauth_required");
    // With TOTP on, the password alone is one factor: not enough.
    let proof = json!({"current_password": PASSWORD});
    let password_only = app.send(req("POST", "/user/recovery-codes").bearer(&alice.access).json(proof.clone())).await;
    assert_eq!((password_only.status, password_only.body["code"].clone()), (401, json!("reauth_required")));
    let step_up = app.send(req("POST", "/user/reauth").bearer(&alice.access).json(json!({"password": PASSWORD}))).await;
    assert_eq!((step_up.status, step_up.body["code"].clone()), (401, json!("mfa_required")));
    let code = app_code(&app, &secret);
    let step_up = app.send(req("POST", "/user/reauth").bearer(&alice.access).json(json!({"code": code}))).await;
    assert_eq!(step_up.status, 200, "{}", step_up.body);
    let fresh = app.send(req("POST", "/user/recovery-codes").bearer(&alice.access).json(proof.clone())).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.body["recovery_codes"].as_array().unwrap().len(), 10);
    let off = app.send(req("DELETE", "/user/totp").bearer(&alice.access).json(proof.clone())).await;
    assert_eq!(off.status, 200, "{}", off.body);
    let again = app.send(req("DELETE", "/user/totp").bearer(&alice.access).json(proof.clone())).await;
    assert_eq!((again.status, again.body["code"].clone()), (409, json!("no_second_factor")));
    let none = app.send(req("POST", "/user/recovery-codes").bearer(&alice.access).json(proof)).await;
    assert_eq!(none.body["code"], "no_second_factor");
    // The password alone signs in again.
    app.login("alice").await;
}

#[tokio::test]
async fn a_foreign_page_cannot_turn_totp_on_or_off_with_the_cookie() {
    let app = app().await;
    let alice = app.user("alice").await;
    for (method, path) in [("POST", "/user/totp/enroll"), ("DELETE", "/user/totp"), ("POST", "/user/recovery-codes")] {
        let forged = req(method, path).cookie("access_token", &alice.access).header("origin", "https://evil.example");
        app.send(forged).await.error(403);
    }
    let unauthenticated = app.send(req("GET", "/user/security")).await;
    unauthenticated.error(401);
}

#[tokio::test]
async fn an_admin_removes_a_lost_factor_of_another_account_not_their_own() {
    let app = app().await;
    let (alice, _, _) = alice_with_totp(&app).await;
    let root = app.admin("root").await;
    let alice_id = claims(&alice.access)["sub"].as_str().unwrap().to_owned();
    let root_id = claims(&root.access)["sub"].as_str().unwrap().to_owned();
    let by_alice = app.send(req("DELETE", &format!("/admin/users/{alice_id}/mfa")).bearer(&alice.access)).await;
    by_alice.error(403);
    let own = app.send(req("DELETE", &format!("/admin/users/{root_id}/mfa")).bearer(&root.access)).await;
    assert_eq!((own.status, own.body["code"].clone()), (409, json!("own_account")));
    let reset = app.send(req("DELETE", &format!("/admin/users/{alice_id}/mfa")).bearer(&root.access)).await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let ended = app.send(req("GET", "/user/get").bearer(&alice.access)).await;
    assert_eq!(ended.status, 401, "her sessions ended");
    app.login("alice").await;
    let again = app.send(req("DELETE", &format!("/admin/users/{alice_id}/mfa")).bearer(&root.access)).await;
    assert_eq!(again.body["code"], "no_second_factor");
    app.send(req("DELETE", "/admin/users/not-an-id/mfa").bearer(&root.access)).await.error(400);
}

#[tokio::test]
async fn a_foreign_page_cannot_sign_a_browser_in_by_either_step() {
    let app = app().await;
    let (_, secret, _) = alice_with_totp(&app).await;
    let body = json!({"username": "alice", "password": PASSWORD});
    let forged = req("POST", "/user/login").json(body.clone()).header("origin", "https://evil.example");
    let refused = app.send(forged).await;
    refused.error(403);
    assert!(refused.cookies().is_empty());
    let referer = req("POST", "/user/login").json(body.clone()).header("referer", "https://evil.example/page");
    app.send(referer).await.error(403);
    // The same site, or no Origin at all (a native app), signs in.
    let token = password_step(&app).await;
    let own = req("POST", "/user/login/mfa")
        .json(json!({"mfa_token": token, "code": app_code(&app, &secret)}))
        .header("origin", "http://localhost")
        .header("host", "localhost");
    assert_eq!(app.send(own).await.status, 200);
    app.clock.advance(Duration::from_secs(30));
    let token = password_step(&app).await;
    let forged = req("POST", "/user/login/mfa")
        .json(json!({"mfa_token": token, "code": app_code(&app, &secret)}))
        .header("origin", "https://evil.example");
    app.send(forged).await.error(403);
}

#[tokio::test]
async fn a_change_of_sign_in_methods_can_sign_every_other_session_out() {
    let app = app().await;
    let alice = app.user("alice").await;
    let lost_phone = app.login("alice").await;
    let enroll = app.send(req("POST", "/user/totp/enroll").bearer(&alice.access)).await;
    let secret = enroll.body["secret"].as_str().unwrap().to_owned();
    let body = json!({"code": app_code(&app, &secret), "revoke_other_sessions": true});
    let confirm = app.send(req("POST", "/user/totp/confirm").bearer(&alice.access).json(body)).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    app.send(req("GET", "/user/get").bearer(&lost_phone.access)).await.error(401);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&alice.access)).await.status, 200, "the caller's stays");

    // A sign-in with a recovery code can end the others too (the phone was lost).
    let codes = confirm.body["recovery_codes"].as_array().unwrap();
    let token = password_step(&app).await;
    let body = json!({"mfa_token": token, "code": codes[0], "revoke_other_sessions": true});
    let rescued = app.send(req("POST", "/user/login/mfa").json(body)).await;
    assert_eq!(rescued.status, 200, "{}", rescued.body);
    app.send(req("GET", "/user/get").bearer(&alice.access)).await.error(401);
    let access = rescued.body["token"].as_str().unwrap();
    assert_eq!(app.send(req("GET", "/user/get").bearer(access)).await.status, 200);

    let other = app.login_with_second_factor("alice", &secret).await;
    let body = json!({"revoke_other_sessions": true});
    let fresh = app.send(req("POST", "/user/recovery-codes").bearer(access).json(body)).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    app.send(req("GET", "/user/get").bearer(&other)).await.error(401);
    let null = json!({"revoke_other_sessions": null});
    app.send(req("POST", "/user/recovery-codes").bearer(access).json(null)).await.error(400);
}
