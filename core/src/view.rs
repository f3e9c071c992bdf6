//! The device's view of its own data, kept for offline use.
//!
//! Two kinds of rows live here:
//!
//! - **The server's view** (policies, claims, jobs, vouchers): what the
//!   server lets this user see, as the server last said it was. Only a pull
//!   writes it ([`apply_change`]), each page in the same transaction as the
//!   cursor; a resync or a change of user [`clear`]s it. The server decides
//!   what each role sees: a shop its sales' policies, a customer their
//!   policies, claims and vouchers, a technician their allocated jobs.
//! - **Local records** ([`Local`]): what this device wrote and the server
//!   has not reflected back yet: sales, claim drafts, job outcomes. Each
//!   points at its outbox row, which gives its [`SyncMark`]. Once the row is
//!   done and a later pull has brought the server's version, the local
//!   record is dropped ([`settle`]); a refused one stays, with the reason,
//!   until the user dismisses it (a refused draft goes back to editing).
//!
//! The plan catalog is cached separately (`GET /v1/plans`) and survives a
//! resync: it is the same for everyone.

use chrono::{DateTime, Utc};
use glassguard_protocol::api::{Claim, Job, Plan, Policy, Voucher};
use glassguard_protocol::sync::Change;
use glassguard_protocol::{ErrorCode, Imei};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::store::meta_delete;

/// The meta key of the pull cursor.
pub(crate) const CURSOR: &str = "pull_cursor";

/// Where a local record stands with the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMark {
    /// A draft: not submitted, lives only on this device.
    Draft,
    /// Waiting to be sent.
    Queued,
    /// Accepted by the server; its version arrives with the next pull.
    Sent,
    /// Refused by the server.
    Refused {
        /// The stable code, when the server gave one.
        code: Option<ErrorCode>,
        /// The server's sentence for the user.
        message: String,
    },
}

/// Something this device wrote, with where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Local<T> {
    /// What was written.
    pub value: T,
    /// Where it stands.
    pub sync: SyncMark,
    /// Its outbox row, once submitted.
    pub client_seq: Option<u64>,
    /// When it was last written (device clock; display only).
    pub recorded_at: DateTime<Utc>,
}

/// The kinds of local records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sale,
    Draft,
    Outcome,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "sale",
            Kind::Draft => "draft",
            Kind::Outcome => "outcome",
        }
    }
}

fn upsert(
    tx: &Transaction<'_>,
    table: &str,
    id: &str,
    sort_key: &str,
    body: &impl Serialize,
) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (id, sort_key, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET sort_key = excluded.sort_key, body = excluded.body"
        ),
        params![id, sort_key, serde_json::to_string(body)?],
    )?;
    Ok(())
}

/// Stores one pulled change (the entity's current state).
pub(crate) fn apply_change(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change {
        Change::Policy(p) => upsert(
            tx,
            "policies",
            &p.id.to_string(),
            &p.created_at.to_rfc3339(),
            p,
        ),
        Change::Claim(c) => upsert(
            tx,
            "claims",
            &c.id.to_string(),
            &c.updated_at.to_rfc3339(),
            c,
        ),
        Change::Job(j) => upsert(
            tx,
            "jobs",
            &j.claim.id.to_string(),
            &j.claim.updated_at.to_rfc3339(),
            j,
        ),
        Change::Voucher(v) => upsert(
            tx,
            "vouchers",
            &v.id.to_string(),
            &v.expires_at.to_rfc3339(),
            v,
        ),
    }
}

/// Drops the cached server view and the pull cursor (not the outbox, not
/// local records, not the plan catalog).
pub(crate) fn clear(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "DELETE FROM policies; DELETE FROM claims; DELETE FROM jobs; DELETE FROM vouchers;",
    )?;
    meta_delete(tx, CURSOR)
}

/// Drops local records whose outbox row is done: the pull that just
/// finished brought the server's version of them.
pub(crate) fn settle(tx: &Transaction<'_>) -> Result<usize> {
    Ok(tx.execute(
        "DELETE FROM local_records WHERE client_seq IN
            (SELECT client_seq FROM outbox WHERE state = 'done')",
        [],
    )?)
}

fn list<T: DeserializeOwned>(conn: &Connection, table: &str, order: &str) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT body FROM {table} ORDER BY {order}"))?;
    let bodies = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(Error::from))
        .collect()
}

fn get<T: DeserializeOwned>(conn: &Connection, table: &str, id: &str) -> Result<Option<T>> {
    conn.query_row(
        &format!("SELECT body FROM {table} WHERE id = ?1"),
        [id],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .map(|b| serde_json::from_str(&b).map_err(Error::from))
    .transpose()
}

/// Cached policies, newest first.
pub(crate) fn policies(conn: &Connection) -> Result<Vec<Policy>> {
    list(conn, "policies", "sort_key DESC, id DESC")
}

/// Whether a sale on this device (not refused) or an active cached policy
/// already covers `imei`. Uses the IMEI indexes of schema version 2: the
/// expressions and the `kind = 'sale'` literal must match them.
pub(crate) fn imei_covered(conn: &Connection, imei: &Imei) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (
             SELECT 1 FROM local_records l LEFT JOIN outbox o ON o.client_seq = l.client_seq
             WHERE l.kind = 'sale' AND json_extract(l.body, '$.imei') = ?1
               AND (l.client_seq IS NULL OR o.state IS NULL
                    OR o.state NOT IN ('rejected', 'dismissed'))
         ) OR EXISTS (
             SELECT 1 FROM policies
             WHERE json_extract(body, '$.imei') = ?1
               AND json_extract(body, '$.status') = 'active'
         )",
    )?;
    Ok(stmt.query_row([imei.as_str()], |r| r.get(0))?)
}

