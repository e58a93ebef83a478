//! The relay: at-least-once, ordered per user, retried with backoff, dead
//! letters, crash safety, and the webhook sink against a real receiver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use user_core::clock::{Clock, ManualClock};
use user_core::domain::{Email, Password, TrackBatch, UserId, Username};
use user_core::service::Registration;
use user_core::store::{Store, TaskCounts, TaskStatus};
use user_core::tasks::{DeliveryError, Relay, RelayConfig, TaskEvent, TaskSink, WebhookSink};
use user_core::{ServiceConfig, UserService};

type Behaviour = Box<dyn Fn(&TaskEvent, usize) -> Result<(), DeliveryError> + Send + Sync>;

/// Records what it receives; answers as `behaviour` says (given the event and
/// how many times this task was seen before).
struct Recorder {
    seen: Mutex<Vec<TaskEvent>>,
    behaviour: Behaviour,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    fn new(behaviour: impl Fn(&TaskEvent, usize) -> Result<(), DeliveryError> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self { seen: Mutex::new(Vec::new()), behaviour: Box::new(behaviour) })
    }

    fn ok() -> Arc<Self> {
        Self::new(|_, _| Ok(()))
    }

    fn delivered(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().iter().map(|e| (e.kind.clone(), e.track_id.clone())).collect()
    }
}

#[async_trait]
impl TaskSink for Recorder {
    async fn deliver(&self, event: &TaskEvent) -> Result<(), DeliveryError> {
        let before = self.seen.lock().unwrap().iter().filter(|e| e.id == event.id).count();
        self.seen.lock().unwrap().push(event.clone());
        (self.behaviour)(event, before)
    }
}

struct Fixture {
    service: UserService,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
}

async fn fixture() -> Fixture {
    let store = user_core::testing::memory_store().await;
    let clock = Arc::new(ManualClock::default());
    let config = ServiceConfig { hashing: user_core::auth::HashingConfig::insecure_for_tests(), ..Default::default() };
    let service = UserService::with_clock(store.clone(), config, clock.clone()).await.unwrap();
    Fixture { service, store, clock }
}

impl Fixture {
    async fn user(&self, name: &str) -> UserId {
        let reg = Registration {
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            password: Password::parse("correct horse").unwrap(),
            locale: Default::default(),
        };
        self.service.register(reg, &Default::default()).await.unwrap().id
    }

    async fn add(&self, user: UserId, ids: &str) {
        self.service.add_favorites(user, &TrackBatch::parse(ids).unwrap()).await.unwrap();
    }

    fn relay(&self, sink: Arc<dyn TaskSink>, config: RelayConfig) -> Relay {
        Relay::new(self.store.clone(), sink, config).with_clock(self.clock.clone())
    }

    async fn counts(&self) -> TaskCounts {
        self.store.count_tasks().await.unwrap()
    }
}

fn config() -> RelayConfig {
    RelayConfig {
        backoff_base: Duration::from_secs(10),
        backoff_cap: Duration::from_secs(60),
        ..RelayConfig::default()
    }
}

#[tokio::test]
async fn every_task_is_delivered_once_in_order_with_its_payload() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "1,2").await;
    f.service.remove_favorites(alice, &TrackBatch::parse("1").unwrap()).await.unwrap();
    f.service.delete(alice, &Default::default()).await.unwrap();
    let sink = Recorder::ok();
    let stats = f.relay(sink.clone(), config()).run_once().await.unwrap();
    assert_eq!((stats.claimed, stats.delivered), (4, 4));
    assert_eq!(
        sink.delivered(),
        [
            ("favorite.added".into(), Some("1".into())),
            ("favorite.added".into(), Some("2".into())),
            ("favorite.removed".into(), Some("1".into())),
            ("user.deleted".into(), None)
        ]
    );
    let first = sink.seen.lock().unwrap()[0].clone();
    assert_eq!((first.user_id, first.attempt), (alice.as_uuid(), 1));
    assert_eq!(f.counts().await, TaskCounts { pending: 0, done: 4, dead: 0 });
    assert_eq!(f.relay(sink.clone(), config()).run_once().await.unwrap().claimed, 0);
}

