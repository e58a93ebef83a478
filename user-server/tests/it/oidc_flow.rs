//! Sign in with another provider against a real OpenID Provider: panva's
//! certified `oidc-provider` (npm) on a loopback port, driven through its
//! development login and consent pages as a browser would (cookies kept,
//! redirects followed by hand so the service's part runs in process).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use user_core::auth::oidc::{ClientAuth, ProviderConfig};
use user_core::clock::Clock as _;

use crate::common::browser::free_port;
use crate::common::{Reply, TestApp, app_with, config, req};

/// Where the service says it lives (the provider redirects the browser here).
const SERVICE: &str = "http://svc.test";
const DONE: &str = "https://app.example/done";

/// The provider's node process; killed on drop.
struct Op {
    child: Child,
    issuer: String,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The directory holding `node_modules/oidc-provider` (`.ci/run` installs
/// it there): `USER_TEST_NPM_DIR`, else `target/npm` of the workspace.
fn npm_dir() -> PathBuf {
    std::env::var_os("USER_TEST_NPM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/npm"))
}

/// Starts the provider, or says why it cannot (a skip, unless
/// `USER_TEST_REQUIRE_OIDC=1`).
async fn op() -> Option<Op> {
    op_for(&format!("{SERVICE}/auth/example/callback")).await
}

/// The provider, its client `svc` returning to `callback`.
async fn op_for(callback: &str) -> Option<Op> {
    let dir = npm_dir();
    let installed = dir.join("node_modules/oidc-provider/package.json").exists();
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed || !node {
        let why = format!(
            "no OpenID Provider: `npm install --prefix {} oidc-provider@8` (and Node) are needed",
            dir.display()
        );
        assert!(std::env::var("USER_TEST_REQUIRE_OIDC").as_deref() != Ok("1"), "USER_TEST_REQUIRE_OIDC=1: {why}");
        user_core::testing::skipped(&why);
        return None;
    }
    // Node resolves the import from the script's own directory.
    let script = dir.join("provider.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs"), &script).unwrap();
    let port = free_port();
    let mut child = Command::new("node")
        .arg(&script)
        .arg(port.to_string())
        .arg(callback)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "listening" {
                return true;
            }
        }
        false
    });
    assert!(ready.await.unwrap_or(false), "oidc-provider did not start");
    // Keep reading: a closed pipe would end the provider at its next line.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(Op { child, issuer: format!("http://127.0.0.1:{port}") })
}

/// The service, with the provider configured as `example`.
async fn service(op: &Op, trust_email: bool) -> TestApp {
    let provider = ProviderConfig {
        issuer: op.issuer.clone(),
        client_id: "svc".into(),
        client_auth: ClientAuth::Secret("svc-secret".into()),
        allowed_redirects: vec![DONE.into()],
        trust_email,
        ..ProviderConfig::preset("example")
    };
    let mut app = app_with(user_core::ServiceConfig { providers: vec![provider], ..config() }).await;
    app.state.public_url = Some(SERVICE.into());
    app
}

/// A browser: its cookies at the provider, and the service's state cookie.
struct Browser {
    http: reqwest::Client,
    state_cookie: Option<String>,
}

