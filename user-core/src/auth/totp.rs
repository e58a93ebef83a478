//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): SHA-1,
//! 6 digits, 30-second steps, the step before and after accepted, as every
//! authenticator app computes them.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps either side of now a code may come from (clock drift, typing time).
pub const SKEW_STEPS: i64 = 1;
/// Bytes of a new secret: 160 bits, RFC 4226's recommendation for SHA-1.
pub const SECRET_BYTES: usize = 20;

/// A TOTP shared secret. Never printed; its base32 form is shown once, at
/// enrollment.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::fill(&mut bytes[..]);
        Self(Zeroizing::new(bytes))
    }

    /// The secret from its raw bytes (as stored, once decrypted).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes, to encrypt for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding: what authenticator apps take typed in.
    pub fn to_base32(&self) -> String {
        base32(&self.0, RFC4648)
    }

    /// The secret from its base32 form (as enrollment shows it; case,
    /// spaces and padding ignored); `None` if it is not base32.
    pub fn from_base32(text: &str) -> Option<Self> {
        let (mut bytes, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
        for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
            let value = RFC4648.iter().position(|&a| a == c.to_ascii_uppercase())?;
            buffer = (buffer << 5) | value as u32;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
            }
        }
        Some(Self::from_bytes(bytes))
    }

    /// The six digits an authenticator app shows at `at`.
    pub fn code_at(&self, at: DateTime<Utc>) -> String {
        format!("{:06}", self.code_at_step(step_of(at)))
    }

    /// The `otpauth://totp/…` URI an authenticator app reads from a QR code
    /// (Google Authenticator's key-URI format), labelled `issuer:account`.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let esc = |s: &str| percent_encoding::utf8_percent_encode(s, URI_COMPONENT).to_string();
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            esc(issuer),
            esc(account),
            self.to_base32(),
            esc(issuer)
        )
    }

    /// The code for time step `step` (RFC 4226's HOTP with the step as counter).
    pub fn code_at_step(&self, step: i64) -> u32 {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let mac = ring::hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        // Dynamic truncation (RFC 4226 §5.3).
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]]) & 0x7fff_ffff;
        binary % 10u32.pow(DIGITS)
    }

    /// The time step a code from `code` matches around `now`, if any: the
    /// caller accepts it only if it is later than the last step accepted
    /// (RFC 6238 §5.2: a code is used once). Every candidate step is
    /// computed and compared (one integer comparison each), so the time
    /// taken does not tell which matched.
    pub fn matching_step(&self, code: &TotpCode, now: DateTime<Utc>) -> Option<i64> {
        let current = step_of(now);
        let mut found = None;
        for step in current - SKEW_STEPS..=current + SKEW_STEPS {
            if self.code_at_step(step) == code.0 && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

/// The time step `at` falls in.
pub fn step_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(STEP_SECONDS)
}

/// A code as typed: exactly six digits, spaces ignored ("123 456").
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TotpCode(u32);

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCode([redacted])")
    }
}

impl TotpCode {
    /// Parses a typed code; `None` unless it is six ASCII digits once spaces
    /// are taken out.
    pub fn parse(typed: &str) -> Option<Self> {
        let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(digits.parse().expect("six ASCII digits")))
    }

    /// Whether `typed` is shaped like a TOTP code (else it may be a recovery code).
    pub fn looks_like(typed: &str) -> bool {
        Self::parse(typed).is_some()
    }
}

/// What may stay unescaped in an otpauth label or parameter.
const URI_COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'@');

/// RFC 4648's base32 alphabet.
const RFC4648: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 of `bytes` in `alphabet`, without padding.
pub(crate) fn base32(bytes: &[u8], alphabet: &[u8; 32]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(alphabet[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(alphabet[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, eight_digits) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            let at = DateTime::from_timestamp(time, 0).unwrap();
            assert_eq!(secret.code_at_step(step_of(at)), eight_digits % 1_000_000, "t={time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_the_neighbours_only() {
        let secret = TotpSecret::generate();
        let now = DateTime::from_timestamp(1_700_000_015, 0).unwrap();
        let step = step_of(now);
        for (offset, matches) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = TotpCode::parse(&format!("{:06}", secret.code_at_step(step + offset))).unwrap();
            let expected = matches.then_some(step + offset);
            // A code of a far step may by chance equal a near one's; skip that case.
            if !matches && secret.matching_step(&code, now).is_some() {
                continue;
            }
            assert_eq!(secret.matching_step(&code, now), expected, "offset {offset}");
        }
    }

    #[test]
    fn codes_parse_as_six_digits_with_spaces_ignored() {
        assert!(TotpCode::parse("123 456").is_some());
        assert!(TotpCode::parse("012345").is_some());
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", "-12345"] {
            assert!(TotpCode::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(format!("{:?}", TotpCode::parse("123456").unwrap()), "TotpCode([redacted])");
        assert_eq!(format!("{:?}", TotpSecret::generate()), "TotpSecret([redacted])");
    }

    #[test]
    fn base32_and_the_uri_are_what_authenticator_apps_read() {
        // RFC 4648 §10 vectors, without padding.
        for (raw, encoded) in [("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foobar", "MZXW6YTBOI")] {
            assert_eq!(base32(raw.as_bytes(), RFC4648), encoded);
        }
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq"), Some(secret.clone()));
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        assert_eq!(
            secret.otpauth_uri("Music Co", "alice@example.com"),
            "otpauth://totp/Music%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Music%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }

    /// The `oathtool` package is an implementation nobody here wrote.
    #[test]
    fn codes_agree_with_oathtool() {
        let Ok(probe) = std::process::Command::new("oathtool").arg("--version").output() else {
            assert!(
                std::env::var("USER_TEST_REQUIRE_OATHTOOL").as_deref() != Ok("1"),
                "USER_TEST_REQUIRE_OATHTOOL=1 but oathtool is missing: apt-get install oathtool"
            );
            crate::testing::skipped("no oathtool: apt-get install oathtool");
            return;
        };
        assert!(probe.status.success());
        for _ in 0..5 {
            let secret = TotpSecret::generate();
            let time = 1_000_000_000 + i64::from(rand::random::<u32>());
            let at = DateTime::from_timestamp(time, 0).unwrap();
            let out = std::process::Command::new("oathtool")
                .args(["--totp", "--base32", "-N"])
                .arg(format!("@{time}"))
                .arg(secret.to_base32())
                .output()
                .unwrap();
            let theirs = String::from_utf8(out.stdout).unwrap();
            assert_eq!(theirs.trim(), format!("{:06}", secret.code_at_step(step_of(at))), "t={time}");
        }
    }
}
