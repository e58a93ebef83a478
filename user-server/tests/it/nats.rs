//! The NATS JetStream task sink against real `nats-server` processes (the
//! binary of the machine's own NATS), each test with a server of its own on
//! a free port and a store directory, so one can be stopped and restarted.
//! Without the binary the tests print that they skip, unless
//! `USER_TEST_REQUIRE_NATS=1` (set in `.ci/run`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use user_core::auth::HashingConfig;
use user_core::domain::{Email, Password, TrackBatch, UserId, Username};
use user_core::service::Registration;
use user_core::store::Store;
use user_core::tasks::{NatsConfig, NatsSink, Relay, RelayConfig, TaskSink};
use user_core::{ServiceConfig, UserService};

use crate::common::browser::free_port;
use crate::common::process::Server;

const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A `nats-server` with JetStream on a loopback port; killed on drop.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    fn start(dir: &Path) -> NatsServer {
        let mut server = NatsServer { child: None, port: free_port(), dir: dir.to_owned() };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store: what JetStream stored survives.
    fn restart(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server did not start");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nats_available() -> bool {
    let ok = Path::new(NATS_SERVER).exists();
    if !ok {
        assert!(
            std::env::var("USER_TEST_REQUIRE_NATS").as_deref() != Ok("1"),
            "USER_TEST_REQUIRE_NATS=1 but {NATS_SERVER} is missing: apt-get install nats-server"
        );
        user_core::testing::skipped("no nats-server: apt-get install nats-server");
    }
    ok
}

fn sink_config(url: &str) -> NatsConfig {
    NatsConfig {
        url: url.to_owned(),
        create_stream: true,
        ack_timeout: Duration::from_secs(1),
        ..NatsConfig::default()
    }
}

/// Every message of the tasks stream, in stream order: (task id, kind header, user id).
async fn stream_messages(url: &str) -> Vec<(i64, String, String)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("USER_SERVICE_TASKS").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else { continue };
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        let id = msg.headers.get("Nats-Msg-Id").unwrap().as_str().parse::<i64>().unwrap();
        assert_eq!(body["id"], id, "the message id is the task id");
        assert_eq!(msg.subject.as_str(), format!("user-service.tasks.{}", body["kind"].as_str().unwrap()));
        let kind = msg.headers.get("X-Task-Kind").unwrap().as_str().to_owned();
        out.push((id, kind, body["user_id"].as_str().unwrap().to_owned()));
    }
    out
}

async fn service(store: Arc<dyn Store>) -> UserService {
    let config = ServiceConfig { hashing: HashingConfig::insecure_for_tests(), ..ServiceConfig::default() };
    UserService::new(store, config).await.unwrap()
}

