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

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::FromSql;
use rusqlite::{Connection, ErrorCode, OpenFlags, Params, Row, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    AuditRecord, AuditStore, Claim, DeferredTask, Favorite, FavoriteStore, LockRule, LoginAttempt, NewSession,
    Rotation, SecretStore, SessionRecord, SessionStore, Store, TaskCounts, TaskKind, TaskStatus, TaskStore, User,
    UserChanges, UserKey, UserRecord, UserStore, WaitingTasks,
};
use crate::domain::{Role, SessionId, TrackId, UserId, ValidationError};
use crate::error::{ConflictField, Error, Result};

/// Most operations one group commit carries; bounds the latency a caller
/// queued behind a large group can see.
const MAX_GROUP: usize = 256;

/// Prepared statements kept per connection (every query here fits).
const STATEMENT_CACHE: usize = 64;

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

    /// Runs `f` on a read connection on this thread.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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

    /// Runs `f` on the writer thread inside the next group commit; resolves
    /// once that commit is durable (or failed).
    async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let (reply, outcome) = oneshot::channel();
        let job = Box::new(Pending { work: Some(f), outcome: None, reply });
        self.inner.jobs.send(job).map_err(|_| Error::internal("the SQLite writer thread has stopped"))?;
        outcome.await.map_err(|_| Error::internal("the SQLite writer thread has stopped"))?
    }
}

/// The file a `sqlite:` URL names, or `None` for an in-memory database.
/// Creates the database file readable by its owner only (it holds password
/// hashes, sessions and, by default, the signing key); SQLite gives its `-wal`
/// and `-shm` files the database file's mode. An existing file is left as it
/// is, with a warning if others may read it or its companions.
fn create_private(path: &Path) -> std::io::Result<()> {
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

fn parse_url(url: &str) -> Result<Option<PathBuf>> {
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
fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let pragmas = if writer {
        "pragma journal_mode = wal; pragma synchronous = normal; pragma foreign_keys = on;"
    } else {
        "pragma foreign_keys = on; pragma query_only = on;"
    };
    conn.execute_batch(pragmas).map_err(map_err)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks leaves its data half-changed on a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One queued write: runs inside a group, answers after its commit.
trait Job: Send {
    /// Runs the work; `false` if it failed, so its savepoint is rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the outcome, or the group's commit error.
    fn finish(self: Box<Self>, commit: std::result::Result<(), &str>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T> + Send> Job for Pending<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(Error::internal("a SQLite write panicked")));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), &str>) {
        let outcome = match (commit, self.outcome) {
            // A failed operation rolled back alone; its own error stands.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(ok)) => ok,
            (Err(e), _) => Err(Error::internal(format!("SQLite commit failed: {e}"))),
            (Ok(()), None) => Err(Error::internal("a SQLite write did not run")),
        };
        // The caller may have gone away; the change is committed regardless.
        let _ = self.reply.send(outcome);
    }
}

fn write_loop(writer: &Mutex<Connection>, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let commit = run_group(&mut lock(writer), &mut group).map_err(|e| e.to_string());
        for job in group {
            job.finish(commit.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

fn run_group(conn: &mut Connection, group: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in group.iter_mut() {
        let savepoint = tx.savepoint()?;
        if job.run(&savepoint) {
            savepoint.commit()?;
        } else {
            // Rolled back to where this job began; should even that fail, the
            // whole group fails rather than commit half of a failed job.
            savepoint.finish()?;
        }
    }
    tx.commit()
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::internal(format!("timestamp out of range: {ms}")))
}

fn opt_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

/// Turns a constraint violation into the caller's error; anything else is ours.
fn map_err(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(failure, message) = &e
        && failure.code == ErrorCode::ConstraintViolation
    {
        let message = message.as_deref().unwrap_or_default();
        match failure.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                if message.contains("users_username_key") {
                    return Error::Conflict(ConflictField::Username);
                }
                if message.contains("users.email") || message.contains("users_email_key") {
                    return Error::Conflict(ConflictField::Email);
                }
            }
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Error::UserNotFound,
            _ => {}
        }
    }
    Error::internal(e)
}

/// One column by name.
fn col<T: FromSql>(row: &Row<'_>, name: &str) -> Result<T> {
    row.get(name).map_err(Error::internal)
}

/// The first row `sql` returns, mapped.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    rows.next().map_err(map_err)?.map(map).transpose()
}

/// Every row `sql` returns, mapped.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Runs one statement; the number of rows it changed.
fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<u64> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    Ok(stmt.execute(params).map_err(map_err)? as u64)
}

