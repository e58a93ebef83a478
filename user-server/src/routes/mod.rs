//! The routes of API.md, declared once each in [`table`]: from an entry come
//! its warp filter, its metrics and log label, the methods a 405 lists in
//! `Allow`, and its operation in the OpenAPI document.
//!
//! A handler is an `async fn(Call<G>)`: the guard type `G` says what the route
//! needs of its caller ([`Open`], [`Authenticated`], [`Admin`], a session to
//! end, a refresh cookie), and the only way to get a `G` is the route's filter
//! running its check first. For any method but GET and HEAD, the guard's
//! same-site rule runs before the handler too. Handlers parse the request into
//! domain types, call `UserService` and render the reply; every rule lives in
//! `user-core`.

mod account;
mod admin;
mod device;
mod favorites;
mod guard;
mod ops;
mod pages;
mod recovery;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use user_core::api::MainResponse;
use utoipa::openapi::path::{HttpMethod, Operation};
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use guard::Guard;

use crate::AppState;
use crate::error::ApiError;
use crate::error::error_response;
use crate::http::{
    Arrival, Body, Credentials, Query, RequestCtx, arrival, finish, json, parse_form, parse_json, read_body, respond,
};
use crate::security::{Action, SharedPolicy};

/// An endpoint's handler behind its guard, ready to run a request.
type Handler = Box<dyn Fn(Arrival, Option<String>) -> BoxFuture<'static, Response> + Send + Sync>;

/// Builds an endpoint's handler over the shared state.
type Mount = Box<dyn Fn(&'static Endpoint, &Arc<AppState>) -> Handler + Send + Sync>;

/// Every route of the service, in one place. Adding a route: write its
/// handler (with its `#[utoipa::path]` documentation) in the module of its
/// resource and add one line here.
fn table() -> Vec<Endpoint> {
    use {account::*, admin::*, device::*, favorites::*, ops::*, pages::*, recovery::*, session::*};
    vec![
        Endpoint::of::<__path_register, _, _, _>(register).throttled(Action::Register),
        Endpoint::of::<__path_login, _, _, _>(login).throttled(Action::Login),
        Endpoint::of::<__path_logout, _, _, _>(logout),
        Endpoint::of::<__path_refresh, _, _, _>(refresh).throttled(Action::Refresh),
        Endpoint::of::<__path_list_sessions, _, _, _>(list_sessions),
        Endpoint::of::<__path_revoke_session, _, _, _>(revoke_session),
        Endpoint::of::<__path_revoke_other_sessions, _, _, _>(revoke_other_sessions),
        Endpoint::of::<__path_device_code, _, _, _>(device_code).throttled(Action::Login),
        Endpoint::of::<__path_token, _, _, _>(token),
        Endpoint::of::<__path_approve_device, _, _, _>(approve_device),
        Endpoint::of::<__path_device_page, _, _, _>(device_page),
        Endpoint::of::<__path_get_user, _, _, _>(get_user),
        Endpoint::of::<__path_update, _, _, _>(update).throttled(Action::Update),
        Endpoint::of::<__path_delete, _, _, _>(delete),
        Endpoint::of::<__path_request_verification, _, _, _>(request_verification),
        Endpoint::of::<__path_verify_email, _, _, _>(verify_email),
        Endpoint::of::<__path_forgot_password, _, _, _>(forgot_password).throttled(Action::Forgot),
        Endpoint::of::<__path_reset_password, _, _, _>(reset_password).throttled(Action::Forgot),
        Endpoint::of::<__path_verify_page, _, _, _>(verify_page),
        Endpoint::of::<__path_reset_page, _, _, _>(reset_page),
        Endpoint::of::<__path_page_script, _, _, _>(page_script),
        Endpoint::of::<__path_page_style, _, _, _>(page_style),
        Endpoint::of::<__path_all_users, _, _, _>(all_users),
        Endpoint::of::<__path_search_users, _, _, _>(search_users),
        Endpoint::of::<__path_create_account, _, _, _>(create_account),
        Endpoint::of::<__path_get_account, _, _, _>(get_account),
        Endpoint::of::<__path_patch_account, _, _, _>(patch_account),
        Endpoint::of::<__path_delete_account, _, _, _>(delete_account),
        Endpoint::of::<__path_account_sessions, _, _, _>(account_sessions),
        Endpoint::of::<__path_revoke_account_sessions, _, _, _>(revoke_account_sessions),
        Endpoint::of::<__path_list_tasks, _, _, _>(list_tasks),
        Endpoint::of::<__path_retry_task, _, _, _>(retry_task),
        Endpoint::of::<__path_audit, _, _, _>(audit),
        Endpoint::of::<__path_add_favorite, _, _, _>(add_favorite),
        Endpoint::of::<__path_remove_favorite, _, _, _>(remove_favorite),
        Endpoint::of::<__path_list_favorites, _, _, _>(list_favorites),
        Endpoint::of::<__path_contains_favorites, _, _, _>(contains_favorites),
        Endpoint::of::<__path_add_favorite_by_path, _, _, _>(add_favorite_by_path),
        Endpoint::of::<__path_remove_favorite_by_path, _, _, _>(remove_favorite_by_path),
        Endpoint::of::<__path_healthz, _, _, _>(healthz),
        Endpoint::of::<__path_readyz, _, _, _>(readyz),
        Endpoint::of::<__path_metrics, _, _, _>(metrics),
        Endpoint::of::<__path_openapi, _, _, _>(openapi),
        Endpoint::of::<__path_jwks, _, _, _>(jwks),
    ]
}

/// The table, built once.
pub(crate) fn endpoints() -> &'static [Endpoint] {
    static TABLE: OnceLock<Vec<Endpoint>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = table();
        let patterns: Vec<Pattern> = table.iter().map(|e| e.pattern.clone()).collect();
        for endpoint in &mut table {
            endpoint.pattern.reserve_literals_of(&patterns);
        }
        table
    })
}