impl Browser {
    fn new() -> Self {
        let http =
            crate::common::http().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, state_cookie: None }
    }

    /// Starts a sign-in at the service: the provider's authorization URL.
    async fn start(&mut self, app: &TestApp, query: &str, access: Option<&str>) -> Reply {
        let mut request = req("GET", &format!("/auth/example/start?{query}"));
        if let Some(token) = access {
            request = request.bearer(token);
        }
        if let Some(cookie) = &self.state_cookie {
            request = request.cookie("auth_state", cookie);
        }
        let reply = app.send(request).await;
        if reply.status == 302 {
            self.state_cookie = Some(reply.cookie_value("auth_state"));
        }
        reply
    }

    /// Follows the provider's pages from `url` as `login` would (signing in
    /// and consenting): the service callback's path and query.
    async fn at_provider(&self, url: String, login: &str) -> String {
        self.at_provider_until(url, login, SERVICE).await
    }

    /// As [`Browser::at_provider`], stopping at a redirect to `back`.
    async fn at_provider_until(&self, mut url: String, login: &str, back: &str) -> String {
        for _ in 0..20 {
            let response = self.http.get(&url).send().await.unwrap();
            if response.status().is_redirection() {
                let next = response.headers()["location"].to_str().unwrap().to_owned();
                let next = reqwest::Url::parse(&url).unwrap().join(&next).unwrap().to_string();
                if let Some(callback) = next.strip_prefix(back) {
                    return callback.to_owned();
                }
                url = next;
                continue;
            }
            let page = response.text().await.unwrap();
            let form: Vec<(&str, &str)> = if page.contains("name=\"prompt\" value=\"login\"") {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            let submitted = self.http.post(&url).form(&form).send().await.unwrap();
            assert!(submitted.status().is_redirection(), "the provider's page took the form: {page}");
            let next = submitted.headers()["location"].to_str().unwrap().to_owned();
            url = reqwest::Url::parse(&url).unwrap().join(&next).unwrap().to_string();
        }
        panic!("the provider never came back");
    }

    /// The callback as this browser sends it (with its state cookie).
    async fn callback(&self, app: &TestApp, path: &str) -> Reply {
        let mut request = req("GET", path);
        if let Some(cookie) = &self.state_cookie {
            request = request.cookie("auth_state", cookie);
        }
        app.send(request).await
    }

    /// A whole sign-in as `login`: the callback's answer.
    async fn sign_in(&mut self, app: &TestApp, login: &str) -> Reply {
        let start = self.start(app, &format!("redirect_to={}", urlencode(DONE)), None).await;
        assert_eq!(start.status, 302, "{}", start.body);
        let callback = self.at_provider(start.header("location").unwrap().to_owned(), login).await;
        self.callback(app, &callback).await
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

/// The session a signed-in callback set: its access token.
fn access_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 303, "{}", String::from_utf8_lossy(&reply.raw));
    assert_eq!(reply.header("location"), Some(DONE), "back where the app asked");
    reply.cookie_value("access_token")
}

async fn me(app: &TestApp, access: &str) -> serde_json::Value {
    let reply = app.send(req("GET", "/user/get").bearer(access)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn a_new_person_gets_an_account_and_comes_back_to_it() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let mut browser = Browser::new();
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let to = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    assert!(to.as_str().starts_with(&op.issuer), "{to}");
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q.contains_key("nonce") && q.contains_key("state"));
    let cookie = start.cookie("auth_state");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/auth/") && cookie.contains("Max-Age=600"),
        "{cookie}"
    );

    let first = access_of(&browser.sign_in(&app, "alice").await);
    let account = me(&app, &first).await;
    assert_eq!(account["username"], "alice");
    assert_eq!(
        (account["email"].as_str(), account["email_verified"].as_bool()),
        (Some("alice@example.com"), Some(true))
    );
    assert_eq!(crate::common::claims(&first)["amr"], json!(["fed"]));
    let security = app.send(req("GET", "/user/security").bearer(&first)).await;
    assert_eq!(security.body["has_password"], false);
    assert_eq!(security.body["identities"][0]["provider"], "example");
    assert_eq!(security.body["identities"][0]["subject"], "alice");
    let page = app.send(req("GET", "/account/security").cookie("access_token", &first)).await;
    let html = String::from_utf8_lossy(&page.raw);
    assert!(html.contains("data-provider=\"example\"") && html.contains("alice@example.com"), "{html}");
    assert!(html.contains("class=\"unlink secondary\""), "the page offers to remove it");

    let again = access_of(&Browser::new().sign_in(&app, "alice").await);
    assert_eq!(me(&app, &again).await["id"], account["id"], "the same account");
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "login.oidc"));
    assert!(audit.iter().any(|e| e.event == "identity.link"));
    // The last way to sign in stays.
    let unlink = app.send(req("DELETE", "/user/identities/example").bearer(&again)).await;
    assert_eq!((unlink.status, unlink.body["code"].as_str()), (409, Some("last_sign_in_method")), "{}", unlink.body);
}

