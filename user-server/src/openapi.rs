//! The OpenAPI 3 document served at `/openapi.json`. Schemas are derived from
//! the wire types in `user_core::api` (the same types the handlers render),
//! and the operations come from the route table (`routes::table`), each
//! documented on its handler: the document cannot drift from the code.

use user_core::api::{
    AccountPatch, AccountResponse, AdminAccountResponse, AuditEventInfo, AuditListResponse, ContainsResponse,
    CreateAccountRequest, CurrentPasswordRequest, DeviceApproveRequest, DeviceCodeRequest, DeviceCodeResponse,
    FavoriteListResponse, FavoriteTrack, ForgotPasswordRequest, IdentitiesResponse, IdentityInfo, LoginAnswer,
    LoginMfaRequest, LoginRequest, LoginResponse, MainResponse, MfaRequiredResponse, OAuthErrorResponse,
    OAuthTokenRequest, OAuthTokenResponse, PasskeyCreatedResponse, PasskeyInfo, PasskeyLoginRequest,
    PasskeyLoginStartRequest, PasskeyOptionsResponse, PasskeyRegisterRequest, PasskeyRenameRequest,
    ProviderTokenRequest, ReauthRequest, ReauthResponse, RecoveryCodesResponse, RefreshResponse, RegisterRequest,
    ResetPasswordRequest, RevokedResponse, SecurityResponse, SessionInfo, SessionListResponse, TaskInfo,
    TaskListResponse, TaskState, TokenRequest, TotpConfirmRequest, TotpEnrollResponse, UpdateRequest, UserListResponse,
    UserResponse, UserSummary,
};
use user_core::domain::{Locale, Role};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document: these schemas and security schemes, and the operations
/// given as (path template, method, operation).
pub(crate) fn document<'a>(
    operations: impl Iterator<Item = (&'a str, &'a HttpMethod, &'a Operation)>,
) -> serde_json::Value {
    let mut api = ApiDoc::openapi();
    for (path, method, operation) in operations {
        api.paths.add_path_operation(path, vec![method.clone()], operation.clone());
    }
    let mut doc = serde_json::to_value(api).expect("an OpenAPI document serializes");
    non_empty_subset(&mut doc, "UpdateRequest", &["username", "email", "password"]);
    non_empty_subset(&mut doc, "AccountPatch", &["role", "disabled", "email_verified"]);
    optional_not_null(&mut doc, "CurrentPasswordRequest");
    exactly_one(&mut doc, "ReauthRequest", &[&["password"], &["code"], &["ceremony", "credential"]]);
    exactly_one(&mut doc, "LoginMfaRequest", &[&["mfa_token", "code"], &["ceremony", "credential"]]);
    optional_not_null(&mut doc, "PasskeyRegisterRequest");
    optional_not_null(&mut doc, "PasskeyLoginStartRequest");
    optional_bodies(&mut doc);
    doc
}

/// A body written `Option<T>` on a handler may be left out: utoipa says so
/// by a `null` alternative in its schema; JSON Schema and OpenAPI say it by
/// `required: false` on the body, which is what clients read.
fn optional_bodies(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for body in paths.values_mut().filter_map(|p| p.as_object_mut()).flat_map(|p| p.values_mut()) {
        let Some(body) = body.get_mut("requestBody").and_then(|b| b.as_object_mut()) else { continue };
        if body.get("required").and_then(|r| r.as_bool()) == Some(true) {
            continue;
        }
        body.insert("required".into(), false.into());
        let contents = body.get_mut("content").and_then(|c| c.as_object_mut());
        for content in contents.into_iter().flat_map(|c| c.values_mut()) {
            let Some(schema) = content.get_mut("schema") else { continue };
            let not_null = schema.get("oneOf").and_then(|o| o.as_array()).and_then(|alternatives| {
                alternatives.iter().find(|a| a.get("type").is_none_or(|t| t != "null")).cloned()
            });
            if let Some(alternative) = not_null {
                *schema = alternative;
            }
        }
    }
}

/// "Any non-empty subset of these fields": utoipa's derive cannot say it,
/// JSON Schema can. Optional there means "may be absent", not "may be null".
fn non_empty_subset(doc: &mut serde_json::Value, schema: &str, fields: &[&str]) {
    optional_not_null(doc, schema);
    let Some(object) = doc.pointer_mut(&format!("/components/schemas/{schema}")).and_then(|s| s.as_object_mut()) else {
        panic!("no schema {schema}");
    };
    let any_of: Vec<_> = fields.iter().map(|f| serde_json::json!({"required": [f]})).collect();
    object.insert("anyOf".into(), any_of.into());
}

/// "Exactly one of these groups of fields" (each may be absent, never `null`).
fn exactly_one(doc: &mut serde_json::Value, schema: &str, groups: &[&[&str]]) {
    optional_not_null(doc, schema);
    let Some(object) = doc.pointer_mut(&format!("/components/schemas/{schema}")).and_then(|s| s.as_object_mut()) else {
        panic!("no schema {schema}");
    };
    let one_of: Vec<_> = groups.iter().map(|g| serde_json::json!({"required": g})).collect();
    object.insert("oneOf".into(), one_of.into());
}

/// The optional fields of `schema` may be absent, never `null` (they are
/// read with `present`: an explicit null is a type error, 400).
fn optional_not_null(doc: &mut serde_json::Value, schema: &str) {
    let Some(object) = doc.pointer_mut(&format!("/components/schemas/{schema}")).and_then(|s| s.as_object_mut()) else {
        panic!("no schema {schema}");
    };
    if let Some(props) = object.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for prop in props.values_mut() {
            if let Some(types) = prop.get_mut("type").and_then(|t| t.as_array_mut()) {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    prop["type"] = only.clone();
                }
            }
            let not_null = prop.get("oneOf").and_then(|o| o.as_array()).and_then(|alternatives| {
                alternatives.iter().find(|a| a.get("type").is_none_or(|t| t != "null")).cloned()
            });
            if let Some(alternative) = not_null {
                *prop = alternative;
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "user-service", description = "Users, sessions and favorite tracks of a music-streaming backend."),
    components(schemas(
        MainResponse, RegisterRequest, AccountResponse, LoginRequest, LoginResponse, RefreshResponse, UserResponse,
        UpdateRequest, UserSummary, UserListResponse, FavoriteTrack, FavoriteListResponse, ContainsResponse, Role,
        SessionInfo, SessionListResponse, RevokedResponse, CreateAccountRequest, AccountPatch, AdminAccountResponse,
        TaskState, TaskInfo, TaskListResponse, AuditEventInfo, AuditListResponse, Locale, TokenRequest,
        ForgotPasswordRequest, ResetPasswordRequest, DeviceCodeRequest, DeviceCodeResponse, OAuthTokenRequest,
        OAuthTokenResponse, OAuthErrorResponse, DeviceApproveRequest, CurrentPasswordRequest, LoginAnswer,
        MfaRequiredResponse, LoginMfaRequest, SecurityResponse, PasskeyInfo, IdentityInfo, TotpEnrollResponse,
        TotpConfirmRequest, RecoveryCodesResponse, ReauthRequest, ReauthResponse, PasskeyOptionsResponse,
        PasskeyRegisterRequest, PasskeyCreatedResponse, PasskeyRenameRequest, PasskeyLoginStartRequest,
        PasskeyLoginRequest, IdentitiesResponse, ProviderTokenRequest
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
