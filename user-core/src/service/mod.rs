//! [`UserService`]: the one facade every frontend calls.

mod accounts;
mod admin;
mod audit;
mod device;
mod device_cookies;
mod factors;
mod favorites;
mod guests;
mod passkeys;
#[cfg(feature = "oidc")]
mod providers;
mod recovery;
mod sessions;
mod settings;
mod tasks;

pub use accounts::{ProfileUpdate, Registration};
pub use audit::AuditEvent;
pub use device::DeviceAuthorization;
pub use device_cookies::{
    DEVICE_COOKIE_LIFETIME, DEVICE_COOKIE_PREFIX, DeviceCookies, MAX_DEVICE_COOKIES, NewDeviceCookie,
};
pub use factors::{SecondFactors, StepUp, TotpEnrollment};
pub use guests::GuestPolicy;
pub use passkeys::{PasskeyCeremony, PasskeySignIn};
#[cfg(feature = "oidc")]
pub use providers::{ProviderFailure, ProviderMode, ProviderOutcome, ProviderRedirect};
pub use sessions::{Caller, ClientInfo, LoginOutcome};
pub use settings::{
    BreachCheck, DevicePolicy, LockoutPolicy, MailPolicy, MfaPolicy, MfaRequired, PasskeyConfig, ServiceConfig,
};

use std::sync::Arc;

use chrono::TimeDelta;

use crate::auth::{KeySet, PasswordHasher, SigningConfig, Tokens};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::tasks::TaskWaker;

/// The user service: registration, login, sessions, profile, admin
/// operations and favorites over one [`Store`].
///
/// Cheap to clone; clones share the store, keys and hashing pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), user_core::Error> {
/// use user_core::{domain::*, service::*, store};
///
/// let store = store::open("sqlite::memory:").await?;
/// store.migrate().await?;
/// let service = UserService::new(store, ServiceConfig::default()).await?;
///
/// let user = service.register(Registration {
///     username: Username::parse("alice")?,
///     email: Email::parse("alice@example.com")?,
///     password: Password::parse("correct horse battery")?,
///     locale: Default::default(),
/// }, &ClientInfo::default()).await?;
/// let login = service
///     .login(&Login::parse("alice")?, &Password::parse("correct horse battery")?, &ClientInfo::default())
///     .await?;
/// let claims = service.authenticate(&login.tokens.access).await?;
/// service.add_favorites(claims.sub, &TrackBatch::parse("42,43")?).await?;
/// assert_eq!(claims.sub, user.id);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct UserService {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    tokens: Tokens,
    clock: Arc<dyn Clock>,
    refresh_grace: chrono::Duration,
    require_current_password: bool,
    reauth_window: Option<TimeDelta>,
    /// Names device cookies (see `device_cookies`).
    device_cookie_key: Vec<u8>,
    /// Looks new passwords up in a breach range API, when configured.
    #[cfg(feature = "breach-check")]
    breaches: Option<crate::auth::BreachChecker>,
    lockout: LockoutPolicy,
    mail: MailPolicy,
    device: Arc<device::DeviceLogins>,
    task_waker: TaskWaker,
    /// Second factors: the sealing keys, the recovery codes' HMAC key, the policy.
    factors: Arc<factors::Factors>,
    guests: GuestPolicy,
    /// Providers to sign in with (`USER_OIDC_PROVIDERS`).
    #[cfg(feature = "oidc")]
    providers: crate::auth::oidc::Providers,
}

impl UserService {
    /// A service over `store` (already migrated) with the system clock. Loads
    /// or generates the signing keys.
    ///
    /// # Errors
    /// [`Error::Validation`] for bad configuration; [`Error::Internal`] if the
    /// store fails.
    pub async fn new(store: Arc<dyn Store>, config: ServiceConfig) -> Result<Self> {
        Self::with_clock(store, config, Arc::new(SystemClock)).await
    }

    /// Like [`UserService::new`] with an injected clock (for tests).
    ///
    /// # Errors
    /// As [`UserService::new`].
    pub async fn with_clock(store: Arc<dyn Store>, config: ServiceConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let now = clock.now();
        let keys = match &config.signing {
            SigningConfig::GeneratedHs256 => {
                let secret = store.get_or_insert_secret("jwt.hs256", &crate::auth::generate_secret(), now).await?;
                KeySet::hs256(&[secret])?
            }
            SigningConfig::GeneratedEd25519 => {
                let seed = store.get_or_insert_secret("jwt.ed25519.seed", &crate::auth::generate_secret(), now).await?;
                let seed: [u8; 32] =
                    seed.try_into().map_err(|_| Error::internal("stored Ed25519 seed is not 32 bytes"))?;
                KeySet::ed25519_from_seeds(&[seed])?
            }
            SigningConfig::Hs256(secrets) => KeySet::hs256(secrets)?,
            SigningConfig::Ed25519Pem(pems) => KeySet::ed25519_from_pem(pems)?,
        };
        let device_cookie_key =
            store.get_or_insert_secret(device_cookies::DEVICE_COOKIE_KEY, &crate::auth::generate_secret(), now).await?;
        let factors = Arc::new(factors::Factors::load(&store, config.mfa.clone(), now).await?);
        #[cfg(not(feature = "breach-check"))]
        if config.breach_check.is_some() {
            return Err(Error::internal("the breach check needs user-core's `breach-check` feature"));
        }
        Ok(Self {
            #[cfg(feature = "breach-check")]
            breaches: config.breach_check.as_ref().map(crate::auth::BreachChecker::new).transpose()?,
            device_cookie_key,
            store,
            hasher: PasswordHasher::new(&config.hashing)?,
            tokens: Tokens::new(keys, config.tokens),
            clock,
            refresh_grace: chrono::Duration::from_std(config.refresh_grace).map_err(Error::internal)?,
            require_current_password: config.require_current_password,
            reauth_window: config.reauth_window.map(TimeDelta::from_std).transpose().map_err(Error::internal)?,
            lockout: config.lockout,
            mail: config.mail,
            device: Arc::new(device::DeviceLogins::new(config.device)),
            task_waker: TaskWaker::default(),
            factors,
            guests: config.guests,
            #[cfg(feature = "oidc")]
            providers: crate::auth::oidc::Providers::new(config.providers, std::time::Duration::from_secs(10))?,
        })
    }

    /// The token issuer (its key set publishes the JWKS).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Woken whenever this service writes a deferred task; give it to the
    /// [`Relay`](crate::tasks::Relay) so it delivers at once.
    pub fn task_waker(&self) -> TaskWaker {
        self.task_waker.clone()
    }

    /// The password hasher (for its counters).
    pub fn password_hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Checks the database answers with its schema (for readiness probes).
    ///
    /// # Errors
    /// [`Error::Internal`] with the cause when it does not.
    pub async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }
}
