//! Where tasks go: [`LogSink`] (the default) and [`WebhookSink`].

use async_trait::async_trait;

use super::TaskEvent;
pub use crate::error::DeliveryError;

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
pub(crate) use webhook::client as http_client;

#[cfg(feature = "webhook")]
mod webhook {
    use std::time::Duration;

    use async_trait::async_trait;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::{DeliveryError, TaskEvent, TaskSink};

    /// POSTs each task as JSON to a URL, signed so the receiver can trust it.
    ///
    /// Headers: `Content-Type: application/json`, `X-Task-Id: <id>`,
    /// `X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the
    /// secret>`, and the [Standard Webhooks](https://www.standardwebhooks.com/)
    /// headers, so any of its libraries can verify a delivery and refuse a
    /// replay: `webhook-id: <task id>`, `webhook-timestamp: <unix seconds>`,
    /// `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
    /// (the library's secret is `whsec_` followed by the base64 of ours).
    /// A 2xx answer is a delivery; 408, 429, 5xx, timeouts and connection
    /// errors are retried; any other answer is permanent. Redirects are not
    /// followed (a moved endpoint is a configuration error). Errors name the
    /// URL without its userinfo and query, which may hold credentials.
    #[derive(Clone)]
    pub struct WebhookSink {
        client: reqwest::Client,
        timeout: Duration,
        url: String,
        /// `url` without userinfo and query: what logs and errors may show.
        shown_url: String,
        secret: Vec<u8>,
    }

    impl std::fmt::Debug for WebhookSink {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WebhookSink").field("url", &self.shown_url).finish_non_exhaustive()
        }
    }

    impl WebhookSink {
        /// A sink posting to `url`, signing with `secret`, giving up on a
        /// request after `timeout`.
        ///
        /// # Errors
        /// [`crate::Error::Internal`] if the HTTP client cannot be built.
        pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>, timeout: Duration) -> crate::Result<Self> {
            let url = url.into();
            Ok(Self { client: client(timeout, &[])?, timeout, shown_url: shown_url(&url), url, secret: secret.into() })
        }

        /// Trusts the CA certificates in `pem` besides the system's roots,
        /// for a receiver whose certificate a private CA issued.
        ///
        /// # Errors
        /// [`crate::Error::Validation`] if `pem` holds no certificate or one
        /// does not parse.
        pub fn trusting(mut self, pem: &[u8]) -> crate::Result<Self> {
            let invalid = |why: String| crate::domain::ValidationError::new("webhook_ca", why);
            let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| invalid(e.to_string()))?;
            if roots.is_empty() {
                return Err(invalid("holds no PEM certificate".into()).into());
            }
            self.client = client(self.timeout, &roots)?;
            Ok(self)
        }

        /// The `X-Signature-256` header value for `body`.
        pub fn sign(&self, body: &[u8]) -> String {
            signature(&self.secret, body)
        }

        /// The Standard Webhooks `webhook-signature` header value for a
        /// message `id` sent at `timestamp` (unix seconds) with `body`.
        pub fn sign_standard(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        }
    }

    /// The HTTP client: system roots plus `roots`, no redirects.
    pub(crate) fn client(timeout: Duration, roots: &[reqwest::Certificate]) -> crate::Result<reqwest::Client> {
        ensure_rustls_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("user-service-relay/", env!("CARGO_PKG_VERSION")));
        for root in roots {
            builder = builder.add_root_certificate(root.clone());
        }
        builder.build().map_err(crate::Error::internal)
    }

    /// reqwest (built with ring, not aws-lc) takes the process-wide rustls
    /// provider: installs ring's unless the application installed one first.
    fn ensure_rustls_provider() {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Another thread may install one first; either way, one is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    }

    /// `sha256=<hex HMAC-SHA256(secret, body)>`.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// `url` without userinfo, query and fragment.
    fn shown_url(url: &str) -> String {
        match reqwest::Url::parse(url) {
            Ok(mut parsed) => {
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
                parsed.set_query(None);
                parsed.set_fragment(None);
                parsed.to_string()
            }
            Err(_) => "(unparsable URL)".to_owned(),
        }
    }

    #[async_trait]
    impl TaskSink for WebhookSink {
        async fn deliver(&self, event: &TaskEvent) -> Result<(), DeliveryError> {
            let body = serde_json::to_vec(event).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            self.post_signed(event.id, body).await
        }
    }

    /// A mail webhook: each mail is POSTed as JSON, `{"id", "kind", "to",
    /// "locale", "subject", "text", "html"}` (`id` is the task id, the same
    /// on every retry), signed and retried exactly as task events are; for
    /// teams that send mail through a provider's API.
    #[async_trait]
    impl crate::mail::MailTransport for WebhookSink {
        async fn send(&self, mail: &crate::mail::Mail) -> Result<(), DeliveryError> {
            let body = serde_json::json!({
                "id": mail.task_id,
                "kind": mail.kind,
                "to": mail.to.as_str(),
                "locale": mail.locale,
                "subject": mail.subject,
                "text": mail.text,
                "html": mail.html,
            });
            let body = serde_json::to_vec(&body).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            self.post_signed(mail.task_id, body).await
        }
    }

    impl WebhookSink {
        /// POSTs `body` for task `id` with the signature headers; sorts the
        /// answer into delivered, transient or permanent.
        async fn post_signed(&self, id: i64, body: Vec<u8>) -> Result<(), DeliveryError> {
            let id = id.to_string();
            let timestamp = chrono::Utc::now().timestamp();
            let request = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-task-id", &id)
                .header("x-signature-256", self.sign(&body))
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", self.sign_standard(&id, timestamp, &body));
            let request = match crate::trace::traceparent() {
                Some(traceparent) => request.header("traceparent", traceparent),
                None => request,
            };
            let response = request.body(body).send().await.map_err(|e| {
                DeliveryError::Transient(format!(
                    "request failed: {} ({})",
                    crate::error_chain(&e.without_url()),
                    self.shown_url
                ))
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let message = format!("webhook {} answered {status}", self.shown_url);
            if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
                Err(DeliveryError::Transient(message))
            } else {
                Err(DeliveryError::Permanent(message))
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn shown_urls_keep_no_credentials() {
            assert_eq!(
                super::shown_url("https://user:pa55@hooks.example:8443/in/tasks?token=abc#x"),
                "https://hooks.example:8443/in/tasks"
            );
            assert_eq!(super::shown_url("not a url"), "(unparsable URL)");
        }
    }
}
