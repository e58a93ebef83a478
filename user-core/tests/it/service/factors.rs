//! Second factors through the service: TOTP turned on and off, sign-in in
//! two steps, recovery codes, and what an attacker holding the password
//! (or a stolen session, or an old code) can and cannot do.

use user_core::auth::{DataKeys, TotpSecret};
use user_core::clock::Clock;
use user_core::service::{MfaPolicy, StepUp};
use user_core::store::TaskStatus;
use user_core::{SecondFactorChallenge, SecondFactorMethod};
use zeroize::Zeroizing;

use super::*;

/// The code an authenticator app shows for `secret` (base32) at `at`.
fn code_at(secret: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    TotpSecret::from_base32(secret).unwrap().code_at(at)
}

fn mail_on() -> ServiceConfig {
    let mut config = config();
    config.mail.enabled = true;
    config
}

/// Alice, verified, signed in just now, with TOTP on: her secret and recovery codes.
async fn alice_with_totp(app: &TestApp) -> (UserId, String, Vec<String>) {
    let alice = app.register("alice").await.id;
    let verified = AccountChanges { email_verified: Some(true), ..AccountChanges::default() };
    app.service.change_account(alice, verified, &ClientInfo::default()).await.unwrap();
    let tokens = app.login("alice").await;
    let client = ClientInfo::default();
    let enrollment = app.service.start_totp_enrollment(alice, Some(tokens.session_id), None, &client).await.unwrap();
    assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/user-service:alice@example.com?secret="));
    assert_eq!(format!("{enrollment:?}"), "TotpEnrollment([redacted])");
    let codes =
        app.service.confirm_totp(alice, None, &code_at(&enrollment.secret, app.clock.now()), &client).await.unwrap();
    // The confirming code is used: the next one comes from the next step.
    app.clock.advance(Duration::from_secs(30));
    (alice, enrollment.secret, codes.iter().map(|c| c.display()).collect())
}

/// The second-factor challenge a right password gets.
async fn password_step(app: &TestApp) -> SecondFactorChallenge {
    match app.service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await {
        Err(Error::SecondFactorRequired(challenge)) => *challenge,
        other => panic!("expected a second-factor challenge, got {other:?}"),
    }
}

