//! The load generator of `bench/run`'s `realistic`, `soak` and `growth`
//! scenarios: many users, each with their own session, over keep-alive
//! HTTP/1.1 connections in a closed loop (like `wrk`, but a request depends
//! on the user's state: rotated refresh tokens, cursors, favorites added
//! earlier). Each connection owns its users, so no two requests ever present
//! one refresh token.
//!
//! Logins run on connections of their own (eight, to keep the hashing busy),
//! paced to exactly one login per 99 other requests: on a shared connection
//! a login (an argon2 hash, 10 ms of a core) would hold up the 99 requests
//! behind it, which no independent user would wait for. The pacing holds the
//! share both ways: when logins fall behind, the other connections wait.
//!
//! The mix per request: 60% `GET /user/get`, 15% `GET /user/track/favorite`
//! (a first page, or one page deeper), 10% `contains` of 20 ids (about half
//! held), 10% add or remove of 1–5 ids, 4% `POST /user/refresh`, 1% login.
//! `--mix healthz` sends only `GET /healthz` (the floor, measured by the same
//! client); `--mix favorite` only the adds and removes.
//!
//! Prints per endpoint and per interval; `--json` writes it all for `plot`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, SET_COOKIE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use user_bench::Histogram;

#[derive(Parser, Debug)]
struct Args {
    /// The server, `http://127.0.0.1:PORT`.
    #[arg(long)]
    base: String,
    /// The sessions file `seed sessions` wrote (for `--mix realistic`).
    #[arg(long)]
    sessions: Option<String>,
    #[arg(long, default_value = "realistic")]
    mix: String,
    /// The realistic mix without its 1% of logins (the rest in the same shares).
    #[arg(long)]
    no_logins: bool,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds per line of the per-interval table.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// The server's pid: its memory and open files are sampled.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's database: WAL size or connections, and the outbox backlog, are sampled.
    #[arg(long)]
    database: Option<String>,
    /// Where to write the report as JSON.
    #[arg(long)]
    json: Option<String>,
    /// A name for the report (the table size, for `growth`).
    #[arg(long, default_value = "")]
    label: String,
}

/// The endpoints of the mix, in report order.
const ENDPOINTS: [&str; 7] = ["get", "favorites", "contains", "add/remove", "refresh", "login", "healthz"];

/// One user's state, owned by one connection.
struct User {
    name: String,
    access: String,
    refresh: String,
    favorites: u64,
    /// Batches this connection added and has not removed yet.
    added: Vec<String>,
    cursor: Option<String>,
}

#[derive(Default)]
struct Stats {
    interval: Histogram,
    /// The interval's requests but logins (whose hash puts them at the 99th percentile).
    interval_without_logins: Histogram,
    interval_errors: u64,
    endpoints: BTreeMap<&'static str, (Histogram, u64)>,
    /// Track ids in acknowledged adds and removes: one outbox row each.
    changes: u64,
}

#[derive(Serialize, Default, Clone)]
struct Interval {
    end_s: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p99_without_logins_ms: f64,
    errors: u64,
    rss_mib: f64,
    open_files: u64,
    wal_mib: Option<f64>,
    db_connections: Option<i64>,
    outbox_backlog: Option<i64>,
}

