//! Security hardening: throttling per IP, account protection across attempts,
//! cross-site request refusal, CORS, transport limits, the audit trail, and
//! no secret in any log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{TestApp, app, req};
use serde_json::json;
use user_server::security::{Policy, Throttle};

fn login(name: &str, password: &str) -> crate::common::Req {
    req("POST", "/user/login").json(json!({"username": name, "password": password}))
}

fn with_policy(app: &mut TestApp, policy: Policy) {
    app.state.policy = Arc::new(policy);
}

#[tokio::test]
async fn brute_force_on_one_account_is_throttled_after_five_failures_and_others_are_unaffected() {
    let app = app().await;
    app.register("victim").await;
    let bystander = app.user("bystander").await;
    for attempt in 1..=5 {
        app.send(login("victim", &format!("guess number {attempt}"))).await.error(401);
    }
    let throttled = app.send(login("victim", "guess number 6")).await;
    throttled.error(429);
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "first wait is the base, 2 s: {wait}");
    // Even the right password waits: the point is to stop guessing.
    app.send(login("victim", "correct horse")).await.error(429);
    // Everyone else is served meanwhile.
    assert_eq!(app.send(req("GET", "/user/get").bearer(&bystander.access)).await.status, 200);
    assert_eq!(app.send(login("bystander", "correct horse")).await.status, 200);

    // The wait grows with each further failure, and a success resets it.
    app.clock.advance(Duration::from_secs(3));
    app.send(login("victim", "guess number 7")).await.error(401);
    let longer: u64 = app.send(login("victim", "x12345678")).await.header("retry-after").unwrap().parse().unwrap();
    assert!((3..=4).contains(&longer), "{longer}");
    app.clock.advance(Duration::from_secs(5));
    assert_eq!(app.send(login("victim", "correct horse")).await.status, 200);
    app.send(login("victim", "one wrong guess")).await.error(401);
    app.send(login("victim", "correct horse")).await;
}

#[tokio::test]
async fn the_lockout_wait_is_capped_at_fifteen_minutes() {
    let policy = user_core::service::LockoutPolicy::default();
    assert_eq!(policy.wait_after(4), None);
    assert_eq!(policy.wait_after(5), Some(Duration::from_secs(2)));
    assert_eq!(policy.wait_after(6), Some(Duration::from_secs(4)));
    assert_eq!(policy.wait_after(40), Some(Duration::from_secs(900)));
}

