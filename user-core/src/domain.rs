//! Parse, don't validate: the value types every rule past the edge takes.
//!
//! Each constructor checks one field's rules and returns a [`ValidationError`]
//! naming the field and the rule; a value of these types is valid by
//! construction.

mod amr;
pub mod common_passwords;
#[cfg(feature = "openapi")]
pub mod openapi;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

pub use amr::{Amr, AuthMethod};

/// A value that broke a rule: which field, and what the rule is.
///
/// `Display` reads `"<field>: <rule>"`, e.g. `username: must be 3–32 characters`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    /// The request field at fault (`username`, `email`, `password`, `track_id`, …).
    pub field: &'static str,
    /// What the rule is, in words a client can show.
    pub rule: String,
}

impl ValidationError {
    /// A broken `rule` on `field`.
    pub fn new(field: &'static str, rule: impl Into<String>) -> Self {
        Self { field, rule: rule.into() }
    }
}

/// A user's id: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read from storage or a token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| ValidationError::new("id", "must be a UUID"))
    }
}

/// A session's id (one per login), a UUID v7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read from storage or a token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SessionId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| ValidationError::new("id", "must be a session id (a UUID)"))
    }
}

/// Implements the string newtype plumbing shared by the text value types.
macro_rules! text_value {
    ($name:ident) => {
        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A username: 3–32 characters of `A-Z a-z 0-9 _ . -`.
///
/// Kept as typed; uniqueness is case-insensitive (`Alice` and `alice` are the
/// same account), which the store enforces with a unique index on the
/// lower-cased name. It can never contain `@`, so a login name with `@` is
/// always an email.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// The fewest characters in a username.
    pub const MIN_CHARS: usize = 3;
    /// The most characters in a username.
    pub const MAX_CHARS: usize = 32;
    /// The rule as a regular expression (for OpenAPI and other validators).
    pub const PATTERN: &'static str = "^[A-Za-z0-9_.-]{3,32}$";

    /// Checks the rules and wraps the name.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `username` naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let len = s.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&len) {
            return Err(ValidationError::new("username", "must be 3–32 characters"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(ValidationError::new("username", "may contain only letters A-Z a-z, digits and _ . -"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The lower-cased form uniqueness is decided on.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}
text_value!(Username);

/// An email address, checked by an RFC 5321/5322 parser and stored lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The longest address: what fits SMTP's forward path (RFC 5321 §4.5.3.1.3).
    pub const MAX_CHARS: usize = 254;

    /// Checks the address and lower-cases it.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `email` if it is not a valid address or is
    /// longer than 254 characters.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.len() > Self::MAX_CHARS {
            return Err(ValidationError::new("email", "must be at most 254 characters"));
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            s,
            email_address::Options::default().without_display_text().without_domain_literal(),
        )
        .map_err(|_| ValidationError::new("email", "must be a valid email address"))?;
        // A bare host (`a@localhost`) is legal but never a deliverable account address.
        if !parsed.domain().contains('.') {
            return Err(ValidationError::new("email", "must be a valid email address"));
        }
        Ok(Self(s.to_lowercase()))
    }
}
text_value!(Email);

/// A password: 8–128 characters (Unicode scalar values), any characters.
///
/// Never printed: `Debug` shows `Password(***)` and there is no `Display`.
/// The memory is overwritten when the value is dropped.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    /// The longest accepted password, in characters.
    pub const MAX_CHARS: usize = 128;
    /// The shortest password accepted for a new account or a password change.
    pub const MIN_CHARS: usize = 8;

    /// Checks a new password against the policy: 8–128 characters, and
    /// not one of the 100,000 most common passwords (see
    /// [`common_passwords`]).
    ///
    /// # Errors
    /// A [`ValidationError`] on field `password`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let len = s.chars().count();
        if len < Self::MIN_CHARS {
            return Err(ValidationError::new("password", "must be at least 8 characters"));
        }
        if len > Self::MAX_CHARS {
            return Err(ValidationError::new("password", "must be at most 128 characters"));
        }
        if common_passwords::is_common(s) {
            return Err(ValidationError::new("password", "is one of the most common passwords; choose another"));
        }
        Ok(Self(s.to_owned()))
    }

    /// Wraps a password presented to log in or to confirm a change: only
    /// non-empty and at most 128 characters, so a tightened policy never locks
    /// out an account whose password predates it.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` if empty or too long.
    pub fn presented(field: &'static str, s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(field, "must be at most 128 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The secret itself, for hashing and verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = ValidationError;

    fn try_from(mut s: String) -> Result<Self, Self::Error> {
        let parsed = Self::parse(&s);
        s.zeroize();
        parsed
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A catalogue track id: 1–64 characters of `A-Z a-z 0-9 _ : . -`, which covers
/// integers, UUIDs and base-62 catalogue ids; never a comma, so batches can be
/// comma-separated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackId(String);

impl TrackId {
    /// The most characters in a track id.
    pub const MAX_CHARS: usize = 64;
    /// One id as a regular expression, without anchors (batches repeat it).
    pub const PATTERN: &'static str = "[A-Za-z0-9_:.-]{1,64}";

    /// Checks the rules and wraps the id.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `track_id`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > Self::MAX_CHARS {
            return Err(ValidationError::new("track_id", "must be 1–64 characters"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-')) {
            return Err(ValidationError::new("track_id", "may contain only letters A-Z a-z, digits and _ : . -"));
        }
        Ok(Self(s.to_owned()))
    }
}
text_value!(TrackId);

/// The name a client gives its session at login ("Kitchen speaker", "Pixel
/// 8"): 1–64 printable characters, not all spaces. Shown in the account's
/// list of sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceName(String);

impl DeviceName {
    /// The most characters a name may have.
    pub const MAX_CHARS: usize = 64;

    /// The characters a name may not hold, as a regular-expression class
    /// body: controls, and the invisible format characters (bidirectional
    /// controls, zero-width characters, the BOM) that could make a name
    /// shown to an approver read as something else.
    pub const FORBIDDEN_CLASS: &str = "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb";

    /// Checks the rules and wraps the name.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `device_name`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let length = s.chars().count();
        if length == 0 || length > Self::MAX_CHARS || s.trim().is_empty() {
            return Err(ValidationError::new("device_name", "must be 1–64 characters, not all spaces"));
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::new("device_name", "may not contain control characters"));
        }
        if s.chars().any(is_invisible_format) {
            return Err(ValidationError::new(
                "device_name",
                "may not contain bidirectional controls or invisible characters (U+200B–U+200F, U+202A–U+202E, …)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Unicode's invisible format characters (general category Cf) that can
/// reorder or hide text: bidirectional marks, embeddings and isolates,
/// zero-width characters, the soft hyphen, the BOM, interlinear
/// annotations and tag characters.
pub(crate) fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}
text_value!(DeviceName);

/// `ip`, with an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) taken as the
/// IPv4 address it carries.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client is counted under by rate and connection limits: its
/// IPv4 address, or its IPv6 /64 (one subscriber gets a whole /64, so
/// counting single IPv6 addresses would let anyone rotate past any limit).
pub fn rate_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match canonical_ip(ip) {
        std::net::IpAddr::V6(v6) => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)))
        }
        v4 => v4,
    }
}

