//! The accept loop: hyper directly (warp's own server has no knobs), so the
//! server can bound what a client may hold — header-read and request
//! timeouts against slow-loris clients, and a cap on open connections.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service as _;
use warp::Filter;
use warp::http::Request;
use warp::reply::Response;

use crate::http::{PeerAddr, RequestHead};
use crate::security::SharedPolicy;

/// What one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// Time allowed to send a request's headers (and to idle between requests).
    pub header_read_timeout: Duration,
    /// Time allowed to produce a response, body reading included.
    pub request_timeout: Duration,
    /// Connections open at once; further clients wait in the accept queue.
    pub max_connections: usize,
}

/// Serves `routes` on `listener` until `shutdown`, then stops accepting and
/// returns once open connections finish (the caller bounds that wait). A
/// request that outlives `limits.request_timeout` is answered 503, finished
/// under `policy` like every other response.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    limits: TransportLimits,
    policy: SharedPolicy,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
    F::Future: Send,
{
    let service = warp::service(routes);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot { Ok(slot) => slot, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let policy = policy.clone();
        let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            let head = RequestHead::of(&request);
            let mut service = service.clone();
            let policy = policy.clone();
            async move {
                match tokio::time::timeout(limits.request_timeout, service.call(request)).await {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::warn!(%peer, "request timed out");
                        Ok(head.timed_out(&policy))
                    }
                }
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), handler).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
