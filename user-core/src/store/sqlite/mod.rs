//! The SQLite backend (the embedded default): rusqlite, WAL, foreign keys on.
//!
//! Reads run on the calling thread, on a pooled read-only connection: a point
//! read takes microseconds, less than handing it to another thread and back.
//! (With sqlx's thread-per-connection driver, a profile of `GET /user/get`
//! showed over half the CPU in futex wake-ups and context switches.) WAL lets
//! readers see the last commit without ever waiting for the writer.
//!
//! Writes go to one writer thread that owns the only write connection, so
//! in-process writers queue instead of failing with `SQLITE_BUSY`. It commits
//! whatever has queued up in one transaction (group commit), each operation in
//! its own savepoint so a failing one rolls back alone; every caller hears back
//! only after the commit that made its change durable.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::store::Store;

mod audit;
mod devices;
mod factors;
mod favorites;
mod identities;
mod migrate;
mod passkeys;
mod pool;
mod rows;
mod secrets;
mod sessions;
mod tasks;
mod tokens;
mod users;
mod writer;

use pool::{configure, create_private, parse_url};
use rows::map_err;
use writer::{Job, write_loop};

/// A SQLite database file (or `sqlite::memory:`). Cheap to clone; the writer
/// thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The file; `None` for an in-memory database, which exists only on the
    /// write connection, so reads go there too.
    path: Option<PathBuf>,
    writer: Arc<Mutex<Connection>>,
    jobs: mpsc::Sender<Box<dyn Job>>,
    readers: Mutex<Vec<Connection>>,
    idle_readers: usize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, e.g.
    /// `sqlite://user-service.db` or `sqlite::memory:`, keeping up to 10 idle
    /// read connections. Call [`Store::migrate`] before first use.
    ///
    /// # Errors
    /// [`Error::Validation`] for a malformed URL; [`Error::Internal`] if the
    /// file cannot be opened.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, 10).await
    }

    /// Like [`SqliteStore::connect`], keeping up to `readers` idle read
    /// connections. Reads run on the caller's thread, so as many run at once
    /// as threads call in; extra connections beyond `readers` are closed
    /// when they are done.
    ///
    /// # Errors
    /// As [`SqliteStore::connect`].
    pub async fn connect_with(url: &str, readers: u32) -> Result<Self> {
        let path = parse_url(url)?;
        if let Some(path) = &path {
            create_private(path).map_err(|e| Error::internal(format!("cannot create SQLite database {url:?}: {e}")))?;
        }
        let writer = match &path {
            Some(path) => Connection::open(path),
            None => Connection::open_in_memory(),
        }
        .map_err(|e| Error::internal(format!("cannot open SQLite database {url:?}: {e}")))?;
        configure(&writer, true)?;
        let writer = Arc::new(Mutex::new(writer));
        let (jobs, queue) = mpsc::channel();
        let thread_writer = writer.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&thread_writer, &queue))
            .map_err(Error::internal)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer,
                jobs,
                readers: Mutex::new(Vec::new()),
                idle_readers: readers.max(1) as usize,
            }),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        // On the writer connection, outside the group commits: the runner
        // needs foreign keys off around its own transaction.
        let writer = self.inner.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| Error::internal("the SQLite writer lock is poisoned"))?;
            migrate::migrate(&mut conn)
        })
        .await
        .map_err(Error::internal)?
    }

    async fn ping(&self) -> Result<()> {
        // A read of the schema, not only of the file: a database that opens
        // but lost its tables is not ready.
        self.read(|conn| conn.execute_batch("select 1 from _sqlx_migrations limit 1").map_err(map_err))
    }

    fn system(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::pool::parse_url;

    #[test]
    fn urls_name_a_file_or_memory() {
        assert_eq!(parse_url("sqlite://users.db").unwrap(), Some("users.db".into()));
        assert_eq!(parse_url("sqlite:///var/lib/users.db").unwrap(), Some("/var/lib/users.db".into()));
        assert_eq!(parse_url("sqlite:users.db?mode=rwc").unwrap(), Some("users.db".into()));
        assert_eq!(parse_url("sqlite::memory:").unwrap(), None);
        assert_eq!(parse_url("sqlite://x?mode=memory").unwrap(), None);
        for bad in ["sqlite://", "sqlite://x.db?cache=shared", "postgres://x"] {
            let error = parse_url(bad).unwrap_err().to_string();
            assert!(error.contains("database"), "{bad}: {error}");
        }
    }

    async fn store() -> (tempfile::TempDir, super::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = super::SqliteStore::connect(&url).await.unwrap();
        crate::store::Store::migrate(&store).await.unwrap();
        (dir, store)
    }

    fn record(name: &str) -> crate::store::UserRecord {
        let now = chrono::Utc::now();
        crate::store::UserRecord {
            user: crate::store::User {
                id: crate::domain::UserId::new(),
                username: Some(name.to_owned().try_into().unwrap()),
                email: Some(format!("{name}@example.com").try_into().unwrap()),
                role: crate::domain::Role::User,
                disabled_at: None,
                email_verified: false,
                locale: Default::default(),
                last_login_at: None,
                created_at: now,
                updated_at: now,
            },
            password_hash: Some("x".into()),
            failed_logins: 0,
            locked_until: None,
            credential_version: 0,
        }
    }

    /// Many writes queued at once share group commits; each one that fails
    /// rolls back alone and every other one is committed and acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_rolls_back_alone_within_a_group() {
        use crate::store::{UserKey, UserStore};
        let (_dir, store) = store().await;
        store.insert_user(&record("taken"), &[]).await.unwrap();
        let writes = (0..200).map(|i| {
            let store = store.clone();
            // Every third one collides with the existing username.
            let name = if i % 3 == 0 { "TAKEN".to_owned() } else { format!("user{i}") };
            tokio::spawn(async move { store.insert_user(&record(&name), &[]).await })
        });
        let outcomes = futures_util::future::join_all(writes).await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome.unwrap() {
                Ok(()) => assert_ne!(i % 3, 0, "write {i} should have collided"),
                Err(e) => {
                    assert_eq!(i % 3, 0, "write {i} failed: {e}");
                    assert!(matches!(e, crate::error::Error::Conflict(_)), "{e}");
                }
            }
        }
        for i in (0..200).filter(|i| i % 3 != 0) {
            let name: crate::domain::Username = format!("user{i}").try_into().unwrap();
            assert!(store.find_user(UserKey::Username(&name)).await.unwrap().is_some(), "user{i} lost");
        }
        assert_eq!(store.list_users(None, 1000, crate::store::GuestFilter::Include).await.unwrap().len(), 1 + 133);
    }

    /// A page of favorites is read by a statement prepared once: with its
    /// limit bound, SQLite would prepare it again for every other limit.
    #[tokio::test]
    async fn a_favorites_page_is_not_prepared_again() {
        let (dir, store) = store().await;
        drop(store);
        let conn = rusqlite::Connection::open(dir.path().join("test.db")).unwrap();
        super::pool::configure(&conn, true).unwrap();
        let user = uuid::Uuid::now_v7();
        let reprepared = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            stmt.query(params).unwrap().next().unwrap();
            stmt.get_status(rusqlite::StatementStatus::RePrepare)
        };
        // The mechanism: binding a limit costs a new plan, every call.
        let with_limit = format!("{} limit ?3", super::favorites::LIST_FAVORITES);
        for (call, limit) in [1, 50, 3, 7].into_iter().enumerate() {
            assert_eq!(reprepared(&with_limit, &[&user, &i64::MAX, &limit]), call as i32 + 1);
        }
        // Ours: any cursor, any page size, one plan.
        for before in [1, 50, 3, i64::MAX] {
            assert_eq!(reprepared(super::favorites::LIST_FAVORITES, &[&user, &before]), 0, "before {before}");
        }
    }

    /// Migrating an up-to-date database changes nothing; one whose applied
    /// migration was edited afterwards is refused rather than half-trusted.
    #[tokio::test]
    async fn migrations_apply_once_and_edits_are_refused() {
        use crate::store::Store;
        let (dir, store) = store().await;
        store.migrate().await.unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(dir.path().join("test.db")).unwrap();
        let applied: i64 = conn.query_row("select count(*) from _sqlx_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(applied as usize, super::migrate::MIGRATOR.iter().count());
        conn.execute(
            "update _sqlx_migrations set checksum = x'00' where version = (select min(version) from _sqlx_migrations)",
            [],
        )
        .unwrap();
        drop(conn);
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = super::SqliteStore::connect(&url).await.unwrap();
        let error = store.migrate().await.unwrap_err().to_string();
        assert!(error.contains("changed"), "{error}");
    }

    crate::store::conformance::suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        // Keep the directory alive for the whole test process.
        std::mem::forget(dir);
        let store = super::SqliteStore::connect(&url).await.unwrap();
        crate::store::Store::migrate(&store).await.unwrap();
        Some(std::sync::Arc::new(store) as std::sync::Arc<dyn crate::store::Store>)
    });
}
