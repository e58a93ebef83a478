//! The accept loop: hyper directly (warp's own server has no knobs), so the
//! server can bound what a client may hold: a deadline on every connection
//! until its first request arrives and whenever it idles (whatever the
//! protocol, the protocol sniff included), a request timeout, a cap on open
//! connections and one per client address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;
use warp::Filter;
use warp::http::Request;
use warp::reply::Response;

use crate::http::{PeerAddr, RequestHead};
use crate::security::{SharedPolicy, rate_key};

/// What one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// Time from connecting to a complete first request head, whatever the
    /// protocol; on HTTP/1 also the time to send any later request's head.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight after its
    /// first one (keep-alive idle, on HTTP/1 and HTTP/2).
    pub idle_timeout: Duration,
    /// Time allowed to produce a response, body reading included.
    pub request_timeout: Duration,
    /// Connections open at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64
    /// counting as one); more are closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Serve cleartext HTTP/2 (prior knowledge) besides HTTP/1.1.
    pub http2: bool,
}

/// Streams one HTTP/2 connection may have open at once.
const MAX_STREAMS: u32 = 100;

/// Serves `routes` on `listener` until `shutdown`, then stops accepting and
/// returns once open connections finish (the caller bounds that wait). With
/// `tls`, every connection is TLS (its handshake within the first-request
/// deadline) and HTTP/2 is chosen by ALPN. A request that outlives
/// `limits.request_timeout` is answered 503, finished under `policy` like
/// every other response.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    limits: TransportLimits,
    policy: SharedPolicy,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
    F::Future: Send,
{
    let service = warp::service(routes);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = Arc::new(PerIpConnections::default());
    let builders = Arc::new(Builders::new(&limits));
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
        let ip_slot = if policy.is_trusted(peer.ip()) {
            None
        } else {
            match per_ip.try_open(rate_key(peer.ip()), limits.max_connections_per_ip) {
                Some(ip_slot) => Some(ip_slot),
                None => {
                    metrics::counter!("connections_refused_total", "reason" => "per_ip").increment(1);
                    tracing::debug!(%peer, "too many connections from this address; closed");
                    continue;
                }
            }
        };
        let activity = Arc::new(Activity::new());
        let service = service.clone();
        let policy = policy.clone();
        let handler_activity = activity.clone();
        let tls_on = tls.is_some();
        let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr { addr: peer, tls: tls_on });
            let head = RequestHead::of(&request, tls_on);
            let mut service = service.clone();
            let policy = policy.clone();
            let in_flight = handler_activity.start();
            async move {
                let call = std::pin::pin!(service.call(request));
                match in_flight.within(limits.request_timeout, call).await {
                    Some(response) => response,
                    None => {
                        tracing::warn!(%peer, "request timed out");
                        Ok(head.timed_out(&policy))
                    }
                }
            }
        });
        let (watcher, builders, tls) = (graceful.watcher(), builders.clone(), tls.clone());
        let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
        let connection = tokio::spawn(async move {
            // Tuple fields drop in order: the address's count must come back
            // before the global slot, or the accept loop (woken by the slot) can
            // refuse this address's next client as if this one were still open.
            let _held = (ip_slot, slot, closed_tx);
            let ended = match tls {
                None => watcher.watch(builders.plain.serve_connection(TokioIo::new(stream), handler)).await,
                Some(acceptor) => {
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            metrics::counter!("tls_handshake_failures_total").increment(1);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    let builder = if h2 { &builders.tls_h2 } else { &builders.tls_h1 };
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), handler)).await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        // The deadline runs in a task of its own, woken only at the deadline or
        // when the connection ends, so requests pay nothing for it.
        let abort = connection.abort_handle();
        tokio::spawn(async move {
            tokio::select! {
                _ = closed => {}
                () = activity.watch(&limits) => {
                    abort.abort();
                    metrics::counter!("connections_closed_idle_total").increment(1);
                    tracing::debug!(%peer, "connection idle past its deadline; closed");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

type Builder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// hyper's connection settings for `limits`: for cleartext (HTTP/1.1, and
/// HTTP/2 by prior knowledge when enabled) and for each protocol ALPN picks.
struct Builders {
    plain: Builder,
    tls_h1: Builder,
    tls_h2: Builder,
}

impl Builders {
    fn new(limits: &TransportLimits) -> Self {
        let both = Self::both(limits);
        let plain = if limits.http2 { both.clone() } else { both.clone().http1_only() };
        Self { plain, tls_h1: both.clone().http1_only(), tls_h2: both.http2_only() }
    }

    fn both(limits: &TransportLimits) -> Builder {
        let mut builder = Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
        // Pings find dead peers; the stream cap bounds what one connection
        // may ask of the server at once.
        let keep_alive = (limits.idle_timeout / 2).max(Duration::from_secs(1));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .keep_alive_interval(keep_alive)
            .keep_alive_timeout(keep_alive.min(Duration::from_secs(20)));
        builder
    }
}

/// What a connection is doing, for its deadlines.
///
/// One watchdog task per connection keeps every deadline of the connection
/// (first request, idle, each request's timeout), so a request registers no
/// timer of its own: a timer per request meant two turns of the runtime's one
/// timer lock per request, contended by every worker.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Requests finished so far.
    served: AtomicUsize,
    /// When the last request finished, in milliseconds since `opened`.
    last_done_ms: AtomicU64,
    /// When the connection last went from no request in flight to one, in
    /// milliseconds since `opened`: the start of its oldest request (on
    /// HTTP/1, the one request), or earlier (on HTTP/2).
    busy_since_ms: AtomicU64,
    /// Wakes the requests in flight to look at their deadline.
    expired: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            busy_since_ms: AtomicU64::new(0),
            expired: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks a request in flight until the guard drops (also when the
    /// request is cancelled).
    fn start(self: &Arc<Self>) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.busy_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
        InFlight { activity: self.clone(), started: Instant::now() }
    }

    /// Completes once the connection should be closed: nothing complete
    /// arrived within `header_read_timeout` of connecting (the protocol sniff
    /// and a half-sent HTTP/2 preface included), or no request has been in
    /// flight for `idle_timeout`. Meanwhile, wakes requests in flight once
    /// the oldest may have run past `request_timeout` (see [`InFlight::within`]).
    async fn watch(&self, limits: &TransportLimits) {
        let timeout_ms = u64::try_from(limits.request_timeout.as_millis()).unwrap_or(u64::MAX);
        loop {
            let now = self.now_ms();
            // Relaxed: a stale read only moves the next look a little later.
            let wake_at = if self.in_flight.load(Ordering::Relaxed) > 0 {
                let due = self.busy_since_ms.load(Ordering::Relaxed).saturating_add(timeout_ms);
                if now >= due {
                    self.expired.notify_waiters();
                    // Requests still in flight started later (HTTP/2): look
                    // again a fraction of the timeout on.
                    now + (timeout_ms / 8).max(1)
                } else {
                    due
                }
            } else {
                let deadline = if self.served.load(Ordering::Relaxed) == 0 {
                    limits.header_read_timeout
                } else {
                    Duration::from_millis(self.last_done_ms.load(Ordering::Relaxed)) + limits.idle_timeout
                };
                let deadline = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
                if now >= deadline {
                    return;
                }
                // A request may start meanwhile: its deadline is at most a
                // timeout from now.
                deadline.min(now.saturating_add(timeout_ms))
            };
            tokio::time::sleep(Duration::from_millis(wake_at - now)).await;
        }
    }
}

/// A request in flight on a connection.
struct InFlight {
    activity: Arc<Activity>,
    started: Instant,
}

impl InFlight {
    /// Runs `request` to its end, or `None` once it has run `timeout` (as
    /// the connection's watchdog tells it to look).
    async fn within<F: Future>(&self, timeout: Duration, mut request: std::pin::Pin<&mut F>) -> Option<F::Output> {
        loop {
            tokio::select! {
                biased;
                output = &mut request => return Some(output),
                () = self.activity.expired.notified() => {
                    if self.started.elapsed() >= timeout {
                        return None;
                    }
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.last_done_ms.store(activity.now_ms(), Ordering::Relaxed);
        activity.served.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerIpConnections {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIpConnections {
    /// Counts a connection from `ip` unless it already has `max` open.
    fn try_open(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(IpSlot { table: self.clone(), ip })
    }
}

/// One open connection counted against its address.
struct IpSlot {
    table: Arc<PerIpConnections>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_slots_come_back() {
        let table = Arc::new(PerIpConnections::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = table.try_open(ip, 2).unwrap();
        let _second = table.try_open(ip, 2).unwrap();
        assert!(table.try_open(ip, 2).is_none());
        assert!(table.try_open("192.0.2.2".parse().unwrap(), 2).is_some(), "per address");
        drop(first);
        assert!(table.try_open(ip, 2).is_some());
    }
}
