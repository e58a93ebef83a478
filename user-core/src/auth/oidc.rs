//! Signing in with another provider: the client side of OpenID Connect
//! (discovery, JWKS, authorization code with PKCE S256, ID token checks)
//! and GitHub's plain OAuth 2.0.
//!
//! Written here rather than taken from `openidconnect`: the part a relying
//! party needs is a few hundred lines over `jsonwebtoken` and `reqwest`
//! (both in the tree already), while the crate brings its own `oauth2`
//! stack and, more to the point, checks `exp` against the system clock, so
//! the service's clock could not decide. Each check below names the line of
//! OpenID Connect Core 1.0 §3.1.3.7 it implements.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::sync::RwLock;

use crate::domain::Email;

/// How much the provider's clock and ours may disagree.
const SKEW: TimeDelta = TimeDelta::seconds(60);
/// The oldest ID token accepted (`iat`): a code flow's is seconds old; a
/// native app's a few minutes at most.
const MAX_TOKEN_AGE: TimeDelta = TimeDelta::minutes(10);
/// How often an unknown `kid` may make the JWKS be fetched again (key rotation).
const JWKS_REFRESH_AT_MOST_EVERY: TimeDelta = TimeDelta::seconds(60);
/// How long fetched keys are trusted without asking again.
const JWKS_MAX_AGE: TimeDelta = TimeDelta::hours(1);

/// How the service proves itself to the provider's token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// A client secret (`client_secret_post`).
    Secret(String),
    /// Sign in with Apple: a short ES256 JWT the service signs with its key
    /// (`_TEAM_ID`, `_KEY_ID`, `_PRIVATE_KEY_FILE`) as the client secret.
    AppleKey {
        /// The Apple developer team id (the JWT's `iss`).
        team_id: String,
        /// The key's id (the JWT header's `kid`).
        key_id: String,
        /// The `.p8` key, PEM (PKCS#8, P-256).
        private_key_pem: String,
    },
    /// A public client: PKCE alone.
    None,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::Secret(_) => "Secret([redacted])",
            ClientAuth::AppleKey { .. } => "AppleKey([redacted])",
            ClientAuth::None => "None",
        })
    }
}

/// Which protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect: discovery, ID tokens.
    OpenIdConnect,
    /// GitHub's OAuth 2.0 (no ID token: the user and e-mail APIs say who).
    GitHub,
}

/// One configured provider (`USER_OIDC_<NAME>_*`).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The name in routes and settings: `google`, `apple`, `example`, …
    pub name: String,
    /// The protocol.
    pub kind: ProviderKind,
    /// The issuer: discovery must name exactly this (GitHub: its web origin).
    pub issuer: String,
    /// The client id the provider gave the service.
    pub client_id: String,
    /// How the service authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// Scopes asked for (`openid email profile` by default).
    pub scopes: Vec<String>,
    /// Where a sign-in may return to (`redirect_to`), exactly.
    pub allowed_redirects: Vec<String>,
    /// Whether the provider's word that an address is verified is believed.
    pub trust_email: bool,
}

impl ProviderConfig {
    /// A provider named `name` with the contract's defaults: the issuer of
    /// a known name (google, apple, github; microsoft needs its tenant's),
    /// `openid email profile` (GitHub: `read:user user:email`; Apple:
    /// `openid email name`), and the trusted-address default (true for
    /// google, apple, github).
    pub fn preset(name: &str) -> Self {
        let (kind, issuer, scopes): (_, &str, &[&str]) = match name {
            "google" => (ProviderKind::OpenIdConnect, "https://accounts.google.com", &["openid", "email", "profile"]),
            "apple" => (ProviderKind::OpenIdConnect, "https://appleid.apple.com", &["openid", "email", "name"]),
            "github" => (ProviderKind::GitHub, "https://github.com", &["read:user", "user:email"]),
            _ => (ProviderKind::OpenIdConnect, "", &["openid", "email", "profile"]),
        };
        Self {
            name: name.to_owned(),
            kind,
            issuer: issuer.to_owned(),
            client_id: String::new(),
            client_auth: ClientAuth::None,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            allowed_redirects: Vec::new(),
            trust_email: matches!(name, "google" | "apple" | "github"),
        }
    }

