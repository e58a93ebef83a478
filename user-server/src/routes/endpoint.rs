//! One route ([`Endpoint`]) and the steps that run a request on it: read
//! the query and body, throttle, check the guard and the same-site rule, run
//! the handler ([`respond`]: inside the request's span, its error or panic
//! rendered as the contract's body).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::openapi::path::{HttpMethod, Operation};
use warp::Reply;
use warp::http::{HeaderValue, Method};
use warp::reply::Response;

use super::call::Call;
use super::guard::Guard;
use super::pattern::Pattern;
use crate::AppState;
use crate::error::ApiError;
use crate::http::{Arrival, Credentials, Query, RouteLabel, read_body};
use crate::security::Action;

/// An endpoint's handler behind its guard, ready to run a request.
pub(super) type Handler = Box<dyn Fn(Arrival, Option<String>) -> BoxFuture<'static, Response> + Send + Sync>;

/// Builds an endpoint's handler over the shared state.
pub(super) type Mount = Box<dyn Fn(&'static Endpoint, &Arc<AppState>) -> Handler + Send + Sync>;

/// One route: its documented operation, what it throttles, and how to mount it.
pub(crate) struct Endpoint {
    pub method: Method,
    /// The same method, as the OpenAPI document names it.
    pub doc_method: HttpMethod,
    /// The path template, as in the OpenAPI document (`/user/track/favorite/{track_id}`).
    pub path: String,
    /// `METHOD path`, for logs and metrics.
    pub label: String,
    pub operation: Operation,
    throttle: Option<Action>,
    pub(super) pattern: Pattern,
    pub(super) mount: Mount,
}

impl Endpoint {
    /// The route documented by `P` (`#[utoipa::path]` on `handler`), run by `handler`.
    ///
    /// # Panics
    /// If `P` documents another function than `handler`, or more than one method.
    pub(super) fn of<P, G, H, F>(handler: H) -> Self
    where
        P: utoipa::Path,
        G: Guard,
        H: Fn(Call<G>) -> F + Copy + Send + Sync + 'static,
        F: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        let mut operation = P::operation();
        let id = operation.operation_id.clone().unwrap_or_default();
        let name = std::any::type_name::<H>();
        assert!(name.ends_with(&format!("::{id}")), "{name} is documented as {id}");
        let methods = P::methods();
        let method = match methods.as_slice() {
            [HttpMethod::Get] => Method::GET,
            [HttpMethod::Post] => Method::POST,
            [HttpMethod::Put] => Method::PUT,
            [HttpMethod::Patch] => Method::PATCH,
            [HttpMethod::Delete] => Method::DELETE,
            _ => panic!("{id}: documents one of GET, POST, PUT, PATCH, DELETE"),
        };
        G::document(&mut operation, writes(&method));
        let path = P::path();
        Endpoint {
            doc_method: methods[0].clone(),
            label: format!("{method} {path}"),
            pattern: Pattern::parse(&path),
            method,
            path,
            operation,
            throttle: None,
            mount: Box::new(move |endpoint, state| mount(endpoint, state, handler)),
        }
    }

    /// Counts each request against the client's `action` limit before anything else.
    pub(super) fn throttled(mut self, action: Action) -> Self {
        self.throttle = Some(action);
        self
    }

    fn has_body(&self) -> bool {
        self.operation.request_body.is_some()
    }

    /// Whether the operation's body may be left out (`DELETE /user/delete`).
    fn body_optional(&self) -> bool {
        self.operation.request_body.as_ref().is_some_and(
            |b| matches!(b, utoipa::openapi::RefOr::T(body) if body.required != Some(utoipa::openapi::Required::True)),
        )
    }

    /// Whether the body may be a URL-encoded form as well as JSON (the OAuth routes).
    fn takes_forms(&self) -> bool {
        self.operation.request_body.as_ref().is_some_and(
            |b| matches!(b, utoipa::openapi::RefOr::T(body) if body.content.contains_key(crate::http::FORM)),
        )
    }

    /// Whether errors take RFC 6749's shape (see [`ApiError::oauth`]).
    fn speaks_oauth(&self) -> bool {
        self.path.starts_with("/oauth/")
    }

    /// Routes with parameters read the query string: a path-parameter route
    /// too, to refuse the same parameter given twice. Routes without leave it
    /// alone, so a stray query on them is no error.
    fn reads_query(&self) -> bool {
        self.operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
    }

    /// The methods this endpoint answers: GET brings HEAD (RFC 9110 §9.3.2;
    /// hyper leaves the body out).
    pub(super) fn answers(&self) -> &'static [Method] {
        match self.method {
            Method::GET => &[Method::GET, Method::HEAD],
            Method::POST => &[Method::POST],
            Method::PUT => &[Method::PUT],
            Method::PATCH => &[Method::PATCH],
            _ => &[Method::DELETE],
        }
    }
}

