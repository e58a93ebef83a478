//! OpenAPI schemas of the domain types, written from their own rules, for
//! the wire types' fields (`#[schema(schema_with = …)]`) and the routes'
//! parameters: each rule is written once, here and in its type.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

use super::{DeviceName, Email, Password, TrackBatch, TrackId, Username};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A [`Username`].
pub fn username() -> ObjectBuilder {
    let (min, max) = (Username::MIN_CHARS, Username::MAX_CHARS);
    string()
        .description(Some(format!("A username: {min}–{max} characters of `A-Z a-z 0-9 _ . -`.")))
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(Username::PATTERN))
}

/// A [`DeviceName`]: printable, not all spaces, no invisible format characters.
pub fn device_name() -> ObjectBuilder {
    let bad = DeviceName::FORBIDDEN_CLASS;
    string()
        .description(Some(format!(
            "A name for the session: 1–{} characters, not all spaces; no control, bidirectional-control or \
             invisible characters.",
            DeviceName::MAX_CHARS
        )))
        .min_length(Some(1))
        .max_length(Some(DeviceName::MAX_CHARS))
        .pattern(Some(format!("^[^{bad}]*[^\\s{bad}][^{bad}]*$")))
}

/// An [`Email`].
pub fn email() -> ObjectBuilder {
    string()
        .description(Some("An email address (compared and stored lower-cased)."))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(Email::MAX_CHARS))
}

/// A new [`Password`] (the rules a password must meet when it is set).
pub fn new_password() -> ObjectBuilder {
    let (min, max) = (Password::MIN_CHARS, Password::MAX_CHARS);
    string()
        .description(Some(format!(
            "A new password: {min}–{max} characters, not one of the 100,000 most common passwords (as typed or \
             lower-cased), nor, when the server checks, one reported breached."
        )))
        .min_length(Some(min))
        .max_length(Some(max))
}

/// One [`TrackId`], e.g. in a path; `except` are words the place cannot
/// hold (a sibling route's literal).
pub fn track_id(except: &[&str]) -> ObjectBuilder {
    let not: String = except.iter().map(|w| format!("(?!{w}$)")).collect();
    string().pattern(Some(format!("^{not}{}$", TrackId::PATTERN)))
}

/// A [`TrackBatch`] as a comma-separated list (`?track_id=a,b,c`).
pub fn track_batch() -> ObjectBuilder {
    let id = TrackId::PATTERN;
    string().pattern(Some(format!("^{id}(,{id}){{0,{}}}$", TrackBatch::MAX - 1)))
}
