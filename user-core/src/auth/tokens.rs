//! JWT access and refresh tokens: issue and verify, HS256 or EdDSA, with a key
//! set that supports rotation.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::domain::{Amr, Role, SessionId, UserId, ValidationError};
use crate::error::{Error, Result, UnauthorizedReason};

/// Tokens longer than this are refused before any parsing or crypto.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;

/// Which of the two token kinds a JWT is (its `typ` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived, authorises API calls.
    Access,
    /// Long-lived, only exchanges itself for a new pair at `/user/refresh`.
    Refresh,
}

/// The claims of a verified access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    /// The session (login) the token belongs to.
    pub sid: SessionId,
    /// The user's role when the token was issued.
    pub role: Role,
    /// How the session signed in (RFC 8176), when the token was issued;
    /// empty in tokens issued before v1.2.
    #[serde(default)]
    pub amr: Amr,
    /// Always [`TokenType::Access`].
    pub typ: TokenType,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Unique token id.
    pub jti: Uuid,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

impl AccessClaims {
    /// Passes only for the `admin` role, as read from the token.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for any other role.
    pub fn require_admin(&self) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::User | Role::Guest => Err(Error::Forbidden(crate::error::ForbiddenReason::AdminOnly)),
        }
    }
}

/// The claims of a verified refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// The user.
    pub sub: UserId,
    /// The session the token belongs to.
    pub sid: SessionId,
    /// Always [`TokenType::Refresh`].
    pub typ: TokenType,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Unique token id; the session remembers the current one.
    pub jti: Uuid,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// Either kind of claims, decoded once; `role` is present in access tokens only.
#[derive(Deserialize)]
struct AnyClaims {
    sub: UserId,
    sid: SessionId,
    role: Option<Role>,
    #[serde(default)]
    amr: Amr,
    typ: TokenType,
    iat: i64,
    exp: i64,
    jti: Uuid,
    iss: String,
    aud: String,
}

/// A freshly issued access and refresh token pair.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The access JWT.
    pub access: String,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// The refresh JWT.
    pub refresh: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
    /// When the session ends however often it is refreshed
    /// ([`TokenConfig::session_max_lifetime`] after its sign-in).
    pub session_expires_at: DateTime<Utc>,
    /// The session both belong to.
    pub session_id: SessionId,
    /// The user both belong to.
    pub user_id: UserId,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// Where signing keys come from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum SigningConfig {
    /// HS256 with a secret generated on first start and kept in the store, so
    /// restarts keep sessions valid and replicas on one database agree.
    #[default]
    GeneratedHs256,
    /// EdDSA (Ed25519) with a key generated on first start and kept in the store.
    GeneratedEd25519,
    /// HS256 with these secrets (each at least 32 bytes); the last signs, all verify.
    Hs256(Vec<Vec<u8>>),
    /// EdDSA with these PKCS#8 PEM private keys; the last signs, all verify.
    Ed25519Pem(Vec<String>),
}

impl std::fmt::Debug for SigningConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningConfig::GeneratedHs256 => "GeneratedHs256",
            SigningConfig::GeneratedEd25519 => "GeneratedEd25519",
            SigningConfig::Hs256(_) => "Hs256(***)",
            SigningConfig::Ed25519Pem(_) => "Ed25519Pem(***)",
        })
    }
}

