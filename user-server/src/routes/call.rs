//! What a handler is given: [`Call`].

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;
use crate::http::{Body, Query, RequestCtx, parse_form, parse_json};

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
    /// The JSON body, parsed into `T`.
    ///
    /// # Errors
    /// 400/413/415 for a body the contract refuses; 500 if the route's
    /// operation declares no request body (so none was read).
    pub(super) fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        parse_json(&self.body()?.bytes)
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

    fn body(&mut self) -> Result<Body, ApiError> {
        self.body.take().unwrap_or_else(|| {
            Err(user_core::Error::internal("this route reads a body its operation does not declare").into())
        })
    }
}
