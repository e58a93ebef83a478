//! Device sign-in (RFC 8628) and the token endpoint for native apps: a TV
//! asks for codes and polls `/oauth/token`; a person approves it on
//! `/device` (or through `POST /user/device/approve`) from a signed-in
//! browser or app. The `/oauth/*` routes take forms or JSON and answer
//! errors in RFC 6749's shape.

use user_core::api::{
    DEVICE_CODE_GRANT, DeviceApproveRequest, DeviceCodeRequest, DeviceCodeResponse, MainResponse, OAuthErrorResponse,
    OAuthTokenRequest, OAuthTokenResponse,
};
use user_core::auth::IssuedTokens;
use user_core::domain::{DeviceName, UserCode};
use user_core::service::ClientInfo;
use user_core::{Error, GrantError};
use warp::reply::Response;

use super::guard::{Listener, Open};
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;
use crate::security::Action;

/// A parameter the grant needs.
fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::BadRequest(format!("{name} is required")))
}

/// Start signing a device in: codes for the device to show and poll with.
#[utoipa::path(post, path = "/oauth/device/code", tag = "oauth", request_body(
    content((DeviceCodeRequest = "application/x-www-form-urlencoded"), (DeviceCodeRequest = "application/json")),
), responses(
    (status = 200, description = "The codes (RFC 8628 §3.2)", body = DeviceCodeResponse),
    (status = 400, description = "`invalid_request`: a malformed body or parameter", body = OAuthErrorResponse),
    (status = 401, description = "`invalid_client`: the client id is not in USER_OAUTH_CLIENTS", body = OAuthErrorResponse),
    (status = 429, description = "`temporarily_unavailable`: throttled per client address (the login limit); see Retry-After", body = OAuthErrorResponse),
))]
pub(super) async fn device_code(mut call: Call<Open>) -> Result<Response, ApiError> {
    let req: DeviceCodeRequest = call.form_or_json()?;
    let device =
        ClientInfo { device_name: req.device_name.as_deref().map(DeviceName::parse).transpose()?, ..call.ctx.client() };
    let started = call.state.service.start_device_login(&req.client_id, &device).await?;
    let uri = verification_uri(&call);
    Ok(json(&DeviceCodeResponse {
        verification_uri_complete: format!("{uri}?user_code={}", started.user_code),
        verification_uri: uri,
        device_code: started.device_code,
        user_code: started.user_code.to_string(),
        expires_in: started.expires_in.as_secs(),
        interval: started.interval.as_secs(),
    }))
}

/// Where people type codes: `USER_PUBLIC_URL`'s `/device`, else this host's.
fn verification_uri<G>(call: &Call<G>) -> String {
    format!("{}/device", call.public_base())
}

/// Exchange a device code (once approved) or a refresh token for tokens.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth", request_body(
    content((OAuthTokenRequest = "application/x-www-form-urlencoded"), (OAuthTokenRequest = "application/json")),
), responses(
    (status = 200, description = "Tokens (RFC 6749 §5.1); the refresh token is rotated on each use", body = OAuthTokenResponse),
    (status = 400, description = "`authorization_pending`, `slow_down`, `access_denied`, `expired_token`, `invalid_grant`, `invalid_request` or `unsupported_grant_type`", body = OAuthErrorResponse),
    (status = 429, description = "`temporarily_unavailable`: refresh grants throttled per client address; see Retry-After", body = OAuthErrorResponse),
))]
pub(super) async fn token(mut call: Call<Open>) -> Result<Response, ApiError> {
    let req: OAuthTokenRequest = call.form_or_json()?;
    let client = call.ctx.client();
    let tokens = match req.grant_type.as_str() {
        DEVICE_CODE_GRANT => {
            let device_code = required(req.device_code, "device_code")?;
            let client_id = required(req.client_id, "client_id")?;
            call.state.service.poll_device_login(&client_id, &device_code, &client).await?
        }
        "refresh_token" => {
            call.ctx.throttle(Action::Refresh).await?;
            let refresh = required(req.refresh_token, "refresh_token")?;
            call.state.service.refresh(&refresh, &client).await?
        }
        "" => return Err(ApiError::BadRequest("grant_type is required".into())),
        _ => return Err(Error::Grant(GrantError::UnsupportedGrantType).into()),
    };
    Ok(token_response(&call.state, &tokens))
}

fn token_response(state: &crate::AppState, tokens: &IssuedTokens) -> Response {
    let access_ttl = state.service.tokens().config().access_ttl;
    json(&OAuthTokenResponse {
        access_token: tokens.access.clone(),
        refresh_token: tokens.refresh.clone(),
        token_type: "Bearer".into(),
        expires_in: access_ttl.as_secs(),
    })
}

/// Approve or decline the device whose code the caller typed.
#[utoipa::path(post, path = "/user/device/approve", request_body = DeviceApproveRequest, responses(
    (status = 200, description = "Approved or declined", body = MainResponse),
    (status = 400, description = "Invalid or expired code, or invalid body", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Too many wrong codes from this account or address; see Retry-After", body = MainResponse),
))]
pub(super) async fn approve_device(mut call: Call<Listener>) -> Result<Response, ApiError> {
    // A guest has nothing to lend another device (API.md: `access_denied`).
    if call.caller.user().is_guest() {
        return Err(Error::Forbidden(user_core::ForbiddenReason::GuestAccessDenied).into());
    }
    let req: DeviceApproveRequest = call.json()?;
    // Anything that is not a code we could have made is wrong like an unknown one.
    let code = UserCode::parse(&req.user_code).map_err(|_| Error::InvalidUserCode)?;
    let caller = call.caller.claims();
    call.state.service.decide_device_login(caller.sub, caller.sid, &code, req.approve, &call.ctx.client()).await?;
    Ok(success())
}