#[tokio::test]
async fn a_verified_account_links_only_after_it_signs_in() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let bob = app.register("bob").await;
    let id: user_core::domain::UserId = bob.body["id"].as_str().unwrap().parse().unwrap();
    let verify = user_core::store::AccountChanges { email_verified: Some(true), ..Default::default() };
    app.state.service.change_account(id, verify, &Default::default()).await.unwrap();

    let held = Browser::new().sign_in(&app, "bob").await;
    assert_eq!(held.status, 303);
    assert_eq!(held.header("location"), Some(format!("{DONE}?link_required=1").as_str()));
    assert!(held.cookie("access_token").is_empty(), "no session for whoever holds the provider account");
    let link_cookie = held.cookie_value("identity_link");
    assert!(held.cookie("identity_link").contains("Path=/user/identities/link"));

    // Someone else's session cannot take it.
    let mallory = app.user("mallory").await;
    let stolen = app
        .send(req("POST", "/user/identities/link").bearer(&mallory.access).cookie("identity_link", &link_cookie))
        .await;
    stolen.error(400);
    // Bob signs in (password), then links.
    let session = app.login("bob").await;
    let linked = app
        .send(req("POST", "/user/identities/link").bearer(&session.access).cookie("identity_link", &link_cookie))
        .await;
    assert_eq!(linked.status, 200, "{}", linked.body);
    assert_eq!(linked.body["identities"][0]["provider"], "example");
    let replayed = app
        .send(req("POST", "/user/identities/link").bearer(&session.access).cookie("identity_link", &link_cookie))
        .await;
    replayed.error(400);
    // From now on the provider signs in to bob's account.
    let via_provider = access_of(&Browser::new().sign_in(&app, "bob").await);
    assert_eq!(me(&app, &via_provider).await["id"], bob.body["id"]);
    // Bob has a password: the identity may go; it is audited.
    let unlinked = app.send(req("DELETE", "/user/identities/example").bearer(&session.access)).await;
    assert_eq!(unlinked.status, 200, "{}", unlinked.body);
    app.send(req("DELETE", "/user/identities/example").bearer(&session.access)).await.error(404);
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "identity.unlink"));
}

#[tokio::test]
async fn an_unverified_provider_address_links_to_nothing_and_a_verified_one_clears_a_squatter() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    // The provider does not vouch for carol's address: a new account without it.
    let carol = app.register("carol").await;
    let reply = Browser::new().sign_in(&app, "carol~unverified").await;
    let access = access_of(&reply);
    let account = me(&app, &access).await;
    assert_ne!(account["id"], carol.body["id"], "never linked on an unverified address");
    assert_eq!(account["email"], json!(null));
    app.login("carol").await;

    // Someone registered dave@example.com without proving it; the provider's
    // verified owner signs in: the squatter's password stops working.
    let squatter = app.register("dave").await;
    let squatter_session = app.login("dave").await;
    let reply = Browser::new().sign_in(&app, "dave").await;
    let access = access_of(&reply);
    let account = me(&app, &access).await;
    assert_eq!(account["id"], squatter.body["id"], "the account is the address owner's now");
    assert_eq!(account["email_verified"], true);
    let login =
        app.send(req("POST", "/user/login").json(json!({"username": "dave", "password": "correct horse"}))).await;
    assert_eq!(login.status, 401, "the squatter's password is gone: {}", login.body);
    let old = app.send(req("GET", "/user/get").bearer(&squatter_session.access)).await;
    assert_eq!(old.status, 401, "and their session");
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "account.pre_takeover_cleared"));
}

