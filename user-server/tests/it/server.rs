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
    let client = crate::common::http().build().unwrap();
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
fn every_setting_in_help_is_in_the_configuration_table_with_its_default() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
    let command = Config::command();
    let mut checked = 0;
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else { continue };
        let Some(row) = rows.iter().find(|r| r.contains(&format!("`{env}`"))) else {
            // A secret's file variant is described with the secret, above the table.
            assert!(
                env.ends_with("_FILE") && readme.contains(&format!("`{env}`")),
                "{env} is not in the table of docs/configuration.md"
            );
            continue;
        };
        if let [default] = arg.get_default_values() {
            let default = default.to_str().unwrap();
            let cell = row.split('|').nth(3).unwrap();
            assert!(
                cell.contains(&format!("`{default}`")),
                "{env}: docs/configuration.md says {cell}, --help says {default}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 40, "{checked}");
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

// ------------------------------------------------------------------ TLS

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::process::Server;
use crate::common::tls::TestCa;

fn tls_env(dir: &std::path::Path, files: &user_server::tls::TlsFiles) -> Vec<(&'static str, String)> {
    vec![
        ("USER_DATABASE_URL", format!("sqlite://{}", dir.join("u.db").display())),
        ("USER_TLS_CERT_FILE", files.cert.display().to_string()),
        ("USER_TLS_KEY_FILE", files.key.display().to_string()),
    ]
}

fn trusting(ca: &TestCa) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    crate::common::http().add_root_certificate(root).build().unwrap()
}

/// The protocol ALPN settles on with the server at `base`, trusting `ca`.
async fn negotiated_protocol(base: &str, ca: &TestCa) -> Option<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap();
    roots.add(ca_der).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let addr = base.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

use rustls_pki_types::pem::PemObject as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_works_over_https_with_a_private_ca_and_cookies_are_secure() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("user-service test CA");
    let files = ca.issue(dir.path(), "server");
    let server = Server::start(&tls_env(dir.path(), &files));
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);

    let client =
        user_client::Client::builder(&server.base).add_root_certificate(ca.pem().as_bytes()).unwrap().build().unwrap();
    client.register("alice", "alice@example.com", "correct horse").await.unwrap();
    client.login("alice", "correct horse").await.unwrap();
    assert_eq!(client.me().await.unwrap().username.as_deref(), Some("alice"));
    client.refresh().await.expect("the Secure refresh cookie goes back over https");
    assert_eq!(client.me().await.unwrap().username.as_deref(), Some("alice"));

    let login = trusting(&ca)
        .post(format!("{}/user/login", server.base))
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    let cookies: Vec<_> = login.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    let hsts = login.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(hsts.as_deref(), Some("max-age=31536000; includeSubDomains"), "the server's own TLS");
    // The access, the refresh and a device cookie.
    assert!(cookies.len() == 3 && cookies.iter().all(|c| c.ends_with("; Secure")), "{cookies:?}");

    // Only a client that trusts the CA gets through; HTTP/2 is offered by ALPN.
    let stranger = user_client::Client::new(&server.base).unwrap();
    let refused = stranger.health().await.unwrap_err();
    assert!(matches!(refused, user_client::Error::Transport(_)), "{refused:?}");
    assert_eq!(negotiated_protocol(&server.base, &ca).await.as_deref(), Some(b"h2".as_slice()));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_open_connections_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let files = old_ca.issue(dir.path(), "server");
    let server = Server::start(&tls_env(dir.path(), &files));
    let healthz = format!("{}/healthz", server.base);

    // A client that trusts only the old CA opens a kept-alive connection.
    let old_client = trusting(&old_ca);
    assert_eq!(old_client.get(&healthz).send().await.unwrap().status(), 200);

    // Swap the files for the new CA's certificate and signal.
    let renewed = new_ca.issue(dir.path(), "renewed");
    std::fs::rename(&renewed.cert, &files.cert).unwrap();
    std::fs::rename(&renewed.key, &files.key).unwrap();
    let status = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());

    // New handshakes get the new certificate (bounded wait for the signal).
    let new_client = trusting(&new_ca);
    let mut reloaded = false;
    for _ in 0..200 {
        if new_client.get(&healthz).send().await.is_ok_and(|r| r.status() == 200) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate is served after SIGHUP");
    // The connection opened before still works: a new handshake would fail
    // for this client, which trusts only the old CA.
    assert_eq!(old_client.get(&healthz).send().await.unwrap().status(), 200);
    assert!(
        crate::common::http()
            .add_root_certificate(reqwest::Certificate::from_pem(old_ca.pem().as_bytes()).unwrap())
            .build()
            .unwrap()
            .get(&healthz)
            .send()
            .await
            .is_err(),
        "a fresh client of the old CA is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_an_https_receiver_whose_ca_is_given() {
    use user_core::tasks::{TaskEvent, TaskSink, WebhookSink};
    use warp::Filter;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("receiver CA");
    let files = ca.issue(dir.path(), "receiver");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let receiver = warp::any().map(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        warp::reply::Reply::into_response(warp::http::StatusCode::NO_CONTENT)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/tasks", listener.local_addr().unwrap().port());
    let limits = user_server::serve::TransportLimits {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        max_connections: 16,
        max_connections_per_ip: 16,
        http2: false,
    };
    let acceptor = user_server::tls::Certificates::load(files).unwrap().acceptor();
    let policy = Arc::new(user_server::security::Policy::default());
    tokio::spawn(user_server::serve::serve(listener, receiver, limits, policy, Some(acceptor), std::future::pending()));

    let event = TaskEvent {
        id: 7,
        kind: "favorite.added".into(),
        user_id: uuid::Uuid::now_v7(),
        track_id: Some("42".into()),
        occurred_at: chrono::Utc::now(),
        attempt: 1,
    };
    let secret = b"webhook-test-secret-of-32-bytes-at-least".to_vec();
    let untrusting = WebhookSink::new(&url, secret.clone(), Duration::from_secs(5)).unwrap();
    let refused = untrusting.deliver(&event).await.unwrap_err().to_string();
    assert!(refused.contains("certificate"), "{refused}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let sink = WebhookSink::new(&url, secret, Duration::from_secs(5)).unwrap().trusting(ca.pem().as_bytes()).unwrap();
    sink.deliver(&event).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------------------ deploy/

/// Metric names a PromQL expression reads (labels, ranges, strings, grouping
/// clauses and function names left out).
fn metric_names(expr: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = (0, 0); // inside {…}, inside […]
    let mut quoted = false;
    for c in expr.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            '{' => depth.0 += 1,
            '}' => depth.0 -= 1,
            '[' => depth.1 += 1,
            ']' => depth.1 -= 1,
            _ if depth == (0, 0) => plain.push(c),
            _ => {}
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let rest: String = chars[i..].iter().collect::<String>().trim_start().to_owned();
            // `sum(…)` and `sum by (…) (…)` are aggregations, not metrics.
            let applied = rest.starts_with('(') || rest.starts_with("by ") || rest.starts_with("without ");
            if matches!(word.as_str(), "by" | "without" | "on" | "ignoring" | "group_left" | "group_right") {
                skip_group = true;
            } else if !matches!(word.as_str(), "and" | "or" | "unless" | "bool" | "offset") && !applied {
                names.push(word);
            }
        } else if chars[i] == '(' && skip_group {
            // A grouping clause's label list: skip to its `)`.
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

/// Every `expr:` of a Prometheus rules file, inline or as a `|` block.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else { continue };
        let rest = rest.trim();
        if rest != "|" {
            exprs.push(rest.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines[n + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        exprs.push(block.join(" "));
    }
    exprs
}

#[test]
fn promql_metric_names_are_found_and_labels_are_not() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~"a|b"}[5m]))) > 0.25"#,
    );
    assert_eq!(names, ["http_request_duration_seconds_bucket"]);
    let names = metric_names(r#"max(tasks_queue_depth{status="pending"}) > 1000 and deriv(max(x_total)[15m:1m]) > 0"#);
    assert_eq!(names, ["tasks_queue_depth", "x_total"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alerts_use_only_metrics_the_server_exports() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("u.db").display());
    let server = start(&Config::for_tests(&database)).await.unwrap();
    let base = format!("http://{}", server.addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    // Traffic that records every histogram: requests, hashing, a delivered task.
    let client = user_client::Client::new(&base).unwrap();
    client.register("alice", "alice@example.com", "correct horse").await.unwrap();
    client.login("alice", "correct horse").await.unwrap();
    client.add_favorites(&["42"]).await.unwrap();
    let http = crate::common::http().build().unwrap();
    let mut scrape = String::new();
    for _ in 0..200 {
        scrape = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if scrape.contains(r#"task_deliveries_total{outcome="delivered"} 1"#)
            && scrape.contains("process_resident_memory_bytes")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exported: std::collections::HashSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/grafana/user-service.json")).unwrap()).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .collect();
    assert!(exprs.len() >= 12, "every panel has its queries");
    let alerts = rule_expressions(&std::fs::read_to_string(format!("{root}/prometheus/alerts.yaml")).unwrap());
    assert!(alerts.len() >= 5, "{alerts:?}");
    exprs.extend(alerts);
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            // `up` is Prometheus's own, per scrape target.
            assert!(name == "up" || exported.contains(name.as_str()), "{name} (in {expr}) is not exported");
        }
    }
    let _ = stop.send(());
    running.await.unwrap();
}

#[test]
fn the_binary_prints_its_manual_page_and_its_openapi_document() {
    let man = Command::new(env!("CARGO_BIN_EXE_user-server")).arg("--print-man-page").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains(".TH user-server") && page.contains("USER_TLS_CERT_FILE"), "{page}");
    let openapi = Command::new(env!("CARGO_BIN_EXE_user-server")).arg("--print-openapi").output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&openapi.stdout).unwrap();
    assert_eq!(&doc, user_server::openapi_document());
}

/// Runs `user-server healthcheck` with `env` (the server's own settings).
fn healthcheck(env: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_user-server"));
    command.arg("healthcheck").env_remove("USER_CONFIG_FILE");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_once_the_server_answers_and_the_healthcheck_reads_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let database = ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display()));
    let mut server = Server::start(&[database.clone(), ("NOTIFY_SOCKET", socket_path.display().to_string())]);
    let mut datagram = [0u8; 64];
    let n = systemd.recv(&mut datagram).expect("READY=1 within a minute");
    assert_eq!(&datagram[..n], b"READY=1");
    let ready = crate::common::http().build().unwrap().get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready means ready");

    let listen = ("USER_LISTEN", server.base.trim_start_matches("http://").to_owned());
    let up = healthcheck(&[database.clone(), listen.clone()]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    // A wildcard listen address is asked on loopback.
    let port = listen.1.rsplit(':').next().unwrap().to_owned();
    let wildcard = healthcheck(&[database.clone(), ("USER_LISTEN", format!("0.0.0.0:{port}"))]);
    assert!(wildcard.status.success(), "{}", String::from_utf8_lossy(&wildcard.stderr));

    server.kill();
    let down = healthcheck(&[database, listen]);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/readyz"), "says what it asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_speaks_tls_when_the_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("user-service test CA");
    let files = ca.issue(dir.path(), "server");
    let env = tls_env(dir.path(), &files);
    let server = Server::start(&env);
    let mut settings = env.clone();
    settings.push(("USER_LISTEN", server.base.trim_start_matches("https://").to_owned()));
    let checked = healthcheck(&settings);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_the_reauthentication_window_off_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let database = ("USER_DATABASE_URL", format!("sqlite://{}", dir.path().join("u.db").display()));
    let mut server = Server::start_logging_to(&[database, ("USER_REAUTH_WINDOW", "off".into())], &log);
    server.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("USER_REAUTH_WINDOW is off") && text.contains("without proving the password"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_without_a_second_factor_are_named_at_start() {
    use user_core::domain::{Email, Password, Role, Username};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let url = format!("sqlite://{}", dir.path().join("u.db").display());
    let store = user_core::store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let config = user_core::ServiceConfig {
        hashing: user_core::auth::HashingConfig::insecure_for_tests(),
        ..Default::default()
    };
    let service = user_core::UserService::new(store, config).await.unwrap();
    for (name, role) in [("root", Role::Admin), ("ops", Role::Admin), ("alice", Role::User)] {
        let registration = user_core::service::Registration {
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            password: Password::parse("correct horse").unwrap(),
            locale: Default::default(),
        };
        service.create_user(registration, role, &Default::default()).await.unwrap();
    }
    drop(service);
    let mut server = Server::start_logging_to(&[("USER_DATABASE_URL", url.clone())], &log);
    server.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    let notice =
        text.lines().find(|l| l.contains("USER_MFA_REQUIRED covers admins")).unwrap_or_else(|| panic!("{text}"));
    assert!(notice.contains("ops, root") && !notice.contains("alice"), "{notice}");
    assert!(notice.contains("user-cli user mfa enroll"), "{notice}");

    let quiet = dir.path().join("quiet.log");
    let env = [("USER_DATABASE_URL", url), ("USER_MFA_REQUIRED", "none".into())];
    let mut server = Server::start_logging_to(&env, &quiet);
    server.kill();
    assert!(!std::fs::read_to_string(&quiet).unwrap().contains("USER_MFA_REQUIRED covers"));
}

#[test]
fn an_unknown_mfa_policy_is_a_start_error_naming_the_choices() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_user-server"))
        .env("USER_MFA_REQUIRED", "sometimes")
        .env("USER_DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("sometimes") && text.contains("admins"), "{text}");
}
