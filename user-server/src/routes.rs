//! The routes of API.md, each a small filter with its handler. Handlers parse
//! the request into domain types, call `UserService`, and render the reply;
//! every rule lives in `user-core`.

use std::time::Instant;

use bytes::Bytes;
use user_core::api::{
    AccountResponse, ContainsResponse, FavoriteListResponse, FavoriteTrack, LoginRequest, LoginResponse, MainResponse,
    RefreshResponse, RegisterRequest, UpdateRequest, UserListResponse, UserResponse, UserSummary,
};
use user_core::auth::{AccessClaims, IssuedTokens};
use user_core::domain::{Email, Login, Password, TrackId, Username};
use user_core::page::PageRequest;
use user_core::service::{ProfileUpdate, Registration};
use user_core::store::User;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::AppState;
use crate::error::ApiError;
use crate::http::{
    Credentials, Query, RequestCtx, credentials, ctx, finish, json, json_body, parse_json, query, respond,
};
use crate::security::{Action, SharedPolicy};

type Route = BoxedFilter<(Response,)>;

/// Every route, with rejections rendered as `{message, status}` and the
/// common headers, access log and metrics applied.
pub fn all(state: AppState) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    // Install the recorder before the first request is counted.
    crate::telemetry::metrics();
    let routes = register(&state)
        .or(login(&state))
        .unify()
        .or(logout(&state))
        .unify()
        .or(refresh(&state))
        .unify()
        .or(get_user(&state))
        .unify()
        .or(update(&state))
        .unify()
        .or(delete(&state))
        .unify()
        .or(all_users(&state))
        .unify()
        .or(favorites(&state))
        .unify()
        .or(ops(&state))
        .unify();
    let routes = preflight(&state).or(routes).unify();
    finished(routes, state.policy.clone())
}

/// Only `GET /metrics`, for the separate metrics listener (`USER_METRICS_LISTEN`).
pub fn metrics_only(
    policy: SharedPolicy,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    crate::telemetry::metrics();
    finished(metrics(&policy), policy)
}

/// `routes` with rejections rendered as `{message, status}`, and the common
/// headers, access log and metrics applied.
fn finished<F>(
    routes: F,
    policy: SharedPolicy,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::optional::<String>("origin").or(warp::any().map(|| None)).unify())
        .and(routes.recover(crate::error::recover).unify())
        .map(move |started, method, path: warp::path::FullPath, origin: Option<String>, reply| {
            finish(started, &method, path.as_str(), origin.as_deref(), &policy, reply)
        })
}

/// Matches GET, and HEAD with it (RFC 9110 §9.3.2: every resource that
/// answers GET answers HEAD; hyper leaves the body out).
fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Copy {
    warp::get().or(warp::head()).unify()
}

/// The methods each known path answers, for the `Allow` header of a 405.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    Some(match path {
        "/user/register" | "/user/login" | "/user/logout" | "/user/refresh" => "POST",
        "/user/get"
        | "/user/all"
        | "/healthz"
        | "/readyz"
        | "/metrics"
        | "/openapi.json"
        | "/.well-known/jwks.json" => "GET, HEAD",
        "/user/update" => "PUT",
        "/user/delete" => "DELETE",
        "/user/track/favorite" => "GET, HEAD, POST, DELETE",
        "/user/track/favorite/contains" => "GET, HEAD",
        p if p.strip_prefix("/user/track/favorite/").is_some_and(|id| !id.is_empty() && !id.contains('/')) => {
            "POST, DELETE"
        }
        _ => return None,
    })
}

/// CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`):
/// 204 for an allowed origin, 403 otherwise. Without CORS origins configured
/// it does not match, and `OPTIONS` is 405 like any other unknown method.
fn preflight(state: &AppState) -> Route {
    let policy = state.policy.clone();
    // Built from optional parts so that it never rejects with 405 and
    // outranks the other routes' 404 for an unknown path.
    warp::method()
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("access-control-request-method"))
        .and_then(move |method: warp::http::Method, origin: Option<String>, requested: Option<String>| {
            let policy = policy.clone();
            async move {
                let Some(origin) = origin.filter(|_| {
                    method == warp::http::Method::OPTIONS && requested.is_some() && !policy.cors_origins.is_empty()
                }) else {
                    return Err(warp::reject::not_found());
                };
                if !policy.cors_allows(&origin) {
                    return Ok(ApiError::Forbidden("origin not allowed".into()).into_response());
                }
                let mut response =
                    warp::reply::with_status(warp::reply(), warp::http::StatusCode::NO_CONTENT).into_response();
                let h = response.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, DELETE"));
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type, x-request-id"),
                );
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
                response.extensions_mut().insert(crate::http::RouteLabel("OPTIONS (preflight)"));
                Ok(response)
            }
        })
        .boxed()
}

fn with_state(
    state: &AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

fn success() -> Response {
    json(&MainResponse::success())
}

fn account_response(user: &User) -> Response {
    json(&AccountResponse {
        response: MainResponse::success(),
        username: user.username.to_string(),
        email: user.email.to_string(),
        id: user.id.as_uuid(),
    })
}

/// `POST /user/register`
fn register(state: &AppState) -> Route {
    warp::path!("user" / "register")
        .and(warp::post())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(json_body())
        .then(|ctx: RequestCtx, state: AppState, body: Result<Bytes, ApiError>| {
            respond("POST /user/register", ctx.id.clone(), async move {
                ctx.throttle(Action::Register)?;
                let req: RegisterRequest = parse_json(&body?)?;
                let registration = Registration {
                    username: Username::parse(&req.username)?,
                    password: Password::parse(&req.password)?,
                    email: Email::parse(&req.email)?,
                };
                let user = state.service.register(registration, &ctx.client()).await?;
                Ok(account_response(&user))
            })
        })
        .boxed()
}

/// `POST /user/login`
fn login(state: &AppState) -> Route {
    warp::path!("user" / "login")
        .and(warp::post())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(json_body())
        .then(|ctx: RequestCtx, state: AppState, body: Result<Bytes, ApiError>| {
            respond("POST /user/login", ctx.id.clone(), async move {
                ctx.throttle(Action::Login)?;
                let client = ctx.client();
                let req: LoginRequest = parse_json(&body?)?;
                let login = Login::parse(&req.username)?;
                let password = Password::presented("password", &req.password)?;
                let outcome = match state.service.login(&login, &password, &client).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        crate::telemetry::record_login(match &e {
                            user_core::Error::InvalidCredentials => "wrong_password",
                            user_core::Error::UserNotFound => "unknown_user",
                            user_core::Error::Forbidden(_) => "disabled",
                            user_core::Error::Throttled { .. } => "throttled",
                            _ => "error",
                        });
                        return Err(e.into());
                    }
                };
                crate::telemetry::record_login("success");
                let mut response = json(&LoginResponse {
                    response: MainResponse::new("success login", 200),
                    token: outcome.tokens.access.clone(),
                    id: outcome.user.id.as_uuid(),
                });
                state.set_token_cookies(&mut response, &ctx, &outcome.tokens);
                Ok(response)
            })
        })
        .boxed()
}

/// `POST /user/logout`: the access token, or (extension) the refresh cookie alone.
fn logout(state: &AppState) -> Route {
    warp::path!("user" / "logout")
        .and(warp::post())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials| {
            respond("POST /user/logout", ctx.id.clone(), async move {
                let access = match creds.access_opt()? {
                    Some(token) => state.service.authenticate(token).await.map(|c| (c.sub, c.sid)),
                    None => Err(user_core::Error::Unauthorized(user_core::UnauthorizedReason::Missing)),
                };
                let (user, sid) = match (access, creds.refresh_opt()?) {
                    (Ok(ids), _) => ids,
                    (Err(_), Some(refresh)) => {
                        let claims = state.service.authenticate_refresh(refresh).await?;
                        (claims.sub, claims.sid)
                    }
                    (Err(e), None) => return Err(e.into()),
                };
                ctx.check_same_site(&creds)?;
                state.service.logout(user, sid, &ctx.client()).await?;
                let mut response = success();
                state.cookies.clear(&mut response, &ctx);
                Ok(response)
            })
        })
        .boxed()
}

