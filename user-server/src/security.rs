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
}

/// Per-IP limits on register, login and refresh.
pub struct Throttle {
    register: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Throttle")
    }
}

fn limiter(rate: Rate) -> DefaultKeyedRateLimiter<IpAddr> {
    let period = rate.per / rate.count.get();
    let quota =
        Quota::with_period(period.max(Duration::from_nanos(1))).expect("non-zero period").allow_burst(rate.count);
    DefaultKeyedRateLimiter::keyed(quota)
}

impl Throttle {
    /// Limits of `register`, `login` and `refresh` requests per client IP.
    pub fn new(register: Rate, login: Rate, refresh: Rate) -> Self {
        Self {
            register: limiter(register),
            login: limiter(login),
            refresh: limiter(refresh),
            checks: AtomicU64::new(0),
        }
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
        };
        // Forget idle addresses now and then, so memory stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.register.retain_recent();
            self.login.retain_recent();
            self.refresh.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
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
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        Some(forwarded.into_iter().rev().find(|ip| !self.is_trusted(*ip)).unwrap_or(peer))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
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
            tracing::warn!(target: "audit", event = "csrf.refused", origin = %source, "cross-site request refused");
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
    fn the_throttle_refuses_past_the_burst_with_a_wait() {
        let t = Throttle::new("2/min".parse().unwrap(), "2/min".parse().unwrap(), "2/min".parse().unwrap());
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
