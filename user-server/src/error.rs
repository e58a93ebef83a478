//! Every failure becomes `{"message", "status"}` here, by way of [`ApiError`]
//! or [`error_response`] (the router's 404 and 405). The one place that maps
//! errors to HTTP statuses (by way of `user_core::Error::http_status`).

use user_core::api::MainResponse;
use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// A request that failed; renders as the contract's error body.
#[derive(Debug)]
pub enum ApiError {
    /// An outcome decided by the library.
    Core(user_core::Error),
    /// The request itself is malformed (400) — bad JSON, a bad query.
    BadRequest(String),
    /// The body exceeds the limit (413).
    PayloadTooLarge,
    /// The body is not JSON (415).
    UnsupportedMediaType,
    /// Nothing here (404), e.g. JWKS under HS256.
    NotFound(String),
    /// Refused for a reason of the transport, e.g. a cross-site request (403).
    Forbidden(String),
    /// A dependency is down (503), e.g. the database for `/readyz`.
    Unavailable(String),
    /// A handler panicked (500).
    Panic,
    /// An error of an `/oauth/*` route, in RFC 6749's shape (see [`ApiError::oauth`]).
    OAuth {
        /// The RFC's code.
        error: &'static str,
        /// For people.
        description: String,
        status: StatusCode,
        /// The wait, for `Retry-After`.
        retry_after: Option<std::time::Duration>,
    },
}

impl From<user_core::Error> for ApiError {
    fn from(e: user_core::Error) -> Self {
        ApiError::Core(e)
    }
}

impl From<user_core::domain::ValidationError> for ApiError {
    fn from(e: user_core::domain::ValidationError) -> Self {
        ApiError::Core(e.into())
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Core(e) => StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Panic => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::OAuth { status, .. } => *status,
        }
    }

    /// The same failure as an `/oauth/*` route answers it: RFC 6749 §5.2's
    /// codes, 400 for whatever the client got wrong (401 for an unknown
    /// client), `invalid_grant` for a refresh token the service refused.
    pub fn oauth(self) -> ApiError {
        use user_core::{Error, GrantError};
        let invalid_request = |description| ApiError::OAuth {
            error: GrantError::InvalidRequest.code(),
            description,
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
        };
        let unavailable = |status, retry_after| ApiError::OAuth {
            error: "temporarily_unavailable",
            description: "too many requests; retry later".into(),
            status,
            retry_after: Some(retry_after),
        };
        match self {
            ApiError::Core(Error::Grant(grant)) => ApiError::OAuth {
                error: grant.code(),
                description: grant.description().into(),
                status: StatusCode::from_u16(Error::Grant(grant).http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                retry_after: None,
            },
            ApiError::Core(Error::Unauthorized(reason)) => {
                tracing::info!(%reason, "refresh grant refused");
                let grant = GrantError::InvalidGrant;
                ApiError::OAuth {
                    error: grant.code(),
                    description: grant.description().into(),
                    status: StatusCode::BAD_REQUEST,
                    retry_after: None,
                }
            }
            ApiError::Core(Error::Throttled { retry_after }) => unavailable(StatusCode::TOO_MANY_REQUESTS, retry_after),
            ApiError::Core(Error::Overloaded) => {
                unavailable(StatusCode::SERVICE_UNAVAILABLE, std::time::Duration::from_secs(1))
            }
            e @ (ApiError::Core(Error::Internal(_)) | ApiError::Panic) => {
                e.log();
                ApiError::OAuth {
                    error: "server_error",
                    description: "internal server error".into(),
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    retry_after: None,
                }
            }
            e @ ApiError::OAuth { .. } => e,
            other => invalid_request(other.message()),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Core(e) => e.public_message(),
            ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::Unavailable(m) | ApiError::Forbidden(m) => {
                m.clone()
            }
            ApiError::PayloadTooLarge => "request body is larger than 64 KiB".to_owned(),
            ApiError::UnsupportedMediaType => "Content-Type must be application/json".to_owned(),
            ApiError::Panic => "internal server error".to_owned(),
            ApiError::OAuth { description, .. } => description.clone(),
        }
    }

    /// Logs what the client is not told: the cause of a 500, the reason of a 401.
    pub fn log(&self) {
        match self {
            ApiError::Core(user_core::Error::Internal(cause)) => {
                tracing::error!(error = %user_core::error_chain(cause.as_ref()), "internal error");
            }
            ApiError::Core(user_core::Error::Unauthorized(reason)) => tracing::info!(%reason, "unauthorized"),
            ApiError::Core(user_core::Error::Overloaded) => tracing::warn!("password hashing overloaded"),
            ApiError::Panic => tracing::error!("handler panicked"),
            _ => {}
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::OAuth { error, description, status, retry_after } = self {
            let body = user_core::api::OAuthErrorResponse {
                error: error.to_owned(),
                error_description: description.clone(),
                message: description,
                status: status.as_u16(),
            };
            let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
            if let Some(wait) = retry_after
                && let Ok(v) = HeaderValue::from_str(&(wait.as_secs_f64().ceil().max(1.0) as u64).to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        self.log();
        let mut response = error_response(self.status(), self.message());
        if let ApiError::Core(e) = &self
            && let Some(code) = e.code()
        {
            let body = MainResponse {
                code: Some(code.to_owned()),
                ..MainResponse::new(self.message(), self.status().as_u16())
            };
            *response.body_mut() = serde_json::to_vec(&body).unwrap_or_default().into();
        }
        if let ApiError::Core(user_core::Error::ReauthRequired { max_age }) = &self {
            // RFC 9470: the client should sign in again, no longer ago than max_age.
            let challenge =
                format!("Bearer error=\"insufficient_user_authentication\", max_age={}", max_age.num_seconds());
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let ApiError::Core(user_core::Error::Throttled { retry_after }) = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The contract's error body with `status`, plus `WWW-Authenticate` on a 401
/// and `Retry-After` on a 503.
pub fn error_response(status: StatusCode, message: String) -> Response {
    let body = MainResponse::new(message, status.as_u16());
    let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use warp::Filter;

    use super::*;

    /// Renders `error` through warp, as a client receives it.
    async fn render(
        error: impl Fn() -> user_core::Error + Clone + Send + Sync + 'static,
    ) -> warp::http::Response<bytes::Bytes> {
        warp::test::request().reply(&warp::any().map(move || ApiError::Core(error()))).await
    }

    #[tokio::test]
    async fn overloaded_hashing_is_503_with_retry_after_in_the_contract_shape() {
        let response = render(|| user_core::Error::Overloaded).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body, serde_json::json!({"message": "the service is overloaded, try again shortly", "status": 503}));
    }

    #[tokio::test]
    async fn throttling_is_429_with_retry_after_rounded_up_to_whole_seconds() {
        let response = render(|| user_core::Error::Throttled { retry_after: Duration::from_millis(2100) }).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["status"], 429);
    }
}
