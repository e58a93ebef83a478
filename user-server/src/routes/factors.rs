//! Second factors (v1.2): the caller's sign-in methods, TOTP on and off,
//! recovery codes.

use user_core::api::{
    CurrentPasswordRequest, IdentityInfo, MainResponse, PasskeyInfo, RecoveryCodesResponse, SecurityResponse,
    TotpConfirmRequest, TotpEnrollResponse,
};
use user_core::auth::RecoveryCode;
use warp::reply::Response;

use super::guard::{AnySession, Authenticated};
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

/// The caller's ways to sign in: passkeys, TOTP, recovery codes left,
/// linked providers, whether a password is set.
#[utoipa::path(get, path = "/user/security", responses(
    (status = 200, description = "The caller's sign-in methods", body = SecurityResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
))]
pub(super) async fn security(call: Call<AnySession>) -> Result<Response, ApiError> {
    let factors = call.state.service.second_factors(call.caller.id()).await?;
    let passkeys = call.state.service.passkeys(call.caller.id()).await?;
    let (identities, has_password) = call.state.service.identities(call.caller.id()).await?;
    Ok(json(&SecurityResponse {
        response: MainResponse::success(),
        passkeys: passkeys
            .into_iter()
            .map(|p| PasskeyInfo { id: p.id, name: p.name, created_at: p.created_at, last_used_at: p.last_used_at })
            .collect(),
        totp: factors.totp,
        recovery_codes_left: factors.recovery_codes_left,
        identities: identities.iter().map(IdentityInfo::from).collect(),
        has_password,
    }))
}

/// Begin turning TOTP on: a new secret and its `otpauth://` URI, shown
/// once; `POST /user/totp/confirm` with the app's first code turns it on.
#[utoipa::path(post, path = "/user/totp/enroll", request_body(content = Option<CurrentPasswordRequest>, description = "Optional: the current password, standing for a recent sign-in"), responses(
    (status = 200, description = "The secret, to type or scan into an authenticator app within 10 minutes", body = TotpEnrollResponse),
    (status = 400, description = "A token cookie sent more than once, or a malformed body", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong `current_password`; or `code: reauth_required`: sign in again or give `current_password`", body = MainResponse),
    (status = 409, description = "`code: factor_active`: TOTP is on already; turn it off first", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "This account after repeated wrong current passwords; see Retry-After", body = MainResponse),
))]
pub(super) async fn totp_enroll(mut call: Call<AnySession>) -> Result<Response, ApiError> {
    let current = call.change_proof()?.current_password;
    let claims = call.caller.claims();
    let client = call.ctx.client();
    let enrollment =
        call.state.service.start_totp_enrollment(claims.sub, Some(claims.sid), current.as_ref(), &client).await?;
    Ok(json(&TotpEnrollResponse {
        response: MainResponse::success(),
        secret: enrollment.secret,
        otpauth_uri: enrollment.otpauth_uri,
    }))
}

/// Turn TOTP on with the app's first code; answers the ten recovery codes,
/// shown this once.
#[utoipa::path(post, path = "/user/totp/confirm", request_body = TotpConfirmRequest, responses(
    (status = 200, description = "TOTP is on; keep the recovery codes somewhere safe", body = RecoveryCodesResponse),
    (status = 400, description = "Invalid body, or a token cookie sent more than once", body = MainResponse),
    (status = 401, description = "Unauthorized; or `code: invalid_code`: a wrong code, or no enrollment pending (it expired after 10 minutes)", body = MainResponse),
    (status = 409, description = "`code: factor_active`: TOTP is on already", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
))]
pub(super) async fn totp_confirm(mut call: Call<AnySession>) -> Result<Response, ApiError> {
    let req: TotpConfirmRequest = call.json()?;
    let claims = call.caller.claims();
    let codes = call.state.service.confirm_totp(claims.sub, Some(claims.sid), &req.code, &call.ctx.client()).await?;
    call.revoke_others_if(req.revoke_other_sessions.unwrap_or(false), claims.sub, claims.sid).await?;
    Ok(recovery_codes(&codes))
}

/// Turn TOTP off; the recovery codes stop working too.
#[utoipa::path(delete, path = "/user/totp", request_body(content = Option<CurrentPasswordRequest>, description = "Optional: the current password, standing for a recent sign-in"), responses(
    (status = 200, description = "TOTP is off", body = MainResponse),
    (status = 400, description = "A token cookie sent more than once, or a malformed body", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong `current_password`; or `code: reauth_required`", body = MainResponse),
    (status = 409, description = "`code: no_second_factor`: TOTP is not on", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "This account after repeated wrong current passwords; see Retry-After", body = MainResponse),
))]
pub(super) async fn totp_disable(mut call: Call<Authenticated>) -> Result<Response, ApiError> {
    let proof = call.change_proof()?;
    let claims = call.caller.claims();
    let current = proof.current_password.as_ref();
    call.state.service.disable_totp(claims.sub, Some(claims.sid), current, &call.ctx.client()).await?;
    call.revoke_others_if(proof.revoke_other_sessions, claims.sub, claims.sid).await?;
    Ok(success())
}

/// Ten new recovery codes; the old ones, used or not, stop working.
#[utoipa::path(post, path = "/user/recovery-codes", request_body(content = Option<CurrentPasswordRequest>, description = "Optional: the current password, standing for a recent sign-in"), responses(
    (status = 200, description = "The new codes, shown this once", body = RecoveryCodesResponse),
    (status = 400, description = "A token cookie sent more than once, or a malformed body", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong `current_password`; or `code: reauth_required`", body = MainResponse),
    (status = 409, description = "`code: no_second_factor`: turn TOTP on first", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "This account after repeated wrong current passwords; see Retry-After", body = MainResponse),
))]
pub(super) async fn new_recovery_codes(mut call: Call<Authenticated>) -> Result<Response, ApiError> {
    let proof = call.change_proof()?;
    let claims = call.caller.claims();
    let client = call.ctx.client();
    let current = proof.current_password.as_ref();
    let codes = call.state.service.new_recovery_codes(claims.sub, Some(claims.sid), current, &client).await?;
    call.revoke_others_if(proof.revoke_other_sessions, claims.sub, claims.sid).await?;
    Ok(recovery_codes(&codes))
}

fn recovery_codes(codes: &[RecoveryCode]) -> Response {
    json(&RecoveryCodesResponse {
        response: MainResponse::success(),
        recovery_codes: codes.iter().map(RecoveryCode::display).collect(),
    })
}