#[tokio::test]
async fn a_right_password_alone_opens_no_session_once_totp_is_on() {
    let app = app_with(mail_on()).await;
    let (alice, secret, codes) = alice_with_totp(&app).await;
    assert_eq!(codes.len(), 10);
    let factors = app.service.second_factors(alice).await.unwrap();
    assert!(factors.totp && factors.recovery_codes_left == 10);

    let challenge = password_step(&app).await;
    assert_eq!(challenge.methods, [SecondFactorMethod::Totp, SecondFactorMethod::RecoveryCode]);
    assert!(!format!("{challenge:?}").contains(&challenge.mfa_token), "Debug hides the token");
    assert_eq!(app.service.sessions(alice).await.unwrap().len(), 1, "only the enrolling session");

    let client = ClientInfo::default();
    let code = code_at(&secret, app.clock.now());
    let outcome = app.service.complete_sign_in(&challenge.mfa_token, &code, &client).await.unwrap();
    assert_eq!(outcome.user.id, alice);
    app.service.authenticate(&outcome.tokens.access).await.unwrap();
    // The token is single use, and so is the code.
    let again = app.service.complete_sign_in(&challenge.mfa_token, &code, &client).await;
    assert!(matches!(again, Err(Error::InvalidCode)), "{again:?}");
    let replay = password_step(&app).await;
    let again = app.service.complete_sign_in(&replay.mfa_token, &code, &client).await;
    assert!(matches!(again, Err(Error::InvalidCode)), "a code works once: {again:?}");
    // An older code (the step before) is refused too, though within the skew.
    let older = code_at(&secret, app.clock.now() - chrono::TimeDelta::seconds(30));
    let again = app.service.complete_sign_in(&replay.mfa_token, &older, &client).await;
    assert!(matches!(again, Err(Error::InvalidCode)), "{again:?}");
    app.clock.advance(Duration::from_secs(30));
    let next = code_at(&secret, app.clock.now());
    app.service.complete_sign_in(&replay.mfa_token, &next, &client).await.unwrap();
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_however_it_is_typed_and_the_owner_hears_of_it() {
    let app = app_with(mail_on()).await;
    let (alice, _, codes) = alice_with_totp(&app).await;
    let client = ClientInfo::default();
    let typed = codes[2].to_lowercase().replace('-', " ");
    let challenge = password_step(&app).await;
    app.service.complete_sign_in(&challenge.mfa_token, &typed, &client).await.unwrap();
    assert_eq!(app.service.second_factors(alice).await.unwrap().recovery_codes_left, 9);
    let challenge = password_step(&app).await;
    let again = app.service.complete_sign_in(&challenge.mfa_token, &codes[2], &client).await;
    assert!(matches!(again, Err(Error::InvalidCode)), "{again:?}");

    let mails = app.store.list_tasks(Some(TaskStatus::Pending), None, 100).await.unwrap();
    let notices: Vec<_> = mails
        .iter()
        .filter(|t| t.kind == TaskKind::EmailSecurityChanged)
        .map(|t| t.payload.as_ref().unwrap().change.clone().unwrap())
        .collect();
    assert_eq!(notices, ["totp.enable", "recovery_code.used"]);
    let trail = app.service.audit_trail(&AuditFilter::default(), &PageRequest::default()).await.unwrap();
    let events: Vec<&str> = trail.items.iter().map(|e| e.event.as_str()).collect();
    for event in ["recovery_code.used", "mfa.failure", "mfa.success", "totp.enable"] {
        assert!(events.contains(&event), "{event} missing from {events:?}");
    }
}

#[tokio::test]
async fn wrong_codes_spend_the_sign_in_and_count_toward_the_lockout_a_right_password_does_not_clear() {
    let app = app().await;
    let (_, secret, _) = alice_with_totp(&app).await;
    let client = ClientInfo::default();
    // The attacker has the password; each sign-in allows five wrong codes.
    let challenge = password_step(&app).await;
    for _ in 0..4 {
        let wrong = app.service.complete_sign_in(&challenge.mfa_token, "000000", &client).await;
        assert!(matches!(wrong, Err(Error::InvalidCode)), "{wrong:?}");
    }
    // Password right, then wrong codes, password again …: the lockout
    // counted every guess, and the right password cleared none of them.
    let mut throttled = false;
    for _ in 0..6 {
        match app.service.login(&login_name("alice"), &pw("correct horse"), &client).await {
            Err(Error::SecondFactorRequired(c)) => {
                let _ = app.service.complete_sign_in(&c.mfa_token, "000000", &client).await;
            }
            Err(Error::Throttled { .. }) => {
                throttled = true;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(throttled, "guessing codes behind a known password is slowed down like guessing passwords");
    // Once the wait is over the owner signs in with password and code.
    app.clock.advance(Duration::from_secs(3600));
    let challenge = password_step(&app).await;
    let code = code_at(&secret, app.clock.now());
    app.service.complete_sign_in(&challenge.mfa_token, &code, &client).await.unwrap();
}

#[tokio::test]
async fn a_sign_in_token_dies_after_five_wrong_codes_and_with_time() {
    let app = app().await;
    let (_, secret, _) = alice_with_totp(&app).await;
    let client = ClientInfo::default();
    let challenge = password_step(&app).await;
    for _ in 0..5 {
        let _ = app.service.complete_sign_in(&challenge.mfa_token, "999999", &client).await;
    }
    app.clock.advance(Duration::from_secs(3600));
    let code = code_at(&secret, app.clock.now());
    let spent = app.service.complete_sign_in(&challenge.mfa_token, &code, &client).await;
    assert!(matches!(spent, Err(Error::InvalidCode)), "{spent:?}");

    let challenge = password_step(&app).await;
    app.clock.advance(Duration::from_secs(301));
    let code = code_at(&secret, app.clock.now());
    let late = app.service.complete_sign_in(&challenge.mfa_token, &code, &client).await;
    assert!(matches!(late, Err(Error::InvalidCode)), "{late:?}");
    for junk in ["", "not-a-token", &"A".repeat(43)] {
        let refused = app.service.complete_sign_in(junk, &code, &client).await;
        assert!(matches!(refused, Err(Error::InvalidCode)), "{refused:?}");
    }
}

#[tokio::test]
async fn a_password_reset_between_the_two_steps_voids_the_sign_in() {
    let app = app().await;
    let (alice, secret, _) = alice_with_totp(&app).await;
    let challenge = password_step(&app).await;
    // The owner changes the password (say, after noticing the attempt).
    let session = app.login_with_code(&secret).await;
    let update = ProfileUpdate { password: Some(pw("a new password here")), ..ProfileUpdate::default() };
    app.service.update(alice, Some(session), update, &ClientInfo::default()).await.unwrap();
    app.clock.advance(Duration::from_secs(30));
    let code = code_at(&secret, app.clock.now());
    let stale = app.service.complete_sign_in(&challenge.mfa_token, &code, &ClientInfo::default()).await;
    assert!(matches!(stale, Err(Error::InvalidCode)), "{stale:?}");
}

#[tokio::test]
async fn turning_totp_on_or_off_needs_a_recent_sign_in_and_off_voids_the_codes() {
    let app = app().await;
    let (alice, secret, codes) = alice_with_totp(&app).await;
    let session = app.login_with_code(&secret).await;
    let client = ClientInfo::default();
    let again = app.service.start_totp_enrollment(alice, Some(session), None, &client).await;
    assert!(matches!(again, Err(Error::FactorActive)), "{again:?}");

    // A stolen session eleven minutes old cannot turn the factor off.
    app.clock.advance(Duration::from_secs(11 * 60));
    let stolen = app.service.disable_totp(alice, Some(session), None, &client).await;
    assert!(matches!(stolen, Err(Error::ReauthRequired { .. })), "{stolen:?}");
    let stolen = app.service.new_recovery_codes(alice, Some(session), None, &client).await;
    assert!(matches!(stolen, Err(Error::ReauthRequired { .. })), "{stolen:?}");
    let wrong = app.service.disable_totp(alice, Some(session), Some(&pw("not the password")), &client).await;
    assert!(matches!(wrong, Err(Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword))), "{wrong:?}");
    // With a second factor on, the password alone is one factor: not enough.
    let password_only = app.service.disable_totp(alice, Some(session), Some(&pw("correct horse")), &client).await;
    assert!(matches!(password_only, Err(Error::ReauthRequired { .. })), "{password_only:?}");
    let step_up = app.service.reauthenticate(alice, session, StepUp::Password(&pw("correct horse")), &client).await;
    assert!(matches!(step_up, Err(Error::SecondFactorNeeded)), "{step_up:?}");
    let wrong = app.service.reauthenticate(alice, session, StepUp::Code("000000"), &client).await;
    assert!(matches!(wrong, Err(Error::InvalidCode)), "{wrong:?}");
    let code = code_at(&secret, app.clock.now());
    let until = app.service.reauthenticate(alice, session, StepUp::Code(&code), &client).await.unwrap();
    assert_eq!(until, app.clock.now() + chrono::TimeDelta::minutes(10));
    let replay = app.service.reauthenticate(alice, session, StepUp::Code(&code), &client).await;
    assert!(matches!(replay, Err(Error::InvalidCode)), "a code works once: {replay:?}");

    let fresh = app.service.new_recovery_codes(alice, Some(session), Some(&pw("correct horse")), &client).await;
    let fresh = fresh.unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(&c.display())), "a new set");
    app.service.disable_totp(alice, Some(session), Some(&pw("correct horse")), &client).await.unwrap();
    let twice = app.service.disable_totp(alice, Some(session), Some(&pw("correct horse")), &client).await;
    assert!(matches!(twice, Err(Error::NoSecondFactor)), "{twice:?}");
    assert_eq!(app.service.second_factors(alice).await.unwrap().recovery_codes_left, 0);
    let none = app.service.new_recovery_codes(alice, Some(session), Some(&pw("correct horse")), &client).await;
    assert!(matches!(none, Err(Error::NoSecondFactor)), "{none:?}");
    // The password alone signs in again.
    app.login("alice").await;
}

#[tokio::test]
async fn an_enrollment_confirms_only_with_its_own_code_within_ten_minutes() {
    let app = app().await;
    let alice = app.register("alice").await.id;
    let tokens = app.login("alice").await;
    let client = ClientInfo::default();
    let first = app.service.start_totp_enrollment(alice, Some(tokens.session_id), None, &client).await.unwrap();
    let second = app.service.start_totp_enrollment(alice, Some(tokens.session_id), None, &client).await.unwrap();
    assert_ne!(first.secret, second.secret);
    let stale = app.service.confirm_totp(alice, None, &code_at(&first.secret, app.clock.now()), &client).await;
    assert!(matches!(stale, Err(Error::InvalidCode)), "the replaced secret: {stale:?}");
    for junk in ["", "12345", "abcdef", "1234567"] {
        let refused = app.service.confirm_totp(alice, None, junk, &client).await;
        assert!(matches!(refused, Err(Error::InvalidCode)), "{junk}: {refused:?}");
    }
    app.clock.advance(Duration::from_secs(601));
    let late = app.service.confirm_totp(alice, None, &code_at(&second.secret, app.clock.now()), &client).await;
    assert!(matches!(late, Err(Error::InvalidCode)), "{late:?}");
    assert!(!app.service.second_factors(alice).await.unwrap().totp);
    // Until confirmed, the password alone still signs in.
    app.login("alice").await;
}

#[tokio::test]
async fn secrets_stay_readable_across_a_data_key_rotation_and_move_to_the_new_key() {
    let key = |byte: u8| Zeroizing::new(vec![byte; 32]);
    let with_keys = |keys: Vec<Zeroizing<Vec<u8>>>| {
        let mut config = config();
        config.mfa = MfaPolicy { data_keys: Some(Arc::new(DataKeys::new(&keys).unwrap())), ..MfaPolicy::default() };
        config
    };
    let store = user_core::testing::memory_store().await;
    let clock = Arc::new(ManualClock::default());
    let old = UserService::with_clock(store.clone(), with_keys(vec![key(1)]), clock.clone()).await.unwrap();
    assert!(!old.data_key_generated());
    let app = TestApp { service: old, clock: clock.clone(), store: store.clone() };
    let (alice, secret, _) = alice_with_totp(&app).await;
    let before = store.totp(alice).await.unwrap().unwrap().sealed_secret;

    let rotated = UserService::with_clock(store.clone(), with_keys(vec![key(1), key(2)]), clock.clone()).await.unwrap();
    let app = TestApp { service: rotated, clock: clock.clone(), store: store.clone() };
    let session = app.login_with_code(&secret).await;
    let after = store.totp(alice).await.unwrap().unwrap().sealed_secret;
    assert_ne!(before.split('.').next(), after.split('.').next(), "sealed anew under the new key");
    let _ = session;

    let only_new = UserService::with_clock(store.clone(), with_keys(vec![key(2)]), clock.clone()).await.unwrap();
    let app = TestApp { service: only_new, clock: clock.clone(), store: store.clone() };
    app.clock.advance(Duration::from_secs(30));
    app.login_with_code(&secret).await;
    // Without USER_DATA_KEY a key is generated once and kept in the store.
    let generated = UserService::with_clock(store.clone(), config(), clock).await.unwrap();
    assert!(generated.data_key_generated());
}

impl TestApp {
    /// Signs alice in with her password and the current code; the session.
    async fn login_with_code(&self, secret: &str) -> user_core::domain::SessionId {
        let challenge = password_step(self).await;
        let code = code_at(secret, self.clock.now());
        let outcome = self.service.complete_sign_in(&challenge.mfa_token, &code, &ClientInfo::default()).await;
        let session = outcome.unwrap().tokens.session_id;
        self.clock.advance(Duration::from_secs(30));
        session
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_guesses_sent_at_once_get_five_codes_checked() {
    let app = app().await;
    alice_with_totp(&app).await;
    let challenge = password_step(&app).await;
    let service = Arc::new(app.service.clone());
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let guesses: Vec<_> = (0..20)
        .map(|n| {
            let (service, barrier, token) = (service.clone(), barrier.clone(), challenge.mfa_token.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                service.complete_sign_in(&token, &format!("{:06}", 100_000 + n), &ClientInfo::default()).await
            })
        })
        .collect();
    for guess in guesses {
        assert!(matches!(guess.await.unwrap(), Err(Error::InvalidCode)));
    }
    let filter = AuditFilter { event: Some("mfa.failure".into()), ..AuditFilter::default() };
    let checked = app.service.audit_trail(&filter, &PageRequest::default()).await.unwrap().items.len();
    assert_eq!(checked, 5, "the sign-in's five guesses, never more");
}

#[tokio::test]
async fn an_admin_resets_a_lost_factor_for_someone_else_never_for_themselves() {
    let app = app_with(mail_on()).await;
    let (alice, _, _) = alice_with_totp(&app).await;
    let admin = app.register("root").await.id;
    app.set_role(admin, Role::Admin).await.unwrap();
    let root_session = app.login("root").await.session_id;
    let as_root = ClientInfo { actor: Some(admin), ..ClientInfo::default() };

    let own = app.service.reset_second_factors(admin, Some(root_session), &as_root).await;
    assert!(matches!(own, Err(Error::OwnSecondFactors)), "{own:?}");
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = app.service.reset_second_factors(alice, Some(root_session), &as_root).await;
    assert!(
        matches!(stale, Err(Error::ReauthRequired { .. })),
        "a stolen admin session cannot strip factors: {stale:?}"
    );
    let root_session = app.login("root").await.session_id;
    app.service.reset_second_factors(alice, Some(root_session), &as_root).await.unwrap();

    assert!(!app.service.second_factors(alice).await.unwrap().totp);
    assert!(app.service.sessions(alice).await.unwrap().is_empty(), "every session of hers ended");
    app.login("alice").await;
    let again = app.service.reset_second_factors(alice, Some(root_session), &as_root).await;
    assert!(matches!(again, Err(Error::NoSecondFactor)), "{again:?}");
    let tasks = app.store.list_tasks(None, None, 100).await.unwrap();
    let changes: Vec<String> = tasks
        .iter()
        .filter(|t| t.kind == TaskKind::EmailSecurityChanged)
        .map(|t| t.payload.as_ref().unwrap().change.clone().unwrap())
        .collect();
    assert_eq!(changes, ["totp.enable", "mfa.reset"]);
    let filter = AuditFilter { event: Some("mfa.reset".into()), ..AuditFilter::default() };
    let trail = app.service.audit_trail(&filter, &PageRequest::default()).await.unwrap().items;
    assert_eq!((trail.len(), trail[0].actor_id), (1, Some(admin)));
    // An operator on the database host (no actor) needs no session.
    let unknown = app.service.reset_second_factors(UserId::new(), None, &ClientInfo::default()).await;
    assert!(matches!(unknown, Err(Error::UserNotFound)), "{unknown:?}");
}

#[tokio::test]
async fn the_service_refuses_to_start_with_another_rp_id_while_passkeys_exist() {
    use user_core::service::PasskeyConfig;
    use user_core::testing::{Algorithm, Authenticator};

    let passkeys = |rp_id: &str, origin: &str| {
        let mut config = config();
        config.mfa.passkeys =
            Some(PasskeyConfig { rp_id: rp_id.into(), rp_name: "Music".into(), origins: vec![origin.into()] });
        config
    };
    // Before any passkey exists, the RP id may be chosen freely.
    let app = app_with(passkeys("music.example", "https://music.example")).await;
    let alice = app.service.register(registration("alice"), &ClientInfo::default()).await.unwrap().id;
    let tokens = app.login("alice").await;
    let client = ClientInfo::default();
    let start = app.service.start_passkey_registration(alice, Some(tokens.session_id), None, &client).await.unwrap();
    let mut key = Authenticator::new("https://music.example", Algorithm::Es256);
    let credential = key.create(&start.options);
    let session = Some(tokens.session_id);
    app.service.finish_passkey_registration(alice, session, &start.ceremony, None, &credential, &client).await.unwrap();

    let moved = UserService::new(app.store.clone(), passkeys("other.example", "https://other.example")).await;
    let message = moved.unwrap_err().to_string();
    assert!(message.contains("USER_WEBAUTHN_RP_ID") && message.contains("music.example"), "{message}");
    let off = UserService::new(app.store.clone(), config()).await.unwrap_err().to_string();
    assert!(off.contains("unset") && off.contains("music.example"), "{off}");
    UserService::new(app.store.clone(), passkeys("music.example", "https://music.example")).await.unwrap();
    let bad_origin = UserService::new(app.store.clone(), passkeys("music.example", "https://evil.example")).await;
    assert!(bad_origin.unwrap_err().to_string().contains("USER_WEBAUTHN_ORIGINS"));
}
