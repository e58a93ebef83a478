//! Logs (tracing) and metrics (Prometheus).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

/// Installs the global tracing subscriber; later calls are no-ops.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,warp::server=off"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
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

/// Counts one request and its latency by route and status.
pub fn record_request(route: &'static str, status: u16, elapsed: Duration) {
    metrics::counter!("http_requests_total", "route" => route, "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(elapsed.as_secs_f64());
}

/// Counts one login attempt by outcome.
pub fn record_login(outcome: &'static str) {
    metrics::counter!("login_attempts_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
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
