//! How long one password hash takes with the default (OWASP) parameters, on
//! this machine: the median of several runs, in milliseconds. `bench/run`
//! turns it into the login capacity (cores ÷ one hash's time).

use user_core::auth::{HashingConfig, PasswordHasher};
use user_core::domain::Password;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hasher = PasswordHasher::new(&HashingConfig { max_concurrent: 1, ..HashingConfig::default() })?;
    let password = Password::parse("correct horse")?;
    let hash = hasher.hash(&password).await?;
    let mut times = Vec::new();
    for _ in 0..15 {
        let started = std::time::Instant::now();
        hasher.verify(&password, &hash).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!("{:.2}", times[times.len() / 2]);
    Ok(())
}