#[tokio::test]
async fn logins_are_throttled_per_client_ip_with_retry_after() {
    let mut app = app().await;
    app.register("alice").await;
    let throttle = Throttle::new([
        "100/min".parse().unwrap(),
        "3/min".parse().unwrap(),
        "100/min".parse().unwrap(),
        "100/min".parse().unwrap(),
        "100/min".parse().unwrap(),
        "100/min".parse().unwrap(),
    ]);
    with_policy(&mut app, Policy { throttle: Some(throttle), ..Policy::default() });
    for _ in 0..3 {
        app.send(login("nobody", "correct horse")).await.error(404);
    }
    let limited = app.send(login("alice", "correct horse")).await;
    limited.error(429);
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    app.send(login("alice", "correct horse").header("x-forwarded-for", "198.51.100.1")).await.error(429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let mut app = app().await;
    app.register("alice").await;
    let throttle = Throttle::new([
        "100/min".parse().unwrap(),
        "1/min".parse().unwrap(),
        "100/min".parse().unwrap(),
        "100/min".parse().unwrap(),
        "100/min".parse().unwrap(),
        "100/min".parse().unwrap(),
    ]);
    let trusted = vec!["127.0.0.0/8".parse().unwrap()];
    with_policy(&mut app, Policy { throttle: Some(throttle), trusted_proxies: trusted, ..Policy::default() });
    let from = |ip: &str| login("alice", "correct horse").header("x-forwarded-for", ip);
    assert_eq!(app.send(from("203.0.113.1")).await.status, 200);
    app.send(from("203.0.113.1")).await.error(429);
    assert_eq!(app.send(from("203.0.113.2")).await.status, 200);
}

#[tokio::test]
async fn cookie_authenticated_writes_from_another_site_are_refused() {
    let app = app().await;
    let s = app.user("alice").await;
    let cookie = |r: crate::common::Req| r.cookie("access_token", &s.access).header("host", "api.example.com");
    let evil =
        app.send(cookie(req("POST", "/user/track/favorite?track_id=1")).header("origin", "https://evil.example")).await;
    assert!(evil.error(403).contains("cross-site"));
    let evil_ref = cookie(req("DELETE", "/user/delete")).header("referer", "https://evil.example/x");
    app.send(evil_ref).await.error(403);
    let same = cookie(req("POST", "/user/track/favorite?track_id=1")).header("origin", "https://api.example.com");
    assert_eq!(app.send(same).await.status, 200);
    let no_origin = cookie(req("POST", "/user/track/favorite?track_id=2"));
    assert_eq!(app.send(no_origin).await.status, 200, "non-browser clients send no Origin");
    let bearer =
        req("POST", "/user/track/favorite?track_id=3").bearer(&s.access).header("origin", "https://evil.example");
    assert_eq!(app.send(bearer).await.status, 200, "a header token cannot be forged cross-site");
    let refresh =
        req("POST", "/user/refresh").cookie("refresh_token", &s.refresh).header("origin", "https://evil.example");
    app.send(refresh).await.error(403);
    assert_eq!(app.tasks().await.len(), 3, "the refused writes wrote nothing");
}

#[tokio::test]
async fn a_request_carrying_a_token_cookie_twice_is_refused_with_400() {
    let app = app().await;
    let s = app.user("alice").await;
    let tossed = |r: crate::common::Req, name: &str, value: &str| {
        r.header("cookie", &format!("{name}=planted-by-a-sibling-domain; {name}={value}"))
    };
    for request in [
        tossed(req("GET", "/user/get"), "access_token", &s.access),
        tossed(req("POST", "/user/track/favorite?track_id=1"), "access_token", &s.access),
        tossed(req("POST", "/user/refresh"), "refresh_token", &s.refresh),
        tossed(req("POST", "/user/logout"), "refresh_token", &s.refresh),
    ] {
        let reply = app.send(request).await;
        assert!(reply.error(400).contains("cookie is sent more than once"), "{}", reply.body);
    }
    assert!(app.tasks().await.is_empty(), "nothing was written");
    let fine = req("GET", "/user/get").header("cookie", &format!("theme=dark; access_token={}", s.access));
    assert_eq!(app.send(fine).await.status, 200);
}

#[tokio::test]
async fn cookies_are_secure_when_a_trusted_proxy_says_the_client_used_https() {
    let mut app = app().await;
    app.register("alice").await;
    let trusted = vec!["127.0.0.0/8".parse().unwrap()];
    with_policy(&mut app, Policy { trusted_proxies: trusted, ..Policy::default() });
    let secure = |reply: &crate::common::Reply| {
        let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies.len(), 3, "access, refresh and the device cookie: {cookies:?}");
        cookies.iter().all(|c| c.ends_with("; Secure"))
    };
    let plain = app.send(login("alice", "correct horse")).await;
    assert!(!secure(&plain), "plain http on loopback: the development default");
    for (header, value) in [("x-forwarded-proto", "https"), ("forwarded", "for=203.0.113.9;proto=https")] {
        let reply = app.send(login("alice", "correct horse").header(header, value)).await;
        assert!(secure(&reply), "{header}: {value}");
    }
    // From a peer that is not a trusted proxy, the header means nothing.
    with_policy(&mut app, Policy::default());
    let spoofed = app.send(login("alice", "correct horse").header("x-forwarded-proto", "https")).await;
    assert!(!secure(&spoofed));
}

