//! Seeds databases for `bench/run`. Every account has the password
//! `correct horse` (one precomputed hash), and is named `seed{n}`.
//!
//! ```text
//! seed users DATABASE_URL N [DEEP]       # N accounts; prints the cursor of the page after DEEP
//! seed favorites DATABASE_URL USERS ROWS # the first USERS accounts, ROWS favorites in all (skewed)
//! seed sessions DATABASE_URL USERS FILE  # a session each; writes `username user_id favorites access refresh` lines
//! ```
//!
//! `favorites` is incremental: it remembers how many rows it seeded (table
//! `bench_seed`) and adds only the difference, so one database grows through
//! the sizes of the `growth` scenario and is reused across runs.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use user_bench::favorites_of;
use user_core::auth::{HashingConfig, PasswordHasher};
use user_core::domain::{Amr, Email, Password, Role, SessionId, UserId, Username};
use user_core::page::PageRequest;
use user_core::store::backend::{NewSession, UserRecord};
use user_core::store::{self, SessionRecord, Store, User, UserKey};
use user_core::{ServiceConfig, UserService};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: seed users URL N [DEEP] | seed favorites URL USERS ROWS | seed sessions URL USERS FILE";

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or(USAGE);
    let store = store::open(arg(1)?).await?;
    store.migrate().await?;
    match arg(0)? {
        "users" => {
            let deep = args.get(3).map(|d| d.parse()).transpose()?.unwrap_or(0);
            users(&store, arg(2)?.parse()?, deep).await
        }
        "favorites" => {
            let users: usize = arg(2)?.parse()?;
            let rows: u64 = arg(3)?.parse()?;
            seed_users(&store, users).await?;
            favorites(arg(1)?, &store, users, rows).await
        }
        "sessions" => sessions(arg(1)?, store, arg(2)?.parse()?, arg(3)?).await,
        _ => Err(USAGE.into()),
    }
}

