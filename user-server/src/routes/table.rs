//! Every route of the service, declared once: from an entry come its
//! handler's mounting, its label in logs and metrics, the methods a 405
//! lists, and its operation in the OpenAPI document (built here too, with
//! the route that serves it).

use std::sync::OnceLock;

use warp::reply::Response;

use super::call::Call;
use super::endpoint::Endpoint;
use super::guard::Open;
use super::pattern::Pattern;
use crate::error::ApiError;
use crate::http::json;
use crate::security::Action;

/// Every route of the service, in one place. Adding a route: write its
/// handler (with its `#[utoipa::path]` documentation) in the module of its
/// resource and add one line here.
fn table() -> Vec<Endpoint> {
    use super::{
        account::*, admin::*, device::*, factors::*, favorites::*, guests::*, ops::*, pages::*, passkeys::*,
        providers::*, recovery::*, session::*,
    };
    vec![
        Endpoint::of::<__path_register, _, _, _>(register).throttled(Action::Register),
        Endpoint::of::<__path_login, _, _, _>(login).throttled(Action::Login),
        Endpoint::of::<__path_create_guest, _, _, _>(create_guest).throttled(Action::Guest),
        Endpoint::of::<__path_upgrade_guest, _, _, _>(upgrade_guest).throttled(Action::Register),
        Endpoint::of::<__path_login_mfa, _, _, _>(login_mfa).throttled(Action::Login),
        Endpoint::of::<__path_security, _, _, _>(security),
        Endpoint::of::<__path_totp_enroll, _, _, _>(totp_enroll).throttled(Action::Update),
        Endpoint::of::<__path_totp_confirm, _, _, _>(totp_confirm).throttled(Action::Update),
        Endpoint::of::<__path_totp_disable, _, _, _>(totp_disable).throttled(Action::Update),
        Endpoint::of::<__path_new_recovery_codes, _, _, _>(new_recovery_codes).throttled(Action::Update),
        Endpoint::of::<__path_passkey_register_start, _, _, _>(passkey_register_start).throttled(Action::Update),
        Endpoint::of::<__path_passkey_register_finish, _, _, _>(passkey_register_finish).throttled(Action::Update),
        Endpoint::of::<__path_passkey_rename, _, _, _>(passkey_rename).throttled(Action::Update),
        Endpoint::of::<__path_passkey_remove, _, _, _>(passkey_remove).throttled(Action::Update),
        Endpoint::of::<__path_passkey_login_start, _, _, _>(passkey_login_start).throttled(Action::Login),
        Endpoint::of::<__path_passkey_login_finish, _, _, _>(passkey_login_finish).throttled(Action::Login),
        Endpoint::of::<__path_provider_start, _, _, _>(provider_start).throttled(Action::Login),
        Endpoint::of::<__path_provider_callback, _, _, _>(provider_callback).throttled(Action::Login),
        Endpoint::of::<__path_provider_callback_post, _, _, _>(provider_callback_post).throttled(Action::Login),
        Endpoint::of::<__path_provider_token, _, _, _>(provider_token).throttled(Action::Login),
        Endpoint::of::<__path_link_identity, _, _, _>(link_identity).throttled(Action::Update),
        Endpoint::of::<__path_unlink_identity, _, _, _>(unlink_identity).throttled(Action::Update),
        Endpoint::of::<__path_logout, _, _, _>(logout),
        Endpoint::of::<__path_refresh, _, _, _>(refresh).throttled(Action::Refresh),
        Endpoint::of::<__path_reauth, _, _, _>(reauth).throttled(Action::Login),
        Endpoint::of::<__path_list_sessions, _, _, _>(list_sessions),
        Endpoint::of::<__path_revoke_session, _, _, _>(revoke_session),
        Endpoint::of::<__path_revoke_other_sessions, _, _, _>(revoke_other_sessions),
        Endpoint::of::<__path_device_code, _, _, _>(device_code).throttled(Action::Login),
        Endpoint::of::<__path_token, _, _, _>(token),
        Endpoint::of::<__path_approve_device, _, _, _>(approve_device),
        Endpoint::of::<__path_device_page, _, _, _>(device_page),
        Endpoint::of::<__path_get_user, _, _, _>(get_user),
        Endpoint::of::<__path_update, _, _, _>(update).throttled(Action::Update),
        Endpoint::of::<__path_delete, _, _, _>(delete),
        Endpoint::of::<__path_request_verification, _, _, _>(request_verification),
        Endpoint::of::<__path_verify_email, _, _, _>(verify_email),
        Endpoint::of::<__path_revert_email, _, _, _>(revert_email),
        Endpoint::of::<__path_forgot_password, _, _, _>(forgot_password).throttled(Action::Forgot),
        Endpoint::of::<__path_reset_password, _, _, _>(reset_password).throttled(Action::Forgot),
        Endpoint::of::<__path_verify_page, _, _, _>(verify_page),
        Endpoint::of::<__path_reset_page, _, _, _>(reset_page),
        Endpoint::of::<__path_revert_page, _, _, _>(revert_page),
        Endpoint::of::<__path_page_script, _, _, _>(page_script),
        Endpoint::of::<__path_security_page, _, _, _>(security_page),
        Endpoint::of::<__path_security_totp, _, _, _>(security_totp).throttled(Action::Update),
        Endpoint::of::<__path_security_script, _, _, _>(security_script),
        Endpoint::of::<__path_page_style, _, _, _>(page_style),
        Endpoint::of::<__path_all_users, _, _, _>(all_users),
        Endpoint::of::<__path_search_users, _, _, _>(search_users),
        Endpoint::of::<__path_create_account, _, _, _>(create_account),
        Endpoint::of::<__path_get_account, _, _, _>(get_account),
        Endpoint::of::<__path_patch_account, _, _, _>(patch_account),
        Endpoint::of::<__path_delete_account, _, _, _>(delete_account),
        Endpoint::of::<__path_account_sessions, _, _, _>(account_sessions),
        Endpoint::of::<__path_revoke_account_sessions, _, _, _>(revoke_account_sessions),
        Endpoint::of::<__path_reset_account_mfa, _, _, _>(reset_account_mfa),
        Endpoint::of::<__path_list_tasks, _, _, _>(list_tasks),
        Endpoint::of::<__path_retry_task, _, _, _>(retry_task),
        Endpoint::of::<__path_audit, _, _, _>(audit),
        Endpoint::of::<__path_add_favorite, _, _, _>(add_favorite),
        Endpoint::of::<__path_remove_favorite, _, _, _>(remove_favorite),
        Endpoint::of::<__path_list_favorites, _, _, _>(list_favorites),
        Endpoint::of::<__path_contains_favorites, _, _, _>(contains_favorites),
        Endpoint::of::<__path_add_favorite_by_path, _, _, _>(add_favorite_by_path),
        Endpoint::of::<__path_remove_favorite_by_path, _, _, _>(remove_favorite_by_path),
        Endpoint::of::<__path_healthz, _, _, _>(healthz),
        Endpoint::of::<__path_readyz, _, _, _>(readyz),
        Endpoint::of::<__path_metrics, _, _, _>(metrics),
        Endpoint::of::<__path_openapi, _, _, _>(openapi),
        Endpoint::of::<__path_jwks, _, _, _>(jwks),
    ]
}

/// The table, built once.
pub(crate) fn endpoints() -> &'static [Endpoint] {
    static TABLE: OnceLock<Vec<Endpoint>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = table();
        let patterns: Vec<Pattern> = table.iter().map(|e| e.pattern.clone()).collect();
        for endpoint in &mut table {
            endpoint.pattern.reserve_literals_of(&patterns);
        }
        table
    })
}

/// The OpenAPI document: the schemas and security schemes of
/// [`crate::openapi`], and each endpoint's operation. Built once.
pub(crate) fn openapi_document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        crate::openapi::document(endpoints().iter().map(|e| (e.path.as_str(), &e.doc_method, &e.operation)))
    })
}

/// This document: the OpenAPI 3 description of every route.
#[utoipa::path(get, path = "/openapi.json", responses(
    (status = 200, description = "The OpenAPI 3 document", body = serde_json::Value),
))]
pub(super) async fn openapi(_: Call<Open>) -> Result<Response, ApiError> {
    Ok(json(openapi_document()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_is_paired_with_its_own_documentation_and_labels_are_unique() {
        let table = endpoints();
        let mut labels: Vec<&str> = table.iter().map(|e| e.label.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), table.len());
    }
}