fn user_record(row: &Row<'_>) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: UserId::from_uuid(col(row, "id")?),
            username: col::<String>(row, "username")?.try_into().map_err(Error::internal)?,
            email: col::<String>(row, "email")?.try_into().map_err(Error::internal)?,
            role: col::<String>(row, "role")?.parse::<Role>().map_err(Error::internal)?,
            disabled_at: opt_time(col(row, "disabled_at")?)?,
            created_at: time(col(row, "created_at")?)?,
            updated_at: time(col(row, "updated_at")?)?,
        },
        password_hash: col(row, "password_hash")?,
        failed_logins: col::<i64>(row, "failed_logins")? as u32,
        locked_until: opt_time(col(row, "locked_until")?)?,
        credential_version: col(row, "credential_version")?,
    })
}

fn session_record(row: &Row<'_>) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId::from_uuid(col(row, "id")?),
        user_id: UserId::from_uuid(col(row, "user_id")?),
        refresh_jti: col(row, "refresh_jti")?,
        previous_jti: col(row, "previous_jti")?,
        rotated_at: opt_time(col(row, "rotated_at")?)?,
        created_at: time(col(row, "created_at")?)?,
        last_used_at: time(col(row, "last_used_at")?)?,
        expires_at: time(col(row, "expires_at")?)?,
        revoked_at: opt_time(col(row, "revoked_at")?)?,
        user_agent: col(row, "user_agent")?,
        ip: col(row, "ip")?,
    })
}

fn task_record(row: &Row<'_>) -> Result<DeferredTask> {
    let track: Option<String> = col(row, "track_id")?;
    Ok(DeferredTask {
        id: col(row, "id")?,
        kind: TaskKind::parse(&col::<String>(row, "kind")?)?,
        user_id: UserId::from_uuid(col(row, "user_id")?),
        track_id: track.map(TrackId::try_from).transpose().map_err(Error::internal)?,
        occurred_at: time(col(row, "occurred_at")?)?,
        status: TaskStatus::parse(&col::<String>(row, "status")?)?,
        attempts: col::<i64>(row, "attempts")? as u32,
        available_at: time(col(row, "available_at")?)?,
        last_error: col(row, "last_error")?,
        leased_until: opt_time(col(row, "leased_until")?)?,
        updated_at: time(col(row, "updated_at")?)?,
    })
}

fn enqueue(conn: &Connection, kind: TaskKind, user: UserId, track: Option<&TrackId>, now: DateTime<Utc>) -> Result<()> {
    execute(
        conn,
        "insert into deferred_tasks (kind, user_id, track_id, occurred_at, available_at, created_at, updated_at) \
         values (?1, ?2, ?3, ?4, ?4, ?4, ?4)",
        params![kind.as_str(), user.as_uuid(), track.map(TrackId::as_str), millis(now)],
    )?;
    Ok(())
}

