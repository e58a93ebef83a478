//! Request plumbing shared by every route: the request context, bounded JSON
//! bodies, credentials, cookies, and the final touches every response gets
//! (request id, hardening headers, access log, metrics).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, TryStreamExt};
use serde::de::DeserializeOwned;
use user_core::UnauthorizedReason;
use warp::http::{HeaderValue, Method, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ApiError;
use crate::security::{Action, Policy, SharedPolicy};
use crate::telemetry::is_sane_request_id;
use user_core::service::ClientInfo;

/// The largest request body accepted (API.md: 64 KiB).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Who is asking, and how to find their request in the logs.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The request id: the client's `X-Request-Id` when sane, else a new one.
    pub id: String,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The request headers (for origin checks).
    pub headers: warp::http::HeaderMap,
    /// Whether the client reached us over TLS, as far as we can tell: on this
    /// server's own TLS listener, or a trusted proxy said so
    /// (`X-Forwarded-Proto` / `Forwarded`). Cookies set in answer are then
    /// `Secure`, whatever the listener.
    pub https: bool,
    /// The security policy in force.
    pub policy: SharedPolicy,
}

impl RequestCtx {
    /// The client as the library records it.
    pub fn client(&self) -> ClientInfo {
        ClientInfo { user_agent: self.user_agent.clone(), ip: self.ip, ..ClientInfo::default() }
    }

    /// Counts a throttled action from this client.
    ///
    /// # Errors
    /// 429 when over the limit.
    pub async fn throttle(&self, action: Action) -> Result<(), ApiError> {
        match (&self.policy.throttle, self.ip) {
            (Some(throttle), Some(ip)) => throttle.check(action, ip).await,
            _ => Ok(()),
        }
    }

    /// Refuses a cross-site request authenticated by cookie.
    ///
    /// # Errors
    /// 403 when it comes from another site.
    pub fn check_same_site(&self, creds: &Credentials) -> Result<(), ApiError> {
        if creds.access_from_header { Ok(()) } else { self.policy.check_same_site(&self.headers) }
    }
}

/// The connection a request came on, put on each request by [`crate::serve`].
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS terminated by this server.
    pub tls: bool,
}

/// The route template a response came from, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

impl RequestCtx {
    /// The context of a request with `headers`, which came on `served` (by
    /// [`crate::serve`]) or from `tested` (warp's own server or tests).
    pub fn new(
        headers: warp::http::HeaderMap,
        served: Option<PeerAddr>,
        tested: Option<SocketAddr>,
        policy: &SharedPolicy,
    ) -> Self {
        let given = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|id| is_sane_request_id(id));
        let peer = served.map(|p| p.addr).or(tested);
        RequestCtx {
            id: given.map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned),
            ip: policy.client_ip(peer, &headers),
            https: served.is_some_and(|p| p.tls) || policy.forwarded_https(peer, &headers),
            user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
            headers,
            policy: policy.clone(),
        }
    }
}

/// A request body, not yet read.
pub type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Why a request body could not be read.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Everything read off a request before its route is chosen: one filter
/// for every route, so a request costs the same whichever route it reaches.
pub struct Arrival {
    pub method: Method,
    pub path: warp::path::FullPath,
    /// The query string as sent, if any.
    pub query: Option<String>,
    pub ctx: RequestCtx,
    pub body: BodyStream,
}

/// Extracts the [`Arrival`]; never rejects.
pub fn arrival(
    policy: &SharedPolicy,
) -> impl Filter<Extract = (Arrival,), Error = std::convert::Infallible> + Clone + use<> {
    let policy = policy.clone();
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().map(Some).or(warp::any().map(|| None)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::addr::remote())
        // Only an outer filter reading the body first could leave none to
        // stream: a route that reads it then fails with a 400, like a broken upload.
        .and(warp::body::stream().map(boxed_body).or(warp::any().map(body_already_read)).unify())
        .map(move |method, path, query, headers, served, tested, body| Arrival {
            method,
            path,
            query,
            ctx: RequestCtx::new(headers, served, tested, &policy),
            body,
        })
}

