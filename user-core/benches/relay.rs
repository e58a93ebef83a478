//! Relay throughput on SQLite: tasks delivered per second to the log sink and
//! to a webhook receiver on 127.0.0.1; and the worst case of a claim, a
//! backlog in which every user is held (a downstream outage), on SQLite and,
//! with `USER_TEST_POSTGRES_URL` set, on PostgreSQL. Prints figures; asserts
//! nothing.
//!
//! `cargo bench -p user-core --bench relay` (add `-- 50000` for another task count).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use user_core::auth::HashingConfig;
use user_core::domain::{Email, Password, TrackBatch, TrackId, Username};
use user_core::service::Registration;
use user_core::store::{self, Store};
use user_core::tasks::{LogSink, NatsConfig, NatsSink, Relay, RelayConfig, TaskSink, WebhookSink};
use user_core::{ServiceConfig, UserService};

const TRACKS_PER_USER: usize = 20;

async fn seeded(tasks: usize) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded_at(&format!("sqlite://{}", dir.path().join("bench.db").display()), tasks).await;
    (dir, store)
}

async fn seeded_at(url: &str, tasks: usize) -> Arc<dyn Store> {
    let store = store::open(url).await.unwrap();
    store.migrate().await.unwrap();
    let config = ServiceConfig { hashing: HashingConfig::insecure_for_tests(), ..ServiceConfig::default() };
    let service = UserService::new(store.clone(), config).await.unwrap();
    let tracks = TrackBatch::new((0..TRACKS_PER_USER).map(|n| TrackId::parse(&format!("track{n}")).unwrap())).unwrap();
    for n in 0..tasks.div_ceil(TRACKS_PER_USER) {
        let user = service
            .register(
                Registration {
                    username: Username::parse(&format!("user{n}")).unwrap(),
                    email: Email::parse(&format!("user{n}@example.com")).unwrap(),
                    password: Password::parse("correct horse").unwrap(),
                    locale: Default::default(),
                },
                &Default::default(),
            )
            .await
            .unwrap();
        service.add_favorites(user.id, &tracks).await.unwrap();
    }
    store
}

/// Fails every user's first task with a retry an hour away, so every user is
/// held and no task is claimable: what a downstream outage leaves behind.
async fn hold_every_user(store: &Arc<dyn Store>) -> usize {
    let now = Utc::now();
    let mut held = HashSet::new();
    loop {
        let claim = store.claim_tasks(now, now + Duration::from_secs(300), 1000).await.unwrap();
        if claim.tasks.is_empty() {
            return held.len();
        }
        let mut rest = Vec::new();
        for task in &claim.tasks {
            if held.insert(task.user_id) {
                let retry_at = Some(now + Duration::from_secs(3600));
                store.fail_task(claim.lease_id, task.id, "outage", retry_at, now).await.unwrap();
            } else {
                rest.push(task.id);
            }
        }
        store.release_tasks(claim.lease_id, &rest, now).await.unwrap();
    }
}

/// The median time of a claim that scans the whole held backlog.
async fn held_backlog_claim(backend: &str, store: Arc<dyn Store>, tasks: usize) {
    let users = hold_every_user(&store).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let now = Utc::now();
        let started = Instant::now();
        let claim = store.claim_tasks(now, now + Duration::from_secs(300), 100).await.unwrap();
        times.push(started.elapsed());
        assert!(claim.tasks.is_empty(), "every user is held");
    }
    times.sort();
    println!(
        "{backend:<8} claim over {tasks} pending tasks, all {users} users held: {:>8.1} ms (median of 5)",
        times[2].as_secs_f64() * 1000.0
    );
}

async fn drain(store: Arc<dyn Store>, sink: Arc<dyn TaskSink>, batch_size: u32) -> (usize, Duration) {
    let relay = Relay::new(store, sink, RelayConfig { batch_size, ..RelayConfig::default() });
    let started = Instant::now();
    let mut delivered = 0;
    loop {
        let stats = relay.run_once().await.unwrap();
        if stats.claimed == 0 {
            break;
        }
        delivered += stats.delivered;
    }
    (delivered, started.elapsed())
}

async fn receiver() -> String {
    use warp::Filter;
    let route = warp::post().and(warp::body::bytes()).map(|_: bytes::Bytes| warp::http::StatusCode::NO_CONTENT);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}/tasks")
}

fn report(sink: &str, batch: u32, delivered: usize, elapsed: Duration) {
    println!(
        "{sink:<8} batch {batch:>4}  {delivered:>6} tasks in {:>7.1} ms  = {:>8.0} tasks/s",
        elapsed.as_secs_f64() * 1000.0,
        delivered as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let tasks: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20_000);
    // A real subscriber, so the log sink pays for formatting its lines.
    tracing_subscriber::fmt().with_writer(std::io::sink).with_max_level(tracing::Level::INFO).init();
    println!("relay throughput on SQLite, {tasks} tasks ({TRACKS_PER_USER} per user), {} cores", num_cpus());
    for batch in [100, 500] {
        let (_dir, store) = seeded(tasks).await;
        let (n, t) = drain(store, Arc::new(LogSink), batch).await;
        report("log", batch, n, t);
    }
    let url = receiver().await;
    for batch in [100, 500] {
        let (_dir, store) = seeded(tasks).await;
        let sink = Arc::new(WebhookSink::new(url.clone(), b"bench".to_vec(), Duration::from_secs(10)).unwrap());
        let (n, t) = drain(store, sink, batch).await;
        report("webhook", batch, n, t);
    }
    nats(tasks).await;
    let (_dir, store) = seeded(tasks).await;
    held_backlog_claim("sqlite", store, tasks).await;
    if std::env::var("USER_TEST_POSTGRES_URL").is_ok() {
        if let Some(url) = user_core::testing::postgres_schema_url().await {
            held_backlog_claim("postgres", seeded_at(&url, tasks).await, tasks).await;
        }
    } else {
        println!("postgres: set USER_TEST_POSTGRES_URL to measure it too");
    }
}

/// The NATS JetStream sink against `USER_BENCH_NATS_URL` (default the
/// machine's `nats://127.0.0.1:4222`), on a stream of its own that it
/// deletes afterwards.
async fn nats(tasks: usize) {
    let url = std::env::var("USER_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let name = format!("BENCH_{}", std::process::id());
    let config = NatsConfig {
        url: url.clone(),
        subject: format!("bench-{}.tasks.{{kind}}", std::process::id()),
        stream: name.clone(),
        create_stream: true,
        ..NatsConfig::default()
    };
    let sink = match NatsSink::connect(&config).await {
        Ok(sink) => Arc::new(sink),
        Err(e) => {
            println!("nats: not measured ({e})");
            return;
        }
    };
    for batch in [100, 500] {
        let (_dir, store) = seeded(tasks).await;
        let (n, t) = drain(store, sink.clone(), batch).await;
        report("nats", batch, n, t);
    }
    if let Ok(client) = async_nats::connect(url.as_str()).await {
        let _ = async_nats::jetstream::new(client).delete_stream(&name).await;
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
