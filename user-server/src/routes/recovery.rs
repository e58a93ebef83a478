//! Email verification and password reset (v1.1): the mails go through the
//! outbox; these routes ask for them and use their tokens.

use user_core::api::{
    FORGOT_PASSWORD_MESSAGE, ForgotPasswordRequest, MainResponse, ResetPasswordRequest, TokenRequest,
};
use user_core::domain::{Email, Password};
use warp::http::StatusCode;
use warp::reply::Response;

use super::guard::{Authenticated, Open};
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

/// Send a new verification mail to the caller's address.
#[utoipa::path(post, path = "/user/email/verify/request", responses(
    (status = 200, description = "A mail is on its way", body = MainResponse),
    (status = 409, description = "The address is verified already", body = MainResponse),
    (status = 429, description = "One was sent less than a minute ago; see Retry-After", body = MainResponse),
    (status = 503, description = "Mail is not configured", body = MainResponse),
))]
pub(super) async fn request_verification(call: Call<Authenticated>) -> Result<Response, ApiError> {
    call.state.service.request_verification(call.caller.id()).await?;
    Ok(success())
}

/// Verify an address with the token from its mail.
#[utoipa::path(post, path = "/user/email/verify", request_body = TokenRequest, responses(
    (status = 200, description = "The address is verified", body = MainResponse),
    (status = 400, description = "Invalid or expired token, or invalid body", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
))]
pub(super) async fn verify_email(mut call: Call<Open>) -> Result<Response, ApiError> {
    let req: TokenRequest = call.json()?;
    call.state.service.verify_email(&req.token, &call.ctx.client()).await?;
    Ok(success())
}

/// Undo an address change with the link mailed to the old address: the old
/// address comes back verified, every session ends, the password becomes
/// unusable and a reset link goes to the old address.
#[utoipa::path(post, path = "/user/email/revert", request_body = TokenRequest, responses(
    (status = 200, description = "The change is undone; this browser's token cookies are cleared", body = MainResponse),
    (status = 400, description = "Invalid, used or expired link, or invalid body", body = MainResponse),
    (status = 403, description = "Sent from another site's page (the same-site rule)", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 503, description = "Mail is not configured", body = MainResponse),
))]
pub(super) async fn revert_email(mut call: Call<Open>) -> Result<Response, ApiError> {
    // It ends sessions and mails a reset link: a foreign page must not make
    // a visitor's browser do it with a link it got hold of.
    call.ctx.policy.check_same_site(&call.ctx.headers)?;
    let req: TokenRequest = call.json()?;
    call.state.service.revert_email_change(&req.token, &call.ctx.client()).await?;
    let mut response = success();
    call.state.cookies.clear(&mut response, &call.ctx);
    Ok(response)
}

/// Ask for a password-reset mail. The answer is the same whether or not an
/// account has the address.
#[utoipa::path(post, path = "/user/password/forgot", request_body = ForgotPasswordRequest, responses(
    (status = 202, description = "If an account has the address, a mail is on its way", body = MainResponse),
    (status = 400, description = "Invalid address or body", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled (per client, or one mail per address a minute); see Retry-After", body = MainResponse),
    (status = 503, description = "Mail is not configured", body = MainResponse),
))]
pub(super) async fn forgot_password(mut call: Call<Open>) -> Result<Response, ApiError> {
    let req: ForgotPasswordRequest = call.json()?;
    let email = Email::parse(&req.email)?;
    if let Some(throttle) = &call.ctx.policy.throttle {
        throttle.check_forgot_address(email.as_str()).await?;
    }
    call.state.service.forgot_password(&email, &call.ctx.client()).await?;
    let mut response = json(&MainResponse::new(FORGOT_PASSWORD_MESSAGE, 202));
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

/// Set a new password with the token from a reset mail; every session of
/// the account ends.
#[utoipa::path(post, path = "/user/password/reset", request_body = ResetPasswordRequest, responses(
    (status = 200, description = "The password is set; every session ended", body = MainResponse),
    (status = 400, description = "Invalid or expired token, weak password, or invalid body", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled per client (shared with forgot); see Retry-After", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
pub(super) async fn reset_password(mut call: Call<Open>) -> Result<Response, ApiError> {
    let req: ResetPasswordRequest = call.json()?;
    let password = Password::parse(&req.password)?;
    call.state.service.reset_password(&req.token, &password, &call.ctx.client()).await?;
    Ok(success())
}
