//! The admin listing and the operations routes.

use super::*;

// ---------------------------------------------------------------------- admin

#[tokio::test]
async fn listing_users_needs_the_admin_role_in_the_token() {
    let app = app().await;
    let user = app.user("alice").await;
    app.send(req("GET", "/user/all").bearer(&user.access)).await.error(403);
    app.send(req("GET", "/user/all")).await.error(401);
}

#[tokio::test]
async fn admins_list_users_oldest_first_page_by_page() {
    let app = app().await;
    let admin = app.admin("root").await;
    for name in ["alice", "bob", "carol"] {
        app.register(name).await;
    }
    let first = app.send(req("GET", "/user/all?limit=3").bearer(&admin.access)).await;
    assert_eq!(first.status, 200);
    let names: Vec<_> =
        first.body["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["root", "alice", "bob"]);
    let mut keys: Vec<_> = first.body["users"][0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "email", "email_verified", "id", "locale", "role", "username"]);
    assert_eq!(first.body["users"][0]["role"], "admin");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = app.send(req("GET", &format!("/user/all?limit=3&cursor={cursor}")).bearer(&admin.access)).await;
    assert_eq!(rest.body["users"][0]["username"], "carol");
    assert_eq!(rest.body["next_cursor"], json!(null));
    let default = app.send(req("GET", "/user/all").bearer(&admin.access)).await;
    assert_eq!(default.body["users"].as_array().unwrap().len(), 4);
    for bad in ["limit=0", "limit=101", "limit=-5", "cursor=nope", "limit=1&limit=2"] {
        app.send(req("GET", &format!("/user/all?{bad}")).bearer(&admin.access)).await.error(400);
    }
}

// ----------------------------------------------------------------- operations

#[tokio::test]
async fn health_and_readiness_answer_main_responses() {
    let app = app().await;
    let health = app.send(req("GET", "/healthz")).await;
    assert_eq!((health.status, health.body["status"].clone()), (200, json!(200)));
    // HEAD answers as GET does (a real server then leaves the body out).
    assert_eq!(app.send(req("HEAD", "/healthz")).await.status, 200);
    assert_eq!(app.send(req("HEAD", "/user/get")).await.status, 401);
    assert_eq!(app.send(req("GET", "/readyz")).await.status, 200);
    app.db.break_schema();
    let down = app.send(req("GET", "/readyz")).await;
    down.error(503);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_requests_and_logins() {
    let app = app().await;
    app.user("alice").await;
    app.send(req("POST", "/user/login").json(json!({"username": "alice", "password": "wrong horse"}))).await;
    let reply = app.send(req("GET", "/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8_lossy(&reply.raw);
    assert!(text.contains("http_requests_total{route=\"POST /user/login\",status=\"200\"}"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("login_attempts_total{outcome=\"wrong_password\"}"), "{text}");
}

#[tokio::test]
async fn metrics_report_the_task_queue_and_its_deliveries() {
    let app = app().await;
    let session = app.user("alice").await;
    app.send(req("POST", "/user/track/favorite?track_id=1,2").bearer(&session.access)).await;
    let store: Arc<dyn user_core::store::Store> = app.store.clone();
    let relay = user_core::tasks::Relay::new(store, Arc::new(user_core::tasks::LogSink), Default::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { relay.run(async { stopped.await.unwrap_or(()) }).await });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let reply = app.send(req("GET", "/metrics")).await;
        let text = String::from_utf8_lossy(&reply.raw).into_owned();
        if text.contains("task_deliveries_total{outcome=\"delivered\"} 2") && text.contains("tasks_queue_depth") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no task metrics: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    stop.send(()).unwrap();
    running.await.unwrap();
    assert!(text.contains("tasks_queue_depth{status=\"pending\"}"), "{text}");
    assert!(text.contains("tasks_queue_depth{status=\"dead\"} 0"), "{text}");
    assert!(text.contains("task_delivery_seconds"), "{text}");
}

#[tokio::test]
async fn the_committed_openapi_document_is_the_one_served() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    let served = serde_json::to_string_pretty(user_server::openapi_document()).unwrap() + "\n";
    assert!(
        committed == served,
        "docs/openapi.json is stale; regenerate it with\n  cargo run -q -p user-server -- --print-openapi > docs/openapi.json"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = app().await;
    let doc = app.send(req("GET", "/openapi.json")).await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let table = user_server::route_table();
    assert_eq!(table.len(), 71, "a new route: add it to API.md's tests too");
    for (method, path) in table {
        let operation = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} missing");
        // Every route answers with something of its own, never 404 or 405.
        let concrete = path
            .replace("{track_id}", "42")
            .replace("/admin/users/{id}", "/admin/users/01a21f00-1bab-736f-b150-71c77ecd6bb4")
            .replace("{id}", "1");
        let status = app.send(req(method.as_str(), &concrete)).await.status;
        assert!(![404, 405].contains(&status) || path == "/.well-known/jwks.json", "{method} {path}: {status}");
        assert!(operation["responses"][status.to_string()].is_object(), "{method} {path}: {status} undocumented");
    }
    assert!(doc["components"]["schemas"]["MainResponse"].is_object());
    // Every reference resolves, so an outside tester sees every schema.
    fn refs(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    found.push(r.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
        assert!(doc["components"]["schemas"][name].is_object(), "unresolvable {r}");
    }
}

#[tokio::test]
async fn jwks_is_published_only_for_eddsa() {
    let hs = app().await;
    hs.send(req("GET", "/.well-known/jwks.json")).await.error(404);
    let ed = app_with(ServiceConfig { signing: SigningConfig::GeneratedEd25519, ..config() }).await;
    let jwks = ed.send(req("GET", "/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
    let session = ed.user("alice").await;
    let header: serde_json::Value = {
        use base64::Engine as _;
        let h = session.access.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], jwks.body["keys"][0]["kid"]);
}

#[tokio::test]
async fn paths_match_segment_by_segment_with_one_optional_trailing_slash() {
    let app = app().await;
    for (method, path, status, allow) in [
        ("GET", "/user/get/", 401, None),
        ("GET", "/user/get?x=1", 401, None),
        ("GET", "//user/get", 404, None),
        ("GET", "/user//get", 404, None),
        ("GET", "/USER/GET", 404, None),
        ("GET", "/", 404, None),
        ("GET", "/healthz/", 200, None),
        ("GET", "/user/track/favorite/", 401, None),
        ("POST", "/user/track/favorite/", 401, None),
        ("POST", "/user/track/favorite//", 404, None),
        ("POST", "/user/track/favorite/a%2Fb", 401, None),
        ("POST", "/user/track/favorite/a/b", 404, None),
        // `contains` names the lookup route, never a track in the path.
        ("POST", "/user/track/favorite/contains", 405, Some("GET, HEAD")),
        ("GET", "/user/track/favorite/contains/", 401, None),
        ("OPTIONS", "/user/get", 405, Some("GET, HEAD")),
        ("PATCH", "/user/update", 405, Some("PUT")),
    ] {
        let reply = app.send(req(method, path)).await;
        assert_eq!((reply.status, reply.header("allow")), (status, allow), "{method} {path}");
    }
}
