//! API.md "Admin API": accounts, sessions, tasks and the audit trail over REST.

use serde_json::json;

use crate::common::{app, req};

#[tokio::test]
async fn an_admin_finds_creates_changes_and_deletes_accounts() {
    let app = app().await;
    let root = app.admin("root").await;
    let alice = app.user("Alice").await;
    app.register("bob").await;
    let search = app.send(req("GET", "/admin/users?query=AL&limit=10").bearer(&root.access)).await;
    assert_eq!(search.status, 200, "{}", search.body);
    let names: Vec<_> = search.body["users"].as_array().unwrap().iter().map(|u| u["username"].clone()).collect();
    assert_eq!(names, [json!("Alice")]);
    let all = app.send(req("GET", "/admin/users?limit=2").bearer(&root.access)).await;
    assert_eq!(all.body["users"].as_array().unwrap().len(), 2);
    assert!(all.body["next_cursor"].is_string());

    let created = app
        .send(req("POST", "/admin/users").bearer(&root.access).json(json!({
            "username": "carol", "email": "Carol@Example.com", "password": "correct horse", "role": "admin"
        })))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["response"], json!({"message": "created", "status": 201}));
    assert_eq!(
        (created.body["role"].as_str(), created.body["email"].as_str()),
        (Some("admin"), Some("carol@example.com"))
    );
    assert_eq!(
        (created.body["email_verified"].as_bool(), created.body["disabled"].as_bool()),
        (Some(false), Some(false))
    );
    let conflict = app
        .send(req("POST", "/admin/users").bearer(&root.access).json(json!({
            "username": "CAROL", "email": "c2@example.com", "password": "correct horse"
        })))
        .await;
    conflict.error(409);
    app.send(req("POST", "/admin/users").bearer(&root.access).json(json!({"username": "dave"}))).await.error(400);

    let one = app.send(req("GET", &format!("/admin/users/{}", alice.id)).bearer(&root.access)).await;
    assert_eq!(one.status, 200);
    assert!(one.body["last_login_at"].is_string(), "alice logged in: {}", one.body);
    app.send(req("GET", "/admin/users/not-a-uuid").bearer(&root.access)).await.error(400);
    app.send(req("GET", &format!("/admin/users/{}", uuid::Uuid::now_v7())).bearer(&root.access)).await.error(404);

    let path = format!("/admin/users/{}", alice.id);
    let verified = app.send(req("PATCH", &path).bearer(&root.access).json(json!({"email_verified": true}))).await;
    assert_eq!(verified.body["email_verified"], true);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&alice.access)).await.status, 200, "verifying ends no session");
    app.send(req("PATCH", &path).bearer(&root.access).json(json!({}))).await.error(400);
    app.send(req("PATCH", &path).bearer(&root.access).json(json!({"role": "king"}))).await.error(400);
    app.send(req("PATCH", &path).bearer(&root.access).json(json!({"disabled": "yes"}))).await.error(400);
    let disabled = app.send(req("PATCH", &path).bearer(&root.access).json(json!({"disabled": true}))).await;
    assert_eq!(disabled.body["disabled"], true);
    app.send(req("GET", "/user/get").bearer(&alice.access)).await.error(401);

    let sessions = app.send(req("GET", &format!("{path}/sessions")).bearer(&root.access)).await;
    assert_eq!(sessions.body["sessions"], json!([]), "a disable ends every session");
    let revoked = app.send(req("POST", &format!("{path}/revoke-sessions")).bearer(&root.access)).await;
    assert_eq!(revoked.body, json!({"message": "success", "status": 200, "revoked": 0}));
    assert_eq!(app.send(req("DELETE", &path).bearer(&root.access)).await.status, 200);
    app.send(req("GET", &path).bearer(&root.access)).await.error(404);
    app.send(req("DELETE", &path).bearer(&root.access)).await.error(404);

    // Every change is in the audit trail with the acting admin.
    let trail = app.send(req("GET", &format!("/admin/audit?user={}", alice.id)).bearer(&root.access)).await;
    let events: Vec<_> =
        trail.body["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["account.delete", "sessions.revoke", "account.disable", "email.verification", "login.success", "register"]
    );
    for e in &trail.body["events"].as_array().unwrap()[..4] {
        assert_eq!(e["actor_id"].as_str(), Some(root.id.as_str()), "{e}");
    }
    let logins = app.send(req("GET", "/admin/audit?event=login.success&limit=1").bearer(&root.access)).await;
    assert_eq!(logins.body["events"].as_array().unwrap().len(), 1);
    let next = logins.body["next_cursor"].as_str().unwrap();
    let older =
        app.send(req("GET", &format!("/admin/audit?event=login.success&cursor={next}")).bearer(&root.access)).await;
    assert!(older.body["events"][0]["id"].as_i64() < logins.body["events"][0]["id"].as_i64(), "newest first");
    app.send(req("GET", "/admin/audit?user=nobody").bearer(&root.access)).await.error(400);
    app.send(
        req("GET", &format!("/admin/audit?cursor={}", search.body["next_cursor"].as_str().unwrap_or("dTE")))
            .bearer(&root.access),
    )
    .await
    .error(400);
}

