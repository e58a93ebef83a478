//! `user-server`: parse settings, set up logging, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use user_server::{Config, shutdown_signal, start, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(user_server::config::LoadError::Usage(e)) => e.exit(),
        Err(e) => {
            eprintln!("user-server: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if config.print_man_page {
        return match user_server::config::render_man_page(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("user-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(user_server::config::ServerCommand::Healthcheck) = config.command {
        return match user_server::healthcheck(&config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("user-server healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if config.print_openapi {
        let doc = serde_json::to_string_pretty(user_server::openapi_document()).unwrap_or_default();
        println!("{doc}");
        return ExitCode::SUCCESS;
    }
    let traces = match telemetry::TraceExport::from_env() {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("user-server: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _log = telemetry::init_logging(config.log_format, &config.log, traces);
    let server = match start(&config).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("user-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = server.metrics_addr.map_or_else(|| "on the public listener".to_owned(), |a| format!("http://{a}"));
    tracing::info!(
        address = %server.addr,
        database = %config.database,
        cookie_secure = server.state.cookies.secure,
        metrics,
        "user-server listening on {}://{}",
        if server.tls.is_some() { "https" } else { "http" },
        server.addr
    );
    if let Err(e) = user_server::notify::notify("READY=1") {
        tracing::warn!(error = %e, "could not tell systemd the server is ready (NOTIFY_SOCKET)");
    }
    server
        .run(async {
            shutdown_signal().await;
            let _ = user_server::notify::notify("STOPPING=1");
        })
        .await;
    ExitCode::SUCCESS
}