#[tokio::test]
async fn hsts_answers_what_came_over_https_through_a_trusted_proxy_and_can_be_turned_off() {
    let mut app = app().await;
    let trusted = || vec!["127.0.0.0/8".parse().unwrap()];
    with_policy(&mut app, Policy { trusted_proxies: trusted(), ..Policy::default() });
    let hsts = |reply: crate::common::Reply| reply.header("strict-transport-security").map(str::to_owned);
    assert_eq!(hsts(app.send(req("GET", "/healthz")).await), None, "plain http: a browser would ignore it");
    let https = || req("GET", "/healthz").header("x-forwarded-proto", "https");
    assert_eq!(hsts(app.send(https()).await).as_deref(), Some("max-age=31536000; includeSubDomains"));
    let error = app.send(req("GET", "/nowhere").header("x-forwarded-proto", "https")).await;
    assert_eq!(error.status, 404);
    assert!(hsts(error).is_some(), "on every answer, errors too");

    with_policy(&mut app, Policy::default());
    assert_eq!(hsts(app.send(https()).await), None, "an untrusted peer's header means nothing");
    let off = "off".parse().unwrap();
    with_policy(&mut app, Policy { trusted_proxies: trusted(), hsts: off, ..Policy::default() });
    assert_eq!(hsts(app.send(https()).await), None, "USER_HSTS=off");
    let custom = "max-age=60".parse().unwrap();
    with_policy(&mut app, Policy { trusted_proxies: trusted(), hsts: custom, ..Policy::default() });
    assert_eq!(hsts(app.send(https()).await).as_deref(), Some("max-age=60"));
    assert!("includeSubDomains".parse::<user_server::security::Hsts>().is_err(), "needs max-age");
}

#[tokio::test]
async fn profile_updates_are_throttled_per_client_ip() {
    let mut app = app().await;
    let s = app.user("alice").await;
    let (plenty, one) = ("100/min".parse().unwrap(), "2/min".parse().unwrap());
    with_policy(
        &mut app,
        Policy { throttle: Some(Throttle::new([plenty, plenty, plenty, one, plenty, plenty])), ..Policy::default() },
    );
    let guess = |n: u32| {
        req("PUT", "/user/update")
            .bearer(&s.access)
            .json(json!({"password": "a new password", "current_password": format!("guess {n:04}")}))
    };
    app.send(guess(1)).await.error(401);
    app.send(guess(2)).await.error(401);
    let limited = app.send(guess(3)).await;
    limited.error(429);
    assert!(limited.header("retry-after").is_some());
}

#[test]
fn logged_header_values_cannot_forge_log_fields() {
    use std::io::Write as _;
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).with_env_filter("info").with_writer(move || writer.clone()).finish();
    // Header values cannot hold line breaks, but unquoted they could add fields.
    let forged = "https://evil.example event=login.success user_id=admin";
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = app().await;
            let s = app.user("alice").await;
            let request = req("POST", "/user/track/favorite?track_id=1")
                .cookie("access_token", &s.access)
                .header("host", "api.example.com")
                .header("origin", forged);
            app.send(request).await.error(403);
            app.send(login("alice", "wrong horse").header("user-agent", "curl\" ip=\"10.0.0.1")).await.error(401);
        });
    });
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let quoted_origin = format!("origin={forged:?}");
    assert!(log.lines().any(|l| l.contains("csrf.refused") && l.contains(&quoted_origin)), "{log}");
    let quoted_agent = r#"user_agent="curl\" ip=\"10.0.0.1""#;
    assert!(log.lines().any(|l| l.contains("login.failure") && l.contains(quoted_agent)), "{log}");
    let _ = std::io::stdout().flush();
}