/// One cached policy.
pub(crate) fn policy(conn: &Connection, id: &str) -> Result<Option<Policy>> {
    get(conn, "policies", id)
}

/// Cached claims, most recently changed first.
pub(crate) fn claims(conn: &Connection) -> Result<Vec<Claim>> {
    list(conn, "claims", "sort_key DESC, id DESC")
}

/// One cached claim.
pub(crate) fn claim(conn: &Connection, id: &str) -> Result<Option<Claim>> {
    get(conn, "claims", id)
}

/// Cached jobs, most recently changed first.
pub(crate) fn jobs(conn: &Connection) -> Result<Vec<Job>> {
    list(conn, "jobs", "sort_key DESC, id DESC")
}

/// One cached job, by claim id.
pub(crate) fn job(conn: &Connection, claim_id: &str) -> Result<Option<Job>> {
    get(conn, "jobs", claim_id)
}

/// Cached vouchers, soonest to expire first.
pub(crate) fn vouchers(conn: &Connection) -> Result<Vec<Voucher>> {
    list(conn, "vouchers", "sort_key ASC, id ASC")
}

/// The cached plan catalog, in the server's order.
pub(crate) fn plans(conn: &Connection) -> Result<Vec<Plan>> {
    let mut stmt = conn.prepare_cached("SELECT body FROM plans ORDER BY position")?;
    let bodies = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(Error::from))
        .collect()
}

/// Replaces the cached plan catalog.
pub(crate) fn replace_plans(tx: &Transaction<'_>, plans: &[Plan]) -> Result<()> {
    tx.execute("DELETE FROM plans", [])?;
    for (i, p) in plans.iter().enumerate() {
        tx.execute(
            "INSERT INTO plans (id, position, body) VALUES (?1, ?2, ?3)",
            params![p.id, i as i64, serde_json::to_string(p)?],
        )?;
    }
    Ok(())
}

/// Writes a local record (insert or replace).
pub(crate) fn put_local<T: Serialize>(
    tx: &Transaction<'_>,
    kind: Kind,
    id: &str,
    value: &T,
    client_seq: Option<u64>,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO local_records (kind, id, body, client_seq, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body,
             client_seq = excluded.client_seq, recorded_at = excluded.recorded_at",
        params![
            kind.as_str(),
            id,
            serde_json::to_string(value)?,
            client_seq.map(|s| s as i64),
            now.to_rfc3339()
        ],
    )?;
    Ok(())
}

/// Deletes a local record. Returns whether there was one.
pub(crate) fn delete_local(tx: &Transaction<'_>, kind: Kind, id: &str) -> Result<bool> {
    Ok(tx.execute(
        "DELETE FROM local_records WHERE kind = ?1 AND id = ?2",
        [kind.as_str(), id],
    )? == 1)
}

/// After the user dismissed the refusal of row `client_seq`: a refused sale
/// or outcome goes away, a refused draft becomes an editable draft again.
pub(crate) fn forget_refused(tx: &Transaction<'_>, client_seq: u64) -> Result<()> {
    tx.execute(
        "DELETE FROM local_records WHERE client_seq = ?1 AND kind != 'draft'",
        [client_seq as i64],
    )?;
    tx.execute(
        "UPDATE local_records SET client_seq = NULL WHERE client_seq = ?1 AND kind = 'draft'",
        [client_seq as i64],
    )?;
    Ok(())
}

const LOCAL_SELECT: &str =
    "SELECT l.body, l.client_seq, l.recorded_at, o.state, o.reject_code, o.reject_message
     FROM local_records l LEFT JOIN outbox o ON o.client_seq = l.client_seq";

type LocalRaw = (
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn read_local<T: DeserializeOwned>(raw: LocalRaw) -> Result<Local<T>> {
    let (body, seq, at, state, code, message) = raw;
    let sync = match (seq, state.as_deref()) {
        (None, _) => SyncMark::Draft,
        (Some(_), Some("pending")) => SyncMark::Queued,
        (Some(_), Some("done")) => SyncMark::Sent,
        (Some(_), Some("rejected" | "dismissed")) => SyncMark::Refused {
            code: code.and_then(|c| serde_json::from_value(serde_json::Value::String(c)).ok()),
            message: message.unwrap_or_default(),
        },
        // The outbox row was pruned: it was done long ago.
        (Some(_), _) => SyncMark::Sent,
    };
    Ok(Local {
        value: serde_json::from_str(&body)?,
        sync,
        client_seq: seq.map(|s| s as u64),
        recorded_at: DateTime::parse_from_rfc3339(&at)
            .map_err(|_| Error::corrupt("local record time"))?
            .with_timezone(&Utc),
    })
}

fn local_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LocalRaw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Local records of one kind, newest first.
pub(crate) fn locals<T: DeserializeOwned>(conn: &Connection, kind: Kind) -> Result<Vec<Local<T>>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{LOCAL_SELECT} WHERE l.kind = ?1 ORDER BY l.recorded_at DESC, l.id DESC"
    ))?;
    let raws = stmt
        .query_map([kind.as_str()], local_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(read_local).collect()
}

/// One local record.
pub(crate) fn local<T: DeserializeOwned>(
    conn: &Connection,
    kind: Kind,
    id: &str,
) -> Result<Option<Local<T>>> {
    conn.query_row(
        &format!("{LOCAL_SELECT} WHERE l.kind = ?1 AND l.id = ?2"),
        [kind.as_str(), id],
        local_row,
    )
    .optional()?
    .map(read_local)
    .transpose()
}
