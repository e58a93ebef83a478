//! Settings: every one a flag and a `USER_*` environment variable, each with a
//! working default, so `user-server` alone serves on 127.0.0.1:8080 over SQLite.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use user_core::ServiceConfig;
use user_core::mail::{LogTransport, MailSettings, MailTransport, Mailer, SmtpTransport};
use user_core::tasks::{LogSink, NatsConfig, NatsSink, RelayConfig, TaskSink, WebhookSink};

use crate::security::{GuestCap, Hsts, Policy, Rate, Throttle};

mod providers;
mod values;

use providers::provider_from_env;

use crate::serve::TransportLimits;
pub use crate::telemetry::LogFormat;
pub use user_settings::{JwtAlgorithm, LoadError, Secret, ServiceSettings};
use user_settings::{UnknownKeys, read_secret_file};
pub use values::{DatabaseUrl, RateLimitSetting, Retention, redact_url};

/// The user service's REST server.
#[derive(Debug, Clone, Parser)]
#[command(name = "user-server", version, about, long_about = None)]
pub struct Config {
    /// Read settings from this TOML file too: its keys are these long flag names (`listen = "0.0.0.0:8080"`); a flag or a variable beats the file.
    #[arg(long, env = "USER_CONFIG_FILE", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "USER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key-file. Reloaded on SIGHUP.
    #[arg(long, env = "USER_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// The PEM private key of --tls-cert-file (PKCS#8, PKCS#1 or SEC1). Reloaded on SIGHUP.
    #[arg(long, env = "USER_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// Database URL: `sqlite://path.db` (created if missing), `postgres://user:pass@host/db`, `sqlite::memory:` or `memory:`.
    #[arg(long, env = "USER_DATABASE_URL", default_value = "sqlite://user-service.db")]
    pub database: DatabaseUrl,

    /// Read the database URL from this file (trimmed), e.g. a container secret; not together with --database.
    #[arg(long, env = "USER_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_file: Option<PathBuf>,

    /// Database connections per process: the pool on PostgreSQL, the idle read connections kept on SQLite.
    #[arg(long, env = "USER_DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// Tokens, signing keys, password hashing and account lockout.
    #[command(flatten)]
    pub service: ServiceSettings,

    /// Mark every cookie `Secure` [default: off when listening on loopback, on otherwise]; cookies answering a request a trusted proxy marks as https are `Secure` regardless.
    #[arg(long, env = "USER_COOKIE_SECURE", action = clap::ArgAction::Set)]
    pub cookie_secure: Option<bool>,

    /// Throttling of register, login and refresh per client IP: `off` disables it (for load tests).
    #[arg(long, env = "USER_RATE_LIMIT", default_value = "on")]
    pub rate_limit: RateLimitSetting,

    /// Registrations allowed per client IP (N/s, N/min or N/h; N at once).
    #[arg(long, env = "USER_RATE_LIMIT_REGISTER", default_value = "10/min")]
    pub rate_limit_register: Rate,

    /// Logins allowed per client IP.
    #[arg(long, env = "USER_RATE_LIMIT_LOGIN", default_value = "30/min")]
    pub rate_limit_login: Rate,

    /// Refreshes allowed per client IP.
    #[arg(long, env = "USER_RATE_LIMIT_REFRESH", default_value = "60/min")]
    pub rate_limit_refresh: Rate,

    /// Profile updates allowed per client IP (they may check a password).
    #[arg(long, env = "USER_RATE_LIMIT_UPDATE", default_value = "30/min")]
    pub rate_limit_update: Rate,

    /// Proxies (CIDR list) whose X-Forwarded-For is believed for the client IP.
    #[arg(long, env = "USER_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Origins allowed to call with credentials from a browser (CORS), exact, comma-separated; none by default.
    #[arg(long, env = "USER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Strict-Transport-Security sent on every answer over https (this server's TLS, or a trusted proxy's X-Forwarded-Proto/Forwarded); `off` sends none.
    #[arg(long, env = "USER_HSTS", default_value_t = Hsts::default())]
    pub hsts: Hsts,

    /// Time a client has from connecting to a complete first request head, whatever the protocol, and to send each later request's headers (cuts off idle and slow-loris clients).
    #[arg(long, env = "USER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Time a connection may stay open with no request in flight after its first (keep-alive), on HTTP/1 and HTTP/2.
    #[arg(long, env = "USER_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Time a request may take, reading its body included; then 503.
    #[arg(long, env = "USER_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Connections served at once; more wait in the accept queue.
    #[arg(long, env = "USER_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Connections open at once from one client address (an IPv6 /64 counts as one); more are closed at once. Trusted proxies are exempt [default: 64, and at most a quarter of --max-connections].
    #[arg(long, env = "USER_MAX_CONNECTIONS_PER_IP", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: Option<u64>,

