//! Passkeys: the relying party's side of WebAuthn Level 3 — the options a
//! browser's `navigator.credentials.create/get` takes, and the checks of
//! §7.1 (registering a new credential) and §7.2 (verifying an assertion),
//! over ring's signature verification (ES256, EdDSA, RS256).
//!
//! Attestation is `none`: the service trusts no authenticator model, so an
//! attestation statement, whatever its format, is not evaluated; the
//! credential's public key comes from the authenticator data either way,
//! and every later sign-in proves possession of its private key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cbor::Cbor;
use crate::domain::ValidationError;
use crate::error::{Error, Result};

/// COSE algorithm identifiers (RFC 9053) the service accepts, in the order
/// offered: EdDSA, ES256, RS256.
const ALGORITHMS: [i64; 3] = [-8, -7, -257];

/// The longest credential id WebAuthn allows (§5.8.3).
const MAX_CREDENTIAL_ID: usize = 1023;

/// How long a browser shows its prompt (the ceremony itself lives as long as
/// its stored row).
const TIMEOUT_MS: u64 = 300_000;

/// Authenticator data flags (§6.1).
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const BACKUP_ELIGIBLE: u8 = 0x08;
const BACKED_UP: u8 = 0x10;
const ATTESTED_DATA: u8 = 0x40;
const EXTENSION_DATA: u8 = 0x80;

/// The relying party: its id (the registrable domain the apps share) and
/// the origins allowed to speak for it.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    id: String,
    id_hash: [u8; 32],
    name: String,
    origins: Vec<String>,
}

/// A credential §7.1 accepted: what to store for the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// The credential id (unique across accounts).
    pub credential_id: Vec<u8>,
    /// The COSE public key, as the authenticator encoded it.
    pub public_key: Vec<u8>,
    /// The signature counter at registration (0 for most synced passkeys).
    pub sign_count: u32,
    /// Whether the credential may be synced (BE), fixed for its life.
    pub backup_eligible: bool,
    /// Whether it is synced now (BS).
    pub backed_up: bool,
    /// The transports the browser reported (`internal`, `hybrid`, `usb`, …).
    pub transports: Vec<String>,
}

/// What a stored credential needs to check an assertion.
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    /// The COSE public key stored at registration.
    pub public_key: &'a [u8],
    /// The last signature counter seen.
    pub sign_count: u32,
    /// BE at registration.
    pub backup_eligible: bool,
}

/// An assertion, parsed but not yet verified: which credential and user it names.
#[derive(Clone)]
pub struct Assertion {
    /// The credential id it claims to be made with.
    pub credential_id: Vec<u8>,
    /// The user handle the authenticator returned (discoverable credentials).
    pub user_handle: Option<Vec<u8>>,
    client_data: Vec<u8>,
    authenticator_data: Vec<u8>,
    signature: Vec<u8>,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion").field("credential_id", &URL_SAFE_NO_PAD.encode(&self.credential_id)).finish()
    }
}

/// An assertion §7.2 accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The authenticator's new signature counter.
    pub sign_count: u32,
    /// Whether the person was verified (PIN, biometrics).
    pub user_verified: bool,
    /// Whether the credential is synced now.
    pub backed_up: bool,
}

/// Why an assertion was refused: the API says only "invalid credentials";
/// the reason is for the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionFailure {
    /// Malformed, or a check of §7.2 failed (type, challenge, origin, RP id,
    /// flags, signature).
    Invalid(&'static str),
    /// The signature counter did not grow: a cloned authenticator.
    CounterRegression,
}

impl std::fmt::Display for AssertionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssertionFailure::Invalid(why) => f.write_str(why),
            AssertionFailure::CounterRegression => f.write_str("the signature counter went back"),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationJson {
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: AttestationResponseJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttestationResponseJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    attestation_object: String,
    #[serde(default)]
    transports: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssertionJson {
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: AssertionResponseJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssertionResponseJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    authenticator_data: String,
    signature: String,
    #[serde(default)]
    user_handle: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default)]
    cross_origin: bool,
}

fn invalid(why: &str) -> Error {
    ValidationError::new("credential", why).into()
}

