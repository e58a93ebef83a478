//! Sign in with GitHub (plain OAuth 2.0: no ID token; the user and e-mail
//! APIs say who) against a stand-in of GitHub's three endpoints on a
//! loopback port, as GitHub Enterprise Server serves them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use user_core::auth::oidc::{ClientAuth, ProviderConfig};
use warp::Filter;

use crate::common::{app_with, config, req};

const DONE: &str = "https://app.example/done";

/// GitHub's token, user and e-mail endpoints; what the token endpoint was sent.
async fn github(primary_verified: bool) -> (String, Arc<Mutex<Vec<HashMap<String, String>>>>) {
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let seen = exchanges.clone();
    let token = warp::post().and(warp::path!("login" / "oauth" / "access_token")).and(warp::body::form()).map(
        move |form: HashMap<String, String>| {
            let good = form.get("code").map(String::as_str) == Some("good-code");
            seen.lock().unwrap().push(form);
            if good {
                warp::reply::json(&json!({"access_token": "gho_test", "token_type": "bearer"}))
            } else {
                warp::reply::json(&json!({"error": "bad_verification_code"}))
            }
        },
    );
    let authorized = warp::header::exact("authorization", "Bearer gho_test");
    let user = warp::get()
        .and(warp::path!("api" / "v3" / "user"))
        .and(authorized)
        .map(|| warp::reply::json(&json!({"id": 4242, "login": "octo cat"})));
    let emails = warp::get().and(warp::path!("api" / "v3" / "user" / "emails")).and(authorized).map(move || {
        warp::reply::json(&json!([
            {"email": "elsewhere@example.com", "primary": false, "verified": true},
            {"email": "Octo@Example.com", "primary": true, "verified": primary_verified},
        ]))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(token.or(user).or(emails)).incoming(listener).run());
    (format!("http://{addr}"), exchanges)
}

#[tokio::test]
async fn github_signs_in_by_its_numeric_id_and_verified_primary_address() {
    let (issuer, exchanges) = github(true).await;
    let provider = ProviderConfig {
        issuer: issuer.clone(),
        client_id: "gh-client".into(),
        client_auth: ClientAuth::Secret("gh-secret".into()),
        allowed_redirects: vec![DONE.into()],
        ..ProviderConfig::preset("github")
    };
    let mut app = app_with(user_core::ServiceConfig { providers: vec![provider], ..config() }).await;
    app.state.public_url = Some("http://svc.test".into());
    let start = app.send(req("GET", "/auth/github/start?redirect_to=https%3A%2F%2Fapp.example%2Fdone")).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let to = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    assert_eq!(to.path(), "/login/oauth/authorize");
    let q: HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!((q["client_id"].as_str(), q["scope"].as_str()), ("gh-client", "read:user user:email"));
    assert_eq!(q["redirect_uri"], "http://svc.test/auth/github/callback");
    let browser = start.cookie_value("auth_state");

    let wrong = format!("/auth/github/callback?state={}&code=bad-code", q["state"]);
    let refused = app.send(req("GET", &wrong).cookie("auth_state", &browser)).await;
    assert_eq!(refused.header("location"), Some(format!("{DONE}?error=provider_error").as_str()));

    let start = app.send(req("GET", "/auth/github/start?redirect_to=https%3A%2F%2Fapp.example%2Fdone")).await;
    let to = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    let state = to.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let callback = format!("/auth/github/callback?state={state}&code=good-code");
    let back = app.send(req("GET", &callback).cookie("auth_state", &start.cookie_value("auth_state"))).await;
    assert_eq!((back.status, back.header("location")), (303, Some(DONE)), "{:?}", back.raw);
    let access = back.cookie_value("access_token");
    let me = app.send(req("GET", "/user/get").bearer(&access)).await;
    assert_eq!(me.body["username"], "octo_cat");
    assert_eq!(
        (me.body["email"].as_str(), me.body["email_verified"].as_bool()),
        (Some("octo@example.com"), Some(true))
    );
    let security = app.send(req("GET", "/user/security").bearer(&access)).await;
    assert_eq!(security.body["identities"][0]["subject"], "4242", "GitHub's numeric id");
    let sent = exchanges.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (sent["client_secret"].as_str(), sent["redirect_uri"].as_str()),
        ("gh-secret", "http://svc.test/auth/github/callback")
    );
    assert!(sent["code_verifier"].len() >= 43, "PKCE verifier sent");
}

#[tokio::test]
async fn an_unverified_github_primary_address_is_not_taken() {
    let (issuer, _) = github(false).await;
    let provider = ProviderConfig {
        issuer,
        client_id: "gh-client".into(),
        client_auth: ClientAuth::Secret("gh-secret".into()),
        allowed_redirects: vec![DONE.into()],
        ..ProviderConfig::preset("github")
    };
    let mut app = app_with(user_core::ServiceConfig { providers: vec![provider], ..config() }).await;
    app.state.public_url = Some("http://svc.test".into());
    app.register("octo").await;
    let start = app.send(req("GET", "/auth/github/start?redirect_to=https%3A%2F%2Fapp.example%2Fdone")).await;
    let to = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    let state = to.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let callback = format!("/auth/github/callback?state={state}&code=good-code");
    let back = app.send(req("GET", &callback).cookie("auth_state", &start.cookie_value("auth_state"))).await;
    let me = app.send(req("GET", "/user/get").bearer(&back.cookie_value("access_token"))).await;
    assert_eq!(me.body["email"], json!(null), "an address GitHub did not verify is kept nowhere");
    assert_ne!(me.body["username"], "octo");
}