#[tokio::test]
async fn cors_is_off_by_default_and_an_exact_allow_list_when_configured() {
    let mut app = app().await;
    let s = app.user("alice").await;
    let preflight = || {
        req("OPTIONS", "/user/get")
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "GET")
    };
    app.send(preflight()).await.error(405);
    let plain = app.send(req("GET", "/user/get").bearer(&s.access).header("origin", "https://app.example.com")).await;
    assert!(plain.header("access-control-allow-origin").is_none());

    with_policy(&mut app, Policy { cors_origins: vec!["https://app.example.com".into()], ..Policy::default() });
    let ok = app.send(preflight()).await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert!(ok.header("access-control-allow-headers").unwrap().contains("authorization"));
    let other = req("OPTIONS", "/user/get")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET");
    app.send(other).await.error(403);
    let get = app.send(req("GET", "/user/get").bearer(&s.access).header("origin", "https://app.example.com")).await;
    assert_eq!(get.header("access-control-allow-origin"), Some("https://app.example.com"));
    let foreign = app.send(req("GET", "/user/get").bearer(&s.access).header("origin", "https://evil.example")).await;
    assert!(foreign.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn tokens_over_8_kib_are_refused() {
    let app = app().await;
    let huge = format!("{}.{}.{}", "a".repeat(3000), "b".repeat(3000), "c".repeat(3000));
    app.send(req("GET", "/user/get").bearer(&huge)).await.error(401);
}

#[tokio::test]
async fn the_audit_trail_records_security_events_without_secrets() {
    let app = app().await;
    let s = app.user("alice").await;
    app.send(login("alice", "wrong horse")).await;
    app.send(login("nobody", "correct horse")).await;
    app.send(req("PUT", "/user/update").bearer(&s.access).json(json!({"password": "a new password"}))).await;
    app.send(req("POST", "/user/logout").bearer(&s.access)).await;
    let events = app.store.list_audit(&Default::default(), None, 100).await.unwrap();
    let names: Vec<&str> = events.iter().rev().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["register", "login.success", "login.failure", "login.failure", "password.change", "logout"]);
    assert!(events.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")));
    let unknown = events.iter().find(|e| e.detail.as_deref() == Some("unknown user")).unwrap();
    assert_eq!(unknown.user_id, None, "an unknown login name is not recorded");
    let dump = format!("{events:?}");
    for secret in ["correct horse", "wrong horse", "a new password", s.access.as_str(), s.refresh.as_str(), "nobody"] {
        assert!(!dump.contains(secret), "{secret} leaked into the audit trail");
    }
}

#[test]
fn a_slow_loris_client_is_cut_off_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::common::process::Server::start(&[
        ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display())),
        ("USER_HEADER_READ_TIMEOUT", "500ms".to_owned()),
        ("USER_MAX_CONNECTIONS", "1".to_owned()),
    ]);
    let addr = server.base.trim_start_matches("http://").to_owned();

    // Holds the only slot, sending headers one byte at a time, too slowly.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    // A second client waits: the cap holds while the slow one is connected.
    let mut waiting = TcpStream::connect(&addr).unwrap();
    waiting.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();

    // The server closes the slow connection (EOF) once its header time is up…
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "cut off: {text}");
    // …which frees the slot for the waiting client.
    waiting.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    waiting.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Opens `n` connections to `addr` from the loopback address `from`, each
/// sending `greeting` (possibly nothing) and then nothing more.
async fn hoard(addr: &str, from: &str, n: usize, greeting: &'static [u8]) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut stream = socket.connect(target).await.unwrap();
        stream.write_all(greeting).await.unwrap();
        held.push(stream);
    }
    held
}

/// Reads until the server closes `stream` (EOF or reset); what it sent.
async fn until_closed(mut stream: tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept an idle connection open");
    buf
}

async fn healthz(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    answer
}

