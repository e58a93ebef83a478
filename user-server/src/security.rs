//! Request-level protections: per-IP throttling, the real client address
//! behind trusted proxies, CORS, and cross-site request forgery checks.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use warp::http::{HeaderMap, HeaderValue};

pub use user_core::domain::{canonical_ip as canonical, rate_key};

use user_core::store::Store;

use crate::error::ApiError;

/// A rate as `N/s`, `N/min` or `N/h` (e.g. `30/min`): N requests per period,
/// up to N at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period.
    pub count: NonZeroU32,
    /// The period.
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected N/s, N/min or N/h, e.g. 30/min");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count = n.trim().parse::<NonZeroU32>().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Rate { count, per })
    }
}

/// Which throttled action a request is.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `POST /user/register`
    Register,
    /// `POST /user/login`
    Login,
    /// `POST /user/refresh`
    Refresh,
    /// `PUT /user/update` (it may check a password)
    Update,
    /// `POST /user/password/forgot` (it may send a mail)
    Forgot,
    /// `POST /user/guest` (it creates an account)
    Guest,
}

impl Action {
    /// The action's name in metrics, logs and shared limit keys.
    fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
            Action::Refresh => "refresh",
            Action::Update => "update",
            Action::Forgot => "forgot",
            Action::Guest => "guest",
        }
    }
}

/// Per-IP limits on register, login, refresh, update and forgot, in this
/// process (governor), or shared by every replica through the database
/// ([`Throttle::shared_through`]).
pub struct Throttle {
    register: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    update: DefaultKeyedRateLimiter<IpAddr>,
    forgot: DefaultKeyedRateLimiter<IpAddr>,
    guest: DefaultKeyedRateLimiter<IpAddr>,
    /// One reset mail per address a minute, whether or not the address has
    /// an account (a limit that held only for accounts would tell).
    forgot_address: DefaultKeyedRateLimiter<String>,
    rates: [Rate; 6],
    /// Where the limits live when every replica shares them.
    shared: Option<Arc<dyn Store>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").field("shared", &self.shared.is_some()).finish_non_exhaustive()
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: Rate) -> DefaultKeyedRateLimiter<K> {
    let period = rate.per / rate.count.get();
    let quota =
        Quota::with_period(period.max(Duration::from_nanos(1))).expect("non-zero period").allow_burst(rate.count);
    DefaultKeyedRateLimiter::keyed(quota)
}

/// One reset mail per address a minute.
const ONE_A_MINUTE: Rate = Rate { count: NonZeroU32::MIN, per: Duration::from_secs(60) };

impl Throttle {
    /// Limits of `register`, `login`, `refresh`, `update`, `forgot` and
    /// `guest` requests per client address (an IPv6 /64 counting as one
    /// address), in that order.
    pub fn new(rates: [Rate; 6]) -> Self {
        let [register, login, refresh, update, forgot, guest] = rates;
        Self {
            register: limiter(register),
            login: limiter(login),
            refresh: limiter(refresh),
            update: limiter(update),
            forgot: limiter(forgot),
            guest: limiter(guest),
            forgot_address: limiter(ONE_A_MINUTE),
            rates,
            shared: None,
            checks: AtomicU64::new(0),
        }
    }

    /// The same limits kept in `store` (one that [shares
    /// them](user_core::store::Store::shares_rate_limits): PostgreSQL), so
    /// that N replicas together allow what one would, not N times as much.
    /// If the store cannot be asked, requests are let through (and logged):
    /// a limiter must not add an outage of its own.
    #[must_use]
    pub fn shared_through(mut self, store: Arc<dyn Store>) -> Self {
        self.shared = Some(store);
        self
    }

    /// Counts one reset-mail request for `email` (lower-cased).
    ///
    /// # Errors
    /// 429 with the wait when one was asked for less than a minute ago.
    pub async fn check_forgot_address(&self, email: &str) -> Result<(), ApiError> {
        let wait = match &self.shared {
            Some(store) => shared_hit(store.as_ref(), &format!("forgot_address:{email}"), ONE_A_MINUTE).await,
            None => local_hit(&self.forgot_address, &email.to_owned()),
        };
        match wait {
            None => Ok(()),
            Some(wait) => {
                metrics::counter!("throttled_total", "action" => "forgot_address").increment(1);
                Err(ApiError::Core(user_core::Error::Throttled { retry_after: wait.max(Duration::from_secs(1)) }))
            }
        }
    }

