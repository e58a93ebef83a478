//! Operator routes (admin role).

use user_core::api::{MainResponse, UserListResponse, UserSummary};
use user_core::page::PageRequest;
use warp::reply::Response;

use super::Call;
use super::guard::Admin;
use crate::error::ApiError;
use crate::http::json;

/// Every account, oldest first (admin only).
#[utoipa::path(get, path = "/user/all", security(("bearer" = []), ("access_cookie" = [])), params(
    ("limit" = Option<u32>, Query, description = "1–100, default 50", minimum = 1, maximum = 100),
    ("cursor" = Option<String>, Query, description = "Opaque, from the previous page's next_cursor; any other value is 400", pattern = "^[A-Za-z0-9_-]+$"),
), responses(
    (status = 200, description = "One page", body = UserListResponse),
    (status = 400, description = "Bad limit or cursor", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
    (status = 403, description = "Not an admin", body = MainResponse),
))]
pub(super) async fn all_users(call: Call<Admin>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(call.query.single("limit")?, call.query.single("cursor")?)?;
    let users = call.state.service.list_users(&page).await?;
    Ok(json(&UserListResponse {
        response: MainResponse::success(),
        users: users.items.iter().map(UserSummary::from).collect(),
        next_cursor: users.next_cursor,
    }))
}
