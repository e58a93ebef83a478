//! Operations: liveness, readiness, metrics, public keys (the OpenAPI
//! document is served by the route table that makes it).

use user_core::api::MainResponse;
use warp::Reply;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use super::call::Call;
use super::guard::Open;
use crate::error::ApiError;
use crate::http::json;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = MainResponse)))]
pub(super) async fn healthz(_: Call<Open>) -> Result<Response, ApiError> {
    Ok(json(&MainResponse::new("alive", 200)))
}

/// The database is reachable.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Ready", body = MainResponse),
    (status = 503, description = "Database unreachable", body = MainResponse),
))]
pub(super) async fn readyz(call: Call<Open>) -> Result<Response, ApiError> {
    match call.state.service.ping().await {
        Ok(()) => Ok(json(&MainResponse::new("ready", 200))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::Unavailable("database unreachable".into()))
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(super) async fn metrics(_: Call<Open>) -> Result<Response, ApiError> {
    Ok(render_metrics())
}

/// The Prometheus text, on this listener or the metrics listener of its own.
pub(super) fn render_metrics() -> Response {
    let mut response = crate::telemetry::metrics().render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Public keys (EdDSA only).
#[utoipa::path(get, path = "/.well-known/jwks.json", responses(
    (status = 200, description = "JWKS", body = serde_json::Value),
    (status = 404, description = "Tokens are signed with HS256: no public keys", body = MainResponse),
))]
pub(super) async fn jwks(call: Call<Open>) -> Result<Response, ApiError> {
    match call.state.service.tokens().keys().jwks() {
        Some(jwks) => Ok(json(&jwks)),
        None => Err(ApiError::NotFound("no public keys: tokens are signed with HS256".into())),
    }
}