    /// Counts one `action` from `ip`.
    ///
    /// # Errors
    /// 429 with the wait when over the limit.
    pub async fn check(&self, action: Action, ip: IpAddr) -> Result<(), ApiError> {
        let (limiter, rate) = match action {
            Action::Register => (&self.register, self.rates[0]),
            Action::Login => (&self.login, self.rates[1]),
            Action::Refresh => (&self.refresh, self.rates[2]),
            Action::Update => (&self.update, self.rates[3]),
            Action::Forgot => (&self.forgot, self.rates[4]),
            Action::Guest => (&self.guest, self.rates[5]),
        };
        // Forget idle addresses now and then, so memory (or the table) stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.sweep();
        }
        let key = rate_key(ip);
        let wait = match &self.shared {
            Some(store) => shared_hit(store.as_ref(), &format!("{}:{key}", action.name()), rate).await,
            None => local_hit(limiter, &key),
        };
        let Some(wait) = wait else { return Ok(()) };
        metrics::counter!("throttled_total", "action" => action.name()).increment(1);
        tracing::warn!(target: "audit", event = "throttled", ip = %ip, action = ?action, "rate limit");
        Err(ApiError::Core(user_core::Error::Throttled { retry_after: wait.max(Duration::from_secs(1)) }))
    }

    fn sweep(&self) {
        self.register.retain_recent();
        self.login.retain_recent();
        self.refresh.retain_recent();
        self.update.retain_recent();
        self.forgot.retain_recent();
        self.guest.retain_recent();
        self.forgot_address.retain_recent();
        if let Some(store) = self.shared.clone() {
            tokio::spawn(async move {
                if let Err(e) = store.purge_rate_limits(chrono::Utc::now()).await {
                    tracing::warn!(error = %user_core::error_chain(&e), "could not sweep the shared rate limits");
                }
            });
        }
    }
}

/// The wait `limiter` imposes on `key`, if any, counting the request when not.
fn local_hit<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Option<Duration> {
    limiter.check_key(key).err().map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// The wait the shared limit imposes on `key`, if any; a store that cannot
/// be asked lets the request through.
async fn shared_hit(store: &dyn Store, key: &str, rate: Rate) -> Option<Duration> {
    match store.hit_rate_limit(key, rate.count.get(), rate.per, chrono::Utc::now()).await {
        Ok(wait) => wait,
        Err(e) => {
            metrics::counter!("rate_limit_errors_total").increment(1);
            tracing::warn!(error = %user_core::error_chain(&e), "shared rate limit unavailable; request let through");
            None
        }
    }
}

/// How many guest accounts the whole service creates an hour
/// (`USER_GUEST_MAX_PER_HOUR`), in this process or, like [`Throttle`],
/// shared by every replica through the database. Unlike the per-IP limits
/// it stays on with `USER_RATE_LIMIT=off`: it bounds what anonymous
/// requests may store.
pub struct GuestCap {
    /// `None`: guest accounts are off.
    rate: Option<Rate>,
    local: DefaultKeyedRateLimiter<()>,
    shared: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for GuestCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestCap").field("rate", &self.rate).finish_non_exhaustive()
    }
}

impl GuestCap {
    /// At most `per_hour` new guests an hour; 0 turns guest accounts off.
    pub fn new(per_hour: u32) -> Self {
        let rate = NonZeroU32::new(per_hour).map(|count| Rate { count, per: Duration::from_secs(3600) });
        Self { rate, local: limiter(rate.unwrap_or(ONE_A_MINUTE)), shared: None }
    }

    /// The cap kept in `store`, shared by every replica.
    #[must_use]
    pub fn shared_through(mut self, store: Arc<dyn Store>) -> Self {
        self.shared = Some(store);
        self
    }

    /// Counts one new guest.
    ///
    /// # Errors
    /// 403 `guests_off` when guest accounts are off; 429 with the wait
    /// when the hour's guests are all made.
    pub async fn check(&self) -> Result<(), ApiError> {
        let Some(rate) = self.rate else {
            return Err(user_core::Error::Forbidden(user_core::ForbiddenReason::GuestsOff).into());
        };
        let wait = match &self.shared {
            Some(store) => shared_hit(store.as_ref(), "guest:all", rate).await,
            None => local_hit(&self.local, &()),
        };
        match wait {
            None => Ok(()),
            Some(wait) => {
                metrics::counter!("throttled_total", "action" => "guest_all").increment(1);
                Err(ApiError::Core(user_core::Error::Throttled { retry_after: wait.max(Duration::from_secs(1)) }))
            }
        }
    }
}

impl Default for GuestCap {
    fn default() -> Self {
        Self::new(1000)
    }
}

