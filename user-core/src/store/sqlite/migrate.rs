//! The migration runner: sqlx's migrations and bookkeeping table, applied through rusqlite.

use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior, params};

use super::rows::{col, execute, map_err, query_all};
use crate::error::{Error, Result};

/// The migrations, embedded at build time by sqlx's macro; applied here with
/// sqlx's bookkeeping table, so a database migrated by either stays valid.
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Applies the pending migrations in one transaction (a failing one leaves
/// nothing half-applied), with foreign keys off so a migration may rebuild a
/// table others reference; they are checked before the commit.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("pragma foreign_keys = off").map_err(map_err)?;
    let applied = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err).and_then(|tx| {
        apply(&tx)?;
        let broken = query_all(&tx, "pragma foreign_key_check", [], |row| col::<String>(row, "table"))?;
        if let Some(table) = broken.first() {
            return Err(Error::internal(format!("a migration left rows of {table} without their parent")));
        }
        tx.commit().map_err(map_err)
    });
    conn.execute_batch("pragma foreign_keys = on").map_err(map_err)?;
    applied
}

fn apply(conn: &Connection) -> Result<()> {
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
