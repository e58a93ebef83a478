//! The server over a real socket: concurrency on SQLite, body limits on the
//! wire, the binary's settings, and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use user_server::{Config, start};

async fn spawn_sqlite() -> (String, tempfile::TempDir, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_tests(&format!("sqlite://{}", dir.path().join("users.db").display()));
    let server = start(&config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    (base, dir, tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_registrations_of_one_name_give_one_200_and_fifteen_409() {
    let (base, _dir, stop, handle) = spawn_sqlite().await;
    let client = reqwest::Client::new();
    let requests = (0..16).map(|i| {
        let client = client.clone();
        let url = format!("{base}/user/register");
        tokio::spawn(async move {
            let body = json!({"username": if i % 2 == 0 { "racer" } else { "RACER" }, "password": "correct horse",
                              "email": format!("racer{i}@example.com")});
            client.post(url).json(&body).send().await.unwrap().status().as_u16()
        })
    });
    let mut statuses = Vec::new();
    for r in requests.collect::<Vec<_>>() {
        statuses.push(r.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [vec![200], vec![409; 15]].concat());
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// Sends raw bytes and returns the status line and body.
fn raw_request(addr: &str, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_chunked_body_without_a_length_is_413() {
    let (base, _dir, stop, handle) = spawn_sqlite().await;
    let addr = base.trim_start_matches("http://").to_owned();
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut request = b"POST /user/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        let chunk = vec![b'a'; 70 * 1024];
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n0\r\n\r\n");
        raw_request(&addr, &request)
    })
    .await
    .unwrap();
    assert!(status.contains("413"), "{status}");
    assert!(body.contains("\"status\":413"), "{body}");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversized_body_is_413_before_it_is_read() {
    let (base, _dir, stop, handle) = spawn_sqlite().await;
    let addr = base.trim_start_matches("http://").to_owned();
    let (status, body) = tokio::task::spawn_blocking(move || {
        raw_request(&addr, b"POST /user/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(status.contains("413"), "{status}");
    assert!(body.contains("\"status\":413"), "{body}");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_user-server")).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "USER_LISTEN",
        "USER_DATABASE_URL",
        "USER_ACCESS_TTL",
        "USER_REFRESH_TTL",
        "USER_REFRESH_GRACE",
        "USER_JWT_ALGORITHM",
        "USER_JWT_SECRETS",
        "USER_JWT_ED25519_KEYS_FILE",
        "USER_ARGON2_MEMORY_KIB",
        "USER_HASH_CONCURRENCY",
        "USER_COOKIE_SECURE",
        "USER_RATE_LIMIT",
        "USER_LOG_FORMAT",
        "USER_SHUTDOWN_TIMEOUT",
        "USER_REQUIRE_CURRENT_PASSWORD",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}

#[test]
fn the_binary_serves_on_its_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_user-server"))
        .current_dir(dir.path())
        .env("USER_LISTEN", "127.0.0.1:0")
        .env("USER_LOG_FORMAT", "json")
        .env_remove("USER_DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split('"').next().unwrap().to_owned();
        }
    };
    assert!(line_mentions_default_database(dir.path()), "the default SQLite file is created in the working directory");
    let (status, body) = raw_request(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(status.contains("200"), "{status} {body}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

fn line_mentions_default_database(dir: &std::path::Path) -> bool {
    dir.join("user-service.db").exists()
}
