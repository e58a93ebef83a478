//! Every SDK method against a real server, success and documented errors.

use crate::common::{TestServer, server, server_with};
use futures_util::TryStreamExt;
use user_client::api::UpdateRequest;
use user_client::{Client, Error};

#[tokio::test]
async fn register_login_me_update_logout_round_trip() {
    let srv = server().await;
    let client = srv.client();
    let account = client.register("alice", "Alice@Example.com", "correct horse").await.unwrap();
    assert_eq!((account.username.as_str(), account.email.as_deref()), ("alice", Some("alice@example.com")));
    let login = client.login("alice@example.com", "correct horse").await.unwrap();
    assert_eq!(login.id, account.id);
    assert_eq!(client.access_token().await.as_deref(), Some(login.token.as_str()));
    let me = client.me().await.unwrap();
    assert_eq!((me.id, me.role), (account.id, user_core::domain::Role::User));
    let updated =
        client.update(&UpdateRequest { username: Some("alicia".into()), ..Default::default() }).await.unwrap();
    assert_eq!(updated.username, "alicia");
    client.logout().await.unwrap();
    assert!(client.access_token().await.is_none());
    assert!(client.me().await.unwrap_err().is_unauthorized());
}

#[tokio::test]
async fn register_errors_are_typed() {
    let srv = server().await;
    let client = srv.client();
    client.register("alice", "alice@example.com", "correct horse").await.unwrap();
    let taken = client.register("ALICE", "other@example.com", "correct horse").await.unwrap_err();
    assert!(taken.is_conflict(), "{taken}");
    assert!(matches!(&taken, Error::Api { status: 409, message, .. } if message.contains("username")));
    let local = client.register("al", "alice@example.com", "correct horse").await.unwrap_err();
    assert!(local.is_bad_request());
    assert!(matches!(local, Error::Invalid(ref e) if e.field == "username"));
}

#[tokio::test]
async fn login_errors_are_typed() {
    let srv = server().await;
    let client = srv.client();
    let account = client.register("alice", "alice@example.com", "correct horse").await.unwrap();
    assert!(client.login("alice", "wrong horse").await.unwrap_err().is_unauthorized());
    assert!(client.login("nobody", "correct horse").await.unwrap_err().is_not_found());
    let disable = user_core::store::AccountChanges { disabled: Some(true), ..Default::default() };
    srv.state
        .service
        .change_account(user_core::domain::UserId::from_uuid(account.id), disable, &Default::default())
        .await
        .unwrap();
    assert!(client.login("alice", "correct horse").await.unwrap_err().is_forbidden());
}

#[tokio::test]
async fn update_errors_are_typed() {
    let srv = server().await;
    srv.user("bob").await;
    let client = srv.user("alice").await;
    assert!(client.update(&UpdateRequest::default()).await.unwrap_err().is_bad_request());
    let taken = UpdateRequest { email: Some("bob@example.com".into()), ..Default::default() };
    assert!(client.update(&taken).await.unwrap_err().is_conflict());
    let wrong = UpdateRequest {
        username: Some("alicia".into()),
        current_password: Some("wrong horse".into()),
        ..Default::default()
    };
    assert!(client.update(&wrong).await.unwrap_err().is_unauthorized());
}

