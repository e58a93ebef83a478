//! Encryption of secrets the service must read back (TOTP secrets) under a
//! key from the settings (`USER_DATA_KEY`): AES-256-GCM with a random nonce,
//! the owner and purpose as associated data, so a ciphertext copied to
//! another account or column does not decrypt.
//!
//! Rotation, as with `USER_JWT_SECRETS`: append the new key and keep the
//! old ones before it; new secrets use the last, every listed key decrypts,
//! and a secret is re-encrypted under the last key when it is next written.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::domain::ValidationError;
use crate::error::{Error, Result};

/// Bytes of a data key.
pub const KEY_BYTES: usize = 32;

/// The data keys: the last encrypts, all decrypt.
pub struct DataKeys {
    keys: Vec<DataKey>,
}

struct DataKey {
    /// The first four bytes of the key's SHA-256, in hex: names the key in
    /// each ciphertext without revealing it.
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("DataKeys").field("ids", &ids).finish()
    }
}

impl DataKeys {
    /// Keys from raw 32-byte values, the encrypting one last.
    ///
    /// # Errors
    /// [`Error::Validation`] (field `data_key`) for no key or a key of another length.
    pub fn new(raw: &[Zeroizing<Vec<u8>>]) -> Result<Self> {
        if raw.is_empty() {
            return Err(ValidationError::new("data_key", "at least one key is required").into());
        }
        let keys = raw
            .iter()
            .map(|bytes| {
                if bytes.len() != KEY_BYTES {
                    return Err(ValidationError::new(
                        "data_key",
                        format!(
                            "must be {KEY_BYTES} bytes (base64 of 32 random bytes: `openssl rand -base64 32`), not {}",
                            bytes.len()
                        ),
                    )
                    .into());
                }
                let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
                let id = hex::encode(&digest.as_ref()[..4]);
                let key =
                    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::internal("AES key"))?);
                Ok(DataKey { id, key })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { keys })
    }

    /// Keys from `USER_DATA_KEY`'s form: base64 keys separated by commas or
    /// whitespace, the encrypting one last.
    ///
    /// # Errors
    /// [`Error::Validation`] naming what is wrong (never the key).
    pub fn parse(setting: &str) -> Result<Self> {
        use base64::Engine;
        let raw = setting
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(Zeroizing::new)
                    .map_err(|_| Error::from(ValidationError::new("data_key", format!("key {} is not base64", i + 1))))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(&raw)
    }

    /// The id of the key new secrets are encrypted with.
    pub fn current_id(&self) -> &str {
        &self.current().id
    }

    fn current(&self) -> &DataKey {
        self.keys.last().expect("at least one key")
    }

    /// Encrypts `plain` for `context` (owner and purpose, e.g. `totp:<user id>`):
    /// `<key id>.<base64 of nonce, ciphertext and tag>`.
    ///
    /// # Errors
    /// [`Error::Internal`] if the cipher fails.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<String> {
        use base64::Engine;
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut sealed = plain.to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut sealed)
            .map_err(|_| Error::internal("encrypting a secret failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{}.{}", key.id, base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)))
    }

    /// Decrypts what [`DataKeys::seal`] made for the same `context`.
    /// Returns whether it was sealed with another key than the current one
    /// (so the caller may seal it again).
    ///
    /// # Errors
    /// [`Error::Internal`] naming the missing key id, or that the value was
    /// altered or belongs to another context.
    pub fn open(&self, context: &str, sealed: &str) -> Result<(Zeroizing<Vec<u8>>, bool)> {
        use base64::Engine;
        let (id, body) = sealed.split_once('.').ok_or_else(|| Error::internal("a sealed secret is malformed"))?;
        let Some(position) = self.keys.iter().position(|k| k.id == id) else {
            return Err(Error::internal(format!(
                "a secret is sealed with data key {id}, which USER_DATA_KEY no longer lists"
            )));
        };
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| Error::internal("a sealed secret is malformed"))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::internal("a sealed secret is malformed"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::internal("bad nonce"))?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain = self.keys[position]
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| Error::internal("a sealed secret does not decrypt: altered, or another account's"))?
            .to_vec();
        Ok((Zeroizing::new(plain), position + 1 != self.keys.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![byte; KEY_BYTES])
    }

    #[test]
    fn a_sealed_secret_opens_for_its_context_only() {
        let keys = DataKeys::new(&[key(1)]).unwrap();
        let sealed = keys.seal("totp:alice", b"shared secret").unwrap();
        assert!(!sealed.contains("shared"));
        let (plain, stale) = keys.open("totp:alice", &sealed).unwrap();
        assert_eq!(&plain[..], b"shared secret");
        assert!(!stale);
        assert!(keys.open("totp:mallory", &sealed).is_err(), "moved to another account");
        let mut altered = sealed.clone();
        altered.push('A');
        assert!(keys.open("totp:alice", &altered).is_err());
        assert_ne!(keys.seal("totp:alice", b"shared secret").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn rotation_keeps_old_secrets_readable_and_says_they_are_stale() {
        let old = DataKeys::new(&[key(1)]).unwrap();
        let sealed = old.seal("totp:alice", b"s").unwrap();
        let rotated = DataKeys::new(&[key(1), key(2)]).unwrap();
        let (plain, stale) = rotated.open("totp:alice", &sealed).unwrap();
        assert_eq!(&plain[..], b"s");
        assert!(stale);
        let resealed = rotated.seal("totp:alice", &plain).unwrap();
        assert!(resealed.starts_with(rotated.current_id()));
        let dropped = DataKeys::new(&[key(2)]).unwrap();
        let error = dropped.open("totp:alice", &sealed).unwrap_err().to_string();
        assert!(error.contains(old.current_id()) && error.contains("USER_DATA_KEY"), "{error}");
    }

    #[test]
    fn the_setting_takes_base64_keys_and_refuses_anything_else_without_echoing_it() {
        use base64::Engine;
        let k1 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let k2 = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        assert_eq!(
            DataKeys::parse(&format!("{k1}, {k2}")).unwrap().current_id(),
            DataKeys::parse(&k2).unwrap().current_id()
        );
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let error = DataKeys::parse(bad).unwrap_err().to_string();
            assert!(error.contains("data_key"), "{error}");
            assert!(bad.is_empty() || !error.contains(bad), "{error}");
        }
        assert!(!format!("{:?}", DataKeys::parse(&k1).unwrap()).contains(&k1));
    }
}
