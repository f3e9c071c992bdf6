//! The audit log: every state change and every PII read, appended through
//! [`append`] and nothing else.

use chrono::{DateTime, Utc};
use glassguard_protocol::api::AuditEntry;
use glassguard_protocol::{Role, UserId};
use sqlx::AnyConnection;

use super::{Result, Store, from_ms, get, ms, parse_opt, unwire_opt};

/// What one audit entry records.
#[derive(Clone, Debug, Default)]
pub struct AuditRecord {
    /// Who (none for anonymous callers).
    pub actor_id: Option<UserId>,
    /// Their role.
    pub actor_role: Option<Role>,
    /// What, as `noun.verb` (`claim.read`, `claim.approve`).
    pub action: String,
    /// The resource's type.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
}

/// The single append path. Runs on whatever connection the caller holds, so a
/// state change and its audit entry commit together.
pub async fn append(conn: &mut AnyConnection, at: DateTime<Utc>, rec: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_role, action, resource_type, resource_id, request_id, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(ms(at))
    .bind(rec.actor_id.map(|i| i.to_string()))
    .bind(rec.actor_role.map(|r| r.as_str().to_string()))
    .bind(rec.action.clone())
    .bind(rec.resource_type.clone())
    .bind(rec.resource_id.clone())
    .bind(rec.request_id.clone())
    .bind(rec.ip.clone())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Appends one entry in its own transaction (for reads, which change nothing else).
    pub async fn audit(&self, at: DateTime<Utc>, rec: &AuditRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        append(&mut tx, at, rec).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Entries, newest first, optionally for one resource.
    pub async fn audit_entries(
        &self,
        resource_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = match resource_id {
            Some(r) => {
                sqlx::query(
                    "SELECT * FROM audit_log WHERE resource_id = $1 ORDER BY seq DESC LIMIT $2",
                )
                .bind(r.to_string())
                .bind(limit)
                .fetch_all(self.reader())
                .await?
            }
            None => {
                sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: get(r, "seq")?,
                    at: from_ms(get(r, "at")?)?,
                    actor_id: parse_opt(r, "actor_id")?,
                    actor_role: unwire_opt(r, "actor_role")?,
                    action: get(r, "action")?,
                    resource_type: get(r, "resource_type")?,
                    resource_id: get(r, "resource_id")?,
                    request_id: get(r, "request_id")?,
                    ip: get(r, "ip")?,
                })
            })
            .collect()
    }
}