#[tokio::test]
async fn a_bad_replayed_or_foreign_state_is_a_page_without_a_redirect() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let mut browser = Browser::new();
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "erin").await;
    // Another browser (no state cookie, or someone else's) cannot use it.
    let foreign = app.send(req("GET", &callback)).await;
    assert_eq!((foreign.status, foreign.header("location")), (400, None));
    assert!(foreign.header("content-type").unwrap().starts_with("text/html"));
    let other =
        app.send(req("GET", &callback).cookie("auth_state", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(other.status, 400);
    // A made-up state.
    let made_up = browser.callback(&app, "/auth/example/callback?state=nonsense&code=x").await;
    assert_eq!((made_up.status, made_up.header("location")), (400, None));
    // The state was taken by the foreign attempt: single use, even for its browser.
    let replayed = browser.callback(&app, &callback).await;
    assert_eq!(replayed.status, 400);
    // A fresh one works once, then never again.
    let mut browser = Browser::new();
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "erin").await;
    access_of(&browser.callback(&app, &callback).await);
    assert_eq!(browser.callback(&app, &callback).await.status, 400, "replayed");
    // Another provider's callback path with this state.
    let mut browser = Browser::new();
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "erin").await;
    let elsewhere = callback.replace("/auth/example/", "/auth/google/");
    assert_eq!(browser.callback(&app, &elsewhere).await.status, 400);
}

#[tokio::test]
async fn an_open_redirect_a_wrong_nonce_and_an_expired_token_are_refused() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let mut browser = Browser::new();
    for evil in ["https://evil.example/done", "https://app.example/done/../x", "//evil.example"] {
        let reply = browser.start(&app, &format!("redirect_to={}", urlencode(evil)), None).await;
        assert_eq!((reply.status, reply.header("location")), (400, None), "{evil}");
    }
    browser.start(&app, "mode=login", None).await.error(400);
    app.send(req("GET", "/auth/nope/start?redirect_to=x")).await.error(404);
    app.send(req("GET", &format!("/auth/example/start?redirect_to={}&mode=link", urlencode(DONE)))).await.error(401);

    // The browser is sent to the provider with another nonce than the
    // state's: the ID token carries that one, and is refused.
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let mut url = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "nonce" { (k, "tampered".to_owned()) } else { (k, v) })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = browser.at_provider(url.to_string(), "frank").await;
    let refused = browser.callback(&app, &callback).await;
    assert_eq!(refused.header("location"), Some(format!("{DONE}?error=provider_error").as_str()));
    assert!(refused.cookie("access_token").is_empty());

    // The service's clock two hours ahead: the provider's fresh token is old.
    app.clock.advance(Duration::from_secs(2 * 3600));
    let late = Browser::new().sign_in(&app, "frank").await;
    assert_eq!(late.header("location"), Some(format!("{DONE}?error=provider_error").as_str()));
    // The person declining at the provider.
    let mut browser = Browser::new();
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let state = reqwest::Url::parse(start.header("location").unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let declined = browser.callback(&app, &format!("/auth/example/callback?state={state}&error=access_denied")).await;
    assert_eq!(declined.header("location"), Some(format!("{DONE}?error=access_denied").as_str()));
}

#[tokio::test]
async fn a_signed_in_account_links_the_provider_once() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let gina = app.user("gina").await;
    let mut browser = Browser::new();
    let link = format!("redirect_to={}&mode=link", urlencode(DONE));
    let start = browser.start(&app, &link, Some(&gina.access)).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "gina-at-provider").await;
    let done = browser.callback(&app, &callback).await;
    assert_eq!((done.status, done.header("location")), (303, Some(DONE)));
    let security = app.send(req("GET", "/user/security").bearer(&gina.access)).await;
    assert_eq!(security.body["identities"][0]["subject"], "gina-at-provider");
    // Linking the same identity to another account: identity_in_use.
    let hank = app.user("hank").await;
    let mut browser = Browser::new();
    let start = browser.start(&app, &link, Some(&hank.access)).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "gina-at-provider").await;
    let taken = browser.callback(&app, &callback).await;
    assert_eq!(taken.header("location"), Some(format!("{DONE}?error=identity_in_use").as_str()));
    // Too long after sign-in: reauth first.
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = Browser::new().start(&app, &link, Some(&app.login("hank").await.access)).await;
    assert_eq!(stale.status, 302, "a fresh login is recent");
    let old = app.send(req("GET", &format!("/auth/example/start?{link}")).bearer(&hank.access)).await;
    assert_eq!(old.status, 401, "{}", old.body);
}