/// What a handler gets: the request, the state, and what its guard established.
pub(crate) struct Call<G> {
    pub ctx: RequestCtx,
    pub state: Arc<AppState>,
    /// The caller, as the route's guard checked it.
    pub caller: G,
    /// The query string (empty unless the operation documents parameters).
    pub query: Query,
    /// The path parameter (`{…}` in the path), as sent: still percent-encoded.
    pub path_param: Option<String>,
    body: Option<Result<Body, ApiError>>,
}

impl<G> Call<G> {
    /// The JSON body, parsed into `T`.
    ///
    /// # Errors
    /// 400/413/415 for a body the contract refuses; 500 if the route's
    /// operation declares no request body (so none was read).
    fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        parse_json(&self.body()?.bytes)
    }

    /// The body as `T`, from a form or JSON, whichever was sent (only routes
    /// whose operation lists a form body are given forms).
    ///
    /// # Errors
    /// As [`Call::json`].
    fn form_or_json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let body = self.body()?;
        if body.form { parse_form(&body.bytes) } else { parse_json(&body.bytes) }
    }

    fn body(&mut self) -> Result<Body, ApiError> {
        self.body.take().unwrap_or_else(|| {
            Err(user_core::Error::internal("this route reads a body its operation does not declare").into())
        })
    }
}

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
    pattern: Pattern,
    mount: Mount,
}

impl Endpoint {
    /// The route documented by `P` (`#[utoipa::path]` on `handler`), run by `handler`.
    ///
    /// # Panics
    /// If `P` documents another function than `handler`, or more than one method.
    fn of<P, G, H, F>(handler: H) -> Self
    where
        P: utoipa::Path,
        G: Guard,
        H: Fn(Call<G>) -> F + Copy + Send + Sync + 'static,
        F: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        let operation = P::operation();
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
    fn throttled(mut self, action: Action) -> Self {
        self.throttle = Some(action);
        self
    }

    fn has_body(&self) -> bool {
        self.operation.request_body.is_some()
    }