fn body_already_read() -> BodyStream {
    Box::pin(futures_util::stream::once(std::future::ready(Err("the request body was already read".into()))))
}

fn boxed_body<S, B>(body: S) -> BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(body.map_ok(|mut chunk| chunk.copy_to_bytes(chunk.remaining())).map_err(Into::into))
}

/// A request body as read: its bytes, and whether they are a form
/// (`application/x-www-form-urlencoded`) rather than JSON.
#[derive(Debug)]
pub struct Body {
    pub bytes: Bytes,
    pub form: bool,
}

/// Reads a JSON request body (or, when `forms`, a URL-encoded form) of at
/// most [`MAX_BODY_BYTES`].
///
/// # Errors
/// 400 for an unreadable body or a malformed `Content-Type`/`Content-Length`,
/// 413 past the limit, 415 for another media type.
pub async fn read_body(headers: &warp::http::HeaderMap, mut body: BodyStream, forms: bool) -> Result<Body, ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE)?.unwrap_or_default();
    let length = match header_str(headers, header::CONTENT_LENGTH)? {
        Some(n) => Some(n.parse::<u64>().map_err(|_| invalid_header(header::CONTENT_LENGTH))?),
        None => None,
    };
    if length.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
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

/// The tokens a request carries.
#[derive(Clone, Default)]
pub struct Credentials {
    /// From `Authorization: Bearer`, else the `access_token` cookie.
    access: Option<String>,
    /// Whether `access` came from the header (so no cookie can have been forged).
    pub access_from_header: bool,
    /// From the `refresh_token` cookie.
    refresh: Option<String>,
    /// A token cookie the request carries more than once.
    duplicate: Option<&'static str>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access", &self.access.as_ref().map(|_| "[redacted]"))
            .field("access_from_header", &self.access_from_header)
            .field("refresh", &self.refresh.as_ref().map(|_| "[redacted]"))
            .field("duplicate", &self.duplicate)
            .finish()
    }
}

impl Credentials {
    /// The tokens in `headers`: `Authorization: Bearer`, else the
    /// `access_token` cookie; the `refresh_token` cookie.
    pub fn from_headers(headers: &warp::http::HeaderMap) -> Self {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let (mut access_cookie, mut refresh, mut duplicate) = (None, None, None);
        let pairs = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';'));
        for (name, value) in pairs.filter_map(|pair| pair.trim().split_once('=')) {
            let (slot, name) = match name.trim() {
                "access_token" => (&mut access_cookie, "access_token"),
                "refresh_token" => (&mut refresh, "refresh_token"),
                _ => continue,
            };
            if slot.replace(value.to_owned()).is_some() {
                duplicate = Some(name);
            }
        }
        Credentials { access_from_header: bearer.is_some(), access: bearer.or(access_cookie), refresh, duplicate }
    }

    /// Refuses a request carrying a token cookie twice: a sibling subdomain
    /// or a man-in-the-middle on plain http can plant a second cookie of the
    /// same name ("cookie tossing"), and which one a server reads first is
    /// the attacker's choice.
    ///
    /// # Errors
    /// 400 naming the cookie.
    pub fn check(&self) -> Result<(), ApiError> {
        match self.duplicate {
            Some(name) => Err(ApiError::BadRequest(format!("the {name} cookie is sent more than once"))),
            None => Ok(()),
        }
    }

    /// The access token, if any (after [`Credentials::check`]).
    ///
    /// # Errors
    /// 400 for a duplicated token cookie.
    pub fn access_opt(&self) -> Result<Option<&str>, ApiError> {
        self.check()?;
        Ok(self.access.as_deref())
    }

    /// The refresh token, if any (after [`Credentials::check`]).
    ///
    /// # Errors
    /// 400 for a duplicated token cookie.
    pub fn refresh_opt(&self) -> Result<Option<&str>, ApiError> {
        self.check()?;
        Ok(self.refresh.as_deref())
    }

    /// The access token, or 401.
    ///
    /// # Errors
    /// 400 for a duplicated token cookie; `Unauthorized(Missing)` when there is none.
    pub fn access(&self) -> Result<&str, ApiError> {
        self.access_opt()?.ok_or(ApiError::Core(user_core::Error::Unauthorized(UnauthorizedReason::Missing)))
    }

    /// The refresh token, or 401.
    ///
    /// # Errors
    /// 400 for a duplicated token cookie; `Unauthorized(Missing)` when there is none.
    pub fn refresh(&self) -> Result<&str, ApiError> {
        self.refresh_opt()?.ok_or(ApiError::Core(user_core::Error::Unauthorized(UnauthorizedReason::Missing)))
    }
}