#[tokio::test]
async fn transient_failures_are_retried_with_growing_delays() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "1").await;
    let sink = Recorder::new(|_, seen| if seen < 3 { Err(DeliveryError::Transient("503".into())) } else { Ok(()) });
    let relay = f.relay(sink.clone(), config());
    let mut delays = Vec::new();
    for _ in 0..3 {
        assert_eq!(relay.run_once().await.unwrap().retried, 1);
        let task = f.store.list_tasks(None, None, 1).await.unwrap().remove(0);
        let delay = (task.available_at - f.clock.now()).to_std().unwrap();
        delays.push(delay);
        assert_eq!(relay.run_once().await.unwrap().claimed, 0, "not retried before it is due");
        f.clock.advance(delay);
    }
    // Equal jitter: attempt n waits between half and all of base·2^(n-1).
    for (n, delay) in delays.iter().enumerate() {
        let full = Duration::from_secs(10 * (1 << n));
        assert!(*delay >= full / 2 && *delay <= full, "retry {n}: {delay:?}");
    }
    let stats = relay.run_once().await.unwrap();
    assert_eq!(stats.delivered, 1);
    let attempts: Vec<u32> = sink.seen.lock().unwrap().iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
}

#[tokio::test]
async fn backoff_is_capped() {
    let c = RelayConfig { backoff_base: Duration::from_secs(1), backoff_cap: Duration::from_secs(60), ..config() };
    for failures in [7, 20, 40] {
        assert!(c.backoff(failures) <= Duration::from_secs(60));
        assert!(c.backoff(failures) >= Duration::from_secs(30));
    }
}

#[tokio::test]
async fn a_task_dies_after_max_attempts_keeping_its_last_error() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "1").await;
    let sink = Recorder::new(|_, _| Err(DeliveryError::Transient("connection refused".into())));
    let relay = f.relay(sink, RelayConfig { max_attempts: 3, ..config() });
    for _ in 0..3 {
        relay.run_once().await.unwrap();
        f.clock.advance(Duration::from_secs(3600));
    }
    let dead = f.store.list_tasks(Some(TaskStatus::Dead), None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].last_error.as_deref()), (3, Some("connection refused")));
}

#[tokio::test]
async fn a_permanent_rejection_goes_straight_to_dead_without_blocking_the_user() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "bad").await;
    f.add(alice, "good").await;
    let sink = Recorder::new(|e, _| {
        if e.track_id.as_deref() == Some("bad") { Err(DeliveryError::Permanent("400".into())) } else { Ok(()) }
    });
    let stats = f.relay(sink, config()).run_once().await.unwrap();
    assert_eq!((stats.dead, stats.delivered), (1, 1));
    assert_eq!(f.counts().await, TaskCounts { pending: 0, done: 1, dead: 1 });
}

#[tokio::test]
async fn a_users_later_tasks_wait_for_an_earlier_failed_one_while_other_users_flow() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    f.add(alice, "a1").await;
    f.add(bob, "b1").await;
    f.add(alice, "a2").await;
    let fail_a1_once = Recorder::new(|e, seen| {
        if e.track_id.as_deref() == Some("a1") && seen == 0 {
            Err(DeliveryError::Transient("503".into()))
        } else {
            Ok(())
        }
    });
    let relay = f.relay(fail_a1_once.clone(), config());
    let stats = relay.run_once().await.unwrap();
    assert_eq!((stats.delivered, stats.retried, stats.released), (1, 1, 1));
    f.clock.advance(Duration::from_secs(3600));
    relay.run_once().await.unwrap();
    let order: Vec<_> = fail_a1_once.delivered().into_iter().filter_map(|(_, t)| t).collect();
    let alices: Vec<_> = order.iter().filter(|t| t.starts_with('a')).collect();
    assert_eq!(alices, ["a1", "a1", "a2"], "a2 is never delivered before a1");
    assert_eq!(order.iter().filter(|t| *t == "b1").count(), 1, "bob was not held up");
}

/// A sink that blocks every delivery until released, to kill a relay mid-batch.
#[derive(Debug, Default)]
struct Stuck {
    entered: tokio::sync::Notify,
    calls: AtomicUsize,
}

