//! Logs (tracing), traces (OpenTelemetry over OTLP/HTTP, when asked for)
//! and metrics (Prometheus).

use std::collections::HashMap;
use std::io::Write;

use opentelemetry_otlp::WithExportConfig;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether a request id is short and plain enough to echo and log as is:
/// a crafted one could otherwise forge fields of the access line.
pub(crate) fn is_sane_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Installs the global tracing subscriber; later calls are no-ops (their
/// guard holds nothing). With `traces`, spans are exported too (see
/// [`TraceExport`]); without, the subscriber is the log formatter alone.
///
/// Lines go to stderr through a [`BatchedStderr`], so a request never waits
/// on the terminal or the pipe behind it (the access log writes one line per
/// request); no line is dropped.
pub fn init_logging(format: LogFormat, filter: &str, traces: Option<TraceExport>) -> LogGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};

    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,warp::server=off"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = BatchedStderr::start();
    let writer_for_access = writer.clone();
    let (installed, provider) = match traces {
        // The subscriber as it always was: nothing on a request's path
        // checks for spans nobody exports.
        None => {
            let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(writer);
            let installed = match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
            };
            (installed.is_ok(), None)
        }
        Some(TraceExport(provider)) => {
            // Each layer filters for itself: `USER_LOG` says what is logged,
            // and the exporter takes every span of ours (store calls and
            // deliveries are DEBUG spans, not logged at the default level).
            let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer);
            let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
                LogFormat::Text => fmt.with_filter(filter).boxed(),
                LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).with_filter(filter).boxed(),
            };
            let ours = AskEachTime(
                tracing_subscriber::filter::Targets::new()
                    .with_target("user_server", tracing::Level::DEBUG)
                    .with_target("user_core", tracing::Level::DEBUG),
            );
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "user-server");
            let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_threads(false).with_filter(ours);
            let installed = tracing_subscriber::registry().with(fmt).with(otel).try_init().is_ok();
            if installed {
                let _ = EXPORTING_TRACES.set(());
            }
            (installed, Some(provider))
        }
    };
    if !installed {
        return LogGuard { _writer: None, _traces: None };
    }
    let _ = ACCESS_LOG.set((writer_for_access, format));
    LogGuard { _writer: Some(guard), _traces: provider.map(TracesGuard) }
}

/// A per-layer filter that never lets a callsite cache its interest, so
/// each span and event is asked about as it happens. Per-layer filters
/// pass their verdict to the layer through a thread-local that an
/// `enabled` check without a following span leaves stale (sqlx's query
/// logger does one after every query); a callsite with a cached interest
/// skips the check and reads the stale verdict, and its span silently
/// never reaches the exporter (tokio-rs/tracing#2519: here, one request
/// span in ten on PostgreSQL).
struct AskEachTime(tracing_subscriber::filter::Targets);

impl<S> tracing_subscriber::layer::Filter<S> for AskEachTime {
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        tracing_subscriber::layer::Filter::<S>::enabled(&self.0, meta, cx)
    }

    fn callsite_enabled(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        tracing_subscriber::layer::Filter::<S>::max_level_hint(&self.0)
    }
}

/// Set once spans are exported; read on each request.
static EXPORTING_TRACES: OnceLock<()> = OnceLock::new();

/// Whether spans are exported: requests then record the OpenTelemetry
/// attributes and continue the caller's `traceparent`.
pub fn exporting_traces() -> bool {
    EXPORTING_TRACES.get().is_some()
}

/// Trace export over OTLP/HTTP, configured by the standard `OTEL_*`
/// variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) turns
/// it on; `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or
/// `http/json`), `…_HEADERS`, `…_TIMEOUT`, `…_COMPRESSION`, `OTEL_SERVICE_NAME`
/// (default `user-server`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
/// (`…_ARG`) and `OTEL_BSP_*` are read by the OpenTelemetry SDK.
/// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turns it off.
pub struct TraceExport(opentelemetry_sdk::trace::SdkTracerProvider);

impl std::fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceExport")
    }
}

