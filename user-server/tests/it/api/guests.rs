//! Guest accounts: `POST /user/guest`, what a guest may and may not do,
//! the upgrade in place, the limits.

use super::*;
use crate::common::{Reply, TestApp};
use user_core::service::GuestPolicy;
use user_server::security::{GuestCap, Policy, Throttle};

/// A new guest's answer.
async fn guest(app: &TestApp) -> Reply {
    let reply = app.send(req("POST", "/user/guest")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
}

fn token(reply: &Reply) -> String {
    reply.body["token"].as_str().unwrap().to_owned()
}

fn upgrade_body(name: &str) -> serde_json::Value {
    json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse"})
}

#[tokio::test]
async fn a_guest_is_an_account_without_name_address_or_password_signed_in_with_no_methods() {
    let app = app().await;
    let reply = guest(&app).await;
    assert_eq!(reply.body["response"], json!({"message": "success login", "status": 200}));
    assert!(reply.cookie("access_token").contains("HttpOnly"), "{:?}", reply.cookies());
    assert!(!reply.cookie_value("refresh_token").is_empty());
    let access = token(&reply);
    let c = claims(&access);
    assert_eq!((c["role"].as_str(), c["amr"].clone()), (Some("guest"), json!([])));
    let me = app.send(req("GET", "/user/get").bearer(&access)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!((me.body["username"].clone(), me.body["email"].clone()), (json!(null), json!(null)));
    assert_eq!((me.body["guest"].clone(), me.body["role"].clone()), (json!(true), json!("guest")));
    assert_eq!(me.body["id"], reply.body["id"]);
    // An account's answer keeps v1's fields: no `guest` key.
    let alice = app.user("alice").await;
    let me = app.send(req("GET", "/user/get").bearer(&alice.access)).await;
    assert!(me.body.get("guest").is_none(), "{}", me.body);
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "guest.create"), "audited");
}

#[tokio::test]
async fn a_guest_keeps_favorites_and_sessions_and_may_delete_itself() {
    let app = app().await;
    let access = token(&guest(&app).await);
    let add = app.send(req("POST", "/user/track/favorite?track_id=a,b").bearer(&access)).await;
    assert_eq!(add.status, 200, "{}", add.body);
    let list = app.send(req("GET", "/user/track/favorite").bearer(&access)).await;
    assert_eq!(list.body["tracks"].as_array().unwrap().len(), 2);
    let sessions = app.send(req("GET", "/user/sessions").bearer(&access)).await;
    assert_eq!(sessions.status, 200, "{}", sessions.body);
    assert_eq!(sessions.body["sessions"][0]["amr"], json!([]));
    // Recent for deleting however long ago it began: a guest has nothing to prove.
    app.clock.advance(Duration::from_secs(11 * 60));
    let deleted = app.send(req("DELETE", "/user/delete").bearer(&access)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(app.tasks().await.iter().any(|t| t.kind == TaskKind::UserDeleted));
}

#[tokio::test]
async fn every_other_route_refuses_a_guest_with_registration_required() {
    let app = app().await;
    let access = token(&guest(&app).await);
    for (method, path, body) in [
        ("PUT", "/user/update", json!({"username": "sneaky"})),
        ("GET", "/user/security", json!(null)),
        ("POST", "/user/totp/enroll", json!(null)),
        ("POST", "/user/passkeys/register/start", json!({})),
        ("POST", "/user/reauth", json!({"password": "correct horse"})),
        ("POST", "/user/email/verify/request", json!(null)),
        ("GET", "/user/all", json!(null)),
        ("GET", "/admin/users", json!(null)),
    ] {
        let mut request = req(method, path).bearer(&access);
        if !body.is_null() {
            request = request.json(body);
        }
        let reply = app.send(request).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["code"], "registration_required", "{method} {path}");
    }
    let approve =
        app.send(req("POST", "/user/device/approve").bearer(&access).json(json!({"user_code": "BCDF-GHJK"}))).await;
    assert_eq!((approve.status, approve.body["code"].as_str()), (403, Some("access_denied")), "{}", approve.body);
}