/// The keys tokens are signed and verified with.
///
/// The newest key signs; every key in the set verifies, so a key can be
/// rotated by adding a new one and removing the old one after the longest
/// token lifetime. Tokens carry the key id (`kid`) in their header.
#[derive(Clone)]
pub struct KeySet {
    algorithm: Algorithm,
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    /// Public keys as JWKs; empty for HS256, whose keys are secret.
    public_jwks: Vec<Jwk>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// HS256 with these secrets; the last one signs.
    ///
    /// # Errors
    /// [`Error::Validation`] if the list is empty or a secret is shorter than 32 bytes.
    pub fn hs256<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Self> {
        let newest =
            secrets.last().ok_or_else(|| ValidationError::new("jwt_secret", "at least one secret is required"))?;
        let mut verifying = HashMap::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ValidationError::new("jwt_secret", "must be at least 32 bytes").into());
            }
            verifying.insert(secret_kid(secret), DecodingKey::from_secret(secret));
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            signing_kid: secret_kid(newest.as_ref()),
            signing: EncodingKey::from_secret(newest.as_ref()),
            verifying,
            public_jwks: Vec::new(),
        })
    }

    /// EdDSA with these 32-byte Ed25519 seeds (private keys); the last one signs.
    ///
    /// # Errors
    /// [`Error::Validation`] if the list is empty.
    pub fn ed25519_from_seeds(seeds: &[[u8; 32]]) -> Result<Self> {
        let keys: Vec<_> = seeds.iter().map(ed25519_dalek::SigningKey::from_bytes).collect();
        Self::ed25519(&keys)
    }

    /// EdDSA with these PKCS#8 PEM private keys (`-----BEGIN PRIVATE KEY-----`,
    /// as `openssl genpkey -algorithm ed25519` writes); the last one signs.
    ///
    /// # Errors
    /// [`Error::Validation`] if the list is empty or a key cannot be read.
    pub fn ed25519_from_pem<S: AsRef<str>>(pems: &[S]) -> Result<Self> {
        let keys = pems
            .iter()
            .map(|pem| {
                ed25519_dalek::SigningKey::from_pkcs8_pem(pem.as_ref())
                    .map_err(|_| ValidationError::new("jwt_ed25519_keys", "must be PKCS#8 PEM Ed25519 private keys"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::ed25519(&keys)
    }

    fn ed25519(keys: &[ed25519_dalek::SigningKey]) -> Result<Self> {
        let newest =
            keys.last().ok_or_else(|| ValidationError::new("jwt_ed25519_keys", "at least one key is required"))?;
        let mut verifying = HashMap::new();
        let mut public_jwks = Vec::new();
        for key in keys {
            let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
            let kid = ed25519_kid(&x);
            let public = DecodingKey::from_ed_components(&x).map_err(Error::internal)?;
            // jsonwebtoken writes the public JWK (kty OKP, crv, x, alg).
            let mut jwk = Jwk::from_decoding_key(&public, Some(Algorithm::EdDSA)).map_err(Error::internal)?;
            verifying.insert(kid.clone(), public);
            jwk.common.key_id = Some(kid);
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            public_jwks.push(jwk);
        }
        let der = newest.to_pkcs8_der().map_err(Error::internal)?;
        let x = URL_SAFE_NO_PAD.encode(newest.verifying_key().as_bytes());
        Ok(Self {
            algorithm: Algorithm::EdDSA,
            signing_kid: ed25519_kid(&x),
            signing: EncodingKey::from_ed_der(der.as_bytes()),
            verifying,
            public_jwks,
        })
    }

    /// The public keys as a JWKS document (`{"keys": [...]}`), or `None` for
    /// HS256, whose keys must stay secret.
    pub fn jwks(&self) -> Option<serde_json::Value> {
        (self.algorithm == Algorithm::EdDSA)
            .then(|| serde_json::to_value(JwkSet { keys: self.public_jwks.clone() }).unwrap_or_default())
    }

    /// The id of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }
}

/// A kid for a secret that does not reveal it: a SHA-256 prefix.
fn secret_kid(secret: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(secret)[..9])
}

/// The RFC 7638 JWK thumbprint of an Ed25519 public key.
fn ed25519_kid(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Lifetimes and identity of issued tokens. `Default` holds the production
/// values (the only place they are written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime: a session not refreshed for this long ends.
    pub refresh_ttl: Duration,
    /// A session ends this long after its sign-in, however often it is
    /// refreshed (default 90 days).
    pub session_max_lifetime: Duration,
    /// The `iss` claim written and required.
    pub issuer: String,
    /// The `aud` claim written and required.
    pub audience: String,
    /// Clock skew tolerated when checking `exp`.
    pub leeway: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            session_max_lifetime: Duration::from_secs(90 * 24 * 3600),
            issuer: "user-service".to_owned(),
            audience: "user-service".to_owned(),
            leeway: Duration::from_secs(5),
        }
    }
}

/// Issues and verifies tokens with one [`KeySet`].
///
/// The algorithm is pinned to the key set's; `typ`, `iss` and `aud` are always
/// checked, so a refresh token is never accepted as an access token nor the
/// reverse. Expiry is checked against the time the caller passes, so tests
/// control the clock.
#[derive(Clone, Debug)]
pub struct Tokens {
    keys: KeySet,
    config: TokenConfig,
    validation: Validation,
}

impl Tokens {
    /// Tokens signed with `keys`, shaped by `config`.
    pub fn new(keys: KeySet, config: TokenConfig) -> Self {
        let mut validation = Validation::new(keys.algorithm);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock in `decode`.
        validation.validate_exp = false;
        Self { keys, config, validation }
    }

    /// The key set (for publishing JWKS).
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The lifetimes and identity in use.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Signs an access token for `user` in session `sid`.
    ///
    /// # Errors
    /// [`Error::Internal`] if signing fails.
    pub fn issue_access(
        &self,
        user: UserId,
        sid: SessionId,
        role: Role,
        amr: Amr,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let exp = now + self.config.access_ttl;
        let claims = AccessClaims {
            sub: user,
            sid,
            role,
            amr,
            typ: TokenType::Access,
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti: Uuid::now_v7(),
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
        };
        Ok((self.sign(&claims)?, exp))
    }