    /// Whether this is Sign in with Apple (its callback is a form POST; its
    /// name comes once, beside the code).
    pub fn is_apple(&self) -> bool {
        self.issuer == "https://appleid.apple.com" || matches!(self.client_auth, ClientAuth::AppleKey { .. })
    }
}

/// Why talking to a provider failed. Each is `provider_error` to the
/// browser; the detail goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered nonsense.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider's discovery document names another issuer.
    #[error("discovery names issuer {found:?}, not the configured {configured:?}")]
    IssuerMismatch {
        /// What the document said.
        found: String,
        /// What is configured.
        configured: String,
    },
    /// The ID token (or the provider's answer) failed a check.
    #[error("the ID token is refused: {0}")]
    InvalidToken(String),
    /// The service's own Apple key cannot sign.
    #[error("the Apple client secret cannot be made: {0}")]
    ClientSecret(String),
}

/// Who the provider says signed in: only what its signed ID token (or, for
/// GitHub, its API over TLS) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The issuer.
    pub issuer: String,
    /// The provider's id of the person.
    pub subject: String,
    /// The address the provider named, lower-cased.
    pub email: Option<Email>,
    /// Whether the provider said it verified exactly that address.
    pub email_verified: bool,
    /// A name to start a username from (`preferred_username`, GitHub's login).
    pub preferred_username: Option<String>,
}

/// A sign-in's secrets, made at its start and kept server side with its
/// state (see [`crate::store::Ceremony`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderState {
    /// The configured provider name.
    pub provider: String,
    /// `login`, `link` or `reauth`.
    pub mode: String,
    /// The ID token's `nonce` must be this.
    pub nonce: String,
    /// PKCE: the verifier of the challenge sent.
    pub verifier: String,
    /// Where the browser goes afterwards (an allowed entry, never the URL's).
    pub redirect_to: String,
    /// SHA-256 (hex) of the browser's state cookie: the state works only in
    /// the browser that started it.
    pub browser: String,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

#[derive(Debug)]
struct Endpoints {
    authorization: String,
    token: String,
    jwks: String,
    algorithms: Vec<Algorithm>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Option<JwkSet>,
    fetched_at: Option<DateTime<Utc>>,
}

/// A configured provider with what was learned of it: its endpoints
/// (discovered once, retried while unreachable) and its keys (cached,
/// fetched again for an unknown `kid`, at most once a minute).
#[derive(Debug)]
pub struct Provider {
    config: ProviderConfig,
    http: reqwest::Client,
    endpoints: RwLock<Option<Arc<Endpoints>>>,
    keys: RwLock<KeyCache>,
}

/// The random strings of one sign-in: state, nonce and PKCE verifier.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// PKCE S256: the challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

impl Provider {
    /// A provider over `http` (no redirects followed).
    pub fn new(config: ProviderConfig, http: reqwest::Client) -> Self {
        Self { config, http, endpoints: RwLock::new(None), keys: RwLock::new(KeyCache::default()) }
    }

    /// Its configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Learns the provider's endpoints now (at start, so a misconfigured
    /// issuer shows at once); a failure leaves it to be retried at the
    /// next sign-in.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`], [`ProviderError::IssuerMismatch`].
    pub async fn discover(&self) -> Result<(), ProviderError> {
        self.endpoints().await.map(|_| ())
    }