#[tokio::test]
async fn delete_account_ends_the_session() {
    let srv = server().await;
    let client = srv.user("alice").await;
    client.delete_account(None).await.unwrap();
    assert!(client.me().await.unwrap_err().is_unauthorized());
    assert!(client.login("alice", "correct horse").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn favorites_add_remove_list_stream_and_contains() {
    let srv = server().await;
    let client = srv.user("alice").await;
    let ids: Vec<String> = (0..7).map(|n| format!("track{n}")).collect();
    client.add_favorites(&ids).await.unwrap();
    client.add_favorites(&["track0"]).await.unwrap();
    client.remove_favorites(&["track3"]).await.unwrap();
    let page = client.list_favorites(Some(2), None).await.unwrap();
    assert_eq!(page.tracks.iter().map(|t| t.track_id.as_str()).collect::<Vec<_>>(), ["track6", "track5"]);
    let all: Vec<_> = client.favorites(2).try_collect().await.unwrap();
    let names: Vec<_> = all.iter().map(|t| t.track_id.as_str()).collect();
    assert_eq!(names, ["track6", "track5", "track4", "track2", "track1", "track0"]);
    assert_eq!(client.contains(&["track3", "track4", "nope"]).await.unwrap(), [false, true, false]);
    assert!(matches!(client.add_favorites(&["a,b"]).await.unwrap_err(), Error::Invalid(e) if e.field == "track_id"));
    let too_many: Vec<String> = (0..51).map(|n| n.to_string()).collect();
    assert!(client.add_favorites(&too_many).await.unwrap_err().is_bad_request());
    assert!(srv.client().add_favorites(&["1"]).await.unwrap_err().is_unauthorized());
}

#[tokio::test]
async fn admins_list_users_by_page_and_as_a_stream() {
    let srv = server().await;
    let admin = srv.admin("root").await;
    let user = srv.user("alice").await;
    for n in 0..4 {
        srv.user(&format!("user{n}")).await;
    }
    let first = admin.list_users(Some(2), None).await.unwrap();
    assert_eq!(first.users.len(), 2);
    assert!(first.next_cursor.is_some());
    let everyone: Vec<_> = admin.users(2).try_collect().await.unwrap();
    assert_eq!(everyone.len(), 6);
    assert_eq!(everyone[0].username.as_deref(), Some("root"));
    assert!(user.list_users(None, None).await.unwrap_err().is_forbidden());
    assert!(admin.list_users(Some(0), None).await.unwrap_err().is_bad_request());
    assert!(admin.list_users(None, Some("bogus")).await.unwrap_err().is_bad_request());
}

#[tokio::test]
async fn health_readiness_openapi_and_jwks() {
    let srv = server().await;
    let client = srv.client();
    assert_eq!(client.health().await.unwrap().status, 200);
    assert_eq!(client.ready().await.unwrap().status, 200);
    assert!(client.openapi().await.unwrap()["paths"]["/user/register"].is_object());
    assert!(client.jwks().await.unwrap_err().is_not_found());
    let ed = server_with(|config| config.service.jwt_algorithm = user_server::config::JwtAlgorithm::Eddsa).await;
    assert_eq!(ed.client().jwks().await.unwrap()["keys"][0]["crv"], "Ed25519");
}

#[tokio::test]
async fn an_expired_or_bad_access_token_is_refreshed_once_and_the_call_retried() {
    let srv = server().await;
    let client = srv.user("alice").await;
    let before = client.access_token().await.unwrap();
    client.set_access_token(Some("garbage".into())).await;
    let me = client.me().await.unwrap();
    assert_eq!(me.username.as_deref(), Some("alice"));
    let after = client.access_token().await.unwrap();
    assert_ne!(after, before);
    assert_ne!(after, "garbage");
}

#[tokio::test]
async fn when_refresh_fails_the_original_401_is_returned() {
    let srv = server().await;
    let client = srv.client();
    let err = client.me().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 401, .. }), "{err:?}");
}

