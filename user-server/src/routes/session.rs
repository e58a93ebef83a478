//! Sessions: log in, log out, refresh, and the caller's list of sessions.

use user_core::api::{
    LoginAnswer, LoginMfaRequest, LoginRequest, LoginResponse, MainResponse, MfaRequiredResponse, ReauthRequest,
    ReauthResponse, RefreshResponse, RevokedResponse, SessionInfo, SessionListResponse,
};
use user_core::auth::IssuedTokens;
use user_core::domain::{DeviceName, Login, Password, SessionId, ValidationError};
use user_core::service::{ClientInfo, LoginOutcome, StepUp};
use warp::reply::Response;

use super::guard::{Listener, RefreshCookie, SessionToEnd, SigningIn, SteppingUp};
use super::{Call, success};
use crate::AppState;
use crate::error::ApiError;
use crate::http::{RequestCtx, json};

/// Log in by username or email; sets the token cookies.
#[utoipa::path(post, path = "/user/login", request_body = LoginRequest, responses(
    (status = 200, description = "Logged in (`LoginResponse`); `access_token` and `refresh_token` cookies set, and a `device_…` cookie (a year) the first time this browser signs in to the account: its wrong passwords then count on their own, so nobody else's guessing locks it out. (v1.2) An account with a second factor answers `MfaRequiredResponse` instead, with no session and no cookies: complete it with `POST /user/login/mfa`", body = LoginAnswer),
    (status = 400, description = "Invalid body", body = MainResponse),
    (status = 401, description = "Wrong password", body = MainResponse),
    (status = 403, description = "Account disabled; or (v1.2) a cross-site request: a page of another site cannot sign a browser in", body = MainResponse),
    (status = 404, description = "User not found", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled (per client; or this account after repeated failures, counted per device cookie for a browser that signed in before); see Retry-After", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
pub(super) async fn login(mut call: Call<SigningIn>) -> Result<Response, ApiError> {
    let mut client = call.ctx.client();
    let req: LoginRequest = call.json()?;
    let login = Login::parse(&req.username)?;
    let password = Password::presented("password", &req.password)?;
    client.device_name = req.device_name.as_deref().map(DeviceName::parse).transpose()?;
    let outcome = match call.state.service.login(&login, &password, &client).await {
        Ok(outcome) => outcome,
        Err(user_core::Error::SecondFactorRequired(challenge)) => {
            crate::telemetry::record_login("second_factor");
            return Ok(json(&MfaRequiredResponse {
                response: MainResponse::new("second factor required", 200),
                mfa_required: true,
                methods: challenge.methods.iter().map(|m| m.as_str().to_owned()).collect(),
                mfa_token: challenge.mfa_token,
            }));
        }
        Err(e) => {
            record_failed_login(&e);
            return Err(e.into());
        }
    };
    crate::telemetry::record_login("success");
    if req.merge_guest == Some(true)
        && let Ok(Some(guest)) = crate::http::Credentials::from_headers(&call.ctx.headers).access_opt()
    {
        call.state.service.merge_guest(guest, outcome.user.id, &client).await?;
    }
    Ok(signed_in(&call, &client, &outcome))
}

/// Complete a sign-in with a second factor (v1.2): a code from the
/// authenticator app or a recovery code; sets the cookies as login does.
#[utoipa::path(post, path = "/user/login/mfa", request_body = LoginMfaRequest, responses(
    (status = 200, description = "Signed in; cookies as for `POST /user/login`", body = LoginResponse),
    (status = 400, description = "Invalid body", body = MainResponse),
    (status = 401, description = "`code: invalid_code`: a wrong or used code, or an `mfa_token` that is unknown, used, expired or spent (five wrong codes); sign in again for a new one", body = MainResponse),
    (status = 403, description = "Account disabled, or its address not verified when that is required (the code was right); or a cross-site request", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled per client; see Retry-After", body = MainResponse),
))]
pub(super) async fn login_mfa(mut call: Call<SigningIn>) -> Result<Response, ApiError> {
    let client = call.ctx.client();
    let req: LoginMfaRequest = call.json()?;
    let service = &call.state.service;
    // A provider sign-in left its token in the `mfa_pending` cookie (a
    // browser redirect carries no body); a token in the body comes first.
    let mfa_token = req.mfa_token.clone().or_else(|| call.cookie(MFA_PENDING_COOKIE));
    let completed = match (&mfa_token, &req.code, &req.ceremony, &req.credential) {
        (Some(token), Some(code), None, None) => service.complete_sign_in(token, code, &client).await,
        (token, None, Some(ceremony), Some(credential)) => {
            service.complete_sign_in_with_passkey(token.as_deref(), ceremony, credential, &client).await
        }
        _ => Err(ValidationError::new("body", "give mfa_token and code, or ceremony and credential").into()),
    };
    match completed {
        Ok(outcome) => {
            crate::telemetry::record_login("success");
            let tokens = &outcome.tokens;
            call.revoke_others_if(req.revoke_other_sessions.unwrap_or(false), tokens.user_id, tokens.session_id)
                .await?;
            let mut response = signed_in(&call, &client, &outcome);
            if req.mfa_token.is_none() {
                let clear = format!("{MFA_PENDING_COOKIE}=; HttpOnly; SameSite=Lax; Path=/user/login/mfa; Max-Age=0");
                if let Ok(v) = warp::http::HeaderValue::from_str(&clear) {
                    response.headers_mut().append(warp::http::header::SET_COOKIE, v);
                }
            }
            Ok(response)
        }
        Err(e) => {
            record_failed_login(&e);
            Err(e.into())
        }
    }
}