    async fn endpoints(&self) -> Result<Arc<Endpoints>, ProviderError> {
        if let Some(known) = self.endpoints.read().await.clone() {
            return Ok(known);
        }
        let endpoints = Arc::new(match self.config.kind {
            ProviderKind::GitHub => Endpoints {
                authorization: format!("{}/login/oauth/authorize", self.config.issuer),
                token: format!("{}/login/oauth/access_token", self.config.issuer),
                jwks: String::new(),
                algorithms: Vec::new(),
            },
            ProviderKind::OpenIdConnect => {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
                let found: Discovery = self.get_json(&url).await?;
                // §4.3 of Discovery: the issuer must be exactly the one asked.
                if found.issuer != self.config.issuer {
                    return Err(ProviderError::IssuerMismatch {
                        found: found.issuer,
                        configured: self.config.issuer.clone(),
                    });
                }
                let offered = if found.id_token_signing_alg_values_supported.is_empty() {
                    vec!["RS256".to_owned()]
                } else {
                    found.id_token_signing_alg_values_supported
                };
                let algorithms: Vec<Algorithm> = offered
                    .iter()
                    .filter_map(|a| match a.as_str() {
                        "RS256" => Some(Algorithm::RS256),
                        "ES256" => Some(Algorithm::ES256),
                        "EdDSA" => Some(Algorithm::EdDSA),
                        _ => None,
                    })
                    .collect();
                if algorithms.is_empty() {
                    return Err(ProviderError::Unavailable(format!("no signing algorithm in common: {offered:?}")));
                }
                Endpoints {
                    authorization: found.authorization_endpoint,
                    token: found.token_endpoint,
                    jwks: found.jwks_uri,
                    algorithms,
                }
            }
        });
        *self.endpoints.write().await = Some(endpoints.clone());
        Ok(endpoints)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ProviderError> {
        let unavailable = |e: reqwest::Error| ProviderError::Unavailable(format!("{url}: {e}"));
        let response = self.http.get(url).header("accept", "application/json").send().await.map_err(unavailable)?;
        let response = response.error_for_status().map_err(unavailable)?;
        response.json().await.map_err(unavailable)
    }

    /// Where to send the browser: the provider's authorization endpoint with
    /// `state`, `nonce` and the PKCE S256 challenge of `verifier`, coming
    /// back to `callback`.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] while the provider cannot be discovered.
    pub async fn authorization_url(
        &self,
        callback: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
        prompt_login: bool,
    ) -> Result<String, ProviderError> {
        let endpoints = self.endpoints().await?;
        let challenge = pkce_challenge(verifier);
        let scope = self.config.scopes.join(" ");
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.config.client_id),
            ("redirect_uri", callback),
            ("scope", &scope),
            ("state", state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if self.config.kind == ProviderKind::OpenIdConnect {
            params.push(("nonce", nonce));
        }
        if self.config.is_apple() {
            // Apple sends the name and address only by a form POST.
            params.push(("response_mode", "form_post"));
        }
        if prompt_login {
            params.push(("prompt", "login"));
            params.push(("max_age", "0"));
        }
        let mut url = reqwest::Url::parse(&endpoints.authorization)
            .map_err(|e| ProviderError::Unavailable(format!("authorization endpoint: {e}")))?;
        url.query_pairs_mut().extend_pairs(params);
        Ok(url.into())
    }

    /// Exchanges `code` (with the PKCE `verifier`) and says who signed in:
    /// an OpenID provider's ID token checked against `nonce` at `now`; for
    /// GitHub, its user and verified primary address.
    ///
    /// # Errors
    /// [`ProviderError`].
    pub async fn exchange(
        &self,
        code: &str,
        callback: &str,
        verifier: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<ProviderIdentity, ProviderError> {
        let endpoints = self.endpoints().await?;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", callback.into()),
            ("client_id", self.config.client_id.clone()),
            ("code_verifier", verifier.into()),
        ];
        if let Some(secret) = self.client_secret(now)? {
            form.push(("client_secret", secret));
        }
        let unavailable = |e: reqwest::Error| ProviderError::Unavailable(format!("token endpoint: {e}"));
        let response = self
            .http
            .post(&endpoints.token)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(unavailable)?;
        if !status.is_success() || body.get("error").is_some() {
            return Err(ProviderError::InvalidToken(format!("token endpoint answered {status}: {body}")));
        }
        match self.config.kind {
            ProviderKind::OpenIdConnect => {
                let id_token = body["id_token"]
                    .as_str()
                    .ok_or_else(|| ProviderError::InvalidToken("no id_token in the token answer".into()))?;
                self.verify_id_token(id_token, nonce, now).await
            }
            ProviderKind::GitHub => {
                let access = body["access_token"]
                    .as_str()
                    .ok_or_else(|| ProviderError::InvalidToken("no access_token in the token answer".into()))?;
                self.github_identity(access).await
            }
        }
    }

    /// The client secret to send, if any: the configured one, or Apple's
    /// signed JWT (five minutes long).
    ///
    /// # Errors
    /// [`ProviderError::ClientSecret`] when the Apple key cannot sign.
    pub fn client_secret(&self, now: DateTime<Utc>) -> Result<Option<String>, ProviderError> {
        match &self.config.client_auth {
            ClientAuth::Secret(secret) => Ok(Some(secret.clone())),
            ClientAuth::None => Ok(None),
            ClientAuth::AppleKey { team_id, key_id, private_key_pem } => {
                #[derive(Serialize)]
                struct AppleSecret<'a> {
                    iss: &'a str,
                    iat: i64,
                    exp: i64,
                    aud: &'a str,
                    sub: &'a str,
                }
                let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes())
                    .map_err(|e| ProviderError::ClientSecret(e.to_string()))?;
                let header = Header { kid: Some(key_id.clone()), ..Header::new(Algorithm::ES256) };
                let claims = AppleSecret {
                    iss: team_id,
                    iat: now.timestamp(),
                    exp: (now + TimeDelta::minutes(5)).timestamp(),
                    aud: "https://appleid.apple.com",
                    sub: &self.config.client_id,
                };
                jsonwebtoken::encode(&header, &claims, &key)
                    .map(Some)
                    .map_err(|e| ProviderError::ClientSecret(e.to_string()))
            }
        }
    }

    /// Checks an ID token as OpenID Connect Core §3.1.3.7 says, at `now`,
    /// for `nonce`; who it names.
    ///
    /// # Errors
    /// [`ProviderError::InvalidToken`] naming the failed check.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<ProviderIdentity, ProviderError> {
        let refuse = |why: String| ProviderError::InvalidToken(why);
        let endpoints = self.endpoints().await?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(format!("header: {e}")))?;
        // 6-7: the algorithm is one the provider declared and we accept.
        if !endpoints.algorithms.contains(&header.alg) {
            return Err(refuse(format!("algorithm {:?} not accepted", header.alg)));
        }
        let key = self.key_for(&endpoints, header.kid.as_deref(), header.alg, now).await?;
        let mut validation = Validation::new(header.alg);
        // 2: the issuer; 3: the audience contains our client id.
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "iat"]);
        // 9-10: exp and iat against the service's clock, below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
            .map_err(|e| refuse(format!("signature or claims: {e}")))?;
        let claims = data.claims;
        // 4-5: several audiences need an authorized party, and it must be us.
        if let Some(azp) = &claims.azp
            && *azp != self.config.client_id
        {
            return Err(refuse(format!("azp {azp:?} is not this client")));
        }
        if claims.aud.len() > 1 && claims.azp.is_none() {
            return Err(refuse("several audiences and no azp".into()));
        }
        let at = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
        if at(claims.exp) + SKEW <= now {
            return Err(refuse("expired".into()));
        }
        let issued = at(claims.iat);
        if issued > now + SKEW || issued < now - MAX_TOKEN_AGE {
            return Err(refuse(format!("issued at {issued}, too far from now")));
        }
        // 11: the nonce this sign-in sent.
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(refuse("nonce does not match this sign-in".into()));
        }
        // The address and its verified flag come only from this signed
        // token, together (a flag about another address is worthless).
        let email = claims.email.as_deref().and_then(|e| Email::parse(e).ok());
        let email_verified = email.is_some() && claims.email_verified.is_some_and(|v| v.0);
        Ok(ProviderIdentity {
            issuer: self.config.issuer.clone(),
            subject: claims.sub,
            email,
            email_verified,
            preferred_username: claims.preferred_username.or(claims.nickname).or(claims.given_name),
        })
    }

    /// The key `kid` of the provider's JWKS, fetching the set again when
    /// it is not known (keys rotate) but at most once a minute.
    async fn key_for(
        &self,
        endpoints: &Endpoints,
        kid: Option<&str>,
        alg: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<DecodingKey, ProviderError> {
        let find = |set: &JwkSet| -> Option<DecodingKey> {
            let jwk = match kid {
                Some(kid) => set.find(kid),
                // No kid: only a set of one key is unambiguous.
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            }?;
            DecodingKey::from_jwk(jwk).ok()
        };
        {
            let cache = self.keys.read().await;
            let fresh = cache.fetched_at.is_some_and(|at| now - at < JWKS_MAX_AGE);
            if let (true, Some(key)) = (fresh, cache.keys.as_ref().and_then(find)) {
                return Ok(key);
            }
        }
        let mut cache = self.keys.write().await;
        let may_fetch = cache.fetched_at.is_none_or(|at| now - at >= JWKS_REFRESH_AT_MOST_EVERY)
            || cache.keys.is_none()
            || cache.fetched_at.is_some_and(|at| now - at >= JWKS_MAX_AGE);
        if may_fetch {
            let set: JwkSet = self.get_json(&endpoints.jwks).await?;
            *cache = KeyCache { keys: Some(set), fetched_at: Some(now) };
        }
        cache
            .keys
            .as_ref()
            .and_then(find)
            .ok_or_else(|| ProviderError::InvalidToken(format!("no {alg:?} key {kid:?} in the provider's JWKS")))
    }

    /// GitHub: who the access token belongs to (`/user`) and its primary
    /// address, verified (`/user/emails`).
    async fn github_identity(&self, access_token: &str) -> Result<ProviderIdentity, ProviderError> {
        #[derive(Deserialize)]
        struct GitHubUser {
            id: u64,
            login: String,
        }
        #[derive(Deserialize)]
        struct GitHubEmail {
            email: String,
            primary: bool,
            verified: bool,
        }
        let api = if self.config.issuer == "https://github.com" {
            "https://api.github.com".to_owned()
        } else {
            // GitHub Enterprise Server (and test doubles) serve the API here.
            format!("{}/api/v3", self.config.issuer)
        };
        let api = api.as_str();
        let get = |path: &'static str| async move {
            let unavailable = |e: reqwest::Error| ProviderError::Unavailable(format!("GitHub API {path}: {e}"));
            self.http
                .get(format!("{api}{path}"))
                .bearer_auth(access_token)
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "user-service")
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(unavailable)?
                .bytes()
                .await
                .map_err(unavailable)
        };
        let invalid = |e: serde_json::Error| ProviderError::Unavailable(format!("GitHub API: {e}"));
        let user: GitHubUser = serde_json::from_slice(&get("/user").await?).map_err(invalid)?;
        let emails: Vec<GitHubEmail> = serde_json::from_slice(&get("/user/emails").await?).map_err(invalid)?;
        let primary = emails.into_iter().find(|e| e.primary && e.verified).and_then(|e| Email::parse(&e.email).ok());
        Ok(ProviderIdentity {
            issuer: self.config.issuer.clone(),
            subject: user.id.to_string(),
            email_verified: primary.is_some(),
            email: primary,
            preferred_username: Some(user.login),
        })
    }
}

