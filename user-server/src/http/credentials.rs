//! The tokens a request carries, and the cookies that carry them.

use user_core::UnauthorizedReason;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use super::RequestCtx;
use crate::error::ApiError;

/// The tokens a request carries.
#[derive(Clone, Default)]
pub struct Credentials {
    /// From `Authorization: Bearer`, else the `access_token` cookie.
    access: Option<String>,
    /// Whether `access` came from the header (so no cookie can have been forged).
    pub access_from_header: bool,
    /// From the `refresh_token` cookie.
    refresh: Option<String>,
    /// A token cookie the request carries more than once.
    duplicate: Option<&'static str>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access", &self.access.as_ref().map(|_| "[redacted]"))
            .field("access_from_header", &self.access_from_header)
            .field("refresh", &self.refresh.as_ref().map(|_| "[redacted]"))
            .field("duplicate", &self.duplicate)
            .finish()
    }
}

impl Credentials {
    /// The tokens in `headers`: `Authorization: Bearer`, else the
    /// `access_token` cookie; the `refresh_token` cookie.
    pub fn from_headers(headers: &warp::http::HeaderMap) -> Self {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let (mut access_cookie, mut refresh, mut duplicate) = (None, None, None);
        let pairs = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';'));
        for (name, value) in pairs.filter_map(|pair| pair.trim().split_once('=')) {
            let (slot, name) = match name.trim() {
                "access_token" => (&mut access_cookie, "access_token"),
                "refresh_token" => (&mut refresh, "refresh_token"),
                _ => continue,
            };
            if slot.replace(value.to_owned()).is_some() {
                duplicate = Some(name);
            }
        }
        Credentials { access_from_header: bearer.is_some(), access: bearer.or(access_cookie), refresh, duplicate }
    }

    /// Refuses a request carrying a token cookie twice: a sibling subdomain
    /// or a man-in-the-middle on plain http can plant a second cookie of the
    /// same name ("cookie tossing"), and which one a server reads first is
    /// the attacker's choice.
    ///
    /// # Errors
    /// 400 naming the cookie.
    pub fn check(&self) -> Result<(), ApiError> {
        match self.duplicate {
            Some(name) => Err(ApiError::BadRequest(format!("the {name} cookie is sent more than once"))),
            None => Ok(()),
        }
    }

    /// The access token, if any (after [`Credentials::check`]).
    ///
    /// # Errors
    /// 400 for a duplicated token cookie.
    pub fn access_opt(&self) -> Result<Option<&str>, ApiError> {
        self.check()?;
        Ok(self.access.as_deref())
    }

    /// The refresh token, if any (after [`Credentials::check`]).
    ///
    /// # Errors
    /// 400 for a duplicated token cookie.
    pub fn refresh_opt(&self) -> Result<Option<&str>, ApiError> {
        self.check()?;
        Ok(self.refresh.as_deref())
    }

    /// The access token, or 401.
    ///
    /// # Errors
    /// 400 for a duplicated token cookie; `Unauthorized(Missing)` when there is none.
    pub fn access(&self) -> Result<&str, ApiError> {
        self.access_opt()?.ok_or(ApiError::Core(user_core::Error::Unauthorized(UnauthorizedReason::Missing)))
    }

    /// The refresh token, or 401.
    ///
    /// # Errors
    /// 400 for a duplicated token cookie; `Unauthorized(Missing)` when there is none.
    pub fn refresh(&self) -> Result<&str, ApiError> {
        self.refresh_opt()?.ok_or(ApiError::Core(user_core::Error::Unauthorized(UnauthorizedReason::Missing)))
    }
}

/// Cookie policy: `HttpOnly; SameSite=Strict; Path=/`, and `Secure` either
/// always (by setting) or for each request that arrived over TLS.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Add `Secure` to every cookie; otherwise only to cookies answering a
    /// request made over TLS.
    pub secure: bool,
}

impl CookiePolicy {
    /// Appends a `Set-Cookie` for `name=value` living `max_age` seconds (0
    /// clears it), `Secure` when the policy or the request's transport says so.
    pub fn set(&self, response: &mut Response, ctx: &RequestCtx, name: &str, value: &str, max_age: u64) {
        let secure = if self.secure || ctx.https { "; Secure" } else { "" };
        let cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// Clears both token cookies.
    pub fn clear(&self, response: &mut Response, ctx: &RequestCtx) {
        self.set(response, ctx, "access_token", "", 0);
        self.set(response, ctx, "refresh_token", "", 0);
    }
}
