//! The caller's account: register, read, update, delete.

use user_core::api::{
    AccountResponse, CurrentPasswordRequest, MainResponse, RegisterRequest, UpdateRequest, UserResponse,
};
use user_core::domain::{Email, Locale, Password, Username};
use user_core::service::{ProfileUpdate, Registration};
use user_core::store::User;
use warp::reply::Response;

use super::guard::{Authenticated, Listener, Open, SessionHolder};
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

fn account_response(user: &User) -> Response {
    json(&AccountResponse {
        response: MainResponse::success(),
        // Registration and update are for accounts, never guests: a username is there.
        username: user.display_name().to_owned(),
        email: user.email.as_ref().map(ToString::to_string),
        id: user.id.as_uuid(),
    })
}

/// Register a user.
#[utoipa::path(post, path = "/user/register", request_body = RegisterRequest, responses(
    (status = 200, description = "Registered", body = AccountResponse),
    (status = 400, description = "Invalid body or field", body = MainResponse),
    (status = 409, description = "Username or email taken", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled; see Retry-After", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
pub(super) async fn register(mut call: Call<Open>) -> Result<Response, ApiError> {
    let req: RegisterRequest = call.json()?;
    let registration = Registration {
        username: Username::parse(&req.username)?,
        password: Password::parse(&req.password)?,
        email: Email::parse(&req.email)?,
        locale: req.locale.or_else(|| preferred_locale(&call.ctx.headers)).unwrap_or_default(),
    };
    let user = call.state.service.register(registration, &call.ctx.client()).await?;
    Ok(account_response(&user))
}

/// The caller's account.
#[utoipa::path(get, path = "/user/get", responses(
    (status = 200, description = "The account", body = UserResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
    (status = 404, description = "The user no longer exists", body = MainResponse),
))]
pub(super) async fn get_user(call: Call<SessionHolder>) -> Result<Response, ApiError> {
    let user = call.caller.user();
    Ok(json(&UserResponse {
        response: MainResponse::success(),
        username: user.username.as_ref().map(ToString::to_string),
        id: user.id.as_uuid(),
        email: user.email.as_ref().map(ToString::to_string),
        role: user.role,
        created_at: user.created_at,
        email_verified: user.email_verified,
        locale: user.locale,
        guest: user.is_guest(),
    }))
}

/// Change any non-empty subset of username, email, password.
#[utoipa::path(put, path = "/user/update", request_body = UpdateRequest, responses(
    (status = 200, description = "Updated", body = AccountResponse),
    (status = 400, description = "Invalid body or field", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong current password; or `code: reauth_required` (with `WWW-Authenticate: Bearer error=\"insufficient_user_authentication\"`) for a new email or password from a session that did not sign in within USER_REAUTH_WINDOW: sign in again or give `current_password`", body = MainResponse),
    (status = 409, description = "Username or email taken", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled (per client, or this account after repeated wrong current passwords); see Retry-After", body = MainResponse),
))]
pub(super) async fn update(mut call: Call<Authenticated>) -> Result<Response, ApiError> {
    let req: UpdateRequest = call.json()?;
    let update = ProfileUpdate {
        username: req.username.as_deref().map(Username::parse).transpose()?,
        email: req.email.as_deref().map(Email::parse).transpose()?,
        password: req.password.as_deref().map(Password::parse).transpose()?,
        current_password: req
            .current_password
            .as_deref()
            .map(|p| Password::presented("current_password", p))
            .transpose()?,
        locale: req.locale,
    };
    let claims = call.caller.claims();
    let user = call.state.service.update(claims.sub, Some(claims.sid), update, &call.ctx.client()).await?;
    Ok(account_response(&user))
}

/// Delete the caller's account, sessions and favorites. Needs a recent
/// sign-in of this session (`USER_REAUTH_WINDOW`) or `current_password`.
#[utoipa::path(delete, path = "/user/delete", request_body(content = Option<CurrentPasswordRequest>, description = "(v1.2) Optional: the current password, standing for a recent sign-in"), responses(
    (status = 200, description = "Deleted; cookies cleared", body = MainResponse),
    (status = 400, description = "A token cookie sent more than once, or a malformed body", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong `current_password`; or `code: reauth_required` (with `WWW-Authenticate: Bearer error=\"insufficient_user_authentication\"`): sign in again or give `current_password`", body = MainResponse),
    (status = 409, description = "The caller is the last active admin", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "This account after repeated wrong current passwords; see Retry-After", body = MainResponse),
))]
pub(super) async fn delete(mut call: Call<Listener>) -> Result<Response, ApiError> {
    let current = call.change_proof()?.current_password;
    let claims = call.caller.claims();
    call.state.service.delete_own_account(claims.sub, claims.sid, current.as_ref(), &call.ctx.client()).await?;
    let mut response = success();
    call.state.cookies.clear(&mut response, &call.ctx);
    Ok(response)
}

/// The locale `Accept-Language` prefers among ours, if it names one.
pub(super) fn preferred_locale(headers: &warp::http::HeaderMap) -> Option<Locale> {
    let header = headers.get(warp::http::header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    Locale::from_accept_language(header)
}
