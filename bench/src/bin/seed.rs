//! Seeds accounts for benchmarks (`bench/run`): inserts users straight into
//! the store with one precomputed password hash (all have the password
//! `correct horse`), then prints the cursor of the page after the first
//! `deep` users, so a benchmark can ask for a page at that depth.
//!
//! `cargo run --release -p user-core --example seed -- sqlite://bench.db 1000000 999900`

use std::sync::Arc;

use user_core::auth::{HashingConfig, PasswordHasher};
use user_core::domain::{Email, Password, Role, UserId, Username};
use user_core::page::PageRequest;
use user_core::store::{self, User, UserRecord};
use user_core::{ServiceConfig, UserService};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: seed DATABASE_URL USERS [DEEP]")?;
    let users: usize = args.next().ok_or("usage: seed DATABASE_URL USERS [DEEP]")?.parse()?;
    let deep: usize = args.next().map(|d| d.parse()).transpose()?.unwrap_or(0);

    let store = store::open(&url).await?;
    store.migrate().await?;
    let hash = PasswordHasher::new(&HashingConfig::default())?.hash(&Password::parse("correct horse")?).await?;
    let started = std::time::Instant::now();
    let workers = 8;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (store, hash, next) = (store.clone(), hash.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= users {
                    return Ok::<_, user_core::Error>(());
                }
                let now = chrono::Utc::now();
                let record = UserRecord {
                    user: User {
                        id: UserId::new(),
                        username: Username::parse(&format!("seed{n}"))?,
                        email: Email::parse(&format!("seed{n}@example.com"))?,
                        role: Role::User,
                        disabled_at: None,
                        email_verified: false,
                        locale: Default::default(),
                        last_login_at: None,
                        created_at: now,
                        updated_at: now,
                    },
                    password_hash: hash.clone(),
                    failed_logins: 0,
                    locked_until: None,
                    credential_version: 0,
                };
                match store.insert_user(&record, &[]).await {
                    Ok(()) | Err(user_core::Error::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    eprintln!("seeded {users} users in {:.1} s", started.elapsed().as_secs_f64());

    if deep > 0 {
        let service = UserService::new(store, ServiceConfig::default()).await?;
        let mut page = PageRequest::first(100)?;
        let mut seen = 0;
        while seen < deep {
            let result = service.list_users(&page).await?;
            seen += result.items.len();
            match result.next_cursor {
                Some(cursor) => page = PageRequest::first(100)?.after(cursor),
                None => break,
            }
        }
        println!("{}", page.cursor().unwrap_or_default());
    }
    Ok(())
}