/// Where a provider sign-in waiting for its second factor keeps its token.
pub(super) const MFA_PENDING_COOKIE: &str = "mfa_pending";

fn record_failed_login(e: &user_core::Error) {
    crate::telemetry::record_login(match e {
        user_core::Error::InvalidCredentials => "wrong_password",
        user_core::Error::InvalidCode => "wrong_code",
        user_core::Error::UserNotFound => "unknown_user",
        user_core::Error::Forbidden(_) => "disabled",
        user_core::Error::Throttled { .. } => "throttled",
        _ => "error",
    });
}

/// The answer to a completed sign-in: the access token, the token cookies
/// and, the first time this browser signs in to the account, its device cookie.
pub(super) fn signed_in<G: super::guard::Guard>(
    call: &Call<G>,
    client: &ClientInfo,
    outcome: &LoginOutcome,
) -> Response {
    let mut response = json(&LoginResponse {
        response: MainResponse::new("success login", 200),
        token: outcome.tokens.access.clone(),
        id: outcome.user.id.as_uuid(),
    });
    call.state.set_token_cookies(&mut response, &call.ctx, &outcome.tokens);
    if let Some(device) = &outcome.device_cookie {
        for name in client.device_cookies.surplus(&device.name) {
            call.state.cookies.set(&mut response, &call.ctx, name, "", 0);
        }
        call.state.cookies.set(&mut response, &call.ctx, &device.name, &device.value, device.max_age.as_secs());
    }
    response
}

/// Log out: revoke the session and clear the cookies.
#[utoipa::path(post, path = "/user/logout", responses(
    (status = 200, description = "Logged out", body = MainResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
))]
pub(super) async fn logout(call: Call<SessionToEnd>) -> Result<Response, ApiError> {
    let SessionToEnd { user, session } = call.caller;
    call.state.service.logout(user, session, &call.ctx.client()).await?;
    let mut response = success();
    call.state.cookies.clear(&mut response, &call.ctx);
    Ok(response)
}

/// Rotate the refresh token and issue a new access token.
#[utoipa::path(post, path = "/user/refresh", responses(
    (status = 200, description = "New tokens in cookies", body = RefreshResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
    (status = 429, description = "Throttled; see Retry-After", body = MainResponse),
))]
pub(super) async fn refresh(call: Call<RefreshCookie>) -> Result<Response, ApiError> {
    let tokens = call.state.service.refresh(call.caller.token(), &call.ctx.client()).await?;
    let mut response = json(&RefreshResponse {
        message: "success".into(),
        status: 200,
        token: tokens.access.clone(),
        session_expires_at: Some(tokens.session_expires_at),
    });
    call.state.set_token_cookies(&mut response, &call.ctx, &tokens);
    Ok(response)
}

