//! The breached-password check: an HIBP-compatible range API
//! (`GET {url}/{first 5 hex of SHA-1}` answering `SUFFIX:COUNT` lines), so
//! only 5 hex characters of the password's SHA-1 ever leave the process
//! (k-anonymity). `Add-Padding: true` asks for padded answers, so their size
//! tells an observer nothing either.

use sha1::{Digest, Sha1};

use crate::domain::Password;
use crate::service::BreachCheck;

/// Looks passwords up in the range API of a [`BreachCheck`].
#[derive(Debug, Clone)]
pub struct BreachChecker {
    client: reqwest::Client,
    url: String,
}

impl BreachChecker {
    /// A checker for `config`.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if the HTTP client cannot be built.
    pub fn new(config: &BreachCheck) -> crate::Result<Self> {
        let client = crate::tasks::sink::http_client(config.timeout, &[])?;
        Ok(Self { client, url: config.url.trim_end_matches('/').to_owned() })
    }

    /// Whether the range API reports `password` breached (a count above 0).
    ///
    /// # Errors
    /// Why the lookup failed (unreachable, slow, not 200, not the format);
    /// the URL in it has lost any credentials.
    pub async fn is_breached(&self, password: &Password) -> Result<bool, String> {
        let digest = hex::encode_upper(Sha1::digest(password.expose().as_bytes()));
        let (prefix, suffix) = digest.split_at(5);
        let url = format!("{}/{prefix}", self.url);
        let failed = |why: String| format!("{}: {why}", crate::redact_url(&self.url));
        let response =
            self.client.get(&url).header("Add-Padding", "true").send().await.map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        let body = response.text().await.map_err(|e| failed(e.to_string()))?;
        for line in body.lines() {
            let Some((hash, count)) = line.trim().split_once(':') else {
                return Err(failed("an answer not of SUFFIX:COUNT lines".into()));
            };
            if hash.eq_ignore_ascii_case(suffix) {
                return Ok(count.trim().parse::<u64>().is_ok_and(|n| n > 0));
            }
        }
        Ok(false)
    }
}