    /// Also serve cleartext HTTP/2 (prior knowledge), with keep-alive pings and at most 100 streams per connection.
    #[arg(long, env = "USER_HTTP2", default_value_t = false, action = clap::ArgAction::Set)]
    pub http2: bool,

    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9100`) instead of the public listener.
    #[arg(long, env = "USER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Run the deferred-task relay in this process.
    #[arg(long, env = "USER_TASKS_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub tasks_relay: bool,

    /// Deliver tasks by POSTing them here (signed); unset, tasks go to the log (target `tasks`).
    #[arg(long, env = "USER_TASKS_WEBHOOK_URL")]
    pub tasks_webhook_url: Option<String>,

    /// HMAC-SHA256 key for the webhook's `X-Signature-256` header (required with the URL).
    #[arg(long, env = "USER_TASKS_WEBHOOK_SECRET", hide_env_values = true)]
    pub tasks_webhook_secret: Option<Secret>,

    /// Read the webhook secret from this file (trimmed); not together with --tasks-webhook-secret.
    #[arg(long, env = "USER_TASKS_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub tasks_webhook_secret_file: Option<PathBuf>,

    /// Also trust the CA certificate(s) in this PEM file for the webhook (a receiver whose certificate a private CA issued).
    #[arg(long, env = "USER_TASKS_WEBHOOK_CA_FILE")]
    pub tasks_webhook_ca_file: Option<PathBuf>,

    /// Publish tasks to NATS JetStream instead: `nats://host:4222`, `tls://host:4222`, credentials may ride in it (`nats://user:pass@host`); several servers comma-separated.
    #[arg(long, env = "USER_TASKS_NATS_URL", hide_env_values = true)]
    pub tasks_nats_url: Option<Secret>,

    /// The subject of each task, `{kind}` standing for its kind (consumers subscribe to e.g. `user-service.tasks.favorite.*`).
    #[arg(long, env = "USER_TASKS_NATS_SUBJECT", default_value_t = nats().subject)]
    pub tasks_nats_subject: String,

    /// The JetStream stream that captures the task subjects (checked at start).
    #[arg(long, env = "USER_TASKS_NATS_STREAM", default_value_t = nats().stream)]
    pub tasks_nats_stream: String,

    /// Create the stream at start when it does not exist, for the task subjects, with the duplicate window and age below (an existing one is left as it is).
    #[arg(long, env = "USER_TASKS_NATS_CREATE_STREAM", default_value_t = false, action = clap::ArgAction::Set)]
    pub tasks_nats_create_stream: bool,

    /// The duplicate window of the stream it creates: a task republished within it (after a relay crash) is stored once.
    #[arg(long, env = "USER_TASKS_NATS_DUPLICATE_WINDOW", default_value_t = nats().duplicate_window.into())]
    pub tasks_nats_duplicate_window: humantime::Duration,

    /// How long the stream it creates keeps messages.
    #[arg(long, env = "USER_TASKS_NATS_MAX_AGE", default_value_t = nats().max_age.into())]
    pub tasks_nats_max_age: humantime::Duration,

    /// A NATS credentials file (`.creds`: user JWT and NKey seed).
    #[arg(long, env = "USER_TASKS_NATS_CREDS_FILE", value_name = "FILE")]
    pub tasks_nats_creds_file: Option<PathBuf>,

    /// A file holding an NKey seed (`SU…`) to authenticate with.
    #[arg(long, env = "USER_TASKS_NATS_NKEY_FILE", value_name = "FILE")]
    pub tasks_nats_nkey_file: Option<PathBuf>,

    /// An authentication token for NATS.
    #[arg(long, env = "USER_TASKS_NATS_TOKEN", hide_env_values = true)]
    pub tasks_nats_token: Option<Secret>,

    /// Read the NATS token from this file (trimmed); not together with --tasks-nats-token.
    #[arg(long, env = "USER_TASKS_NATS_TOKEN_FILE", value_name = "FILE")]
    pub tasks_nats_token_file: Option<PathBuf>,

    /// Trust the CA certificate(s) in this PEM file for NATS, and require TLS.
    #[arg(long, env = "USER_TASKS_NATS_CA_FILE", value_name = "FILE")]
    pub tasks_nats_ca_file: Option<PathBuf>,

    /// The service's public base URL, where links in mails point (`/account/verify`, `/account/reset`) [default: http:// and the listen address].
    #[arg(long, env = "USER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Providers to sign in with, comma-separated (`google,apple,example`); each is configured by `USER_OIDC_<NAME>_*` variables (docs/configuration.md, "Sign in with another provider").
    #[arg(long, env = "USER_OIDC_PROVIDERS", value_delimiter = ',')]
    pub oidc_providers: Vec<String>,

