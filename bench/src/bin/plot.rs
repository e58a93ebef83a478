//! Draws `load --json` reports as SVG charts.
//!
//! ```text
//! plot soak REPORT LATENCY_SVG MEMORY_SVG      # p50/p99 and RSS per interval
//! plot growth SVG REPORT...                    # p50 per endpoint against table size (the reports' labels)
//! ```

use serde_json::Value;
use user_bench::chart::{Chart, Series};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("soak") if args.len() == 4 => soak(&read(&args[1])?, &args[2], &args[3]),
        Some("growth") if args.len() >= 3 => {
            let reports = args[2..].iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
            growth(&reports, &args[1])
        }
        _ => Err("usage: plot soak REPORT LATENCY_SVG MEMORY_SVG | plot growth SVG REPORT...".into()),
    }
}

fn read(path: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

fn minutes(report: &Value, field: &str) -> Vec<(f64, f64)> {
    let intervals = report["intervals"].as_array().cloned().unwrap_or_default();
    intervals.iter().map(|i| (i["end_s"].as_f64().unwrap_or(0.0) / 60.0, i[field].as_f64().unwrap_or(0.0))).collect()
}

fn soak(report: &Value, latency: &str, memory: &str) -> Result<()> {
    let chart = Chart {
        title: "soak: latency per minute".into(),
        x_label: "minutes".into(),
        y_label: "ms".into(),
        log_x: false,
        series: vec![
            Series { name: "p50".into(), points: minutes(report, "p50_ms") },
            Series { name: "p99".into(), points: minutes(report, "p99_ms") },
            Series { name: "p99 without logins".into(), points: minutes(report, "p99_without_logins_ms") },
        ],
    };
    std::fs::write(latency, chart.svg())?;
    let mut series = vec![Series { name: "server RSS (MiB)".into(), points: minutes(report, "rss_mib") }];
    let has = |field: &str| report["intervals"].as_array().is_some_and(|i| i.iter().any(|i| !i[field].is_null()));
    if has("wal_mib") {
        series.push(Series { name: "WAL (MiB)".into(), points: minutes(report, "wal_mib") });
    }
    series.push(Series { name: "open files".into(), points: minutes(report, "open_files") });
    let chart = Chart {
        title: "soak: memory and files per minute".into(),
        x_label: "minutes".into(),
        y_label: "".into(),
        log_x: false,
        series,
    };
    std::fs::write(memory, chart.svg())?;
    Ok(())
}

fn growth(reports: &[Value], out: &str) -> Result<()> {
    let endpoints = ["get", "favorites", "contains", "add/remove", "refresh"];
    let series = endpoints
        .iter()
        .map(|name| Series {
            name: format!("{name} p50"),
            points: reports
                .iter()
                .filter_map(|r| {
                    let rows: f64 = r["label"].as_str()?.parse().ok()?;
                    Some((rows, r["endpoints"][name]["p50_ms"].as_f64()?))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let chart = Chart {
        title: "growth: latency per endpoint by favorites rows".into(),
        x_label: "favorites rows".into(),
        y_label: "p50 ms".into(),
        log_x: false,
        series,
    };
    std::fs::write(out, chart.svg())?;
    Ok(())
}
