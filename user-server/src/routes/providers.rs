//! Sign in with another provider (v1.2): the browser flow's start and
//! callback, linking a held identity, unlinking one.

use serde::Deserialize;
use user_core::api::{
    IdentitiesResponse, IdentityInfo, LoginAnswer, MainResponse, MfaRequiredResponse, ProviderTokenRequest,
};
use user_core::domain::ValidationError;
use user_core::service::{ProviderFailure, ProviderMode, ProviderOutcome};
use warp::Reply as _;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::guard::{Authenticated, Listener, MaybeSession, Open, SigningIn};
use super::session::MFA_PENDING_COOKIE;
use super::session::signed_in;
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

/// The browser's key its provider sign-ins are bound to (API.md: the state cookie).
const STATE_COOKIE: &str = "auth_state";
/// The identity a sign-in held for the account with its address.
const LINK_COOKIE: &str = "identity_link";
/// Both live ten minutes, as the state and the held identity do.
const TEN_MINUTES: u64 = 600;

impl<G> Call<G> {
    /// The provider named in the path.
    fn provider(&self) -> String {
        self.path_param.clone().unwrap_or_default()
    }

    /// This service's callback for the provider in the path.
    fn callback(&self) -> String {
        format!("{}/auth/{}/callback", self.public_base(), self.provider())
    }

    /// Sets a cookie of the provider flow (not a session cookie: its own
    /// path and `SameSite`).
    fn flow_cookie(&self, response: &mut Response, name: &str, value: &str, path: &str, cross_site: bool) {
        let secure = self.state.cookies.secure || self.ctx.https;
        // The state cookie must come back on the provider's cross-site
        // redirect (Apple's is a POST): `SameSite=None`, which browsers take
        // only with `Secure`; without TLS it can only be `Lax`.
        let same_site = match (cross_site, secure) {
            (true, true) => "None",
            _ => "Lax",
        };
        let secure = if secure { "; Secure" } else { "" };
        let cookie =
            format!("{name}={value}; HttpOnly; SameSite={same_site}; Path={path}; Max-Age={TEN_MINUTES}{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// A redirect the browser follows with a GET (303).
fn see_other(location: &str) -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// `base` with `name=value` added to its query.
fn with_param(base: &str, name: &str, value: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{name}={value}")
}

/// Start signing in at a provider: 302 to its authorization page.
#[utoipa::path(get, path = "/auth/{provider}/start", tag = "providers", params(
    ("provider" = String, Path, description = "A configured provider (`USER_OIDC_PROVIDERS`)"),
    ("redirect_to" = String, Query, description = "Where to return: exactly one of the provider's `_ALLOWED_REDIRECTS`"),
    ("mode" = Option<String>, Query, description = "`login` (default), `link` (a session with recent authentication adds the identity; guests too) or `reauth` (the session proves a credential again)"),
), responses(
    (status = 302, description = "To the provider, with `state`, `nonce` and a PKCE S256 challenge; sets the `auth_state` cookie (HttpOnly, `Path=/auth/`, 10 minutes) the callback must see"),
    (status = 400, description = "`redirect_to` not allowed, or a bad `mode`", body = MainResponse),
    (status = 401, description = "`link` or `reauth` without a session; `code: reauth_required` for `link` without recent authentication", body = MainResponse),
    (status = 404, description = "No such provider", body = MainResponse),
    (status = 503, description = "`code: provider_error`: the provider cannot be reached", body = MainResponse),
))]
pub(super) async fn provider_start(call: Call<MaybeSession>) -> Result<Response, ApiError> {
    let redirect_to = call
        .query
        .single("redirect_to")?
        .ok_or_else(|| ApiError::BadRequest("redirect_to: is required".into()))?
        .to_owned();
    let mode = ProviderMode::parse(call.query.single("mode")?.unwrap_or("login"))?;
    let session = call.caller.0.as_ref().map(|s| (s.id(), s.claims().sid));
    let browser = call.cookie(STATE_COOKIE);
    let (provider, callback) = (call.provider(), call.callback());
    let start = call
        .state
        .service
        .provider_start(&provider, &redirect_to, mode, session, browser.as_deref(), &callback)
        .await?;
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&start.url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    call.flow_cookie(&mut response, STATE_COOKIE, &start.browser_key, "/auth/", true);
    Ok(response)
}