#[derive(Serialize)]
struct EndpointReport {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

#[derive(Serialize)]
struct Report {
    label: String,
    mix: String,
    connections: usize,
    seconds: f64,
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    changes: u64,
    peak_rss_mib: f64,
    final_rss_mib: f64,
    endpoints: BTreeMap<&'static str, EndpointReport>,
    intervals: Vec<Interval>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let authority = args.base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let users = match (&args.sessions, args.mix.as_str()) {
        (Some(file), "realistic" | "favorite") => read_sessions(file)?,
        (None, "realistic" | "favorite") => return Err("--mix realistic and favorite need --sessions".into()),
        (_, "healthz") => Vec::new(),
        (_, other) => return Err(format!("unknown mix {other}").into()),
    };
    let connections = args.connections.max(1);
    let mut owned: Vec<Vec<User>> = (0..connections).map(|_| Vec::new()).collect();
    for (i, user) in users.into_iter().enumerate() {
        owned[i % connections].push(user);
    }
    // The login connections take their users from the others' (logins
    // need only a name; a new session's tokens are not used further).
    let login_names: Vec<String> = owned.iter().flatten().map(|u| u.name.clone()).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let pacer = Arc::new(Pacer::default());
    let mut stats = Vec::new();
    let mut tasks = Vec::new();
    for (c, users) in owned.into_iter().enumerate() {
        let shared = Arc::new(Mutex::new(Stats::default()));
        stats.push(shared.clone());
        let (authority, pacer) = (authority.clone(), pacer.clone());
        let shape =
            Shape { logins: args.mix == "realistic" && !args.no_logins, only_favorites: args.mix == "favorite" };
        tasks.push(tokio::spawn(async move { connection(c, &authority, shape, users, deadline, shared, pacer).await }));
    }
    if !login_names.is_empty() && !args.no_logins && args.mix == "realistic" {
        for l in 0..LOGIN_CONNECTIONS {
            let shared = Arc::new(Mutex::new(Stats::default()));
            stats.push(shared.clone());
            let (authority, pacer, names) = (authority.clone(), pacer.clone(), login_names.clone());
            tasks.push(tokio::spawn(async move { logins(l, &authority, names, deadline, shared, pacer).await }));
        }
    }
    let sampler = Sampler::new(args.server_pid, args.database.as_deref()).await;
    let mut intervals = Vec::new();
    let mut peak_rss: f64 = 0.0;
    let mut last_rss = 0.0;
    let mut last = started;
    let interval = Duration::from_secs(args.interval.max(1));
    let sample_every = Duration::from_secs(5).min(interval);
    let mut next_line = started + interval;
    while Instant::now() < deadline {
        tokio::time::sleep(sample_every.min(deadline.saturating_duration_since(Instant::now()))).await;
        let sample = sampler.sample().await;
        peak_rss = peak_rss.max(sample.rss_mib);
        last_rss = sample.rss_mib;
        let now = Instant::now();
        if now >= next_line || now >= deadline {
            let (mut h, mut others) = (Histogram::default(), Histogram::default());
            let mut errors = 0;
            for s in &stats {
                let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
                h.merge(&s.interval);
                others.merge(&s.interval_without_logins);
                errors += s.interval_errors;
                s.interval = Histogram::default();
                s.interval_without_logins = Histogram::default();
                s.interval_errors = 0;
            }
            let line = Interval {
                end_s: started.elapsed().as_secs_f64(),
                rps: h.count() as f64 / (now - last).as_secs_f64(),
                p50_ms: h.percentile_ms(50.0),
                p99_ms: h.percentile_ms(99.0),
                p99_without_logins_ms: others.percentile_ms(99.0),
                errors,
                ..sample
            };
            eprintln!(
                "  {:>6.0} s  {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms ({:.2} without logins)  errors {}  RSS {:.0} MiB  files {}{}{}{}",
                line.end_s,
                line.rps,
                line.p50_ms,
                line.p99_ms,
                line.p99_without_logins_ms,
                line.errors,
                line.rss_mib,
                line.open_files,
                line.wal_mib.map(|w| format!("  WAL {w:.1} MiB")).unwrap_or_default(),
                line.db_connections.map(|c| format!("  db connections {c}")).unwrap_or_default(),
                line.outbox_backlog.map(|b| format!("  outbox backlog {b}")).unwrap_or_default(),
            );
            intervals.push(line);
            last = now;
            next_line = now + interval;
        }
    }
    for task in tasks {
        task.await?.map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut all = Histogram::default();
    let (mut errors, mut changes) = (0, 0);
    let mut endpoints: BTreeMap<&'static str, (Histogram, u64)> = BTreeMap::new();
    for s in &stats {
        let s = s.lock().unwrap_or_else(PoisonError::into_inner);
        changes += s.changes;
        for (name, (h, e)) in &s.endpoints {
            all.merge(h);
            errors += e;
            let entry = endpoints.entry(name).or_default();
            entry.0.merge(h);
            entry.1 += e;
        }
    }
    let report = Report {
        label: args.label.clone(),
        mix: args.mix.clone(),
        connections,
        seconds,
        requests: all.count(),
        rps: all.count() as f64 / seconds,
        p50_ms: all.percentile_ms(50.0),
        p99_ms: all.percentile_ms(99.0),
        errors,
        changes,
        peak_rss_mib: peak_rss,
        final_rss_mib: last_rss,
        endpoints: ENDPOINTS
            .iter()
            .filter_map(|name| {
                let (h, e) = endpoints.get(name)?;
                let rps = h.count() as f64 / seconds;
                Some((
                    *name,
                    EndpointReport {
                        requests: h.count(),
                        rps,
                        p50_ms: h.percentile_ms(50.0),
                        p99_ms: h.percentile_ms(99.0),
                        errors: *e,
                    },
                ))
            })
            .collect(),
        intervals,
    };
    for (name, e) in &report.endpoints {
        eprintln!(
            "  {name:<11} {:>9} requests {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
            e.requests, e.rps, e.p50_ms, e.p99_ms, e.errors
        );
    }
    println!(
        "RESULT rps={:.1} p50_ms={:.2} p99_ms={:.2} errors={} requests={} changes={} peak_rss_mib={:.0} final_rss_mib={:.0}",
        report.rps,
        report.p50_ms,
        report.p99_ms,
        report.errors,
        report.requests,
        report.changes,
        report.peak_rss_mib,
        report.final_rss_mib
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn read_sessions(file: &str) -> Result<Vec<User>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let [name, _id, favorites, access, refresh] = f[..] else {
                return Err(format!("malformed session line: {line}").into());
            };
            Ok(User {
                name: name.to_owned(),
                access: access.to_owned(),
                refresh: refresh.to_owned(),
                favorites: favorites.parse()?,
                added: Vec::new(),
                cursor: None,
            })
        })
        .collect()
}

/// Connections that only log in.
const LOGIN_CONNECTIONS: usize = 8;

/// Keeps logins at one per [`OTHERS_PER_LOGIN`] other requests.
#[derive(Default)]
struct Pacer {
    others: std::sync::atomic::AtomicU64,
    logins: std::sync::atomic::AtomicU64,
    changed: tokio::sync::Notify,
}

const OTHERS_PER_LOGIN: u64 = 99;

impl Pacer {
    /// Waits until one more other request keeps the share (logins may lag
    /// by one per login connection), then counts it.
    async fn other(&self, deadline: Instant, logins_on: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        while logins_on && Instant::now() < deadline {
            let notified = self.changed.notified();
            let allowed = (self.logins.load(SeqCst) + LOGIN_CONNECTIONS as u64) * OTHERS_PER_LOGIN;
            if self.others.load(SeqCst) < allowed {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        self.others.fetch_add(1, SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits until the others have sent their share since the last login, then counts one.
    async fn login(&self, deadline: Instant) {
        use std::sync::atomic::Ordering::SeqCst;
        while Instant::now() < deadline {
            let notified = self.changed.notified();
            if self.others.load(SeqCst) >= self.logins.load(SeqCst) * OTHERS_PER_LOGIN {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        self.logins.fetch_add(1, SeqCst);
    }

    fn login_done(&self) {
        self.changed.notify_waiters();
    }
}

/// A login connection: logs the users in, in turn, as the pacer allows.
async fn logins(
    l: usize,
    authority: &str,
    names: Vec<String>,
    deadline: Instant,
    stats: Arc<Mutex<Stats>>,
    pacer: Arc<Pacer>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut sender = connect(authority).await?;
    let mut n = l;
    loop {
        pacer.login(deadline).await;
        if Instant::now() >= deadline {
            return Ok(());
        }
        let body = format!(r#"{{"username":"{}","password":"correct horse"}}"#, names[n % names.len()]);
        n += LOGIN_CONNECTIONS;
        let sent = Instant::now();
        let ok = send(
            &mut sender,
            authority,
            "login",
            build("POST", "/user/login", authority, None, None, Some(body)),
            deadline,
        )
        .await?
        .is_some();
        pacer.login_done();
        record(&stats, "login", sent, ok);
    }
}

/// Sends `request`; its status, `refresh_token` cookie and body, or `None`
/// (reported) for a failure. A broken connection is replaced.
async fn send(
    sender: &mut Sender,
    authority: &str,
    endpoint: &str,
    request: Result<Request<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>>,
    deadline: Instant,
) -> Result<Option<(Option<String>, Bytes)>, Box<dyn std::error::Error + Send + Sync>> {
    let outcome =
        async {
            sender.ready().await?;
            let response = sender.send_request(request?).await?;
            let status = response.status();
            let refresh =
                response.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
                    v.strip_prefix("refresh_token=").map(|r| r.split(';').next().unwrap_or("").to_owned())
                });
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, refresh, body))
        }
        .await;
    match outcome {
        Ok((status, refresh, body)) if status.is_success() => Ok(Some((refresh, body))),
        Ok((status, _, body)) => {
            eprintln!("{endpoint}: {status} {}", String::from_utf8_lossy(&body));
            Ok(None)
        }
        Err(e) => {
            eprintln!("{endpoint}: {e}");
            if Instant::now() < deadline {
                *sender = connect(authority).await?;
            }
            Ok(None)
        }
    }
}

fn record(stats: &Mutex<Stats>, endpoint: &'static str, sent: Instant, ok: bool) {
    let micros = sent.elapsed().as_micros() as u64;
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    s.interval.record(micros);
    if endpoint != "login" {
        s.interval_without_logins.record(micros);
    }
    let entry = s.endpoints.entry(endpoint).or_default();
    entry.0.record(micros);
    if !ok {
        entry.1 += 1;
        s.interval_errors += 1;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What a mix connection sends besides its shares.
#[derive(Clone, Copy)]
struct Shape {
    /// Logins run (on their own connections): wait for them to keep their share.
    logins: bool,
    /// Only adds and removes (`--mix favorite`).
    only_favorites: bool,
}

/// One keep-alive connection sending the mix (logins aside) for its users until `deadline`.
async fn connection(
    c: usize,
    authority: &str,
    shape: Shape,
    mut users: Vec<User>,
    deadline: Instant,
    stats: Arc<Mutex<Stats>>,
    pacer: Arc<Pacer>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut sender = connect(authority).await?;
    let mut rng = StdRng::seed_from_u64(c as u64 ^ u64::from(std::process::id()) << 32);
    // Ids no earlier run can have left behind: an add of one would change nothing.
    let run: u32 = rand::random();
    let mut batch = 0_u64;
    loop {
        pacer.other(deadline, shape.logins).await;
        if Instant::now() >= deadline {
            return Ok(());
        }
        let (endpoint, request, user) = if users.is_empty() {
            ("healthz", build("GET", "/healthz", authority, None, None, None), None)
        } else {
            let u = rng.random_range(0..users.len());
            let user = &mut users[u];
            let bearer = Some(user.access.as_str());
            // Out of 99: the mix's shares without the 1% of logins.
            let roll = if shape.only_favorites { 85 } else { rng.random_range(0..99) };
            let (endpoint, request) = match roll {
                0..60 => ("get", build("GET", "/user/get", authority, bearer, None, None)),
                60..75 => {
                    let path = match (&user.cursor, rng.random_bool(0.2)) {
                        (Some(cursor), true) => format!("/user/track/favorite?limit=50&cursor={cursor}"),
                        _ => "/user/track/favorite?limit=50".to_owned(),
                    };
                    ("favorites", build("GET", &path, authority, bearer, None, None))
                }
                75..85 => {
                    let ids: Vec<String> =
                        (0..20).map(|_| format!("t{}", rng.random_range(0..user.favorites * 2 + 1))).collect();
                    let path = format!("/user/track/favorite/contains?track_id={}", ids.join(","));
                    ("contains", build("GET", &path, authority, bearer, None, None))
                }
                85..95 => {
                    let remove = !user.added.is_empty() && (user.added.len() >= 8 || rng.random_bool(0.5));
                    let (method, ids) = if remove {
                        ("DELETE", user.added.last().cloned().unwrap_or_default())
                    } else {
                        batch += 1;
                        let n = rng.random_range(1..=5);
                        ("POST", (0..n).map(|i| format!("b{run:x}x{c}x{batch}x{i}")).collect::<Vec<_>>().join(","))
                    };
                    let request =
                        build(method, &format!("/user/track/favorite?track_id={ids}"), authority, bearer, None, None);
                    if !remove {
                        user.added.push(ids.clone());
                    }
                    (if remove { "remove" } else { "add" }, request)
                }
                _ => {
                    let cookie = format!("refresh_token={}", user.refresh);
                    ("refresh", build("POST", "/user/refresh", authority, None, Some(&cookie), None))
                }
            };
            (endpoint, request, Some(u))
        };
        let sent = Instant::now();
        let answer = send(&mut sender, authority, endpoint, request, deadline).await?;
        if let Some(u) = user {
            let user = &mut users[u];
            match (&answer, endpoint) {
                (Some(_), "add" | "remove") => {
                    let ids = user.added.last();
                    stats.lock().unwrap_or_else(PoisonError::into_inner).changes +=
                        ids.map_or(0, |b| b.split(',').count() as u64);
                    if endpoint == "remove" {
                        user.added.pop();
                    }
                }
                // A refused add leaves nothing to remove later; a refused remove is tried again.
                (None, "add") => {
                    user.added.pop();
                }
                (Some((refresh, body)), "favorites" | "refresh") => settle(user, endpoint, refresh.clone(), body),
                _ => {}
            }
        }
        record(
            &stats,
            if endpoint == "add" || endpoint == "remove" { "add/remove" } else { endpoint },
            sent,
            answer.is_some(),
        );
    }
}

fn build(
    method: &str,
    path: &str,
    authority: &str,
    bearer: Option<&str>,
    cookie: Option<&str>,
    json: Option<String>,
) -> Result<Request<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = Request::builder().method(method).uri(path).header(HOST, authority);
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let body = match json {
        Some(body) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Bytes::from(body)
        }
        None => Bytes::new(),
    };
    Ok(request.body(Full::new(body))?)
}

/// Takes what a successful page or refresh changes in the user's state.
fn settle(user: &mut User, endpoint: &str, refresh: Option<String>, body: &[u8]) {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match endpoint {
        "favorites" => user.cursor = answer["next_cursor"].as_str().map(str::to_owned),
        "refresh" => {
            if let Some(token) = answer["token"].as_str() {
                user.access = token.to_owned();
            }
            if let Some(refresh) = refresh {
                user.refresh = refresh;
            }
        }
        _ => {}
    }
}

/// Samples the server's memory and files, and the database.
struct Sampler {
    pid: Option<u32>,
    wal: Option<String>,
    sqlite: Option<String>,
    postgres: Option<sqlx::PgPool>,
}

impl Sampler {
    async fn new(pid: Option<u32>, database: Option<&str>) -> Self {
        let sqlite = database.and_then(|d| d.strip_prefix("sqlite://")).map(str::to_owned);
        let postgres = match database {
            Some(url) if url.starts_with("postgres") => sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .map_err(|e| eprintln!("cannot sample the database: {e}"))
                .ok(),
            _ => None,
        };
        Self { pid, wal: sqlite.as_ref().map(|p| format!("{p}-wal")), sqlite, postgres }
    }

    async fn sample(&self) -> Interval {
        let mut sample = Interval::default();
        if let Some(pid) = self.pid {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kib = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
            sample.rss_mib = kib.unwrap_or(0.0) / 1024.0;
            sample.open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
        }
        const BACKLOG: &str = "select count(*) from deferred_tasks where status = 'pending'";
        if let (Some(wal), Some(path)) = (&self.wal, &self.sqlite) {
            sample.wal_mib = Some(std::fs::metadata(wal).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0));
            let path = path.clone();
            sample.outbox_backlog = tokio::task::spawn_blocking(move || {
                let c =
                    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
                c.busy_timeout(Duration::from_secs(1)).ok()?;
                c.query_row(BACKLOG, [], |r| r.get(0)).ok()
            })
            .await
            .ok()
            .flatten();
        }
        if let Some(pool) = &self.postgres {
            sample.db_connections = sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
            )
            .fetch_one(pool)
            .await
            .ok();
            sample.outbox_backlog = sqlx::query_scalar::<_, i64>(BACKLOG).fetch_one(pool).await.ok();
        }
        sample
    }
}