    /// Providers given directly by a program that starts the server (not
    /// a setting), beside those of `USER_OIDC_PROVIDERS`.
    #[arg(skip)]
    pub providers: Vec<user_core::auth::oidc::ProviderConfig>,

    /// An app's own verification page for links in mails, with `{token}` where the token goes (instead of /account/verify).
    #[arg(long, env = "USER_MAIL_VERIFY_URL")]
    pub mail_verify_url: Option<String>,

    /// An app's own password-reset page for links in mails, with `{token}` where the token goes (instead of /account/reset).
    #[arg(long, env = "USER_MAIL_RESET_URL")]
    pub mail_reset_url: Option<String>,

    /// An app's own page for undoing an address change, for the link in the old address's notice, with `{token}` where the token goes (instead of /account/revert).
    #[arg(long, env = "USER_MAIL_REVERT_URL")]
    pub mail_revert_url: Option<String>,

    /// HMAC-SHA256 key of the mail webhook's signatures, at least 32 bytes.
    #[arg(long, env = "USER_MAIL_WEBHOOK_SECRET", hide_env_values = true)]
    pub mail_webhook_secret: Option<Secret>,

    /// Read the mail webhook's key from this file (trimmed); not together with --mail-webhook-secret.
    #[arg(long, env = "USER_MAIL_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub mail_webhook_secret_file: Option<PathBuf>,

    /// Time an SMTP exchange may take; then it is retried later.
    #[arg(long, env = "USER_MAIL_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub mail_smtp_timeout: Duration,

    /// The product's name in mails.
    #[arg(long, env = "USER_MAIL_PRODUCT_NAME", default_value = "Music")]
    pub mail_product_name: String,

    /// A directory of mail templates overriding the built-in ones file by file (`verify.ru.html`, …).
    #[arg(long, env = "USER_MAIL_TEMPLATES_DIR")]
    pub mail_templates_dir: Option<PathBuf>,

    /// Password-reset requests allowed per client IP (each address also gets at most one mail a minute).
    #[arg(long, env = "USER_RATE_LIMIT_FORGOT", default_value = "5/min")]
    pub rate_limit_forgot: Rate,

    /// Guest accounts one client address (an IPv6 /64 counting as one) may create.
    #[arg(long, env = "USER_RATE_LIMIT_GUEST", default_value = "10/h")]
    pub rate_limit_guest: Rate,

    /// Webhook request timeout.
    #[arg(long, env = "USER_TASKS_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tasks_webhook_timeout: Duration,

    /// Tasks claimed per relay pass.
    #[arg(long, env = "USER_TASKS_BATCH_SIZE", default_value_t = relay().batch_size, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tasks_batch_size: u32,

    /// How often the relay looks for due tasks when not woken by a write.
    #[arg(long, env = "USER_TASKS_POLL_INTERVAL", default_value_t = relay().poll_interval.into())]
    pub tasks_poll_interval: humantime::Duration,

    /// After a write wakes the relay, how long it lets more tasks gather before claiming.
    #[arg(long, env = "USER_TASKS_LINGER", default_value_t = relay().linger.into())]
    pub tasks_linger: humantime::Duration,

    /// How long a relay holds claimed tasks; a crashed relay's tasks return after this.
    #[arg(long, env = "USER_TASKS_LEASE", default_value_t = relay().lease.into())]
    pub tasks_lease: humantime::Duration,

    /// Delivery attempts before a task is dead.
    #[arg(long, env = "USER_TASKS_MAX_ATTEMPTS", default_value_t = relay().max_attempts, value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks_max_attempts: u32,

    /// First retry delay; doubles per attempt, with jitter.
    #[arg(long, env = "USER_TASKS_BACKOFF_BASE", default_value_t = relay().backoff_base.into())]
    pub tasks_backoff_base: humantime::Duration,

    /// Longest delay between attempts.
    #[arg(long, env = "USER_TASKS_BACKOFF_CAP", default_value_t = relay().backoff_cap.into())]
    pub tasks_backoff_cap: humantime::Duration,

    /// How long delivered tasks are kept before the relay deletes them; `off` keeps them forever. Dead tasks are always kept.
    #[arg(long, env = "USER_TASKS_RETENTION", default_value_t = Retention(relay().retention))]
    pub tasks_retention: Retention,

    /// How long a guest account may stay idle (no sign-in or refresh) before the relay deletes it with a `user.deleted` task; `off` keeps guests.
    #[arg(long, env = "USER_GUEST_TTL", default_value_t = Retention(relay().guest_ttl))]
    pub guest_ttl: Retention,

    /// New guest accounts (`POST /user/guest`) the whole service creates an hour, shared by replicas on PostgreSQL; stays on with USER_RATE_LIMIT=off. 0 turns guest accounts off.
    #[arg(long, env = "USER_GUEST_MAX_PER_HOUR", default_value_t = 1000)]
    pub guest_max_per_hour: u32,