fn b64(field: &'static str, value: &str) -> std::result::Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).map_err(|_| field)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl RelyingParty {
    /// A relying party for `id` (a registrable domain such as
    /// `music.example`, or `localhost`) that accepts `origins` (web origins
    /// on `id` or its subdomains, and `android:apk-key-hash:…` app origins).
    ///
    /// # Errors
    /// [`Error::Validation`] for an empty id, no origins, or a web origin
    /// outside `id`.
    pub fn new(id: &str, name: &str, origins: &[String]) -> Result<Self> {
        let id = id.trim().to_ascii_lowercase();
        if id.is_empty() || id.contains(['/', ':']) {
            return Err(ValidationError::new("USER_WEBAUTHN_RP_ID", "must be a domain, e.g. music.example").into());
        }
        if origins.is_empty() {
            return Err(ValidationError::new("USER_WEBAUTHN_ORIGINS", "list at least one origin").into());
        }
        for origin in origins {
            if origin.starts_with("android:apk-key-hash:") {
                continue;
            }
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://").filter(|_| id == "localhost"))
                .map(|rest| rest.split(':').next().unwrap_or_default())
                .filter(|host| !host.is_empty() && !origin.ends_with('/'));
            let on_id = host.is_some_and(|h| h == id || h.ends_with(&format!(".{id}")));
            if !on_id {
                let rule = "each must be https://HOST[:PORT] on the RP id or a subdomain (http only for localhost), \
                            or android:apk-key-hash:…";
                return Err(ValidationError::new("USER_WEBAUTHN_ORIGINS", rule).into());
            }
        }
        Ok(Self { id_hash: sha256(id.as_bytes()), id, name: name.to_owned(), origins: origins.to_vec() })
    }

    /// The RP id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `PublicKeyCredentialCreationOptionsJSON` for a new passkey: resident
    /// key and user verification required, attestation `none`, the
    /// account's credentials excluded.
    pub fn creation_options(
        &self,
        challenge: &[u8],
        user_handle: &[u8],
        user_name: &str,
        display_name: &str,
        exclude: &[Vec<u8>],
    ) -> Value {
        json!({
            "rp": {"id": self.id, "name": self.name},
            "user": {"id": URL_SAFE_NO_PAD.encode(user_handle), "name": user_name, "displayName": display_name},
            "challenge": URL_SAFE_NO_PAD.encode(challenge),
            "pubKeyCredParams": ALGORITHMS.iter().map(|alg| json!({"type": "public-key", "alg": alg})).collect::<Vec<_>>(),
            "timeout": TIMEOUT_MS,
            "excludeCredentials": exclude.iter()
                .map(|id| json!({"type": "public-key", "id": URL_SAFE_NO_PAD.encode(id)}))
                .collect::<Vec<_>>(),
            "authenticatorSelection": {"residentKey": "required", "requireResidentKey": true, "userVerification": "required"},
            "attestation": "none",
            "extensions": {"credProps": true},
        })
    }

    /// `PublicKeyCredentialRequestOptionsJSON`: no allowed credentials (the
    /// authenticator offers the account's discoverable ones, autofill
    /// included); user verification `required`, or `discouraged` where the
    /// passkey only stands beside a password.
    pub fn request_options(&self, challenge: &[u8], user_verification_required: bool) -> Value {
        json!({
            "challenge": URL_SAFE_NO_PAD.encode(challenge),
            "rpId": self.id,
            "timeout": TIMEOUT_MS,
            "allowCredentials": [],
            "userVerification": if user_verification_required { "required" } else { "discouraged" },
        })
    }

    /// §7.1: checks a `RegistrationResponseJSON` against the ceremony's
    /// challenge, and returns the credential to store.
    ///
    /// # Errors
    /// [`Error::Validation`] on `credential`, naming the check that failed.
    pub fn verify_registration(&self, credential: &Value, challenge: &[u8]) -> Result<NewCredential> {
        let json: RegistrationJson =
            serde_json::from_value(credential.clone()).map_err(|e| invalid(&format!("not a registration: {e}")))?;
        if json.kind != "public-key" {
            return Err(invalid("type must be public-key"));
        }
        let raw_id = b64("rawId", &json.raw_id).map_err(|f| invalid(&format!("{f} is not base64url")))?;
        let client_data = b64("clientDataJSON", &json.response.client_data_json).map_err(invalid)?;
        self.check_client_data(&client_data, "webauthn.create", challenge).map_err(invalid)?;
        let object = b64("attestationObject", &json.response.attestation_object).map_err(invalid)?;
        let object = Cbor::decode(&object).map_err(|e| invalid(&e.to_string()))?;
        object.field("fmt").and_then(Cbor::as_text).ok_or_else(|| invalid("attestationObject has no fmt"))?;
        let auth_data = object
            .field("authData")
            .and_then(Cbor::as_bytes)
            .ok_or_else(|| invalid("attestationObject has no authData"))?;
        let flags = self.check_authenticator_data(auth_data, true).map_err(invalid)?;
        if flags & ATTESTED_DATA == 0 {
            return Err(invalid("no attested credential data"));
        }
        let sign_count = u32::from_be_bytes([auth_data[33], auth_data[34], auth_data[35], auth_data[36]]);
        // attestedCredentialData: aaguid (16), length (2), id, COSE key.
        let rest = &auth_data[37..];
        if rest.len() < 18 {
            return Err(invalid("attested credential data is truncated"));
        }
        let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID || rest.len() < 18 + id_len {
            return Err(invalid("credential id length"));
        }
        let credential_id = rest[18..18 + id_len].to_vec();
        if credential_id != raw_id {
            return Err(invalid("rawId differs from the authenticator's credential id"));
        }
        let (key, used) = Cbor::decode_prefix(&rest[18 + id_len..]).map_err(|e| invalid(&e.to_string()))?;
        let after_key = &rest[18 + id_len + used..];
        if flags & EXTENSION_DATA == 0 && !after_key.is_empty() {
            return Err(invalid("trailing bytes after the public key"));
        }
        if flags & EXTENSION_DATA != 0 {
            Cbor::decode(after_key).map_err(|e| invalid(&format!("extensions: {e}")))?;
        }
        PublicKey::from_cose(&key).map_err(invalid)?;
        let public_key = rest[18 + id_len..18 + id_len + used].to_vec();
        let transports = json.response.transports.into_iter().filter(|t| t.len() <= 32).take(8).collect();
        Ok(NewCredential {
            credential_id,
            public_key,
            sign_count,
            backup_eligible: flags & BACKUP_ELIGIBLE != 0,
            backed_up: flags & BACKED_UP != 0,
            transports,
        })
    }

    /// Reads an `AuthenticationResponseJSON`: the credential and user it
    /// names, to look the stored credential up before [`Self::verify_assertion`].
    ///
    /// # Errors
    /// [`AssertionFailure::Invalid`] for a body that is not an assertion.
    pub fn parse_assertion(&self, credential: &Value) -> std::result::Result<Assertion, AssertionFailure> {
        let bad = AssertionFailure::Invalid;
        let json: AssertionJson = serde_json::from_value(credential.clone()).map_err(|_| bad("not an assertion"))?;
        if json.kind != "public-key" {
            return Err(bad("type must be public-key"));
        }
        let user_handle = json.response.user_handle.filter(|h| !h.is_empty());
        Ok(Assertion {
            credential_id: b64("rawId", &json.raw_id).map_err(bad)?,
            user_handle: user_handle.map(|h| b64("userHandle", &h)).transpose().map_err(bad)?,
            client_data: b64("clientDataJSON", &json.response.client_data_json).map_err(bad)?,
            authenticator_data: b64("authenticatorData", &json.response.authenticator_data).map_err(bad)?,
            signature: b64("signature", &json.response.signature).map_err(bad)?,
        })
    }

    /// §7.2: checks `assertion` against the ceremony's challenge and the
    /// stored credential: type, challenge, origin, RP id, user presence
    /// (and verification when `require_uv`), backup eligibility, the
    /// signature, and that the counter grew (when either side counts).
    ///
    /// # Errors
    /// [`AssertionFailure`] naming the failed check.
    pub fn verify_assertion(
        &self,
        assertion: &Assertion,
        challenge: &[u8],
        stored: StoredCredential<'_>,
        require_uv: bool,
    ) -> std::result::Result<VerifiedAssertion, AssertionFailure> {
        let bad = AssertionFailure::Invalid;
        self.check_client_data(&assertion.client_data, "webauthn.get", challenge).map_err(bad)?;
        let data = &assertion.authenticator_data;
        let flags = self.check_authenticator_data(data, require_uv).map_err(bad)?;
        if (flags & BACKUP_ELIGIBLE != 0) != stored.backup_eligible {
            return Err(bad("backup eligibility changed"));
        }
        let key = Cbor::decode(stored.public_key).map_err(|_| bad("stored key"))?;
        let key = PublicKey::from_cose(&key).map_err(bad)?;
        let mut signed = data.clone();
        signed.extend_from_slice(&sha256(&assertion.client_data));
        key.verify(&signed, &assertion.signature).map_err(|()| bad("bad signature"))?;
        let sign_count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
        // Authenticators that never count (synced passkeys) send 0 each time.
        if (sign_count != 0 || stored.sign_count != 0) && sign_count <= stored.sign_count {
            return Err(AssertionFailure::CounterRegression);
        }
        Ok(VerifiedAssertion {
            sign_count,
            user_verified: flags & USER_VERIFIED != 0,
            backed_up: flags & BACKED_UP != 0,
        })
    }

    fn check_client_data(&self, bytes: &[u8], kind: &str, challenge: &[u8]) -> std::result::Result<(), &'static str> {
        let data: ClientData = serde_json::from_slice(bytes).map_err(|_| "clientDataJSON is not client data")?;
        if data.kind != kind {
            return Err("clientDataJSON type is for another ceremony");
        }
        let sent = URL_SAFE_NO_PAD.decode(data.challenge.trim_end_matches('=')).map_err(|_| "challenge")?;
        if !same_bytes(&sent, challenge) {
            return Err("challenge differs");
        }
        if !self.origins.contains(&data.origin) {
            return Err("origin not allowed");
        }
        if data.cross_origin {
            return Err("cross-origin iframe");
        }
        Ok(())
    }

    /// Checks the fixed part of authenticator data (§6.1): RP id hash, user
    /// present, user verified when required, BE/BS consistent. The flags.
    fn check_authenticator_data(&self, data: &[u8], require_uv: bool) -> std::result::Result<u8, &'static str> {
        if data.len() < 37 {
            return Err("authenticator data is truncated");
        }
        if !same_bytes(&data[..32], &self.id_hash) {
            return Err("RP id differs");
        }
        let flags = data[32];
        if flags & USER_PRESENT == 0 {
            return Err("user not present");
        }
        if require_uv && flags & USER_VERIFIED == 0 {
            return Err("user not verified");
        }
        if flags & BACKED_UP != 0 && flags & BACKUP_ELIGIBLE == 0 {
            return Err("backed up but not backup eligible");
        }
        Ok(flags)
    }
}

