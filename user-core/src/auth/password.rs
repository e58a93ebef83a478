//! argon2id password hashing, off the async threads and bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::domain::Password;
use crate::error::{Error, Result};

/// argon2id cost parameters and the limits on concurrent hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashingConfig {
    /// Memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes computed at once; each holds `memory_kib` of memory while it runs.
    pub max_concurrent: usize,
    /// Hashes allowed to wait for a slot; past this, [`Error::Overloaded`].
    pub max_queue: usize,
}

impl Default for HashingConfig {
    /// OWASP's argon2id parameters, one hash per core, 64 waiting per core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1, max_concurrent: cores, max_queue: 64 * cores }
    }
}

impl HashingConfig {
    /// The cheapest parameters argon2 allows, for tests only: never use them
    /// for real passwords.
    pub fn insecure_for_tests() -> Self {
        Self { memory_kib: 8, iterations: 1, parallelism: 1, ..Self::default() }
    }
}

/// Verdict of a successful password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// A fresh hash with the configured parameters, when the stored one was
    /// made with others; the caller should store it.
    pub rehashed: Option<String>,
}

/// Hashes and verifies passwords with argon2id.
///
/// Work runs on tokio's blocking pool behind a semaphore, so a login flood can
/// neither starve the async runtime nor allocate unbounded memory; when more
/// than `max_queue` hashes wait, calls fail fast with [`Error::Overloaded`].
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Semaphore,
    waiting: AtomicUsize,
    completed: AtomicU64,
    max_queue: usize,
    /// Verified against when the user does not exist, so timing tells nothing.
    dummy_hash: OnceCell<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.inner.params).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with these parameters.
    ///
    /// # Errors
    /// [`Error::Validation`] if argon2 rejects the parameters.
    pub fn new(config: &HashingConfig) -> Result<Self> {
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)
            .map_err(|e| crate::domain::ValidationError::new("argon2", e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(config.max_concurrent.max(1)),
                waiting: AtomicUsize::new(0),
                completed: AtomicU64::new(0),
                max_queue: config.max_queue,
                dummy_hash: OnceCell::new(),
            }),
        })
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=…`).
    ///
    /// # Errors
    /// [`Error::Overloaded`] when the queue is full; [`Error::Internal`] otherwise.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        let password = password.clone();
        let params = self.inner.params.clone();
        self.run(move || hash_with(&params, &password)).await?
    }

    /// Checks a password against a stored PHC string.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] if it does not match; [`Error::Overloaded`]
    /// when the queue is full; [`Error::Internal`] for an unreadable hash.
    pub async fn verify(&self, password: &Password, stored: &str) -> Result<Verified> {
        let password = password.clone();
        let stored = stored.to_owned();
        let params = self.inner.params.clone();
        self.run(move || {
            let parsed = PasswordHash::new(&stored).map_err(Error::internal)?;
            argon2_with(&params).verify_password(password.expose().as_bytes(), &parsed).map_err(|e| match e {
                argon2::password_hash::Error::Password => Error::InvalidCredentials,
                other => Error::internal(other),
            })?;
            let stale = parsed.algorithm.as_str() != "argon2id"
                || parsed.version != Some(Version::V0x13 as u32)
                || Params::try_from(&parsed).map_or(true, |p| {
                    (p.m_cost(), p.t_cost(), p.p_cost()) != (params.m_cost(), params.t_cost(), params.p_cost())
                });
            let rehashed = if stale { Some(hash_with(&params, &password)?) } else { None };
            Ok(Verified { rehashed })
        })
        .await?
    }

    /// Spends the time of one verification for a user that does not exist, so
    /// "no such user" and "wrong password" take the same time.
    ///
    /// # Errors
    /// [`Error::Overloaded`] when the queue is full.
    pub async fn verify_dummy(&self, password: &Password) -> Result<()> {
        let dummy = self
            .inner
            .dummy_hash
            .get_or_try_init(|| async {
                let pw = Password::parse("dummy password never matches").map_err(Error::from)?;
                self.hash(&pw).await
            })
            .await?
            .clone();
        match self.verify(password, &dummy).await {
            Ok(_) | Err(Error::InvalidCredentials) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let inner = &self.inner;
        // Count ourselves as waiting before asking for a permit, so the bound
        // holds however many callers race here.
        if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.max_queue + inner.permits.available_permits() {
            inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Overloaded);
        }
        let permit = inner.permits.acquire().await;
        inner.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(Error::internal)?;
        let out = tokio::task::spawn_blocking(work).await.map_err(Error::internal);
        inner.completed.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// How many argon2 computations (hashes and verifications) have run; for
    /// metrics, and to prove that every login attempt costs one.
    pub fn completed(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }
}

fn argon2_with(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &Password) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2_with(params)
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hasher = PasswordHasher::new(&HashingConfig::insecure_for_tests()).unwrap();
        let hash = hasher.hash(&pw("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert_eq!(hasher.verify(&pw("correct horse"), &hash).await.unwrap().rehashed, None);
        assert!(matches!(hasher.verify(&pw("wrong horse"), &hash).await, Err(Error::InvalidCredentials)));
    }

    #[test]
    fn default_parameters_are_owasps() {
        let c = HashingConfig::default();
        assert_eq!((c.memory_kib, c.iterations, c.parallelism), (19_456, 2, 1));
        assert!(c.max_concurrent >= 1);
    }

    #[tokio::test]
    async fn a_hash_made_with_other_parameters_is_rehashed_on_verify() {
        let old =
            PasswordHasher::new(&HashingConfig { memory_kib: 16, ..HashingConfig::insecure_for_tests() }).unwrap();
        let new = PasswordHasher::new(&HashingConfig::insecure_for_tests()).unwrap();
        let hash = old.hash(&pw("correct horse")).await.unwrap();
        let fresh = new.verify(&pw("correct horse"), &hash).await.unwrap().rehashed.expect("rehash");
        assert!(fresh.contains("m=8,t=1,p=1"), "{fresh}");
        assert_eq!(new.verify(&pw("correct horse"), &fresh).await.unwrap().rehashed, None);
    }

    #[tokio::test]
    async fn dummy_verification_succeeds_quietly_for_any_password() {
        let hasher = PasswordHasher::new(&HashingConfig::insecure_for_tests()).unwrap();
        hasher.verify_dummy(&pw("whatever1")).await.unwrap();
        hasher.verify_dummy(&pw("whatever2")).await.unwrap();
    }

    #[tokio::test]
    async fn fails_fast_with_overloaded_when_the_queue_is_full() {
        let config = HashingConfig { max_concurrent: 1, max_queue: 0, ..HashingConfig::insecure_for_tests() };
        let hasher = PasswordHasher::new(&config).unwrap();
        // Hold the only permit so every further call must queue.
        let held = hasher.inner.permits.acquire().await.unwrap();
        assert!(matches!(hasher.hash(&pw("correct horse")).await, Err(Error::Overloaded)));
        drop(held);
        assert!(hasher.hash(&pw("correct horse")).await.is_ok());
    }

    #[tokio::test]
    async fn queued_hashes_wait_for_a_permit_within_the_bound() {
        let config = HashingConfig { max_concurrent: 1, max_queue: 4, ..HashingConfig::insecure_for_tests() };
        let hasher = PasswordHasher::new(&config).unwrap();
        let results = futures_join_all((0..4).map(|_| {
            let h = hasher.clone();
            tokio::spawn(async move { h.hash(&pw("correct horse")).await })
        }))
        .await;
        assert!(results.into_iter().all(|r| r.unwrap().is_ok()));
    }

    async fn futures_join_all<T>(
        handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<Result<T, tokio::task::JoinError>> {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await);
        }
        out
    }
}
