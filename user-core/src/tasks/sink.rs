//! Where tasks go: [`LogSink`] (the default) and [`WebhookSink`].

use async_trait::async_trait;

use super::TaskEvent;

/// Why a delivery failed, which decides what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// May succeed later (timeout, connection refused, 408, 429, 5xx): retried
    /// with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (other 4xx): the task goes straight to `dead`.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A downstream destination for tasks.
#[async_trait]
pub trait TaskSink: Send + Sync + std::fmt::Debug {
    /// Delivers one task; `Ok` means the receiver has it.
    async fn deliver(&self, event: &TaskEvent) -> Result<(), DeliveryError>;
}

/// Writes one structured log line per task (target `tasks`); never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

#[async_trait]
impl TaskSink for LogSink {
    async fn deliver(&self, e: &TaskEvent) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "tasks",
            task_id = e.id,
            kind = %e.kind,
            user_id = %e.user_id,
            track_id = e.track_id.as_deref().unwrap_or(""),
            occurred_at = %e.occurred_at,
            attempt = e.attempt,
            "task"
        );
        Ok(())
    }
}

#[cfg(feature = "webhook")]
pub use webhook::WebhookSink;

#[cfg(feature = "webhook")]
mod webhook {
    use std::time::Duration;

    use async_trait::async_trait;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::{DeliveryError, TaskEvent, TaskSink};

    /// POSTs each task as JSON to a URL, signed so the receiver can trust it.
    ///
    /// Headers: `Content-Type: application/json`, `X-Task-Id: <id>`, and
    /// `X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the secret>`.
    /// A 2xx answer is a delivery; 408, 429, 5xx, timeouts and connection
    /// errors are retried; any other answer is permanent. Redirects are not
    /// followed (a moved endpoint is a configuration error).
    #[derive(Clone)]
    pub struct WebhookSink {
        client: reqwest::Client,
        url: String,
        secret: Vec<u8>,
    }

    impl std::fmt::Debug for WebhookSink {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WebhookSink").field("url", &self.url).finish_non_exhaustive()
        }
    }

    impl WebhookSink {
        /// A sink posting to `url`, signing with `secret`, giving up on a
        /// request after `timeout`.
        ///
        /// # Errors
        /// [`crate::Error::Internal`] if the HTTP client cannot be built.
        pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>, timeout: Duration) -> crate::Result<Self> {
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("user-service-relay/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(crate::Error::internal)?;
            Ok(Self { client, url: url.into(), secret: secret.into() })
        }

        /// The signature header value for `body`.
        pub fn sign(&self, body: &[u8]) -> String {
            signature(&self.secret, body)
        }
    }

    /// `sha256=<hex HMAC-SHA256(secret, body)>`.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[async_trait]
    impl TaskSink for WebhookSink {
        async fn deliver(&self, event: &TaskEvent) -> Result<(), DeliveryError> {
            let body = serde_json::to_vec(event).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            let response = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-task-id", event.id.to_string())
                .header("x-signature-256", self.sign(&body))
                .body(body)
                .send()
                .await
                .map_err(|e| DeliveryError::Transient(format!("request failed: {e}")))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let message = format!("webhook answered {status}");
            if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
                Err(DeliveryError::Transient(message))
            } else {
                Err(DeliveryError::Permanent(message))
            }
        }
    }
}
