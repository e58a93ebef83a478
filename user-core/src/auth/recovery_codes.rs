//! Recovery codes: the way in when the authenticator is lost. Ten per
//! account, 50 random bits each, written in Crockford's base32
//! (`XXXXX-XXXXX`; case, dashes and spaces ignored, `I`/`L` read as `1` and
//! `O` as `0`), each usable once, stored only as a keyed digest.

use zeroize::Zeroizing;

use crate::auth::totp::base32;
use crate::domain::UserId;

/// Codes issued at a time.
pub const CODES_PER_SET: usize = 10;
/// Characters of a code, dashes aside (10 × 5 bits = 50 bits).
const CODE_CHARS: usize = 10;
/// Crockford's base32 alphabet.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A recovery code, normalized. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<String>);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl RecoveryCode {
    /// A fresh set of ten distinct codes.
    pub fn generate_set() -> Vec<Self> {
        let mut codes: Vec<Self> = Vec::with_capacity(CODES_PER_SET);
        while codes.len() < CODES_PER_SET {
            let mut bytes = [0u8; 7];
            rand::fill(&mut bytes);
            // 56 random bits; the first 50 become the ten characters.
            let mut text = base32(&bytes, CROCKFORD);
            text.truncate(CODE_CHARS);
            let code = Self(Zeroizing::new(text));
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        codes
    }

    /// Reads a code as a person types it; `None` if it cannot be one.
    pub fn parse(typed: &str) -> Option<Self> {
        let mut text = String::with_capacity(CODE_CHARS);
        for c in typed.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            };
            if !c.is_ascii() || !CROCKFORD.contains(&(c as u8)) || text.len() == CODE_CHARS {
                return None;
            }
            text.push(c);
        }
        (text.len() == CODE_CHARS).then(|| Self(Zeroizing::new(text)))
    }

    /// The code as shown once to its owner: `XXXXX-XXXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..5], &self.0[5..])
    }

    /// The stored form: HMAC-SHA256 under the service's key, over the owner
    /// and the code, so a digest is worthless for another account and the
    /// database alone does not allow guessing.
    pub fn digest(&self, key: &[u8], owner: UserId) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let mut context = ring::hmac::Context::with_key(&key);
        context.update(owner.as_uuid().as_bytes());
        context.update(self.0.as_bytes());
        context.sign().as_ref().try_into().expect("SHA-256 is 32 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_that_read_back_however_typed() {
        let set = RecoveryCode::generate_set();
        assert_eq!(set.len(), 10);
        for code in &set {
            let shown = code.display();
            assert_eq!(shown.len(), 11);
            assert_eq!(RecoveryCode::parse(&shown).as_ref(), Some(code));
            assert_eq!(RecoveryCode::parse(&shown.to_lowercase()).as_ref(), Some(code));
            assert_eq!(RecoveryCode::parse(&shown.replace('-', " ")).as_ref(), Some(code));
        }
        assert_eq!(format!("{:?}", set[0]), "RecoveryCode([redacted])");
    }

    #[test]
    fn look_alike_letters_read_as_digits_and_anything_else_is_refused() {
        assert_eq!(RecoveryCode::parse("ilo00-11111"), RecoveryCode::parse("11000-11111"));
        for bad in ["", "12345", "12345-123456", "12345-1234U", "12345-1234é", "123456789012"] {
            assert!(RecoveryCode::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_digest_belongs_to_one_account_and_one_key() {
        let code = RecoveryCode::parse("ABCDE-FGHJK").unwrap();
        let (alice, bob) = (UserId::new(), UserId::new());
        assert_eq!(code.digest(b"k", alice), code.digest(b"k", alice));
        assert_ne!(code.digest(b"k", alice), code.digest(b"k", bob));
        assert_ne!(code.digest(b"k", alice), code.digest(b"other", alice));
    }
}
