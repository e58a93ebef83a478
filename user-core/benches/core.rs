//! Criterion benchmarks of the library's hot paths: tokens, password hashing,
//! and store operations on memory and SQLite.
//!
//! `cargo bench -p user-core --bench core`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use user_core::auth::{HashingConfig, KeySet, PasswordHasher, TokenConfig, Tokens};
use user_core::domain::{Amr, Email, Password, Role, SessionId, TrackId, UserId, Username};
use user_core::store::backend::UserRecord;
use user_core::store::{self, Store, User, UserKey};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn tokens(c: &mut Criterion) {
    let now = Utc::now();
    for (name, keys) in
        [("hs256", KeySet::hs256(&[[7u8; 32]]).unwrap()), ("eddsa", KeySet::ed25519_from_seeds(&[[9u8; 32]]).unwrap())]
    {
        let tokens = Tokens::new(keys, TokenConfig::default());
        let (user, sid) = (UserId::new(), SessionId::new());
        c.bench_function(&format!("token/issue/{name}"), |b| {
            b.iter(|| tokens.issue_access(user, sid, Role::User, Amr::PASSWORD, now).unwrap())
        });
        let (jwt, _) = tokens.issue_access(user, sid, Role::User, Amr::PASSWORD, now).unwrap();
        c.bench_function(&format!("token/verify/{name}"), |b| b.iter(|| tokens.verify_access(&jwt, now).unwrap()));
    }
}

fn hashing(c: &mut Criterion) {
    let rt = runtime();
    let hasher = PasswordHasher::new(&HashingConfig::default()).unwrap();
    let password = Password::parse("correct horse battery").unwrap();
    let hash = rt.block_on(hasher.hash(&password)).unwrap();
    let mut group = c.benchmark_group("password");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.bench_function("verify/owasp", |b| b.to_async(&rt).iter(|| hasher.verify(&password, &hash)));
    group.finish();
}

async fn seeded(url: &str) -> (Arc<dyn Store>, UserId) {
    let store = store::open(url).await.unwrap();
    store.migrate().await.unwrap();
    let now = Utc::now();
    let id = UserId::new();
    let record = UserRecord {
        user: User {
            id,
            username: Some(Username::parse("bench").unwrap()),
            email: Some(Email::parse("bench@example.com").unwrap()),
            role: Role::User,
            disabled_at: None,
            email_verified: false,
            locale: Default::default(),
            last_login_at: None,
            created_at: now,
            updated_at: now,
        },
        password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        failed_logins: 0,
        locked_until: None,
        credential_version: 0,
    };
    store.insert_user(&record, &[]).await.unwrap();
    (store, id)
}

fn stores(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    for (name, url) in [("sqlite-memory", "sqlite::memory:".to_owned()), ("sqlite", sqlite)] {
        let (store, id) = rt.block_on(seeded(&url));
        c.bench_function(&format!("store/{name}/get_user"), |b| {
            b.to_async(&rt).iter(|| store.find_user(UserKey::Id(id)))
        });
        let counter = AtomicU64::new(0);
        c.bench_function(&format!("store/{name}/add_favorite"), |b| {
            b.to_async(&rt).iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let track = [TrackId::parse(&format!("t{n}")).unwrap()];
                let store = store.clone();
                async move { store.add_favorites(id, &track, Utc::now()).await.unwrap() }
            })
        });
        c.bench_function(&format!("store/{name}/claim_and_complete_100"), |b| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                async move {
                    let now = Utc::now();
                    let claim = store.claim_tasks(now, now + Duration::from_secs(60), 100).await.unwrap();
                    let ids: Vec<i64> = claim.tasks.iter().map(|t| t.id).collect();
                    store.complete_tasks(claim.lease_id, &ids, now).await.unwrap()
                }
            })
        });
    }
}

criterion_group!(benches, tokens, hashing, stores);
criterion_main!(benches);