/// `POST /user/refresh`
fn refresh(state: &AppState) -> Route {
    warp::path!("user" / "refresh")
        .and(warp::post())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials| {
            respond("POST /user/refresh", ctx.id.clone(), async move {
                ctx.throttle(Action::Refresh)?;
                let refresh = creds.refresh()?;
                // The refresh token only ever comes in a cookie: always check the origin.
                ctx.policy.check_same_site(&ctx.headers)?;
                let tokens = state.service.refresh(refresh, &ctx.client()).await?;
                let mut response =
                    json(&RefreshResponse { message: "success".into(), status: 200, token: tokens.access.clone() });
                state.set_token_cookies(&mut response, &ctx, &tokens);
                Ok(response)
            })
        })
        .boxed()
}

async fn authenticate(state: &AppState, creds: &Credentials) -> Result<AccessClaims, ApiError> {
    Ok(state.service.authenticate(creds.access()?).await?)
}

/// `GET /user/get`
fn get_user(state: &AppState) -> Route {
    warp::path!("user" / "get")
        .and(get_or_head())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials| {
            respond("GET /user/get", ctx.id.clone(), async move {
                let (_, user) = state.service.me(creds.access()?).await?;
                Ok(json(&UserResponse {
                    response: MainResponse::success(),
                    username: user.username.to_string(),
                    id: user.id.as_uuid(),
                    email: user.email.to_string(),
                    role: user.role,
                    created_at: user.created_at,
                }))
            })
        })
        .boxed()
}

/// `PUT /user/update`
fn update(state: &AppState) -> Route {
    warp::path!("user" / "update")
        .and(warp::put())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .and(json_body())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials, body: Result<Bytes, ApiError>| {
            respond("PUT /user/update", ctx.id.clone(), async move {
                ctx.throttle(Action::Update)?;
                let claims = authenticate(&state, &creds).await?;
                ctx.check_same_site(&creds)?;
                let req: UpdateRequest = parse_json(&body?)?;
                let update = ProfileUpdate {
                    username: req.username.as_deref().map(Username::parse).transpose()?,
                    email: req.email.as_deref().map(Email::parse).transpose()?,
                    password: req.password.as_deref().map(Password::parse).transpose()?,
                    current_password: req
                        .current_password
                        .as_deref()
                        .map(|p| Password::presented("current_password", p))
                        .transpose()?,
                };
                let user = state.service.update(claims.sub, Some(claims.sid), update, &ctx.client()).await?;
                Ok(account_response(&user))
            })
        })
        .boxed()
}

/// `DELETE /user/delete`
fn delete(state: &AppState) -> Route {
    warp::path!("user" / "delete")
        .and(warp::delete())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials| {
            respond("DELETE /user/delete", ctx.id.clone(), async move {
                let claims = authenticate(&state, &creds).await?;
                ctx.check_same_site(&creds)?;
                state.service.delete(claims.sub, &ctx.client()).await?;
                let mut response = success();
                state.cookies.clear(&mut response, &ctx);
                Ok(response)
            })
        })
        .boxed()
}

/// `GET /user/all` (admin)
fn all_users(state: &AppState) -> Route {
    warp::path!("user" / "all")
        .and(get_or_head())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .and(query())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials, query: Query| {
            respond("GET /user/all", ctx.id.clone(), async move {
                let claims = authenticate(&state, &creds).await?;
                claims.require_admin()?;
                let page = PageRequest::parse(query.single("limit")?, query.single("cursor")?)?;
                let users = state.service.list_users(&page).await?;
                Ok(json(&UserListResponse {
                    response: MainResponse::success(),
                    users: users.items.iter().map(UserSummary::from).collect(),
                    next_cursor: users.next_cursor,
                }))
            })
        })
        .boxed()
}