async fn user(service: &UserService, name: String) -> UserId {
    let registration = Registration {
        username: Username::parse(&name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        password: Password::parse("correct horse").unwrap(),
        locale: Default::default(),
    };
    service.register(registration, &Default::default()).await.unwrap().id
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        lease: Duration::from_millis(300),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        max_attempts: 1000,
        ..RelayConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn favorites_reach_jetstream_once_per_task_in_user_order_across_a_crash_and_a_restart() {
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(dir.path());
    let db = user_core::testing::SqliteDatabase::new().await;
    let store = db.store.clone();
    let service = service(store.clone()).await;
    let sink: Arc<dyn TaskSink> = Arc::new(NatsSink::connect(&sink_config(&nats.url())).await.unwrap());
    let relay = Relay::new(store.clone(), sink.clone(), RelayConfig { batch_size: 7, ..relay_config() });

    // Users change favorites concurrently: each user's tasks interleave with the others'.
    let users: Vec<UserId> = futures_util::future::join_all((0..8).map(|n| user(&service, format!("user{n}")))).await;
    let changes = users.iter().map(|u| {
        let service = service.clone();
        let u = *u;
        async move {
            for round in 0..5 {
                let tracks = TrackBatch::parse(&format!("a{round},b{round}")).unwrap();
                service.add_favorites(u, &tracks).await.unwrap();
                service.remove_favorites(u, &TrackBatch::parse(&format!("a{round}")).unwrap()).await.unwrap();
            }
        }
    });
    futures_util::future::join_all(changes).await;

    // A relay that dies after publishing, before marking delivered: the
    // store goes away between the two.
    // Its lease ends as it is taken, so the next relay publishes those tasks again.
    let now = chrono::Utc::now();
    let claimed = store.claim_tasks(now, now, 40).await.unwrap();
    assert_eq!(claimed.tasks.len(), 40);
    for task in &claimed.tasks {
        sink.deliver(&user_core::tasks::TaskEvent::from(task)).await.unwrap();
    }

    // NATS goes down: deliveries fail and wait; nothing is lost.
    nats.stop();
    let stats = relay.run_once().await.unwrap();
    assert_eq!(stats.delivered, 0, "{stats:?}");
    assert!(stats.retried > 0, "{stats:?}");
    nats.restart();

    let expected = store.list_tasks(None, None, 10_000).await.unwrap().len();
    assert_eq!(expected, 8 * 5 * 3);
    // Two relays drain the rest together, as two replicas would.
    let other = Relay::new(store.clone(), sink.clone(), relay_config());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = tokio::join!(relay.run_once(), other.run_once());
        a.unwrap();
        b.unwrap();
        if store.count_waiting_tasks().await.unwrap().pending == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "tasks did not flow after NATS came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let messages = stream_messages(&nats.url()).await;
    let mut per_id: HashMap<i64, usize> = HashMap::new();
    for (id, ..) in &messages {
        *per_id.entry(*id).or_default() += 1;
    }
    assert_eq!(per_id.len(), expected, "every task is on the stream");
    assert!(per_id.values().all(|n| *n == 1), "once per task id, the republished ones too");
    let mut last_per_user: HashMap<String, i64> = HashMap::new();
    for (id, kind, user) in &messages {
        assert!(kind.starts_with("favorite."));
        let last = last_per_user.insert(user.clone(), *id);
        assert!(last.is_none_or(|last| last < *id), "user {user}: task {id} after {last:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_is_a_clear_error_at_start_and_the_server_publishes_through_nats() {
    if !nats_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path());
    let missing = NatsSink::connect(&NatsConfig { url: nats.url(), ..NatsConfig::default() }).await.unwrap_err();
    let text = missing.to_string();
    assert!(text.contains("no JetStream stream captures") && text.contains("USER_TASKS_NATS_CREATE_STREAM"), "{text}");

    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    // Traces exported, so the messages carry the request's trace.
    let (otlp, _exported) = crate::traces::start_otlp_receiver().await;
    let mut env = crate::traces::otel_env(&otlp);
    env.extend([
        ("USER_DATABASE_URL", database),
        ("USER_TASKS_NATS_URL", nats.url()),
        ("USER_TASKS_NATS_CREATE_STREAM", "true".to_owned()),
    ]);
    let server = Server::start(&env);
    let client = crate::common::http().build().unwrap();
    let token = crate::traces::alice(&client, &server.base).await;
    let add = client
        .post(format!("{}/user/track/favorite?track_id=42,43", server.base))
        .bearer_auth(&token)
        .header("traceparent", crate::traces::caller_traceparent());
    assert_eq!(add.send().await.unwrap().status(), 200);
    let url = nats.url();
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = stream_messages(&url).await;
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.iter().map(|(_, kind, _)| kind.as_str()).collect::<Vec<_>>(), ["favorite.added", "favorite.added"]);
    let trace = &crate::traces::caller_traceparent()[3..35];
    for traceparent in stream_traceparents(&url).await {
        let traceparent = traceparent.expect("each message carries a traceparent header");
        assert!(traceparent.starts_with(&format!("00-{trace}-")), "{traceparent}");
    }
}

/// The `traceparent` header of each message of the tasks stream.
async fn stream_traceparents(url: &str) -> Vec<Option<String>> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("USER_SERVICE_TASKS").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let msg = stream.get_raw_message(seq).await.unwrap();
        out.push(msg.headers.get("traceparent").map(|v| v.as_str().to_owned()));
    }
    out
}
