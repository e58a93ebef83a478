//! OpenTelemetry: the built server exports its spans over OTLP/HTTP to a
//! receiver on 127.0.0.1, continues the caller's `traceparent`, and the
//! outbox carries the trace to the webhook delivery.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warp::Filter;

use crate::common::process::{SECRET, Server, eventually};

/// The caller's trace, as a client would send it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One exported span, as OTLP/JSON gives it.
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's enum: 2 server, 3 client, 4 producer.
    pub kind: i64,
    pub attributes: Vec<(String, Value)>,
    pub service: String,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// What an OTLP/HTTP receiver has been sent.
#[derive(Default)]
pub struct Otlp {
    pub spans: Vec<ExportedSpan>,
    /// Bodies that were not OTLP/JSON, by content type.
    pub other: Vec<String>,
    /// Every body, as text, to look for what must never be exported.
    pub raw: String,
}

/// A receiver of `POST /v1/traces` on 127.0.0.1: its base URL and what it got.
pub async fn start_otlp_receiver() -> (String, Arc<Mutex<Otlp>>) {
    let received = Arc::new(Mutex::new(Otlp::default()));
    let sink = received.clone();
    let route = warp::post()
        .and(warp::path!("v1" / "traces"))
        .and(warp::header::<String>("content-type"))
        .and(warp::body::bytes())
        .map(move |content_type: String, body: bytes::Bytes| {
            let mut otlp = sink.lock().unwrap();
            if content_type != "application/json" {
                otlp.other.push(content_type);
                return warp::reply::json(&serde_json::json!({}));
            }
            otlp.raw.push_str(&String::from_utf8_lossy(&body));
            let export: Value = serde_json::from_slice(&body).unwrap();
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                let service = attributes(&resource["resource"]["attributes"])
                    .into_iter()
                    .find(|(k, _)| k == "service.name")
                    .and_then(|(_, v)| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        otlp.spans.push(ExportedSpan {
                            trace_id: span["traceId"].as_str().unwrap_or_default().to_lowercase(),
                            span_id: span["spanId"].as_str().unwrap_or_default().to_lowercase(),
                            parent_span_id: span["parentSpanId"].as_str().unwrap_or_default().to_lowercase(),
                            name: span["name"].as_str().unwrap_or_default().to_owned(),
                            kind: span["kind"].as_i64().unwrap_or_default(),
                            attributes: attributes(&span["attributes"]),
                            service: service.clone(),
                        });
                    }
                }
            }
            warp::reply::json(&serde_json::json!({}))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), received)
}

/// OTLP/JSON attributes as (key, value), the value unwrapped from its
/// `{"stringValue": …}` / `{"intValue": …}` envelope.
fn attributes(list: &Value) -> Vec<(String, Value)> {
    let unwrap = |v: &Value| v.as_object().and_then(|o| o.values().next().cloned()).unwrap_or(Value::Null);
    list.as_array()
        .into_iter()
        .flatten()
        .map(|kv| (kv["key"].as_str().unwrap_or_default().to_owned(), unwrap(&kv["value"])))
        .collect()
}

/// A webhook receiver that keeps each delivery's `traceparent` header.
async fn start_traced_webhook() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let route = warp::post().and(warp::header::optional::<String>("traceparent")).map(move |tp: Option<String>| {
        sink.lock().unwrap().push(tp);
        warp::http::StatusCode::NO_CONTENT
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/tasks"), seen)
}

/// The environment that exports every span to `otlp` as JSON, quickly.
pub fn otel_env(otlp: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ("OTEL_SERVICE_NAME", "users-under-test".to_owned()),
    ]
}

/// Registers and signs in `alice`; her access token.
pub async fn alice(client: &reqwest::Client, base: &str) -> String {
    let body = serde_json::json!({"username": "alice", "password": "correct horse", "email": "alice@example.com"});
    assert_eq!(client.post(format!("{base}/user/register")).json(&body).send().await.unwrap().status(), 200);
    let login = serde_json::json!({"username": "alice", "password": "correct horse"});
    let reply: Value =
        client.post(format!("{base}/user/login")).json(&login).send().await.unwrap().json().await.unwrap();
    reply["token"].as_str().unwrap().to_owned()
}

/// The caller's `traceparent`.
pub fn caller_traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

