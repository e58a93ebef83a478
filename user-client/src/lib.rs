//! `user-client`: a typed async SDK for the user service's REST API
//! (`shared/API.md`). Request and response types are `user_core::api`'s, the
//! same ones the server renders, so the two cannot drift.
//!
//! ```no_run
//! # async fn demo() -> Result<(), user_client::Error> {
//! use user_client::Client;
//!
//! let client = Client::new("http://127.0.0.1:8080")?;
//! client.register("alice", "alice@example.com", "correct horse").await?;
//! client.login("alice", "correct horse").await?;        // keeps the session
//! client.add_favorites(&["42", "43"]).await?;
//! let page = client.list_favorites(None, None).await?;
//! assert_eq!(page.tracks[0].track_id, "43");             // newest first
//! match client.register("ALICE", "other@example.com", "correct horse").await {
//!     Err(e) if e.is_conflict() => {}                      // the name is taken
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! The client keeps the session itself: the access token in memory, the
//! refresh token in a cookie store. When an authenticated call answers 401,
//! it refreshes once and retries; concurrent calls that all hit 401 share that
//! one refresh.

#![warn(missing_docs)]

mod admin;
mod device;
mod error;

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, RwLock};
use user_core::api::{
    AccountResponse, ContainsResponse, CurrentPasswordRequest, FavoriteListResponse, FavoriteTrack,
    ForgotPasswordRequest, IdentitiesResponse, IdentityInfo, LoginAnswer, LoginMfaRequest, LoginRequest, LoginResponse,
    MainResponse, OAuthErrorResponse, OAuthTokenRequest, OAuthTokenResponse, PasskeyCreatedResponse,
    PasskeyLoginRequest, PasskeyLoginStartRequest, PasskeyOptionsResponse, PasskeyRegisterRequest,
    PasskeyRenameRequest, ProviderTokenRequest, ReauthRequest, ReauthResponse, RecoveryCodesResponse, RefreshResponse,
    RegisterRequest, ResetPasswordRequest, RevokedResponse, SecurityResponse, SessionInfo, SessionListResponse,
    TokenRequest, TotpConfirmRequest, TotpEnrollResponse, UpdateRequest, UserListResponse, UserResponse, UserSummary,
};
use user_core::domain::{DeviceName, Email, Locale, Login, Password, TrackBatch, TrackId, Username, ValidationError};

pub use admin::{Admin, AuditQuery};
pub use device::DeviceLogin;
pub use error::{Error, MfaPending, Result};

/// What a passkey sign-in is for ([`Client::passkey_login_start`]).
#[derive(Debug, Clone, Copy)]
pub enum PasskeySignInFor<'a> {
    /// A passkey alone signs in (no account named; autofill works).
    Alone,
    /// The second step of a sign-in whose password was right.
    SecondStep {
        /// [`MfaPending::mfa_token`].
        mfa_token: &'a str,
    },
    /// A step-up of this client's session.
    StepUp,
}
pub use user_core::api;

/// A connection to one user service.
///
/// Cheap to clone; clones share the connection pool and the session.
/// `Debug` shows the server and whether a session is held, never a token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    session: Arc<Session>,
    /// The cookie store, when the client built its own HTTP client.
    jar: Option<Arc<Jar>>,
    /// The name each login gives its session.
    device_name: Option<String>,
    /// The mail language of accounts this client registers.
    locale: Option<Locale>,
}