#[tokio::test]
async fn a_signed_in_client_gets_no_guest_and_a_foreign_page_cannot_make_one() {
    let app = app().await;
    let alice = app.user("alice").await;
    for request in [
        req("POST", "/user/guest").bearer(&alice.access),
        req("POST", "/user/guest").cookie("refresh_token", &alice.refresh),
    ] {
        let reply = app.send(request).await;
        assert_eq!((reply.status, reply.body["code"].as_str()), (409, Some("already_signed_in")), "{}", reply.body);
    }
    let first = token(&guest(&app).await);
    let again = app.send(req("POST", "/user/guest").bearer(&first)).await;
    assert_eq!(again.status, 409, "a guest is signed in too");
    let foreign = app.send(req("POST", "/user/guest").header("origin", "https://evil.example")).await;
    assert_eq!(foreign.status, 403, "login CSRF: {}", foreign.body);
}

#[tokio::test]
async fn an_upgrade_keeps_id_favorites_and_sessions_and_answers_like_a_login() {
    let app = app().await;
    let created = guest(&app).await;
    let (id, access) = (created.body["id"].clone(), token(&created));
    let refresh = created.cookie_value("refresh_token");
    app.send(req("POST", "/user/track/favorite?track_id=42").bearer(&access)).await;
    let upgraded = app.send(req("POST", "/user/guest/upgrade").bearer(&access).json(upgrade_body("alice"))).await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    assert_eq!(upgraded.body["id"], id, "the same account");
    assert_eq!(upgraded.body["response"], json!({"message": "success login", "status": 200}));
    let new_access = token(&upgraded);
    assert_eq!(claims(&new_access)["role"], "user");
    assert_eq!(claims(&new_access)["sid"], claims(&access)["sid"], "the same session");
    assert_ne!(upgraded.cookie_value("refresh_token"), refresh, "a new refresh token");
    let me = app.send(req("GET", "/user/get").bearer(&new_access)).await;
    assert_eq!((me.body["username"].as_str(), me.body["email"].as_str()), (Some("alice"), Some("alice@example.com")));
    assert!(me.body.get("guest").is_none());
    // The guest's old access token names the same session: now an account's.
    let favorites = app.send(req("GET", "/user/track/favorite").bearer(&access)).await;
    assert_eq!(favorites.body["tracks"][0]["track_id"], "42", "favorites kept");
    app.login("alice").await;
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "guest.upgrade"), "audited");
    // Upgraded once: a second upgrade is an account's, refused.
    let again = app.send(req("POST", "/user/guest/upgrade").bearer(&new_access).json(upgrade_body("bob"))).await;
    assert_eq!((again.status, again.body["code"].as_str()), (403, Some("not_a_guest")), "{}", again.body);
}

#[tokio::test]
async fn an_upgrade_is_validated_as_a_registration_and_loses_nothing_when_refused() {
    let app = app().await;
    app.register("taken").await;
    let access = token(&guest(&app).await);
    app.send(req("POST", "/user/track/favorite?track_id=7").bearer(&access)).await;
    let upgrade = |body: serde_json::Value| req("POST", "/user/guest/upgrade").bearer(&access).json(body);
    for (body, field) in [
        (json!({"username": "ab", "email": "a@example.com", "password": "correct horse"}), "username"),
        (json!({"username": "alice", "email": "nope", "password": "correct horse"}), "email"),
        (json!({"username": "alice", "email": "a@example.com", "password": "short"}), "password"),
        (json!({"username": "alice", "email": "a@example.com", "password": "password123"}), "password"),
        (json!({"username": "alice", "email": "a@example.com"}), "password"),
    ] {
        let msg = app.send(upgrade(body)).await.error(400);
        assert!(msg.contains(field), "{field}: {msg}");
    }
    app.send(upgrade(upgrade_body("TAKEN"))).await.error(409);
    let same_address = json!({"username": "fresh", "email": "taken@example.com", "password": "correct horse"});
    app.send(upgrade(same_address)).await.error(409);
    let me = app.send(req("GET", "/user/get").bearer(&access)).await;
    assert_eq!(me.body["guest"], true, "still a guest");
    let favorites = app.send(req("GET", "/user/track/favorite").bearer(&access)).await;
    assert_eq!(favorites.body["tracks"][0]["track_id"], "7", "nothing lost");
    // Only a guest upgrades.
    let alice = app.user("alice").await;
    let reply = app.send(req("POST", "/user/guest/upgrade").bearer(&alice.access).json(upgrade_body("x_alice"))).await;
    assert_eq!(reply.status, 403);
    app.send(req("POST", "/user/guest/upgrade").json(upgrade_body("nobody"))).await.error(401);
}