    /// Log format.
    #[arg(long, env = "USER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "USER_LOG", default_value = "info,warp::server=off")]
    pub log: String,

    /// Print the OpenAPI document (as served at /openapi.json) and exit.
    #[arg(long)]
    pub print_openapi: bool,

    /// Print the manual page (roff) and exit, e.g. `user-server --print-man-page | man -l -`.
    #[arg(long)]
    pub print_man_page: bool,

    /// How long graceful shutdown waits for in-flight requests.
    #[arg(long, env = "USER_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
}

/// What `user-server` can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServerCommand {
    /// Ask the server these settings describe whether it is ready: exit 0 if
    /// its `/readyz` answers 200 within 3 s (over https when it serves TLS), 1
    /// otherwise. For container health checks: no curl needed.
    Healthcheck,
}

impl Config {
    /// The settings of this process: flags, then `USER_*` variables, then
    /// the config file (`--config`, `USER_CONFIG_FILE`), then defaults;
    /// secrets given as `*_FILE` are read from their files.
    ///
    /// # Errors
    /// clap's usage error (it prints itself and exits), or a message when a
    /// secret is given both directly and as a file, or its file cannot be
    /// read, or the config file cannot be read or names an unknown setting.
    pub fn load() -> Result<Self, LoadError> {
        Self::load_from(std::env::args_os())
    }

