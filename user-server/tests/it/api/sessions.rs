//! Sessions and devices (v1.1): list, sign one out, sign the others out.

use super::*;

#[tokio::test]
async fn a_user_sees_their_live_sessions_newest_first_with_the_current_one_marked() {
    let app = app().await;
    app.register("alice").await;
    let tv = app
        .send(
            req("POST", "/user/login")
                .json(json!({"username": "alice", "password": "correct horse", "device_name": "Living room TV"})),
        )
        .await;
    assert_eq!(tv.status, 200, "{}", tv.body);
    app.clock.advance(Duration::from_secs(1));
    let phone = app.login("alice").await;
    app.user("bob").await;

    let reply = app.send(req("GET", "/user/sessions").bearer(&phone.access)).await;
    assert_eq!((reply.status, reply.body["response"]["status"].clone()), (200, json!(200)));
    let sessions = reply.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "alice's live sessions only: {sessions:?}");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["device_name"], serde_json::Value::Null);
    assert_eq!(
        (sessions[1]["current"].clone(), sessions[1]["device_name"].clone()),
        (json!(false), json!("Living room TV"))
    );
    for field in ["id", "created_at", "last_used_at", "ip", "user_agent"] {
        assert!(sessions[0].get(field).is_some(), "{field}");
    }
    assert_eq!(claims(&phone.access)["sid"], sessions[0]["id"]);
}

#[tokio::test]
async fn signing_one_session_out_ends_it_and_only_the_callers_own_can_be_named() {
    let app = app().await;
    let tv = app.user("alice").await;
    let phone = app.login("alice").await;
    let bob = app.user("bob").await;
    let tv_id = claims(&tv.access)["sid"].as_str().unwrap().to_owned();
    let bob_id = claims(&bob.access)["sid"].as_str().unwrap().to_owned();

    // Someone else's session, an unknown one and a non-id are refused, and end nothing.
    let foreign = app.send(req("DELETE", &format!("/user/sessions/{bob_id}")).bearer(&phone.access)).await;
    assert_eq!(foreign.error(404), "session not found");
    app.send(req("DELETE", &format!("/user/sessions/{}", uuid::Uuid::now_v7())).bearer(&phone.access)).await.error(404);
    let msg = app.send(req("DELETE", "/user/sessions/not-a-session").bearer(&phone.access)).await.error(400);
    assert!(msg.starts_with("id:"), "{msg}");
    assert_eq!(app.send(req("GET", "/user/get").bearer(&bob.access)).await.status, 200);

    let ended = app.send(req("DELETE", &format!("/user/sessions/{tv_id}")).bearer(&phone.access)).await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    app.send(req("GET", "/user/get").bearer(&tv.access)).await.error(401);
    app.send(req("DELETE", &format!("/user/sessions/{tv_id}")).bearer(&phone.access)).await.error(404);
    assert_eq!(app.send(req("GET", "/user/get").bearer(&phone.access)).await.status, 200);
}

#[tokio::test]
async fn signing_the_others_out_keeps_the_callers_session() {
    let app = app().await;
    let first = app.user("alice").await;
    let second = app.login("alice").await;
    let me = app.login("alice").await;
    let bob = app.user("bob").await;
    let reply = app.send(req("POST", "/user/sessions/revoke-others").bearer(&me.access)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({"message": "success", "status": 200, "revoked": 2}));
    for gone in [&first, &second] {
        app.send(req("GET", "/user/get").bearer(&gone.access)).await.error(401);
    }
    for kept in [&me, &bob] {
        assert_eq!(app.send(req("GET", "/user/get").bearer(&kept.access)).await.status, 200);
    }
    let again = app.send(req("POST", "/user/sessions/revoke-others").bearer(&me.access)).await;
    assert_eq!(again.body["revoked"], 0);
}

#[tokio::test]
async fn session_routes_need_a_token_and_refuse_cross_site_cookie_writes() {
    let app = app().await;
    let s = app.user("alice").await;
    for (method, path) in [("GET", "/user/sessions"), ("POST", "/user/sessions/revoke-others")] {
        app.send(req(method, path)).await.error(401);
    }
    let cross_site = req("POST", "/user/sessions/revoke-others")
        .cookie("access_token", &s.access)
        .header("origin", "https://evil.example");
    app.send(cross_site).await.error(403);
    // `revoke-others` names its route: DELETE on it is 405, not a session id.
    let reply = app.send(req("DELETE", "/user/sessions/revoke-others").bearer(&s.access)).await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
}

#[tokio::test]
async fn a_bad_device_name_is_400_naming_it_and_opens_no_session() {
    let app = app().await;
    app.register("alice").await;
    for bad in [json!(""), json!("   "), json!("x".repeat(65)), json!("tab\there"), json!(42)] {
        let body = json!({"username": "alice", "password": "correct horse", "device_name": bad});
        let msg = app.send(req("POST", "/user/login").json(body)).await.error(400);
        assert!(msg.starts_with("device_name"), "{bad}: {msg}");
    }
    let s = app.login("alice").await;
    let sessions = app.send(req("GET", "/user/sessions").bearer(&s.access)).await;
    assert_eq!(sessions.body["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn last_used_at_is_the_last_login_or_refresh_and_reading_writes_nothing() {
    let app = app().await;
    let s = app.user("alice").await;
    let listed = |access: String| {
        let app = &app;
        async move {
            let reply = app.send(req("GET", "/user/sessions").bearer(&access)).await;
            let session = reply.body["sessions"][0].clone();
            (session["created_at"].as_str().unwrap().to_owned(), session["last_used_at"].as_str().unwrap().to_owned())
        }
    };
    let (created, used) = listed(s.access.clone()).await;
    assert_eq!(created, used, "a login is a use");
    // Authenticated reads do not touch it: no write on the hot path.
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(app.send(req("GET", "/user/get").bearer(&s.access)).await.status, 200);
    assert_eq!(listed(s.access.clone()).await, (created.clone(), used.clone()));
    // A refresh does.
    app.clock.advance(Duration::from_secs(60));
    let refreshed = app.send(req("POST", "/user/refresh").cookie("refresh_token", &s.refresh)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let (created_after, used_after) = listed(refreshed.body["token"].as_str().unwrap().to_owned()).await;
    assert_eq!(created_after, created);
    let moved = chrono::DateTime::parse_from_rfc3339(&used_after).unwrap()
        - chrono::DateTime::parse_from_rfc3339(&used).unwrap();
    assert_eq!(moved.num_seconds(), 120, "the refresh's time: {used} -> {used_after}");
}