    /// When a session signed in at `signed_in_at` ends, however often refreshed.
    pub fn session_end(&self, signed_in_at: DateTime<Utc>) -> DateTime<Utc> {
        signed_in_at + self.config.session_max_lifetime
    }

    /// Signs a refresh token with id `jti` for `user` in session `sid`.
    ///
    /// # Errors
    /// [`Error::Internal`] if signing fails.
    pub fn issue_refresh(
        &self,
        user: UserId,
        sid: SessionId,
        jti: Uuid,
        signed_in_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let exp = (now + self.config.refresh_ttl).min(self.session_end(signed_in_at));
        let claims = RefreshClaims {
            sub: user,
            sid,
            typ: TokenType::Refresh,
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
        };
        Ok((self.sign(&claims)?, exp))
    }

    /// Verifies an access token's signature, type, issuer, audience and expiry.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] with the reason.
    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims> {
        let c = self.decode(token, TokenType::Access, now)?;
        let role = c.role.ok_or(Error::Unauthorized(UnauthorizedReason::Malformed))?;
        Ok(AccessClaims {
            sub: c.sub,
            sid: c.sid,
            role,
            amr: c.amr,
            typ: c.typ,
            iat: c.iat,
            exp: c.exp,
            jti: c.jti,
            iss: c.iss,
            aud: c.aud,
        })
    }

    /// Verifies a refresh token's signature, type, issuer, audience and expiry.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] with the reason.
    pub fn verify_refresh(&self, token: &str, now: DateTime<Utc>) -> Result<RefreshClaims> {
        let c = self.decode(token, TokenType::Refresh, now)?;
        Ok(RefreshClaims {
            sub: c.sub,
            sid: c.sid,
            typ: c.typ,
            iat: c.iat,
            exp: c.exp,
            jti: c.jti,
            iss: c.iss,
            aud: c.aud,
        })
    }

    fn sign<C: Serialize>(&self, claims: &C) -> Result<String> {
        let mut header = Header::new(self.keys.algorithm);
        header.kid = Some(self.keys.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.keys.signing).map_err(Error::internal)
    }

    /// Checks the signature (one decode), then type and expiry against `now`.
    fn decode(&self, token: &str, expected: TokenType, now: DateTime<Utc>) -> Result<AnyClaims> {
        let unauthorized = Error::Unauthorized;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthorized(UnauthorizedReason::Malformed));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized(UnauthorizedReason::Malformed))?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.verifying.get(kid))
            .ok_or(unauthorized(UnauthorizedReason::Malformed))?;
        let claims = jsonwebtoken::decode::<AnyClaims>(token, key, &self.validation)
            .map_err(|_| unauthorized(UnauthorizedReason::Malformed))?
            .claims;
        if claims.typ != expected {
            return Err(unauthorized(UnauthorizedReason::WrongType));
        }
        if claims.exp + (self.config.leeway.as_secs() as i64) < now.timestamp() {
            return Err(unauthorized(UnauthorizedReason::Expired));
        }
        Ok(claims)
    }
}

