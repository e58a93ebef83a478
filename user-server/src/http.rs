//! A request's way in and out, shared by every route: what is read off it
//! ([`arrival`], [`RequestCtx`]), and the final touches every response gets
//! ([`finish`]: request id, hardening headers, access log, metrics). Bodies
//! and queries are in [`body`], tokens and cookies in [`credentials`].

mod body;
mod credentials;

pub use body::{Body, FORM, Query, parse_form, parse_json, read_body};
pub use credentials::{CookiePolicy, Credentials};

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::{Stream, TryStreamExt};
use warp::http::{HeaderValue, Method, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ApiError;
use crate::security::{Action, Policy, SharedPolicy};
use crate::telemetry::is_sane_request_id;
use user_core::service::{ClientInfo, DeviceCookies};

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
        let cookies = self.headers.get_all(warp::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok());
        let pairs = cookies.flat_map(|v| v.split(';')).filter_map(|pair| pair.trim().split_once('='));
        ClientInfo {
            user_agent: self.user_agent.clone(),
            ip: self.ip,
            device_cookies: DeviceCookies::from_pairs(pairs),
            ..ClientInfo::default()
        }
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

/// Serialises `body` as the JSON reply.
pub fn json<T: serde::Serialize>(body: &T) -> Response {
    warp::reply::json(body).into_response()
}

/// Adds what every response carries (request id, hardening headers, CORS
/// for allowed origins, HSTS over https), then writes the access log line
/// and metrics.
pub fn finish(
    started: Instant,
    method: &Method,
    origin: Option<&str>,
    https: bool,
    policy: &Policy,
    reply: impl Reply,
) -> Response {
    let mut response = reply.into_response();
    let headers = response.headers_mut();
    if https && let Some(hsts) = &policy.hsts.0 {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
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
    https: bool,
}

impl RequestHead {
    /// Notes the parts of `request` that [`finish`] needs; `https`: it came
    /// over this server's TLS.
    pub fn of<B>(request: &warp::http::Request<B>, https: bool) -> Self {
        let headers = request.headers();
        Self {
            https,
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
        finish(self.started, &self.method, origin, self.https, policy, response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_clients_are_accepted_only_when_sane() {
        assert!(is_sane_request_id("abc-123_x.y"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("a b"));
        assert!(!is_sane_request_id(&"a".repeat(65)));
    }
}
