//! The settings `UserService` is built from — tokens, signing keys, password
//! hashing, account lockout — shared by `user-server` and `user-cli`'s local
//! mode, so both hash, sign and lock out alike. Every default shown here is
//! `user-core`'s own (`ServiceConfig::default()` and its parts), written once
//! there.

use std::path::PathBuf;

use clap::Args;
use user_core::ServiceConfig;
use user_core::auth::DataKeys;
use user_core::auth::{HashingConfig, SigningConfig, TokenConfig};
use user_core::service::{
    BreachCheck, DevicePolicy, GuestPolicy, LockoutPolicy, MailPolicy, MfaPolicy, MfaRequired, PasskeyConfig,
};

use crate::{DurationOrOff, JwtAlgorithm, LoadError, Secret, read_secret_file};

fn tokens() -> TokenConfig {
    TokenConfig::default()
}

fn hashing() -> HashingConfig {
    HashingConfig::default()
}

fn mail() -> MailPolicy {
    MailPolicy::default()
}

fn lockout() -> LockoutPolicy {
    LockoutPolicy::default()
}

/// How `UserService` is configured: every setting a flag and a `USER_*` variable.
#[derive(Debug, Clone, Args)]
pub struct ServiceSettings {
    /// Access token lifetime (e.g. `15m`, `900s`).
    #[arg(long, env = "USER_ACCESS_TTL", global = true, default_value_t = tokens().access_ttl.into())]
    pub access_ttl: humantime::Duration,

    /// Refresh token lifetime: a session not refreshed for this long ends.
    #[arg(long, env = "USER_REFRESH_TTL", global = true, default_value_t = tokens().refresh_ttl.into())]
    pub refresh_ttl: humantime::Duration,

    /// A session ends this long after its sign-in, however often it is refreshed.
    // Written as days (humantime would show months and hours); the test
    // below holds it to the library's default.
    #[arg(long, env = "USER_SESSION_MAX_LIFETIME", global = true, default_value = "90days")]
    pub session_max_lifetime: humantime::Duration,

    /// How long the just-replaced refresh token is refused without revoking the session.
    #[arg(long, env = "USER_REFRESH_GRACE", global = true, default_value_t = ServiceConfig::default().refresh_grace.into())]
    pub refresh_grace: humantime::Duration,

    /// Token signing algorithm; keys are generated and kept in the database unless given below.
    #[arg(long, env = "USER_JWT_ALGORITHM", global = true, value_enum, default_value_t = JwtAlgorithm::Hs256)]
    pub jwt_algorithm: JwtAlgorithm,

    /// HS256 secrets, comma-separated, each at least 32 bytes; the last signs, all verify.
    #[arg(long, env = "USER_JWT_SECRETS", global = true, hide_env_values = true)]
    pub jwt_secrets: Option<Secret>,

    /// Read the HS256 secrets from this file (trimmed); not together with --jwt-secrets.
    #[arg(long, env = "USER_JWT_SECRETS_FILE", global = true, value_name = "FILE")]
    pub jwt_secrets_file: Option<PathBuf>,

    /// A PEM file of Ed25519 private keys (PKCS#8) for EdDSA; the last signs, all verify.
    #[arg(long, env = "USER_JWT_ED25519_KEYS_FILE", global = true)]
    pub jwt_ed25519_keys_file: Option<PathBuf>,

    /// The `iss` claim written and required.
    #[arg(long, env = "USER_JWT_ISSUER", global = true, default_value_t = tokens().issuer)]
    pub jwt_issuer: String,

    /// The `aud` claim written and required.
    #[arg(long, env = "USER_JWT_AUDIENCE", global = true, default_value_t = tokens().audience)]
    pub jwt_audience: String,

    /// argon2id memory cost in KiB (the default is OWASP's).
    #[arg(long, env = "USER_ARGON2_MEMORY_KIB", global = true, default_value_t = hashing().memory_kib)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (the default is OWASP's).
    #[arg(long, env = "USER_ARGON2_ITERATIONS", global = true, default_value_t = hashing().iterations)]
    pub argon2_iterations: u32,

    /// argon2id lanes (the default is OWASP's).
    #[arg(long, env = "USER_ARGON2_PARALLELISM", global = true, default_value_t = hashing().parallelism)]
    pub argon2_parallelism: u32,

    /// Password hashes computed at once [default: the number of cores].
    #[arg(long, env = "USER_HASH_CONCURRENCY", global = true)]
    pub hash_concurrency: Option<usize>,