/// Equality without an early exit, for secrets such as challenges.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A credential public key from its COSE form (RFC 9052/9053).
enum PublicKey {
    Es256([u8; 65]),
    Ed25519([u8; 32]),
    Rs256 { n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    fn from_cose(key: &Cbor) -> std::result::Result<Self, &'static str> {
        let int = |label| key.label(label).and_then(Cbor::as_int);
        let bytes = |label| key.label(label).and_then(Cbor::as_bytes);
        match (int(1), int(3)) {
            // EC2, ES256, P-256.
            (Some(2), Some(-7)) => {
                let (Some(1), Some(x), Some(y)) = (int(-1), bytes(-2), bytes(-3)) else {
                    return Err("an ES256 key needs curve P-256 and x, y");
                };
                if x.len() != 32 || y.len() != 32 {
                    return Err("an ES256 key's coordinates are 32 bytes");
                }
                let mut point = [0u8; 65];
                point[0] = 4;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                Ok(PublicKey::Es256(point))
            }
            // OKP, EdDSA, Ed25519.
            (Some(1), Some(-8)) => {
                let (Some(6), Some(x)) = (int(-1), bytes(-2)) else {
                    return Err("an EdDSA key needs curve Ed25519 and x");
                };
                Ok(PublicKey::Ed25519(x.try_into().map_err(|_| "an Ed25519 key is 32 bytes")?))
            }
            // RSA, RS256.
            (Some(3), Some(-257)) => {
                let (Some(n), Some(e)) = (bytes(-1), bytes(-2)) else { return Err("an RS256 key needs n and e") };
                if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return Err("an RS256 key is 2048 to 8192 bits");
                }
                Ok(PublicKey::Rs256 { n: n.to_vec(), e: e.to_vec() })
            }
            _ => Err("the key's algorithm is not one of EdDSA, ES256, RS256"),
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> std::result::Result<(), ()> {
        match self {
            PublicKey::Es256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point).verify(message, sig)
            }
            PublicKey::Ed25519(key) => signature::UnparsedPublicKey::new(&signature::ED25519, key).verify(message, sig),
            PublicKey::Rs256 { n, e } => {
                signature::RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
            }
        }
        .map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::soft_authenticator::{Algorithm, Authenticator};