/// What a provider sends back (query or form).
#[derive(Debug, Default, Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The provider's answer (a GET with the code in the query).
#[utoipa::path(get, path = "/auth/{provider}/callback", tag = "providers", params(
    ("provider" = String, Path, description = "The provider"),
    ("state" = String, Query, description = "The state sent at the start"),
    ("code" = Option<String>, Query, description = "The authorization code"),
    ("error" = Option<String>, Query, description = "The provider's error, if the person declined"),
), responses(
    (status = 303, description = "To `redirect_to`: signed in (session cookies set); or `?link_required=1` (an account has this verified address: sign in to it, then `POST /user/identities/link`); or `?error=access_denied|provider_error|account_disabled|email_not_verified|identity_in_use|mfa_required|server_error`; with `mfa_required` the `mfa_pending` cookie (`Path=/user/login/mfa`, HttpOnly) holds the sign-in: `POST /user/login/mfa` `{\"code\"}` completes it"),
    (status = 400, description = "A state that is missing, unknown, used, expired, another provider's or another browser's: an HTML page, no redirect", content_type = "text/html"),
))]
pub(super) async fn provider_callback(call: Call<Open>) -> Result<Response, ApiError> {
    let params = CallbackParams {
        state: call.query.single("state")?.map(ToOwned::to_owned),
        code: call.query.single("code")?.map(ToOwned::to_owned),
        error: call.query.single("error")?.map(ToOwned::to_owned),
    };
    finish_callback(&call, params).await
}

/// The provider's answer as a form POST (`response_mode=form_post`: Apple).
#[utoipa::path(post, path = "/auth/{provider}/callback", tag = "providers", params(
    ("provider" = String, Path, description = "The provider"),
), request_body(content = inline(serde_json::Value), content_type = "application/x-www-form-urlencoded", description = "`state`, `code` or `error` (and Apple's `user`)"), responses(
    (status = 303, description = "As the GET callback"),
    (status = 400, description = "As the GET callback", content_type = "text/html"),
))]
pub(super) async fn provider_callback_post(mut call: Call<Open>) -> Result<Response, ApiError> {
    let params: CallbackParams = call.form_or_json().unwrap_or_default();
    finish_callback(&call, params).await
}