    /// Password hashes allowed to wait; past this, login and register answer 503 [default: 64 per core].
    #[arg(long, env = "USER_HASH_QUEUE", global = true)]
    pub hash_queue: Option<usize>,

    /// Require `current_password` for password and email changes.
    #[arg(long, env = "USER_REQUIRE_CURRENT_PASSWORD", global = true, action = clap::ArgAction::Set,
          default_value_t = ServiceConfig::default().require_current_password)]
    pub require_current_password: bool,

    /// How recently a session must have signed in to change its email or password or delete the account without `current_password`; `off` asks nothing (a stolen session could take the account over).
    #[arg(long, env = "USER_REAUTH_WINDOW", global = true,
          default_value_t = DurationOrOff(ServiceConfig::default().reauth_window))]
    pub reauth_window: DurationOrOff,

    /// An HIBP-compatible range API (e.g. `https://api.pwnedpasswords.com/range`) to refuse new passwords reported breached; only 5 hex characters of a password's SHA-1 are sent. A failed lookup lets the password through.
    #[arg(long, env = "USER_PASSWORD_BREACH_CHECK_URL", global = true)]
    pub password_breach_check_url: Option<String>,

    /// How long one breach lookup may take before the password is let through.
    #[arg(long, env = "USER_PASSWORD_BREACH_CHECK_TIMEOUT", global = true, default_value = "2s")]
    pub password_breach_check_timeout: humantime::Duration,

    /// Keys sealing TOTP secrets at rest: base64 of 32 random bytes each
    /// (`openssl rand -base64 32`), comma-separated; the last seals, all
    /// open. Unset: a key generated once and kept in the database.
    #[arg(long, env = "USER_DATA_KEY", global = true, hide_env_values = true)]
    pub data_key: Option<Secret>,

    /// Read the data keys from this file (trimmed); not together with --data-key.
    #[arg(long, env = "USER_DATA_KEY_FILE", global = true, value_name = "FILE")]
    pub data_key_file: Option<PathBuf>,

    /// Who must sign in with a second factor: `none`, `admins` or `all`. A covered account without one gets a restricted session that can only add a factor (403 `mfa_enrollment_required` elsewhere).
    #[arg(long, env = "USER_MFA_REQUIRED", global = true, default_value = MfaPolicy::default().required.as_str(),
          value_parser = clap::builder::TypedValueParser::try_map(
              clap::builder::PossibleValuesParser::new(["none", "admins", "all"]), |s| s.parse::<MfaRequired>()))]
    pub mfa_required: MfaRequired,

    /// Passkeys: the registrable domain the apps share (e.g. `music.example`; `localhost` in development). Unset: passkeys are off. It cannot change while passkeys exist (start refuses).
    #[arg(long, env = "USER_WEBAUTHN_RP_ID", global = true)]
    pub webauthn_rp_id: Option<String>,

    /// Passkeys: the origins (comma-separated) allowed to use them: `https://HOST[:PORT]` on the RP id or a subdomain (`http://` only for localhost) and Android `android:apk-key-hash:…`.
    #[arg(long, env = "USER_WEBAUTHN_ORIGINS", global = true, value_delimiter = ',')]
    pub webauthn_origins: Vec<String>,

    /// Favorites a guest account may hold (`POST /user/guest`); past it, adding is 403 `guest_limit` until it registers.
    #[arg(long, env = "USER_GUEST_MAX_FAVORITES", global = true, default_value_t = GuestPolicy::default().max_favorites)]
    pub guest_max_favorites: u64,

    /// The name authenticator apps show beside the account (default: the
    /// server's USER_MAIL_PRODUCT_NAME).
    #[arg(long, env = "USER_TOTP_ISSUER", global = true)]
    pub totp_issuer: Option<String>,

    /// Failed logins of one account before attempts are refused for a while.
    #[arg(long, env = "USER_LOGIN_LOCKOUT_AFTER", global = true, default_value_t = lockout().threshold,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_lockout_after: u32,

    /// The first refusal's length; it doubles with each further failure.
    #[arg(long, env = "USER_LOGIN_LOCKOUT_BASE", global = true, default_value_t = lockout().base.into())]
    pub login_lockout_base: humantime::Duration,

    /// The longest refusal.
    #[arg(long, env = "USER_LOGIN_LOCKOUT_CAP", global = true, default_value_t = lockout().cap.into())]
    pub login_lockout_cap: humantime::Duration,

    /// Log each mail, link included, at info under target `mail` instead of sending it: for development only (no mail server needed).
    #[arg(long, env = "USER_MAIL_DEV_LOG", global = true, action = clap::ArgAction::Set, default_value_t = false)]
    pub mail_dev_log: bool,

    /// Send mails over SMTP: `smtp://user:pass@host:587` (STARTTLS), `smtps://user:pass@host:465` (TLS), `smtp://host:1025?tls=none` (a local catcher).
    #[arg(long, env = "USER_MAIL_SMTP_URL", global = true, hide_env_values = true)]
    pub mail_smtp_url: Option<Secret>,

    /// Read the SMTP URL from this file (trimmed); not together with --mail-smtp-url.
    #[arg(long, env = "USER_MAIL_SMTP_URL_FILE", global = true, value_name = "FILE")]
    pub mail_smtp_url_file: Option<PathBuf>,

    /// POST each mail as signed JSON to this URL instead (a provider's API behind your own endpoint); needs USER_MAIL_WEBHOOK_SECRET.
    #[arg(long, env = "USER_MAIL_WEBHOOK_URL", global = true)]
    pub mail_webhook_url: Option<String>,

    /// The sender of mails, e.g. `Music <no-reply@music.example>`; required with USER_MAIL_SMTP_URL.
    #[arg(long, env = "USER_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,

    /// How long a verification link works.
    #[arg(long, env = "USER_VERIFY_TOKEN_TTL", global = true, default_value_t = mail().verify_token_ttl.into())]
    pub verify_token_ttl: humantime::Duration,

    /// How long a password-reset link works.
    #[arg(long, env = "USER_RESET_TOKEN_TTL", global = true, default_value_t = mail().reset_token_ttl.into())]
    pub reset_token_ttl: humantime::Duration,

    /// Refuse login (403 "email not verified") until the account's address is verified.
    #[arg(long, env = "USER_REQUIRE_VERIFIED_EMAIL", global = true, action = clap::ArgAction::Set,
          default_value_t = mail().require_verified_email)]
    pub require_verified_email: bool,

    /// Public client ids (comma-separated) that may sign devices in by code (`POST /oauth/device/code`); none: device sign-in is off.
    #[arg(long, env = "USER_OAUTH_CLIENTS", global = true, value_delimiter = ',', value_parser = client_id)]
    pub oauth_clients: Vec<String>,
}

