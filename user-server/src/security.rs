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
use warp::http::HeaderMap;

pub use user_core::domain::{canonical_ip as canonical, rate_key};

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
}

/// Per-IP limits on register, login and refresh.
pub struct Throttle {
    register: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    update: DefaultKeyedRateLimiter<IpAddr>,
    forgot: DefaultKeyedRateLimiter<IpAddr>,
    /// One reset mail per address a minute, whether or not the address has
    /// an account (a limit that held only for accounts would tell).
    forgot_address: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Throttle")
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(rate: Rate) -> DefaultKeyedRateLimiter<K> {
    let period = rate.per / rate.count.get();
    let quota =
        Quota::with_period(period.max(Duration::from_nanos(1))).expect("non-zero period").allow_burst(rate.count);
    DefaultKeyedRateLimiter::keyed(quota)
}

impl Throttle {
    /// Limits of `register`, `login`, `refresh`, `update` and `forgot`
    /// requests per client address (an IPv6 /64 counting as one address).
    pub fn new(register: Rate, login: Rate, refresh: Rate, update: Rate, forgot: Rate) -> Self {
        let one_a_minute = Rate { count: std::num::NonZeroU32::MIN, per: Duration::from_secs(60) };
        Self {
            register: limiter(register),
            login: limiter(login),
            refresh: limiter(refresh),
            update: limiter(update),
            forgot: limiter(forgot),
            forgot_address: limiter(one_a_minute),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one reset-mail request for `email` (lower-cased).
    ///
    /// # Errors
    /// 429 with the wait when one was asked for less than a minute ago.
    pub fn check_forgot_address(&self, email: &str) -> Result<(), ApiError> {
        self.forgot_address.check_key(&email.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("throttled_total", "action" => "forgot_address").increment(1);
            ApiError::Core(user_core::Error::Throttled { retry_after: wait.max(Duration::from_secs(1)) })
        })
    }

    /// Counts one `action` from `ip`.
    ///
    /// # Errors
    /// 429 with the wait when over the limit.
    pub fn check(&self, action: Action, ip: IpAddr) -> Result<(), ApiError> {
        let limiter = match action {
            Action::Register => &self.register,
            Action::Login => &self.login,
            Action::Refresh => &self.refresh,
            Action::Update => &self.update,
            Action::Forgot => &self.forgot,
        };
        // Forget idle addresses now and then, so memory stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.register.retain_recent();
            self.login.retain_recent();
            self.refresh.retain_recent();
            self.update.retain_recent();
            self.forgot.retain_recent();
            self.forgot_address.retain_recent();
        }
        limiter.check_key(&rate_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("throttled_total", "action" => format!("{action:?}").to_lowercase()).increment(1);
            tracing::warn!(target: "audit", event = "throttled", ip = %ip, action = ?action, "rate limit");
            ApiError::Core(user_core::Error::Throttled { retry_after: wait.max(Duration::from_secs(1)) })
        })
    }
}

/// Who may talk to the service from where.
#[derive(Debug, Default)]
pub struct Policy {
    /// Per-IP throttling; `None` when `USER_RATE_LIMIT=off`.
    pub throttle: Option<Throttle>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed to call with credentials (CORS); empty: CORS off.
    pub cors_origins: Vec<String>,
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

    #[test]
    fn ipv4_mapped_peers_match_ipv4_proxies_and_ipv6_clients_count_by_their_64() {
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
        let t = Throttle::new(rate, rate, rate, rate, rate);
        assert!(t.check(Action::Login, a).is_ok());
        assert!(t.check(Action::Login, b).is_err(), "one /64, one budget");
        assert!(t.check(Action::Login, other).is_ok());
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

    #[test]
    fn the_throttle_refuses_past_the_burst_with_a_wait() {
        let rate = "2/min".parse().unwrap();
        let t = Throttle::new(rate, rate, rate, rate, rate);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.check(Action::Login, ip).is_ok());
        assert!(t.check(Action::Login, ip).is_ok());
        match t.check(Action::Login, ip) {
            Err(ApiError::Core(user_core::Error::Throttled { retry_after })) => {
                assert!(retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        assert!(t.check(Action::Login, "192.0.2.2".parse().unwrap()).is_ok(), "per address");
        assert!(t.check(Action::Register, ip).is_ok(), "per action");
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
