//! Test harness: the real warp filters over a fresh SQLite database (the
//! default backend), driven with `warp::test` (no socket) or served on an
//! ephemeral loopback port.

pub mod browser;
pub mod process;
pub mod tls;

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use user_core::auth::{HashingConfig, TotpSecret};
use user_core::clock::{Clock, ManualClock};
use user_core::domain::{Role, UserId};
use user_core::store::{DeferredTask, Store};
use user_core::testing::SqliteDatabase;
use user_core::{ServiceConfig, UserService};
use user_server::{AppState, CookiePolicy};
use warp::http::HeaderMap;

/// The media type OAuth clients send forms in.
pub const FORM: &str = "application/x-www-form-urlencoded";

pub struct TestApp {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    /// The database behind `store` (its file goes when the app drops).
    pub db: SqliteDatabase,
}

/// A reply, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: bytes::Bytes,
}

impl Reply {
    /// Every `Set-Cookie` header.
    pub fn cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    /// The `Set-Cookie` header for `name`.
    pub fn cookie(&self, name: &str) -> String {
        self.cookies().into_iter().find(|c| c.starts_with(&format!("{name}="))).unwrap_or_default()
    }

    /// The value a `Set-Cookie` sets for `name`.
    pub fn cookie_value(&self, name: &str) -> String {
        let c = self.cookie(name);
        c.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the contract's error shape, returning the message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let obj = self.body.as_object().expect("JSON object");
        assert_eq!(obj.len(), 2, "exactly message and status: {}", self.body);
        assert_eq!(self.body["status"], json!(status), "status is an integer");
        self.body["message"].as_str().expect("message is a string").to_owned()
    }
}

pub fn config() -> ServiceConfig {
    ServiceConfig { hashing: HashingConfig::insecure_for_tests(), ..ServiceConfig::default() }
}

pub async fn app() -> TestApp {
    app_with(config()).await
}

pub async fn app_with(config: ServiceConfig) -> TestApp {
    let db = SqliteDatabase::new().await;
    let store = db.store.clone();
    let clock = Arc::new(ManualClock::default());
    let service = UserService::with_clock(store.clone(), config, clock.clone()).await.unwrap();
    let state = AppState {
        service,
        cookies: CookiePolicy { secure: false },
        policy: Default::default(),
        metrics_public: true,
        public_url: None,
    };
    TestApp { state, clock, store, db }
}

/// A reqwest client builder for tests. reqwest is built with rustls on ring
/// and no provider of its own, so the process installs ring's first.
pub fn http() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A request being built.
pub struct Req(warp::test::RequestBuilder);

pub fn req(method: &str, path: &str) -> Req {
    Req(warp::test::request().method(method).path(path).remote_addr("127.0.0.1:40000".parse().unwrap()))
}

impl From<warp::test::RequestBuilder> for Req {
    fn from(builder: warp::test::RequestBuilder) -> Self {
        Req(builder)
    }
}

impl Req {
    pub fn json(self, body: Value) -> Self {
        Req(self.0.header("content-type", "application/json").body(body.to_string()))
    }
    pub fn raw(self, content_type: &str, body: impl AsRef<[u8]>) -> Self {
        Req(self.0.header("content-type", content_type).body(body))
    }
    pub fn header(self, name: &str, value: &str) -> Self {
        Req(self.0.header(name, value))
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn cookie(self, name: &str, value: &str) -> Self {
        self.header("cookie", &format!("{name}={value}"))
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub access: String,
    pub refresh: String,
}

/// The password `register` gives every account.
pub const PASSWORD: &str = "correct horse";

impl TestApp {
    pub async fn send(&self, req: Req) -> Reply {
        let response = req.0.reply(&user_server::routes(self.state.clone())).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.into_body();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply { status, headers, body, raw }
    }

    pub async fn register(&self, name: &str) -> Reply {
        let body = json!({"username": name, "password": PASSWORD, "email": format!("{name}@example.com")});
        let reply = self.send(req("POST", "/user/register").json(body)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
    }

    pub async fn login(&self, name: &str) -> Session {
        self.login_with(name, PASSWORD).await
    }

    pub async fn login_with(&self, name: &str, password: &str) -> Session {
        let reply = self.send(req("POST", "/user/login").json(json!({"username": name, "password": password}))).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        Session {
            id: reply.body["id"].as_str().unwrap().to_owned(),
            access: reply.body["token"].as_str().unwrap().to_owned(),
            refresh: reply.cookie_value("refresh_token"),
        }
    }

    pub async fn user(&self, name: &str) -> Session {
        self.register(name).await;
        self.login(name).await
    }

    /// An admin signed in as the default policy (`USER_MFA_REQUIRED=admins`)
    /// has it: the password opens a restricted session, which turns TOTP
    /// on and is then a full one.
    pub async fn admin(&self, name: &str) -> Session {
        let reply = self.register(name).await;
        let id: UserId = reply.body["id"].as_str().unwrap().parse().unwrap();
        let promote = user_core::store::AccountChanges { role: Some(Role::Admin), ..Default::default() };
        self.state.service.change_account(id, promote, &Default::default()).await.unwrap();
        let session = self.login(name).await;
        self.enroll_totp(&session).await;
        session
    }

    /// Signs `name` in with the password and a TOTP code of `secret` (the
    /// clock moves a step first, so the code is a new one): the access token.
    pub async fn login_with_second_factor(&self, name: &str, secret: &str) -> String {
        self.clock.advance(std::time::Duration::from_secs(30));
        let login = self.send(req("POST", "/user/login").json(json!({"username": name, "password": PASSWORD}))).await;
        let token = login.body["mfa_token"].as_str().expect("an mfa_token").to_owned();
        let code = TotpSecret::from_base32(secret).unwrap().code_at(self.clock.now());
        let done = self.send(req("POST", "/user/login/mfa").json(json!({"mfa_token": token, "code": code}))).await;
        assert_eq!(done.status, 200, "{}", done.body);
        done.body["token"].as_str().unwrap().to_owned()
    }

    /// Turns TOTP on from `session`: its secret (base32).
    pub async fn enroll_totp(&self, session: &Session) -> String {
        let enroll = self.send(req("POST", "/user/totp/enroll").bearer(&session.access)).await;
        assert_eq!(enroll.status, 200, "{}", enroll.body);
        let secret = enroll.body["secret"].as_str().unwrap().to_owned();
        let code = TotpSecret::from_base32(&secret).unwrap().code_at(self.clock.now());
        let confirm =
            self.send(req("POST", "/user/totp/confirm").bearer(&session.access).json(json!({"code": code}))).await;
        assert_eq!(confirm.status, 200, "{}", confirm.body);
        secret
    }

    pub async fn tasks(&self) -> Vec<DeferredTask> {
        self.store.list_tasks(None, None, 1000).await.unwrap()
    }
}

/// The claims of a JWT, unverified.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
