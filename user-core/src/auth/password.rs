//! argon2id password hashing, off the async threads and bounded.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::OnceCell;

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
/// Work runs on a dedicated pool of `max_concurrent` threads, scheduled by the
/// OS below the request threads (nice 10 on Unix), so a login flood uses the
/// cores without starving other requests, and memory stays at
/// `max_concurrent × memory_kib` (each thread reuses its own allocation).
/// When more than `max_queue` hashes wait, calls fail fast with
/// [`Error::Overloaded`].
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

type Job = Box<dyn FnOnce() + Send>;

struct Inner {
    params: Params,
    /// The most costly stored hash this hasher will verify.
    limits: CostLimits,
    jobs: SyncSender<Job>,
    completed: Arc<AtomicU64>,
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
        let limits = CostLimits::for_params(&params);
        let standard_blocks = params.block_count();
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(config.max_queue);
        let queue = Arc::new(Mutex::new(queue));
        let completed = Arc::new(AtomicU64::new(0));
        for n in 0..config.max_concurrent.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    STANDARD_BLOCKS.set(standard_blocks);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return }; // every hasher dropped
                        job();
                    }
                })
                .map_err(Error::internal)?;
        }
        Ok(Self { inner: Arc::new(Inner { params, limits, jobs, completed, dummy_hash: OnceCell::new() }) })
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
        let limits = self.inner.limits;
        self.run(move || {
            let parsed = PasswordHash::new(&stored).map_err(Error::internal)?;
            if !matches(&parsed, &password, limits)? {
                return Err(Error::InvalidCredentials);
            }
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

    /// Runs `work` on a hashing thread. Metrics: `password_hash_jobs` (waiting
    /// or running), `password_hash_seconds` (the computation),
    /// `password_hash_overloaded_total` (refused because the queue was full).
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let completed = self.inner.completed.clone();
        let job: Job = Box::new(move || {
            let started = std::time::Instant::now();
            let out = work();
            metrics::histogram!("password_hash_seconds").record(started.elapsed().as_secs_f64());
            metrics::gauge!("password_hash_jobs").decrement(1.0);
            // Counted before the caller can see the result.
            completed.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(out);
        });
        metrics::gauge!("password_hash_jobs").increment(1.0);
        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::gauge!("password_hash_jobs").decrement(1.0);
                metrics::counter!("password_hash_overloaded_total").increment(1);
                return Err(Error::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => {
                metrics::gauge!("password_hash_jobs").decrement(1.0);
                return Err(Error::internal("the hashing threads are gone"));
            }
        }
        rx.await.map_err(|_| Error::internal("a hashing thread died"))
    }

    /// How many argon2 computations (hashes and verifications) have run; for
    /// metrics, and to prove that every login attempt costs one.
    pub fn completed(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }

    /// Runs `work` on a hashing thread (tests use it to occupy the pool).
    #[cfg(test)]
    async fn run_for_test<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        self.run(work).await
    }
}

/// Lets the OS prefer request threads over hashing threads, so logins use
/// idle cores without adding latency to everything else.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; on Linux, who = 0
    // with PRIO_PROCESS names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// How costly a stored hash may be: 4× the configured parameters (and never
/// less than 4× OWASP's), so hashes made under older, cheaper or somewhat
/// dearer settings verify, while a planted or corrupt hash with a huge `m`,
/// `t` or `p` cannot make one login allocate gigabytes or spin for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CostLimits {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl CostLimits {
    const FACTOR: u32 = 4;

    fn for_params(params: &Params) -> Self {
        let owasp = HashingConfig::default();
        Self {
            memory_kib: params.m_cost().max(owasp.memory_kib).saturating_mul(Self::FACTOR),
            iterations: params.t_cost().max(owasp.iterations).saturating_mul(Self::FACTOR),
            parallelism: params.p_cost().max(owasp.parallelism).saturating_mul(Self::FACTOR),
        }
    }

    /// Refuses parameters above the limits.
    fn check(&self, params: &Params) -> Result<()> {
        if params.m_cost() > self.memory_kib || params.t_cost() > self.iterations || params.p_cost() > self.parallelism
        {
            tracing::error!(
                m = params.m_cost(),
                t = params.t_cost(),
                p = params.p_cost(),
                limit_m = self.memory_kib,
                limit_t = self.iterations,
                limit_p = self.parallelism,
                "a stored password hash asks for more than 4x the configured argon2 cost; refused"
            );
            return Err(Error::internal("stored password hash exceeds the argon2 cost limits"));
        }
        Ok(())
    }
}