fn revoke_sessions(conn: &Connection, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64> {
    execute(
        conn,
        "update sessions set revoked_at = ?1 \
         where user_id = ?2 and revoked_at is null and (?3 is null or id <> ?3)",
        params![millis(now), user.as_uuid(), except.map(|s| s.as_uuid())],
    )
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, record: &UserRecord) -> Result<()> {
        let record = record.clone();
        self.write(move |conn| {
            let u = &record.user;
            execute(
                conn,
                "insert into users (id, username, email, password_hash, role, disabled_at, created_at, updated_at, \
                 credential_version) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    u.id.as_uuid(),
                    u.username.as_str(),
                    u.email.as_str(),
                    record.password_hash,
                    u.role.as_str(),
                    u.disabled_at.map(millis),
                    millis(u.created_at),
                    millis(u.updated_at),
                    record.credential_version,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>> {
        self.read(|conn| match key {
            UserKey::Id(id) => query_opt(conn, "select * from users where id = ?1", [id.as_uuid()], user_record),
            UserKey::Username(name) => {
                query_opt(conn, "select * from users where lower(username) = ?1", [name.folded()], user_record)
            }
            UserKey::Email(email) => {
                query_opt(conn, "select * from users where email = ?1", [email.as_str()], user_record)
            }
        })
    }

    async fn update_user(&self, id: UserId, changes: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        let changes = changes.clone();
        self.write(move |conn| {
            let record = query_opt(
                conn,
                "update users set \
                   username = coalesce(?2, username), \
                   email = coalesce(?3, email), \
                   password_hash = coalesce(?4, password_hash), \
                   credential_version = credential_version + (?4 is not null), \
                   updated_at = ?5 \
                 where id = ?1 and (?6 is null or credential_version = ?6) \
                 returning *",
                params![
                    id.as_uuid(),
                    changes.username.as_ref().map(|u| u.as_str()),
                    changes.email.as_ref().map(|e| e.as_str()),
                    changes.password_hash.as_deref(),
                    millis(now),
                    changes.expected_credential_version,
                ],
                user_record,
            )?;
            if record.is_some() && changes.password_hash.is_some() {
                revoke_sessions(conn, id, changes.keep_session, now)?;
            }
            Ok(record)
        })
        .await
    }

    async fn reserve_login_attempt(
        &self,
        id: UserId,
        now: DateTime<Utc>,
        lock_until: LockRule,
    ) -> Result<Option<LoginAttempt>> {
        self.write(move |conn| {
            let count = query_opt(
                conn,
                "update users set failed_logins = failed_logins + 1 \
                 where id = ?1 and (locked_until is null or locked_until <= ?2) returning failed_logins",
                params![id.as_uuid(), millis(now)],
                |row| col::<i64>(row, "failed_logins"),
            )?;
            let Some(count) = count else {
                let locked = query_opt(conn, "select locked_until from users where id = ?1", [id.as_uuid()], |row| {
                    opt_time(col(row, "locked_until")?)
                })?;
                return Ok(locked.map(|until| LoginAttempt::Locked { until: until.unwrap_or(now) }));
            };
            let failures = count as u32;
            if let Some(until) = lock_until(failures) {
                execute(
                    conn,
                    "update users set locked_until = max(coalesce(locked_until, 0), ?2) where id = ?1",
                    params![id.as_uuid(), millis(until)],
                )?;
            }
            Ok(Some(LoginAttempt::Allowed { failures }))
        })
        .await
    }

    async fn reset_login_failures(&self, id: UserId) -> Result<()> {
        self.write(move |conn| {
            execute(conn, "update users set failed_logins = 0, locked_until = null where id = ?1", [id.as_uuid()])?;
            Ok(())
        })
        .await
    }

    async fn set_role(&self, id: UserId, role: Role, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |conn| {
            let current = query_opt(conn, "select role from users where id = ?1", [id.as_uuid()], |row| {
                col::<String>(row, "role")
            })?;
            match current {
                None => Ok(false),
                Some(current) if current == role.as_str() => Ok(true),
                Some(_) => {
                    execute(
                        conn,
                        "update users set role = ?2, credential_version = credential_version + 1, updated_at = ?3 \
                         where id = ?1",
                        params![id.as_uuid(), role.as_str(), millis(now)],
                    )?;
                    revoke_sessions(conn, id, None, now)?;
                    Ok(true)
                }
            }
        })
        .await
    }

    async fn set_disabled(&self, id: UserId, disabled: bool, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |conn| {
            let changed = execute(
                conn,
                "update users set disabled_at = case when ?2 then coalesce(disabled_at, ?3) end, \
                 credential_version = credential_version + ?2, updated_at = ?3 \
                 where id = ?1",
                params![id.as_uuid(), disabled, millis(now)],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            if disabled {
                revoke_sessions(conn, id, None, now)?;
            }
            Ok(true)
        })
        .await
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |conn| {
            // Sessions and favorites go with the user by `on delete cascade`.
            if execute(conn, "delete from users where id = ?1", [id.as_uuid()])? == 0 {
                return Ok(false);
            }
            enqueue(conn, TaskKind::UserDeleted, id, None, now)?;
            Ok(true)
        })
        .await
    }

    async fn list_users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        // A plain range (the nil UUID sorts first) keeps the scan on the index
        // at any depth; `?1 is null or …` would scan from the start.
        self.read(|conn| {
            query_all(
                conn,
                "select * from users where id > ?1 order by id limit ?2",
                params![after.map_or(uuid::Uuid::nil(), |a| a.as_uuid()), i64::from(limit)],
                |row| user_record(row).map(|r| r.user),
            )
        })
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn open_session(&self, login: &NewSession) -> Result<bool> {
        let login = login.clone();
        self.write(move |conn| {
            let s = &login.session;
            let current = execute(
                conn,
                "update users set failed_logins = 0, locked_until = null, \
                   password_hash = coalesce(?3, password_hash) \
                 where id = ?1 and credential_version = ?2 and disabled_at is null",
                params![s.user_id.as_uuid(), login.credential_version, login.rehash],
            )?;
            if current == 0 {
                return Ok(false);
            }
            execute(
                conn,
                "insert into sessions (id, user_id, refresh_jti, previous_jti, rotated_at, created_at, last_used_at, \
                 expires_at, revoked_at, user_agent, ip) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    s.id.as_uuid(),
                    s.user_id.as_uuid(),
                    s.refresh_jti,
                    s.previous_jti,
                    s.rotated_at.map(millis),
                    millis(s.created_at),
                    millis(s.last_used_at),
                    millis(s.expires_at),
                    s.revoked_at.map(millis),
                    s.user_agent,
                    s.ip,
                ],
            )?;
            Ok(true)
        })
        .await
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        self.read(|conn| query_opt(conn, "select * from sessions where id = ?1", [id.as_uuid()], session_record))
    }

    async fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        self.read(|conn| {
            query_opt(
                conn,
                "select u.* from sessions s join users u on u.id = s.user_id \
                 where s.id = ?1 and s.user_id = ?2 and s.revoked_at is null and s.expires_at > ?3",
                params![id.as_uuid(), user.as_uuid(), millis(now)],
                user_record,
            )
        })
    }

    async fn rotate_session(&self, r: &Rotation) -> Result<bool> {
        let r = r.clone();
        self.write(move |conn| {
            let changed = execute(
                conn,
                "update sessions set previous_jti = refresh_jti, refresh_jti = ?3, rotated_at = ?4, \
                 last_used_at = ?4, expires_at = ?5 where id = ?1 and refresh_jti = ?2 and revoked_at is null",
                params![r.session.as_uuid(), r.expected_jti, r.new_jti, millis(r.now), millis(r.expires_at)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool> {
        self.write(move |conn| {
            let changed = execute(
                conn,
                "update sessions set revoked_at = ?2 where id = ?1 and revoked_at is null",
                params![id.as_uuid(), millis(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64> {
        self.write(move |conn| revoke_sessions(conn, user, except, now)).await
    }
}

#[async_trait]
impl FavoriteStore for SqliteStore {
    async fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let tracks = tracks.to_vec();
        self.write(move |conn| {
            let mut added = 0;
            for track in &tracks {
                let inserted = execute(
                    conn,
                    "insert into favorites (user_id, track_id, created_at) values (?1, ?2, ?3) \
                     on conflict (user_id, track_id) do nothing",
                    params![user.as_uuid(), track.as_str(), millis(now)],
                )?;
                if inserted == 1 {
                    enqueue(conn, TaskKind::FavoriteAdded, user, Some(track), now)?;
                    added += 1;
                }
            }
            Ok(added)
        })
        .await
    }

    async fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let tracks = tracks.to_vec();
        self.write(move |conn| {
            let mut removed = 0;
            for track in &tracks {
                let deleted = execute(
                    conn,
                    "delete from favorites where user_id = ?1 and track_id = ?2",
                    params![user.as_uuid(), track.as_str()],
                )?;
                if deleted == 1 {
                    enqueue(conn, TaskKind::FavoriteRemoved, user, Some(track), now)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn favorites_contain(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>> {
        self.read(|conn| {
            tracks
                .iter()
                .map(|track| {
                    let found = query_opt(
                        conn,
                        "select 1 from favorites where user_id = ?1 and track_id = ?2",
                        params![user.as_uuid(), track.as_str()],
                        |_| Ok(()),
                    )?;
                    Ok(found.is_some())
                })
                .collect()
        })
    }

    async fn list_favorites(&self, user: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>> {
        self.read(|conn| {
            query_all(
                conn,
                "select id, track_id, created_at from favorites where user_id = ?1 and id < ?2 \
                 order by id desc limit ?3",
                params![user.as_uuid(), before.unwrap_or(i64::MAX), i64::from(limit)],
                |row| {
                    Ok(Favorite {
                        seq: col(row, "id")?,
                        track_id: col::<String>(row, "track_id")?.try_into().map_err(Error::internal)?,
                        added_at: time(col(row, "created_at")?)?,
                    })
                },
            )
        })
    }
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeferredTask>> {
        self.read(|conn| {
            query_all(
                conn,
                "select * from deferred_tasks where (?1 is null or status = ?1) and id > ?2 \
                 order by id limit ?3",
                params![status.map(|s| s.as_str()), after.unwrap_or(0), i64::from(limit)],
                task_record,
            )
        })
    }

    async fn claim_tasks(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Claim> {
        let lease_id = uuid::Uuid::now_v7();
        // One statement on the single writer: atomic against other in-process
        // claimers, and SQLite's write lock makes it so against other processes.
        // The blocker check is pinned to the per-user index: left to itself,
        // SQLite walked deferred_tasks_status_idx through every earlier pending
        // task of every user, so a claim over a backlog of 200k tasks with
        // every user held ran for over ten minutes; pinned, it takes 0.16 s,
        // and a claim of 10,000 due tasks 20 ms instead of 5.2 s.
        let mut tasks = self
            .write(move |conn| {
                query_all(
                    conn,
                    "update deferred_tasks set leased_until = ?2, lease_id = ?3, updated_at = ?1 \
                     where id in ( \
                       select t.id from deferred_tasks t \
                       where t.status = 'pending' and t.available_at <= ?1 \
                         and (t.leased_until is null or t.leased_until <= ?1) \
                         and not exists ( \
                           select 1 from deferred_tasks e indexed by deferred_tasks_user_pending_idx \
                           where e.user_id = t.user_id and e.status = 'pending' and e.id < t.id \
                             and (e.available_at > ?1 or (e.leased_until is not null and e.leased_until > ?1))) \
                       order by t.id limit ?4) \
                     returning *",
                    params![millis(now), millis(lease_until), lease_id, i64::from(limit)],
                    task_record,
                )
            })
            .await?;
        tasks.sort_by_key(|t| t.id);
        Ok(Claim { lease_id, tasks })
    }

    async fn complete_tasks(&self, lease_id: uuid::Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let ids = json_ids(ids);
        self.write(move |conn| {
            execute(
                conn,
                "update deferred_tasks set status = 'done', leased_until = null, lease_id = null, updated_at = ?3 \
                 where lease_id = ?1 and status = 'pending' and id in (select value from json_each(?2))",
                params![lease_id, ids, millis(now)],
            )
        })
        .await
    }

    async fn fail_task(
        &self,
        lease_id: uuid::Uuid,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let error = error.to_owned();
        self.write(move |conn| {
            let changed = execute(
                conn,
                "update deferred_tasks set attempts = attempts + 1, last_error = ?3, leased_until = null, \
                   lease_id = null, status = case when ?4 is null then 'dead' else 'pending' end, \
                   available_at = coalesce(?4, available_at), updated_at = ?5 \
                 where id = ?2 and lease_id = ?1 and status = 'pending'",
                params![lease_id, id, error, retry_at.map(millis), millis(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_tasks(&self, lease_id: uuid::Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let ids = json_ids(ids);
        self.write(move |conn| {
            execute(
                conn,
                "update deferred_tasks set leased_until = null, lease_id = null, updated_at = ?3 \
                 where lease_id = ?1 and status = 'pending' and id in (select value from json_each(?2))",
                params![lease_id, ids, millis(now)],
            )
        })
        .await
    }

    async fn retry_dead_tasks(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64> {
        self.write(move |conn| {
            execute(
                conn,
                "update deferred_tasks set status = 'pending', attempts = 0, available_at = ?2, updated_at = ?2 \
                 where status = 'dead' and (?1 is null or id = ?1)",
                params![id, millis(now)],
            )
        })
        .await
    }

    async fn count_tasks(&self) -> Result<TaskCounts> {
        self.read(|conn| {
            let mut counts = TaskCounts::default();
            let rows =
                query_all(conn, "select status, count(*) as n from deferred_tasks group by status", [], |row| {
                    Ok((col::<String>(row, "status")?, col::<i64>(row, "n")?))
                })?;
            for (status, n) in rows {
                counts.add(TaskStatus::parse(&status)?, n as u64);
            }
            Ok(counts)
        })
    }

    async fn count_waiting_tasks(&self) -> Result<WaitingTasks> {
        self.read(|conn| {
            query_opt(
                conn,
                "select (select count(*) from deferred_tasks where status = 'pending') as pending, \
                        (select count(*) from deferred_tasks where status = 'dead') as dead",
                [],
                |row| {
                    Ok(WaitingTasks {
                        pending: col::<i64>(row, "pending")? as u64,
                        dead: col::<i64>(row, "dead")? as u64,
                    })
                },
            )?
            .ok_or_else(|| Error::internal("count returned no row"))
        })
    }

    async fn purge_done_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.write(move |conn| {
            // Walks deferred_tasks_status_idx from the oldest done task.
            execute(
                conn,
                "delete from deferred_tasks where id in (select id from deferred_tasks \
                 where status = 'done' and updated_at < ?1 order by id limit ?2)",
                params![millis(before), i64::from(limit)],
            )
        })
        .await
    }
}

/// Ids as a JSON array, for `id in (select value from json_each(?))`.
fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, e: &AuditRecord) -> Result<()> {
        let e = e.clone();
        self.write(move |conn| {
            execute(
                conn,
                "insert into audit_events (created_at, event, user_id, ip, user_agent, detail) \
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
                params![millis(e.created_at), e.event, e.user_id.map(|u| u.as_uuid()), e.ip, e.user_agent, e.detail],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, user: Option<UserId>, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        self.read(|conn| {
            query_all(
                conn,
                "select * from audit_events where (?1 is null or user_id = ?1) and id < ?2 \
                 order by id desc limit ?3",
                params![user.map(|u| u.as_uuid()), before.unwrap_or(i64::MAX), i64::from(limit)],
                |row| {
                    Ok(AuditRecord {
                        id: col(row, "id")?,
                        created_at: time(col(row, "created_at")?)?,
                        event: col(row, "event")?,
                        user_id: col::<Option<uuid::Uuid>>(row, "user_id")?.map(UserId::from_uuid),
                        ip: col(row, "ip")?,
                        user_agent: col(row, "user_agent")?,
                        detail: col(row, "detail")?,
                    })
                },
            )
        })
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn get_or_insert_secret(&self, name: &str, candidate: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>> {
        let (name, candidate) = (name.to_owned(), candidate.to_vec());
        // Insert-if-absent then read: whoever inserts first wins, everyone reads the winner.
        self.write(move |conn| {
            execute(
                conn,
                "insert into service_secrets (name, value, created_at) values (?1, ?2, ?3) \
                 on conflict (name) do nothing",
                params![name, candidate, millis(now)],
            )?;
            query_opt(conn, "select value from service_secrets where name = ?1", [&name], |row| col(row, "value"))?
                .ok_or_else(|| Error::internal(format!("secret {name:?} vanished")))
        })
        .await
    }
}

/// The migrations, embedded at build time by sqlx's macro; applied here with
/// sqlx's bookkeeping table, so a database migrated by either stays valid.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "create table if not exists _sqlx_migrations ( \
           version bigint primary key, description text not null, \
           installed_on timestamp not null default current_timestamp, success boolean not null, \
           checksum blob not null, execution_time bigint not null)",
    )
    .map_err(map_err)?;
    let applied = query_all(conn, "select version, success, checksum from _sqlx_migrations", [], |row| {
        Ok((col::<i64>(row, "version")?, col::<bool>(row, "success")?, col::<Vec<u8>>(row, "checksum")?))
    })?;
    for migration in MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()) {
        match applied.iter().find(|(version, ..)| *version == migration.version) {
            Some((_, false, _)) => {
                return Err(Error::internal(format!(
                    "migration {} failed earlier; repair it by hand",
                    migration.version
                )));
            }
            Some((_, true, checksum)) if checksum.as_slice() != &*migration.checksum => {
                return Err(Error::internal(format!(
                    "migration {} was applied but has since been changed",
                    migration.version
                )));
            }
            Some(_) => {}
            None => {
                let started = Instant::now();
                conn.execute_batch(migration.sql.as_str()).map_err(map_err)?;
                execute(
                    conn,
                    "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
                     values (?1, ?2, true, ?3, ?4)",
                    params![
                        migration.version,
                        &*migration.description,
                        &*migration.checksum,
                        started.elapsed().as_nanos() as i64
                    ],
                )?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        // One group, one transaction: a failing migration leaves nothing half-applied.
        self.write(migrate).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|conn| conn.execute_batch("select 1").map_err(map_err))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

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
                username: name.to_owned().try_into().unwrap(),
                email: format!("{name}@example.com").try_into().unwrap(),
                role: crate::domain::Role::User,
                disabled_at: None,
                created_at: now,
                updated_at: now,
            },
            password_hash: "x".into(),
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
        store.insert_user(&record("taken")).await.unwrap();
        let writes = (0..200).map(|i| {
            let store = store.clone();
            // Every third one collides with the existing username.
            let name = if i % 3 == 0 { "TAKEN".to_owned() } else { format!("user{i}") };
            tokio::spawn(async move { store.insert_user(&record(&name)).await })
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
        assert_eq!(store.list_users(None, 1000).await.unwrap().len(), 1 + 133);
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
        assert_eq!(applied as usize, super::MIGRATOR.iter().count());
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
