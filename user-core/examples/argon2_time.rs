//! How fast password hashing is with the default (OWASP) parameters on this
//! machine. Prints two figures: the median time of one verification alone, in
//! milliseconds, and the verifications per second that one per core, all at
//! once, sustain (argon2 is memory-bound, so parallel hashes slow each other).
//! `bench/run` turns the first into the login capacity (cores ÷ one hash's
//! time) and shows the second beside it.

use std::time::{Duration, Instant};

use user_core::auth::{HashingConfig, PasswordHasher};
use user_core::domain::Password;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let password = Password::parse("correct horse")?;
    let alone = PasswordHasher::new(&HashingConfig { max_concurrent: 1, ..HashingConfig::default() })?;
    let hash = alone.hash(&password).await?;
    let mut times = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        alone.verify(&password, &hash).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));

    let config = HashingConfig::default();
    let parallel = PasswordHasher::new(&config)?;
    let started = Instant::now();
    let before = parallel.completed();
    let workers = (0..config.max_concurrent).map(|_| {
        let (hasher, password, hash) = (parallel.clone(), password.clone(), hash.clone());
        tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(2) {
                hasher.verify(&password, &hash).await?;
            }
            Ok::<_, user_core::Error>(())
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await??;
    }
    let per_second = (parallel.completed() - before) as f64 / started.elapsed().as_secs_f64();
    println!("{:.2} {:.1}", times[times.len() / 2], per_second);
    Ok(())
}
