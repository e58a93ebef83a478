//! A software authenticator written from the WebAuthn Level 3 specification
//! (§6 authenticator data, §6.5 attestation `none`, §5.2 the JSON a browser
//! hands the page), for tests: it answers `create` and `get` options the
//! way a platform authenticator behind a browser would, with ES256 or
//! EdDSA keys, and can be told to misbehave (another origin or RP id, no
//! user verification, a cloned counter).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use super::cbor::Cbor;

/// The signature algorithm of the keys an authenticator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (COSE -7).
    Es256,
    /// Ed25519 (COSE -8).
    EdDsa,
}

#[derive(Clone)]
struct Credential {
    id: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
    pkcs8: Vec<u8>,
    algorithm: Algorithm,
    counter: u32,
}

/// A software authenticator and the browser in front of it.
#[derive(Clone)]
pub struct Authenticator {
    /// The origin the browser reports in client data.
    pub origin: String,
    /// Sign for this RP id instead of the one the options name (a phishing
    /// site's authenticator data).
    pub rp_id_override: Option<String>,
    /// Whether the person is verified (PIN or biometrics): the UV flag.
    pub user_verified: bool,
    /// Whether the signature counter counts (synced passkeys send 0).
    pub counting: bool,
    /// Whether the credential may be synced: the BE and BS flags.
    pub backed_up: bool,
    algorithm: Algorithm,
    credentials: Vec<Credential>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("origin", &self.origin)
            .field("credentials", &self.credentials.len())
            .finish()
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Authenticator {
    /// An authenticator whose browser is on `origin`, making `algorithm` keys;
    /// it verifies the user and counts signatures.
    pub fn new(origin: &str, algorithm: Algorithm) -> Self {
        Self {
            origin: origin.to_owned(),
            rp_id_override: None,
            user_verified: true,
            counting: true,
            backed_up: false,
            algorithm,
            credentials: Vec::new(),
        }
    }

    /// How many credentials it holds.
    pub fn credentials(&self) -> usize {
        self.credentials.len()
    }

    /// Forgets every credential but the newest (a fresh device).
    pub fn keep_newest(&mut self) {
        let newest = self.credentials.pop();
        self.credentials = newest.into_iter().collect();
    }

    /// Answers `navigator.credentials.create({publicKey: options})` with
    /// the `RegistrationResponseJSON` a browser gives the page.
    ///
    /// # Panics
    /// On options without a challenge, RP id or user id.
    pub fn create(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("challenge");
        let rp_id = self.rp_id_override.clone().unwrap_or_else(|| options["rp"]["id"].as_str().expect("rp.id").into());
        let user_handle = URL_SAFE_NO_PAD.decode(options["user"]["id"].as_str().expect("user.id")).expect("user.id");
        let rng = SystemRandom::new();
        let mut id = vec![0u8; 32];
        rng.fill(&mut id).expect("random");
        let (pkcs8, cose) = match self.algorithm {
            Algorithm::Es256 => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).expect("key");
                let point = pair.public_key().as_ref();
                let cose = Cbor::Map(vec![
                    (Cbor::Int(1), Cbor::Int(2)),
                    (Cbor::Int(3), Cbor::Int(-7)),
                    (Cbor::Int(-1), Cbor::Int(1)),
                    (Cbor::Int(-2), Cbor::Bytes(point[1..33].to_vec())),
                    (Cbor::Int(-3), Cbor::Bytes(point[33..].to_vec())),
                ]);
                (pkcs8.as_ref().to_vec(), cose)
            }
            Algorithm::EdDsa => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
                let cose = Cbor::Map(vec![
                    (Cbor::Int(1), Cbor::Int(1)),
                    (Cbor::Int(3), Cbor::Int(-8)),
                    (Cbor::Int(-1), Cbor::Int(6)),
                    (Cbor::Int(-2), Cbor::Bytes(pair.public_key().as_ref().to_vec())),
                ]);
                (pkcs8.as_ref().to_vec(), cose)
            }
        };
        let counter = u32::from(self.counting);
        let mut auth_data = self.fixed_data(&rp_id, 0x40, counter);
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&u16::try_from(id.len()).expect("short id").to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose.encode());
        let client_data = self.client_data("webauthn.create", challenge);
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(Vec::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        self.credentials.push(Credential {
            id: id.clone(),
            rp_id,
            user_handle,
            pkcs8,
            algorithm: self.algorithm,
            counter,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation.encode()),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {"credProps": {"rk": true}},
        })
    }

    /// Answers `navigator.credentials.get({publicKey: options})` with the
    /// newest credential for the options' RP id, as the
    /// `AuthenticationResponseJSON` a browser gives the page.
    ///
    /// # Panics
    /// Without a challenge, or with no credential for the RP id.
    pub fn get(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("challenge");
        let rp_id = options["rpId"].as_str().expect("rpId").to_owned();
        let counting = self.counting;
        let credential = self.credentials.iter_mut().rev().find(|c| c.rp_id == rp_id).expect("a credential for the RP");
        if counting {
            credential.counter += 1;
        }
        let credential = credential.clone();
        let signing_rp = self.rp_id_override.clone().unwrap_or(rp_id);
        let auth_data = self.fixed_data(&signing_rp, 0, credential.counter);
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&sha256(&client_data));
        let signature = match credential.algorithm {
            Algorithm::Es256 => {
                let rng = SystemRandom::new();
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &credential.pkcs8, &rng).expect("key");
                pair.sign(&rng, &signed).expect("sign").as_ref().to_vec()
            }
            Algorithm::EdDsa => {
                Ed25519KeyPair::from_pkcs8(&credential.pkcs8).expect("key").sign(&signed).as_ref().to_vec()
            }
        };
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": b64(&credential.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    /// RP id hash, flags (user present, verified as set, backup as set,
    /// plus `extra`), counter.
    fn fixed_data(&self, rp_id: &str, extra: u8, counter: u32) -> Vec<u8> {
        let mut flags = 0x01 | extra;
        if self.user_verified {
            flags |= 0x04;
        }
        if self.backed_up {
            flags |= 0x08 | 0x10;
        }
        let mut data = sha256(rp_id.as_bytes());
        data.push(flags);
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }
}
