//! The audit log: every state change and every PII read, appended through
//! [`append`] and nothing else.
//!
//! The log is a hash chain. Entry `n` (its `seq`, dense from 1) stores
//! `prev_hash = hash_{n-1}` and `hash_n = SHA-256(hash_{n-1} || canonical_n)`,
//! where `hash_0` is 32 zero bytes and `canonical_n` is [`canonical`]'s byte
//! encoding of the entry. The chain's head (last seq and hash) lives in the
//! one-row `audit_head` table; every append locks it for the rest of its
//! transaction, so appends are serialized and a rolled-back transaction
//! leaves no gap. The database refuses UPDATE and DELETE on `audit_log`
//! (triggers); [`crate::audit`] signs checkpoints outside the database and
//! verifies the whole chain against them.

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
    /// The W3C trace context the client sent (`traceparent`), if any.
    pub traceparent: Option<String>,
}

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The bytes an entry's hash covers. Must not change shape: every stored
/// hash and signed checkpoint depends on it. A version byte (1), then `seq`
/// and `at` (epoch milliseconds) as 8-byte big-endian integers, then, in this
/// order, actor_id, actor_role, action, resource_type, resource_id,
/// request_id, ip, traceparent, each as one byte 0 (absent) or 1 followed by
/// its UTF-8 length as a 4-byte big-endian integer and the bytes.
pub fn canonical(seq: i64, at_ms: i64, rec: &AuditRecord) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, v: Option<&str>) {
        match v {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(128);
    out.push(1);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    let actor = rec.actor_id.map(|i| i.to_string());
    field(&mut out, actor.as_deref());
    field(&mut out, rec.actor_role.map(|r| r.as_str()));
    field(&mut out, Some(&rec.action));
    field(&mut out, Some(&rec.resource_type));
    field(&mut out, rec.resource_id.as_deref());
    field(&mut out, rec.request_id.as_deref());
    field(&mut out, rec.ip.as_deref());
    field(&mut out, rec.traceparent.as_deref());
    out
}

/// `SHA-256(prev || canonical)`.
pub fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    ctx.update(canonical);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

pub(crate) fn hash32(v: &[u8]) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| super::StoreError::Corrupt("audit hash is not 32 bytes".into()))
}

/// Locks the chain's head for the rest of the transaction and returns it.
/// The no-op UPDATE takes PostgreSQL's row lock (held to commit); SQLite has
/// one writer.
async fn lock_head(conn: &mut AnyConnection) -> Result<(i64, [u8; 32])> {
    let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = get(&row, "seq")?;
    let hash: Vec<u8> = get(&row, "hash")?;
    Ok((seq, hash32(&hash)?))
}

/// Chains the rows written before the chain existed (renumbered densely, in
/// their order) and creates the head. Runs once, inside the migration that
/// adds the chain, before the append-only triggers exist.
pub(crate) async fn chain_existing(conn: &mut AnyConnection) -> Result<()> {
    let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(&mut *conn)
        .await?;
    let mut prev = GENESIS;
    let mut n = 0i64;
    for r in &rows {
        n += 1;
        let old: i64 = get(r, "seq")?;
        let rec = record_of(r)?;
        let at: i64 = get(r, "at")?;
        let hash = chain_hash(&prev, &canonical(n, at, &rec));
        // Renumbering downwards in ascending order never collides.
        sqlx::query("UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(n)
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .bind(old)
            .execute(&mut *conn)
            .await?;
        prev = hash;
    }
    sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2)")
        .bind(n)
        .bind(prev.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The record a stored row holds.
pub(crate) fn record_of(r: &sqlx::any::AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        actor_id: parse_opt(r, "actor_id")?,
        actor_role: unwire_opt(r, "actor_role")?,
        action: get(r, "action")?,
        resource_type: get(r, "resource_type")?,
        resource_id: get(r, "resource_id")?,
        request_id: get(r, "request_id")?,
        ip: get(r, "ip")?,
        traceparent: get(r, "traceparent")?,
    })
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

/// Columns per inserted row.
const COLUMNS: usize = 12;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_log (seq, at, actor_id, actor_role, action, resource_type, resource_id, request_id, ip, traceparent, prev_hash, hash) VALUES ",
    );
    for i in 0..rows {
        let b = i * COLUMNS;
        if i > 0 {
            sql.push_str(", ");
        }
        let params: Vec<String> = (1..=COLUMNS).map(|c| format!("${}", b + c)).collect();
        sql.push('(');
        sql.push_str(&params.join(", "));
        sql.push(')');
    }
    sql
}

static INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
static INSERT_MANY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));

/// One entry ready to insert: its place in the chain and its hashes.
struct Chained<'a> {
    seq: i64,
    at: i64,
    rec: &'a AuditRecord,
    prev: [u8; 32],
    hash: [u8; 32],
}

/// Appends several entries, [`ROWS_PER_INSERT`] rows per statement (the
/// writer's batches), after the chain's head, and moves the head.
async fn append_many(
    conn: &mut AnyConnection,
    entries: &[(DateTime<Utc>, AuditRecord)],
) -> Result<()> {
    let (mut seq, mut prev) = lock_head(conn).await?;
    let mut chained = Vec::with_capacity(entries.len());
    for (at, rec) in entries {
        seq += 1;
        let at = ms(*at);
        let hash = chain_hash(&prev, &canonical(seq, at, rec));
        chained.push(Chained {
            seq,
            at,
            rec,
            prev,
            hash,
        });
        prev = hash;
    }
    let chunks = chained.chunks_exact(ROWS_PER_INSERT);
    let rest = chunks.remainder();
    for chunk in chunks {
        insert(conn, &INSERT_MANY, chunk).await?;
    }
    for one in rest.chunks(1) {
        insert(conn, &INSERT_ONE, one).await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(prev.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert(conn: &mut AnyConnection, sql: &'static str, rows: &[Chained<'_>]) -> Result<()> {
    let mut q = sqlx::query(sql);
    for Chained {
        seq,
        at,
        rec,
        prev,
        hash,
    } in rows
    {
        q = q
            .bind(*seq)
            .bind(*at)
            .bind(rec.actor_id.map(|i| i.to_string()))
            .bind(rec.actor_role.map(|r| r.as_str().to_string()))
            .bind(rec.action.clone())
            .bind(rec.resource_type.clone())
            .bind(rec.resource_id.clone())
            .bind(rec.request_id.clone())
            .bind(rec.ip.clone())
            .bind(rec.traceparent.clone())
            .bind(prev.to_vec())
            .bind(hash.to_vec());
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
        rows.iter().map(entry_of).collect()
    }
}

/// One stored entry with its place in the chain, as [`Store::audit_chain`] reads it.
#[derive(Clone, Debug)]
pub struct ChainRow {
    /// Its sequence number.
    pub seq: i64,
    /// When (epoch milliseconds).
    pub at: i64,
    /// What it records.
    pub record: AuditRecord,
    /// The stored previous hash.
    pub prev_hash: Vec<u8>,
    /// The stored hash.
    pub hash: Vec<u8>,
}

impl Store {
    /// The chain's head as committed: the last seq and its hash.
    pub async fn audit_head(&self) -> Result<(i64, [u8; 32])> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.reader())
            .await?;
        let hash: Vec<u8> = get(&row, "hash")?;
        Ok((get(&row, "seq")?, hash32(&hash)?))
    }

    /// Up to `limit` stored entries after `after`, in seq order.
    pub async fn audit_chain(&self, after: i64, limit: i64) -> Result<Vec<ChainRow>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChainRow {
                    seq: get(r, "seq")?,
                    at: get(r, "at")?,
                    record: record_of(r)?,
                    prev_hash: get::<Option<Vec<u8>>>(r, "prev_hash")?.unwrap_or_default(),
                    hash: get::<Option<Vec<u8>>>(r, "hash")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The entries about one resource, oldest first (the trace endpoint).
    pub async fn audit_trace(
        &self,
        resource_type: &str,
        resource_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE resource_type = $1 AND resource_id = $2 ORDER BY seq LIMIT $3",
        )
        .bind(resource_type.to_string())
        .bind(resource_id.to_string())
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(entry_of).collect()
    }
}

fn entry_of(r: &sqlx::any::AnyRow) -> Result<AuditEntry> {
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
        traceparent: get(r, "traceparent")?,
    })
}