    /// Whether the body may be a URL-encoded form as well as JSON (the OAuth routes).
    fn takes_forms(&self) -> bool {
        self.operation.request_body.as_ref().is_some_and(|b| b.content.contains_key(crate::http::FORM))
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
    fn answers(&self) -> &'static [Method] {
        match self.method {
            Method::GET => &[Method::GET, Method::HEAD],
            Method::POST => &[Method::POST],
            Method::PUT => &[Method::PUT],
            Method::PATCH => &[Method::PATCH],
            _ => &[Method::DELETE],
        }
    }
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
    let writes = !matches!(endpoint.method, Method::GET | Method::HEAD);
    Box::new(move |arrival: Arrival, path_param: Option<String>| {
        let state = state.clone();
        let Arrival { query, ctx, body, .. } = arrival;
        Box::pin(respond(&endpoint.label, ctx.id.clone(), async move {
            let outcome = async {
                let query = if endpoint.reads_query() { Query::parse(query.as_deref())? } else { Query::default() };
                let body = if endpoint.has_body() {
                    Some(read_body(&ctx.headers, body, endpoint.takes_forms()).await)
                } else {
                    None
                };
                if let Some(action) = endpoint.throttle {
                    ctx.throttle(action).await?;
                }
                let creds =
                    if G::READS_CREDENTIALS { Credentials::from_headers(&ctx.headers) } else { Credentials::default() };
                let caller = G::check(&state, &creds).await?;
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

/// Chooses each request's endpoint by its path and method in one lookup
/// (not a chain of filters tried in turn): 404 for a path no template
/// matches, 405 for a method the path does not answer.
struct Router {
    routes: Vec<(&'static Endpoint, Handler)>,
    /// Templates without a parameter, by their path without slashes at the ends.
    literal: HashMap<String, Vec<usize>>,
    /// Templates with a parameter, tried in turn (a handful).
    with_param: Vec<usize>,
}

impl Router {
    fn new(routes: Vec<(&'static Endpoint, Handler)>) -> Self {
        let mut literal: HashMap<String, Vec<usize>> = HashMap::new();
        let mut with_param = Vec::new();
        for (i, (endpoint, _)) in routes.iter().enumerate() {
            if endpoint.pattern.has_param() {
                with_param.push(i);
            } else {
                literal.entry(endpoint.path.trim_matches('/').to_owned()).or_default().push(i);
            }
        }
        Self { routes, literal, with_param }
    }

    fn run(&self, arrival: Arrival) -> BoxFuture<'static, Response> {
        let path = arrival.path.as_str();
        let key = path.strip_prefix('/').map(|p| p.strip_suffix('/').unwrap_or(p));
        let literal = key.and_then(|k| self.literal.get(k)).into_iter().flatten().map(|&i| (i, None));
        let with_param = self.with_param.iter().filter_map(|&i| Some((i, self.routes[i].0.pattern.matches(path)?)));
        let mut path_known = false;
        for (i, param) in literal.chain(with_param) {
            let (endpoint, handler) = &self.routes[i];
            if endpoint.answers().contains(&arrival.method) {
                return handler(arrival, param);
            }
            path_known = true;
        }
        let error = if path_known {
            let mut response =
                error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route".into());
            // RFC 9110 §15.5.6: a 405 lists what the resource does support.
            if let Some(allowed) = allowed_methods(path).and_then(|a| HeaderValue::from_str(&a).ok()) {
                response.headers_mut().insert(header::ALLOW, allowed);
            }
            response
        } else {
            error_response(StatusCode::NOT_FOUND, "no such route".into())
        };
        Box::pin(std::future::ready(error))
    }
}

/// A path template split into segments, `{name}` matching any one
/// non-empty segment except the literals sibling templates put there.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param { reserved: Vec<String> },
}

impl Pattern {
    fn has_param(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Param { .. }))
    }

    fn parse(template: &str) -> Self {
        let segments = template
            .trim_start_matches('/')
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param { reserved: Vec::new() }
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        Self { segments }
    }

    /// A literal in another template, at a parameter's place after the same
    /// prefix, names that route: `/user/track/favorite/contains` is never
    /// the track `contains`.
    fn reserve_literals_of(&mut self, all: &[Pattern]) {
        for i in 0..self.segments.len() {
            if !matches!(self.segments[i], Segment::Param { .. }) {
                continue;
            }
            let words: Vec<String> = all
                .iter()
                .filter(|other| other.segments.len() == self.segments.len())
                .filter(|other| other.segments[..i].iter().zip(&self.segments[..i]).all(|(a, b)| a.same_as(b)))
                .filter_map(|other| match &other.segments[i] {
                    Segment::Literal(word) => Some(word.clone()),
                    Segment::Param { .. } => None,
                })
                .collect();
            if let Segment::Param { reserved } = &mut self.segments[i] {
                *reserved = words;
            }
        }
    }

    /// Whether `path` (as sent, one trailing slash allowed) is this
    /// template; `Some(param)` with the parameter's segment, if any.
    fn matches(&self, path: &str) -> Option<Option<String>> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut param = None;
        let mut given = path.split('/');
        for segment in &self.segments {
            let part = given.next()?;
            match segment {
                Segment::Literal(word) if word == part => {}
                Segment::Param { reserved } if !part.is_empty() && !reserved.iter().any(|r| r == part) => {
                    param = Some(part.to_owned());
                }
                _ => return None,
            }
        }
        given.next().is_none().then_some(param)
    }
}

impl Segment {
    fn same_as(&self, other: &Segment) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Param { .. }, Segment::Param { .. }) => true,
            _ => false,
        }
    }
}

/// The methods `path` answers, for the `Allow` header of a 405.
pub fn allowed_methods(path: &str) -> Option<String> {
    let mut methods: Vec<&Method> = Vec::new();
    for endpoint in endpoints().iter().filter(|e| e.pattern.matches(path).is_some()) {
        methods.extend(endpoint.answers());
    }
    if methods.is_empty() {
        return None;
    }
    let order = [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    methods.sort_by_key(|m| order.iter().position(|o| o == *m));
    methods.dedup();
    Some(methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
}

/// Every route, with errors rendered as `{message, status}` and the
/// common headers, access log and metrics applied.
pub fn all(state: AppState) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    // Install the recorder before the first request is counted.
    crate::telemetry::metrics();
    let state = Arc::new(state);
    let routes = endpoints()
        .iter()
        // With a metrics listener of its own, `/metrics` is not served here.
        .filter(|endpoint| endpoint.path != "/metrics" || state.metrics_public)
        .map(|endpoint| (endpoint, (endpoint.mount)(endpoint, &state)))
        .collect();
    finished(Router::new(routes), state.policy.clone())
}

/// Only `GET /metrics`, for the separate metrics listener (`USER_METRICS_LISTEN`).
pub fn metrics_only(
    policy: SharedPolicy,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    crate::telemetry::metrics();
    let endpoint = endpoints().iter().find(|e| e.path == "/metrics").expect("the table has /metrics");
    let handler: Handler = Box::new(move |arrival: Arrival, _| {
        Box::pin(respond(&endpoint.label, arrival.ctx.id, async { Ok(ops::render_metrics()) }))
    });
    finished(Router::new(vec![(endpoint, handler)]), policy)
}

/// The router's answers (CORS preflight first), with the common headers,
/// access log and metrics applied.
fn finished(
    router: Router,
    policy: SharedPolicy,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let router = Arc::new(router);
    let preflight_policy = policy.clone();
    warp::any().map(Instant::now).and(arrival(&policy)).then(move |started: Instant, arrival: Arrival| {
        let origin = arrival.ctx.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let method = arrival.method.clone();
        let reply = preflight(&preflight_policy, &arrival)
            .map_or_else(|| router.run(arrival), |r| Box::pin(std::future::ready(r)));
        let policy = policy.clone();
        async move {
            let reply = reply.await;
            finish(started, &method, origin.as_deref(), &policy, reply)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_is_paired_with_its_own_documentation_and_labels_are_unique() {
        let table = endpoints();
        let mut labels: Vec<&str> = table.iter().map(|e| e.label.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), table.len());
    }

    #[test]
    fn templates_match_segment_by_segment() {
        let table = endpoints();
        let by_path = table.iter().find(|e| e.path == "/user/track/favorite/{track_id}").unwrap();
        assert_eq!(by_path.pattern.matches("/user/track/favorite/42"), Some(Some("42".into())));
        assert_eq!(by_path.pattern.matches("/user/track/favorite/42/"), Some(Some("42".into())));
        assert_eq!(by_path.pattern.matches("/user/track/favorite/contains"), None);
        assert_eq!(by_path.pattern.matches("/user/track/favorite/"), None);
        assert_eq!(by_path.pattern.matches("/user/track/favorite/a/b"), None);
        assert_eq!(allowed_methods("/user/track/favorite"), Some("GET, HEAD, POST, DELETE".into()));
        assert_eq!(allowed_methods("/user/track/favorite/contains"), Some("GET, HEAD".into()));
        assert_eq!(allowed_methods("/nope"), None);
    }
}