    /// [`Config::load`] from the given command line (and the environment).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_from<I, T>(args: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let loaded = user_settings::load::<Self, _, _>(args, UnknownKeys::Refuse)?;
        let mut config = loaded.settings;
        let given = |id: &str| loaded.sources.given(id);
        if let Some(url) = read_secret_file("USER_DATABASE_URL", &config.database_file, given("database"))? {
            config.database = DatabaseUrl::new(url);
        }
        config.service.read_secret_files(&given)?;
        // clap's `requires` holds for flags and variables, not for values
        // that came from the config file: a certificate without its key must
        // not fall back to plain http.
        if config.tls_cert_file.is_some() != config.tls_key_file.is_some() {
            return Err(LoadError::Invalid("give --tls-cert-file and --tls-key-file together".into()));
        }
        let from_file = |setting, file, id| read_secret_file(setting, file, given(id)).map(|s| s.map(Secret::new));
        if let Some(secret) =
            from_file("USER_TASKS_WEBHOOK_SECRET", &config.tasks_webhook_secret_file, "tasks_webhook_secret")?
        {
            config.tasks_webhook_secret = Some(secret);
        }
        if let Some(secret) =
            from_file("USER_MAIL_WEBHOOK_SECRET", &config.mail_webhook_secret_file, "mail_webhook_secret")?
        {
            config.mail_webhook_secret = Some(secret);
        }
        if let Some(token) = from_file("USER_TASKS_NATS_TOKEN", &config.tasks_nats_token_file, "tasks_nats_token")? {
            config.tasks_nats_token = Some(token);
        }
        Ok(config)
    }

    /// Parses a command line (for tests); `user-server` itself uses [`Config::load`].
    pub fn for_tests(database: &str) -> Self {
        let mut config = Self::parse_from(["user-server", "--database", database, "--listen", "127.0.0.1:0"]);
        config.service.argon2_memory_kib = 8;
        config.service.argon2_iterations = 1;
        config.rate_limit = RateLimitSetting::Off;
        config
    }

    /// The library configuration these settings describe.
    ///
    /// # Errors
    /// A message naming the setting that is wrong.
    pub fn service_config(&self) -> Result<ServiceConfig, String> {
        let mut config = self.service.service_config()?;
        config.providers = self
            .oidc_providers
            .iter()
            .map(|name| provider_from_env(name.trim(), |key| std::env::var(key).ok()))
            .collect::<Result<_, _>>()?;
        config.providers.extend(self.providers.iter().cloned());
        if self.service.totp_issuer.is_none() {
            config.mfa.totp_issuer = self.mail_product_name.clone();
            if let Some(passkeys) = &mut config.mfa.passkeys {
                passkeys.rp_name = self.mail_product_name.clone();
            }
        }
        Ok(config)
    }

    /// Throttling, trusted proxies and CORS as configured.
    pub fn policy(&self) -> Policy {
        let throttle = match self.rate_limit {
            RateLimitSetting::On => Some(Throttle::new([
                self.rate_limit_register,
                self.rate_limit_login,
                self.rate_limit_refresh,
                self.rate_limit_update,
                self.rate_limit_forgot,
                self.rate_limit_guest,
            ])),
            RateLimitSetting::Off => None,
        };
        Policy {
            throttle,
            guest_cap: GuestCap::new(self.guest_max_per_hour),
            trusted_proxies: self.trusted_proxies.clone(),
            cors_origins: self.cors_origins.clone(),
            hsts: self.hsts.clone(),
        }
    }

    /// What one client may hold.
    pub fn transport_limits(&self) -> TransportLimits {
        TransportLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            // A quarter at most by default, so that one address can never
            // hold every slot, whatever the total.
            max_connections_per_ip: usize::try_from(
                self.max_connections_per_ip.unwrap_or_else(|| (self.max_connections / 4).clamp(1, 64)),
            )
            .unwrap_or(usize::MAX),
            http2: self.http2,
        }
    }

    /// The relay settings.
    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            batch_size: self.tasks_batch_size,
            poll_interval: self.tasks_poll_interval.into(),
            linger: self.tasks_linger.into(),
            lease: self.tasks_lease.into(),
            max_attempts: self.tasks_max_attempts,
            backoff_base: self.tasks_backoff_base.into(),
            backoff_cap: self.tasks_backoff_cap.into(),
            retention: self.tasks_retention.0,
            guest_ttl: self.guest_ttl.0,
        }
    }

    /// The sink the settings select: the webhook when a URL is set, else the log.
    ///
    /// # Errors
    /// A message when the webhook URL comes without a secret or is not http(s).
    pub async fn task_sink(&self) -> Result<Arc<dyn TaskSink>, String> {
        match (&self.tasks_webhook_url, &self.tasks_nats_url) {
            (Some(_), Some(_)) => Err("give USER_TASKS_WEBHOOK_URL or USER_TASKS_NATS_URL, not both".into()),
            (Some(url), None) => {
                let secret = self.tasks_webhook_secret.as_ref();
                Ok(Arc::new(self.webhook("USER_TASKS_WEBHOOK", url, secret, self.tasks_webhook_timeout)?))
            }
            (None, Some(url)) => {
                Ok(Arc::new(NatsSink::connect(&self.nats_config(url)?).await.map_err(|e| e.to_string())?))
            }
            (None, None) => Ok(Arc::new(LogSink)),
        }
    }

    /// The NATS sink these settings describe.
    fn nats_config(&self, url: &Secret) -> Result<NatsConfig, String> {
        let nkey_seed = match &self.tasks_nats_nkey_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("USER_TASKS_NATS_NKEY_FILE {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(NatsConfig {
            url: url.expose().to_owned(),
            subject: self.tasks_nats_subject.clone(),
            stream: self.tasks_nats_stream.clone(),
            create_stream: self.tasks_nats_create_stream,
            duplicate_window: self.tasks_nats_duplicate_window.into(),
            max_age: self.tasks_nats_max_age.into(),
            credentials_file: self.tasks_nats_creds_file.clone(),
            nkey_seed,
            token: self.tasks_nats_token.as_ref().map(|t| t.expose().to_owned()),
            ca_file: self.tasks_nats_ca_file.clone(),
            ..nats()
        })
    }

    /// A signed webhook to `url` (`setting` names it in errors), trusting
    /// `USER_TASKS_WEBHOOK_CA_FILE` besides the system's roots.
    fn webhook(
        &self,
        setting: &str,
        url: &str,
        secret: Option<&Secret>,
        timeout: Duration,
    ) -> Result<WebhookSink, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{setting}_URL must be an http:// or https:// URL"));
        }
        let secret = secret
            .map(Secret::expose)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{setting}_SECRET is required with {setting}_URL"))?;
        if secret.len() < MIN_WEBHOOK_SECRET_BYTES {
            return Err(format!(
                "{setting}_SECRET must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes (it has {}); \
                 e.g. `openssl rand -base64 32`",
                secret.len()
            ));
        }
        let mut sink =
            WebhookSink::new(url.to_owned(), secret.as_bytes().to_vec(), timeout).map_err(|e| e.to_string())?;
        if let Some(path) = &self.tasks_webhook_ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("USER_TASKS_WEBHOOK_CA_FILE {}: {e}", path.display()))?;
            sink = sink.trusting(&pem).map_err(|e| format!("USER_TASKS_WEBHOOK_CA_FILE {}: {e}", path.display()))?;
        }
        Ok(sink)
    }

    /// The mailer the settings select, when mail is configured; links in
    /// mails point to `USER_PUBLIC_URL`, else to `addr`.
    ///
    /// # Errors
    /// A template that is missing or broken, or a link template without `{token}`.
    pub fn mailer(&self, addr: SocketAddr) -> Result<Option<Arc<Mailer>>, String> {
        let service = &self.service;
        let chosen = [service.mail_smtp_url.is_some(), service.mail_webhook_url.is_some(), service.mail_dev_log];
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Err("give one of USER_MAIL_SMTP_URL, USER_MAIL_WEBHOOK_URL and USER_MAIL_DEV_LOG".into());
        }
        let transport: Arc<dyn MailTransport> = match (&service.mail_smtp_url, &service.mail_webhook_url) {
            (Some(url), _) => {
                let from = service.mail_from.as_deref().ok_or("USER_MAIL_FROM is required with USER_MAIL_SMTP_URL")?;
                Arc::new(SmtpTransport::new(url.expose(), from, self.mail_smtp_timeout)?)
            }
            (None, Some(url)) => Arc::new(self.webhook(
                "USER_MAIL_WEBHOOK",
                url,
                self.mail_webhook_secret.as_ref(),
                self.tasks_webhook_timeout,
            )?),
            (None, None) if service.mail_dev_log => {
                tracing::warn!(
                    "USER_MAIL_DEV_LOG is on: mails, with their links, go to the log and are not sent; for development only"
                );
                Arc::new(LogTransport)
            }
            (None, None) => return Ok(None),
        };
        let scheme = if self.tls_files().is_some() { "https" } else { "http" };
        let settings = MailSettings {
            product: self.mail_product_name.clone(),
            public_url: self.public_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}")),
            verify_url: self.mail_verify_url.clone(),
            reset_url: self.mail_reset_url.clone(),
            revert_url: self.mail_revert_url.clone(),
            verify_token_ttl: self.service.verify_token_ttl.into(),
            reset_token_ttl: self.service.reset_token_ttl.into(),
            revert_token_ttl: user_core::service::MailPolicy::default().revert_token_ttl,
        };
        let mailer = Mailer::new(settings, transport, self.mail_templates_dir.as_deref()).map_err(|e| e.to_string())?;
        Ok(Some(Arc::new(mailer)))
    }

    /// Where this configuration's server answers on this host: its listen
    /// address, a wildcard taken as loopback, with its scheme.
    pub fn local_base_url(&self) -> String {
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let scheme = if self.tls_files().is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }

    /// Whether cookies get `Secure` when serving on `addr`: always over the
    /// server's own TLS, else as set, else off on loopback only.
    pub fn cookie_secure_for(&self, addr: SocketAddr) -> bool {
        self.tls_files().is_some() || self.cookie_secure.unwrap_or(!addr.ip().is_loopback())
    }

    /// The certificate and key to serve HTTPS with, when both are set.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert: cert.clone(), key: key.clone() }),
            _ => None,
        }
    }
}