impl TraceExport {
    /// The exporter the environment asks for, if any.
    ///
    /// # Errors
    /// A setting it cannot honour: gRPC (not built in), an unknown protocol
    /// or exporter, or an endpoint the exporter refuses.
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(format!("OTEL_TRACES_EXPORTER={other} is not supported; use otlp or none"));
            }
        }
        if var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() && var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
            return Ok(None);
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let protocol = match protocol.map(|p| p.trim().to_ascii_lowercase()).as_deref() {
            None | Some("http/protobuf") => opentelemetry_otlp::Protocol::HttpBinary,
            Some("http/json") => opentelemetry_otlp::Protocol::HttpJson,
            Some("grpc") => {
                return Err("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not built into user-server; use http/protobuf \
                            (the collector's port 4318)"
                    .into());
            }
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported; use http/protobuf or http/json"
                ));
            }
        };
        // reqwest is built without a default TLS provider: an https
        // endpoint needs one installed before its client is built.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()
            .map_err(|e| format!("OpenTelemetry exporter: {e}"))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        let named = var("OTEL_SERVICE_NAME").is_some()
            || var("OTEL_RESOURCE_ATTRIBUTES")
                .is_some_and(|a| a.split(',').any(|kv| kv.trim().starts_with("service.name=")));
        if !named {
            resource = resource.with_service_name("user-server");
        }
        let resource =
            resource.with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Some(Self(provider)))
    }
}

/// Sends the spans still waiting when the server stops.
struct TracesGuard(opentelemetry_sdk::trace::SdkTracerProvider);

impl Drop for TracesGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("user-server: OpenTelemetry: spans not exported at shutdown: {e}");
        }
    }
}

/// Where [`log_access`] writes, and in which layout; set with the subscriber.
static ACCESS_LOG: OnceLock<(BatchedStderr, LogFormat)> = OnceLock::new();

/// Writes the access log line of one request (target `access`, level INFO,
/// honouring the `USER_LOG` filter) in the layout tracing gives every other
/// line, text or JSON, without colours.
///
/// Formatted here rather than by tracing's formatter, which took about a
/// tenth of a cheap request's time: no field visitor, no `fmt` for the
/// numbers, the timestamp's date and time formatted once a second, the line
/// built in a buffer of the thread's own.
pub fn log_access(request_id: &str, method: &str, route: &str, status: u16, elapsed: Duration) {
    let Some((writer, format)) = ACCESS_LOG.get() else { return };
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static LINE: std::cell::RefCell<(Vec<u8>, ClockText)> = const { std::cell::RefCell::new((Vec::new(), ClockText::EMPTY)) };
    }
    LINE.with_borrow_mut(|(line, clock)| {
        line.clear();
        let access = AccessLine { request_id, method, route, status, elapsed };
        access.write(line, *format, clock.at(std::time::SystemTime::now()));
        writer.append(line);
    });
}

/// One request's access log fields.
struct AccessLine<'a> {
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    status: u16,
    elapsed: Duration,
}