/// Which tracks a favorites call is about: the query's `track_id` (a
/// comma-separated batch) or the single id in the path, never both.
fn track_ids(path_id: Option<String>, query: &Query) -> Result<Vec<TrackId>, ApiError> {
    match (path_id, query.joined("track_id")) {
        (Some(_), Some(_)) => {
            Err(ApiError::BadRequest("track_id: give it in the path or in the query, not both".into()))
        }
        (Some(id), None) => {
            // Path segments arrive percent-encoded (`spotify%3Atrack%3A7`).
            let id = percent_encoding::percent_decode_str(&id)
                .decode_utf8()
                .map_err(|_| ApiError::BadRequest("track_id: must be UTF-8".into()))?;
            Ok(vec![TrackId::parse(&id)?])
        }
        (None, Some(ids)) => Ok(TrackId::parse_batch(&ids)?),
        (None, None) => Err(ApiError::BadRequest("track_id: is required (?track_id=...)".into())),
    }
}

#[derive(Clone, Copy)]
enum FavoriteChange {
    Add,
    Remove,
}

async fn change_favorites(
    ctx: RequestCtx,
    state: AppState,
    creds: Credentials,
    query: Query,
    path_id: Option<String>,
    change: FavoriteChange,
) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &creds).await?;
    ctx.check_same_site(&creds)?;
    let ids = track_ids(path_id, &query)?;
    match change {
        FavoriteChange::Add => state.service.add_favorites(claims.sub, &ids).await?,
        FavoriteChange::Remove => state.service.remove_favorites(claims.sub, &ids).await?,
    }
    Ok(success())
}

/// The favorites routes: add and remove (query or path form), list, contains.
fn favorites(state: &AppState) -> Route {
    let base = || {
        warp::path!("user" / "track" / "favorite")
            .and(ctx(&state.policy))
            .and(with_state(state))
            .and(credentials())
            .and(query())
    };
    // `contains` names the lookup route, so it is not a path-form track id
    // (it can still be favorited with `?track_id=contains`).
    let by_path = || {
        warp::path!("user" / "track" / "favorite" / String)
            .and_then(
                |id: String| async move { if id == "contains" { Err(warp::reject::not_found()) } else { Ok(id) } },
            )
            .and(ctx(&state.policy))
            .and(with_state(state))
            .and(credentials())
            .and(query())
    };
    let add = base().and(warp::post()).then(|ctx: RequestCtx, state, creds, query| {
        respond(
            "POST /user/track/favorite",
            ctx.id.clone(),
            change_favorites(ctx, state, creds, query, None, FavoriteChange::Add),
        )
    });
    let remove = base().and(warp::delete()).then(|ctx: RequestCtx, state, creds, query| {
        respond(
            "DELETE /user/track/favorite",
            ctx.id.clone(),
            change_favorites(ctx, state, creds, query, None, FavoriteChange::Remove),
        )
    });
    let list = base().and(get_or_head()).then(|ctx: RequestCtx, state: AppState, creds: Credentials, query: Query| {
        respond("GET /user/track/favorite", ctx.id.clone(), async move {
            let claims = authenticate(&state, &creds).await?;
            let page = PageRequest::parse(query.single("limit")?, query.single("cursor")?)?;
            let favorites = state.service.list_favorites(claims.sub, &page).await?;
            Ok(json(&FavoriteListResponse {
                response: MainResponse::success(),
                tracks: favorites
                    .items
                    .into_iter()
                    .map(|f| FavoriteTrack { track_id: f.track_id.into(), added_at: f.added_at })
                    .collect(),
                next_cursor: favorites.next_cursor,
            }))
        })
    });
    let contains = warp::path!("user" / "track" / "favorite" / "contains")
        .and(get_or_head())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .and(credentials())
        .and(query())
        .then(|ctx: RequestCtx, state: AppState, creds: Credentials, query: Query| {
            respond("GET /user/track/favorite/contains", ctx.id.clone(), async move {
                let claims = authenticate(&state, &creds).await?;
                let ids = track_ids(None, &query)?;
                let contains = state.service.contains(claims.sub, &ids).await?;
                Ok(json(&ContainsResponse { response: MainResponse::success(), contains }))
            })
        });
    let add_path = by_path().and(warp::post()).then(|id, ctx: RequestCtx, state, creds, query| {
        respond(
            "POST /user/track/favorite/{track_id}",
            ctx.id.clone(),
            change_favorites(ctx, state, creds, query, Some(id), FavoriteChange::Add),
        )
    });
    let remove_path = by_path().and(warp::delete()).then(|id, ctx: RequestCtx, state, creds, query| {
        respond(
            "DELETE /user/track/favorite/{track_id}",
            ctx.id.clone(),
            change_favorites(ctx, state, creds, query, Some(id), FavoriteChange::Remove),
        )
    });
    add.or(remove).unify().or(list).unify().or(contains).unify().or(add_path).unify().or(remove_path).unify().boxed()
}