/// The ID token claims read.
#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(deserialize_with = "one_or_many")]
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Flag>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
}

/// A boolean claim, which Apple sends as the string `"true"`.
#[derive(Debug)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(Flag(b)),
            serde_json::Value::String(s) => Ok(Flag(s == "true")),
            _ => Ok(Flag(false)),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// The configured providers by name.
#[derive(Debug, Default, Clone)]
pub struct Providers(HashMap<String, Arc<Provider>>);

impl Providers {
    /// The providers of `configs`, over one HTTP client (`timeout` per
    /// request, no redirects).
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the HTTP client cannot be built.
    pub fn new(configs: Vec<ProviderConfig>, timeout: Duration) -> crate::Result<Self> {
        if configs.is_empty() {
            return Ok(Self::default());
        }
        let http = crate::tasks::sink::http_client(timeout, &[])?;
        Ok(Self(configs.into_iter().map(|c| (c.name.clone(), Arc::new(Provider::new(c, http.clone())))).collect()))
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.0.get(name)
    }

    /// Every provider.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    const ISSUER: &str = "https://id.example";

    /// A signing key and its JWK (`kid`).
    fn key(kid: &str) -> (EncodingKey, jsonwebtoken::jwk::Jwk) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwk = serde_json::from_value(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA"}),
        )
        .unwrap();
        (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
    }

