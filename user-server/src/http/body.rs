//! Request bodies (bounded JSON or forms) and query strings.

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use serde::de::DeserializeOwned;
use warp::http::header;

use super::{BodyStream, MAX_BODY_BYTES};
use crate::error::ApiError;

/// A request body as read: its bytes, and whether they are a form
/// (`application/x-www-form-urlencoded`) rather than JSON.
#[derive(Debug)]
pub struct Body {
    pub bytes: Bytes,
    pub form: bool,
}

/// Reads a JSON request body (or, when `forms`, a URL-encoded form) of at
/// most [`MAX_BODY_BYTES`]. When `optional`, a request without
/// `Content-Type` and without content has an empty body.
///
/// # Errors
/// 400 for an unreadable body or a malformed `Content-Type`/`Content-Length`,
/// 413 past the limit, 415 for another media type.
pub async fn read_body(
    headers: &warp::http::HeaderMap,
    mut body: BodyStream,
    forms: bool,
    optional: bool,
) -> Result<Body, ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE)?.unwrap_or_default();
    let length = match header_str(headers, header::CONTENT_LENGTH)? {
        Some(n) => Some(n.parse::<u64>().map_err(|_| invalid_header(header::CONTENT_LENGTH))?),
        None => None,
    };
    if length.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    if optional && content_type.is_empty() && length.unwrap_or(0) == 0 {
        return Ok(Body { bytes: Bytes::new(), form: false });
    }
    let form = forms && is_form(content_type);
    if !form && !is_json(content_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) =
        body.try_next().await.map_err(|_| ApiError::BadRequest("could not read the request body".into()))?
    {
        if buf.len() + chunk.len() > MAX_BODY_BYTES as usize {
            return Err(ApiError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Body { bytes: buf.freeze(), form })
}

/// A header's value as text, if present.
fn header_str(headers: &warp::http::HeaderMap, name: header::HeaderName) -> Result<Option<&str>, ApiError> {
    match headers.get(&name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| invalid_header(name)),
    }
}

fn invalid_header(name: header::HeaderName) -> ApiError {
    ApiError::BadRequest(format!("Invalid request header {:?}", name.as_str()))
}

fn is_form(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case(FORM)
}

/// The media type of HTML forms, which OAuth clients send.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// Parses a URL-encoded form into `T`; a parameter given twice is an error
/// (RFC 6749 §3.2), an unknown one is ignored.
///
/// # Errors
/// [`ApiError::BadRequest`] naming what is wrong.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body).map_err(|e| ApiError::BadRequest(format!("malformed form: {e}")))
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON object into `T`; errors name the field at fault.
///
/// # Errors
/// [`ApiError::BadRequest`] for malformed JSON, a non-object, or a missing or
/// mistyped field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("the request body must be a JSON object".into()));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::BadRequest(inner.to_string())
        } else {
            ApiError::BadRequest(format!("{path}: {inner}"))
        }
    })
}

/// The query string as name/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses a query string as sent (`None`: there was none).
    ///
    /// # Errors
    /// 400 for a malformed query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw {
            None => Ok(Self::default()),
            Some(raw) => serde_urlencoded::from_str(raw)
                .map(Query)
                .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}"))),
        }
    }

    /// A parameter given at most once.
    ///
    /// # Errors
    /// 400 when given more than once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::BadRequest(format!("{name}: give it once")));
        }
        Ok(first)
    }

    /// Every value of a repeatable, comma-separated parameter, joined by commas.
    pub fn joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_suffixes() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", "application/problem+json"] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "", "json"] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_body_parses_to_a_value_or_a_400_never_a_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let outcome = parse_json::<user_core::api::RegisterRequest>(&body);
            proptest::prop_assert!(outcome.is_ok() || matches!(outcome, Err(ApiError::BadRequest(_))));
            let outcome = parse_json::<user_core::api::UpdateRequest>(&body);
            proptest::prop_assert!(outcome.is_ok() || matches!(outcome, Err(ApiError::BadRequest(_))));
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            username: String,
        }
        let msg = |body: &str| match parse_json::<T>(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg("{}").contains("missing field `username`"));
        assert!(msg(r#"{"username": 5}"#).starts_with("username: invalid type"));
        assert!(msg("[]").contains("JSON object"));
        assert!(msg("{").starts_with("malformed JSON"));
    }
}
