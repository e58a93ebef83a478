//! [`AuditStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use super::rows::{col, execute, millis, query_all, time};
use crate::domain::UserId;
use crate::error::Result;
use crate::store::{AuditFilter, AuditRecord, AuditStore};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, e: &AuditRecord) -> Result<()> {
        let e = e.clone();
        self.write(move |conn| {
            execute(
                conn,
                "insert into audit_events (created_at, event, user_id, actor_id, ip, user_agent, detail) \
                 values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    millis(e.created_at),
                    e.event,
                    e.user_id.map(|u| u.as_uuid()),
                    e.actor_id.map(|u| u.as_uuid()),
                    e.ip,
                    e.user_agent,
                    e.detail
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        let user = filter.user.map(|u| u.as_uuid());
        let event = filter.event.as_deref();
        self.read(|conn| {
            query_all(
                conn,
                "select * from audit_events where (?1 is null or user_id = ?1) and (?2 is null or event = ?2) \
                 and id < ?3 order by id desc limit ?4",
                params![user, event, before.unwrap_or(i64::MAX), i64::from(limit)],
                |row| {
                    Ok(AuditRecord {
                        id: col(row, "id")?,
                        created_at: time(col(row, "created_at")?)?,
                        event: col(row, "event")?,
                        user_id: col::<Option<uuid::Uuid>>(row, "user_id")?.map(UserId::from_uuid),
                        actor_id: col::<Option<uuid::Uuid>>(row, "actor_id")?.map(UserId::from_uuid),
                        ip: col(row, "ip")?,
                        user_agent: col(row, "user_agent")?,
                        detail: col(row, "detail")?,
                    })
                },
            )
        })
    }
}