/// The short code a person types to sign a device in (RFC 8628): 8 letters
/// of `BCDFGHJKLMNPQRSTVWXZ` (no vowels, so no words; no look-alikes),
/// shown as `XXXX-XXXX`. Parsing ignores case, dashes and spaces; the value
/// is kept without the dash.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserCode(String);

impl UserCode {
    /// The letters a user code is made of.
    pub const ALPHABET: &'static [u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
    /// How many letters a user code has.
    pub const LEN: usize = 8;

    /// Reads a code as a person typed it.
    ///
    /// # Errors
    /// A [`ValidationError`] on `user_code` unless it is 8 letters of the alphabet.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("user_code", "must be 8 letters shown as XXXX-XXXX");
        if s.len() > 32 {
            return Err(invalid());
        }
        let code: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\u{2010}'..='\u{2015}'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if code.len() != Self::LEN || !code.bytes().all(|b| Self::ALPHABET.contains(&b)) {
            return Err(invalid());
        }
        Ok(Self(code))
    }

    /// A new random code.
    #[cfg(feature = "service")]
    pub fn generate() -> Self {
        use rand::Rng as _;
        let mut rng = rand::rng();
        let code =
            (0..Self::LEN).map(|_| char::from(Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())])).collect();
        Self(code)
    }

    /// The 8 letters, without the dash (as stored).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first four letters and the last four.
    pub fn halves(&self) -> (&str, &str) {
        self.0.split_at(Self::LEN / 2)
    }
}

