//! Signing a device in by code (RFC 8628): the device shows a short code,
//! a person approves it from a phone, the device polls until it has a session.

use std::time::Duration;

use reqwest::Method;
use user_core::api::{
    DEVICE_CODE_GRANT, DeviceApproveRequest, DeviceCodeRequest, DeviceCodeResponse, MainResponse, OAuthTokenRequest,
    OAuthTokenResponse,
};
use user_core::domain::DeviceName;

use crate::{Client, Result};

/// What `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// A device sign-in in progress: show [`DeviceLogin::user_code`] and
/// [`DeviceLogin::verification_uri`] (or a QR code of
/// [`DeviceLogin::verification_uri_complete`]), then [`DeviceLogin::wait`].
///
/// ```no_run
/// # async fn tv() -> Result<(), user_client::Error> {
/// let client = user_client::Client::builder("https://users.example").device_name("Living room TV").build()?;
/// let login = client.start_device_login("tv-app").await?;
/// println!("Go to {} and type {}", login.verification_uri(), login.user_code());
/// let signed_in = login.wait().await?; // polls at the server's pace until approved
/// println!("Hello, {}", signed_in.me().await?.display_name());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeviceLogin {
    client: Client,
    client_id: String,
    codes: DeviceCodeResponse,
    interval: Duration,
}

impl Client {
    /// `POST /user/device/approve`: lets the device showing `user_code` in
    /// to this client's account (`approve`), or turns it away. What a phone
    /// app calls after the person typed or scanned the code.
    ///
    /// # Errors
    /// 400 `invalid or expired code`; 429 after too many wrong codes; 401.
    pub async fn approve_device(&self, user_code: &str, approve: bool) -> Result<MainResponse> {
        let body = DeviceApproveRequest { user_code: user_code.into(), approve };
        self.authed(Method::POST, "/user/device/approve", |r| r.json(&body)).await
    }

    /// `POST /oauth/device/code` for the public client `client_id`, with
    /// the builder's [`device_name`](crate::ClientBuilder::device_name) as the
    /// name of the session to come.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a bad device name; 401 `invalid_client` for a
    /// client the server does not list ([`Error::grant_error`](crate::Error::grant_error)).
    pub async fn start_device_login(&self, client_id: &str) -> Result<DeviceLogin> {
        let device_name = self.device_name.as_deref().map(DeviceName::parse).transpose()?.map(|d| d.to_string());
        let body = DeviceCodeRequest { client_id: client_id.into(), scope: None, device_name };
        let codes: DeviceCodeResponse = self.send(self.http.post(self.url("/oauth/device/code")).form(&body)).await?;
        let interval = Duration::from_secs(codes.interval.max(1));
        Ok(DeviceLogin { client: self.clone(), client_id: client_id.into(), codes, interval })
    }
}

impl DeviceLogin {
    /// The code to show, `XXXX-XXXX`.
    pub fn user_code(&self) -> &str {
        &self.codes.user_code
    }

    /// Where the person types the code.
    pub fn verification_uri(&self) -> &str {
        &self.codes.verification_uri
    }

    /// The same page with the code filled in, for a QR code.
    pub fn verification_uri_complete(&self) -> &str {
        &self.codes.verification_uri_complete
    }

    /// How long the codes work from when they were issued.
    pub fn expires_in(&self) -> Duration {
        Duration::from_secs(self.codes.expires_in)
    }

    /// The time between polls now (it grows by 5 s after each `slow_down`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// One poll of `POST /oauth/token`: `Ok(Some(client))` once approved (a
    /// client holding the new session's tokens, see [`Client::with_tokens`]),
    /// `Ok(None)` while nobody has decided. A `slow_down` answer grows
    /// [`DeviceLogin::interval`] and is `Ok(None)` too.
    ///
    /// # Errors
    /// [`Error::grant_error`](crate::Error::grant_error) `access_denied` (declined), `expired_token`
    /// (start again), `invalid_grant` (already used); transport errors.
    pub async fn poll(&mut self) -> Result<Option<Client>> {
        let body = OAuthTokenRequest {
            grant_type: DEVICE_CODE_GRANT.into(),
            device_code: Some(self.codes.device_code.clone()),
            client_id: Some(self.client_id.clone()),
            refresh_token: None,
        };
        let client = &self.client;
        match client.send::<OAuthTokenResponse>(client.http.post(client.url("/oauth/token")).form(&body)).await {
            Ok(tokens) => Ok(Some(client.with_tokens(tokens.access_token, tokens.refresh_token))),
            Err(e) if e.grant_error() == Some("authorization_pending") => Ok(None),
            Err(e) if e.grant_error() == Some("slow_down") => {
                self.interval += SLOW_DOWN_STEP;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Polls at the server's pace until the person approves (a client
    /// holding the new session) or declines, or the codes expire. The first
    /// poll goes at once (the person may have been quick); each next one
    /// after [`DeviceLogin::interval`].
    ///
    /// # Errors
    /// As [`DeviceLogin::poll`].
    pub async fn wait(mut self) -> Result<Client> {
        loop {
            if let Some(client) = self.poll().await? {
                return Ok(client);
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
