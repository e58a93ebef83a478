//! `user-server`: the REST contract (`docs/api.md`) over warp, as thin as it
//! can be — parse, call `user_core::UserService`, render.
//!
//! The binary loads [`Config`], calls [`start`] and [`RunningServer::run`];
//! tests build the same filters with [`routes`] or start a real server with
//! [`start`].

#![warn(missing_docs)]

pub mod config;
mod error;
mod healthcheck;
mod http;
pub mod notify;
mod openapi;
mod routes;
pub mod security;
pub mod serve;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use user_core::UserService;
use user_core::tasks::Relay;
use warp::Filter;
use warp::reply::Response;

pub use config::Config;
pub use healthcheck::healthcheck;
pub use http::CookiePolicy;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The library facade.
    pub service: UserService,
    /// How token cookies are written.
    pub cookies: CookiePolicy,
    /// Throttling, trusted proxies, CORS.
    pub policy: security::SharedPolicy,
    /// Whether `/metrics` is served here (no metrics listener of its own).
    pub metrics_public: bool,
    /// `USER_PUBLIC_URL`: the base of the `verification_uri` devices show
    /// (else the request's own host).
    pub public_url: Option<String>,
}

/// The OpenAPI 3 document `/openapi.json` serves (committed as `docs/openapi.json`).
pub fn openapi_document() -> &'static serde_json::Value {
    routes::openapi_document()
}

/// Every route the server answers, from its route table: the method and the
/// path template as the OpenAPI document names them (GET routes answer HEAD too).
pub fn route_table() -> Vec<(warp::http::Method, &'static str)> {
    routes::endpoints().iter().map(|e| (e.method.clone(), e.path.as_str())).collect()
}

/// Every route of the contract, ready for `warp::serve` or `warp::test`.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    routes::all(state)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The database or keys could not be set up.
    #[error("{0}")]
    Core(#[from] user_core::Error),
    /// The address could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A server that is listening; [`RunningServer::run`] serves until shutdown.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The metrics listener's address, when `/metrics` has one of its own.
    pub metrics_addr: Option<SocketAddr>,
    /// The certificate served, when this server terminates TLS itself.
    pub tls: Option<std::sync::Arc<tls::Certificates>>,
    metrics_listener: Option<TcpListener>,
    /// The state the routes share.
    pub state: AppState,
    listener: TcpListener,
    shutdown_timeout: std::time::Duration,
    limits: serve::TransportLimits,
    relay: Option<Relay>,
}