/// `XXXX-XXXX`, as a person reads it.
impl fmt::Display for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, tail) = self.halves();
        write!(f, "{head}-{tail}")
    }
}

/// Shown, unlike a secret: the person reads it off the device's screen.
impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserCode({self})")
    }
}

impl FromStr for UserCode {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What one favorites call takes: 1–50 distinct track ids, in the order they
/// were first given. The only place the batch rule is written; the service
/// takes nothing else, and the SDK checks with it before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackBatch(Vec<TrackId>);

impl TrackBatch {
    /// The most ids in one batch.
    pub const MAX: usize = 50;

    /// A batch from a comma-separated list (`?track_id=a,b,c`).
    ///
    /// # Errors
    /// A [`ValidationError`] on `track_id` for an empty item (`a,,b`), an
    /// invalid id, or more than 50 ids.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let mut ids = Vec::new();
        for (n, part) in s.split(',').enumerate() {
            if n >= Self::MAX {
                return Err(Self::too_many());
            }
            ids.push(TrackId::parse(part)?);
        }
        Self::new(ids)
    }

    /// A batch of `ids`; a repeated id counts once, where it first appears.
    ///
    /// # Errors
    /// A [`ValidationError`] on `track_id` for no ids or more than 50.
    pub fn new(ids: impl IntoIterator<Item = TrackId>) -> Result<Self, ValidationError> {
        let mut batch: Vec<TrackId> = Vec::new();
        for id in ids {
            if !batch.contains(&id) {
                if batch.len() == Self::MAX {
                    return Err(Self::too_many());
                }
                batch.push(id);
            }
        }
        if batch.is_empty() {
            return Err(ValidationError::new("track_id", "is required"));
        }
        Ok(Self(batch))
    }

    fn too_many() -> ValidationError {
        ValidationError::new("track_id", "at most 50 ids at once")
    }

    /// The ids, in order.
    pub fn ids(&self) -> &[TrackId] {
        &self.0
    }
}

impl std::ops::Deref for TrackBatch {
    type Target = [TrackId];

    fn deref(&self) -> &[TrackId] {
        &self.0
    }
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary account.
    #[default]
    User,
    /// May list every user (`GET /user/all`).
    Admin,
    /// (v1.2) An anonymous account from `POST /user/guest`: no username,
    /// address or password; favorites and sessions only, until it upgrades.
    Guest,
}

impl Role {
    /// `"user"`, `"admin"` or `"guest"`, as stored and as put in tokens.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Guest => "guest",
        }
    }

    /// A role an operator may give: `user` or `admin` (a guest becomes a
    /// user only by upgrading itself).
    ///
    /// # Errors
    /// A [`ValidationError`] naming `role` for anything else.
    pub fn assignable(s: &str) -> Result<Self, ValidationError> {
        match s.parse()? {
            Role::Guest => Err(ValidationError::new("role", "must be user or admin")),
            role => Ok(role),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            "guest" => Ok(Role::Guest),
            _ => Err(ValidationError::new("role", "must be user or admin")),
        }
    }
}