#[tokio::test]
async fn an_account_with_a_second_factor_finishes_a_provider_sign_in_with_it() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let first = access_of(&Browser::new().sign_in(&app, "ivy").await);
    let session = crate::common::Session { id: String::new(), access: first, refresh: String::new() };
    let secret = app.enroll_totp(&session).await;

    let held = Browser::new().sign_in(&app, "ivy").await;
    assert_eq!(held.status, 303);
    assert_eq!(held.header("location"), Some(format!("{DONE}?error=mfa_required").as_str()));
    assert!(held.cookie("access_token").is_empty(), "no session before the second factor");
    let pending = held.cookie("mfa_pending");
    assert!(pending.contains("HttpOnly") && pending.contains("Path=/user/login/mfa"), "{pending}");
    let token = held.cookie_value("mfa_pending");

    app.clock.advance(Duration::from_secs(30));
    let code = user_core::auth::TotpSecret::from_base32(&secret).unwrap().code_at(app.clock.now());
    let wrong =
        app.send(req("POST", "/user/login/mfa").cookie("mfa_pending", &token).json(json!({"code": "000000"}))).await;
    assert_eq!(wrong.status, 401);
    let done = app.send(req("POST", "/user/login/mfa").cookie("mfa_pending", &token).json(json!({"code": code}))).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let access = done.body["token"].as_str().unwrap();
    assert_eq!(crate::common::claims(access)["amr"], json!(["fed", "otp", "mfa"]));
    assert!(done.cookie("mfa_pending").contains("Max-Age=0"), "the cookie goes");
    let again =
        app.send(req("POST", "/user/login/mfa").cookie("mfa_pending", &token).json(json!({"code": code}))).await;
    assert_eq!(again.status, 401, "single use");
}

/// An ID token straight from the provider, as a native app's SDK gets one:
/// code + PKCE for `client` (secret `{client}-secret`) with `nonce`.
async fn native_id_token(op: &Op, client: &str, redirect: &str, login: &str, nonce: &str) -> String {
    let verifier = user_core::auth::oidc::random_token();
    let mut url = reqwest::Url::parse(&format!("{}/auth", op.issuer)).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid email profile"),
        ("state", "app-state"),
        ("nonce", nonce),
        ("code_challenge", &user_core::auth::oidc::pkce_challenge(&verifier)),
        ("code_challenge_method", "S256"),
    ]);
    let browser = Browser::new();
    let back = browser.at_provider_until(url.to_string(), login, redirect).await;
    let code = reqwest::Url::parse(&format!("{redirect}{back}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let secret = if client == "svc" { "svc-secret".to_owned() } else { format!("{client}-secret") };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", redirect),
        ("client_id", client),
        ("client_secret", &secret),
        ("code_verifier", &verifier),
    ];
    let answer: serde_json::Value =
        browser.http.post(format!("{}/token", op.issuer)).form(&form).send().await.unwrap().json().await.unwrap();
    answer["id_token"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned()
}

