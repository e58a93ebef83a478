//! Second factors through the SDK: TOTP on, the typed `MfaRequired`
//! answer, the second step, recovery codes, and no refresh on a coded 401.

use user_core::auth::TotpSecret;

use crate::common::server;

/// What an authenticator app shows for `secret` (base32) now.
fn app_code(secret: &str) -> String {
    TotpSecret::from_base32(secret).unwrap().code_at(chrono::Utc::now())
}

#[tokio::test]
async fn a_second_factor_is_a_typed_answer_and_the_second_step_keeps_the_session() {
    let srv = server().await;
    let alice = srv.user("alice").await;
    assert!(!alice.security().await.unwrap().totp);
    let enrollment = alice.totp_enroll(None).await.unwrap();
    assert!(!format!("{enrollment:?}").contains(&enrollment.secret), "Debug hides the secret");
    let before = alice.save_session().await;
    let wrong = alice.totp_confirm("000000").await.unwrap_err();
    assert_eq!(wrong.code(), Some("invalid_code"));
    assert_eq!(alice.save_session().await.refresh_token, before.refresh_token, "a coded 401 is not refreshed");
    let codes = alice.totp_confirm(&app_code(&enrollment.secret)).await.unwrap();
    assert_eq!(codes.recovery_codes.len(), 10);
    assert_eq!(alice.security().await.unwrap().recovery_codes_left, 10);

    let phone = srv.client();
    let pending = match phone.login("alice", "correct horse").await {
        Err(user_client::Error::MfaRequired(pending)) => pending,
        other => panic!("expected MfaRequired, got {other:?}"),
    };
    assert_eq!(pending.methods, ["totp", "recovery_code"]);
    assert!(!format!("{pending:?}").contains(&pending.mfa_token));
    assert!(phone.me().await.unwrap_err().is_unauthorized(), "no session yet");
    phone.login_mfa(&pending.mfa_token, &codes.recovery_codes[0]).await.unwrap();
    assert_eq!(phone.me().await.unwrap().username.as_deref(), Some("alice"));
    let spent = phone.login_mfa(&pending.mfa_token, &codes.recovery_codes[1]).await.unwrap_err();
    assert_eq!(spent.code(), Some("invalid_code"));

    let fresh = phone.new_recovery_codes(Some("correct horse")).await.unwrap();
    assert!(fresh.recovery_codes.iter().all(|c| !codes.recovery_codes.contains(c)));
    phone.totp_disable(Some("correct horse")).await.unwrap();
    let none = phone.totp_disable(Some("correct horse")).await.unwrap_err();
    assert_eq!((none.status(), none.code()), (Some(409), Some("no_second_factor")));
    srv.client().login("alice", "correct horse").await.unwrap();
}

#[tokio::test]
async fn a_restricted_admin_enrolls_then_steps_up_through_the_sdk() {
    let srv = server().await;
    let root = srv.client();
    let account = root.register("root", "root@example.com", "correct horse").await.unwrap();
    let promote = user_core::store::AccountChanges { role: Some(user_core::domain::Role::Admin), ..Default::default() };
    let id = user_core::domain::UserId::from_uuid(account.id);
    srv.state.service.change_account(id, promote, &Default::default()).await.unwrap();
    root.login("root", "correct horse").await.unwrap();
    let refused = root.admin().user(account.id).await.unwrap_err();
    assert!(refused.is_mfa_enrollment_required(), "{refused:?}");
    assert_eq!(refused.status(), Some(403));
    assert_eq!(root.me().await.unwrap().username.as_deref(), Some("root"), "a restricted session sees itself");
    let before = root.save_session().await;
    assert!(root.refresh().await.is_ok(), "and refreshes");
    assert_ne!(root.save_session().await.refresh_token, before.refresh_token);

    let secret = root.totp_enroll(None).await.unwrap().secret;
    let codes = root.totp_confirm(&app_code(&secret)).await.unwrap().recovery_codes;
    root.admin().user(account.id).await.unwrap();

    // A step-up with the password is for accounts without a factor.
    let password = root.reauth_with_password("correct horse").await.unwrap_err();
    assert_eq!((password.status(), password.code()), (Some(401), Some("mfa_required")));
    let wrong = root.reauth_with_code("000000").await.unwrap_err();
    assert_eq!(wrong.code(), Some("invalid_code"));
    let session = root.save_session().await;
    let done = root.reauth_with_code(&codes[0]).await.unwrap();
    assert!(done.reauth_until > chrono::Utc::now());
    assert_ne!(root.save_session().await.refresh_token, session.refresh_token, "the cookies rotated");
    root.me().await.unwrap();
    assert!(root.reauth_with_password("").await.unwrap_err().is_bad_request(), "refused before sending");

    let alice = srv.user("alice").await;
    let done = alice.reauth_with_password("correct horse").await.unwrap();
    assert_eq!((done.message.as_str(), done.status), ("success", 200));
}

#[tokio::test]
async fn passkeys_through_the_sdk_with_a_software_authenticator() {
    use user_client::PasskeySignInFor;
    use user_core::testing::{Algorithm, Authenticator};

    let srv = crate::common::server_with(|config| {
        config.service.webauthn_rp_id = Some("localhost".into());
        config.service.webauthn_origins = vec!["http://localhost:8080".into()];
    })
    .await;
    let alice = srv.user("alice").await;
    let mut key = Authenticator::new("http://localhost:8080", Algorithm::EdDsa);
    let start = alice.passkey_register_start(None).await.unwrap();
    let added =
        alice.passkey_register_finish(&start.ceremony, Some("Laptop"), &key.create(&start.options)).await.unwrap();
    assert_eq!(added.name, "Laptop");
    assert_eq!(alice.security().await.unwrap().passkeys[0].id, added.id);

    // Alone, on a new client.
    let laptop = srv.client();
    let start = laptop.passkey_login_start(PasskeySignInFor::Alone).await.unwrap();
    laptop.passkey_login_finish(&start.ceremony, &key.get(&start.options)).await.unwrap();
    assert_eq!(laptop.me().await.unwrap().username.as_deref(), Some("alice"));
    let start = laptop.passkey_login_start(PasskeySignInFor::StepUp).await.unwrap();
    let stepped = laptop.reauth_with_passkey(&start.ceremony, &key.get(&start.options)).await.unwrap();
    assert!(stepped.reauth_until > chrono::Utc::now());

    // Second, after the password.
    let phone = srv.client();
    let pending = match phone.login("alice", "correct horse").await {
        Err(user_client::Error::MfaRequired(pending)) => pending,
        other => panic!("{other:?}"),
    };
    assert_eq!(pending.methods, ["passkey"]);
    let start =
        phone.passkey_login_start(PasskeySignInFor::SecondStep { mfa_token: &pending.mfa_token }).await.unwrap();
    phone.login_mfa_with_passkey(&start.ceremony, &key.get(&start.options)).await.unwrap();
    phone.me().await.unwrap();

    // A failed check is a 401 that does not make the client refresh.
    let start = phone.passkey_login_start(PasskeySignInFor::Alone).await.unwrap();
    let replayed = key.get(&start.options);
    phone.passkey_login_finish(&start.ceremony, &replayed).await.unwrap();
    let again = phone.passkey_login_finish(&start.ceremony, &replayed).await.unwrap_err();
    assert_eq!(again.status(), Some(401));

    phone.rename_passkey(added.id, "Old laptop").await.unwrap();
    phone.remove_passkey(added.id, None).await.unwrap();
    assert!(phone.remove_passkey(added.id, None).await.unwrap_err().is_not_found());
}
