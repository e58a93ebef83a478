//! `user-server healthcheck`: asks the server a configuration describes
//! whether it is ready, for container health checks (no curl in the image).

use std::time::Duration;

use crate::Config;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the server `config` describes answers `GET /readyz` with 200 on
/// this host within 3 s: over https when it serves TLS, without checking the
/// certificate (it is asked by address, on loopback, by its own host).
pub async fn healthcheck(config: &Config) -> Result<(), String> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/readyz", config.local_base_url());
    let response = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("{url} answered {status}")),
    }
}