    const ORIGIN: &str = "https://music.example";

    fn rp() -> RelyingParty {
        RelyingParty::new("music.example", "Music", &[ORIGIN.to_owned(), "https://app.music.example".into()]).unwrap()
    }

    fn register(rp: &RelyingParty, authenticator: &mut Authenticator) -> NewCredential {
        let challenge = [7u8; 32];
        let options = rp.creation_options(&challenge, &[1; 32], "alice@example.com", "alice", &[]);
        rp.verify_registration(&authenticator.create(&options), &challenge).unwrap()
    }

    fn sign_in(
        rp: &RelyingParty,
        authenticator: &mut Authenticator,
        stored: &NewCredential,
    ) -> std::result::Result<VerifiedAssertion, AssertionFailure> {
        let challenge = [9u8; 32];
        let response = authenticator.get(&rp.request_options(&challenge, true));
        let assertion = rp.parse_assertion(&response)?;
        assert_eq!(assertion.credential_id, stored.credential_id);
        assert_eq!(assertion.user_handle.as_deref(), Some(&[1u8; 32][..]));
        let key = StoredCredential {
            public_key: &stored.public_key,
            sign_count: stored.sign_count,
            backup_eligible: stored.backup_eligible,
        };
        rp.verify_assertion(&assertion, &challenge, key, true)
    }