async fn finish_callback<G>(call: &Call<G>, params: CallbackParams) -> Result<Response, ApiError> {
    let client = call.ctx.client();
    let browser = call.cookie(STATE_COOKIE);
    let outcome = call
        .state
        .service
        .provider_callback(
            &call.provider(),
            params.state.as_deref().unwrap_or_default(),
            params.code.as_deref(),
            params.error.as_deref(),
            browser.as_deref(),
            &call.callback(),
            &client,
        )
        .await;
    Ok(match outcome {
        Ok(ProviderOutcome::SignedIn { outcome, redirect_to }) => {
            let mut response = see_other(&redirect_to);
            call.state.set_token_cookies(&mut response, &call.ctx, &outcome.tokens);
            if let Some(device) = &outcome.device_cookie {
                call.state.cookies.set(&mut response, &call.ctx, &device.name, &device.value, device.max_age.as_secs());
            }
            response
        }
        Ok(ProviderOutcome::SecondFactor { mfa_token, redirect_to, .. }) => {
            let mut response = see_other(&with_param(&redirect_to, "error", "mfa_required"));
            call.flow_cookie(&mut response, MFA_PENDING_COOKIE, &mfa_token, "/user/login/mfa", false);
            response
        }
        Ok(ProviderOutcome::LinkRequired { link_token, redirect_to }) => {
            let mut response = see_other(&with_param(&redirect_to, "link_required", "1"));
            call.flow_cookie(&mut response, LINK_COOKIE, &link_token, "/user/identities/link", false);
            response
        }
        Ok(ProviderOutcome::Done { redirect_to }) => see_other(&redirect_to),
        Err(ProviderFailure::Redirect { redirect_to, code }) => see_other(&with_param(&redirect_to, "error", code)),
        Err(ProviderFailure::InvalidState) => {
            let body = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Sign-in failed</title>\
                        <p>This sign-in cannot go on: it expired, was used already, or began in another browser. \
                        Start again from the app.</p></html>";
            let mut response = Response::new(body.into());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
    })
}

/// Sign in from a native app with the ID token the platform's SDK (Sign in
/// with Apple, Google Identity Services) obtained; answers like
/// `POST /user/login`.
#[utoipa::path(post, path = "/auth/{provider}/token", tag = "providers", params(
    ("provider" = String, Path, description = "A configured OpenID provider"),
), request_body = ProviderTokenRequest, responses(
    (status = 200, description = "Signed in (`LoginResponse`, cookies as for `POST /user/login`); or `MfaRequiredResponse` for an account with a second factor (complete with `POST /user/login/mfa`)", body = LoginAnswer),
    (status = 400, description = "Invalid body, or a provider without ID tokens (GitHub)", body = MainResponse),
    (status = 401, description = "`code: invalid_id_token`: a bad signature, issuer, audience, nonce, or an expired token", body = MainResponse),
    (status = 403, description = "Account disabled, or its address not verified when that is required; or a cross-site request", body = MainResponse),
    (status = 404, description = "No such provider", body = MainResponse),
    (status = 409, description = "`code: link_required` (an account has this verified address: sign in to it, then `POST /user/identities/link` with the `identity_link` cookie set here), or `code: identity_in_use`", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled per client; see Retry-After", body = MainResponse),
    (status = 503, description = "`code: provider_error`: the provider's keys cannot be fetched", body = MainResponse),
))]
pub(super) async fn provider_token(mut call: Call<SigningIn>) -> Result<Response, ApiError> {
    let req: ProviderTokenRequest = call.json()?;
    for (field, value, max) in [("id_token", &req.id_token, 8192), ("nonce", &req.nonce, 512)] {
        if value.is_empty() || value.len() > max {
            return Err(ValidationError::new(field, format!("must be 1–{max} characters")).into());
        }
    }
    let client = call.ctx.client();
    let outcome =
        call.state.service.provider_token_sign_in(&call.provider(), &req.id_token, &req.nonce, &client).await?;
    Ok(match outcome {
        ProviderOutcome::SignedIn { outcome, .. } => signed_in(&call, &client, &outcome),
        ProviderOutcome::SecondFactor { mfa_token, methods, .. } => json(&MfaRequiredResponse {
            response: MainResponse::new("second factor required", 200),
            mfa_required: true,
            methods,
            mfa_token,
        }),
        ProviderOutcome::LinkRequired { link_token, .. } => {
            let mut response = ApiError::Core(user_core::Error::LinkRequired).into_response();
            call.flow_cookie(&mut response, LINK_COOKIE, &link_token, "/user/identities/link", false);
            response
        }
        ProviderOutcome::Done { .. } => success(),
    })
}

/// Link the identity a provider sign-in held for this account
/// (`?link_required=1`): the `identity_link` cookie names it.
#[utoipa::path(post, path = "/user/identities/link", responses(
    (status = 200, description = "Linked; the account's identities", body = IdentitiesResponse),
    (status = 400, description = "No held identity (the `identity_link` cookie is missing, used, expired or another account's)", body = MainResponse),
    (status = 401, description = "Unauthorized, or `code: reauth_required`: sign in again first", body = MainResponse),
    (status = 409, description = "`code: identity_in_use`", body = MainResponse),
))]
pub(super) async fn link_identity(call: Call<Listener>) -> Result<Response, ApiError> {
    let token = call.cookie(LINK_COOKIE).ok_or(user_core::Error::InvalidToken)?;
    let claims = call.caller.claims();
    let identities = call.state.service.link_held_identity(claims.sub, claims.sid, &token, &call.ctx.client()).await?;
    let mut response = json(&IdentitiesResponse {
        response: MainResponse::success(),
        identities: identities.iter().map(IdentityInfo::from).collect(),
    });
    let clear = format!("{LINK_COOKIE}=; HttpOnly; SameSite=Lax; Path=/user/identities/link; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Remove the caller's identity at a provider.
#[utoipa::path(delete, path = "/user/identities/{provider}", params(
    ("provider" = String, Path, description = "The provider whose identity to remove"),
), responses(
    (status = 200, description = "Removed; a notice goes to the verified address", body = MainResponse),
    (status = 401, description = "Unauthorized, or `code: reauth_required`", body = MainResponse),
    (status = 404, description = "No identity at that provider", body = MainResponse),
    (status = 409, description = "`code: last_sign_in_method`: nothing else could sign in", body = MainResponse),
))]
pub(super) async fn unlink_identity(call: Call<Authenticated>) -> Result<Response, ApiError> {
    let claims = call.caller.claims();
    let provider = call.provider();
    call.state.service.unlink_identity(claims.sub, Some(claims.sid), &provider, &call.ctx.client()).await?;
    Ok(success())
}