#[async_trait]
impl TaskSink for Stuck {
    async fn deliver(&self, _: &TaskEvent) -> Result<(), DeliveryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.entered.notify_one();
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_relay_killed_mid_batch_loses_nothing() {
    let f = fixture().await;
    for n in 0..5 {
        let u = f.user(&format!("user{n}")).await;
        f.add(u, "1,2").await;
    }
    let stuck = Arc::new(Stuck::default());
    let doomed = f.relay(stuck.clone(), config());
    let handle = tokio::spawn(async move { doomed.run_once().await });
    stuck.entered.notified().await;
    handle.abort(); // the process dies: its future is dropped mid-delivery
    let _ = handle.await;

    let sink = Recorder::ok();
    let next = f.relay(sink.clone(), config());
    assert_eq!(next.run_once().await.unwrap().claimed, 0, "still leased by the dead relay");
    f.clock.advance(config().lease + Duration::from_secs(1));
    let mut delivered = 0;
    loop {
        let stats = next.run_once().await.unwrap();
        if stats.claimed == 0 {
            break;
        }
        delivered += stats.delivered;
    }
    assert_eq!(delivered, 10);
    assert_eq!(f.counts().await, TaskCounts { pending: 0, done: 10, dead: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_wakes_at_once_on_new_tasks_and_stops_on_shutdown() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    let sink = Recorder::ok();
    let relay =
        Relay::new(f.store.clone(), sink.clone(), RelayConfig { poll_interval: Duration::from_secs(3600), ..config() })
            .with_waker(f.service.task_waker());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { relay.run(async { stopped.await.unwrap_or(()) }).await });
    // The first pass finds nothing; then the relay sleeps for an hour unless woken.
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.add(alice, "1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sink.delivered().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not woken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running).await.expect("stops on shutdown").unwrap();
}

#[tokio::test(start_paused = true)]
async fn delivered_tasks_are_deleted_after_their_retention_and_dead_ones_kept() {
    let f = fixture().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    f.add(alice, "1,2").await;
    f.add(bob, "3").await;
    let bobs =
        Recorder::new(
            move |e, _| {
                if e.user_id == bob.as_uuid() { Err(DeliveryError::Permanent("400".into())) } else { Ok(()) }
            },
        );
    let day = Duration::from_secs(24 * 3600);
    let retention = RelayConfig { retention: Some(7 * day), ..config() };
    f.relay(bobs.clone(), retention.clone()).run_once().await.unwrap();
    assert_eq!(f.counts().await, TaskCounts { pending: 0, done: 2, dead: 1 });

    f.clock.advance(6 * day);
    assert_eq!(f.relay(bobs.clone(), retention.clone()).purge_delivered().await.unwrap(), 0);
    f.clock.advance(2 * day);
    assert_eq!(f.relay(bobs.clone(), RelayConfig { retention: None, ..config() }).purge_delivered().await.unwrap(), 0);
    // A running relay purges on its first pass (then once a minute).
    let relay = f.relay(bobs.clone(), retention);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { relay.run(async { stopped.await.unwrap_or(()) }).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop.send(()).unwrap();
    running.await.unwrap();
    assert_eq!(f.counts().await, TaskCounts { pending: 0, done: 0, dead: 1 });
}

/// Woken by a write, the relay waits `linger` for more before claiming, so
/// steady writes are delivered in full batches rather than one claim each.
/// Real time: the store answers from its own writer thread, which paused
/// time would jump past. The writes happen while the relay is held inside
/// an earlier delivery (blocking one worker thread; the test runs on the
/// other), so they are certainly after its previous claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_relay_lingers_so_writes_close_together_share_one_claim() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "0").await;
    let (entered, mut in_delivery) = tokio::sync::mpsc::unbounded_channel::<()>();
    let gate = Arc::new(std::sync::Barrier::new(2));
    let at = Arc::new(Mutex::new(Vec::new()));
    let (seen, held) = (at.clone(), gate.clone());
    let sink = Recorder::new(move |event, _| {
        if event.track_id.as_deref() == Some("0") {
            entered.send(()).unwrap();
            held.wait();
        } else {
            seen.lock().unwrap().push(tokio::time::Instant::now());
        }
        Ok(())
    });
    let linger = Duration::from_secs(1);
    let relay = Relay::new(
        f.store.clone(),
        sink.clone(),
        RelayConfig { poll_interval: Duration::from_secs(3600), linger, ..config() },
    )
    .with_waker(f.service.task_waker());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { relay.run(async { stopped.await.unwrap_or(()) }).await });
    in_delivery.recv().await.unwrap();
    f.add(alice, "1").await;
    f.add(alice, "2").await;
    f.add(alice, "3").await;
    let released_at = tokio::time::Instant::now();
    tokio::task::spawn_blocking(move || gate.wait()).await.unwrap();
    let deadline = released_at + Duration::from_secs(30);
    while sink.delivered().len() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.delivered().len(), 4);
    let at = at.lock().unwrap().clone();
    let (first, last) = (at[0], at[2]);
    assert!(first >= released_at + linger, "claimed after the linger: {at:?} vs released at {released_at:?}");
    assert!(last - first < linger / 2, "one claim, not one per write: {at:?}");
    stop.send(()).unwrap();
    running.await.unwrap();
}

// ------------------------------------------------------------------ webhook

/// What a receiver saw: signature header, task id header, body, and every header.
type Hit = (String, String, Vec<u8>, warp::http::HeaderMap);

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// A receiver on 127.0.0.1 answering each request with `answer(n)` (n counts
/// from 0), or hanging when it returns `None`.
async fn receiver(answer: impl Fn(usize) -> Option<u16> + Send + Sync + 'static) -> (String, Receiver) {
    use warp::Filter;
    let rx = Receiver::default();
    let hits = rx.hits.clone();
    let answer = Arc::new(answer);
    let route = warp::post()
        .and(warp::header::<String>("x-signature-256"))
        .and(warp::header::<String>("x-task-id"))
        .and(warp::body::bytes())
        .and(warp::header::headers_cloned())
        .then(move |sig: String, id: String, body: bytes::Bytes, headers: warp::http::HeaderMap| {
            let hits = hits.clone();
            let answer = answer.clone();
            async move {
                let n = {
                    let mut hits = hits.lock().unwrap();
                    hits.push((sig, id, body.to_vec(), headers));
                    hits.len() - 1
                };
                match answer(n) {
                    Some(status) => warp::http::StatusCode::from_u16(status).unwrap(),
                    None => std::future::pending().await,
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), rx)
}

fn expected_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies a delivery the way a Standard Webhooks library does: the
/// signature over `id.timestamp.body`, with the secret as the key.
fn assert_standard_webhook(secret: &[u8], headers: &warp::http::HeaderMap, body: &[u8]) {
    use base64::Engine as _;
    use hmac::Mac;
    let header = |name: &str| headers.get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    assert_eq!(id, header("x-task-id"), "the message id is the task id, stable across retries");
    let sent_at: i64 = timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 300, "a current timestamp");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(header("webhook-signature"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_errors_never_show_the_urls_credentials() {
    let f = fixture().await;
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let (rejecting, _rx) = receiver(|_| Some(403)).await;
    let rejecting = rejecting.replace("http://", "http://relay:hunter2@") + "?token=t0ps3cret";
    for (n, url) in
        [format!("http://relay:hunter2@127.0.0.1:{port}/hook?token=t0ps3cret"), rejecting].into_iter().enumerate()
    {
        let user = f.user(&format!("user{n}")).await;
        f.add(user, "1").await;
        let sink = Arc::new(WebhookSink::new(url, b"k".to_vec(), Duration::from_secs(2)).unwrap());
        assert!(!format!("{sink:?}").contains("hunter2"));
        f.relay(sink, config()).run_once().await.unwrap();
    }
    let tasks = f.store.list_tasks(None, None, 10).await.unwrap();
    assert_eq!(tasks.len(), 2);
    for task in tasks {
        let error = task.last_error.unwrap();
        assert!(error.contains("127.0.0.1"), "the error still says where: {error}");
        for secret in ["hunter2", "relay:", "t0ps3cret", "token="] {
            assert!(!error.contains(secret), "{secret} in {error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_receives_signed_json_and_retries_5xx_until_2xx() {
    let (url, rx) = receiver(|n| Some(if n < 2 { 503 } else { 200 })).await;
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "42").await;
    let sink = Arc::new(WebhookSink::new(url, b"s3cret".to_vec(), Duration::from_secs(5)).unwrap());
    let relay = f.relay(sink, config());
    for _ in 0..3 {
        relay.run_once().await.unwrap();
        f.clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(f.counts().await, TaskCounts { pending: 0, done: 1, dead: 0 });
    let hits = rx.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3);
    for (n, (signature, task_id, body, headers)) in hits.iter().enumerate() {
        assert_eq!(signature, &expected_signature(b"s3cret", body), "signature verifies");
        assert_standard_webhook(b"s3cret", headers, body);
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["attempt", "id", "kind", "occurred_at", "track_id", "user_id"]);
        assert_eq!(task_id, &json["id"].to_string());
        assert_eq!((json["kind"].as_str(), json["track_id"].as_str()), (Some("favorite.added"), Some("42")));
        assert_eq!(json["attempt"], n + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_4xx_is_dead_at_once_but_408_and_429_are_retried() {
    let f = fixture().await;
    for (status, expected) in
        [(400, TaskCounts { pending: 0, done: 0, dead: 1 }), (429, TaskCounts { pending: 1, done: 0, dead: 1 })]
    {
        let (url, _rx) = receiver(move |_| Some(status)).await;
        let alice = f.user(&format!("user{status}")).await;
        f.add(alice, "1").await;
        let sink = Arc::new(WebhookSink::new(url, b"k".to_vec(), Duration::from_secs(5)).unwrap());
        f.relay(sink, config()).run_once().await.unwrap();
        assert_eq!(f.counts().await, expected, "status {status}");
    }
    let (url, _rx) = receiver(|_| Some(408)).await;
    let bob = f.user("bob").await;
    f.add(bob, "1").await;
    let sink = Arc::new(WebhookSink::new(url, b"k".to_vec(), Duration::from_secs(5)).unwrap());
    assert_eq!(f.relay(sink, config()).run_once().await.unwrap().retried, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_times_out_and_is_retried() {
    let (url, _rx) = receiver(|_| None).await;
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "1").await;
    let sink = Arc::new(WebhookSink::new(url, b"k".to_vec(), Duration::from_millis(200)).unwrap());
    let stats = f.relay(sink, config()).run_once().await.unwrap();
    assert_eq!(stats.retried, 1);
    let task = f.store.list_tasks(None, None, 1).await.unwrap().remove(0);
    assert!(task.last_error.unwrap().contains("request failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_is_retried() {
    let f = fixture().await;
    let alice = f.user("alice").await;
    f.add(alice, "1").await;
    // Bind then drop, so nothing listens on the port.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let sink =
        Arc::new(WebhookSink::new(format!("http://127.0.0.1:{port}/"), b"k".to_vec(), Duration::from_secs(2)).unwrap());
    assert_eq!(f.relay(sink, config()).run_once().await.unwrap().retried, 1);
}

#[tokio::test]
async fn many_users_tasks_are_delivered_in_one_batch() {
    let f = fixture().await;
    let mut users = HashMap::new();
    for n in 0..30 {
        let u = f.user(&format!("user{n}")).await;
        f.add(u, "1,2,3").await;
        users.insert(u.as_uuid(), n);
    }
    let sink = Recorder::ok();
    let stats = f.relay(sink.clone(), RelayConfig { batch_size: 100, ..config() }).run_once().await.unwrap();
    assert_eq!((stats.claimed, stats.delivered), (90, 90));
    let seen = sink.seen.lock().unwrap().clone();
    for user in users.keys() {
        let ids: Vec<i64> = seen.iter().filter(|e| e.user_id == *user).map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "per-user order");
    }
}

// ------------------------------------------------------------------------ mail

/// Keeps the mails it is given.
#[derive(Debug, Default)]
struct MailCatcher(Mutex<Vec<user_core::mail::Mail>>);

#[async_trait]
impl user_core::mail::MailTransport for MailCatcher {
    async fn send(&self, mail: &user_core::mail::Mail) -> Result<(), DeliveryError> {
        self.0.lock().unwrap().push(mail.clone());
        Ok(())
    }
}

fn mailer(catcher: Arc<MailCatcher>) -> Arc<user_core::mail::Mailer> {
    let settings = user_core::mail::MailSettings {
        product: "Music".into(),
        public_url: "https://music.example".into(),
        verify_url: None,
        reset_url: None,
        revert_url: None,
        verify_token_ttl: Duration::from_secs(86_400),
        reset_token_ttl: Duration::from_secs(3600),
        revert_token_ttl: Duration::from_secs(7 * 86_400),
    };
    Arc::new(user_core::mail::Mailer::new(settings, catcher, None).unwrap())
}

async fn mail_fixture() -> Fixture {
    let store = user_core::testing::memory_store().await;
    let clock = Arc::new(ManualClock::default());
    let config = ServiceConfig {
        hashing: user_core::auth::HashingConfig::insecure_for_tests(),
        mail: user_core::service::MailPolicy { enabled: true, ..Default::default() },
        ..Default::default()
    };
    let service = UserService::with_clock(store.clone(), config, clock.clone()).await.unwrap();
    Fixture { service, store, clock }
}

#[tokio::test]
async fn a_mail_goes_out_with_a_working_link_and_its_token_leaves_the_database() {
    let f = mail_fixture().await;
    let alice = f.user("alice").await;
    let catcher = Arc::new(MailCatcher::default());
    let relay = f.relay(Recorder::ok(), config()).with_mailer(mailer(catcher.clone()));
    let stats = relay.run_once().await.unwrap();
    assert_eq!(stats.delivered, 1);
    let mail = catcher.0.lock().unwrap()[0].clone();
    assert_eq!((mail.to.as_str(), mail.kind), ("alice@example.com", "email.verify"));
    let token = mail.text.split("token=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let tasks = f.store.list_tasks(None, None, 10).await.unwrap();
    assert!(tasks.iter().all(|t| t.payload.is_none()), "the raw token is gone once the mail is out");
    assert_eq!(f.service.verify_email(&token, &Default::default()).await.unwrap(), alice);
}

#[tokio::test]
async fn mail_flows_while_the_event_webhook_is_down_and_waits_without_a_mailer() {
    let f = mail_fixture().await;
    let alice = f.user("alice").await;
    let tracks = TrackBatch::parse("t1,t2").unwrap();
    f.service.add_favorites(alice, &tracks).await.unwrap();
    let down = Recorder::new(|_, _| Err(DeliveryError::Transient("connection refused".into())));
    let catcher = Arc::new(MailCatcher::default());
    let relay = f.relay(down.clone(), config()).with_mailer(mailer(catcher.clone()));
    let stats = relay.run_once().await.unwrap();
    assert_eq!((stats.delivered, stats.retried, stats.released), (1, 1, 1), "{stats:?}");
    assert_eq!(catcher.0.lock().unwrap().len(), 1, "the verification mail went out");

    // A relay without a mailer leaves mail tasks pending (retried), never lost.
    let g = mail_fixture().await;
    g.user("bob").await;
    let stats = g.relay(Recorder::ok(), config()).run_once().await.unwrap();
    assert_eq!((stats.delivered, stats.retried), (0, 1));
    assert_eq!(g.counts().await.pending, 1);
}

#[tokio::test]
async fn idle_guests_are_deleted_by_the_periodic_pass_with_a_user_deleted_task() {
    let f = fixture().await;
    let day = Duration::from_secs(24 * 3600);
    let client = Default::default();
    let idle = f.service.create_guest(Default::default(), &client).await.unwrap();
    let active = f.service.create_guest(Default::default(), &client).await.unwrap();
    f.add(idle.user.id, "1").await;
    let relay = f.relay(Recorder::ok(), config());
    f.relay(Recorder::ok(), config()).run_once().await.unwrap();
    f.clock.advance(29 * day);
    f.service.refresh(&active.tokens.refresh, &client).await.unwrap();
    f.clock.advance(2 * day);
    assert_eq!(relay.purge_idle_guests().await.unwrap(), 1, "31 days idle: gone; refreshed 2 days ago: kept");
    assert!(f.service.get(idle.user.id).await.is_err());
    assert!(f.service.get(active.user.id).await.is_ok());
    let sink = Recorder::ok();
    f.relay(sink.clone(), config()).run_once().await.unwrap();
    assert_eq!(sink.delivered(), [("user.deleted".to_owned(), None)]);
    let kept = RelayConfig { guest_ttl: None, ..config() };
    f.clock.advance(60 * day);
    assert_eq!(f.relay(Recorder::ok(), kept).purge_idle_guests().await.unwrap(), 0, "`off` keeps guests");
    assert_eq!(relay.purge_idle_guests().await.unwrap(), 1);
}
