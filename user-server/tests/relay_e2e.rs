//! End to end: 1,000 favorite changes made through the API all reach a webhook
//! receiver with valid signatures, none lost and none dead — including when
//! the server is killed with SIGKILL halfway and restarted.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use user_core::store::TaskCounts;
use warp::Filter;

const SECRET: &str = "webhook-test-secret";

#[derive(Default)]
struct Received {
    /// Task id → how many times it arrived.
    ids: HashMap<i64, usize>,
    bad_signatures: usize,
}

async fn start_receiver() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = received.clone();
    let route = warp::post().and(warp::header::<String>("x-signature-256")).and(warp::body::bytes()).map(
        move |signature: String, body: bytes::Bytes| {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(&body);
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut r = sink.lock().unwrap();
            if signature != expected {
                r.bad_signatures += 1;
            }
            *r.ids.entry(event["id"].as_i64().unwrap()).or_default() += 1;
            warp::http::StatusCode::NO_CONTENT
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/tasks"), received)
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on the database in `dir`; returns it and its base URL.
fn start_server(dir: &Path, webhook: &str) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_user-server"))
        .env("USER_LISTEN", "127.0.0.1:0")
        .env("USER_DATABASE_URL", format!("sqlite://{}", dir.join("users.db").display()))
        .env("USER_ARGON2_MEMORY_KIB", "8")
        .env("USER_ARGON2_ITERATIONS", "1")
        .env("USER_TASKS_WEBHOOK_URL", webhook)
        .env("USER_TASKS_WEBHOOK_SECRET", SECRET)
        .env("USER_TASKS_LEASE", "1s")
        .env("USER_TASKS_BACKOFF_BASE", "50ms")
        .env("USER_LOG", "warn,user_server=info")
        .env("USER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split('"').next().unwrap().to_owned());
                sent = true;
            }
        }
    });
    let server = Server(child);
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server did not start");
    (server, format!("http://{addr}"))
}

async fn change(client: &reqwest::Client, base: &str, token: &str, method: reqwest::Method, track: &str) {
    let url = format!("{base}/user/track/favorite?track_id={track}");
    let status = client.request(method, url).bearer_auth(token).send().await.unwrap().status();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changes_reach_the_webhook_signed_even_across_a_sigkill() {
    let (webhook, received) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let (mut server, base) = start_server(dir.path(), &webhook);
    let mut tokens = Vec::new();
    for n in 0..10 {
        let name = format!("listener{n}");
        let body = json!({"username": name, "password": "correct horse", "email": format!("{name}@example.com")});
        assert_eq!(client.post(format!("{base}/user/register")).json(&body).send().await.unwrap().status(), 200);
        let login = json!({"username": name, "password": "correct horse"});
        let reply: serde_json::Value =
            client.post(format!("{base}/user/login")).json(&login).send().await.unwrap().json().await.unwrap();
        tokens.push(reply["token"].as_str().unwrap().to_owned());
    }
    for track in 0..50 {
        for token in &tokens {
            change(&client, &base, token, reqwest::Method::POST, &format!("t{track}")).await;
        }
    }
    // Halfway: 500 acknowledged changes; kill without warning.
    server.0.kill().unwrap();
    server.0.wait().unwrap();

    let (server, base) = start_server(dir.path(), &webhook);
    for track in 0..50 {
        for token in &tokens {
            change(&client, &base, token, reqwest::Method::DELETE, &format!("t{track}")).await;
        }
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let distinct = received.lock().unwrap().ids.len();
        if distinct >= 1000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {distinct} of 1000 tasks arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = user_core::store::open(&format!("sqlite://{}", dir.path().join("users.db").display())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counts = store.count_tasks().await.unwrap();
        if counts.pending == 0 {
            assert_eq!(counts, TaskCounts { pending: 0, done: 1000, dead: 0 });
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);

    let r = received.lock().unwrap();
    assert_eq!(r.bad_signatures, 0);
    let ids: HashSet<i64> = r.ids.keys().copied().collect();
    assert_eq!(ids, (1..=1000).collect::<HashSet<i64>>(), "every task, none invented");
    let duplicates: usize = r.ids.values().map(|n| n - 1).sum();
    eprintln!("delivered 1000 tasks; {duplicates} redelivered after the SIGKILL (at-least-once)");
}