async fn the_callers_trace_reaches_the_collector_and_the_webhook(database: String) {
    let (otlp, exported) = start_otlp_receiver().await;
    let (webhook, deliveries) = start_traced_webhook().await;
    let mut env = otel_env(&otlp);
    env.extend([
        ("USER_DATABASE_URL", database),
        ("USER_TASKS_WEBHOOK_URL", webhook),
        ("USER_TASKS_WEBHOOK_SECRET", SECRET.to_owned()),
    ]);
    let server = Server::start(&env);
    let client = crate::common::http().build().unwrap();
    let token = alice(&client, &server.base).await;
    let me: Value =
        client.get(format!("{}/user/get", server.base)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let user_id = me["id"].as_str().unwrap().to_owned();

    let add = client
        .post(format!("{}/user/track/favorite?track_id=42", server.base))
        .bearer_auth(&token)
        .header("traceparent", caller_traceparent());
    assert_eq!(add.send().await.unwrap().status(), 200);

    let spans_of_trace = || -> Vec<ExportedSpan> {
        exported.lock().unwrap().spans.iter().filter(|s| s.trace_id == TRACE_ID).cloned().collect()
    };
    eventually("the request, store and delivery spans", Duration::from_secs(30), || {
        let spans = spans_of_trace();
        ["POST /user/track/favorite", "add_favorites", "deliver favorite.added"]
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
    })
    .await;
    let spans = spans_of_trace();
    let request = spans.iter().find(|s| s.name == "POST /user/track/favorite").unwrap();
    assert_eq!(request.parent_span_id, CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(request.service, "users-under-test", "OTEL_SERVICE_NAME is honoured");
    assert_eq!(request.attribute("http.route").and_then(Value::as_str), Some("/user/track/favorite"));
    assert_eq!(request.attribute("http.request.method").and_then(Value::as_str), Some("POST"));
    assert_eq!(request.attribute("user.id").and_then(Value::as_str), Some(user_id.as_str()));
    let status = request.attribute("http.response.status_code").unwrap();
    assert!(status == &Value::from(200) || status == &Value::from("200"), "{status}");

    let store = spans.iter().find(|s| s.name == "add_favorites").unwrap();
    assert_eq!(store.parent_span_id, request.span_id, "store calls are children of the request");
    assert_eq!(store.kind, 3, "a client span");
    let system = store.attribute("db.system.name").and_then(Value::as_str).unwrap();
    assert!(["sqlite", "postgresql"].contains(&system), "{system}");

    let delivery = spans.iter().find(|s| s.name == "deliver favorite.added").unwrap();
    assert_eq!(delivery.kind, 4, "a producer span");
    eventually("the webhook delivery", Duration::from_secs(30), || !deliveries.lock().unwrap().is_empty()).await;
    let sent = deliveries.lock().unwrap()[0].clone().expect("the webhook carries a traceparent");
    assert_eq!(sent, format!("00-{TRACE_ID}-{}-01", delivery.span_id), "the delivery span is the webhook's parent");

    // Every request's span arrives, none dropped on the way (per-layer
    // filtering once lost one in ten on PostgreSQL).
    for _ in 0..40 {
        assert_eq!(client.get(format!("{}/readyz", server.base)).send().await.unwrap().status(), 200);
    }
    let readyz = || exported.lock().unwrap().spans.iter().filter(|s| s.name == "GET /readyz").count();
    eventually("40 readiness spans", Duration::from_secs(30), || readyz() >= 40).await;
    assert_eq!(readyz(), 40);

    // Spans of requests without a traceparent start traces of their own.
    let all = exported.lock().unwrap();
    let names: Vec<_> = all.spans.iter().map(|s| (s.name.as_str(), s.trace_id.as_str())).collect();
    let login = all.spans.iter().find(|s| s.name == "POST /user/login").unwrap_or_else(|| panic!("{names:?}"));
    assert_ne!(login.trace_id, TRACE_ID);
    assert!(login.parent_span_id.is_empty(), "a root span");
    // Nothing that authenticates is exported: no token, no password.
    assert!(!all.raw.contains(&token), "an access token was exported");
    assert!(!all.raw.contains("correct horse"), "a password was exported");
    assert!(all.other.is_empty(), "{:?}", all.other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_reaches_the_collector_and_the_webhook_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    the_callers_trace_reaches_the_collector_and_the_webhook(database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_reaches_the_collector_and_the_webhook_on_postgres() {
    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    the_callers_trace_reaches_the_collector_and_the_webhook(database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_starts_a_new_trace_and_the_request_still_succeeds() {
    let (otlp, exported) = start_otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = otel_env(&otlp);
    env.push(("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("users.db").display())));
    let server = Server::start(&env);
    let client = crate::common::http().build().unwrap();
    let token = alice(&client, &server.base).await;
    // All-zero trace id: W3C says ignore it.
    let bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let get = client.get(format!("{}/user/get", server.base)).bearer_auth(&token).header("traceparent", bad);
    assert_eq!(get.send().await.unwrap().status(), 200);
    eventually("the request's span", Duration::from_secs(30), || {
        exported.lock().unwrap().spans.iter().any(|s| s.name == "GET /user/get")
    })
    .await;
    let all = exported.lock().unwrap();
    let span = all.spans.iter().find(|s| s.name == "GET /user/get").unwrap();
    assert!(span.parent_span_id.is_empty() && span.trace_id.len() == 32 && span.trace_id != "0".repeat(32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_out_as_protobuf_unless_json_is_asked_for() {
    let (otlp, exported) = start_otlp_receiver().await;
    let env = [
        ("USER_DATABASE_URL", "sqlite::memory:".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ];
    let server = Server::start(&env);
    let client = crate::common::http().build().unwrap();
    assert_eq!(client.get(format!("{}/healthz", server.base)).send().await.unwrap().status(), 200);
    eventually("a protobuf export", Duration::from_secs(30), || !exported.lock().unwrap().other.is_empty()).await;
    assert_eq!(exported.lock().unwrap().other[0], "application/x-protobuf");
}

#[test]
fn grpc_and_unknown_exporters_are_start_errors_naming_the_fix() {
    let start = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_user-server"));
        command.env("USER_DATABASE_URL", "sqlite::memory:").env("USER_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let grpc =
        start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    assert_eq!(grpc.status.code(), Some(2));
    let text = String::from_utf8_lossy(&grpc.stderr);
    assert!(text.contains("grpc is not built into user-server") && text.contains("http/protobuf"), "{text}");
    let zipkin = start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), ("OTEL_TRACES_EXPORTER", "zipkin")]);
    assert_eq!(zipkin.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zipkin.stderr).contains("OTEL_TRACES_EXPORTER=zipkin is not supported"));
}