/// The language of an account's mails and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English (the default).
    #[default]
    En,
    /// Russian.
    Ru,
}

impl Locale {
    /// Every locale, in the order `Accept-Language` ties are broken.
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Ru];

    /// `"en"` or `"ru"`, as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ru => "ru",
        }
    }

    /// The locale an `Accept-Language` header prefers among ours (by
    /// q-value, then order), or `None` when it names none of them.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(Locale, f32)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(locale) = Locale::ALL.into_iter().find(|l| l.as_str() == primary) else { continue };
            if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((locale, q));
            }
        }
        best.map(|(l, _)| l)
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Locale {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Locale::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| ValidationError::new("locale", "must be en or ru"))
    }
}

/// How a user is named at login or by an operator: a username, or an email
/// (anything with `@`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Look the account up by username (case-insensitively).
    Username(Username),
    /// Look the account up by email.
    Email(Email),
}

impl Login {
    /// Parses a login name: with `@` it must be a valid email, otherwise a
    /// valid username.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `username`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.contains('@') {
            Email::parse(s).map(Login::Email).map_err(|e| {
                ValidationError::new("username", format!("is neither a username nor a valid email ({})", e.rule))
            })
        } else {
            Username::parse(s).map(Login::Username)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_patterns_say_what_the_rules_say() {
        use super::{TrackId, Username};
        assert!(Username::PATTERN.contains(&format!("{{{},{}}}", Username::MIN_CHARS, Username::MAX_CHARS)));
        assert!(TrackId::PATTERN.ends_with(&format!("{{1,{}}}", TrackId::MAX_CHARS)));
    }

    #[test]
    fn device_names_refuse_what_would_mislead_an_approver() {
        assert_eq!(DeviceName::parse("Living room TV 📺").unwrap().as_str(), "Living room TV 📺");
        assert!(DeviceName::parse("Кухня").is_ok());
        for bad in ["\u{202e}VT moor gniviL", "Living\u{200b}room", "TV\u{2066}x\u{2069}", "\u{feff}TV", "a\u{e0041}"] {
            let error = DeviceName::parse(bad).unwrap_err();
            assert_eq!(error.field, "device_name", "{bad:?}");
            assert!(error.to_string().contains("invisible"), "{error}");
        }
        assert!(DeviceName::parse("TV\u{7}").is_err());
        assert!(DeviceName::parse("   ").is_err());
        assert!(DeviceName::parse(&"x".repeat(65)).is_err());
    }

    use super::*;

    #[test]
    fn locale_from_accept_language_takes_the_preferred_one_we_have() {
        let cases = [
            ("ru-RU,ru;q=0.9,en;q=0.8", Some(Locale::Ru)),
            ("en-US,en;q=0.9,ru;q=0.8", Some(Locale::En)),
            ("de-DE, ru;q=0.5, en;q=0.7", Some(Locale::En)),
            ("de, fr;q=0.9", None),
            ("RU", Some(Locale::Ru)),
            ("ru;q=0, en;q=0.1", Some(Locale::En)),
            ("", None),
            ("ru;q=abc", Some(Locale::Ru)),
        ];
        for (header, expected) in cases {
            assert_eq!(Locale::from_accept_language(header), expected, "{header:?}");
        }
        assert_eq!("ru".parse::<Locale>(), Ok(Locale::Ru));
        assert!("RU".parse::<Locale>().is_err(), "stored values are exact");
    }

    #[test]
    fn username_accepts_the_allowed_alphabet_at_both_length_bounds() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse("A_b.c-9").is_ok());
    }

    #[test]
    fn username_rejects_wrong_lengths_and_characters_naming_the_field() {
        for bad in ["", "ab", &"a".repeat(33), "al ice", "al@ice", "alïce", "a/b"] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, "username", "{bad:?}");
        }
    }

    #[test]
    fn username_folds_case_for_uniqueness() {
        assert_eq!(Username::parse("AlIce").unwrap().folded(), "alice");
        assert_eq!(Username::parse("AlIce").unwrap().as_str(), "AlIce");
    }

    #[test]
    fn email_is_lower_cased_and_checked() {
        assert_eq!(Email::parse("Bob@Example.COM").unwrap().as_str(), "bob@example.com");
        for bad in ["", "bob", "bob@", "@example.com", "bob@@example.com", "bob@localhost", "Bob <bob@example.com>"] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long).unwrap_err().field, "email");
    }

    #[test]
    fn password_counts_unicode_characters_not_bytes() {
        assert!(Password::parse("пароль12").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert_eq!(Password::parse("short").unwrap_err().field, "password");
        assert_eq!(Password::parse(&"é".repeat(129)).unwrap_err().field, "password");
    }

    #[test]
    fn password_is_never_shown_by_debug() {
        let p = Password::parse("hunter2hunter2").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert!(!format!("{:?}", Some(&p)).contains("hunter2"));
    }

    #[test]
    fn presented_password_skips_the_length_minimum_but_not_emptiness() {
        assert!(Password::presented("password", "short").is_ok());
        assert_eq!(Password::presented("current_password", "").unwrap_err().field, "current_password");
    }

    #[test]
    fn track_id_accepts_integers_uuids_and_catalogue_ids() {
        for ok in ["1", "42", "0190a6c4-8f1e-7c3a-9d2b-1a2b3c4d5e6f", "spotify:track:6rqhFgbbKwnb9MLmUQDhG6", "a.b_c-d"]
        {
            assert!(TrackId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a,b", "a b", &"x".repeat(65), "трек"] {
            assert_eq!(TrackId::parse(bad).unwrap_err().field, "track_id", "{bad:?}");
        }
    }

    #[test]
    fn track_batches_dedupe_keep_order_and_cap_at_fifty() {
        let ids = TrackBatch::parse("b,a,b").unwrap();
        assert_eq!(ids.iter().map(TrackId::as_str).collect::<Vec<_>>(), ["b", "a"]);
        assert!(TrackBatch::parse("a,,b").is_err());
        assert!(TrackBatch::parse("").is_err());
        let fifty = (0..50).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(TrackBatch::parse(&fifty).unwrap().len(), 50);
        let fifty_one = (0..51).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        assert!(TrackBatch::parse(&fifty_one).is_err());
    }

    #[test]
    fn role_round_trips_through_text() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn login_with_at_sign_is_an_email() {
        assert!(matches!(Login::parse("Bob@Example.com").unwrap(), Login::Email(e) if e.as_str() == "bob@example.com"));
        assert!(matches!(Login::parse("bob").unwrap(), Login::Username(_)));
        assert_eq!(Login::parse("bob@").unwrap_err().field, "username");
    }

    #[test]
    fn user_codes_ignore_case_and_dashes_and_show_with_one() {
        let code = UserCode::parse("bcdf-ghjk").unwrap();
        assert_eq!(code.as_str(), "BCDFGHJK");
        assert_eq!(code.to_string(), "BCDF-GHJK");
        assert_eq!(UserCode::parse("BCDFGHJK").unwrap(), code);
        assert_eq!(UserCode::parse(" bcdf ghjk ").unwrap(), code);
        for bad in ["", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "ВCDF-GHJK"] {
            assert_eq!(UserCode::parse(bad).unwrap_err().field, "user_code", "{bad:?}");
        }
        #[cfg(feature = "service")]
        for _ in 0..100 {
            let fresh = UserCode::generate();
            assert_eq!(UserCode::parse(&fresh.to_string()).unwrap(), fresh);
        }
    }

    #[test]
    fn user_ids_are_time_ordered() {
        let a = UserId::new();
        let b = UserId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<UserId>().unwrap(), a);
    }
}
