//! Guest accounts (v1.2): listen first, register later, keeping everything.

use user_core::api::{LoginResponse, MainResponse, RegisterRequest};
use user_core::domain::{Email, Password, Username};
use user_core::service::Registration;
use warp::reply::Response;

use super::Call;
use super::account::preferred_locale;
use super::guard::{Guest, NewGuest};
use super::session::signed_in;
use crate::error::ApiError;

/// Start as a guest: a new account with role `guest` (no username,
/// address or password) and its session, answered like a login.
#[utoipa::path(post, path = "/user/guest", responses(
    (status = 200, description = "A guest account and its session; cookies as for `POST /user/login`. A guest may read `/user/get` (`\"guest\": true`), keep favorites (at most `USER_GUEST_MAX_FAVORITES`), list and end its sessions, delete itself and upgrade (`POST /user/guest/upgrade`); other routes answer 403 `registration_required`. Idle guests are deleted after `USER_GUEST_TTL`", body = LoginResponse),
    (status = 403, description = "`code: guests_off`: guest accounts are off; or a cross-site request", body = MainResponse),
    (status = 409, description = "`code: already_signed_in`: the request carries a live session", body = MainResponse),
    (status = 429, description = "Throttled: 10 an hour per client address (an IPv6 /64 as one), and `USER_GUEST_MAX_PER_HOUR` overall; see Retry-After", body = MainResponse),
))]
pub(super) async fn create_guest(call: Call<NewGuest>) -> Result<Response, ApiError> {
    if call.caller.signed_in {
        return Err(user_core::Error::AlreadySignedIn.into());
    }
    call.ctx.policy.guest_cap.check().await?;
    let client = call.ctx.client();
    let locale = preferred_locale(&call.ctx.headers).unwrap_or_default();
    let outcome = call.state.service.create_guest(locale, &client).await?;
    Ok(signed_in(&call, &client, &outcome))
}

/// Turn the calling guest into an account: username, email and password
/// as at registration. Keeps the id, favorites and every session; answers
/// like a login with new tokens (role `user`) for this session.
#[utoipa::path(post, path = "/user/guest/upgrade", request_body = RegisterRequest, responses(
    (status = 200, description = "Upgraded; new tokens for this session, cookies as for `POST /user/login`; a verification mail goes to the address", body = LoginResponse),
    (status = 400, description = "Invalid body or field (as at registration: a common or breached password is refused)", body = MainResponse),
    (status = 409, description = "Username or email taken", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
pub(super) async fn upgrade_guest(mut call: Call<Guest>) -> Result<Response, ApiError> {
    let req: RegisterRequest = call.json()?;
    let registration = Registration {
        username: Username::parse(&req.username)?,
        email: Email::parse(&req.email)?,
        password: Password::parse(&req.password)?,
        locale: req.locale.unwrap_or(call.caller.user().locale),
    };
    let client = call.ctx.client();
    let claims = call.caller.claims();
    let outcome = call.state.service.upgrade_guest(claims.sub, claims.sid, registration, &client).await?;
    Ok(signed_in(&call, &client, &outcome))
}