/// A session to keep between runs (e.g. in a credentials file), from
/// [`Client::save_session`] to [`Client::restore_session`]. Holds secrets.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedSession {
    /// The access token.
    pub access_token: Option<String>,
    /// The refresh token (from the `refresh_token` cookie).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("access_token", &self.access_token.as_ref().map(|_| "[redacted]"))
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("session", &self.session)
            .field("cookie_store", &self.jar.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Session {
    /// The access token and how many times it was replaced.
    access: RwLock<(Option<String>, u64)>,
    /// The refresh token when the client holds it itself ([`Client::with_tokens`])
    /// rather than in a cookie; it is then rotated through `POST /oauth/token`.
    /// Only touched while `refreshing` is held, or before the session is shared.
    refresh: std::sync::Mutex<Option<String>>,
    /// Held while refreshing, so concurrent 401s share one refresh.
    refreshing: Mutex<()>,
}

impl Session {
    fn held_refresh(&self) -> Option<String> {
        self.refresh.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn hold_refresh(&self, token: String) {
        *self.refresh.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `try_read`: formatting must not wait for a refresh in progress.
        let access = match self.access.try_read() {
            Ok(access) if access.0.is_some() => "[redacted]",
            Ok(_) => "none",
            Err(_) => "[being replaced]",
        };
        f.debug_struct("Session").field("access_token", &access).finish_non_exhaustive()
    }
}

/// reqwest (built with ring, not aws-lc) takes the process-wide rustls
/// provider: installs ring's unless the application installed one first.
fn ensure_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one first; either way, one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Builds a [`Client`] with non-default settings.
#[derive(Debug)]
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    user_agent: String,
    device_name: Option<String>,
    locale: Option<Locale>,
    roots: Vec<reqwest::Certificate>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Per-request timeout (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `user-client/<version>`).
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The name every login gives its session ("Kitchen speaker"), shown in
    /// [`Client::sessions`]; 1–64 printable characters, checked at login.
    #[must_use]
    pub fn device_name(mut self, name: impl Into<String>) -> Self {
        self.device_name = Some(name.into());
        self
    }

    /// The language of the mails (verification, reset) of accounts this
    /// client registers: the app's own language. Without it the server
    /// uses its default (`en`).
    #[must_use]
    pub fn locale(mut self, locale: Locale) -> Self {
        self.locale = Some(locale);
        self
    }

    /// Trusts the CA certificates in `pem` besides the system's roots, for a
    /// server whose certificate a private CA issued. HTTPS works without it
    /// for certificates of the usual public CAs.
    ///
    /// ```
    /// # fn main() -> Result<(), user_client::Error> {
    /// let refused = user_client::Client::builder("https://users.internal").add_root_certificate(b"no PEM here");
    /// assert!(refused.unwrap_err().is_bad_request());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] if `pem` holds no certificate, or one that does not parse.
    pub fn add_root_certificate(mut self, pem: &[u8]) -> Result<Self> {
        let invalid = |why: String| Error::Invalid(ValidationError::new("ca_certificate", why));
        let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| invalid(e.to_string()))?;
        if certificates.is_empty() {
            return Err(invalid("holds no PEM certificate".into()));
        }
        // The PEM layer does not look inside; a client build does.
        ensure_rustls_provider();
        for certificate in &certificates {
            reqwest::Client::builder()
                .add_root_certificate(certificate.clone())
                .build()
                .map_err(|e| invalid(format!("a certificate does not parse: {e}")))?;
        }
        self.roots.extend(certificates);
        Ok(self)
    }

    /// Uses this `reqwest::Client` as is (its own timeout, user agent and roots).
    /// Give it a cookie store (`cookie_store(true)`) or refresh cannot work.
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Transport`] if the HTTP client cannot be built.
    pub fn build(self) -> Result<Client> {
        let (http, jar) = match self.http {
            Some(http) => (http, None),
            None => {
                let jar = Arc::new(Jar::default());
                ensure_rustls_provider();
                let mut http = reqwest::Client::builder()
                    .cookie_provider(jar.clone())
                    .timeout(self.timeout)
                    .user_agent(self.user_agent);
                for root in self.roots {
                    http = http.add_root_certificate(root);
                }
                let http = http.build()?;
                (http, Some(jar))
            }
        };
        let base = self.base.trim_end_matches('/').to_owned();
        Ok(Client { http, base, session: Arc::default(), jar, device_name: self.device_name, locale: self.locale })
    }
}

impl Client {
    /// A client for the service at `base_url` (e.g. `http://127.0.0.1:8080`)
    /// with default settings.
    ///
    /// # Errors
    /// [`Error::Transport`] if the HTTP client cannot be built.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        Self::builder(base_url).build()
    }

    /// A builder for a client of the service at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            timeout: Duration::from_secs(30),
            user_agent: concat!("user-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            device_name: None,
            locale: None,
            roots: Vec::new(),
            http: None,
        }
    }

    /// The access token of the current session, if logged in.
    pub async fn access_token(&self) -> Option<String> {
        self.session.access.read().await.0.clone()
    }

    /// Uses `token` as the access token (e.g. one saved from an earlier run).
    pub async fn set_access_token(&self, token: Option<String>) {
        let mut access = self.session.access.write().await;
        access.0 = token;
        access.1 += 1;
    }

    /// This client with a session of its own whose tokens it holds itself,
    /// not in cookies: a native app's tokens from `POST /oauth/token` (a
    /// [`DeviceLogin`], or tokens kept in the platform's keychain). On a 401
    /// it rotates the refresh token through `POST /oauth/token` with the
    /// refresh-token grant, with the same reuse detection as the cookie path;
    /// [`Client::save_session`] gives the newest pair to keep.
    ///
    /// ```no_run
    /// # async fn run(saved: user_client::SavedSession) -> Result<(), user_client::Error> {
    /// let client = user_client::Client::new("https://users.example")?;
    /// let (Some(access), Some(refresh)) = (saved.access_token, saved.refresh_token) else { return Ok(()) };
    /// let client = client.with_tokens(access, refresh);
    /// let me = client.me().await?; // refreshes by itself when the access token expired
    /// let keep = client.save_session().await; // the rotated pair, for the keychain
    /// # let _ = (me, keep); Ok(()) }
    /// ```
    #[must_use]
    pub fn with_tokens(&self, access_token: impl Into<String>, refresh_token: impl Into<String>) -> Client {
        let session = Session {
            access: RwLock::new((Some(access_token.into()), 0)),
            refresh: std::sync::Mutex::new(Some(refresh_token.into())),
            refreshing: Mutex::new(()),
        };
        Client { session: Arc::new(session), ..self.clone() }
    }

    /// The current session, to save between runs. The refresh token is
    /// known when the client holds it ([`Client::with_tokens`]) or built its
    /// own HTTP client (its cookie store).
    pub async fn save_session(&self) -> SavedSession {
        if let Some(refresh_token) = self.session.held_refresh() {
            return SavedSession { access_token: self.access_token().await, refresh_token: Some(refresh_token) };
        }
        let refresh_token = self.jar.as_ref().and_then(|jar| {
            let url = reqwest::Url::parse(&self.base).ok()?;
            let header = jar.cookies(&url)?;
            header.to_str().ok()?.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == "refresh_token" && !value.is_empty()).then(|| value.to_owned())
            })
        });
        SavedSession { access_token: self.access_token().await, refresh_token }
    }

    /// Continues a session saved by [`Client::save_session`].
    pub async fn restore_session(&self, saved: &SavedSession) {
        self.set_access_token(saved.access_token.clone()).await;
        if let (Some(jar), Some(refresh), Ok(url)) = (&self.jar, &saved.refresh_token, reqwest::Url::parse(&self.base))
        {
            jar.add_cookie_str(&format!("refresh_token={refresh}; Path=/; HttpOnly; SameSite=Strict"), &url);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /user/register`. The fields are checked against the contract's
    /// rules before anything is sent.
    ///
    /// # Errors
    /// [`Error::Invalid`] or 400 naming the field; 409 when the username or
    /// email is taken ([`Error::is_conflict`]).
    pub async fn register(&self, username: &str, email: &str, password: &str) -> Result<AccountResponse> {
        let body = self.registration(username, email, password)?;
        self.send(self.http.post(self.url("/user/register")).json(&body)).await
    }

    /// Keeps a login answer's session, or hands its second step back as
    /// [`Error::MfaRequired`].
    async fn keep_login_answer(&self, reply: LoginAnswer) -> Result<LoginResponse> {
        match reply {
            LoginAnswer::SignedIn(reply) => {
                self.set_access_token(Some(reply.token.clone())).await;
                Ok(reply)
            }
            LoginAnswer::SecondFactorRequired(pending) => {
                Err(Error::MfaRequired(MfaPending { mfa_token: pending.mfa_token, methods: pending.methods }))
            }
        }
    }

    /// A registration body, each field checked as the server will.
    fn registration(&self, username: &str, email: &str, password: &str) -> Result<RegisterRequest> {
        Username::parse(username)?;
        Email::parse(email)?;
        Password::parse(password)?;
        Ok(RegisterRequest {
            username: username.into(),
            password: password.into(),
            email: email.into(),
            locale: self.locale,
        })
    }

    /// `POST /user/login` by username or email; keeps the session for the
    /// calls that follow.
    ///
    /// ```no_run
    /// # async fn run(client: user_client::Client, ask_for_code: impl Fn() -> String) -> Result<(), user_client::Error> {
    /// match client.login("alice", "correct horse").await {
    ///     Ok(_) => {}
    ///     Err(user_client::Error::MfaRequired(pending)) => {
    ///         client.login_mfa(&pending.mfa_token, &ask_for_code()).await?;
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// 401 wrong password, 403 account disabled, 404 no such user;
    /// [`Error::MfaRequired`] when the account has a second factor.
    pub async fn login(&self, username_or_email: &str, password: &str) -> Result<LoginResponse> {
        Login::parse(username_or_email)?;
        Password::presented("password", password)?;
        let device_name = self.device_name.as_deref().map(DeviceName::parse).transpose()?.map(|d| d.to_string());
        let body = LoginRequest {
            username: username_or_email.into(),
            password: password.into(),
            device_name,
            merge_guest: None,
        };
        let reply: LoginAnswer = self.send(self.http.post(self.url("/user/login")).json(&body)).await?;
        self.keep_login_answer(reply).await
    }

    /// `POST /user/guest` (v1.2): starts as a guest account (no username,
    /// address or password) and keeps its session. A guest may read
    /// [`Client::me`] (`guest: true`), keep favorites, see and end its
    /// sessions, delete itself and [upgrade](Client::upgrade_guest); other
    /// calls answer 403 `registration_required` ([`Error::code`]).
    ///
    /// ```no_run
    /// # async fn run(client: user_client::Client) -> Result<(), user_client::Error> {
    /// client.guest().await?;
    /// client.add_favorites(&["42"]).await?;                  // listen first…
    /// client.upgrade_guest("alice", "alice@example.com", "correct horse").await?; // …register later
    /// assert_eq!(client.list_favorites(None, None).await?.tracks[0].track_id, "42");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// 409 `already_signed_in` when this client holds a session; 429 past
    /// the per-address or overall limit; 403 `guests_off`.
    pub async fn guest(&self) -> Result<LoginResponse> {
        let reply: LoginResponse = self.send(self.http.post(self.url("/user/guest"))).await?;
        self.set_access_token(Some(reply.token.clone())).await;
        Ok(reply)
    }

    /// `POST /user/guest/upgrade` (v1.2): makes the signed-in guest an
    /// account with this username, address and password, keeping its id,
    /// favorites and sessions; keeps the new tokens (role `user`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a field that breaks a rule (checked before
    /// sending; the server also refuses common passwords); 409 when the name
    /// or address is taken; 403 `not_a_guest` for an account.
    pub async fn upgrade_guest(&self, username: &str, email: &str, password: &str) -> Result<LoginResponse> {
        let body = self.registration(username, email, password)?;
        let reply: LoginResponse = self.authed(Method::POST, "/user/guest/upgrade", |r| r.json(&body)).await?;
        self.set_access_token(Some(reply.token.clone())).await;
        Ok(reply)
    }

    /// `POST /user/login/mfa` (v1.2): completes a sign-in [`Client::login`]
    /// answered with [`Error::MfaRequired`], with a code from the
    /// authenticator app or a recovery code; keeps the session.
    ///
    /// # Errors
    /// 401 `invalid_code` ([`Error::code`]) for a wrong or used code, or a
    /// token that is used, expired or spent (sign in again).
    pub async fn login_mfa(&self, mfa_token: &str, code: &str) -> Result<LoginResponse> {
        let body = LoginMfaRequest {
            mfa_token: Some(mfa_token.into()),
            code: Some(code.into()),
            ceremony: None,
            credential: None,
            revoke_other_sessions: None,
        };
        let reply: LoginResponse = self.send(self.http.post(self.url("/user/login/mfa")).json(&body)).await?;
        self.set_access_token(Some(reply.token.clone())).await;
        Ok(reply)
    }

    /// `POST /user/passkeys/login/start` (v1.2): a passkey sign-in to hand
    /// to the platform's authenticator — [`PasskeySignInFor::Alone`] (no
    /// account named), [`PasskeySignInFor::SecondStep`] of a sign-in that
    /// answered [`Error::MfaRequired`], or [`PasskeySignInFor::StepUp`] of
    /// this client's session. Give `options` to the authenticator and its
    /// answer with `ceremony` to [`Client::passkey_login_finish`],
    /// [`Client::login_mfa_with_passkey`] or [`Client::reauth_with_passkey`].
    ///
    /// # Errors
    /// 503 when the server has no `USER_WEBAUTHN_RP_ID`; 401 `invalid_code`
    /// for a spent `mfa_token`.
    pub async fn passkey_login_start(&self, purpose: PasskeySignInFor<'_>) -> Result<PasskeyOptionsResponse> {
        let url = self.url("/user/passkeys/login/start");
        match purpose {
            PasskeySignInFor::Alone => self.send(self.http.post(url)).await,
            PasskeySignInFor::SecondStep { mfa_token } => {
                let body = PasskeyLoginStartRequest { mfa_token: Some(mfa_token.into()), reauth: None };
                self.send(self.http.post(url).json(&body)).await
            }
            PasskeySignInFor::StepUp => {
                let body = PasskeyLoginStartRequest { mfa_token: None, reauth: Some(true) };
                self.authed(Method::POST, "/user/passkeys/login/start", |r| r.json(&body)).await
            }
        }
    }

    /// `POST /user/passkeys/login/finish` (v1.2): signs in with a passkey
    /// alone and keeps the session, as [`Client::login`] does.
    ///
    /// # Errors
    /// 401 for any failed check (the server's audit says which).
    pub async fn passkey_login_finish(&self, ceremony: &str, credential: &serde_json::Value) -> Result<LoginResponse> {
        let body = PasskeyLoginRequest { ceremony: ceremony.into(), credential: credential.clone() };
        let reply: LoginResponse =
            self.send(self.http.post(self.url("/user/passkeys/login/finish")).json(&body)).await?;
        self.set_access_token(Some(reply.token.clone())).await;
        Ok(reply)
    }

    /// `POST /user/login/mfa` (v1.2) with a passkey: the second step of a
    /// sign-in, with the ceremony of [`PasskeySignInFor::SecondStep`].
    ///
    /// # Errors
    /// 401 for a failed check or a spent sign-in.
    pub async fn login_mfa_with_passkey(
        &self,
        ceremony: &str,
        credential: &serde_json::Value,
    ) -> Result<LoginResponse> {
        let body = LoginMfaRequest {
            mfa_token: None,
            code: None,
            ceremony: Some(ceremony.into()),
            credential: Some(credential.clone()),
            revoke_other_sessions: None,
        };
        let reply: LoginResponse = self.send(self.http.post(self.url("/user/login/mfa")).json(&body)).await?;
        self.set_access_token(Some(reply.token.clone())).await;
        Ok(reply)
    }

    /// `POST /user/passkeys/register/start` (v1.2): begins adding a passkey
    /// (a recent sign-in, or `current_password`); hand `options` to the
    /// platform's authenticator.
    ///
    /// # Errors
    /// [`Error::is_reauth_required`]; 503 without passkeys on the server.
    pub async fn passkey_register_start(&self, current_password: Option<&str>) -> Result<PasskeyOptionsResponse> {
        self.with_current_password(Method::POST, "/user/passkeys/register/start", current_password).await
    }

    /// `POST /user/passkeys/register/finish` (v1.2): adds the passkey the
    /// authenticator made (`RegistrationResponseJSON`) under `name`.
    ///
    /// # Errors
    /// 400 naming the failed check, or for a spent ceremony.
    pub async fn passkey_register_finish(
        &self,
        ceremony: &str,
        name: Option<&str>,
        credential: &serde_json::Value,
    ) -> Result<PasskeyCreatedResponse> {
        let body = PasskeyRegisterRequest {
            ceremony: ceremony.into(),
            name: name.map(Into::into),
            credential: credential.clone(),
            revoke_other_sessions: None,
        };
        self.authed(Method::POST, "/user/passkeys/register/finish", |r| r.json(&body)).await
    }

    /// `PATCH /user/passkeys/{id}` (v1.2): renames a passkey.
    ///
    /// # Errors
    /// 400 for a bad name; 404 for none of the caller's.
    pub async fn rename_passkey(&self, id: uuid::Uuid, name: &str) -> Result<MainResponse> {
        let body = PasskeyRenameRequest { name: name.into() };
        self.authed(Method::PATCH, &format!("/user/passkeys/{id}"), |r| r.json(&body)).await
    }

    /// `DELETE /user/passkeys/{id}` (v1.2): removes a passkey (a recent
    /// sign-in, or `current_password`).
    ///
    /// # Errors
    /// [`Error::is_reauth_required`]; 404; 409 `last_sign_in_method`.
    pub async fn remove_passkey(&self, id: uuid::Uuid, current_password: Option<&str>) -> Result<MainResponse> {
        self.with_current_password(Method::DELETE, &format!("/user/passkeys/{id}"), current_password).await
    }

    /// `GET /user/security` (v1.2): the account's sign-in methods.
    ///
    /// # Errors
    /// 401 without a session.
    pub async fn security(&self) -> Result<SecurityResponse> {
        self.authed(Method::GET, "/user/security", |r| r).await
    }

    /// `POST /auth/{provider}/token` (v1.2): signs in with the ID token a
    /// platform SDK (Sign in with Apple, Google Identity Services) gave the
    /// app, and the nonce the app gave that SDK; keeps the session.
    ///
    /// ```no_run
    /// # async fn run(client: user_client::Client, id_token: &str) -> Result<(), user_client::Error> {
    /// match client.sign_in_with_id_token("apple", id_token, "the-nonce-the-app-made").await {
    ///     Ok(_) => {}
    ///     // An account has this verified address: sign in to it, then link.
    ///     Err(e) if e.code() == Some("link_required") => {
    ///         client.login("alice", "correct horse").await?;
    ///         client.link_identity().await?;
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// 401 `invalid_id_token`; [`Error::MfaRequired`] for an account with a
    /// second factor (finish with [`Client::login_mfa`]); 409 `link_required`
    /// (the held identity's cookie is kept for [`Client::link_identity`]) or
    /// `identity_in_use`; 403 for a disabled account.
    pub async fn sign_in_with_id_token(&self, provider: &str, id_token: &str, nonce: &str) -> Result<LoginResponse> {
        let body = ProviderTokenRequest { id_token: id_token.into(), nonce: nonce.into() };
        let url = self.url(&format!("/auth/{provider}/token"));
        let reply: LoginAnswer = self.send(self.http.post(url).json(&body)).await?;
        self.keep_login_answer(reply).await
    }

    /// `POST /user/identities/link` (v1.2): links the identity a provider
    /// sign-in held for this account (after `link_required`), from a
    /// recent sign-in; the account's identities.
    ///
    /// # Errors
    /// 400 when no identity is held for this account (or it expired);
    /// [`Error::is_reauth_required`]; 409 `identity_in_use`.
    pub async fn link_identity(&self) -> Result<Vec<IdentityInfo>> {
        let reply: IdentitiesResponse = self.authed(Method::POST, "/user/identities/link", |r| r).await?;
        Ok(reply.identities)
    }

    /// `DELETE /user/identities/{provider}` (v1.2): removes the account's
    /// identity at `provider` (a recent sign-in).
    ///
    /// # Errors
    /// 404 without one; 409 `last_sign_in_method` when nothing else could
    /// sign in; [`Error::is_reauth_required`].
    pub async fn unlink_identity(&self, provider: &str) -> Result<MainResponse> {
        self.authed(Method::DELETE, &format!("/user/identities/{provider}"), |r| r).await
    }

    /// `POST /user/totp/enroll` (v1.2): a new TOTP secret and its
    /// `otpauth://` URI, shown once. Without `current_password` the session
    /// must have signed in recently.
    ///
    /// # Errors
    /// [`Error::is_reauth_required`]; 409 `factor_active` when TOTP is on.
    pub async fn totp_enroll(&self, current_password: Option<&str>) -> Result<TotpEnrollResponse> {
        self.with_current_password(Method::POST, "/user/totp/enroll", current_password).await
    }

    /// `POST /user/totp/confirm` (v1.2): turns TOTP on with the app's first
    /// code; the ten recovery codes, shown once.
    ///
    /// # Errors
    /// 401 `invalid_code`; 409 `factor_active`.
    pub async fn totp_confirm(&self, code: &str) -> Result<RecoveryCodesResponse> {
        let body = TotpConfirmRequest { code: code.into(), revoke_other_sessions: None };
        self.authed(Method::POST, "/user/totp/confirm", |r| r.json(&body)).await
    }

    /// `DELETE /user/totp` (v1.2): turns TOTP off (the recovery codes too).
    ///
    /// # Errors
    /// [`Error::is_reauth_required`]; 409 `no_second_factor`.
    pub async fn totp_disable(&self, current_password: Option<&str>) -> Result<MainResponse> {
        self.with_current_password(Method::DELETE, "/user/totp", current_password).await
    }

    /// `POST /user/recovery-codes` (v1.2): ten new recovery codes in place
    /// of the old ones.
    ///
    /// # Errors
    /// [`Error::is_reauth_required`]; 409 `no_second_factor`.
    pub async fn new_recovery_codes(&self, current_password: Option<&str>) -> Result<RecoveryCodesResponse> {
        self.with_current_password(Method::POST, "/user/recovery-codes", current_password).await
    }

    /// `POST /user/reauth` (v1.2) with the password: this session counts as
    /// recently signed in for the server's window (10 minutes by default),
    /// so a change that answered [`Error::is_reauth_required`] goes through
    /// when tried again. For an account without a second factor; one with
    /// steps up with [`Client::reauth_with_code`].
    ///
    /// # Errors
    /// 401 for a wrong password; 401 `mfa_required` for an account with a
    /// second factor; 429 after repeated failures (they count toward the
    /// account's lockout).
    pub async fn reauth_with_password(&self, password: &str) -> Result<ReauthResponse> {
        Password::presented("password", password)?;
        let body = ReauthRequest { password: Some(password.into()), code: None, ceremony: None, credential: None };
        self.authed(Method::POST, "/user/reauth", |r| r.json(&body)).await
    }

    /// `POST /user/reauth` (v1.2) with a code from the authenticator app or
    /// a recovery code; see [`Client::reauth_with_password`].
    ///
    /// # Errors
    /// 401 `invalid_code` for a wrong or used code; 429 as above.
    pub async fn reauth_with_code(&self, code: &str) -> Result<ReauthResponse> {
        let body = ReauthRequest { password: None, code: Some(code.into()), ceremony: None, credential: None };
        self.authed(Method::POST, "/user/reauth", |r| r.json(&body)).await
    }

    /// `POST /user/reauth` (v1.2) with a passkey, answering the ceremony of
    /// [`PasskeySignInFor::StepUp`]; see [`Client::reauth_with_password`].
    ///
    /// # Errors
    /// 401 for a failed check.
    pub async fn reauth_with_passkey(&self, ceremony: &str, credential: &serde_json::Value) -> Result<ReauthResponse> {
        let body = ReauthRequest {
            password: None,
            code: None,
            ceremony: Some(ceremony.into()),
            credential: Some(credential.clone()),
        };
        self.authed(Method::POST, "/user/reauth", |r| r.json(&body)).await
    }

    /// A sensitive change with its optional `{"current_password"}` body.
    async fn with_current_password<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        current_password: Option<&str>,
    ) -> Result<T> {
        let body = CurrentPasswordRequest {
            current_password: current_password.map(str::to_owned),
            revoke_other_sessions: None,
        };
        self.authed(method, path, |r| if body.current_password.is_some() { r.json(&body) } else { r }).await
    }

    /// `POST /user/logout`: ends the session on the server and here.
    ///
    /// # Errors
    /// 401 when there is no valid session.
    pub async fn logout(&self) -> Result<MainResponse> {
        let reply = self.authed(Method::POST, "/user/logout", |r| r).await;
        self.set_access_token(None).await;
        reply
    }

    /// Rotates the tokens (done automatically on a 401): `POST /user/refresh`
    /// with the refresh cookie, or, when the client holds its tokens
    /// ([`Client::with_tokens`]), `POST /oauth/token` with the refresh-token grant.
    ///
    /// # Errors
    /// 401 when the refresh cookie is missing, expired, revoked or reused;
    /// 400 `invalid_grant` ([`Error::grant_error`]) for a held token so refused.
    pub async fn refresh(&self) -> Result<RefreshResponse> {
        if let Some(refresh_token) = self.session.held_refresh() {
            let body = OAuthTokenRequest {
                grant_type: "refresh_token".into(),
                refresh_token: Some(refresh_token),
                ..OAuthTokenRequest::default()
            };
            let tokens: OAuthTokenResponse = self.send(self.http.post(self.url("/oauth/token")).form(&body)).await?;
            self.session.hold_refresh(tokens.refresh_token);
            self.set_access_token(Some(tokens.access_token.clone())).await;
            return Ok(RefreshResponse {
                message: "success".into(),
                status: 200,
                token: tokens.access_token,
                session_expires_at: None,
            });
        }
        let reply: RefreshResponse = self.send(self.http.post(self.url("/user/refresh"))).await?;
        self.set_access_token(Some(reply.token.clone())).await;
        Ok(reply)
    }

    /// `GET /user/get`: the logged-in account.
    ///
    /// # Errors
    /// 401 without a session.
    pub async fn me(&self) -> Result<UserResponse> {
        self.authed(Method::GET, "/user/get", |r| r).await
    }

    /// `PUT /user/update` with any non-empty subset of the fields.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty update or a broken rule; 401 (also for a
    /// wrong `current_password`); 409 when the new name or email is taken.
    pub async fn update(&self, update: &UpdateRequest) -> Result<AccountResponse> {
        if update.username.is_none() && update.email.is_none() && update.password.is_none() && update.locale.is_none() {
            return Err(ValidationError::new("body", "give at least one of username, email, password, locale").into());
        }
        update.username.as_deref().map(Username::parse).transpose()?;
        update.email.as_deref().map(Email::parse).transpose()?;
        update.password.as_deref().map(Password::parse).transpose()?;
        self.authed(Method::PUT, "/user/update", |r| r.json(update)).await
    }

    /// `POST /user/email/verify/request`: sends a new verification link to
    /// the logged-in account's address.
    ///
    /// # Errors
    /// 409 when the address is verified already; 429 within a minute of the
    /// last link; 503 when the server has no mail transport.
    pub async fn request_verification(&self) -> Result<MainResponse> {
        self.authed(Method::POST, "/user/email/verify/request", |r| r).await
    }

    /// `POST /user/email/verify` with the token from a verification mail (no
    /// session needed).
    ///
    /// # Errors
    /// 400 `invalid or expired token`.
    pub async fn verify_email(&self, token: &str) -> Result<MainResponse> {
        let body = TokenRequest { token: token.into() };
        self.send(self.http.post(self.url("/user/email/verify")).json(&body)).await
    }

    /// `POST /user/email/revert` with the token from the undo link of an
    /// address change (mailed to the old address; no session needed): the
    /// old address comes back, every session ends (this client's too), and
    /// a link to set a new password goes to the old address.
    ///
    /// # Errors
    /// 400 `invalid or expired token` (used, voided by another undo, or
    /// older than 7 days); 503 without mail.
    pub async fn revert_email_change(&self, token: &str) -> Result<MainResponse> {
        let body = TokenRequest { token: token.into() };
        let reply = self.send(self.http.post(self.url("/user/email/revert")).json(&body)).await;
        if reply.is_ok() {
            self.set_access_token(None).await;
        }
        reply
    }

    /// `POST /user/password/forgot`: asks for a reset link. The answer (202)
    /// is the same whether or not an account has the address.
    ///
    /// ```no_run
    /// # async fn run(client: user_client::Client) -> Result<(), user_client::Error> {
    /// client.forgot_password("alice@example.com").await?;
    /// // … the user opens the mail and gives the token to the app:
    /// client.reset_password("token-from-the-link", "a brand new secret").await?;
    /// client.login("alice", "a brand new secret").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] or 400 for a malformed address; 429; 503 when the
    /// server has no mail transport.
    pub async fn forgot_password(&self, email: &str) -> Result<MainResponse> {
        Email::parse(email)?;
        let body = ForgotPasswordRequest { email: email.into() };
        self.send(self.http.post(self.url("/user/password/forgot")).json(&body)).await
    }

    /// `POST /user/password/reset` with the token from a reset mail: sets
    /// the password and ends every session of the account (this client's
    /// too: log in again).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a weak password; 400 `invalid or expired token`.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<MainResponse> {
        Password::parse(password)?;
        let body = ResetPasswordRequest { token: token.into(), password: password.into() };
        self.send(self.http.post(self.url("/user/password/reset")).json(&body)).await
    }

    /// `DELETE /user/delete`: deletes the logged-in account. Without
    /// `current_password` the session must have signed in within the
    /// server's re-authentication window (default 10 minutes).
    ///
    /// # Errors
    /// 401 without a session or for a wrong `current_password`;
    /// [`Error::is_reauth_required`] when the sign-in is too old.
    pub async fn delete_account(&self, current_password: Option<&str>) -> Result<MainResponse> {
        let reply = self.with_current_password(Method::DELETE, "/user/delete", current_password).await;
        if reply.is_ok() {
            self.set_access_token(None).await;
        }
        reply
    }

    /// `GET /user/sessions`: the account's live sessions, newest first; the
    /// one this client uses is marked `current`.
    ///
    /// ```no_run
    /// # async fn run(client: user_client::Client) -> Result<(), user_client::Error> {
    /// for session in client.sessions().await? {
    ///     println!("{} {:?} last used {}", session.id, session.device_name, session.last_used_at);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// 401 when there is no valid session.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>> {
        let reply: SessionListResponse = self.authed(Method::GET, "/user/sessions", |r| r).await?;
        Ok(reply.sessions)
    }

    /// `DELETE /user/sessions/{id}`: signs one of the account's sessions out.
    ///
    /// # Errors
    /// 404 when `id` is not a live session of the account.
    pub async fn revoke_session(&self, id: uuid::Uuid) -> Result<MainResponse> {
        self.authed(Method::DELETE, &format!("/user/sessions/{id}"), |r| r).await
    }

    /// `POST /user/sessions/revoke-others`: signs out every session but this
    /// client's; how many were ended.
    ///
    /// # Errors
    /// 401 when there is no valid session.
    pub async fn revoke_other_sessions(&self) -> Result<u64> {
        let reply: RevokedResponse = self.authed(Method::POST, "/user/sessions/revoke-others", |r| r).await?;
        Ok(reply.revoked)
    }

    /// `GET /user/all` (admin): one page, oldest account first.
    ///
    /// # Errors
    /// 403 for a non-admin; 400 for a bad limit or cursor.
    pub async fn list_users(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<UserListResponse> {
        let query = page_query(limit, cursor);
        self.authed(Method::GET, "/user/all", move |r| r.query(&query)).await
    }

    /// Every account, following cursors page by page (`page_size` per request).
    pub fn users(&self, page_size: u32) -> impl Stream<Item = Result<UserSummary>> + '_ {
        self.paged(page_size, |client, limit, cursor| async move {
            let page = client.list_users(Some(limit), cursor.as_deref()).await?;
            Ok((page.users, page.next_cursor))
        })
    }

    /// `POST /user/track/favorite?track_id=…`: adds 1–50 favorites at once
    /// (idempotent; all or nothing).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad id or batch size; 401.
    pub async fn add_favorites<S: AsRef<str>>(&self, track_ids: &[S]) -> Result<MainResponse> {
        let ids = batch(track_ids)?;
        self.authed(Method::POST, "/user/track/favorite", move |r| r.query(&[("track_id", &ids)])).await
    }

    /// `DELETE /user/track/favorite?track_id=…`: removes 1–50 favorites
    /// (idempotent; all or nothing).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad id or batch size; 401.
    pub async fn remove_favorites<S: AsRef<str>>(&self, track_ids: &[S]) -> Result<MainResponse> {
        let ids = batch(track_ids)?;
        self.authed(Method::DELETE, "/user/track/favorite", move |r| r.query(&[("track_id", &ids)])).await
    }

    /// `GET /user/track/favorite`: one page of favorites, newest first.
    ///
    /// # Errors
    /// 401; 400 for a bad limit or cursor.
    pub async fn list_favorites(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<FavoriteListResponse> {
        let query = page_query(limit, cursor);
        self.authed(Method::GET, "/user/track/favorite", move |r| r.query(&query)).await
    }

    /// Every favorite, newest first, following cursors.
    pub fn favorites(&self, page_size: u32) -> impl Stream<Item = Result<FavoriteTrack>> + '_ {
        self.paged(page_size, |client, limit, cursor| async move {
            let page = client.list_favorites(Some(limit), cursor.as_deref()).await?;
            Ok((page.tracks, page.next_cursor))
        })
    }

    /// `GET /user/track/favorite/contains`: for each of 1–50 tracks, in order,
    /// whether it is a favorite.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad id or batch size; 401.
    pub async fn contains<S: AsRef<str>>(&self, track_ids: &[S]) -> Result<Vec<bool>> {
        let ids = batch(track_ids)?;
        let reply: ContainsResponse =
            self.authed(Method::GET, "/user/track/favorite/contains", move |r| r.query(&[("track_id", &ids)])).await?;
        Ok(reply.contains)
    }

    /// `GET /healthz`.
    ///
    /// # Errors
    /// A transport error when the server is down.
    pub async fn health(&self) -> Result<MainResponse> {
        self.send(self.http.get(self.url("/healthz"))).await
    }

    /// `GET /readyz`.
    ///
    /// # Errors
    /// 503 when the server cannot reach its database.
    pub async fn ready(&self) -> Result<MainResponse> {
        self.send(self.http.get(self.url("/readyz"))).await
    }

    /// `GET /.well-known/jwks.json`: the public keys that verify tokens
    /// (EdDSA deployments).
    ///
    /// # Errors
    /// 404 when tokens are signed with HS256.
    pub async fn jwks(&self) -> Result<serde_json::Value> {
        self.send(self.http.get(self.url("/.well-known/jwks.json"))).await
    }

    /// `GET /openapi.json`.
    ///
    /// # Errors
    /// A transport error when the server is down.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.send(self.http.get(self.url("/openapi.json"))).await
    }

    /// Sends an authenticated request; on a 401, refreshes once (shared with
    /// concurrent callers) and retries.
    async fn authed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<T> {
        let (token, generation) = self.session.access.read().await.clone();
        let request = |token: Option<&str>| {
            let r = build(self.http.request(method.clone(), self.url(path)));
            match token {
                Some(t) => r.bearer_auth(t),
                None => r,
            }
        };
        let response = request(token.as_deref()).send().await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return decode(response).await;
        }
        let first = decode::<T>(response).await;
        if first.as_ref().is_err_and(|e| e.code().is_some()) {
            // A 401 with a code is not about the token (`reauth_required`:
            // a new token would be no more recent a sign-in; `invalid_code`).
            return first;
        }
        match self.refresh_after(generation).await {
            Some(token) => decode(request(Some(&token)).send().await?).await,
            None => first,
        }
    }

    /// Refreshes unless another caller already did since `seen_generation`;
    /// returns the token to retry with, or `None` when refreshing failed.
    async fn refresh_after(&self, seen_generation: u64) -> Option<String> {
        let _turn = self.session.refreshing.lock().await;
        let (token, generation) = self.session.access.read().await.clone();
        if generation != seen_generation {
            return token;
        }
        self.refresh().await.ok().map(|r| r.token)
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        decode(request.send().await?).await
    }

    fn paged<'a, T, F, Fut>(&'a self, page_size: u32, fetch: F) -> impl Stream<Item = Result<T>> + 'a
    where
        T: 'a,
        F: Fn(&'a Client, u32, Option<String>) -> Fut + Clone + 'a,
        Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>)>> + 'a,
    {
        use futures_util::StreamExt as _;
        // State: the cursor to fetch next, or `None` once the last page came.
        let pages = futures_util::stream::try_unfold(Some(None), move |cursor: Option<Option<String>>| {
            let fetch = fetch.clone();
            async move {
                let Some(cursor) = cursor else { return Ok(None) };
                let (items, next) = fetch(self, page_size, cursor).await?;
                Ok(Some((items, next.map(Some))))
            }
        });
        pages
            .map(|page: Result<Vec<T>>| match page {
                Ok(items) => futures_util::stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures_util::stream::iter(vec![Err(e)]),
            })
            .flatten()
    }
}

/// Turns every response into the typed body or one [`Error`].
async fn decode<T: DeserializeOwned>(response: Response) -> Result<T> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            status,
            body: excerpt(&bytes),
            source,
        });
    }
    if let Ok(body) = serde_json::from_slice::<OAuthErrorResponse>(&bytes) {
        return Err(Error::Grant { status, error: body.error, message: body.message });
    }
    match serde_json::from_slice::<MainResponse>(&bytes) {
        Ok(body) => Err(Error::Api { status, message: body.message, code: body.code }),
        Err(source) => Err(Error::Decode { status, body: excerpt(&bytes), source }),
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned()
}

fn page_query(limit: Option<u32>, cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = cursor {
        query.push(("cursor", cursor.to_owned()));
    }
    query
}

/// Checks the batch as the server will (`TrackBatch`), and joins it for `?track_id=`.
fn batch<S: AsRef<str>>(track_ids: &[S]) -> Result<String> {
    let ids = track_ids.iter().map(|id| TrackId::parse(id.as_ref())).collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = TrackBatch::new(ids)?;
    Ok(batch.iter().map(TrackId::as_str).collect::<Vec<_>>().join(","))
}