#[tokio::test]
async fn transport_and_decode_errors_show_what_happened() {
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let down =
        Client::builder(format!("http://127.0.0.1:{port}")).timeout(std::time::Duration::from_secs(2)).build().unwrap();
    assert!(matches!(down.health().await.unwrap_err(), Error::Transport(_)));
    let srv = server().await;
    // A base URL that lands every call on `/metrics`: Prometheus text, not JSON.
    let misconfigured = Client::new(format!("{}/metrics?from=", srv.base)).unwrap();
    match misconfigured.health().await.unwrap_err() {
        Error::Decode { status, body, .. } => {
            assert_eq!(status, 200);
            assert!(body.contains("# TYPE"), "Prometheus text: {body}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_saved_session_continues_in_a_new_client_and_refreshes_there() {
    let srv = server().await;
    let first = srv.user("alice").await;
    let saved = first.save_session().await;
    assert!(saved.access_token.is_some() && saved.refresh_token.is_some());
    assert!(!format!("{saved:?}").contains(saved.access_token.as_deref().unwrap()), "Debug hides the tokens");
    let second = srv.client();
    second.restore_session(&saved).await;
    assert_eq!(second.me().await.unwrap().username.as_deref(), Some("alice"));
    second.refresh().await.unwrap();
    assert_ne!(second.save_session().await.refresh_token, saved.refresh_token, "rotated");
}

#[tokio::test]
async fn printing_a_client_or_its_session_shows_no_token() {
    let srv = server().await;
    let client = srv.client();
    client.register("alice", "alice@example.com", "correct horse").await.unwrap();
    let login = client.login("alice", "correct horse").await.unwrap();
    let saved = client.save_session().await;
    let refresh = saved.refresh_token.clone().expect("a refresh cookie");
    for printed in [format!("{client:?}"), format!("{client:#?}"), format!("{saved:?}")] {
        assert!(!printed.contains(&login.token), "the access token in {printed}");
        assert!(!printed.contains(&refresh), "the refresh token in {printed}");
    }
    assert!(format!("{client:?}").contains("[redacted]"), "it says a session is held");
}

#[test]
fn a_root_certificate_that_does_not_parse_is_refused_before_any_request() {
    let garbage = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let refused = Client::builder("https://users.internal").add_root_certificate(garbage).unwrap_err();
    assert!(refused.is_bad_request(), "{refused:?}");
    assert!(Client::builder("https://users.internal").add_root_certificate(b"").unwrap_err().is_bad_request());
}

#[tokio::test]
async fn sessions_are_listed_and_signed_out_from_the_sdk() {
    let srv = server().await;
    let tv = srv.client();
    tv.register("alice", "alice@example.com", "correct horse").await.unwrap();
    tv.login("alice", "correct horse").await.unwrap();
    let phone = user_client::Client::builder(&srv.base).device_name("Pixel 8").build().unwrap();
    phone.login("alice", "correct horse").await.unwrap();

    let sessions = phone.sessions().await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0].current && sessions[0].device_name.as_deref() == Some("Pixel 8"));
    let tv_session = sessions[1].id;
    assert!(matches!(phone.revoke_session(uuid::Uuid::now_v7()).await, Err(e) if e.status() == Some(404)));
    phone.revoke_session(tv_session).await.unwrap();
    assert!(tv.me().await.is_err(), "the TV is signed out");
    assert_eq!(phone.revoke_other_sessions().await.unwrap(), 0);

    let bad = user_client::Client::builder(&srv.base).device_name("").build().unwrap();
    assert!(bad.login("alice", "correct horse").await.unwrap_err().is_bad_request(), "checked before sending");
}

/// The raw token of the newest mail of `kind` still in the outbox.
async fn mailed_token(srv: &TestServer, kind: &str) -> String {
    let tasks = srv.db.store.list_tasks(None, None, 100).await.unwrap();
    let task = tasks.into_iter().rev().find(|t| t.kind.as_str() == kind).expect("a mail");
    task.payload.and_then(|p| p.token).expect("a link")
}

#[tokio::test]
async fn verification_and_password_reset_through_the_sdk() {
    let srv = server_with(|config| {
        config.service.mail_dev_log = true;
        // No relay: the mails stay in the outbox, where the test reads their links.
        config.tasks_relay = false;
    })
    .await;
    let alice = srv.user("alice").await;
    assert!(alice.request_verification().await.unwrap_err().is_throttled(), "a link was just sent");
    let token = mailed_token(&srv, "email.verify").await;
    alice.verify_email(&token).await.unwrap();
    assert!(alice.me().await.unwrap().email_verified);
    let again = alice.verify_email(&token).await.unwrap_err();
    assert_eq!((again.status(), again.to_string().contains("invalid or expired token")), (Some(400), true));

    let anonymous = srv.client();
    assert_eq!(anonymous.forgot_password("nobody@example.com").await.unwrap().status, 202);
    assert_eq!(anonymous.forgot_password("alice@example.com").await.unwrap().status, 202);
    assert!(anonymous.forgot_password("not an address").await.unwrap_err().is_bad_request());
    let token = mailed_token(&srv, "email.password_reset").await;
    assert!(anonymous.reset_password(&token, "short").await.unwrap_err().is_bad_request(), "checked before sending");
    anonymous.reset_password(&token, "a brand new secret").await.unwrap();
    assert_eq!(alice.me().await.unwrap_err().status(), Some(401), "every session ended");
    anonymous.login("alice", "a brand new secret").await.unwrap();

    // A stolen session moves the address; the owner undoes it from the old mailbox.
    let change = user_client::api::UpdateRequest { email: Some("thief@example.com".into()), ..Default::default() };
    assert_eq!(anonymous.update(&change).await.unwrap().email.as_deref(), Some("thief@example.com"));
    let undo = mailed_token(&srv, "email.email_changed").await;
    let owner = srv.client();
    owner.revert_email_change(&undo).await.unwrap();
    assert_eq!(anonymous.me().await.unwrap_err().status(), Some(401), "the session that moved it is over");
    assert_eq!(owner.revert_email_change(&undo).await.unwrap_err().status(), Some(400), "single use");

    let russian = user_client::Client::builder(&srv.base).locale(user_client::api::Locale::Ru).build().unwrap();
    russian.register("boris", "boris@example.com", "correct horse").await.unwrap();
    russian.login("boris", "correct horse").await.unwrap();
    assert_eq!(russian.me().await.unwrap().locale, user_client::api::Locale::Ru);
}

#[tokio::test]
async fn the_admin_api_through_the_sdk() {
    use user_client::AuditQuery;
    use user_client::api::{AccountPatch, CreateAccountRequest, Role, TaskState};

    let srv = server().await;
    let root = srv.admin("root").await;
    let admin = root.admin();
    let new = CreateAccountRequest {
        username: "carol".into(),
        email: "carol@example.com".into(),
        password: "correct horse".into(),
        role: None,
    };
    let carol = admin.create_user(&new).await.unwrap();
    assert_eq!((carol.response.status, carol.role), (201, Role::User));
    assert_eq!(admin.create_user(&new).await.unwrap_err().status(), Some(409));
    assert_eq!(admin.user(carol.id).await.unwrap().username.as_deref(), Some("carol"));
    let found = admin.search_users(Some("CAR"), Some(1), None).await.unwrap();
    assert_eq!((found.users.len(), found.users[0].id), (1, carol.id), "a prefix of any case");
    let everyone: Vec<_> = admin.users(None, 1).try_collect().await.unwrap();
    assert_eq!(everyone.len(), 2, "root and carol, a page at a time");
    assert!(admin.search_users(None, Some(0), None).await.unwrap_err().is_bad_request());
    let unknown = uuid::Uuid::now_v7();
    assert!(admin.user(unknown).await.unwrap_err().is_not_found());

    // carol signs in twice; the admin sees both sessions and ends them.
    let (laptop, phone) = (srv.client(), srv.client());
    laptop.login("carol", "correct horse").await.unwrap();
    phone.login("carol", "correct horse").await.unwrap();
    assert_eq!(admin.user_sessions(carol.id).await.unwrap().len(), 2);
    assert!(admin.user_sessions(unknown).await.unwrap_err().is_not_found());
    assert_eq!(admin.revoke_user_sessions(carol.id).await.unwrap(), 2);
    assert!(admin.user_sessions(carol.id).await.unwrap().is_empty());
    assert!(laptop.me().await.is_err(), "signed out by the admin");

    let disable = AccountPatch { disabled: Some(true), ..Default::default() };
    assert!(admin.update_user(carol.id, &disable).await.unwrap().disabled);
    assert!(admin.update_user(carol.id, &AccountPatch::default()).await.unwrap_err().is_bad_request());

    // Only a dead task can be retried: a favorite's task, pending or
    // delivered, is a conflict.
    root.add_favorites(&["t1"]).await.unwrap();
    let tasks = admin.tasks(None, Some(100), None).await.unwrap();
    let task = tasks.tasks.last().expect("a task");
    assert_ne!(task.status, TaskState::Dead);
    assert!(admin.tasks(Some(TaskState::Dead), None, None).await.unwrap().tasks.is_empty());
    assert_eq!(admin.retry_task(task.id).await.unwrap_err().status(), Some(409));
    assert!(admin.retry_task(i64::MAX).await.unwrap_err().is_not_found());

    let filter = AuditQuery { user: Some(carol.id), event: None };
    let trail = admin.audit(&filter, Some(50), None).await.unwrap();
    assert!(!trail.events.is_empty() && trail.events.iter().all(|e| e.user_id == Some(carol.id)));

    assert_eq!(admin.delete_user(carol.id).await.unwrap().status, 200);
    assert!(admin.delete_user(carol.id).await.unwrap_err().is_not_found());
    let root_id = root.me().await.unwrap().id;
    assert_eq!(admin.delete_user(root_id).await.unwrap_err().status(), Some(409), "the last admin stays");
}

#[tokio::test]
async fn a_client_can_bring_its_own_http_client_and_user_agent() {
    let srv = server().await;
    // reqwest is built without a TLS provider of its own; the SDK installs ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let own = Client::builder(&srv.base).http_client(http).build().unwrap();
    own.register("dave", "dave@example.com", "correct horse").await.unwrap();
    own.login("dave", "correct horse").await.unwrap();
    own.refresh().await.unwrap();

    let named = Client::builder(&srv.base).user_agent("jukebox/2.1").build().unwrap();
    named.login("dave", "correct horse").await.unwrap();
    let sessions = named.sessions().await.unwrap();
    assert_eq!(sessions[0].user_agent.as_deref(), Some("jukebox/2.1"));

    // No mail transport is configured: a call that sends mail is 503.
    assert!(named.forgot_password("dave@example.com").await.unwrap_err().is_unavailable());
}

#[tokio::test]
async fn a_guest_listens_then_upgrades_in_place() {
    let srv = server().await;
    let client = srv.client();
    let started = client.guest().await.unwrap();
    client.add_favorites(&["42"]).await.unwrap();
    let me = client.me().await.unwrap();
    assert!(me.guest && me.username.is_none() && me.email.is_none(), "{me:?}");
    let refused = client.update(&UpdateRequest { username: Some("sneaky".into()), ..Default::default() }).await;
    assert_eq!(refused.unwrap_err().code(), Some("registration_required"));
    let again = client.guest().await.unwrap_err();
    assert_eq!((again.status(), again.code()), (Some(409), Some("already_signed_in")));
    assert!(matches!(client.upgrade_guest("al", "a@example.com", "correct horse").await, Err(Error::Invalid(_))));
    let upgraded = client.upgrade_guest("alice", "alice@example.com", "correct horse").await.unwrap();
    assert_eq!(upgraded.id, started.id, "the same account");
    let me = client.me().await.unwrap();
    assert_eq!((me.username.as_deref(), me.guest), (Some("alice"), false));
    assert_eq!(client.list_favorites(None, None).await.unwrap().tracks[0].track_id, "42");
    let not_a_guest = client.upgrade_guest("bob", "bob@example.com", "correct horse").await.unwrap_err();
    assert_eq!(not_a_guest.code(), Some("not_a_guest"));
}

#[tokio::test]
async fn provider_calls_answer_typed_errors() {
    let srv = server().await;
    let client = srv.client();
    let unknown = client.sign_in_with_id_token("google", "header.payload.signature", "n").await.unwrap_err();
    assert_eq!(unknown.status(), Some(404), "no provider configured");
    client.register("alice", "alice@example.com", "correct horse").await.unwrap();
    client.login("alice", "correct horse").await.unwrap();
    assert_eq!(client.link_identity().await.unwrap_err().status(), Some(400), "nothing held");
    assert_eq!(client.unlink_identity("google").await.unwrap_err().status(), Some(404));
    assert!(client.security().await.unwrap().identities.is_empty());
}
