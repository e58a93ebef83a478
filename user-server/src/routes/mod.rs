//! The routes of API.md, declared once each in [`table`]: from an entry come
//! its handler's mounting, its metrics and log label, the methods a 405
//! lists in `Allow`, and its operation in the OpenAPI document.
//!
//! A request's steps, one name each: [`arrival`] reads it; the [`Router`]
//! picks its [`endpoint`] (404/405 there); the endpoint's handler reads the
//! query and body, throttles, checks the guard and runs inside [`respond`];
//! [`finish`] adds the common headers and writes the access log and metrics.
//!
//! A handler is an `async fn(Call<G>)`: the guard type `G` says what the route
//! needs of its caller (`Open`, `Authenticated`, `Admin`, a session to
//! end, a refresh cookie), and the only way to get a `G` is the route's filter
//! running its check first. For any method but GET and HEAD, the guard's
//! same-site rule runs before the handler too. Handlers parse the request into
//! domain types, call `UserService` and render the reply; every rule lives in
//! `user-core`.

mod account;
mod admin;
mod call;
mod device;
mod endpoint;
mod factors;
mod favorites;
mod guard;
mod guests;
mod ops;
mod pages;
mod passkeys;
mod pattern;
mod providers;
mod recovery;
mod router;
mod session;
mod table;

use std::sync::Arc;
use std::time::Instant;

use user_core::api::MainResponse;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use call::Call;
use endpoint::{Handler, respond};
use router::Router;
pub(crate) use table::{endpoints, openapi_document};

use crate::AppState;
use crate::error::ApiError;
use crate::http::{Arrival, arrival, finish, json};
use crate::security::SharedPolicy;

/// Every route, with errors rendered as `{message, status}` and the
/// common headers, access log and metrics applied.
pub fn all(state: AppState) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    // Install the recorder before the first request is counted.
    crate::telemetry::metrics();
    let state = Arc::new(state);
    let routes = table::endpoints()
        .iter()
        // With a metrics listener of its own, `/metrics` is not served here.
        .filter(|endpoint| endpoint.path != "/metrics" || state.metrics_public)
        .map(|endpoint| (endpoint, (endpoint.mount)(endpoint, &state)))
        .collect();
    as_filter(Router::new(routes), state.policy.clone())
}

/// Only `GET /metrics`, for the separate metrics listener (`USER_METRICS_LISTEN`).
pub fn metrics_only(
    policy: SharedPolicy,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    crate::telemetry::metrics();
    let endpoint = table::endpoints().iter().find(|e| e.path == "/metrics").expect("the table has /metrics");
    let handler: Handler = Box::new(move |arrival: Arrival, _| {
        let span = endpoint::request_span(&endpoint.label, &arrival.ctx);
        Box::pin(respond(&endpoint.label, arrival.ctx.id, span, async { Ok(ops::render_metrics()) }))
    });
    as_filter(Router::new(vec![(endpoint, handler)]), policy)
}

/// The warp filter of a router: each request's [`arrival`], then a CORS
/// preflight answer or the [`Router`]'s, then [`finish`] (the common
/// headers, access log and metrics).
fn as_filter(
    router: Router,
    policy: SharedPolicy,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let router = Arc::new(router);
    let preflight_policy = policy.clone();
    warp::any().map(Instant::now).and(arrival(&policy)).then(move |started: Instant, arrival: Arrival| {
        let origin = arrival.ctx.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let method = arrival.method.clone();
        let https = arrival.ctx.https;
        let reply = preflight(&preflight_policy, &arrival)
            .map_or_else(|| router.route(arrival), |r| Box::pin(std::future::ready(r)));
        let policy = policy.clone();
        async move {
            let reply = reply.await;
            finish(started, &method, origin.as_deref(), https, &policy, reply)
        }
    })
}

/// CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`):
/// 204 for an allowed origin, 403 otherwise. Without CORS origins configured
/// it is `None`, and `OPTIONS` is 405 like any other unknown method.
fn preflight(policy: &SharedPolicy, arrival: &Arrival) -> Option<Response> {
    let headers = &arrival.ctx.headers;
    if arrival.method != Method::OPTIONS
        || policy.cors_origins.is_empty()
        || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    if !policy.cors_allows(origin) {
        return Some(ApiError::Forbidden("origin not allowed".into()).into_response());
    }
    let mut response = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-request-id"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response.extensions_mut().insert(crate::http::RouteLabel("OPTIONS (preflight)"));
    Some(response)
}

fn success() -> Response {
    json(&MainResponse::success())
}