#[tokio::test]
async fn twelve_upgrades_at_once_make_one_account() {
    let app = app().await;
    let access = token(&guest(&app).await);
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (state, barrier, access) = (app.state.clone(), barrier.clone(), access.clone());
            tokio::spawn(async move {
                let body = json!({"username": format!("racer{i}"), "email": format!("racer{i}@example.com"), "password": "correct horse"});
                let request = warp::test::request()
                    .method("POST")
                    .path("/user/guest/upgrade")
                    .header("authorization", format!("Bearer {access}"))
                    .header("content-type", "application/json")
                    .body(body.to_string());
                barrier.wait().await;
                request.reply(&user_server::routes(state)).await.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    let guests = app.send(req("GET", "/admin/users?guest=true").bearer(&app.admin("root").await.access)).await;
    assert_eq!(guests.body["users"], json!([]), "no guest left");
}

#[tokio::test]
async fn a_guest_keeps_at_most_the_configured_favorites() {
    let config = user_core::ServiceConfig { guests: GuestPolicy { max_favorites: 3 }, ..config() };
    let app = app_with(config).await;
    let access = token(&guest(&app).await);
    let add = |ids: &str| req("POST", &format!("/user/track/favorite?track_id={ids}")).bearer(&access);
    assert_eq!(app.send(add("a,b")).await.status, 200);
    let over = app.send(add("c,d")).await;
    assert_eq!((over.status, over.body["code"].as_str()), (403, Some("guest_limit")), "{}", over.body);
    assert_eq!(app.send(add("c")).await.status, 200, "up to the limit");
    // An account has no such limit.
    let upgraded = app.send(req("POST", "/user/guest/upgrade").bearer(&access).json(upgrade_body("alice"))).await;
    assert_eq!(app.send(add("d,e")).await.status, 200, "{}", upgraded.body);
}

#[tokio::test]
async fn guests_are_limited_per_client_address_and_overall() {
    let mut app = app().await;
    let plenty: user_server::security::Rate = "100/min".parse().unwrap();
    let two_an_hour = "2/h".parse().unwrap();
    app.state.policy = Arc::new(Policy {
        throttle: Some(Throttle::new([plenty, plenty, plenty, plenty, plenty, two_an_hour])),
        guest_cap: GuestCap::new(3),
        ..Policy::default()
    });
    let from = |ip: &str| {
        let addr = format!("{ip}:40000").parse().unwrap();
        crate::common::Req::from(warp::test::request().method("POST").path("/user/guest").remote_addr(addr))
    };
    assert_eq!(app.send(from("192.0.2.1")).await.status, 200);
    assert_eq!(app.send(from("192.0.2.1")).await.status, 200);
    let limited = app.send(from("192.0.2.1")).await;
    limited.error(429);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(app.send(from("192.0.2.2")).await.status, 200, "another address has its own budget");
    let overall = app.send(from("192.0.2.3")).await;
    overall.error(429);
    app.state.policy = Arc::new(Policy { guest_cap: GuestCap::new(0), ..Policy::default() });
    let off = app.send(req("POST", "/user/guest")).await;
    assert_eq!((off.status, off.body["code"].as_str()), (403, Some("guests_off")));
}

#[tokio::test]
async fn admins_filter_guests_and_user_all_never_lists_them() {
    let app = app().await;
    let root = app.admin("root").await;
    let g = guest(&app).await;
    let list = |q: &str| req("GET", &format!("/admin/users{q}")).bearer(&root.access);
    let all = app.send(list("")).await;
    let entries = all.body["users"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0]["guest"].clone(), entries[1]["guest"].clone()), (json!(false), json!(true)));
    assert_eq!(entries[1]["id"], g.body["id"]);
    assert_eq!(entries[1]["username"], json!(null));
    let only = app.send(list("?guest=true")).await;
    assert_eq!(only.body["users"].as_array().unwrap().len(), 1);
    let none = app.send(list("?guest=false")).await;
    assert_eq!(none.body["users"][0]["username"], "root");
    assert_eq!(none.body["users"].as_array().unwrap().len(), 1);
    app.send(list("?guest=maybe")).await.error(400);
    let v1 = app.send(req("GET", "/user/all").bearer(&root.access)).await;
    assert_eq!(v1.body["users"].as_array().unwrap().len(), 1, "no guest in /user/all");
    // An admin cannot make an account a guest, nor a guest an account.
    let guest_id = g.body["id"].as_str().unwrap();
    let to_user = json!({"role": "user"});
    let reply = app.send(req("PATCH", &format!("/admin/users/{guest_id}")).bearer(&root.access).json(to_user)).await;
    let msg = reply.error(400);
    assert!(msg.starts_with("role:"), "{msg}");
    let alice = app.register("alice").await;
    let alice_id = alice.body["id"].as_str().unwrap();
    let to_guest = json!({"role": "guest"});
    let reply = app.send(req("PATCH", &format!("/admin/users/{alice_id}")).bearer(&root.access).json(to_guest)).await;
    assert!(reply.error(400).starts_with("role:"));
    let create = json!({"username": "guest2", "email": "g2@example.com", "password": "correct horse", "role": "guest"});
    let reply = app.send(req("POST", "/admin/users").bearer(&root.access).json(create)).await;
    let msg = reply.error(400);
    assert!(msg.starts_with("role:"), "{msg}");
}