/// A public client id: 1–64 visible ASCII characters.
fn client_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{s:?}: a client id is 1-64 visible ASCII characters"));
    }
    Ok(s.to_owned())
}

impl ServiceSettings {
    /// Reads the secrets given as files (`--jwt-secrets-file`,
    /// `--mail-smtp-url-file`), refusing a
    /// secret given both ways; `given(id)` says whether a setting was set
    /// (see [`Sources::given`](crate::Sources::given)).
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn read_secret_files(&mut self, given: &dyn Fn(&str) -> bool) -> Result<(), LoadError> {
        if let Some(secrets) = read_secret_file("USER_JWT_SECRETS", &self.jwt_secrets_file, given("jwt_secrets"))? {
            self.jwt_secrets = Some(Secret::new(secrets));
        }
        if let Some(url) = read_secret_file("USER_MAIL_SMTP_URL", &self.mail_smtp_url_file, given("mail_smtp_url"))? {
            self.mail_smtp_url = Some(Secret::new(url));
        }
        if let Some(keys) = read_secret_file("USER_DATA_KEY", &self.data_key_file, given("data_key"))? {
            self.data_key = Some(Secret::new(keys));
        }
        Ok(())
    }

    /// The library configuration these settings describe.
    ///
    /// # Errors
    /// A message naming the setting that is wrong.
    pub fn service_config(&self) -> Result<ServiceConfig, String> {
        let signing = match (self.jwt_algorithm, &self.jwt_secrets, &self.jwt_ed25519_keys_file) {
            (_, Some(_), Some(_)) => return Err("give USER_JWT_SECRETS or USER_JWT_ED25519_KEYS_FILE, not both".into()),
            (_, Some(secrets), None) => {
                SigningConfig::Hs256(secrets.expose().split(',').map(|s| s.trim().as_bytes().to_vec()).collect())
            }
            (_, None, Some(path)) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("USER_JWT_ED25519_KEYS_FILE {}: {e}", path.display()))?;
                SigningConfig::Ed25519Pem(split_pem_blocks(&pem))
            }
            (JwtAlgorithm::Hs256, None, None) => SigningConfig::GeneratedHs256,
            (JwtAlgorithm::Eddsa, None, None) => SigningConfig::GeneratedEd25519,
        };
        let defaults = hashing();
        Ok(ServiceConfig {
            tokens: TokenConfig {
                access_ttl: self.access_ttl.into(),
                refresh_ttl: self.refresh_ttl.into(),
                session_max_lifetime: self.session_max_lifetime.into(),
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                ..tokens()
            },
            signing,
            hashing: HashingConfig {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
                max_concurrent: self.hash_concurrency.unwrap_or(defaults.max_concurrent),
                max_queue: self.hash_queue.unwrap_or(defaults.max_queue),
            },
            refresh_grace: self.refresh_grace.into(),
            require_current_password: self.require_current_password,
            reauth_window: self.reauth_window.0,
            lockout: LockoutPolicy {
                threshold: self.login_lockout_after,
                base: self.login_lockout_base.into(),
                cap: self.login_lockout_cap.into(),
            },
            mail: MailPolicy {
                enabled: self.mail_dev_log || self.mail_smtp_url.is_some() || self.mail_webhook_url.is_some(),
                verify_token_ttl: self.verify_token_ttl.into(),
                reset_token_ttl: self.reset_token_ttl.into(),
                require_verified_email: self.require_verified_email,
                ..mail()
            },
            device: DevicePolicy { clients: self.oauth_clients.clone(), ..DevicePolicy::default() },
            breach_check: self
                .password_breach_check_url
                .as_ref()
                .map(|url| BreachCheck { url: url.clone(), timeout: self.password_breach_check_timeout.into() }),
            mfa: MfaPolicy {
                required: self.mfa_required,
                passkeys: match (&self.webauthn_rp_id, self.webauthn_origins.is_empty()) {
                    (Some(rp_id), false) => Some(PasskeyConfig {
                        rp_id: rp_id.clone(),
                        rp_name: self.totp_issuer.clone().unwrap_or_else(|| MfaPolicy::default().totp_issuer),
                        origins: self.webauthn_origins.clone(),
                    }),
                    (None, true) => None,
                    (Some(_), true) => return Err("USER_WEBAUTHN_RP_ID is set: list USER_WEBAUTHN_ORIGINS too".into()),
                    (None, false) => return Err("USER_WEBAUTHN_ORIGINS is set: set USER_WEBAUTHN_RP_ID too".into()),
                },
                totp_issuer: self.totp_issuer.clone().unwrap_or_else(|| MfaPolicy::default().totp_issuer),
                data_keys: self
                    .data_key
                    .as_ref()
                    .map(|keys| DataKeys::parse(keys.expose()).map(std::sync::Arc::new))
                    .transpose()
                    .map_err(|e| format!("USER_DATA_KEY: {e}"))?,
                ..MfaPolicy::default()
            },
            guests: GuestPolicy { max_favorites: self.guest_max_favorites },
            // Providers are the server's to configure (`USER_OIDC_*`).
            ..ServiceConfig::default()
        })
    }
}