/// A new random HS256 secret (32 bytes), straight from the operating system.
pub(crate) fn generate_secret() -> Vec<u8> {
    use rand::TryRngCore as _;
    let mut secret = vec![0u8; MIN_SECRET_BYTES];
    // A system without a working random source cannot run this service safely.
    rand::rngs::OsRng.try_fill_bytes(&mut secret).expect("the operating system's random source works");
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn hs() -> Tokens {
        Tokens::new(KeySet::hs256(&[[7u8; 32]]).unwrap(), TokenConfig::default())
    }

    fn ed() -> Tokens {
        Tokens::new(KeySet::ed25519_from_seeds(&[[9u8; 32]]).unwrap(), TokenConfig::default())
    }

    fn reason(e: Error) -> UnauthorizedReason {
        match e {
            Error::Unauthorized(r) => r,
            other => panic!("expected unauthorized, got {other:?}"),
        }
    }

    #[test]
    fn access_tokens_round_trip_with_every_claim_on_both_algorithms() {
        for tokens in [hs(), ed()] {
            let (user, sid) = (UserId::new(), SessionId::new());
            let (jwt, exp) = tokens.issue_access(user, sid, Role::Admin, Amr::PASSWORD, now()).unwrap();
            let claims = tokens.verify_access(&jwt, now()).unwrap();
            assert_eq!((claims.sub, claims.sid, claims.role, claims.typ), (user, sid, Role::Admin, TokenType::Access));
            assert_eq!((claims.iat, claims.exp), (now().timestamp(), exp.timestamp()));
            assert_eq!(claims.exp - claims.iat, 15 * 60);
            assert_eq!((claims.iss.as_str(), claims.aud.as_str()), ("user-service", "user-service"));
        }
    }

    #[test]
    fn a_refresh_token_is_never_an_access_token_nor_the_reverse() {
        let tokens = hs();
        let (refresh, _) = tokens.issue_refresh(UserId::new(), SessionId::new(), Uuid::now_v7(), now(), now()).unwrap();
        let (access, _) =
            tokens.issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        assert_eq!(reason(tokens.verify_access(&refresh, now()).unwrap_err()), UnauthorizedReason::WrongType);
        assert_eq!(reason(tokens.verify_refresh(&access, now()).unwrap_err()), UnauthorizedReason::WrongType);
        assert!(tokens.verify_refresh(&refresh, now()).is_ok());
    }

    #[test]
    fn expiry_is_checked_against_the_given_clock_with_a_small_leeway() {
        let tokens = hs();
        let (jwt, exp) =
            tokens.issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        assert!(tokens.verify_access(&jwt, exp + Duration::from_secs(5)).is_ok());
        let late = exp + Duration::from_secs(6);
        assert_eq!(reason(tokens.verify_access(&jwt, late).unwrap_err()), UnauthorizedReason::Expired);
    }

    #[test]
    fn tokens_from_another_key_issuer_audience_or_algorithm_are_malformed() {
        let (jwt, _) = hs().issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        let other_key = Tokens::new(KeySet::hs256(&[[8u8; 32]]).unwrap(), TokenConfig::default());
        let other_iss = Tokens::new(
            KeySet::hs256(&[[7u8; 32]]).unwrap(),
            TokenConfig { issuer: "x".into(), ..TokenConfig::default() },
        );
        let other_aud = Tokens::new(
            KeySet::hs256(&[[7u8; 32]]).unwrap(),
            TokenConfig { audience: "x".into(), ..TokenConfig::default() },
        );
        for verifier in [other_key, other_iss, other_aud, ed()] {
            assert_eq!(reason(verifier.verify_access(&jwt, now()).unwrap_err()), UnauthorizedReason::Malformed);
        }
    }

    #[test]
    fn garbage_unsigned_and_oversized_tokens_are_malformed() {
        let tokens = hs();
        let (jwt, _) = tokens.issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        parts[0] = &none_header;
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        let tampered = format!("{}x", jwt);
        for bad in ["", "abc", "a.b.c", &unsigned, &tampered, &"a".repeat(9000)] {
            assert_eq!(
                reason(tokens.verify_access(bad, now()).unwrap_err()),
                UnauthorizedReason::Malformed,
                "{bad:.40}"
            );
        }
    }

    #[test]
    fn a_rotated_key_set_verifies_old_tokens_and_signs_with_the_newest() {
        let old = Tokens::new(KeySet::hs256(&[[1u8; 32]]).unwrap(), TokenConfig::default());
        let rotated = Tokens::new(KeySet::hs256(&[[1u8; 32], [2u8; 32]]).unwrap(), TokenConfig::default());
        let (old_jwt, _) = old.issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        assert!(rotated.verify_access(&old_jwt, now()).is_ok());
        let (new_jwt, _) =
            rotated.issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        assert!(old.verify_access(&new_jwt, now()).is_err());
        assert_ne!(old.keys().signing_kid(), rotated.keys().signing_kid());
    }

    #[test]
    fn short_secrets_and_empty_key_sets_are_refused() {
        assert!(KeySet::hs256(&[[1u8; 31]]).is_err());
        assert!(KeySet::hs256::<&[u8]>(&[]).is_err());
        assert!(KeySet::ed25519_from_seeds(&[]).is_err());
        assert!(KeySet::ed25519_from_pem(&["not a pem"]).is_err());
    }

    #[test]
    fn jwks_publishes_ed25519_public_keys_only() {
        assert!(hs().keys().jwks().is_none());
        let jwks = ed().keys().jwks().unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
        assert_eq!(key["kid"].as_str(), Some(ed().keys().signing_kid()));
        assert_eq!(key.as_object().unwrap().len(), 6, "no private part: {key}");
        assert_eq!(key["use"].as_str(), Some("sig"));
        // `x` is the public key a verifier rebuilds, and it verifies our tokens.
        let public = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
        let (jwt, _) = ed().issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.validate_aud = false;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&jwt, &public, &validation).is_ok());
    }

    #[test]
    fn pem_keys_sign_like_their_seeds() {
        let seed = [9u8; 32];
        let pem = ed25519_dalek::SigningKey::from_bytes(&seed).to_pkcs8_pem(Default::default()).unwrap();
        let from_pem = Tokens::new(KeySet::ed25519_from_pem(&[pem.as_str()]).unwrap(), TokenConfig::default());
        let (jwt, _) =
            from_pem.issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now()).unwrap();
        assert!(ed().verify_access(&jwt, now()).is_ok());
    }
}