/// Opens the database, applies migrations, loads keys and binds the address.
///
/// # Errors
/// [`StartError`] naming what failed.
pub async fn start(config: &Config) -> Result<RunningServer, StartError> {
    let service_config = config.service_config().map_err(StartError::Config)?;
    if service_config.reauth_window.is_none() && !service_config.require_current_password {
        tracing::warn!(
            "USER_REAUTH_WINDOW is off: a stolen session can change the account's email and password and delete it \
             without proving the password again"
        );
    }
    let tls = config.tls_files().map(tls::Certificates::load).transpose().map_err(StartError::Config)?;
    let options = user_core::store::OpenOptions { max_connections: config.database_max_connections };
    let mut store = user_core::store::open_with(config.database.expose(), options).await?;
    if telemetry::exporting_traces() {
        store = user_core::store::traced(store);
    }
    store.migrate().await?;
    let service = UserService::new(store.clone(), service_config).await?;
    if service.data_key_generated() {
        tracing::warn!(
            "USER_DATA_KEY is not set: TOTP secrets are sealed with a key kept in the database itself, so a copy of \
             the database reveals them; set USER_DATA_KEY (or USER_DATA_KEY_FILE) to `openssl rand -base64 32`"
        );
    }
    let unprotected = service.admins_without_second_factor().await?;
    if !unprotected.is_empty() {
        let names: Vec<&str> = unprotected.iter().map(|n| n.as_str()).collect();
        tracing::warn!(
            admins = %names.join(", "),
            "USER_MFA_REQUIRED covers admins, and these have no second factor: their sessions can only add one \
             (a passkey or an authenticator app) until they do; `user-cli user mfa enroll NAME` enrolls one from a \
             terminal"
        );
    }
    if !service.provider_names().is_empty() {
        // In the background: a provider that is down must not hold the
        // server's start; its sign-ins answer provider_error and retry.
        let discovering = service.clone();
        tokio::spawn(async move {
            for (provider, error) in discovering.discover_providers().await {
                tracing::warn!(provider, %error, "provider disabled until it can be discovered (retried at each sign-in)");
            }
        });
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // Built (and its templates checked) whether or not this process relays.
    let mailer = config.mailer(addr).map_err(StartError::Config)?;
    let relay = if config.tasks_relay {
        let sink = config.task_sink().await.map_err(StartError::Config)?;
        let mut relay = Relay::new(store.clone(), sink, config.relay_config()).with_waker(service.task_waker());
        if let Some(mailer) = mailer {
            relay = relay.with_mailer(mailer);
        }
        Some(relay)
    } else {
        None
    };
    if !config.trusted_proxies.is_empty() && config.cookie_secure.is_none() && addr.ip().is_loopback() {
        tracing::warn!(
            "behind trusted proxies on loopback, cookies are Secure only for requests a proxy marks as https \
             (X-Forwarded-Proto or Forwarded); set USER_COOKIE_SECURE=true if every client uses TLS"
        );
    }
    let metrics_listener = match config.metrics_listen {
        Some(metrics_addr) => Some(TcpListener::bind(metrics_addr).await?),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let mut policy = config.policy();
    if store.shares_rate_limits() {
        // Every replica on this database counts against one budget per client.
        if policy.throttle.is_some() {
            tracing::info!("per-client rate limits are kept in the database, shared by every replica");
        }
        policy.throttle = policy.throttle.map(|t| t.shared_through(store.clone()));
        policy.guest_cap = policy.guest_cap.shared_through(store.clone());
    }
    let state = AppState {
        service,
        cookies: CookiePolicy { secure: config.cookie_secure_for(addr) },
        policy: std::sync::Arc::new(policy),
        metrics_public: metrics_listener.is_none(),
        public_url: config.public_url.clone(),
    };
    Ok(RunningServer {
        addr,
        metrics_addr,
        tls,
        metrics_listener,
        state,
        listener,
        shutdown_timeout: config.shutdown_timeout,
        limits: config.transport_limits(),
        relay,
    })
}

impl RunningServer {
    /// Serves (and relays tasks) until `shutdown` completes, then stops
    /// accepting and lets in-flight requests and the relay's current batch
    /// finish for at most the configured timeout. Tasks still leased after
    /// that return to pending when their lease runs out.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let (relay_stop_tx, relay_stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            while stop.changed().await.is_ok() && !*stop.borrow() {}
        };
        if let Some(listener) = self.metrics_listener {
            let routes = routes::metrics_only(self.state.policy.clone());
            let policy = self.state.policy.clone();
            let stop = stopped(relay_stop_rx.clone());
            tokio::spawn(serve::serve(listener, routes, self.limits, policy, None, stop));
        }
        #[cfg(unix)]
        if let Some(certificates) = self.tls.clone() {
            tokio::spawn(reload_on_sighup(certificates));
        }
        let acceptor = self.tls.as_ref().map(tls::Certificates::acceptor);
        let signal = async move {
            shutdown.await;
            let _ = relay_stop_tx.send(true);
            let _ = stopping_tx.send(());
        };
        let relay = self.relay.map(|relay| tokio::spawn(async move { relay.run(stopped(relay_stop_rx)).await }));
        let policy = self.state.policy.clone();
        let server = serve::serve(self.listener, routes(self.state), self.limits, policy, acceptor, signal);
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tracing::info!("shutting down: finishing in-flight requests");
                tokio::time::sleep(self.shutdown_timeout).await;
                tracing::warn!("shutdown timeout reached; dropping remaining connections");
            } else {
                std::future::pending::<()>().await;
            }
        };
        let timeout = self.shutdown_timeout;
        tokio::select! {
            () = server => {}
            () = deadline => {}
        }
        if let Some(relay) = relay {
            let abort = relay.abort_handle();
            if tokio::time::timeout(timeout, relay).await.is_err() {
                tracing::warn!("relay did not finish its batch in time; its leased tasks will be retried");
                abort.abort();
            }
        }
        tracing::info!("stopped");
    }
}

/// Reads the certificate and key again on every SIGHUP; a pair that does not
/// load is logged and the previous one stays in use.
#[cfg(unix)]
async fn reload_on_sighup(certificates: std::sync::Arc<tls::Certificates>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the TLS certificate is not reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        match certificates.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use"),
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
