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

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            .expect("static bucket list is not empty");
        match builder.install_recorder() {
            Ok(handle) => handle,
            // An embedding application installed its own recorder: render ours empty.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
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