/// `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/.well-known/jwks.json`.
fn ops(state: &AppState) -> Route {
    let healthz = warp::path!("healthz").and(get_or_head()).and(ctx(&state.policy)).then(|ctx: RequestCtx| {
        respond("GET /healthz", ctx.id.clone(), async { Ok(json(&MainResponse::new("alive", 200))) })
    });
    let readyz = warp::path!("readyz").and(get_or_head()).and(ctx(&state.policy)).and(with_state(state)).then(
        |ctx: RequestCtx, state: AppState| {
            respond("GET /readyz", ctx.id.clone(), async move {
                match state.service.store().ping().await {
                    Ok(()) => Ok(json(&MainResponse::new("ready", 200))),
                    Err(e) => {
                        tracing::warn!(error = %e, "readiness check failed");
                        Err(ApiError::Unavailable("database unreachable".into()))
                    }
                }
            })
        },
    );
    let openapi = warp::path!("openapi.json").and(get_or_head()).and(ctx(&state.policy)).then(|ctx: RequestCtx| {
        respond("GET /openapi.json", ctx.id.clone(), async { Ok(json(&crate::openapi::document())) })
    });
    let jwks = warp::path!(".well-known" / "jwks.json")
        .and(get_or_head())
        .and(ctx(&state.policy))
        .and(with_state(state))
        .then(|ctx: RequestCtx, state: AppState| {
            respond("GET /.well-known/jwks.json", ctx.id.clone(), async move {
                match state.service.tokens().keys().jwks() {
                    Some(jwks) => Ok(json(&jwks)),
                    None => Err(ApiError::NotFound("no public keys: tokens are signed with HS256".into())),
                }
            })
        });
    let ops = healthz.or(readyz).unify().or(openapi).unify().or(jwks).unify();
    if state.metrics_public { ops.or(metrics(&state.policy)).unify().boxed() } else { ops.boxed() }
}

/// `GET /metrics`: Prometheus text.
fn metrics(policy: &SharedPolicy) -> Route {
    warp::path!("metrics")
        .and(get_or_head())
        .and(ctx(policy))
        .then(|ctx: RequestCtx| {
            respond("GET /metrics", ctx.id.clone(), async {
                let mut response = crate::telemetry::metrics().render().into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                Ok(response)
            })
        })
        .boxed()
}

impl AppState {
    fn set_token_cookies(&self, response: &mut Response, ctx: &RequestCtx, tokens: &IssuedTokens) {
        let ttl = self.service.tokens().config();
        self.cookies.set(response, ctx, "access_token", &tokens.access, ttl.access_ttl.as_secs());
        self.cookies.set(response, ctx, "refresh_token", &tokens.refresh, ttl.refresh_ttl.as_secs());
    }
}