/// Splits a file of several PEM blocks into one string per block.
fn split_pem_blocks(pem: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in pem.lines() {
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            blocks.push(std::mem::take(&mut current));
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_library_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            settings: ServiceSettings,
        }
        let config = Only::parse_from(["x"]).settings.service_config().unwrap();
        let library = ServiceConfig::default();
        assert_eq!(config.tokens.access_ttl, library.tokens.access_ttl);
        assert_eq!(config.tokens.refresh_ttl, library.tokens.refresh_ttl);
        assert_eq!((config.tokens.issuer, config.tokens.audience), (library.tokens.issuer, library.tokens.audience));
        assert_eq!(config.hashing, library.hashing);
        assert_eq!(config.refresh_grace, library.refresh_grace);
        assert_eq!(config.require_current_password, library.require_current_password);
        assert_eq!(config.reauth_window, library.reauth_window);
        assert_eq!(config.mfa.required, library.mfa.required);
        assert_eq!(config.tokens.session_max_lifetime, library.tokens.session_max_lifetime);
        assert_eq!(config.lockout, library.lockout);
        assert!(matches!(config.signing, SigningConfig::GeneratedHs256));
    }

    #[test]
    fn pem_files_are_split_into_blocks() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n";
        assert_eq!(split_pem_blocks(pem).len(), 2);
    }
}
