//! [`NatsSink`]: tasks onto a NATS JetStream stream.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_trait::async_trait;

use super::{DeliveryError, TaskEvent, TaskSink};
use crate::error::{Error, Result};

/// Where and how to publish tasks on NATS JetStream.
#[derive(Clone)]
pub struct NatsConfig {
    /// `nats://host:4222` or `tls://host:4222`; credentials may ride in it
    /// (`nats://user:pass@host`, `nats://token@host`). Several servers,
    /// comma-separated, form a cluster the client fails over between.
    pub url: String,
    /// The subject of each task, `{kind}` standing for its kind
    /// (`user-service.tasks.{kind}` gives `user-service.tasks.favorite.added`).
    pub subject: String,
    /// The stream that must capture those subjects; made at start when
    /// `create_stream` is set.
    pub stream: String,
    /// Create the stream at start when it does not exist, with the two
    /// settings below (an existing stream is left as it is).
    pub create_stream: bool,
    /// How long JetStream remembers a message id to drop a republished
    /// duplicate (of the stream it creates).
    pub duplicate_window: Duration,
    /// How long the stream it creates keeps messages.
    pub max_age: Duration,
    /// A `.creds` file (JWT and NKey seed), as `nsc` writes it.
    pub credentials_file: Option<PathBuf>,
    /// An NKey seed (`SU…`).
    pub nkey_seed: Option<String>,
    /// An authentication token.
    pub token: Option<String>,
    /// Also trust the CA certificates in this PEM file (and require TLS).
    pub ca_file: Option<PathBuf>,
    /// How long a publish waits for JetStream's acknowledgement.
    pub ack_timeout: Duration,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &shown_url(&self.url))
            .field("subject", &self.subject)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            subject: "user-service.tasks.{kind}".into(),
            stream: "USER_SERVICE_TASKS".into(),
            create_stream: false,
            duplicate_window: Duration::from_secs(10 * 60),
            max_age: Duration::from_secs(7 * 24 * 3600),
            credentials_file: None,
            nkey_seed: None,
            token: None,
            ca_file: None,
            ack_timeout: Duration::from_secs(5),
        }
    }
}

/// Publishes each task to JetStream: the webhook's JSON body as payload,
/// headers `Nats-Msg-Id: <task id>` (JetStream drops a redelivered task
/// within the stream's duplicate window) and `X-Task-Kind`. A task counts
/// as delivered only once JetStream acknowledged storing it. Publishes of
/// different users are in flight together (the relay delivers users
/// concurrently); one user's next task waits for the previous one's
/// acknowledgement, so the stream keeps each user's order.
#[derive(Clone)]
pub struct NatsSink {
    context: jetstream::Context,
    subject: String,
    shown_url: String,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink").field("url", &self.shown_url).field("subject", &self.subject).finish()
    }
}

impl NatsSink {
    /// Connects, and checks that a stream captures the task subjects,
    /// creating it first when [`NatsConfig::create_stream`] is set.
    ///
    /// # Errors
    /// [`Error::Internal`] naming what is wrong: the server unreachable, the
    /// credentials refused, no stream for the subjects, JetStream off.
    pub async fn connect(config: &NatsConfig) -> Result<Self> {
        let shown = shown_url(&config.url);
        let fail = |what: &str, e: &dyn std::fmt::Display| Error::internal(format!("NATS {shown}: {what}: {e}"));
        if !config.subject.contains("{kind}") {
            return Err(fail("the subject", &"must contain {kind}"));
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(concat!("user-service-relay/", env!("CARGO_PKG_VERSION")))
            .connection_timeout(Duration::from_secs(5));
        if let Some(path) = &config.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| fail("the credentials file", &e))?;
        }
        if let Some(seed) = &config.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &config.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = options.connect(config.url.as_str()).await.map_err(|e| fail("cannot connect", &e))?;
        let context = jetstream::ContextBuilder::new().timeout(config.ack_timeout).build(client);
        let subjects = config.subject.replace("{kind}", ">");
        if config.create_stream {
            let stream = stream::Config {
                name: config.stream.clone(),
                subjects: vec![subjects.clone()],
                duplicate_window: config.duplicate_window,
                max_age: config.max_age,
                ..stream::Config::default()
            };
            context.get_or_create_stream(stream).await.map_err(|e| fail("cannot create the stream", &e))?;
        }
        // A task of any kind must land in a stream: ask for the one of a sample subject.
        let sample = config.subject.replace("{kind}", "favorite.added");
        context.stream_by_subject(sample.clone()).await.map_err(|e| {
            fail(
                &format!(
                    "no JetStream stream captures {sample}; create one for {subjects} \
                     (or set USER_TASKS_NATS_CREATE_STREAM=true)"
                ),
                &e,
            )
        })?;
        Ok(Self { context, subject: config.subject.clone(), shown_url: shown })
    }
}

#[async_trait]
impl TaskSink for NatsSink {
    async fn deliver(&self, event: &TaskEvent) -> std::result::Result<(), DeliveryError> {
        let body = serde_json::to_vec(event).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let subject = self.subject.replace("{kind}", &event.kind);
        let mut message =
            PublishMessage::build().message_id(event.id.to_string()).header("X-Task-Kind", event.kind.as_str());
        if let Some(traceparent) = crate::trace::traceparent() {
            message = message.header("traceparent", traceparent.as_str());
        }
        let message = message.payload(body.into());
        let transient = |e: &dyn std::fmt::Display| DeliveryError::Transient(format!("NATS {}: {e}", self.shown_url));
        let ack = self.context.send_publish(subject, message).await.map_err(|e| transient(&e))?;
        ack.await.map_err(|e| transient(&e))?;
        Ok(())
    }
}

/// The server list without credentials, for logs and errors.
fn shown_url(url: &str) -> String {
    url.split(',')
        .map(|one| match one.trim().split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit_once('@').map_or(rest, |(_, host)| host)),
            None => one.trim().rsplit_once('@').map_or(one.trim(), |(_, host)| host).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_urls_keep_no_credentials() {
        assert_eq!(super::shown_url("nats://user:pa55@nats.example:4222"), "nats://nats.example:4222");
        assert_eq!(super::shown_url("tls://s3cret@a:4222, nats://b:4222"), "tls://a:4222,nats://b:4222");
        assert_eq!(super::shown_url("127.0.0.1:4222"), "127.0.0.1:4222");
    }
}
