//! Passkeys (v1.2): add, rename and remove them; sign in with one.

use user_core::api::{
    CurrentPasswordRequest, LoginResponse, MainResponse, PasskeyCreatedResponse, PasskeyLoginRequest,
    PasskeyLoginStartRequest, PasskeyOptionsResponse, PasskeyRegisterRequest, PasskeyRenameRequest,
};
use user_core::domain::ValidationError;
use user_core::service::{PasskeyCeremony, PasskeySignIn};
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::Response;

use super::guard::{AnySession, Authenticated, MaybeSession, SigningIn};
use super::session::signed_in;
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

fn options(ceremony: PasskeyCeremony) -> Response {
    json(&PasskeyOptionsResponse {
        response: MainResponse::success(),
        ceremony: ceremony.ceremony,
        options: ceremony.options,
    })
}

impl<G> Call<G> {
    /// The passkey id in the path.
    fn passkey_id(&self) -> Result<Uuid, ApiError> {
        let id = self.path_param.as_deref().unwrap_or_default();
        Ok(id.parse().map_err(|_| ValidationError::new("id", "must be a passkey id (a UUID)"))?)
    }
}

/// Begin adding a passkey: the options for `navigator.credentials.create`.
#[utoipa::path(post, path = "/user/passkeys/register/start", request_body(content = Option<CurrentPasswordRequest>, description = "Optional: the current password, standing for a recent sign-in"), responses(
    (status = 200, description = "A discoverable credential with user verification is asked for; the account's passkeys are excluded", body = PasskeyOptionsResponse),
    (status = 400, description = "A token cookie sent more than once, or a malformed body", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong `current_password`; or `code: reauth_required`", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "This account after repeated wrong current passwords; see Retry-After", body = MainResponse),
    (status = 503, description = "Passkeys are not configured (`USER_WEBAUTHN_RP_ID`)", body = MainResponse),
))]
pub(super) async fn passkey_register_start(mut call: Call<AnySession>) -> Result<Response, ApiError> {
    let current = call.change_proof()?.current_password;
    let claims = call.caller.claims();
    let client = call.ctx.client();
    let service = &call.state.service;
    Ok(options(service.start_passkey_registration(claims.sub, Some(claims.sid), current.as_ref(), &client).await?))
}

/// Add the passkey the authenticator made.
#[utoipa::path(post, path = "/user/passkeys/register/finish", request_body = PasskeyRegisterRequest, responses(
    (status = 201, description = "Added", body = PasskeyCreatedResponse),
    (status = 400, description = "A check failed (`credential: …`), the ceremony is unknown, used, expired or another session's, or the passkey is registered already", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 503, description = "Passkeys are not configured", body = MainResponse),
))]
pub(super) async fn passkey_register_finish(mut call: Call<AnySession>) -> Result<Response, ApiError> {
    let req: PasskeyRegisterRequest = call.json()?;
    let claims = call.caller.claims();
    let client = call.ctx.client();
    let (user, session) = (claims.sub, Some(claims.sid));
    let name = req.name.as_deref();
    let added = call
        .state
        .service
        .finish_passkey_registration(user, session, &req.ceremony, name, &req.credential, &client)
        .await?;
    call.revoke_others_if(req.revoke_other_sessions.unwrap_or(false), claims.sub, claims.sid).await?;
    let mut response =
        json(&PasskeyCreatedResponse { response: MainResponse::new("success", 201), id: added.id, name: added.name });
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// Rename one of the caller's passkeys.
#[utoipa::path(patch, path = "/user/passkeys/{id}", params(
    ("id" = String, Path, description = "A passkey id from `GET /user/security`", format = Uuid),
), request_body = PasskeyRenameRequest, responses(
    (status = 200, description = "Renamed", body = MainResponse),
    (status = 400, description = "Not a passkey id, or a name that is empty, too long or has control characters", body = MainResponse),
    (status = 404, description = "Not a passkey of the caller", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
))]
pub(super) async fn passkey_rename(mut call: Call<Authenticated>) -> Result<Response, ApiError> {
    let id = call.passkey_id()?;
    let req: PasskeyRenameRequest = call.json()?;
    call.state.service.rename_passkey(call.caller.id(), id, &req.name).await?;
    Ok(success())
}

