//! The `user-server` binary as a child process, and a webhook receiver.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warp::Filter;

/// The webhook secret the helpers configure.
pub const SECRET: &str = "webhook-test-secret-of-32-bytes-at-least";

/// A running server; killed when dropped, however the test ends.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, or `https://…` when it serves TLS.
    pub base: String,
    /// The metrics listener's base URL, when it has one of its own.
    pub metrics_base: Option<String>,
}

impl Server {
    /// Starts the binary with `env` on top of cheap-hashing test settings and
    /// waits for its startup line.
    pub fn start(env: &[(&str, String)]) -> Server {
        Self::start_with(env, None)
    }

    /// Like [`Server::start`], copying every log line to `log`.
    pub fn start_logging_to(env: &[(&str, String)], log: &std::path::Path) -> Server {
        Self::start_with(env, Some(log.to_owned()))
    }

    fn start_with(env: &[(&str, String)], log: Option<std::path::PathBuf>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_user-server"));
        command
            .env("USER_LISTEN", "127.0.0.1:0")
            .env("USER_ARGON2_MEMORY_KIB", "8")
            .env("USER_ARGON2_ITERATIONS", "1")
            .env("USER_LOG", "warn,user_server=info")
            .env("USER_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            let mut copy = log.map(|p| std::fs::File::create(p).unwrap());
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(file) = copy.as_mut() {
                    use std::io::Write as _;
                    let _ = writeln!(file, "{line}");
                }
                if !sent && let Some(rest) = line.split("listening on ").nth(1) {
                    let metrics = line.split(r#""metrics":"http://"#).nth(1).map(|m| m.split('"').next().unwrap());
                    let _ = tx.send((rest.split('"').next().unwrap().to_owned(), metrics.map(str::to_owned)));
                    sent = true;
                }
            }
        });
        let mut server = Server { child, base: String::new(), metrics_base: None };
        let (base, metrics) = rx.recv_timeout(Duration::from_secs(60)).expect("server did not start");
        server.base = base;
        server.metrics_base = metrics.map(|m| format!("http://{m}"));
        server
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a webhook receiver has seen.
#[derive(Default)]
pub struct Received {
    /// Task id → how many times it arrived.
    pub ids: HashMap<i64, usize>,
    /// Deliveries whose signature did not verify.
    pub bad_signatures: usize,
    /// Deliveries that carried a `traceparent` header (only a server that
    /// exports traces sends one).
    pub traced: usize,
}

/// A receiver on 127.0.0.1 that verifies signatures and counts task ids.
pub async fn start_receiver() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = received.clone();
    let route = warp::post()
        .and(warp::header::<String>("x-signature-256"))
        .and(warp::header::optional::<String>("traceparent"))
        .and(warp::body::bytes())
        .map(move |signature: String, traceparent: Option<String>, body: bytes::Bytes| {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(&body);
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut r = sink.lock().unwrap();
            if signature != expected {
                r.bad_signatures += 1;
            }
            r.traced += usize::from(traceparent.is_some());
            *r.ids.entry(event["id"].as_i64().unwrap()).or_default() += 1;
            warp::http::StatusCode::NO_CONTENT
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/tasks"), received)
}

/// Waits (bounded) until `done` holds, polling.
pub async fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