impl AccessLine<'_> {
    /// Appends the line, newline included. No field needs escaping: a
    /// method is an HTTP token, routes are ours, and a request id that is not
    /// of the checked kind (letters, digits, `-_.`) is written as `invalid`.
    fn write(&self, out: &mut Vec<u8>, format: LogFormat, timestamp: &[u8]) {
        // What comes before each field's value, and the line's end.
        let [start, id, method, route, status, latency, end] = match format {
            LogFormat::Json => [
                "{\"timestamp\":\"",
                "\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":\"",
                "\",\"method\":\"",
                "\",\"route\":\"",
                "\",\"status\":",
                ",\"latency_ms\":",
                ",\"target\":\"access\"}\n",
            ],
            LogFormat::Text => [
                "",
                "  INFO access: request request_id=\"",
                "\" method=",
                " route=\"",
                "\" status=",
                " latency_ms=",
                "\n",
            ],
        };
        let request_id = if is_sane_request_id(self.request_id) { self.request_id } else { "invalid" };
        out.extend_from_slice(start.as_bytes());
        out.extend_from_slice(timestamp);
        for (before, value) in [(id, request_id), (method, self.method), (route, self.route)] {
            out.extend_from_slice(before.as_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(status.as_bytes());
        push_decimal(out, u64::from(self.status));
        out.extend_from_slice(latency.as_bytes());
        push_millis(out, self.elapsed);
        out.extend_from_slice(end.as_bytes());
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `elapsed` in milliseconds to the nanosecond, without trailing
/// zeros (`0.113419`, `2.5`, `7.0`).
fn push_millis(out: &mut Vec<u8>, elapsed: Duration) {
    let nanos = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
    push_decimal(out, nanos / 1_000_000);
    out.push(b'.');
    let mut fraction = nanos % 1_000_000;
    let mut width = 6;
    while width > 1 && fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    let mut digits = [b'0'; 6];
    for digit in digits[..width].iter_mut().rev() {
        *digit = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// An RFC 3339 UTC timestamp with microseconds, as tracing writes it, whose
/// date and time of day are formatted again only when the second changes.
struct ClockText {
    second: i64,
    text: [u8; 27],
}

impl ClockText {
    const EMPTY: Self = Self { second: i64::MIN, text: [b'0'; 27] };

    fn at(&mut self, now: std::time::SystemTime) -> &[u8] {
        let since_epoch = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs() as i64;
        if second != self.second {
            let date = chrono::DateTime::from_timestamp(second, 0).unwrap_or_default();
            let formatted = date.format("%Y-%m-%dT%H:%M:%S").to_string();
            self.text[..19].copy_from_slice(&formatted.as_bytes()[..19]);
            self.text[19] = b'.';
            self.text[26] = b'Z';
            self.second = second;
        }
        let mut micros = since_epoch.subsec_micros();
        for digit in self.text[20..26].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        &self.text
    }
}

/// Keeps the log writer running; dropping it writes out what is waiting.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    // Dropped first: the spans' last export may log through the writer.
    _traces: Option<TracesGuard>,
    _writer: Option<WriterGuard>,
}

/// Bytes of log waiting to be written past which a request waits for the
/// writer (backpressure, never a lost line).
const LOG_BUFFER_LIMIT: usize = 4 << 20;

/// How long the writer lets lines gather after the first one arrives, so a
/// busy server writes a few large chunks a second instead of a line per
/// request (and the writer thread is woken once per chunk).
const LOG_GATHER: Duration = Duration::from_millis(10);

/// A log sink whose writes append to a shared buffer that a thread of its
/// own writes to stderr.
#[derive(Clone)]
pub struct BatchedStderr(Arc<LogBuffer>);

struct LogBuffer {
    pending: Mutex<Pending>,
    /// Signals the writer that lines arrived, and writers that room came.
    changed: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

/// Stops the writer thread after it has written everything (on drop).
pub struct WriterGuard {
    buffer: Arc<LogBuffer>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BatchedStderr {
    fn start() -> (Self, WriterGuard) {
        Self::start_to(std::io::stderr())
    }

    /// The writer, writing to `out` instead of stderr.
    fn start_to(out: impl Write + Send + 'static) -> (Self, WriterGuard) {
        let buffer = Arc::new(LogBuffer { pending: Mutex::new(Pending::default()), changed: Condvar::new() });
        let shared = buffer.clone();
        let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || shared.write_out(out));
        let thread = match thread {
            Ok(thread) => Some(thread),
            // No thread: writes go straight to stderr (see `write`).
            Err(_) => {
                buffer.lock().closed = true;
                None
            }
        };
        (Self(buffer.clone()), WriterGuard { buffer, thread })
    }
}

impl LogBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: waits for lines, lets more gather, writes them.
    fn write_out(&self, mut out: impl Write) {
        let mut chunk = Vec::new();
        loop {
            {
                let mut pending = self.lock();
                while pending.bytes.is_empty() && !pending.closed {
                    pending = self.changed.wait(pending).unwrap_or_else(PoisonError::into_inner);
                }
                if pending.bytes.is_empty() {
                    return;
                }
                if !pending.closed {
                    drop(pending);
                    std::thread::sleep(LOG_GATHER);
                    pending = self.lock();
                }
                std::mem::swap(&mut chunk, &mut pending.bytes);
            }
            self.changed.notify_all();
            // Nowhere to report a failing stderr; the lines are dropped.
            let _ = out.write_all(&chunk).and_then(|()| out.flush());
            chunk.clear();
        }
    }
}

impl BatchedStderr {
    /// Queues `line` for the writer thread (waiting while the buffer is
    /// full), or writes it to stderr once the writer has stopped.
    fn append(&self, line: &[u8]) {
        let mut pending = self.0.lock();
        if pending.closed {
            drop(pending);
            // Nowhere to report a failing stderr.
            let _ = std::io::stderr().write_all(line);
            return;
        }
        while pending.bytes.len() >= LOG_BUFFER_LIMIT && !pending.closed {
            pending = self.0.changed.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.0.changed.notify_all();
        }
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.buffer.lock().closed = true;
        self.buffer.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the recorder folds recorded histogram samples into its buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder (installed on first use).
///
/// The recorder keeps every histogram sample until a scrape or an upkeep
/// folds it into the buckets; with nobody scraping, that grew memory by
/// about 0.6 MiB/s under load. A thread of its own runs the upkeep every
/// 5 s, so memory stays flat whether or not `/metrics` is read.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            .expect("static bucket list is not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // An embedding application installed its own recorder: render ours empty.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        start_series_at_zero();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                if let Some(rss) = resident_memory_bytes() {
                    metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
                }
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the metrics upkeep; memory grows until /metrics is scraped");
        }
        handle
    })
}

/// Counters (and the hashing gauge) exist from the start at zero, not from
/// their first event: `rate()` and alerts on them then work from the first
/// scrape, and a dashboard finds every series it names.
fn start_series_at_zero() {
    for outcome in ["success", "wrong_password", "unknown_user", "disabled", "throttled", "error"] {
        metrics::counter!("login_attempts_total", "outcome" => outcome).increment(0);
    }
    for action in ["register", "login", "refresh", "update"] {
        metrics::counter!("throttled_total", "action" => action).increment(0);
    }
    for outcome in ["delivered", "retry", "dead"] {
        metrics::counter!("task_deliveries_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("tasks_purged_total").increment(0);
    metrics::counter!("connections_refused_total", "reason" => "per_ip").increment(0);
    metrics::counter!("connections_closed_idle_total").increment(0);
    metrics::counter!("tls_handshake_failures_total").increment(0);
    metrics::counter!("password_hash_overloaded_total").increment(0);
    metrics::gauge!("password_hash_jobs").increment(0.0);
}

/// The process's resident memory, from `/proc/self/status` (Linux only).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A route label by address and length, and a status.
type RouteStatus = (usize, usize, u16);

/// Counts one request and its latency by route and status.
///
/// Each thread keeps the handles of the series it has used: looking a series
/// up by its labels (building the key, hashing it, taking the registry's
/// lock) cost more than the rest of a cheap request's bookkeeping together.
pub fn record_request(route: &'static str, status: u16, elapsed: Duration) {
    thread_local! {
        static SERIES: std::cell::RefCell<HashMap<RouteStatus, (metrics::Counter, metrics::Histogram)>> =
            std::cell::RefCell::new(HashMap::new());
    }
    // Routes are static labels: where they lie names them.
    let key = (route.as_ptr() as usize, route.len(), status);
    SERIES.with_borrow_mut(|series| {
        let (count, latency) = series.entry(key).or_insert_with(|| {
            // Handles taken before the recorder exists would count nowhere.
            metrics();
            (
                metrics::counter!("http_requests_total", "route" => route, "status" => status.to_string()),
                metrics::histogram!("http_request_duration_seconds", "route" => route),
            )
        });
        count.increment(1);
        latency.record(elapsed.as_secs_f64());
    });
}

/// Counts one login attempt by outcome.
pub fn record_login(outcome: &'static str) {
    metrics::counter!("login_attempts_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines from many threads, more than the buffer holds at once, all
    /// arrive whole and in each thread's order once the guard is dropped.
    #[test]
    fn the_batched_writer_loses_no_line_and_writes_all_on_drop() {
        let out = Captured::default();
        let (writer, guard) = super::BatchedStderr::start_to(out.clone());
        let line = "x".repeat(1000);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                let line = line.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        writer.write_all(format!("{t} {i} {line}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000, "8 MB through a 4 MiB buffer, none lost");
        for t in 0..4 {
            let order: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(order, (0..2_000).collect::<Vec<_>>());
            assert!(lines.iter().all(|l| l.ends_with(&line)));
        }
    }

    /// The hand-written access line is byte for byte the line tracing's own
    /// formatter writes for the same event, in both layouts, so log parsers
    /// see no difference.
    #[test]
    fn the_access_line_is_the_line_tracing_would_write() {
        use super::LogFormat;
        struct Fixed;
        impl tracing_subscriber::fmt::time::FormatTime for Fixed {
            fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
                w.write_str("2026-11-28T11:27:17.004223Z")
            }
        }
        let elapsed = std::time::Duration::from_nanos(113_419);
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = Captured::default();
            let sink = out.clone();
            let builder =
                tracing_subscriber::fmt().with_timer(Fixed).with_ansi(false).with_writer(move || sink.clone());
            let event = || {
                tracing::info!(
                    target: "access",
                    request_id = "01a221e8d7a3-7519_945b.7c",
                    method = %warp::http::Method::DELETE,
                    route = "DELETE /user/track/favorite",
                    status = 404u16,
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    "request"
                );
            };
            match format {
                LogFormat::Text => tracing::subscriber::with_default(builder.finish(), event),
                LogFormat::Json => tracing::subscriber::with_default(
                    builder.json().flatten_event(true).with_current_span(true).finish(),
                    event,
                ),
            }
            let line = super::AccessLine {
                request_id: "01a221e8d7a3-7519_945b.7c",
                method: "DELETE",
                route: "DELETE /user/track/favorite",
                status: 404,
                elapsed,
            };
            let mut ours = Vec::new();
            line.write(&mut ours, format, b"2026-11-28T11:27:17.004223Z");
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(out.0.lock().unwrap().clone()).unwrap());
        }
    }

    /// A request id that could break the line out of its field is not
    /// written (the server never lets one through; this is the last guard).
    #[test]
    fn an_unchecked_request_id_cannot_forge_fields() {
        let line = super::AccessLine {
            request_id: "x\",\"status\":200,\"y\":\"",
            method: "GET",
            route: "GET /healthz",
            status: 500,
            elapsed: std::time::Duration::ZERO,
        };
        let mut out = Vec::new();
        line.write(&mut out, super::LogFormat::Json, b"2026-11-28T11:27:17.004223Z");
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!((parsed["request_id"].as_str(), parsed["status"].as_u64()), (Some("invalid"), Some(500)));
    }

    /// Latencies are milliseconds to the nanosecond, like f64's shortest
    /// form but without its rounding noise or exponents.
    #[test]
    fn latencies_are_written_in_milliseconds() {
        for (nanos, text) in [
            (0, "0.0"),
            (1, "0.000001"),
            (113_419, "0.113419"),
            (2_500_000, "2.5"),
            (7_000_000, "7.0"),
            (12_000_000_010, "12000.00001"),
        ] {
            let mut out = Vec::new();
            super::push_millis(&mut out, std::time::Duration::from_nanos(nanos));
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    /// The timestamp is RFC 3339 with microseconds, right across seconds.
    #[test]
    fn the_clock_text_matches_rfc3339_micros() {
        let mut clock = super::ClockText::EMPTY;
        for (secs, nanos) in
            [(1_795_000_000, 411_223_999), (1_795_000_000, 5_000), (1_795_000_001, 0), (0, 999_999_999)]
        {
            let at = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
            let expected =
                chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(std::str::from_utf8(clock.at(at)).unwrap(), expected);
        }
    }

    /// Histogram samples are folded into buckets by a thread of the
    /// recorder's own, so memory does not grow while nobody scrapes.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_recorder_runs_its_upkeep_without_a_scrape() {
        super::metrics();
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs: wait for that, boundedly.
        for _ in 0..200 {
            if threads().iter().any(|t| t == "metrics-upkeep") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no metrics-upkeep thread among {:?}", threads());
    }
}