/// Cookie policy: `HttpOnly; SameSite=Strict; Path=/`, and `Secure` either
/// always (by setting) or for each request that arrived over TLS.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Add `Secure` to every cookie; otherwise only to cookies answering a
    /// request made over TLS.
    pub secure: bool,
}

impl CookiePolicy {
    /// Appends a `Set-Cookie` for `name=value` living `max_age` seconds (0
    /// clears it), `Secure` when the policy or the request's transport says so.
    pub fn set(&self, response: &mut Response, ctx: &RequestCtx, name: &str, value: &str, max_age: u64) {
        let secure = if self.secure || ctx.https { "; Secure" } else { "" };
        let cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// Clears both token cookies.
    pub fn clear(&self, response: &mut Response, ctx: &RequestCtx) {
        self.set(response, ctx, "access_token", "", 0);
        self.set(response, ctx, "refresh_token", "", 0);
    }
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

/// Serialises `body` as the JSON reply.
pub fn json<T: serde::Serialize>(body: &T) -> Response {
    warp::reply::json(body).into_response()
}

/// Adds what every response carries (request id, hardening headers, CORS
/// for allowed origins), then writes the access log line and metrics.
pub fn finish(started: Instant, method: &Method, origin: Option<&str>, policy: &Policy, reply: impl Reply) -> Response {
    let mut response = reply.into_response();
    let headers = response.headers_mut();
    if let Some(origin) = origin.filter(|o| policy.cors_allows(o))
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("x-request-id, retry-after"));
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    if !headers.contains_key("x-request-id")
        && let Ok(id) = HeaderValue::from_str(&uuid::Uuid::now_v7().simple().to_string())
    {
        headers.insert("x-request-id", id);
    }
    // Every answer may carry a token or user data: nothing is cacheable.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The account pages set a CSP of their own; everything else loads nothing.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    let route = response.extensions().get::<RouteLabel>().map_or("unmatched", |r| r.0);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    crate::telemetry::log_access(request_id, method.as_str(), route, status, elapsed);
    crate::telemetry::record_request(route, status, elapsed);
    response
}

/// What [`crate::serve`] keeps of a request so that, should it run out of
/// time, its 503 is finished like any other response.
#[derive(Debug)]
pub struct RequestHead {
    started: Instant,
    method: Method,
    // Clones of the request's own buffers: no allocation per request.
    origin: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
}

impl RequestHead {
    /// Notes the parts of `request` that [`finish`] needs.
    pub fn of<B>(request: &warp::http::Request<B>) -> Self {
        let headers = request.headers();
        Self {
            started: Instant::now(),
            method: request.method().clone(),
            origin: headers.get(header::ORIGIN).cloned(),
            request_id: headers.get("x-request-id").filter(|v| v.to_str().is_ok_and(is_sane_request_id)).cloned(),
        }
    }

    /// The 503 for a request that exceeded the request timeout, with the
    /// request id, hardening headers, access log line and metrics.
    pub fn timed_out(self, policy: &Policy) -> Response {
        let mut response = crate::error::error_response(
            warp::http::StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long; try again".into(),
        );
        if let Some(id) = self.request_id {
            response.headers_mut().insert("x-request-id", id);
        }
        response.extensions_mut().insert(RouteLabel("timed out"));
        let origin = self.origin.as_ref().and_then(|v| v.to_str().ok());
        finish(self.started, &self.method, origin, policy, response)
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

    #[test]
    fn request_ids_from_clients_are_accepted_only_when_sane() {
        assert!(is_sane_request_id("abc-123_x.y"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("a b"));
        assert!(!is_sane_request_id(&"a".repeat(65)));
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
