//! The OpenAPI 3 document served at `/openapi.json`. Schemas are derived from
//! the wire types in `user_core::api` (the same types the handlers render), so
//! the document cannot drift from the code; each operation below names its
//! route, parameters and every documented status.
#![allow(dead_code)] // the functions only carry `#[utoipa::path]` descriptions

use std::sync::OnceLock;

use user_core::api::{
    AccountResponse, ContainsResponse, FavoriteListResponse, FavoriteTrack, LoginRequest, LoginResponse, MainResponse,
    RefreshResponse, RegisterRequest, UpdateRequest, UserListResponse, UserResponse, UserSummary,
};
use user_core::domain::Role;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document, built once.
pub fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        // "Any non-empty subset of username, email, password": utoipa's derive
        // cannot say it, JSON Schema can.
        if let Some(update) = doc.pointer_mut("/components/schemas/UpdateRequest").and_then(|s| s.as_object_mut()) {
            // Optional means "may be absent", not "may be null".
            if let Some(props) = update.get_mut("properties").and_then(|p| p.as_object_mut()) {
                for prop in props.values_mut() {
                    prop["type"] = serde_json::json!("string");
                }
            }
            update.insert(
                "anyOf".into(),
                serde_json::json!([{"required": ["username"]}, {"required": ["email"]}, {"required": ["password"]}]),
            );
        }
        doc
    })
}

#[derive(OpenApi)]
#[openapi(
    info(title = "user-service", description = "Users, sessions and favorite tracks of a music-streaming backend."),
    paths(
        register, login, logout, refresh, get_user, update, delete, all_users,
        add_favorite, remove_favorite, add_favorite_by_path, remove_favorite_by_path, list_favorites,
        contains_favorites, healthz, readyz, metrics, jwks
    ),
    components(schemas(
        MainResponse, RegisterRequest, AccountResponse, LoginRequest, LoginResponse, RefreshResponse, UserResponse,
        UpdateRequest, UserSummary, UserListResponse, FavoriteTrack, FavoriteListResponse, ContainsResponse, Role
    )),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "access_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("access_token"))),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("refresh_token"))),
        );
    }
}

/// Register a user.
#[utoipa::path(post, path = "/user/register", request_body = RegisterRequest, responses(
    (status = 200, description = "Registered", body = AccountResponse),
    (status = 400, description = "Invalid body or field", body = MainResponse),
    (status = 409, description = "Username or email taken", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled; see Retry-After", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
fn register() {}

/// Log in by username or email; sets the token cookies.
#[utoipa::path(post, path = "/user/login", request_body = LoginRequest, responses(
    (status = 200, description = "Logged in; `access_token` and `refresh_token` cookies set", body = LoginResponse),
    (status = 400, description = "Invalid body", body = MainResponse),
    (status = 401, description = "Wrong password", body = MainResponse),
    (status = 403, description = "Account disabled", body = MainResponse),
    (status = 404, description = "User not found", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled (per client, or this account after repeated failures); see Retry-After", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
fn login() {}

/// Log out: revoke the session and clear the cookies.
#[utoipa::path(post, path = "/user/logout", security(("bearer" = []), ("access_cookie" = []), ("refresh_cookie" = [])), responses(
    (status = 200, description = "Logged out", body = MainResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn logout() {}

/// Rotate the refresh token and issue a new access token.
#[utoipa::path(post, path = "/user/refresh", security(("refresh_cookie" = [])), responses(
    (status = 200, description = "New tokens in cookies", body = RefreshResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
    (status = 403, description = "Cross-site request refused", body = MainResponse),
    (status = 429, description = "Throttled; see Retry-After", body = MainResponse),
))]
fn refresh() {}

/// The caller's account.
#[utoipa::path(get, path = "/user/get", security(("bearer" = []), ("access_cookie" = [])), responses(
    (status = 200, description = "The account", body = UserResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
    (status = 404, description = "The user no longer exists", body = MainResponse),
))]
fn get_user() {}

/// Change any non-empty subset of username, email, password.
#[utoipa::path(put, path = "/user/update", request_body = UpdateRequest, security(("bearer" = []), ("access_cookie" = [])), responses(
    (status = 200, description = "Updated", body = AccountResponse),
    (status = 400, description = "Invalid body or field", body = MainResponse),
    (status = 401, description = "Unauthorized or wrong current password", body = MainResponse),
    (status = 409, description = "Username or email taken", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 429, description = "Throttled (per client, or this account after repeated wrong current passwords); see Retry-After", body = MainResponse),
))]
fn update() {}