#[tokio::test]
async fn the_admin_api_is_for_admins_of_live_sessions_only() {
    let app = app().await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    for (method, path) in [("GET", "/admin/users"), ("GET", "/admin/tasks"), ("GET", "/admin/audit")] {
        app.send(req(method, path)).await.error(401);
        app.send(req(method, path).bearer(&alice.access)).await.error(403);
    }
    let patch =
        req("PATCH", &format!("/admin/users/{}", alice.id)).bearer(&alice.access).json(json!({"role": "admin"}));
    app.send(patch).await.error(403);
    // A cookie-borne admin token from another site cannot change anything.
    let cross = req("PATCH", &format!("/admin/users/{}", alice.id))
        .cookie("access_token", &root.access)
        .header("origin", "https://evil.example")
        .json(json!({"disabled": true}));
    app.send(cross).await.error(403);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&alice.access)).await.status, 200);
    // An admin token whose session has ended opens nothing, though its role claim says admin.
    let ended = app.send(req("POST", &format!("/admin/users/{}/revoke-sessions", root.id)).bearer(&root.access)).await;
    assert_eq!(ended.body["revoked"], 1);
    app.send(req("GET", "/admin/users").bearer(&root.access)).await.error(401);
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_access_at_once_and_the_last_admin_is_kept() {
    let app = app().await;
    let root = app.admin("root").await;
    let second = app.admin("second").await;
    assert_eq!(app.send(req("GET", "/user/all").bearer(&second.access)).await.status, 200);
    let demote =
        req("PATCH", &format!("/admin/users/{}", second.id)).bearer(&root.access).json(json!({"role": "user"}));
    assert_eq!(app.send(demote).await.body["role"], "user");
    let status = app.send(req("GET", "/user/all").bearer(&second.access)).await.status;
    assert!([401, 403].contains(&status), "{status}");
    app.send(req("GET", "/admin/users").bearer(&second.access)).await.error(401);
    let me = format!("/admin/users/{}", root.id);
    let msg = app.send(req("PATCH", &me).bearer(&root.access).json(json!({"role": "user"}))).await.error(409);
    assert!(msg.contains("last active admin"), "{msg}");
    app.send(req("PATCH", &me).bearer(&root.access).json(json!({"disabled": true}))).await.error(409);
    app.send(req("DELETE", &me).bearer(&root.access)).await.error(409);
    assert_eq!(app.send(req("GET", &me).bearer(&root.access)).await.body["role"], "admin");
}

#[tokio::test]
async fn dead_tasks_are_listed_and_retried_once() {
    let app = app().await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    app.send(req("POST", "/user/track/favorite?track_id=1,2").bearer(&alice.access)).await;
    let now = chrono::Utc::now();
    let claim = app.store.claim_tasks(now, now + std::time::Duration::from_secs(60), 1).await.unwrap();
    let dead = claim.tasks[0].id;
    app.store.fail_task(claim.lease_id, dead, "HTTP 400", None, now).await.unwrap();

    let listed = app.send(req("GET", "/admin/tasks?status=dead").bearer(&root.access)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let task = &listed.body["tasks"][0];
    assert_eq!(
        (task["id"].as_i64(), task["status"].as_str(), task["last_error"].as_str()),
        (Some(dead), Some("dead"), Some("HTTP 400"))
    );
    assert_eq!((task["kind"].as_str(), task["user_id"].as_str()), (Some("favorite.added"), Some(alice.id.as_str())));
    assert!(task["created_at"].is_string() && task["next_attempt_at"].is_string());
    let page = app.send(req("GET", "/admin/tasks?limit=1").bearer(&root.access)).await;
    let next = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app.send(req("GET", &format!("/admin/tasks?limit=1&cursor={next}")).bearer(&root.access)).await;
    assert!(rest.body["tasks"][0]["id"].as_i64() > page.body["tasks"][0]["id"].as_i64(), "id order");
    app.send(req("GET", "/admin/tasks?status=lost").bearer(&root.access)).await.error(400);

    let retry = |id: &str| req("POST", &format!("/admin/tasks/{id}/retry")).bearer(&root.access);
    assert_eq!(app.send(retry(&dead.to_string())).await.status, 200);
    let msg = app.send(retry(&dead.to_string())).await.error(409);
    assert!(msg.contains("only a dead task"), "{msg}");
    app.send(retry("999999")).await.error(404);
    app.send(retry("abc")).await.error(400);
    let pending = app.send(req("GET", "/admin/tasks?status=pending").bearer(&root.access)).await;
    assert_eq!(pending.body["tasks"].as_array().unwrap().len(), 2);
    let audit = app.send(req("GET", "/admin/audit?event=task.retry").bearer(&root.access)).await;
    assert_eq!(audit.body["events"][0]["detail"], format!("task {dead}"));
}

#[tokio::test]
async fn search_and_audit_filters_refuse_what_no_store_can_hold() {
    let app = app().await;
    let root = app.admin("root").await;
    let long = "a".repeat(255);
    for path in [
        "/admin/users?query=a%00b",
        &format!("/admin/users?query={long}"),
        "/admin/audit?event=a%00b",
        "/admin/audit?event=",
    ] {
        app.send(req("GET", path).bearer(&root.access)).await.error(400);
    }
    let found = app.send(req("GET", "/admin/users?query=%25").bearer(&root.access)).await;
    assert_eq!(found.body["users"], json!([]), "a % is a character, not a wildcard");
}

#[tokio::test]
async fn an_explicit_null_is_a_mistyped_field() {
    let app = app().await;
    let root = app.admin("root").await;
    let path = format!("/admin/users/{}", root.id);
    let msg = app
        .send(req("PATCH", &path).bearer(&root.access).json(json!({"role": null, "email_verified": true})))
        .await
        .error(400);
    assert!(msg.contains("role"), "{msg}");
    let update =
        req("PUT", "/user/update").bearer(&root.access).json(json!({"username": null, "email": "r@example.com"}));
    app.send(update).await.error(400);
}