/// The HTTP/2 connection preface cut in half: the protocol sniff used to
/// wait for the rest for ever.
const HALF_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_hoarding_idle_connections_cannot_take_the_server_off_the_air() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::common::process::Server::start(&[
        ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display())),
        ("USER_HEADER_READ_TIMEOUT", "1s".to_owned()),
        ("USER_MAX_CONNECTIONS", "64".to_owned()),
        ("USER_MAX_CONNECTIONS_PER_IP", "16".to_owned()),
        ("USER_HTTP2", "true".to_owned()),
    ]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // More idle sockets than the whole server's cap, from one address.
    let mut hoarded = hoard(&addr, "127.0.0.2", 60, b"").await;
    hoarded.extend(hoard(&addr, "127.0.0.2", 20, HALF_PREFACE).await);

    // Another client is served meanwhile: the hoarder holds 16 slots at most.
    assert!(healthz(&addr).await.starts_with("HTTP/1.1 200"));

    // Every hoarded connection is closed: past the cap at once, the rest
    // once the deadline for a first request has passed.
    let closed = futures_util::future::join_all(hoarded.into_iter().map(until_closed)).await;
    assert_eq!(closed.len(), 80);
    assert!(closed.iter().all(|sent| sent.is_empty() || sent.starts_with(b"HTTP/1.1 408")));
    assert!(healthz(&addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_many_addresses_are_closed_and_free_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::common::process::Server::start(&[
        ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display())),
        ("USER_HEADER_READ_TIMEOUT", "1s".to_owned()),
        ("USER_MAX_CONNECTIONS", "64".to_owned()),
    ]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // 80 connections from 5 addresses fill every slot (HTTP/2 is off: a
    // preface is answered as a bad HTTP/1 request or cut off).
    let mut hoarded = Vec::new();
    for n in 2..=6 {
        let greeting = if n % 2 == 0 { HALF_PREFACE } else { b"" };
        hoarded.extend(hoard(&addr, &format!("127.0.0.{n}"), 16, greeting).await);
    }
    // The waiting client is served once the idle ones are cut off.
    assert!(healthz(&addr).await.starts_with("HTTP/1.1 200"));
    let closed = futures_util::future::join_all(hoarded.into_iter().map(until_closed)).await;
    assert_eq!(closed.len(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_live_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::common::process::Server::start(&[
        ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display())),
        ("USER_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
    ]);
    let client = crate::common::http().build().unwrap();
    let public = client.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(public.status(), 404, "not on the public listener");
    let metrics_base = server.metrics_base.clone().expect("the metrics address is logged");
    let private = client.get(format!("{metrics_base}/metrics")).send().await.unwrap();
    assert_eq!(private.status(), 200);
    assert!(private.text().await.unwrap().contains("http_requests_total"));
    let other = client.get(format!("{metrics_base}/healthz")).send().await.unwrap();
    assert_eq!(other.status(), 404, "only /metrics there");
}

#[test]
fn a_request_whose_body_never_arrives_is_a_hardened_503_in_the_contract_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::common::process::Server::start(&[
        ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display())),
        ("USER_REQUEST_TIMEOUT", "300ms".to_owned()),
    ]);
    let addr = server.base.trim_start_matches("http://").to_owned();

    // Headers promise 40 bytes of body; 10 arrive, then nothing.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(
            b"POST /user/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 40\r\nX-Request-Id: stalled-1\r\n\r\n{\"username",
        )
        .unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0_u8; 4096];
    let n = stalled.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    for header in [
        "x-request-id: stalled-1",
        "content-type: application/json",
        "cache-control: no-store",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "retry-after: 1",
    ] {
        assert!(answer.contains(header), "{header} missing from {answer}");
    }
    assert!(answer.contains(r#""status":503"#), "{answer}");

    // The server still answers others.
    let mut other = TcpStream::connect(&addr).unwrap();
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    other.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_hash_appears_in_the_logs_of_a_full_session() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("u.db").display());
    let log_file = dir.path().join("server.log");
    let mut server = crate::common::process::Server::start_logging_to(
        &[("USER_DATABASE_URL", database.clone()), ("USER_LOG", "debug".to_owned())],
        &log_file,
    );
    let client = user_client::Client::new(&server.base).unwrap();
    let (password, new_password) = ("correct horse battery", "staple of secrets 42");
    client.register("alice", "alice@example.com", password).await.unwrap();
    client.login("alice", password).await.unwrap();
    let _ = client.login("alice", "guessed wrongly 1").await;
    client.add_favorites(&["42"]).await.unwrap();
    client.refresh().await.unwrap();
    client.me().await.unwrap();
    let update = user_client::api::UpdateRequest {
        password: Some(new_password.into()),
        current_password: Some(password.into()),
        ..Default::default()
    };
    client.update(&update).await.unwrap();
    let session = client.save_session().await;
    client.logout().await.unwrap();
    client.login("alice", new_password).await.unwrap();
    let last = client.save_session().await;
    client.delete_account(None).await.unwrap();
    server.kill();

    let store = user_core::store::open(&database).await.unwrap();
    let events = store.list_audit(&Default::default(), None, 100).await.unwrap();
    assert!(events.len() >= 7, "{events:?}");
    let logs = std::fs::read_to_string(&log_file).unwrap();
    assert!(logs.contains("\"target\":\"audit\""), "audit events are logged");
    assert!(logs.contains("\"target\":\"access\""), "requests are logged");
    let secrets = [
        password,
        new_password,
        "guessed wrongly 1",
        session.access_token.as_deref().unwrap(),
        session.refresh_token.as_deref().unwrap(),
        last.access_token.as_deref().unwrap(),
        "$argon2id$",
    ];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret leaked into the logs: {secret:.20}…");
    }
}

#[cfg(unix)]
#[test]
fn an_existing_database_readable_by_others_is_warned_about_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("server.log");
    let server = crate::common::process::Server::start_logging_to(
        &[("USER_DATABASE_URL", format!("sqlite://{}", path.display()))],
        &log,
    );
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("readable by other users") && text.contains("644"), "{text}");
    // A new one is private from the start (its -wal and -shm follow it).
    let fresh = dir.path().join("fresh.db");
    drop(crate::common::process::Server::start(&[("USER_DATABASE_URL", format!("sqlite://{}", fresh.display()))]));
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
}