/// Who may talk to the service from where.
#[derive(Debug, Default)]
pub struct Policy {
    /// Per-IP throttling; `None` when `USER_RATE_LIMIT=off`.
    pub throttle: Option<Throttle>,
    /// New guest accounts an hour, overall.
    pub guest_cap: GuestCap,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed to call with credentials (CORS); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// `Strict-Transport-Security` on every answer to a request that came
    /// over https (this server's TLS, or a trusted proxy's).
    pub hsts: Hsts,
}

/// The `Strict-Transport-Security` value answers over https carry; the
/// default is a year with subdomains, `off` (`None`) sends none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts(pub Option<HeaderValue>);

impl Hsts {
    /// What is sent unless configured otherwise.
    pub const DEFAULT: &'static str = "max-age=31536000; includeSubDomains";
}

impl Default for Hsts {
    fn default() -> Self {
        Self(Some(HeaderValue::from_static(Self::DEFAULT)))
    }
}

impl std::fmt::Display for Hsts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("off"))
    }
}

impl std::str::FromStr for Hsts {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        let max_age = s.split(';').next().and_then(|d| d.trim().strip_prefix("max-age="));
        if max_age.is_none_or(|secs| secs.parse::<u64>().is_err()) {
            return Err(format!("{s:?}: a Strict-Transport-Security value starts with max-age=<seconds>, or is off"));
        }
        HeaderValue::from_str(s).map(|v| Self(Some(v))).map_err(|e| format!("{s:?}: {e}"))
    }
}

impl Policy {
    /// The client's address: the socket peer, or — when the peer is a trusted
    /// proxy — the nearest address in `X-Forwarded-For` that is not one.
    /// Walking from the nearest hop, an entry that does not parse ends the
    /// walk with the peer: what lies beyond it cannot be trusted. IPv4-mapped
    /// IPv6 addresses are taken as the IPv4 address they carry.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().map_or_else(|_| vec![""], |v| v.split(',').collect()))
            .collect();
        for entry in forwarded.iter().rev() {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(canonical(ip)) => {}
                Ok(ip) => return Some(canonical(ip)),
                Err(_) => return Some(peer),
            }
        }
        Some(peer)
    }

    /// Whether `ip` is one of `USER_TRUSTED_PROXIES`.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether a trusted proxy says the client reached it over TLS
    /// (`X-Forwarded-Proto: https`, or `Forwarded: proto=https`), so that
    /// cookies must be `Secure`.
    pub fn forwarded_https(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
        if !peer.is_some_and(|p| self.is_trusted(p.ip())) {
            return false;
        }
        let values = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
        // The nearest proxy appends last.
        let x_forwarded = values("x-forwarded-proto").last().and_then(|v| v.split(',').next_back()).map(str::trim);
        let forwarded = values("forwarded").last().and_then(|v| v.split(',').next_back()).and_then(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("proto").then(|| value.trim_matches('"'))
            })
        });
        x_forwarded.or(forwarded).is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
    }

    /// Whether `origin` may make credentialed cross-origin calls.
    pub fn cors_allows(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == origin)
    }

    /// Refuses a state-changing request authenticated by cookie whose
    /// `Origin` (or, lacking it, `Referer`) names another site than this
    /// server or an allowed CORS origin. Requests without either header come
    /// from non-browser clients, which cookies cannot be forged for.
    ///
    /// # Errors
    /// 403 for a cross-site request.
    pub fn check_same_site(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let source = match (header("origin"), header("referer")) {
            (Some(origin), _) => origin.to_owned(),
            (None, Some(referer)) => origin_of(referer).unwrap_or_default(),
            (None, None) => return Ok(()),
        };
        let host = header("host").unwrap_or_default();
        let same_site = origin_of(&source).is_some_and(|o| o.split_once("://").is_some_and(|(_, auth)| auth == host));
        if same_site || self.cors_allows(&source) {
            Ok(())
        } else {
            // Debug-quoted: a crafted Origin cannot forge fields in text logs.
            tracing::warn!(target: "audit", event = "csrf.refused", origin = ?source, "cross-site request refused");
            Err(ApiError::Forbidden("cross-site request refused".into()))
        }
    }
}