/// Prove a credential again (v1.2 step-up), so that this session may make
/// the changes that need a recent sign-in: the password for an account
/// without a second factor, a code (authenticator app or recovery code)
/// for one with.
#[utoipa::path(post, path = "/user/reauth", request_body = ReauthRequest, responses(
    (status = 200, description = "This session counts as recently authenticated until `reauth_until`; a browser's token cookies are rotated", body = ReauthResponse),
    (status = 400, description = "Not exactly one of `password` and `code`, or a token cookie sent more than once", body = MainResponse),
    (status = 401, description = "Unauthorized; a wrong password; `code: invalid_code`: a wrong or used code; or `code: mfa_required`: this account steps up with its second factor, not the password", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled per client, or this account after repeated failures; see Retry-After", body = MainResponse),
))]
pub(super) async fn reauth(mut call: Call<SteppingUp>) -> Result<Response, ApiError> {
    let req: ReauthRequest = call.json()?;
    let password = req.password.as_deref().map(|p| Password::presented("password", p)).transpose()?;
    let claims = call.caller.session.claims();
    let client = call.ctx.client();
    let service = &call.state.service;
    let (user, session) = (claims.sub, claims.sid);
    let until = match (&password, &req.code, &req.ceremony, &req.credential) {
        (Some(password), None, None, None) => {
            service.reauthenticate(user, session, StepUp::Password(password), &client).await?
        }
        (None, Some(code), None, None) => service.reauthenticate(user, session, StepUp::Code(code), &client).await?,
        (None, None, Some(ceremony), Some(credential)) => {
            service.reauthenticate_with_passkey(user, session, ceremony, credential, &client).await?
        }
        _ => {
            let rule = "give exactly one of password, code, or ceremony with credential";
            return Err(ValidationError::new("body", rule).into());
        }
    };
    let mut response = json(&ReauthResponse { message: "success".into(), status: 200, reauth_until: until });
    // A browser's session changed what it may do: new cookies, so a copy
    // of the old ones taken before the step-up is worth less.
    if let Some(refresh) = &call.caller.refresh_cookie {
        let same_session = call.state.service.authenticate_refresh(refresh).await.is_ok_and(|r| r.sid == claims.sid);
        if same_session {
            let tokens = call.state.service.refresh(refresh, &client).await?;
            call.state.set_token_cookies(&mut response, &call.ctx, &tokens);
        }
    }
    Ok(response)
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/user/sessions", responses(
    (status = 200, description = "Live sessions, newest first; `current` marks the caller's", body = SessionListResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
))]
pub(super) async fn list_sessions(call: Call<Listener>) -> Result<Response, ApiError> {
    let current = call.caller.claims().sid;
    let sessions = call.state.service.sessions(call.caller.id()).await?;
    Ok(json(&SessionListResponse {
        response: MainResponse::success(),
        sessions: sessions.into_iter().map(|s| SessionInfo::of(s, current, call.state.service.tokens())).collect(),
    }))
}

/// Sign one of the caller's sessions out (a lost phone, a sold TV).
#[utoipa::path(delete, path = "/user/sessions/{id}", params(
    ("id" = String, Path, description = "A session id from `GET /user/sessions`", format = Uuid),
), responses(
    (status = 200, description = "Ended", body = MainResponse),
    (status = 400, description = "Not a session id, or a token cookie sent more than once", body = MainResponse),
    (status = 404, description = "Not a live session of the caller", body = MainResponse),
))]
pub(super) async fn revoke_session(call: Call<Listener>) -> Result<Response, ApiError> {
    let id: SessionId = call.path_param.as_deref().unwrap_or_default().parse()?;
    call.state.service.revoke_own_session(call.caller.id(), id, &call.ctx.client()).await?;
    Ok(success())
}

/// Sign every session but the caller's out.
#[utoipa::path(post, path = "/user/sessions/revoke-others", responses(
    (status = 200, description = "The others ended; how many", body = RevokedResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
))]
pub(super) async fn revoke_other_sessions(call: Call<Listener>) -> Result<Response, ApiError> {
    let claims = call.caller.claims();
    let revoked = call.state.service.revoke_other_sessions(claims.sub, claims.sid, &call.ctx.client()).await?;
    Ok(json(&RevokedResponse { message: "success".into(), status: 200, revoked }))
}

impl AppState {
    pub(super) fn set_token_cookies(&self, response: &mut Response, ctx: &RequestCtx, tokens: &IssuedTokens) {
        let ttl = self.service.tokens().config();
        self.cookies.set(response, ctx, "access_token", &tokens.access, ttl.access_ttl.as_secs());
        // The refresh token may end sooner than its lifetime (at the
        // session's absolute end); its cookie goes with it.
        let issued_at = tokens.access_expires_at - ttl.access_ttl;
        let refresh_secs = (tokens.refresh_expires_at - issued_at).num_seconds().max(0);
        self.cookies.set(response, ctx, "refresh_token", &tokens.refresh, refresh_secs.unsigned_abs());
    }
}