#[tokio::test]
async fn a_native_app_signs_in_with_the_platform_s_id_token_and_nothing_else_passes() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let callback = format!("{SERVICE}/auth/example/callback");
    let post =
        |token: &str, nonce: &str| req("POST", "/auth/example/token").json(json!({"id_token": token, "nonce": nonce}));
    let token = native_id_token(&op, "svc", &callback, "jane", "n-app-1").await;
    let signed_in = app.send(post(&token, "n-app-1")).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.body["response"]["message"], "success login");
    let access = signed_in.body["token"].as_str().unwrap();
    assert_eq!(me(&app, access).await["username"], "jane");
    assert_eq!(crate::common::claims(access)["amr"], json!(["fed"]));

    let refused = |reply: Reply, why: &str| {
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (401, Some("invalid_id_token")),
            "{why}: {}",
            reply.body
        );
    };
    // The nonce the app gave is not the token's.
    refused(app.send(post(&token, "n-app-2")).await, "wrong nonce");
    // A token the provider made for another client.
    let foreign = native_id_token(&op, "other", "http://127.0.0.1:9/cb", "jane", "n-app-3").await;
    refused(app.send(post(&foreign, "n-app-3")).await, "foreign aud");
    // The same claims signed by a key the provider never published.
    let claims: serde_json::Value = {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid;
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let header = jsonwebtoken::Header { kid, ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA) };
    let forged =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref())).unwrap();
    refused(app.send(post(&forged, "n-app-1")).await, "unknown key");
    let mut tampered: Vec<&str> = token.split('.').collect();
    let other_payload = foreign.split('.').nth(1).unwrap();
    tampered[1] = other_payload;
    refused(app.send(post(&tampered.join("."), "n-app-3")).await, "a payload swapped under the signature");
    // An hour and a half later the provider's token has expired.
    app.clock.advance(Duration::from_secs(90 * 60));
    refused(app.send(post(&token, "n-app-1")).await, "expired");
    // Bad input is the contract's 400/404, and GitHub gives no ID tokens.
    app.send(req("POST", "/auth/example/token").json(json!({"nonce": "x"}))).await.error(400);
    let long = "x".repeat(8193);
    let msg =
        app.send(req("POST", "/auth/example/token").json(json!({"id_token": long, "nonce": "x"}))).await.error(400);
    assert!(msg.starts_with("id_token:"), "{msg}");
    let msg = app.send(req("POST", "/auth/example/token").json(json!({"id_token": "x", "nonce": ""}))).await.error(400);
    assert!(msg.starts_with("nonce:"), "{msg}");
    app.send(req("POST", "/auth/nope/token").json(json!({"id_token": "x", "nonce": "y"}))).await.error(404);
    let foreign_page = req("POST", "/auth/example/token")
        .header("origin", "https://evil.example")
        .json(json!({"id_token": token, "nonce": "n-app-1"}));
    assert_eq!(app.send(foreign_page).await.status, 403, "login CSRF");
}

#[tokio::test]
async fn a_guest_linking_a_provider_becomes_an_account_in_place() {
    let Some(op) = op().await else { return };
    let app = service(&op, true).await;
    let guest = app.send(req("POST", "/user/guest")).await;
    let access = guest.body["token"].as_str().unwrap().to_owned();
    app.send(req("POST", "/user/track/favorite?track_id=7").bearer(&access)).await;
    let mut browser = Browser::new();
    let link = format!("redirect_to={}&mode=link", urlencode(DONE));
    let start = browser.start(&app, &link, Some(&access)).await;
    assert_eq!(start.status, 302, "a guest may link: {}", start.body);
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "kim").await;
    let done = browser.callback(&app, &callback).await;
    assert_eq!((done.status, done.header("location")), (303, Some(DONE)));
    let account = me(&app, &access).await;
    assert_eq!(account["id"], guest.body["id"], "the same account");
    assert_eq!((account["role"].as_str(), account["username"].as_str()), (Some("user"), Some("kim")));
    assert_eq!((account["email"].as_str(), account.get("guest")), (Some("kim@example.com"), None));
    let favorites = app.send(req("GET", "/user/track/favorite").bearer(&access)).await;
    assert_eq!(favorites.body["tracks"][0]["track_id"], "7", "favorites kept");
    // The provider signs in to it from now on.
    let again = access_of(&Browser::new().sign_in(&app, "kim").await);
    assert_eq!(me(&app, &again).await["id"], guest.body["id"]);
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "guest.upgrade" && e.detail.as_deref() == Some("by example")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_person_signs_in_at_the_provider_and_comes_back_signed_in() {
    use crate::common::browser::{browser, browser_available, start_chromedriver};
    use fantoccini::Locator;
    if !browser_available() {
        return;
    }
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let Some(op) = op_for(&format!("{origin}/auth/example/callback")).await else { return };
    let back = format!("{origin}/account/security");
    let mut config = user_server::Config::for_tests("memory:");
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url = Some(origin.clone());
    config.providers = vec![ProviderConfig {
        issuer: op.issuer.clone(),
        client_id: "svc".into(),
        client_auth: ClientAuth::Secret("svc-secret".into()),
        allowed_redirects: vec![back.clone()],
        trust_email: true,
        ..ProviderConfig::preset("example")
    }];
    let server = user_server::start(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let dir = tempfile::tempdir().unwrap();
    let driver = start_chromedriver().await;
    let page = browser(&driver, &dir.path().join("profile")).await;
    let wait_for = |css: &'static str| {
        let page = page.clone();
        async move { page.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await.unwrap() }
    };
    page.goto(&format!("{origin}/auth/example/start?redirect_to={}", urlencode(&back))).await.unwrap();
    // The provider's own sign-in page, then its consent page.
    wait_for("input[name=login]").await.send_keys("lena").await.unwrap();
    page.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("anything").await.unwrap();
    page.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for("button.login-submit").await.click().await.unwrap();
    // Back at the service, signed in (a same-site visit carries the session cookies).
    page.wait().at_most(Duration::from_secs(20)).for_url(&reqwest::Url::parse(&back).unwrap()).await.unwrap();
    page.goto(&back).await.unwrap();
    let name = wait_for("#username").await.text().await.unwrap();
    assert_eq!(name, "lena");
    wait_for("#identities li[data-provider=example]").await;
    page.close().await.unwrap();
    let _ = stop.send(());
}