#[tokio::test]
async fn a_guest_session_has_no_absolute_end_and_is_exempt_from_the_mfa_policy() {
    let config = user_core::ServiceConfig {
        mfa: user_core::service::MfaPolicy {
            required: user_core::service::MfaRequired::All,
            ..user_core::service::MfaPolicy::default()
        },
        ..config()
    };
    let app = app_with(config).await;
    let created = guest(&app).await;
    let access = token(&created);
    let add = app.send(req("POST", "/user/track/favorite?track_id=1").bearer(&access)).await;
    assert_eq!(add.status, 200, "not restricted: {}", add.body);
    // Refreshed every week for a hundred days: past the 90-day absolute lifetime.
    let mut refresh = created.cookie_value("refresh_token");
    for _ in 0..15 {
        app.clock.advance(Duration::from_secs(7 * 24 * 3600));
        let reply = app.send(req("POST", "/user/refresh").cookie("refresh_token", &refresh)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        refresh = reply.cookie_value("refresh_token");
    }
}

#[tokio::test]
async fn signing_in_with_merge_guest_moves_the_guest_s_favorites_and_deletes_it() {
    let app = app().await;
    app.register("alice").await;
    let created = guest(&app).await;
    let access = token(&created);
    app.send(req("POST", "/user/track/favorite?track_id=1,2").bearer(&access)).await;
    let login = json!({"username": "alice", "password": "correct horse", "merge_guest": true});
    let signed_in = app.send(req("POST", "/user/login").bearer(&access).json(login)).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let alice = signed_in.body["token"].as_str().unwrap();
    let favorites = app.send(req("GET", "/user/track/favorite").bearer(alice)).await;
    assert_eq!(favorites.body["tracks"].as_array().unwrap().len(), 2, "moved");
    app.send(req("GET", "/user/get").bearer(&access)).await.error(401);
    let audit = app.store.list_audit(&Default::default(), None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "guest.merge"));
    // Without the flag, or without a guest session, nothing merges.
    let other = guest(&app).await;
    let plain = json!({"username": "alice", "password": "correct horse"});
    app.send(req("POST", "/user/login").bearer(&token(&other)).json(plain)).await;
    assert_eq!(me_status(&app, &token(&other)).await, 200, "the guest lives on");
    let bob = app.user("bob").await;
    let not_a_guest = json!({"username": "alice", "password": "correct horse", "merge_guest": true});
    assert_eq!(app.send(req("POST", "/user/login").bearer(&bob.access).json(not_a_guest)).await.status, 200);
    assert_eq!(me_status(&app, &bob.access).await, 200, "an account is never merged");
}

async fn me_status(app: &TestApp, access: &str) -> u16 {
    app.send(req("GET", "/user/get").bearer(access)).await.status
}