/// Whether requests with this method change something, so the guard's
/// same-site rule applies (and is documented).
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// The handler for one endpoint: the query and body read, then throttle,
/// guard, same-site rule for writes, and the handler.
fn mount<G, H, F>(endpoint: &'static Endpoint, state: &Arc<AppState>, handler: H) -> Handler
where
    G: Guard,
    H: Fn(Call<G>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    let state = state.clone();
    let writes = writes(&endpoint.method);
    Box::new(move |arrival: Arrival, path_param: Option<String>| {
        let state = state.clone();
        let Arrival { query, ctx, body, .. } = arrival;
        let span = request_span(&endpoint.label, &ctx);
        Box::pin(respond(&endpoint.label, ctx.id.clone(), span, async move {
            let outcome = async {
                let query = if endpoint.reads_query() { Query::parse(query.as_deref())? } else { Query::default() };
                let body = if endpoint.has_body() {
                    Some(read_body(&ctx.headers, body, endpoint.takes_forms(), endpoint.body_optional()).await)
                } else {
                    None
                };
                if let Some(action) = endpoint.throttle {
                    ctx.throttle(action).await?;
                }
                let creds =
                    if G::READS_CREDENTIALS { Credentials::from_headers(&ctx.headers) } else { Credentials::default() };
                let caller = G::check(&state, &creds).await?;
                if let Some(id) = caller.user_id().filter(|_| crate::telemetry::exporting_traces()) {
                    tracing::Span::current().set_attribute("user.id", id.to_string());
                }
                if writes {
                    G::check_origin(&ctx, &creds)?;
                }
                handler(Call { ctx, state, caller, query, path_param, body }).await
            }
            .await;
            if endpoint.speaks_oauth() { outcome.map_err(ApiError::oauth) } else { outcome }
        }))
    })
}

/// The span a request runs in: its request id and route for the logs and,
/// when traces are exported, what OpenTelemetry's HTTP conventions name
/// (`http.request.method`, `http.route`, a server span named after the
/// route) under the caller's `traceparent`. Never a token, query or body.
pub(super) fn request_span(route: &'static str, ctx: &crate::http::RequestCtx) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        request_id = %ctx.id,
        route,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    if crate::telemetry::exporting_traces() {
        span.record("otel.name", route);
        span.record("otel.kind", "server");
        if let Some((method, template)) = route.split_once(' ') {
            span.set_attribute("http.request.method", method);
            span.set_attribute("http.route", template);
        }
        if let Some(parent) = ctx.headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            user_core::trace::continue_trace(&span, parent);
        }
    }
    span
}

/// Runs a handler inside the request's span, turns its error or panic into
/// the contract's error body, and labels the response.
pub(super) async fn respond<F>(route: &'static str, request_id: String, span: tracing::Span, handler: F) -> Response
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let outcome = AssertUnwindSafe(handler).catch_unwind().instrument(span.clone()).await;
    let mut response = span.in_scope(|| match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::Panic.into_response(),
    });
    if crate::telemetry::exporting_traces() {
        let status = response.status();
        span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.set_status(opentelemetry::trace::Status::error(status.to_string()));
        }
    }
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response.extensions_mut().insert(RouteLabel(route));
    response
}

#[cfg(test)]
mod tests {
    use warp::Filter;

    use super::*;
    use crate::http::arrival;
    use crate::security::SharedPolicy;

    #[tokio::test]
    async fn a_handler_panic_becomes_a_500_in_the_contract_shape() {
        let boom = arrival(&SharedPolicy::default()).then(|arrival: Arrival| {
            let span = request_span("GET /boom", &arrival.ctx);
            respond("GET /boom", arrival.ctx.id, span, async { panic!("boom") })
        });
        let response = warp::test::request().header("x-request-id", "req-1").reply(&boom).await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["x-request-id"], "req-1");
        assert_eq!(response.body().as_ref(), br#"{"message":"internal server error","status":500}"#);
    }
}