thread_local! {
    /// This hashing thread's argon2 working memory, allocated once and reused:
    /// a fresh 19 MiB per hash left the allocator holding far more than the
    /// hashes in flight need.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    /// The blocks the configured parameters need: the size of [`BLOCKS`].
    /// Hashes that need more get a one-off buffer, so a rare costlier old
    /// hash never fixes a larger buffer on the thread for good.
    static STANDARD_BLOCKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The argon2 output of `password` with `salt`, `len` bytes long, computed
/// on this thread's reusable memory.
fn argon2_output(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &Password,
    salt: &[u8],
    len: usize,
) -> Result<Output> {
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out.get_mut(..len).ok_or_else(|| Error::internal(format!("argon2 output of {len} bytes")))?;
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let password = password.expose().as_bytes();
    let standard = STANDARD_BLOCKS.get();
    if needed <= standard {
        BLOCKS.with_borrow_mut(|blocks| {
            if blocks.len() != standard {
                *blocks = vec![Block::default(); standard];
            }
            argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
        })
    } else {
        argon2.hash_password_into_with_memory(password, salt, out, vec![Block::default(); needed])
    }
    .map_err(Error::internal)?;
    Output::new(out).map_err(Error::internal)
}

fn hash_with(params: &Params, password: &Password) -> Result<String> {
    let salt = Salt::generate();
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = argon2_output(Algorithm::Argon2id, Version::V0x13, params.clone(), password, &salt, output_len)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(Error::internal)?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` produces the hash in `stored` under the stored
/// algorithm, version and parameters (constant-time comparison).
fn matches(stored: &PasswordHash, password: &Password, limits: CostLimits) -> Result<bool> {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(Error::internal("stored password hash has no salt or no output"));
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).map_err(Error::internal)?;
    let version = stored.version.map_or(Ok(Version::default()), Version::try_from).map_err(Error::internal)?;
    let params = Params::try_from(stored).map_err(Error::internal)?;
    limits.check(&params)?;
    let computed = argon2_output(algorithm, version, params, password, salt, expected.len())?;
    // `Output`'s equality is constant-time.
    Ok(computed == *expected)
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

    /// Hashes made by the argon2 crate's own PHC implementation (as stored
    /// before this one) verify, and ours verify with it: same salt decoding,
    /// same encoding.
    #[tokio::test]
    async fn phc_strings_are_interchangeable_with_the_argon2_crates() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let config = HashingConfig::insecure_for_tests();
        let hasher = PasswordHasher::new(&config).unwrap();
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert_eq!(hasher.verify(&pw("correct horse"), &theirs).await.unwrap().rehashed, None);
        assert!(matches!(hasher.verify(&pw("correct horsf"), &theirs).await, Err(Error::InvalidCredentials)));
        let ours = hasher.hash(&pw("correct horse")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default().verify_password(b"correct horse", &parsed).unwrap();
        assert!(Argon2::default().verify_password(b"correct horsf", &parsed).is_err());
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
    async fn a_stored_hash_costlier_than_four_times_the_limits_is_refused_without_hashing() {
        let hasher = PasswordHasher::new(&HashingConfig::insecure_for_tests()).unwrap();
        let owasp_x4 = 19_456 * 4;
        for (m, t, p) in [(owasp_x4 + 1, 1, 1), (8, 9, 1), (8, 1, 5), (4_000_000, 1, 1)] {
            let planted = format!("$argon2id$v=19$m={m},t={t},p={p}$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
            // m=4,000,000 would allocate 4 GiB if it were computed.
            let outcome = hasher.verify(&pw("correct horse"), &planted).await;
            assert!(matches!(outcome, Err(Error::Internal(_))), "m={m} t={t} p={p}: {outcome:?}");
        }
        // Within the limits (e.g. OWASP's, under test parameters) still verifies.
        let owasp = PasswordHasher::new(&HashingConfig { max_concurrent: 1, ..HashingConfig::default() }).unwrap();
        let hash = owasp.hash(&pw("correct horse")).await.unwrap();
        assert!(hasher.verify(&pw("correct horse"), &hash).await.unwrap().rehashed.is_some());
    }

    #[tokio::test]
    async fn dummy_verification_succeeds_quietly_for_any_password() {
        let hasher = PasswordHasher::new(&HashingConfig::insecure_for_tests()).unwrap();
        hasher.verify_dummy(&pw("whatever one")).await.unwrap();
        hasher.verify_dummy(&pw("whatever two")).await.unwrap();
    }

    #[tokio::test]
    async fn fails_fast_with_overloaded_when_the_queue_is_full() {
        let config = HashingConfig { max_concurrent: 1, max_queue: 1, ..HashingConfig::insecure_for_tests() };
        let hasher = PasswordHasher::new(&config).unwrap();
        // Occupy the only thread, then fill the one queue slot.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let busy = hasher.clone();
        let running = tokio::spawn(async move {
            busy.run_for_test(move || {
                let _ = started_tx.send(());
                let _ = hold.recv();
            })
            .await
        });
        started.await.unwrap();
        // The thread is busy: one job fits in the queue, the next does not.
        let (drained_tx, drained) = tokio::sync::oneshot::channel::<()>();
        assert!(
            hasher
                .inner
                .jobs
                .try_send(Box::new(move || {
                    let _ = drained_tx.send(());
                }))
                .is_ok()
        );
        assert!(matches!(hasher.hash(&pw("correct horse")).await, Err(Error::Overloaded)));
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        drained.await.unwrap();
        assert!(hasher.hash(&pw("correct horse")).await.is_ok());
    }

    #[tokio::test]
    async fn queued_hashes_wait_for_a_permit_within_the_bound() {
        let config = HashingConfig { max_concurrent: 1, max_queue: 4, ..HashingConfig::insecure_for_tests() };
        let hasher = PasswordHasher::new(&config).unwrap();
        let results = futures_util::future::join_all((0..4).map(|_| {
            let h = hasher.clone();
            tokio::spawn(async move { h.hash(&pw("correct horse")).await })
        }))
        .await;
        assert!(results.into_iter().all(|r| r.unwrap().is_ok()));
    }
}
