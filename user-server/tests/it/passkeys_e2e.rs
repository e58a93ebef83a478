//! Passkeys end to end in headless Chromium with its WebDriver virtual
//! authenticator (W3C WebAuthn "Automation"): a person signs in on
//! `/account/security` with a password, adds a passkey there, and on a
//! fresh profile (the passkey synced to it) signs in with the passkey alone.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

use crate::common::browser::{browser, browser_available, free_port, start_chromedriver};

/// A WebAuthn automation command of the session (`/session/{id}/webauthn/…`).
#[derive(Debug)]
struct Webauthn {
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for Webauthn {
    fn endpoint(&self, base: &reqwest::Url, session: Option<&str>) -> Result<reqwest::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (warp::http::Method, Option<String>) {
        match &self.body {
            Some(body) => (warp::http::Method::POST, Some(body.to_string())),
            None => (warp::http::Method::GET, None),
        }
    }
}

/// Adds a platform authenticator with resident keys and user verification
/// (a phone's or laptop's); its id.
async fn virtual_authenticator(page: &fantoccini::Client) -> String {
    let options = json!({
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true, "automaticPresenceSimulation": true,
    });
    let added = page.issue_cmd(Webauthn { path: "authenticator".into(), body: Some(options) }).await.unwrap();
    added.as_str().expect("an authenticator id").to_owned()
}

async fn wait_for(page: &fantoccini::Client, css: &str) -> fantoccini::elements::Element {
    page.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_passkey_is_added_on_the_security_page_and_signs_in_on_a_fresh_profile() {
    if !browser_available() {
        return;
    }
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let mut config = user_server::Config::for_tests("memory:");
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.service.webauthn_rp_id = Some("localhost".into());
    config.service.webauthn_origins = vec![origin.clone()];
    let server = user_server::start(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let api = user_client::Client::new(&origin).unwrap();
    api.register("alice", "alice@example.com", "correct horse").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let driver = start_chromedriver().await;
    let page = browser(&driver, &dir.path().join("laptop")).await;
    let laptop = virtual_authenticator(&page).await;
    page.goto(&format!("{origin}/account/security")).await.unwrap();
    wait_for(&page, "#password-form").await;
    page.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("alice").await.unwrap();
    page.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("correct horse").await.unwrap();
    page.find(Locator::Css("#password-form button")).await.unwrap().click().await.unwrap();
    wait_for(&page, "#add-passkey").await;
    let name = page.find(Locator::Css("#add-passkey input[name=name]")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Laptop").await.unwrap();
    page.find(Locator::Css("#add-passkey button")).await.unwrap().click().await.unwrap();
    let listed = wait_for(&page, "#passkeys li .name").await.text().await.unwrap();
    assert_eq!(listed, "Laptop");

    // The passkey, synced to another device: a fresh profile with an
    // authenticator that holds the same credential.
    let path = format!("authenticator/{laptop}/credentials");
    let credentials = page.issue_cmd(Webauthn { path, body: None }).await.unwrap();
    let credential = credentials.as_array().unwrap().first().expect("the laptop holds the passkey").clone();
    assert_eq!(credential["rpId"], "localhost");
    assert_eq!(credential["isResidentCredential"], true);
    page.close().await.unwrap();

    let fresh = browser(&driver, &dir.path().join("phone")).await;
    let phone = virtual_authenticator(&fresh).await;
    let copy = Webauthn { path: format!("authenticator/{phone}/credential"), body: Some(credential) };
    fresh.issue_cmd(copy).await.unwrap();
    fresh.goto(&format!("{origin}/account/security")).await.unwrap();
    wait_for(&fresh, "#passkey-sign-in").await.click().await.unwrap();
    let who = wait_for(&fresh, "#username").await.text().await.unwrap();
    assert_eq!(who, "alice", "signed in with the passkey alone");
    let listed = wait_for(&fresh, "#passkeys li .name").await.text().await.unwrap();
    assert_eq!(listed, "Laptop");

    // An authenticator app too: the QR code is drawn in the page, and the
    // recovery codes shown once.
    wait_for(&fresh, "#totp form button").await.click().await.unwrap();
    wait_for(&fresh, ".qr svg").await;
    let secret = wait_for(&fresh, "#totp-secret").await.text().await.unwrap();
    let code = user_core::auth::TotpSecret::from_base32(&secret).unwrap().code_at(chrono::Utc::now());
    fresh.find(Locator::Css("#totp-confirm input[name=code]")).await.unwrap().send_keys(&code).await.unwrap();
    fresh.find(Locator::Css("#totp-confirm button")).await.unwrap().click().await.unwrap();
    wait_for(&fresh, "#recovery-codes:not([hidden]) li").await;
    let codes = fresh.find_all(Locator::Css("#recovery-codes li")).await.unwrap();
    assert_eq!(codes.len(), 10);
    fresh.close().await.unwrap();

    // The server saw a passkey sign-in, and the password still works.
    api.login("alice", "correct horse")
        .await
        .map(|_| ())
        .or_else(|e| match e {
            user_client::Error::MfaRequired(_) => Ok(()),
            other => Err(other),
        })
        .unwrap();
    let _ = stop.send(());
}