    #[test]
    fn es256_and_eddsa_passkeys_register_and_sign_in() {
        let rp = rp();
        for algorithm in [Algorithm::Es256, Algorithm::EdDsa] {
            let mut authenticator = Authenticator::new(ORIGIN, algorithm);
            let mut stored = register(&rp, &mut authenticator);
            assert_eq!((stored.sign_count, stored.backup_eligible), (1, false));
            assert_eq!(stored.transports, ["internal", "hybrid"]);
            for expected in 2..4 {
                let verified = sign_in(&rp, &mut authenticator, &stored).unwrap();
                assert_eq!((verified.sign_count, verified.user_verified), (expected, true), "{algorithm:?}");
                stored.sign_count = verified.sign_count;
            }
        }
    }

    #[test]
    fn the_options_ask_for_a_discoverable_verified_credential() {
        let rp = rp();
        let create = rp.creation_options(&[1; 32], &[2; 32], "alice@example.com", "alice", &[vec![3; 16]]);
        assert_eq!(create["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(create["authenticatorSelection"]["userVerification"], "required");
        assert_eq!(create["attestation"], "none");
        assert_eq!(create["rp"]["id"], "music.example");
        assert_eq!(create["excludeCredentials"][0]["id"], URL_SAFE_NO_PAD.encode([3; 16]));
        let algs: Vec<i64> =
            create["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
        assert_eq!(algs, [-8, -7, -257]);
        let get = rp.request_options(&[1; 32], true);
        assert_eq!((get["allowCredentials"].clone(), get["userVerification"].clone()), (json!([]), json!("required")));
        assert_eq!(rp.request_options(&[1; 32], false)["userVerification"], "discouraged");
    }

    #[test]
    fn a_registration_from_elsewhere_or_for_another_challenge_is_refused() {
        let rp = rp();
        let challenge = [7u8; 32];
        let options = rp.creation_options(&challenge, &[1; 32], "alice@example.com", "alice", &[]);
        let refused = |authenticator: &mut Authenticator, challenge: &[u8]| {
            let response = authenticator.create(&options);
            rp.verify_registration(&response, challenge).unwrap_err().to_string()
        };
        let mut phishing = Authenticator::new("https://music.example.evil", Algorithm::Es256);
        assert!(refused(&mut phishing, &challenge).contains("origin"));
        let mut other_rp = Authenticator::new(ORIGIN, Algorithm::Es256);
        other_rp.rp_id_override = Some("evil.example".into());
        assert!(refused(&mut other_rp, &challenge).contains("RP id"));
        let mut unverified = Authenticator::new(ORIGIN, Algorithm::Es256);
        unverified.user_verified = false;
        assert!(refused(&mut unverified, &challenge).contains("not verified"));
        let mut honest = Authenticator::new(ORIGIN, Algorithm::EdDsa);
        assert!(refused(&mut honest, &[8; 32]).contains("challenge"));
        // An assertion is not a registration.
        let stored = register(&rp, &mut honest);
        let assertion = honest.get(&rp.request_options(&challenge, true));
        assert!(rp.verify_registration(&assertion, &challenge).is_err());
        assert!(!stored.credential_id.is_empty());
    }

    #[test]
    fn an_assertion_that_fails_any_check_is_refused() {
        let rp = rp();
        let mut authenticator = Authenticator::new(ORIGIN, Algorithm::Es256);
        let stored = register(&rp, &mut authenticator);
        let challenge = [9u8; 32];
        let check = |response: &Value, challenge: &[u8], require_uv: bool| {
            let assertion = rp.parse_assertion(response)?;
            let key = StoredCredential {
                public_key: &stored.public_key,
                sign_count: stored.sign_count,
                backup_eligible: stored.backup_eligible,
            };
            rp.verify_assertion(&assertion, challenge, key, require_uv)
        };
        let good = authenticator.get(&rp.request_options(&challenge, true));
        assert!(check(&good, &challenge, true).is_ok());
        assert_eq!(check(&good, &[1; 32], true), Err(AssertionFailure::Invalid("challenge differs")));
        // A registration's client data is not an assertion's.
        let mut swapped = good.clone();
        let create_data = URL_SAFE_NO_PAD.encode(
            json!({"type": "webauthn.create", "challenge": URL_SAFE_NO_PAD.encode(challenge), "origin": ORIGIN})
                .to_string(),
        );
        swapped["response"]["clientDataJSON"] = json!(create_data);
        assert!(check(&swapped, &challenge, true).is_err());
        // A signature of other bytes.
        let mut forged = good.clone();
        forged["response"]["signature"] =
            authenticator.get(&rp.request_options(&[2; 32], true))["response"]["signature"].clone();
        assert_eq!(check(&forged, &challenge, true), Err(AssertionFailure::Invalid("bad signature")));
        let mut unverified = authenticator.clone();
        unverified.user_verified = false;
        let response = unverified.get(&rp.request_options(&challenge, true));
        assert_eq!(check(&response, &challenge, true), Err(AssertionFailure::Invalid("user not verified")));
        assert!(check(&response, &challenge, false).is_ok(), "UV may be discouraged beside a password");
        let mut elsewhere = authenticator.clone();
        elsewhere.origin = "https://evil.example".into();
        let response = elsewhere.get(&rp.request_options(&challenge, true));
        assert_eq!(check(&response, &challenge, true), Err(AssertionFailure::Invalid("origin not allowed")));
        let mut other_rp = authenticator.clone();
        other_rp.rp_id_override = Some("evil.example".into());
        let response = other_rp.get(&rp.request_options(&challenge, true));
        assert_eq!(check(&response, &challenge, true), Err(AssertionFailure::Invalid("RP id differs")));
        for junk in [json!({}), json!({"rawId": "!!", "type": "public-key", "response": {}}), json!("x")] {
            assert!(rp.parse_assertion(&junk).is_err());
        }
    }

    #[test]
    fn a_cloned_authenticator_is_caught_by_its_counter_and_a_non_counting_one_is_fine() {
        let rp = rp();
        let mut original = Authenticator::new(ORIGIN, Algorithm::EdDsa);
        let mut stored = register(&rp, &mut original);
        let mut clone = original.clone();
        stored.sign_count = sign_in(&rp, &mut original, &stored).unwrap().sign_count;
        stored.sign_count = sign_in(&rp, &mut original, &stored).unwrap().sign_count;
        assert_eq!(sign_in(&rp, &mut clone, &stored), Err(AssertionFailure::CounterRegression));

        let mut synced = Authenticator::new(ORIGIN, Algorithm::Es256);
        synced.counting = false;
        synced.backed_up = true;
        let stored = register(&rp, &mut synced);
        assert_eq!((stored.sign_count, stored.backup_eligible, stored.backed_up), (0, true, true));
        for _ in 0..3 {
            assert_eq!(sign_in(&rp, &mut synced, &stored).unwrap().sign_count, 0);
        }
    }

    #[test]
    fn the_relying_party_s_settings_are_checked() {
        let ok = |id: &str, origins: &[&str]| {
            RelyingParty::new(id, "Music", &origins.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>()).is_ok()
        };
        assert!(ok("music.example", &["https://music.example", "https://www.music.example:8443"]));
        assert!(ok("music.example", &["android:apk-key-hash:abc"]));
        assert!(ok("localhost", &["http://localhost:8080"]));
        assert!(!ok("music.example", &["http://music.example"]), "http only for localhost");
        assert!(!ok("music.example", &["https://evilmusic.example"]));
        assert!(!ok("music.example", &["https://music.example/"]));
        assert!(!ok("music.example", &[]));
        assert!(!ok("https://music.example", &["https://music.example"]));
    }
}
