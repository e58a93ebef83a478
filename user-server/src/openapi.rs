//! The OpenAPI 3 document served at `/openapi.json`. Schemas are derived from
//! the wire types in `user_core::api` (the same types the handlers render),
//! and the operations come from the route table, each documented on its
//! handler: the document cannot drift from the code.

use std::sync::OnceLock;

use user_core::api::{
    AccountResponse, ContainsResponse, FavoriteListResponse, FavoriteTrack, LoginRequest, LoginResponse, MainResponse,
    RefreshResponse, RegisterRequest, RevokedResponse, SessionInfo, SessionListResponse, UpdateRequest,
    UserListResponse, UserResponse, UserSummary,
};
use user_core::domain::Role;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document, built once.
pub fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut api = ApiDoc::openapi();
        for endpoint in crate::routes::endpoints() {
            api.paths.add_path_operation(&endpoint.path, vec![endpoint.doc_method.clone()], endpoint.operation.clone());
        }
        let mut doc = serde_json::to_value(api).expect("an OpenAPI document serializes");
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
    components(schemas(
        MainResponse, RegisterRequest, AccountResponse, LoginRequest, LoginResponse, RefreshResponse, UserResponse,
        UpdateRequest, UserSummary, UserListResponse, FavoriteTrack, FavoriteListResponse, ContainsResponse, Role,
        SessionInfo, SessionListResponse, RevokedResponse
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