#[tokio::test]
async fn a_session_steps_up_at_its_provider_and_a_form_posted_callback_signs_in() {
    let Some(op) = op().await else { return };
    // A one-minute window, so the provider's tokens (checked against the
    // service's clock) are still fresh when the sign-in is no longer recent.
    let mut app = service(&op, true).await;
    let provider = ProviderConfig {
        issuer: op.issuer.clone(),
        client_id: "svc".into(),
        client_auth: ClientAuth::Secret("svc-secret".into()),
        allowed_redirects: vec![DONE.into()],
        trust_email: true,
        ..ProviderConfig::preset("example")
    };
    let short = user_core::ServiceConfig {
        providers: vec![provider],
        reauth_window: Some(Duration::from_secs(60)),
        ..config()
    };
    app.state.service = user_core::UserService::with_clock(app.store.clone(), short, app.clock.clone()).await.unwrap();
    let access = access_of(&Browser::new().sign_in(&app, "max").await);
    app.clock.advance(Duration::from_secs(2 * 60));
    let stale = app.send(req("POST", "/user/totp/enroll").bearer(&access)).await;
    assert_eq!((stale.status, stale.body["code"].as_str()), (401, Some("reauth_required")), "{}", stale.body);
    let reauth = format!("redirect_to={}&mode=reauth", urlencode(DONE));
    // Someone else's identity at the provider does not step this session up.
    let mut browser = Browser::new();
    let start = browser.start(&app, &reauth, Some(&access)).await;
    let to = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    assert!(to.query_pairs().any(|(k, v)| k == "prompt" && v == "login"), "the provider asks again: {to}");
    let callback = browser.at_provider(to.to_string(), "not-max").await;
    let refused = browser.callback(&app, &callback).await;
    assert_eq!(refused.header("location"), Some(format!("{DONE}?error=identity_in_use").as_str()));
    // Max himself: the session is recent again.
    let mut browser = Browser::new();
    let start = browser.start(&app, &reauth, Some(&access)).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "max").await;
    let done = browser.callback(&app, &callback).await;
    assert_eq!((done.status, done.header("location")), (303, Some(DONE)));
    let fresh = app.send(req("POST", "/user/totp/enroll").bearer(&access)).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);

    // A provider that posts its answer (response_mode=form_post, as Apple does).
    let mut browser = Browser::new();
    let start = browser.start(&app, &format!("redirect_to={}", urlencode(DONE)), None).await;
    let callback = browser.at_provider(start.header("location").unwrap().to_owned(), "nina").await;
    let (path, query) = callback.split_once('?').unwrap();
    let posted = req("POST", path)
        .cookie("auth_state", browser.state_cookie.as_deref().unwrap())
        .raw("application/x-www-form-urlencoded", query);
    let signed_in = app.send(posted).await;
    let access = access_of(&signed_in);
    assert_eq!(me(&app, &access).await["username"], "nina");
}
