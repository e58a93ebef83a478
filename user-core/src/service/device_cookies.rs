//! Device cookies (OWASP's answer to lockouts aimed at an owner): a browser
//! that completed a sign-in to an account carries a cookie naming that
//! account; its wrong passwords count on that cookie alone, so nobody's
//! guessing elsewhere can lock it out.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::recovery::{new_secret, token_digest};
use super::{ClientInfo, UserService};
use crate::domain::UserId;
use crate::error::Result;

/// What every device cookie's name starts with.
pub const DEVICE_COOKIE_PREFIX: &str = "device_";

/// How long a device cookie lives (one year).
pub const DEVICE_COOKIE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The most device cookies one browser keeps: signing in to a sixth
/// account makes room by dropping one (see [`DeviceCookies::surplus`]).
pub const MAX_DEVICE_COOKIES: usize = 5;

/// The device cookies a request carried: `device_…` names and their values.
/// `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct DeviceCookies(Vec<(String, String)>);

impl DeviceCookies {
    /// The `device_…` cookies among `pairs` (name, value); at most a few
    /// more than a browser keeps, the rest ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let cookies = pairs
            .into_iter()
            .filter(|(name, _)| name.starts_with(DEVICE_COOKIE_PREFIX))
            .take(4 * MAX_DEVICE_COOKIES)
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Self(cookies)
    }

    /// The cookies to clear so that, with `new` set, the browser keeps at
    /// most [`MAX_DEVICE_COOKIES`]: the first names in order, `new` never.
    pub fn surplus(&self, new: &str) -> Vec<&str> {
        let mut others: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).filter(|n| *n != new).collect();
        others.sort_unstable();
        others.dedup();
        let drop = (others.len() + 1).saturating_sub(MAX_DEVICE_COOKIES);
        others.truncate(drop);
        others
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for DeviceCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

/// A device cookie to set after a completed sign-in (HttpOnly,
/// SameSite=Strict, for `max_age`). `Debug` hides the value.
#[derive(Clone)]
pub struct NewDeviceCookie {
    /// `device_` and an HMAC of the account id: the same for an account on
    /// every visit, telling nobody whose account it is.
    pub name: String,
    /// The secret; only its digest is stored.
    pub value: String,
    /// How long the browser keeps it.
    pub max_age: Duration,
}

impl std::fmt::Debug for NewDeviceCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDeviceCookie").field("name", &self.name).field("max_age", &self.max_age).finish()
    }
}

/// The key device cookie names are made with (kept in the store, so every
/// replica names an account's cookie alike).
pub(super) const DEVICE_COOKIE_KEY: &str = "device_cookie.hmac";

impl UserService {
    /// The name of `user`'s device cookie.
    pub(super) fn device_cookie_name(&self, user: UserId) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.device_cookie_key).expect("HMAC takes any key length");
        mac.update(user.as_uuid().as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{DEVICE_COOKIE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&tag[..16]))
    }

    /// The digest of the device cookie of `user` that `client` carried, if
    /// it carried one that could be ours.
    pub(super) fn presented_device(&self, user: UserId, client: &ClientInfo) -> Option<[u8; 32]> {
        let value = client.device_cookies.value(&self.device_cookie_name(user))?;
        token_digest(value).ok()
    }

    /// After a completed sign-in by `client`: keeps its device cookie of
    /// `user` (its failures cleared), or records a new one to set.
    pub(super) async fn remember_device(&self, user: UserId, client: &ClientInfo) -> Result<Option<NewDeviceCookie>> {
        let now = self.clock.now();
        let (value, digest) = new_secret();
        let expires_at = now + DEVICE_COOKIE_LIFETIME;
        let presented = self.presented_device(user, client);
        if !self.store.remember_device(user, presented, digest, now, expires_at).await? {
            return Ok(None);
        }
        Ok(Some(NewDeviceCookie { name: self.device_cookie_name(user), value, max_age: DEVICE_COOKIE_LIFETIME }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_device_cookies_are_kept_and_debug_shows_no_value() {
        let cookies = DeviceCookies::from_pairs([("device_a", "secret-a"), ("access_token", "jwt"), ("device_b", "b")]);
        assert_eq!(format!("{cookies:?}"), r#"["device_a", "device_b"]"#);
        assert_eq!(cookies.value("device_a"), Some("secret-a"));
        assert_eq!(cookies.value("access_token"), None);
    }

    #[test]
    fn a_browser_keeps_at_most_five() {
        let names = ["device_e", "device_a", "device_c", "device_b", "device_d"];
        let five = DeviceCookies::from_pairs(names.iter().map(|n| (*n, "v")));
        assert_eq!(five.surplus("device_f"), ["device_a"], "a sixth makes room");
        assert!(five.surplus("device_c").is_empty(), "an account's own cookie again takes no room");
        let four = DeviceCookies::from_pairs(names[..4].iter().map(|n| (*n, "v")));
        assert!(four.surplus("device_f").is_empty());
    }
}
