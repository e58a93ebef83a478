//! Read connections: opened on demand, pooled while idle, used on the calling thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::SqliteStore;
use super::rows::map_err;
use crate::domain::ValidationError;
use crate::error::{Error, Result};

/// Prepared statements kept per connection (every query here fits).
const STATEMENT_CACHE: usize = 64;

impl SqliteStore {
    /// Runs `f` on a read connection on this thread.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.inner.path else {
            return f(&lock(&self.inner.writer));
        };
        let pooled = lock(&self.inner.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(map_err)?;
                configure(&conn, false)?;
                conn
            }
        };
        let out = f(&conn);
        let mut idle = lock(&self.inner.readers);
        if idle.len() < self.inner.idle_readers {
            idle.push(conn);
        }
        out
    }
}

/// Creates the database file readable by its owner only (it holds password
/// hashes, sessions and, by default, the signing key); SQLite gives its `-wal`
/// and `-shm` files the database file's mode. An existing file is left as it
/// is, with a warning if others may read it or its companions.
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let Ok(meta) = std::fs::metadata(&file) else { continue };
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = ?Path::new(&file),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the SQLite database is readable by other users; it holds password hashes and keys: chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The file a `sqlite:` URL names, or `None` for an in-memory database.
pub(super) fn parse_url(url: &str) -> Result<Option<PathBuf>> {
    let invalid =
        |why: &str| Error::from(ValidationError::new("database", format!("invalid SQLite URL {url:?}: {why}")));
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| invalid("expected sqlite://path"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut memory = path == ":memory:";
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair {
            "mode=memory" => memory = true,
            // Read-write-create is what the service always does.
            "mode=rwc" => {}
            other => return Err(invalid(&format!("unsupported parameter {other:?}"))),
        }
    }
    if memory {
        return Ok(None);
    }
    if path.is_empty() {
        return Err(invalid("no file named"));
    }
    Ok(Some(PathBuf::from(path)))
}

/// Per-connection settings. In WAL mode `synchronous = NORMAL` is safe
/// against a process crash or kill; only an OS crash or power loss can lose
/// the last commits.
pub(super) fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let pragmas = if writer {
        "pragma journal_mode = wal; pragma synchronous = normal; pragma foreign_keys = on;"
    } else {
        "pragma foreign_keys = on; pragma query_only = on;"
    };
    conn.execute_batch(pragmas).map_err(map_err)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks leaves its data half-changed on a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