/// Remove one of the caller's passkeys.
#[utoipa::path(delete, path = "/user/passkeys/{id}", params(
    ("id" = String, Path, description = "A passkey id from `GET /user/security`", format = Uuid),
), request_body(content = Option<CurrentPasswordRequest>, description = "Optional: the current password, standing for a recent sign-in"), responses(
    (status = 200, description = "Removed", body = MainResponse),
    (status = 400, description = "Not a passkey id, or a malformed body", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong `current_password`; or `code: reauth_required`", body = MainResponse),
    (status = 404, description = "Not a passkey of the caller", body = MainResponse),
    (status = 409, description = "`code: last_sign_in_method`: nothing else could sign in", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "This account after repeated wrong current passwords; see Retry-After", body = MainResponse),
))]
pub(super) async fn passkey_remove(mut call: Call<Authenticated>) -> Result<Response, ApiError> {
    let id = call.passkey_id()?;
    let proof = call.change_proof()?;
    let claims = call.caller.claims();
    let client = call.ctx.client();
    let current = proof.current_password.as_ref();
    call.state.service.remove_passkey(claims.sub, Some(claims.sid), current, id, &client).await?;
    call.revoke_others_if(proof.revoke_other_sessions, claims.sub, claims.sid).await?;
    Ok(success())
}

/// Begin signing in with a passkey: alone (no body; autofill works), as the
/// second step of a sign-in (`{"mfa_token"}`), or to step the caller's
/// session up (`{"reauth": true}` with an access token).
#[utoipa::path(post, path = "/user/passkeys/login/start", request_body(content = Option<PasskeyLoginStartRequest>, description = "Optional: what the sign-in is for"), responses(
    (status = 200, description = "Options for `navigator.credentials.get` (no allowed credentials: the authenticator offers the account's)", body = PasskeyOptionsResponse),
    (status = 400, description = "Both `mfa_token` and `reauth`, or a malformed body", body = MainResponse),
    (status = 401, description = "`reauth` without a valid session; or `code: invalid_code`: an unknown, used or expired `mfa_token`", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "A body that is not JSON", body = MainResponse),
    (status = 429, description = "Throttled per client; see Retry-After", body = MainResponse),
    (status = 503, description = "Passkeys are not configured", body = MainResponse),
))]
pub(super) async fn passkey_login_start(mut call: Call<MaybeSession>) -> Result<Response, ApiError> {
    let req: PasskeyLoginStartRequest = call.optional_json()?.unwrap_or_default();
    let purpose = match (req.mfa_token.as_deref(), req.reauth.unwrap_or(false)) {
        (None, false) => PasskeySignIn::Discoverable,
        (Some(mfa_token), false) => PasskeySignIn::SecondFactor { mfa_token },
        (None, true) => {
            let session =
                call.caller.0.as_ref().ok_or(user_core::Error::Unauthorized(user_core::UnauthorizedReason::Missing))?;
            let claims = session.claims();
            PasskeySignIn::StepUp { user: claims.sub, session: claims.sid }
        }
        (Some(_), true) => return Err(ValidationError::new("body", "give mfa_token or reauth, not both").into()),
    };
    Ok(options(call.state.service.start_passkey_sign_in(purpose).await?))
}

/// Sign in with a passkey alone; sets the cookies as `POST /user/login` does.
#[utoipa::path(post, path = "/user/passkeys/login/finish", request_body = PasskeyLoginRequest, responses(
    (status = 200, description = "Signed in; cookies as for `POST /user/login`", body = LoginResponse),
    (status = 400, description = "Invalid body", body = MainResponse),
    (status = 401, description = "Invalid credentials: any failed check, an unknown passkey, or a ceremony unknown, used or expired", body = MainResponse),
    (status = 403, description = "Account disabled, or its address not verified when that is required; or a cross-site request", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled per client; see Retry-After", body = MainResponse),
    (status = 503, description = "Passkeys are not configured", body = MainResponse),
))]
pub(super) async fn passkey_login_finish(mut call: Call<SigningIn>) -> Result<Response, ApiError> {
    let req: PasskeyLoginRequest = call.json()?;
    let client = call.ctx.client();
    match call.state.service.finish_passkey_sign_in(&req.ceremony, &req.credential, &client).await {
        Ok(outcome) => {
            crate::telemetry::record_login("success");
            Ok(signed_in(&call, &client, &outcome))
        }
        Err(e) => {
            crate::telemetry::record_login("passkey_refused");
            Err(e.into())
        }
    }
}