/// The NATS sink's defaults, which the `USER_TASKS_NATS_*` settings show.
fn nats() -> NatsConfig {
    NatsConfig::default()
}

/// The relay's defaults, which the `USER_TASKS_*` settings show.
fn relay() -> RelayConfig {
    RelayConfig::default()
}

/// The shortest webhook signing secret accepted: HMAC-SHA256's key should
/// hold as much entropy as its output.
const MIN_WEBHOOK_SECRET_BYTES: usize = 32;

/// The manual page (roff): clap_mangen's sections, and an ENVIRONMENT
/// section naming the variable of every setting (how most deployments set them).
///
/// # Errors
/// What writing to `out` fails with.
pub fn render_man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let command = Config::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH ENVIRONMENT")?;
    for arg in command.get_arguments() {
        let (Some(env), Some(help)) = (arg.get_env(), arg.get_help()) else { continue };
        let help = help.to_string().replace('\\', "\\\\").replace('-', "\\-");
        // `\&` keeps a help text that starts with `.` or `'` from being a roff request.
        writeln!(out, ".TP\n\\fB{}\\fR\n\\&{help}", env.to_string_lossy())?;
    }
    man.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use user_core::auth::SigningConfig;

    use super::*;

    #[test]
    fn every_setting_has_a_working_default() {
        let config = Config::parse_from(["user-server"]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database.expose(), "sqlite://user-service.db");
        assert_eq!(config.service_config().unwrap().tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(config.service_config().unwrap().tokens.refresh_ttl, Duration::from_secs(30 * 86_400));
        assert!(!config.cookie_secure_for(config.listen), "plain http on loopback by default");
        assert!(config.cookie_secure_for("0.0.0.0:8080".parse().unwrap()));
        assert!(matches!(config.service_config().unwrap().signing, SigningConfig::GeneratedHs256));
    }

    #[test]
    fn secrets_are_comma_separated() {
        let config = Config::parse_from(["user-server", "--jwt-secrets", "a,b"]);
        assert!(matches!(config.service_config().unwrap().signing, SigningConfig::Hs256(s) if s.len() == 2));
    }

    #[test]
    fn one_address_may_hold_64_connections_and_never_more_than_a_quarter_by_default() {
        let limits = |args: &[&str]| {
            let mut all = vec!["user-server"];
            all.extend_from_slice(args);
            Config::parse_from(all).transport_limits().max_connections_per_ip
        };
        assert_eq!(limits(&[]), 64);
        assert_eq!(limits(&["--max-connections", "64"]), 16);
        assert_eq!(limits(&["--max-connections", "2"]), 1);
        assert_eq!(limits(&["--max-connections", "64", "--max-connections-per-ip", "40"]), 40);
    }

    #[test]
    fn delivered_tasks_are_kept_a_week_unless_told_otherwise() {
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(Config::parse_from(["user-server"]).relay_config().retention, Some(week));
        let off = Config::parse_from(["user-server", "--tasks-retention", "off"]);
        assert_eq!(off.relay_config().retention, None);
        let hours = Config::parse_from(["user-server", "--tasks-retention", "12h"]);
        assert_eq!(hours.relay_config().retention, Some(Duration::from_secs(12 * 3600)));
        let bad = Config::try_parse_from(["user-server", "--tasks-retention", "soon"]).unwrap_err();
        assert!(bad.to_string().contains("or off"), "{bad}");
    }

    #[tokio::test]
    async fn the_webhook_needs_a_secret_and_an_http_url() {
        let log = Config::parse_from(["user-server"]);
        assert!(format!("{:?}", log.task_sink().await.unwrap()).contains("LogSink"));
        let no_secret = Config::parse_from(["user-server", "--tasks-webhook-url", "http://127.0.0.1:9/hook"]);
        assert!(no_secret.task_sink().await.unwrap_err().contains("SECRET"));
        let secret = "0123456789abcdef0123456789abcdef";
        let bad_url =
            Config::parse_from(["user-server", "--tasks-webhook-url", "ftp://x", "--tasks-webhook-secret", secret]);
        assert!(bad_url.task_sink().await.is_err());
        let short = Config::parse_from([
            "user-server",
            "--tasks-webhook-url",
            "http://127.0.0.1:9/",
            "--tasks-webhook-secret",
            "k",
        ]);
        assert!(short.task_sink().await.unwrap_err().contains("at least 32 bytes"));
        let ok = Config::parse_from([
            "user-server",
            "--tasks-webhook-url",
            "http://127.0.0.1:9/",
            "--tasks-webhook-secret",
            secret,
        ]);
        assert!(format!("{:?}", ok.task_sink().await.unwrap()).contains("WebhookSink"));
    }

    #[test]
    fn secrets_can_come_from_files_but_not_from_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (db, jwt, hook) = (
            file("db", "postgres://app:from-a-file@db/users\n"),
            file("jwt", "  jwt-secret-from-a-file-0123456789abcdef\n"),
            file("hook", "webhook-secret-from-a-file-0123456789\n"),
        );
        let (smtp, mail_hook, nats) = (
            file("smtp", "smtp://mailer:from-a-file@smtp.example:587\n"),
            file("mail-hook", "mail-webhook-secret-from-a-file-01234\n"),
            file("nats", "nats-token-from-a-file\n"),
        );
        let config = Config::load_from([
            "user-server",
            "--database-file",
            &db,
            "--jwt-secrets-file",
            &jwt,
            "--tasks-webhook-secret-file",
            &hook,
            "--mail-smtp-url-file",
            &smtp,
            "--mail-webhook-secret-file",
            &mail_hook,
            "--tasks-nats-token-file",
            &nats,
        ])
        .unwrap();
        assert_eq!(config.database.expose(), "postgres://app:from-a-file@db/users");
        assert_eq!(config.service.jwt_secrets.unwrap().expose(), "jwt-secret-from-a-file-0123456789abcdef");
        assert_eq!(config.tasks_webhook_secret.unwrap().expose(), "webhook-secret-from-a-file-0123456789");
        assert_eq!(config.service.mail_smtp_url.unwrap().expose(), "smtp://mailer:from-a-file@smtp.example:587");
        assert_eq!(config.mail_webhook_secret.unwrap().expose(), "mail-webhook-secret-from-a-file-01234");
        assert_eq!(config.tasks_nats_token.unwrap().expose(), "nats-token-from-a-file");
        for (flag, file, setting) in [
            ("--mail-smtp-url", &smtp, "USER_MAIL_SMTP_URL"),
            ("--mail-webhook-secret", &mail_hook, "USER_MAIL_WEBHOOK_SECRET"),
            ("--tasks-nats-token", &nats, "USER_TASKS_NATS_TOKEN"),
        ] {
            let both = Config::load_from(["user-server", flag, "x", &format!("{flag}-file"), file]).unwrap_err();
            assert_eq!(both.to_string(), format!("give {setting} or {setting}_FILE, not both"));
        }

        let both = Config::load_from(["user-server", "--jwt-secrets", "x", "--jwt-secrets-file", &jwt]).unwrap_err();
        assert_eq!(both.to_string(), "give USER_JWT_SECRETS or USER_JWT_SECRETS_FILE, not both");
        let both = Config::load_from(["user-server", "--database", "memory:", "--database-file", &db]).unwrap_err();
        assert!(both.to_string().contains("USER_DATABASE_URL or USER_DATABASE_URL_FILE"), "{both}");
        let missing = Config::load_from(["user-server", "--database-file", "/nonexistent"]).unwrap_err();
        assert!(missing.to_string().starts_with("USER_DATABASE_URL_FILE /nonexistent"), "{missing}");
    }

    #[test]
    fn printing_the_configuration_shows_no_secret() {
        let config = Config::parse_from([
            "user-server",
            "--database",
            "postgres://app:hunter2@db/users",
            "--jwt-secrets",
            "jwt-secret-that-is-long-enough-0123456789",
            "--tasks-webhook-secret",
            "webhook-secret-that-is-long-enough-012345",
        ]);
        let printed = format!("{config:?}");
        for secret in ["hunter2", "jwt-secret", "webhook-secret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("[redacted]") && printed.contains("postgres://app:***@db/users"));
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/users"), "postgres://app:***@db:5432/users");
        assert_eq!(redact_url("postgres://app@db/users"), "postgres://app@db/users");
        assert_eq!(redact_url("sqlite://user-service.db"), "sqlite://user-service.db");
        assert_eq!(
            redact_url("postgres://app@db/users?sslmode=verify-full&password=s3cretpw"),
            "postgres://app@db/users?sslmode=verify-full&password=***"
        );
        assert_eq!(redact_url("postgres://app:p@ss@db/users"), "postgres://app:***@db/users", "an @ in the password");
        assert_eq!(redact_url("nats://h:4222?auth_token=t0k"), "nats://h:4222?auth_token=***");
        assert_eq!(redact_url("memory:"), "memory:");
    }

    #[test]
    fn a_config_file_sets_what_flags_and_variables_leave_to_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user-server.toml");
        let jwt = dir.path().join("jwt");
        std::fs::write(&jwt, "jwt-secret-that-is-long-enough-0123456789\n").unwrap();
        std::fs::write(
            &file,
            format!(
                "listen = \"0.0.0.0:9000\"\ndatabase = \"sqlite://from-file.db\"\njwt-algorithm = \"eddsa\"\n\
                 oauth-clients = [\"tv-app\", \"car-app\"]\nargon2-memory-kib = 32768\nhttp2 = true\n\
                 jwt-secrets-file = \"{}\"\n",
                jwt.display()
            ),
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let config = Config::load_from(["user-server", "--config", path, "--listen", "127.0.0.1:7000"]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000", "a flag beats the file");
        assert_eq!(config.database.expose(), "sqlite://from-file.db");
        assert_eq!(config.service.jwt_algorithm, JwtAlgorithm::Eddsa);
        assert_eq!(config.service.oauth_clients, ["tv-app", "car-app"]);
        assert_eq!(config.service.argon2_memory_kib, 32768);
        assert!(config.http2);
        assert!(config.service.jwt_secrets.is_some(), "a secret file named in the config file is read");
        // A secret given in the file and as a file is given twice.
        std::fs::write(&file, format!("jwt-secrets = \"x\"\njwt-secrets-file = \"{}\"\n", jwt.display())).unwrap();
        let both = Config::load_from(["user-server", "--config", path]).unwrap_err().to_string();
        assert!(both.contains("USER_JWT_SECRETS or USER_JWT_SECRETS_FILE"), "{both}");
    }

    #[test]
    fn a_config_file_with_an_unknown_or_bad_setting_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user-server.toml");
        let path = file.to_str().unwrap();
        for (text, expected) in [
            ("jwt-algoritm = \"eddsa\"\n", "unknown setting 'jwt-algoritm' (did you mean 'jwt-algorithm'?)"),
            ("print-openapi = true\n", "unknown setting 'print-openapi'"),
            ("jwt-algorithm = \"rsa\"\n", "'jwt-algorithm': invalid value 'rsa'"),
            ("database-max-connections = 0\n", "'database-max-connections': invalid value '0'"),
        ] {
            std::fs::write(&file, text).unwrap();
            let error = Config::load_from(["user-server", "--config", path]).unwrap_err().to_string();
            assert!(error.contains(expected) && error.contains(path), "{text:?}: {error}");
        }
        // A certificate without its key never falls back to plain http.
        std::fs::write(&file, "tls-cert-file = \"/etc/cert.pem\"\n").unwrap();
        let error = Config::load_from(["user-server", "--config", path]).unwrap_err().to_string();
        assert!(error.contains("give --tls-cert-file and --tls-key-file together"), "{error}");
    }
}
