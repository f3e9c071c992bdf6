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
    append_many(conn, &[(at, rec.clone())]).await
}

/// Rows per multi-row INSERT. Fixed, so the statement is prepared once and
/// cached (a remainder goes row by row through the one-row statement); and
/// small, because SQLite finds a `$N` parameter's name by a linear scan, so
/// binding a statement costs the square of its parameter count.
const ROWS_PER_INSERT: usize = 16;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_log (at, actor_id, actor_role, action, resource_type, resource_id, request_id, ip) VALUES ",
    );
    for i in 0..rows {
        let b = i * 8;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8
        ));
    }
    sql
}

static INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
static INSERT_MANY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));

/// Appends several entries, [`ROWS_PER_INSERT`] rows per statement (the
/// writer's batches).
async fn append_many(
    conn: &mut AnyConnection,
    entries: &[(DateTime<Utc>, AuditRecord)],
) -> Result<()> {
    let chunks = entries.chunks_exact(ROWS_PER_INSERT);
    let rest = chunks.remainder();
    for chunk in chunks {
        insert(conn, &INSERT_MANY, chunk).await?;
    }
    for one in rest.chunks(1) {
        insert(conn, &INSERT_ONE, one).await?;
    }
    Ok(())
}

async fn insert(
    conn: &mut AnyConnection,
    sql: &'static str,
    rows: &[(DateTime<Utc>, AuditRecord)],
) -> Result<()> {
    let mut q = sqlx::query(sql);
    for (at, rec) in rows {
        q = q
            .bind(ms(*at))
            .bind(rec.actor_id.map(|i| i.to_string()))
            .bind(rec.actor_role.map(|r| r.as_str().to_string()))
            .bind(rec.action.clone())
            .bind(rec.resource_type.clone())
            .bind(rec.resource_id.clone())
            .bind(rec.request_id.clone())
            .bind(rec.ip.clone());
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// A message to the audit writer.
#[derive(Debug)]
pub(crate) enum AuditMsg {
    /// An entry to append.
    Entry(DateTime<Utc>, AuditRecord),
    /// Answer once everything sent before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Largest batch the writer appends in one transaction.
const AUDIT_BATCH: usize = 500;

impl Store {
    /// Appends one entry for a read (which changes nothing else). When the
    /// audit writer runs, entries are batched into one transaction per burst
    /// (reads would otherwise queue behind SQLite's single writer); the
    /// append path is the same [`append`].
    pub async fn audit(&self, at: DateTime<Utc>, rec: &AuditRecord) -> Result<()> {
        if let Some(tx) = self.audit_tx.get()
            && tx.send(AuditMsg::Entry(at, rec.clone())).await.is_ok()
        {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        append(&mut tx, at, rec).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Waits until every entry sent so far is written.
    pub async fn flush_audit(&self) {
        if let Some(tx) = self.audit_tx.get() {
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx.send(AuditMsg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Starts the batching audit writer (once per store).
    pub fn start_audit_writer(&self) -> Option<tokio::task::JoinHandle<()>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AuditMsg>(10_000);
        self.audit_tx.set(tx).ok()?;
        let store = self.clone();
        Some(tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < AUDIT_BATCH {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let mut waiting = Vec::new();
                let entries: Vec<(DateTime<Utc>, AuditRecord)> = batch
                    .into_iter()
                    .filter_map(|m| match m {
                        AuditMsg::Entry(at, rec) => Some((at, rec)),
                        AuditMsg::Flush(done) => {
                            waiting.push(done);
                            None
                        }
                    })
                    .collect();
                for attempt in 0..3 {
                    match store.append_batch(&entries).await {
                        Ok(()) => break,
                        Err(e) if attempt < 2 => {
                            tracing::warn!(error = %e, "audit batch not written; retrying");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, entries = entries.len(), "audit batch lost")
                        }
                    }
                }
                for done in waiting {
                    let _ = done.send(());
                }
            }
        }))
    }

    async fn append_batch(&self, entries: &[(DateTime<Utc>, AuditRecord)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        append_many(&mut tx, entries).await?;
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