/// Delete the caller's account, sessions and favorites.
#[utoipa::path(delete, path = "/user/delete", security(("bearer" = []), ("access_cookie" = [])), responses(
    (status = 200, description = "Deleted; cookies cleared", body = MainResponse),
    (status = 400, description = "A token cookie sent more than once", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn delete() {}

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
fn all_users() {}

/// Add favorites: `track_id` is one id or up to 50 comma-separated.
#[utoipa::path(post, path = "/user/track/favorite", security(("bearer" = []), ("access_cookie" = [])), params(
    ("track_id" = String, Query, description = "1–50 comma-separated ids of 1–64 chars of A-Z a-z 0-9 _ : . -", pattern = "^[A-Za-z0-9_:.-]{1,64}(,[A-Za-z0-9_:.-]{1,64}){0,49}$"),
), responses(
    (status = 200, description = "Added (idempotent)", body = MainResponse),
    (status = 400, description = "Missing or invalid track_id", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn add_favorite() {}

/// Remove favorites: `track_id` is one id or up to 50 comma-separated.
#[utoipa::path(delete, path = "/user/track/favorite", security(("bearer" = []), ("access_cookie" = [])), params(
    ("track_id" = String, Query, description = "1–50 comma-separated ids", pattern = "^[A-Za-z0-9_:.-]{1,64}(,[A-Za-z0-9_:.-]{1,64}){0,49}$"),
), responses(
    (status = 200, description = "Removed (idempotent)", body = MainResponse),
    (status = 400, description = "Missing or invalid track_id", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn remove_favorite() {}

/// Add one favorite named in the path.
#[utoipa::path(post, path = "/user/track/favorite/{track_id}", security(("bearer" = []), ("access_cookie" = [])), params(
    ("track_id" = String, Path, description = "1–64 chars of A-Z a-z 0-9 _ : . - (not `contains`, which names the lookup route)", pattern = "^(?!contains$)[A-Za-z0-9_:.-]{1,64}$"),
), responses(
    (status = 200, description = "Added (idempotent)", body = MainResponse),
    (status = 400, description = "Invalid track_id, or also given in the query", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn add_favorite_by_path() {}

/// Remove one favorite named in the path.
#[utoipa::path(delete, path = "/user/track/favorite/{track_id}", security(("bearer" = []), ("access_cookie" = [])), params(
    ("track_id" = String, Path, description = "1–64 chars of A-Z a-z 0-9 _ : . - (not `contains`, which names the lookup route)", pattern = "^(?!contains$)[A-Za-z0-9_:.-]{1,64}$"),
), responses(
    (status = 200, description = "Removed (idempotent)", body = MainResponse),
    (status = 400, description = "Invalid track_id, or also given in the query", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn remove_favorite_by_path() {}

/// The caller's favorites, newest first.
#[utoipa::path(get, path = "/user/track/favorite", security(("bearer" = []), ("access_cookie" = [])), params(
    ("limit" = Option<u32>, Query, description = "1–100, default 50", minimum = 1, maximum = 100),
    ("cursor" = Option<String>, Query, description = "Opaque, from the previous page's next_cursor; any other value is 400", pattern = "^[A-Za-z0-9_-]+$"),
), responses(
    (status = 200, description = "One page", body = FavoriteListResponse),
    (status = 400, description = "Bad limit or cursor", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn list_favorites() {}

/// Whether each of up to 50 tracks is a favorite, in request order.
#[utoipa::path(get, path = "/user/track/favorite/contains", security(("bearer" = []), ("access_cookie" = [])), params(
    ("track_id" = String, Query, description = "1–50 comma-separated ids", pattern = "^[A-Za-z0-9_:.-]{1,64}(,[A-Za-z0-9_:.-]{1,64}){0,49}$"),
), responses(
    (status = 200, description = "Flags in request order", body = ContainsResponse),
    (status = 400, description = "Missing or invalid track_id", body = MainResponse),
    (status = 401, description = "Unauthorized", body = MainResponse),
))]
fn contains_favorites() {}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = MainResponse)))]
fn healthz() {}

/// The database is reachable.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Ready", body = MainResponse),
    (status = 503, description = "Database unreachable", body = MainResponse),
))]
fn readyz() {}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
fn metrics() {}

/// Public keys (EdDSA only).
#[utoipa::path(get, path = "/.well-known/jwks.json", responses(
    (status = 200, description = "JWKS", body = serde_json::Value),
    (status = 404, description = "Tokens are signed with HS256: no public keys", body = MainResponse),
))]
fn jwks() {}
