//! What a handler is given: [`Call`].

use std::sync::Arc;

use serde::de::DeserializeOwned;
use user_core::api::CurrentPasswordRequest;
use user_core::domain::Password;
use user_core::page::PageRequest;

use crate::AppState;
use crate::error::ApiError;
use crate::http::{Body, Query, RequestCtx, parse_form, parse_json};

/// The optional body of a change of sign-in methods.
pub(crate) struct ChangeProof {
    /// Stands for a recent sign-in.
    pub current_password: Option<Password>,
    /// End every other session of the account once the change is made.
    pub revoke_other_sessions: bool,
}

/// What a handler gets: the request, the state, and what its guard established.
pub(crate) struct Call<G> {
    pub ctx: RequestCtx,
    pub state: Arc<AppState>,
    /// The caller, as the route's guard checked it.
    pub caller: G,
    /// The query string (empty unless the operation documents parameters).
    pub query: Query,
    /// The path parameter (`{…}` in the path), as sent: still percent-encoded.
    pub path_param: Option<String>,
    pub(super) body: Option<Result<Body, ApiError>>,
}

impl<G> Call<G> {
    /// This service's address as the world sees it: `USER_PUBLIC_URL`,
    /// else the request's scheme and `Host`; no trailing slash.
    pub(super) fn public_base(&self) -> String {
        match &self.state.public_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => {
                let host = self.ctx.headers.get(warp::http::header::HOST).and_then(|h| h.to_str().ok());
                let scheme = if self.ctx.https { "https" } else { "http" };
                format!("{scheme}://{}", host.unwrap_or("localhost"))
            }
        }
    }

    /// The value of the cookie `name`, if the request sent exactly one.
    pub(super) fn cookie(&self, name: &str) -> Option<String> {
        let mut found = self
            .ctx
            .headers
            .get_all(warp::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned());
        let first = found.next();
        // Two of one name (a sibling subdomain tossed one in): trust neither.
        if found.next().is_some() { None } else { first }
    }

    /// The JSON body, parsed into `T`.
    ///
    /// # Errors
    /// 400/413/415 for a body the contract refuses; 500 if the route's
    /// operation declares no request body (so none was read).
    pub(super) fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        parse_json(&self.body()?.bytes)
    }

    /// The JSON body parsed into `T`, or `None` when the route's optional
    /// body was left out.
    ///
    /// # Errors
    /// As [`Call::json`].
    pub(super) fn optional_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ApiError> {
        let body = self.body()?;
        if body.bytes.is_empty() && !body.form { Ok(None) } else { parse_json(&body.bytes).map(Some) }
    }

    /// A sensitive change's optional body (`CurrentPasswordRequest`): the
    /// `current_password` standing for a recent sign-in, and whether the
    /// other sessions end with the change.
    ///
    /// # Errors
    /// 400 for a malformed body or an empty or overlong password.
    pub(super) fn change_proof(&mut self) -> Result<ChangeProof, ApiError> {
        let req: CurrentPasswordRequest = self.optional_json()?.unwrap_or_default();
        let current_password =
            req.current_password.as_deref().map(|p| Password::presented("current_password", p)).transpose()?;
        Ok(ChangeProof { current_password, revoke_other_sessions: req.revoke_other_sessions.unwrap_or(false) })
    }

    /// The body as `T`, from a form or JSON, whichever was sent (only routes
    /// whose operation lists a form body are given forms).
    ///
    /// # Errors
    /// As [`Call::json`].
    pub(super) fn form_or_json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let body = self.body()?;
        if body.form { parse_form(&body.bytes) } else { parse_json(&body.bytes) }
    }

    /// The page a listing asks for: `limit` and `cursor` (see [`PageParams`]).
    ///
    /// # Errors
    /// 400 for a limit out of range, a cursor given twice or malformed.
    pub(super) fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(self.query.single("limit")?, self.query.single("cursor")?)?)
    }

    fn body(&mut self) -> Result<Body, ApiError> {
        self.body.take().unwrap_or_else(|| {
            Err(user_core::Error::internal("this route reads a body its operation does not declare").into())
        })
    }
}

/// The query parameters of every listing, as the OpenAPI document shows
/// them (`params(…, PageParams)`); [`Call::page`] reads them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its documentation is used.
pub(super) struct PageParams {
    /// 1–100, default 50
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Opaque, from the previous page's next_cursor; any other value is 400
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

impl<G: super::guard::Guard> Call<G> {
    /// Ends every session of `user` but `keep`, when `asked`: the
    /// `"revoke_other_sessions": true` of a change of sign-in methods.
    ///
    /// # Errors
    /// 500 if the store fails.
    pub(super) async fn revoke_others_if(
        &self,
        asked: bool,
        user: user_core::domain::UserId,
        keep: user_core::domain::SessionId,
    ) -> Result<(), ApiError> {
        if asked {
            self.state.service.revoke_other_sessions(user, keep, &self.ctx.client()).await?;
        }
        Ok(())
    }
}