/// `n` accounts, then the cursor of the page after the first `deep`.
async fn users(store: &Arc<dyn Store>, n: usize, deep: usize) -> Result<()> {
    let started = Instant::now();
    seed_users(store, n).await?;
    eprintln!("seeded {n} users in {:.1} s", started.elapsed().as_secs_f64());
    if deep > 0 {
        let service = UserService::new(store.clone(), ServiceConfig::default()).await?;
        let mut page = PageRequest::first(100)?;
        let mut seen = 0;
        while seen < deep {
            let result = service.list_users(&page, user_core::store::GuestFilter::Include).await?;
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

/// Accounts `seed0` … `seed{n-1}` (those already there are kept).
async fn seed_users(store: &Arc<dyn Store>, n: usize) -> Result<()> {
    let hash = PasswordHasher::new(&HashingConfig::default())?.hash(&Password::parse("correct horse")?).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (store, hash, next) = (store.clone(), hash.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, user_core::Error>(());
                }
                let now = chrono::Utc::now();
                let record = UserRecord {
                    user: User {
                        id: UserId::new(),
                        username: Some(Username::parse(&format!("seed{i}"))?),
                        email: Some(Email::parse(&format!("seed{i}@example.com"))?),
                        role: Role::User,
                        disabled_at: None,
                        email_verified: false,
                        locale: Default::default(),
                        last_login_at: None,
                        created_at: now,
                        updated_at: now,
                    },
                    password_hash: Some(hash.clone()),
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
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

async fn user_ids(store: &Arc<dyn Store>, users: usize) -> Result<Vec<UserRecord>> {
    let mut records = Vec::with_capacity(users);
    for i in 0..users {
        let name = Username::parse(&format!("seed{i}"))?;
        records.push(store.find_user(UserKey::Username(&name)).await?.ok_or("a seeded user is missing")?);
    }
    Ok(records)
}

/// Grows the favorites of `seed0…` to `rows` in all, each user's share as
/// [`favorites_of`] says; the rows are generated by the database itself.
async fn favorites(url: &str, store: &Arc<dyn Store>, users: usize, rows: u64) -> Result<()> {
    let ids: Vec<UserId> = user_ids(store, users).await?.into_iter().map(|r| r.user.id).collect();
    let mut target = Bulk::open(url).await?;
    let had = target.seeded().await?;
    if had > rows {
        return Err(format!("the database already holds {had} seeded favorites, more than {rows}").into());
    }
    let todo: u64 = (0..users).map(|u| favorites_of(u, users, rows) - favorites_of(u, users, had)).sum();
    let mut progress = Progress::new(todo);
    let mut batch = Vec::new();
    for (u, id) in ids.iter().enumerate() {
        let (from, to) = (favorites_of(u, users, had), favorites_of(u, users, rows));
        if to > from {
            batch.push((*id, from, to));
        }
        let pending: u64 = batch.iter().map(|(_, from, to)| to - from).sum();
        if pending >= 200_000 || u + 1 == users {
            target.insert(&batch).await?;
            progress.add(pending);
            batch.clear();
        }
    }
    target.set_seeded(rows).await?;
    progress.finish();
    Ok(())
}

/// Bulk inserts of favorites, straight into the database.
enum Bulk {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgPool),
}

impl Bulk {
    async fn open(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let connection = rusqlite::Connection::open(path)?;
            connection.execute_batch("pragma synchronous = off; pragma cache_size = -262144;")?;
            connection.execute_batch("create table if not exists bench_seed (rows integer not null)")?;
            Ok(Bulk::Sqlite(connection))
        } else {
            let pool = sqlx::PgPool::connect(url).await?;
            sqlx::query("create table if not exists bench_seed (rows bigint not null)").execute(&pool).await?;
            Ok(Bulk::Postgres(pool))
        }
    }

    async fn seeded(&mut self) -> Result<u64> {
        let rows: Option<i64> = match self {
            Bulk::Sqlite(c) => c.query_row("select max(rows) from bench_seed", [], |r| r.get(0))?,
            Bulk::Postgres(p) => sqlx::query_scalar("select max(rows) from bench_seed").fetch_one(&*p).await?,
        };
        Ok(rows.unwrap_or(0).try_into()?)
    }

    async fn set_seeded(&mut self, rows: u64) -> Result<()> {
        let rows = i64::try_from(rows)?;
        match self {
            Bulk::Sqlite(c) => {
                c.execute_batch("delete from bench_seed")?;
                c.execute("insert into bench_seed (rows) values (?1)", [rows])?;
            }
            Bulk::Postgres(p) => {
                sqlx::query("delete from bench_seed").execute(&*p).await?;
                sqlx::query("insert into bench_seed (rows) values ($1)").bind(rows).execute(&*p).await?;
            }
        }
        Ok(())
    }

    /// Favorites `t{from}` … `t{to-1}` of each user, in one transaction.
    async fn insert(&mut self, batch: &[(UserId, u64, u64)]) -> Result<()> {
        let now = chrono::Utc::now();
        match self {
            Bulk::Sqlite(c) => {
                let tx = c.transaction()?;
                {
                    let mut insert = tx.prepare_cached(
                        "insert into favorites (user_id, track_id, created_at)
                         with recursive n(k) as (select ?2 union all select k + 1 from n where k + 1 < ?3)
                         select ?1, 't' || k, ?4 + k from n",
                    )?;
                    for (id, from, to) in batch {
                        let user = id.as_uuid();
                        insert.execute(rusqlite::params![user, *from as i64, *to as i64, now.timestamp_millis()])?;
                    }
                }
                tx.commit()?;
            }
            Bulk::Postgres(p) => {
                let mut tx = p.begin().await?;
                for (id, from, to) in batch {
                    let user = id.as_uuid();
                    sqlx::query(
                        "insert into favorites (user_id, track_id, created_at)
                         select $1, 't' || k, $4 + k * interval '1 millisecond' from generate_series($2, $3 - 1) k",
                    )
                    .bind(user)
                    .bind(*from as i64)
                    .bind(*to as i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// Rows done, rate and time left, on stderr: in place on a terminal, a
/// line every 10 s otherwise.
struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    shown: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: u64) -> Self {
        let now = Instant::now();
        Self { total, done: 0, started: now, shown: now, terminal: std::io::stderr().is_terminal() }
    }

    fn add(&mut self, rows: u64) {
        self.done += rows;
        let every = if self.terminal { Duration::from_millis(250) } else { Duration::from_secs(10) };
        if self.shown.elapsed() >= every {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn show(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let left = if rate > 0.0 { (self.total - self.done) as f64 / rate } else { 0.0 };
        let line = format!("favorites: {} / {} rows, {:.0} rows/s, {:.0} s left", self.done, self.total, rate, left);
        let mut err = std::io::stderr();
        let _ = if self.terminal { write!(err, "\r{line}   ") } else { writeln!(err, "{line}") };
    }

    fn finish(&self) {
        self.show();
        if self.terminal {
            eprintln!();
        }
        eprintln!("seeded {} favorites in {:.1} s", self.done, self.started.elapsed().as_secs_f64());
    }
}

/// A session for each of `seed0…seed{users-1}`, opened as a login would
/// (without the hashing), its tokens written to `file`.
async fn sessions(url: &str, store: Arc<dyn Store>, users: usize, file: &str) -> Result<()> {
    let records = user_ids(&store, users).await?;
    let rows = Bulk::open(url).await?.seeded().await?;
    let mut config = ServiceConfig::default();
    // Long enough for any soak; the server checks `exp`, not its own setting.
    config.tokens.access_ttl = Duration::from_secs(24 * 3600);
    let service = UserService::new(store.clone(), config).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let now = chrono::Utc::now();
    for (u, record) in records.iter().enumerate() {
        let user = &record.user;
        let (sid, jti) = (SessionId::new(), uuid::Uuid::now_v7());
        let (access, _) = service.tokens().issue_access(user.id, sid, user.role, Amr::PASSWORD, now)?;
        let (refresh, refresh_expires_at) = service.tokens().issue_refresh(user.id, sid, jti, now, now)?;
        let session = SessionRecord {
            id: sid,
            user_id: user.id,
            refresh_jti: jti,
            previous_jti: None,
            rotated_at: None,
            created_at: now,
            last_used_at: now,
            expires_at: refresh_expires_at,
            revoked_at: None,
            user_agent: Some("user-bench".into()),
            ip: None,
            device_name: None,
            authenticated_at: Some(now),
            amr: Amr::PASSWORD,
        };
        let login = NewSession { session, credential_version: record.credential_version, rehash: None };
        if !store.open_session(&login).await? {
            return Err("a seeded account changed while its session was opened".into());
        }
        writeln!(out, "{} {} {} {access} {refresh}", user.display_name(), user.id, favorites_of(u, users, rows))?;
    }
    out.flush()?;
    Ok(())
}