/// `scheme://authority` of a URL, or `None` if it has no such prefix.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Shared by every handler.
pub type SharedPolicy = Arc<Policy>;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rates_parse_from_text() {
        let r: Rate = "30/min".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (30, Duration::from_secs(60)));
        assert!("0/min".parse::<Rate>().is_err());
        assert!("30/day".parse::<Rate>().is_err());
        assert!("thirty".parse::<Rate>().is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let policy = Policy { trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()], ..Policy::default() };
        let h = headers(&[("x-forwarded-for", "203.0.113.7, 10.1.1.1")]);
        let via_proxy = policy.client_ip(Some("10.0.0.2:5000".parse().unwrap()), &h);
        assert_eq!(via_proxy, Some("203.0.113.7".parse().unwrap()));
        let direct = policy.client_ip(Some("198.51.100.9:5000".parse().unwrap()), &h);
        assert_eq!(direct, Some("198.51.100.9".parse().unwrap()), "a spoofed header from an untrusted peer is ignored");
        let no_header = policy.client_ip(Some("10.0.0.2:5000".parse().unwrap()), &HeaderMap::new());
        assert_eq!(no_header, Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn an_unparsable_forwarded_entry_ends_the_walk_with_the_peer() {
        let policy = Policy { trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()], ..Policy::default() };
        let proxy = Some("10.0.0.2:5000".parse().unwrap());
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage, 10.1.1.1")]);
        assert_eq!(policy.client_ip(proxy, &h), Some("10.0.0.2".parse().unwrap()));
        let h = headers(&[("x-forwarded-for", "garbage, 203.0.113.7")]);
        assert_eq!(policy.client_ip(proxy, &h), Some("203.0.113.7".parse().unwrap()), "nearest hop first");
    }

    #[tokio::test]
    async fn ipv4_mapped_peers_match_ipv4_proxies_and_ipv6_clients_count_by_their_64() {
        let policy = Policy { trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()], ..Policy::default() };
        let mapped = Some("[::ffff:10.0.0.2]:5000".parse().unwrap());
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7")]);
        assert_eq!(policy.client_ip(mapped, &h), Some("203.0.113.7".parse().unwrap()));
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_key(a), rate_key(b));
        assert_ne!(rate_key(a), rate_key(other));
        assert_eq!(rate_key("192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
        let rate = "1/min".parse().unwrap();
        let t = Throttle::new([rate; 6]);
        assert!(t.check(Action::Login, a).await.is_ok());
        assert!(t.check(Action::Login, b).await.is_err(), "one /64, one budget");
        assert!(t.check(Action::Login, other).await.is_ok());
    }

    #[test]
    fn only_trusted_proxies_can_say_the_client_used_https() {
        let policy = Policy { trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()], ..Policy::default() };
        let proxy = Some("10.0.0.2:5000".parse().unwrap());
        let stranger = Some("198.51.100.9:5000".parse().unwrap());
        let xfp = headers(&[("x-forwarded-proto", "https")]);
        assert!(policy.forwarded_https(proxy, &xfp));
        assert!(!policy.forwarded_https(stranger, &xfp));
        assert!(policy.forwarded_https(proxy, &headers(&[("forwarded", "for=203.0.113.7;proto=https")])));
        assert!(policy.forwarded_https(proxy, &headers(&[("forwarded", "for=1.2.3.4, for=5.6.7.8;Proto=\"https\"")])));
        assert!(!policy.forwarded_https(proxy, &headers(&[("x-forwarded-proto", "http")])));
        assert!(!policy.forwarded_https(proxy, &HeaderMap::new()));
    }

    #[tokio::test]
    async fn the_throttle_refuses_past_the_burst_with_a_wait() {
        let rate = "2/min".parse().unwrap();
        let t = Throttle::new([rate; 6]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.check(Action::Login, ip).await.is_ok());
        assert!(t.check(Action::Login, ip).await.is_ok());
        match t.check(Action::Login, ip).await {
            Err(ApiError::Core(user_core::Error::Throttled { retry_after })) => {
                assert!(retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        assert!(t.check(Action::Login, "192.0.2.2".parse().unwrap()).await.is_ok(), "per address");
        assert!(t.check(Action::Register, ip).await.is_ok(), "per action");
    }

    #[test]
    fn cookie_requests_from_other_sites_are_refused() {
        let policy = Policy { cors_origins: vec!["https://app.example.com".into()], ..Policy::default() };
        let host = ("host", "api.example.com");
        assert!(policy.check_same_site(&headers(&[host])).is_ok(), "no Origin: not a browser");
        assert!(policy.check_same_site(&headers(&[host, ("origin", "https://api.example.com")])).is_ok());
        assert!(policy.check_same_site(&headers(&[host, ("origin", "https://app.example.com")])).is_ok());
        assert!(policy.check_same_site(&headers(&[host, ("origin", "https://evil.example")])).is_err());
        assert!(policy.check_same_site(&headers(&[host, ("origin", "null")])).is_err());
        assert!(policy.check_same_site(&headers(&[host, ("referer", "https://evil.example/page")])).is_err());
        assert!(policy.check_same_site(&headers(&[host, ("referer", "https://api.example.com/x")])).is_ok());
    }
}
