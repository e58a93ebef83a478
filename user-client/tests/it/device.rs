//! Signing a device in by code through the SDK, and a client that holds
//! its tokens itself (`Client::with_tokens`).

use user_server::Config;

use crate::common::server_with;

/// Device sign-in on, for the client `tv-app`.
fn device_client(config: &mut Config) {
    config.service.oauth_clients = vec!["tv-app".into()];
}

#[tokio::test]
async fn a_tv_signs_in_by_code_while_a_phone_approves() {
    let srv = server_with(device_client).await;
    let phone = srv.user("alice").await;
    let tv = user_client::Client::builder(&srv.base).device_name("Living room TV").build().unwrap();
    let mut login = tv.start_device_login("tv-app").await.unwrap();
    assert_eq!(login.user_code().len(), 9);
    assert_eq!(login.verification_uri(), format!("{}/device", srv.base));
    assert!(login.verification_uri_complete().ends_with(login.user_code()));
    assert_eq!((login.interval().as_secs(), login.expires_in().as_secs()), (5, 600));
    let printed = format!("{login:?}");
    assert!(printed.contains("device_code: [redacted]") && printed.contains(login.user_code()), "{printed}");

    assert!(login.poll().await.unwrap().is_none(), "nobody approved yet");
    assert!(login.poll().await.unwrap().is_none(), "too soon: slow_down");
    assert_eq!(login.interval().as_secs(), 10, "and the interval grew");

    let typed = login.user_code().to_lowercase();
    phone.approve_device(&typed, true).await.unwrap();
    let signed_in = login.wait().await.unwrap();
    assert_eq!(signed_in.me().await.unwrap().username.as_deref(), Some("alice"));
    let sessions = phone.sessions().await.unwrap();
    assert!(sessions.iter().any(|s| s.device_name.as_deref() == Some("Living room TV")));

    let wrong = phone.approve_device("ZZZZ-ZZZZ", true).await.unwrap_err();
    assert_eq!((wrong.status(), wrong.to_string().contains("invalid or expired code")), (Some(400), true));
}

#[tokio::test]
async fn a_declined_device_and_an_unknown_client_get_their_rfc_codes() {
    let srv = server_with(device_client).await;
    let phone = srv.user("alice").await;
    let tv = srv.client();
    let unknown = tv.start_device_login("stranger").await.unwrap_err();
    assert_eq!((unknown.status(), unknown.grant_error()), (Some(401), Some("invalid_client")));
    let login = tv.start_device_login("tv-app").await.unwrap();
    phone.approve_device(login.user_code(), false).await.unwrap();
    let declined = login.wait().await.unwrap_err();
    assert_eq!(declined.grant_error(), Some("access_denied"));
}

#[tokio::test]
async fn a_client_holding_its_tokens_refreshes_through_the_token_endpoint() {
    let srv = server_with(device_client).await;
    let phone = srv.user("alice").await;
    let saved = phone.save_session().await;
    let app = srv.client().with_tokens("not-a-valid-access-token", saved.refresh_token.clone().unwrap());
    assert_eq!(app.me().await.unwrap().username.as_deref(), Some("alice"), "a 401, one refresh by body, a retry");
    let rotated = app.save_session().await;
    assert_ne!(rotated.refresh_token, saved.refresh_token, "the rotated refresh token is kept");
    assert_ne!(rotated.access_token.as_deref(), Some("not-a-valid-access-token"));

    let stale = srv.client().with_tokens("x", "not-a-refresh-token");
    let refused = stale.refresh().await.unwrap_err();
    assert_eq!(refused.grant_error(), Some("invalid_grant"));
    assert!(stale.me().await.unwrap_err().is_unauthorized(), "the original 401 when refreshing fails");
}

#[tokio::test]
async fn a_device_session_must_sign_in_again_to_change_the_address_and_the_sdk_does_not_refresh_for_it() {
    let srv = server_with(device_client).await;
    let phone = srv.user("alice").await;
    let tv = srv.client();
    let login = tv.start_device_login("tv-app").await.unwrap();
    phone.approve_device(login.user_code(), true).await.unwrap();
    let signed_in = login.wait().await.unwrap();
    let before = signed_in.save_session().await;

    let change = user_core::api::UpdateRequest { email: Some("new@example.com".into()), ..Default::default() };
    let refused = signed_in.update(&change).await.unwrap_err();
    assert!(refused.is_reauth_required() && refused.is_unauthorized(), "{refused:?}");
    assert_eq!(refused.code(), Some("reauth_required"));
    assert_eq!(signed_in.save_session().await.refresh_token, before.refresh_token, "no refresh was tried");
    let deleted = signed_in.delete_account(None).await.unwrap_err();
    assert!(deleted.is_reauth_required(), "{deleted:?}");

    let with_password = user_core::api::UpdateRequest { current_password: Some("correct horse".into()), ..change };
    assert_eq!(signed_in.update(&with_password).await.unwrap().email.as_deref(), Some("new@example.com"));
}