    /// A provider that knows its endpoints and keys already (no network).
    async fn provider(jwks: Vec<jsonwebtoken::jwk::Jwk>, now: DateTime<Utc>) -> Provider {
        let config = ProviderConfig {
            issuer: ISSUER.into(),
            client_id: "our-client".into(),
            ..ProviderConfig::preset("example")
        };
        let p = Provider::new(config, crate::tasks::sink::http_client(Duration::from_secs(5), &[]).unwrap());
        *p.endpoints.write().await = Some(Arc::new(Endpoints {
            authorization: format!("{ISSUER}/authorize"),
            token: format!("{ISSUER}/token"),
            jwks: "http://127.0.0.1:9/unreachable".into(),
            algorithms: vec![Algorithm::EdDSA, Algorithm::RS256],
        }));
        *p.keys.write().await = KeyCache { keys: Some(JwkSet { keys: jwks }), fetched_at: Some(now) };
        p
    }

    fn token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let header = Header { kid: Some(kid.into()), ..Header::new(Algorithm::EdDSA) };
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(now: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({
            "iss": ISSUER, "sub": "person-1", "aud": "our-client", "exp": now.timestamp() + 600,
            "iat": now.timestamp(), "nonce": "n-1", "email": "Person@Example.com", "email_verified": true,
            "preferred_username": "person",
        })
    }

