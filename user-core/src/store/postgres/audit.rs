//! [`AuditStore`] on PostgreSQL.

use async_trait::async_trait;
use uuid::Uuid;

use super::PostgresStore;
use super::rows::{get, map_err};
use crate::domain::UserId;
use crate::error::Result;
use crate::store::{AuditFilter, AuditRecord, AuditStore};

#[async_trait]
impl AuditStore for PostgresStore {
    async fn record_audit(&self, e: &AuditRecord) -> Result<()> {
        sqlx::query(
            "insert into audit_events (created_at, event, user_id, actor_id, ip, user_agent, detail) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.created_at)
        .bind(&e.event)
        .bind(e.user_id.map(|u| u.as_uuid()))
        .bind(e.actor_id.map(|u| u.as_uuid()))
        .bind(e.ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.detail.as_deref())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "select * from audit_events where ($1::uuid is null or user_id = $1) and ($2::text is null or event = $2) \
             and id < $3 order by id desc limit $4",
        )
        .bind(filter.user.map(|u| u.as_uuid()))
        .bind(filter.event.as_deref())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let user: Option<Uuid> = get(row, "user_id")?;
                let actor: Option<Uuid> = get(row, "actor_id")?;
                Ok(AuditRecord {
                    id: get(row, "id")?,
                    created_at: get(row, "created_at")?,
                    event: get(row, "event")?,
                    user_id: user.map(UserId::from_uuid),
                    actor_id: actor.map(UserId::from_uuid),
                    ip: get(row, "ip")?,
                    user_agent: get(row, "user_agent")?,
                    detail: get(row, "detail")?,
                })
            })
            .collect()
    }
}
