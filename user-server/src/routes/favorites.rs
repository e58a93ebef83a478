//! Favorite tracks: add and remove (query or path form), list, contains.

use user_core::api::{ContainsResponse, FavoriteListResponse, FavoriteTrack, MainResponse};
use user_core::domain::{TrackBatch, TrackId};
use warp::reply::Response;

use super::call::PageParams;
use super::guard::Listener;
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

/// The `track_id` query parameter in the OpenAPI document: a [`TrackBatch`].
struct TrackIdsParam;

impl utoipa::PartialSchema for TrackIdsParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        user_core::domain::openapi::track_batch().into()
    }
}

impl utoipa::ToSchema for TrackIdsParam {}

/// The `{track_id}` path parameter: one [`TrackId`], never the word that
/// names the lookup route beside it.
struct TrackIdInPath;

impl utoipa::PartialSchema for TrackIdInPath {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        user_core::domain::openapi::track_id(&["contains"]).into()
    }
}

impl utoipa::ToSchema for TrackIdInPath {}

/// Which tracks a favorites call is about: the query's `track_id` (a
/// comma-separated batch) or the single id in the path, never both.
fn track_ids(call: &Call<Listener>) -> Result<TrackBatch, ApiError> {
    match (&call.path_param, call.query.joined("track_id")) {
        (Some(_), Some(_)) => {
            Err(ApiError::BadRequest("track_id: give it in the path or in the query, not both".into()))
        }
        (Some(id), None) => {
            // Path segments arrive percent-encoded (`spotify%3Atrack%3A7`).
            let id = percent_encoding::percent_decode_str(id)
                .decode_utf8()
                .map_err(|_| ApiError::BadRequest("track_id: must be UTF-8".into()))?;
            Ok(TrackBatch::new([TrackId::parse(&id)?])?)
        }
        (None, Some(ids)) => Ok(TrackBatch::parse(&ids)?),
        (None, None) => Err(ApiError::BadRequest("track_id: is required (?track_id=...)".into())),
    }
}

async fn add(call: Call<Listener>) -> Result<Response, ApiError> {
    let ids = track_ids(&call)?;
    call.state.service.add_favorites_for(call.caller.user(), &ids).await?;
    Ok(success())
}

async fn remove(call: Call<Listener>) -> Result<Response, ApiError> {
    let ids = track_ids(&call)?;
    call.state.service.remove_favorites(call.caller.id(), &ids).await?;
    Ok(success())
}

/// Add favorites: `track_id` is one id or up to 50 comma-separated.
#[utoipa::path(post, path = "/user/track/favorite", params(
    ("track_id" = inline(TrackIdsParam), Query, description = "1–50 comma-separated ids of 1–64 chars of A-Z a-z 0-9 _ : . -"),
), responses(
    (status = 200, description = "Added (idempotent)", body = MainResponse),
    (status = 400, description = "Missing or invalid track_id", body = MainResponse),
))]
pub(super) async fn add_favorite(call: Call<Listener>) -> Result<Response, ApiError> {
    add(call).await
}

/// Remove favorites: `track_id` is one id or up to 50 comma-separated.
#[utoipa::path(delete, path = "/user/track/favorite", params(
    ("track_id" = inline(TrackIdsParam), Query, description = "1–50 comma-separated ids"),
), responses(
    (status = 200, description = "Removed (idempotent)", body = MainResponse),
    (status = 400, description = "Missing or invalid track_id", body = MainResponse),
))]
pub(super) async fn remove_favorite(call: Call<Listener>) -> Result<Response, ApiError> {
    remove(call).await
}

/// Add one favorite named in the path.
#[utoipa::path(post, path = "/user/track/favorite/{track_id}", params(
    ("track_id" = inline(TrackIdInPath), Path, description = "1–64 chars of A-Z a-z 0-9 _ : . - (not `contains`, which names the lookup route)"),
), responses(
    (status = 200, description = "Added (idempotent)", body = MainResponse),
    (status = 400, description = "Invalid track_id, or also given in the query", body = MainResponse),
))]
pub(super) async fn add_favorite_by_path(call: Call<Listener>) -> Result<Response, ApiError> {
    add(call).await
}

/// Remove one favorite named in the path.
#[utoipa::path(delete, path = "/user/track/favorite/{track_id}", params(
    ("track_id" = inline(TrackIdInPath), Path, description = "1–64 chars of A-Z a-z 0-9 _ : . - (not `contains`, which names the lookup route)"),
), responses(
    (status = 200, description = "Removed (idempotent)", body = MainResponse),
    (status = 400, description = "Invalid track_id, or also given in the query", body = MainResponse),
))]
pub(super) async fn remove_favorite_by_path(call: Call<Listener>) -> Result<Response, ApiError> {
    remove(call).await
}

/// The caller's favorites, newest first.
#[utoipa::path(get, path = "/user/track/favorite", params(
    PageParams,
), responses(
    (status = 200, description = "One page", body = FavoriteListResponse),
    (status = 400, description = "Bad limit or cursor", body = MainResponse),
))]
pub(super) async fn list_favorites(call: Call<Listener>) -> Result<Response, ApiError> {
    let page = call.page()?;
    let favorites = call.state.service.list_favorites(call.caller.id(), &page).await?;
    Ok(json(&FavoriteListResponse {
        response: MainResponse::success(),
        tracks: favorites
            .items
            .into_iter()
            .map(|f| FavoriteTrack { track_id: f.track_id.into(), added_at: f.added_at })
            .collect(),
        next_cursor: favorites.next_cursor,
    }))
}

/// Whether each of up to 50 tracks is a favorite, in request order.
#[utoipa::path(get, path = "/user/track/favorite/contains", params(
    ("track_id" = inline(TrackIdsParam), Query, description = "1–50 comma-separated ids"),
), responses(
    (status = 200, description = "Flags in request order", body = ContainsResponse),
    (status = 400, description = "Missing or invalid track_id", body = MainResponse),
))]
pub(super) async fn contains_favorites(call: Call<Listener>) -> Result<Response, ApiError> {
    let ids = track_ids(&call)?;
    let contains = call.state.service.contains(call.caller.id(), &ids).await?;
    Ok(json(&ContainsResponse { response: MainResponse::success(), contains }))
}
