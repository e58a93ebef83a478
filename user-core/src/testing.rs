//! Test helpers (feature `testing`): a fresh SQLite database per test
//! ([`SqliteDatabase`]), and a fresh PostgreSQL schema per test, so
//! PostgreSQL tests run in parallel without seeing each other.
//!
//! The server comes from `USER_TEST_POSTGRES_URL`; without it, from a
//! testcontainers PostgreSQL when a Docker engine is reachable; otherwise the
//! tests are skipped with a printed reason — unless
//! `USER_TEST_REQUIRE_POSTGRES=1`, which turns the skip into a failure.
//! Every skip is counted, and the count is printed after the test binary's
//! summary line, so a run that skipped cannot pass for one that ran them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

pub use crate::auth::soft_authenticator::{Algorithm, Authenticator};
use crate::store::{SqliteStore, Store};

/// A fresh, migrated SQLite database in a file of its own, the embedded
/// default backend as a server runs it; the file goes when this drops.
/// Another store opened on [`SqliteDatabase::url`] sees the same data, as
/// `user-cli` does beside a running server.
#[derive(Debug)]
pub struct SqliteDatabase {
    /// The store, migrated.
    pub store: std::sync::Arc<dyn Store>,
    /// `sqlite://…/test.db`.
    pub url: String,
    path: std::path::PathBuf,
    /// Deleted, with the file, on drop.
    _dir: tempfile::TempDir,
}

impl SqliteDatabase {
    /// Creates and migrates the database.
    ///
    /// # Panics
    /// When the file cannot be created or migrated.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("test.db");
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::connect(&url).await.expect("open the test database");
        store.migrate().await.expect("migrate the test database");
        Self { store: std::sync::Arc::new(store), url, path, _dir: dir }
    }

    /// A database outage, as the service meets one: another connection
    /// takes every table away, so each later statement of the service fails
    /// with the database's own error (`no such table`), reads and writes
    /// alike.
    ///
    /// # Panics
    /// When the file cannot be changed.
    pub fn break_schema(&self) {
        let conn = rusqlite::Connection::open(&self.path).expect("open the test database");
        let tables: Vec<String> = conn
            .prepare("select name from sqlite_schema where type = 'table' and name not like 'sqlite_%'")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("list the tables");
        conn.execute_batch("pragma foreign_keys = off").expect("foreign keys off");
        for table in tables {
            // The names come from the database's own catalogue.
            conn.execute_batch(&format!("alter table \"{table}\" rename to \"gone_{table}\"")).expect("rename a table");
        }
    }
}

/// A fresh, migrated in-memory SQLite store, for tests that need no file.
///
/// # Panics
/// When it cannot be migrated.
pub async fn memory_store() -> std::sync::Arc<dyn Store> {
    let store = SqliteStore::connect("sqlite::memory:").await.expect("open an in-memory database");
    store.migrate().await.expect("migrate the in-memory database");
    std::sync::Arc::new(store)
}

/// Schemas this helper made are named `ut_<unix seconds>_<random>`; ones
/// older than this are dropped by later runs.
const STALE_AFTER_SECS: u64 = 3600;

/// The URL of a PostgreSQL server for tests, or `None` (with the reason
/// printed) when there is none and none is required.
///
/// # Panics
/// When `USER_TEST_REQUIRE_POSTGRES=1` and no server is available.
pub fn postgres_server_url() -> Option<String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let found = URL.get_or_init(|| match std::env::var("USER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_container(),
    });
    match found {
        Ok(url) => Some(url.clone()),
        Err(reason) => {
            let required = std::env::var("USER_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true");
            assert!(!required, "USER_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL: {reason}");
            skipped(&format!("no PostgreSQL: {reason}"));
            None
        }
    }
}

/// Starts PostgreSQL in a container on a thread of its own that keeps it
/// alive for the rest of the process.
fn start_container() -> Result<String, String> {
    let docker = std::env::var("DOCKER_HOST").is_ok() || std::path::Path::new("/var/run/docker.sock").exists();
    if !docker {
        return Err("USER_TEST_POSTGRES_URL is not set and no Docker engine is reachable".into());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            use testcontainers_modules::postgres::Postgres;
            use testcontainers_modules::testcontainers::runners::AsyncRunner;
            match Postgres::default().start().await {
                Ok(container) => {
                    let url = match container.get_host_port_ipv4(5432).await {
                        Ok(port) => Ok(format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")),
                        Err(e) => Err(format!("container port: {e}")),
                    };
                    let _ = tx.send(url);
                    // Keep the container for the life of the test process.
                    std::future::pending::<()>().await;
                    drop(container);
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("could not start a PostgreSQL container: {e}")));
                }
            }
        });
    });
    rx.recv().unwrap_or_else(|_| Err("the container thread died".into()))
}

/// A URL to a new, empty schema on the test server (its `search_path`), or
/// `None` when PostgreSQL tests are skipped.
///
/// # Panics
/// When the server cannot be reached or the schema cannot be created.
pub async fn postgres_schema_url() -> Option<String> {
    let base = postgres_server_url()?;
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to the test PostgreSQL");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.set(()).is_ok() {
        drop_stale_schemas(&mut conn, now).await;
    }
    let schema = format!("ut_{now}_{}", uuid::Uuid::now_v7().simple());
    // The schema name is made here of a timestamp and a UUID: nothing outside comes in.
    let create = sqlx::AssertSqlSafe(format!("create schema {schema}"));
    sqlx::query(create).execute(&mut conn).await.expect("create a test schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{separator}options[search_path]={schema}"))
}

async fn drop_stale_schemas(conn: &mut sqlx::PgConnection, now: u64) {
    let schemas: Vec<String> = sqlx::query_scalar("select nspname::text from pg_namespace where nspname like 'ut\\_%'")
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
    for schema in schemas {
        let created = schema.split('_').nth(1).and_then(|s| s.parse::<u64>().ok()).unwrap_or(now);
        if now.saturating_sub(created) > STALE_AFTER_SECS {
            // Only names this helper made (`ut_…`, listed from the catalogue) are dropped.
            let statement = sqlx::AssertSqlSafe(format!("drop schema if exists {schema} cascade"));
            let _ = sqlx::query(statement).execute(&mut *conn).await;
        }
    }
}

/// Records that the calling test skipped itself because of `reason` (a
/// service it needs is missing). The test prints the reason; when the test
/// binary exits, after its summary line, a count of skipped tests and each
/// distinct reason are printed to stderr.
pub fn skipped(reason: &str) {
    static SKIPPED: AtomicUsize = AtomicUsize::new(0);
    static REASONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    extern "C" fn report() {
        let reasons = REASONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        eprintln!("\n{} test(s) skipped:", SKIPPED.load(Ordering::SeqCst));
        for reason in reasons.iter() {
            eprintln!("  {reason}");
        }
    }
    eprintln!("skipping: {reason}");
    let mut reasons = REASONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !reasons.iter().any(|r| r == reason) {
        reasons.push(reason.to_owned());
    }
    if SKIPPED.fetch_add(1, Ordering::SeqCst) == 0 {
        // libtest prints its summary and then returns from main (or exits
        // with 101), either way running atexit handlers.
        // SAFETY: `report` is a plain function that lives as long as the process.
        unsafe {
            libc::atexit(report);
        }
    }
}
