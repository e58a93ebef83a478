//! Test harness: the real warp filters over a fresh store, driven with
//! `warp::test` (no socket) or served on an ephemeral loopback port.
#![allow(dead_code)]

pub mod process;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use user_core::auth::HashingConfig;
use user_core::clock::ManualClock;
use user_core::domain::{Role, SessionId, TrackId, UserId};
use user_core::store::{
    AuditRecord, AuditStore, Claim, DeferredTask, Favorite, FavoriteStore, MemoryStore, Rotation, SecretStore,
    SessionRecord, SessionStore, Store, TaskCounts, TaskStatus, TaskStore, User, UserChanges, UserKey, UserRecord,
    UserStore, WaitingTasks,
};
use user_core::{Error, ServiceConfig, UserService};
use user_server::{AppState, CookiePolicy};
use uuid::Uuid;
use warp::http::HeaderMap;

pub struct TestApp {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub store: Arc<FlakyStore>,
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
    let store = Arc::new(FlakyStore::default());
    let clock = Arc::new(ManualClock::default());
    let service = UserService::with_clock(store.clone(), config, clock.clone()).await.unwrap();
    let state =
        AppState { service, cookies: CookiePolicy { secure: false }, policy: Default::default(), metrics_public: true };
    TestApp { state, clock, store }
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
        let body = json!({"username": name, "password": "correct horse", "email": format!("{name}@example.com")});
        let reply = self.send(req("POST", "/user/register").json(body)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
    }

    pub async fn login(&self, name: &str) -> Session {
        let reply =
            self.send(req("POST", "/user/login").json(json!({"username": name, "password": "correct horse"}))).await;
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

    pub async fn admin(&self, name: &str) -> Session {
        let reply = self.register(name).await;
        let id: UserId = reply.body["id"].as_str().unwrap().parse().unwrap();
        self.state.service.set_role(id, Role::Admin).await.unwrap();
        self.login(name).await
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

/// A memory store that can be told to fail, to prove internal errors stay opaque.
#[derive(Debug, Default)]
pub struct FlakyStore {
    inner: MemoryStore,
    pub failing: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::internal("disk I/O error: SELECT secret_column FROM users"));
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for FlakyStore {
    async fn insert_user(&self, r: &UserRecord) -> Result<(), Error> {
        self.check()?;
        self.inner.insert_user(r).await
    }
    async fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>, Error> {
        self.check()?;
        self.inner.find_user(key).await
    }
    async fn update_user(&self, id: UserId, c: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>, Error> {
        self.check()?;
        self.inner.update_user(id, c, now).await
    }
    async fn reserve_login_attempt(
        &self,
        id: UserId,
        now: DateTime<Utc>,
        lock: user_core::store::LockRule,
    ) -> Result<Option<user_core::store::LoginAttempt>, Error> {
        self.inner.reserve_login_attempt(id, now, lock).await
    }
    async fn reset_login_failures(&self, id: UserId) -> Result<(), Error> {
        self.inner.reset_login_failures(id).await
    }
    async fn set_role(&self, id: UserId, role: Role, now: DateTime<Utc>) -> Result<bool, Error> {
        self.inner.set_role(id, role, now).await
    }
    async fn set_disabled(&self, id: UserId, d: bool, now: DateTime<Utc>) -> Result<bool, Error> {
        self.inner.set_disabled(id, d, now).await
    }
    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool, Error> {
        self.check()?;
        self.inner.delete_user(id, now).await
    }
    async fn list_users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, Error> {
        self.check()?;
        self.inner.list_users(after, limit).await
    }
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn open_session(&self, login: &user_core::store::NewSession) -> Result<bool, Error> {
        self.inner.open_session(login).await
    }
    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, Error> {
        self.inner.session(id).await
    }
    async fn session_user(&self, id: SessionId, u: UserId, now: DateTime<Utc>) -> Result<Option<UserRecord>, Error> {
        self.inner.session_user(id, u, now).await
    }
    async fn rotate_session(&self, r: &Rotation) -> Result<bool, Error> {
        self.inner.rotate_session(r).await
    }
    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool, Error> {
        self.inner.revoke_session(id, now).await
    }
    async fn revoke_user_sessions(&self, u: UserId, e: Option<SessionId>, now: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.revoke_user_sessions(u, e, now).await
    }
}

#[async_trait]
impl FavoriteStore for FlakyStore {
    async fn add_favorites(&self, u: UserId, t: &[TrackId], now: DateTime<Utc>) -> Result<u64, Error> {
        self.check()?;
        self.inner.add_favorites(u, t, now).await
    }
    async fn remove_favorites(&self, u: UserId, t: &[TrackId], now: DateTime<Utc>) -> Result<u64, Error> {
        self.check()?;
        self.inner.remove_favorites(u, t, now).await
    }
    async fn favorites_contain(&self, u: UserId, t: &[TrackId]) -> Result<Vec<bool>, Error> {
        self.inner.favorites_contain(u, t).await
    }
    async fn list_favorites(&self, u: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>, Error> {
        self.inner.list_favorites(u, before, limit).await
    }
}

#[async_trait]
impl TaskStore for FlakyStore {
    async fn list_tasks(
        &self,
        s: Option<TaskStatus>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeferredTask>, Error> {
        self.inner.list_tasks(s, after, limit).await
    }
    async fn claim_tasks(&self, now: DateTime<Utc>, until: DateTime<Utc>, limit: u32) -> Result<Claim, Error> {
        self.inner.claim_tasks(now, until, limit).await
    }
    async fn complete_tasks(&self, lease: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.complete_tasks(lease, ids, now).await
    }
    async fn fail_task(
        &self,
        lease: Uuid,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.inner.fail_task(lease, id, error, retry_at, now).await
    }
    async fn release_tasks(&self, lease: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.release_tasks(lease, ids, now).await
    }
    async fn retry_dead_tasks(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.retry_dead_tasks(id, now).await
    }
    async fn count_tasks(&self) -> Result<TaskCounts, Error> {
        self.inner.count_tasks().await
    }
    async fn count_waiting_tasks(&self) -> Result<WaitingTasks, Error> {
        self.inner.count_waiting_tasks().await
    }
    async fn purge_done_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, Error> {
        self.inner.purge_done_tasks(before, limit).await
    }
}

#[async_trait]
impl AuditStore for FlakyStore {
    async fn record_audit(&self, entry: &AuditRecord) -> Result<(), Error> {
        self.inner.record_audit(entry).await
    }
    async fn list_audit(
        &self,
        user: Option<UserId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, Error> {
        self.inner.list_audit(user, before, limit).await
    }
}

#[async_trait]
impl SecretStore for FlakyStore {
    async fn get_or_insert_secret(&self, name: &str, c: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>, Error> {
        self.inner.get_or_insert_secret(name, c, now).await
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn migrate(&self) -> Result<(), Error> {
        Ok(())
    }
    async fn ping(&self) -> Result<(), Error> {
        self.check()
    }
}