    fn with(mut base: serde_json::Value, changes: serde_json::Value) -> serde_json::Value {
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    #[tokio::test]
    async fn a_good_id_token_names_the_person_and_their_verified_address() {
        let now = Utc::now();
        let (k, jwk) = key("k1");
        let p = provider(vec![jwk], now).await;
        let who = p.verify_id_token(&token(&k, "k1", claims(now)), "n-1", now).await.unwrap();
        assert_eq!((who.issuer.as_str(), who.subject.as_str()), (ISSUER, "person-1"));
        assert_eq!(who.email.unwrap().as_str(), "person@example.com");
        assert!(who.email_verified);
        assert_eq!(who.preferred_username.as_deref(), Some("person"));
        // Apple's string flag; a flag without an address verifies nothing.
        let apple = with(claims(now), serde_json::json!({"email_verified": "true"}));
        assert!(p.verify_id_token(&token(&k, "k1", apple), "n-1", now).await.unwrap().email_verified);
        let no_address = with(claims(now), serde_json::json!({"email": null}));
        let who = p.verify_id_token(&token(&k, "k1", no_address), "n-1", now).await.unwrap();
        assert!(who.email.is_none() && !who.email_verified);
        let unverified = with(claims(now), serde_json::json!({"email_verified": false}));
        assert!(!p.verify_id_token(&token(&k, "k1", unverified), "n-1", now).await.unwrap().email_verified);
        // Several audiences with us as the authorized party.
        let shared = with(claims(now), serde_json::json!({"aud": ["our-client", "other"], "azp": "our-client"}));
        assert!(p.verify_id_token(&token(&k, "k1", shared), "n-1", now).await.is_ok());
    }

    #[tokio::test]
    async fn every_failed_check_refuses_the_token() {
        let now = Utc::now();
        let (k, jwk) = key("k1");
        let (stranger, _) = key("k1");
        let p = provider(vec![jwk], now).await;
        let refused = |why: &str, t: String, nonce: &'static str| {
            let p = &p;
            let why = why.to_owned();
            async move {
                let outcome = p.verify_id_token(&t, nonce, now).await;
                assert!(matches!(outcome, Err(ProviderError::InvalidToken(_))), "{why}: {outcome:?}");
            }
        };
        refused("wrong nonce", token(&k, "k1", claims(now)), "n-2").await;
        let no_nonce = with(claims(now), serde_json::json!({"nonce": null}));
        refused("no nonce", token(&k, "k1", no_nonce), "n-1").await;
        refused("unknown key", token(&stranger, "k1", claims(now)), "n-1").await;
        refused("unknown kid", token(&k, "k9", claims(now)), "n-1").await;
        let expired = with(claims(now), serde_json::json!({"exp": now.timestamp() - 120}));
        refused("expired", token(&k, "k1", expired), "n-1").await;
        let future = with(claims(now), serde_json::json!({"iat": now.timestamp() + 600}));
        refused("issued in the future", token(&k, "k1", future), "n-1").await;
        let old = with(claims(now), serde_json::json!({"iat": now.timestamp() - 3600, "exp": now.timestamp() + 60}));
        refused("issued an hour ago", token(&k, "k1", old), "n-1").await;
        let foreign = with(claims(now), serde_json::json!({"aud": "another-client"}));
        refused("foreign aud", token(&k, "k1", foreign), "n-1").await;
        let wrong_iss = with(claims(now), serde_json::json!({"iss": "https://evil.example"}));
        refused("foreign iss", token(&k, "k1", wrong_iss), "n-1").await;
        let azp = with(claims(now), serde_json::json!({"azp": "another-client"}));
        refused("foreign azp", token(&k, "k1", azp), "n-1").await;
        let no_azp = with(claims(now), serde_json::json!({"aud": ["our-client", "other"]}));
        refused("several audiences, no azp", token(&k, "k1", no_azp), "n-1").await;
        let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(now), &EncodingKey::from_secret(b"s"))
            .unwrap();
        refused("an algorithm not offered", hs, "n-1").await;
        refused("not a JWT", "nonsense".into(), "n-1").await;
    }

    #[tokio::test]
    async fn the_authorization_url_carries_state_nonce_and_an_s256_challenge() {
        let now = Utc::now();
        let p = provider(Vec::new(), now).await;
        let url = p.authorization_url("https://svc.example/auth/example/callback", "st", "no", "ver", false).await;
        let url = reqwest::Url::parse(&url.unwrap()).unwrap();
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!((q["state"].as_str(), q["nonce"].as_str()), ("st", "no"));
        assert_eq!((q["code_challenge"].clone(), q["code_challenge_method"].as_str()), (pkce_challenge("ver"), "S256"));
        assert_eq!(q["redirect_uri"], "https://svc.example/auth/example/callback");
        assert_eq!(q["scope"], "openid email profile");
        assert!(!q.contains_key("prompt"));
        // RFC 7636 appendix B's example.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_apple_client_secret_is_an_es256_jwt_its_public_key_verifies() {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let config = ProviderConfig {
            client_id: "com.example.music".into(),
            client_auth: ClientAuth::AppleKey {
                team_id: "TEAM123".into(),
                key_id: "KEY456".into(),
                private_key_pem: pem,
            },
            ..ProviderConfig::preset("apple")
        };
        let now = Utc::now();
        let secret = Provider::new(config, crate::tasks::sink::http_client(Duration::from_secs(5), &[]).unwrap())
            .client_secret(now)
            .unwrap()
            .unwrap();
        let header = jsonwebtoken::decode_header(&secret).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::ES256, Some("KEY456")));
        let public = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let key = DecodingKey::from_ec_components(&b64(&public[1..33]), &b64(&public[33..65])).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://appleid.apple.com"]);
        validation.set_issuer(&["TEAM123"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&secret, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "com.example.music");
        let lifetime = data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap();
        assert!(lifetime > 0 && lifetime <= 15_777_000, "Apple accepts at most six months: {lifetime}");
    }
}
