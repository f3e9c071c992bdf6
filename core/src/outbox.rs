//! The outbox: every command the device owes the server, in `client_seq` order.
//!
//! A command is written here in the same transaction as the local change it
//! belongs to ([`enqueue`] takes the caller's transaction). `client_seq` comes
//! from a counter in `meta` that only ever grows, allocated in that same
//! transaction, so seqs are gapless from 1 and never reused, even after rows
//! are pruned or dismissed.
//!
//! A row is `pending` until the server answers for it; then `done` (applied,
//! or a duplicate of an earlier apply) or `rejected` with the server's code
//! and message, kept for the UI until the user dismisses it. Because the
//! server answers in seq order, pending rows are always a suffix of the
//! queue, and a rejected row never blocks the rows after it.

use chrono::{DateTime, Utc};
use glassguard_protocol::ErrorCode;
use glassguard_protocol::sync::{Command, OutboxEntry};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{meta_get, meta_set};

/// Where a row is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowState {
    /// Not yet answered by the server.
    Pending,
    /// Applied by the server (now or earlier).
    Done,
    /// Refused by the server; kept for the user.
    Rejected {
        /// The stable code, when the server gave one.
        code: Option<ErrorCode>,
        /// The server's sentence for the user.
        message: String,
    },
    /// Refused, and the user has seen it.
    Dismissed,
}

/// One outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    /// Monotonic per device, from 1.
    pub client_seq: u64,
    /// Unique per mutation (UUIDv7).
    pub mutation_id: Uuid,
    /// The command.
    pub command: Command,
    /// State.
    pub state: RowState,
    /// Failed push attempts so far.
    pub attempts: u32,
    /// When the engine will try again after a failure (device clock; advisory).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last transport or server failure, for display.
    pub last_error: Option<String>,
    /// When it was recorded (device clock; display only).
    pub created_at: DateTime<Utc>,
}

impl OutboxRow {
    /// The row as it goes on the wire.
    pub fn entry(&self) -> OutboxEntry {
        OutboxEntry {
            client_seq: self.client_seq,
            mutation_id: self.mutation_id,
            command: self.command.clone(),
        }
    }
}

/// A command the server refused, for the UI.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The row's seq (pass it to `dismiss_rejected`).
    pub client_seq: u64,
    /// The row's mutation id.
    pub mutation_id: Uuid,
    /// The command that was refused.
    pub command: Command,
    /// The stable code, when the server gave one.
    pub code: Option<ErrorCode>,
    /// The server's sentence for the user.
    pub message: String,
    /// When the command was recorded (device clock; display only).
    pub created_at: DateTime<Utc>,
}

const LAST_SEQ: &str = "last_client_seq";
const COLUMNS: &str = "client_seq, mutation_id, payload, state, attempts, next_attempt_at, \
                       last_error, reject_code, reject_message, created_at";

/// Appends `command` with the next `client_seq`, inside the caller's transaction.
pub fn enqueue(tx: &Transaction<'_>, command: &Command, now: DateTime<Utc>) -> Result<OutboxRow> {
    let last: u64 = match meta_get(tx, LAST_SEQ)? {
        Some(v) => v
            .parse()
            .map_err(|_| Error::corrupt("outbox sequence counter"))?,
        None => 0,
    };
    let client_seq = last + 1;
    let mutation_id = Uuid::now_v7();
    let payload = serde_json::to_string(command)?;
    tx.execute(
        "INSERT INTO outbox (client_seq, mutation_id, command, payload, state, created_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        params![
            client_seq as i64,
            mutation_id.to_string(),
            command.name(),
            payload,
            now.to_rfc3339()
        ],
    )?;
    meta_set(tx, LAST_SEQ, &client_seq.to_string())?;
    Ok(OutboxRow {
        client_seq,
        mutation_id,
        command: command.clone(),
        state: RowState::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
        created_at: now,
    })
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::corrupt("outbox timestamp"))
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        client_seq: r.get(0)?,
        mutation_id: r.get(1)?,
        payload: r.get(2)?,
        state: r.get(3)?,
        attempts: r.get(4)?,
        next_attempt_at: r.get(5)?,
        last_error: r.get(6)?,
        reject_code: r.get(7)?,
        reject_message: r.get(8)?,
        created_at: r.get(9)?,
    })
}

struct RawRow {
    client_seq: i64,
    mutation_id: String,
    payload: String,
    state: String,
    attempts: i64,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
    reject_code: Option<String>,
    reject_message: Option<String>,
    created_at: String,
}

impl RawRow {
    fn into_row(self) -> Result<OutboxRow> {
        let state = match self.state.as_str() {
            "pending" => RowState::Pending,
            "done" => RowState::Done,
            "dismissed" => RowState::Dismissed,
            "rejected" => RowState::Rejected {
                code: parse_code(self.reject_code.as_deref()),
                message: self.reject_message.unwrap_or_default(),
            },
            other => return Err(Error::corrupt(format!("outbox state {other}"))),
        };
        Ok(OutboxRow {
            client_seq: u64::try_from(self.client_seq).map_err(|_| Error::corrupt("seq"))?,
            mutation_id: Uuid::parse_str(&self.mutation_id)
                .map_err(|_| Error::corrupt("mutation id"))?,
            command: serde_json::from_str(&self.payload)?,
            state,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: self
                .next_attempt_at
                .as_deref()
                .map(parse_time)
                .transpose()?,
            last_error: self.last_error,
            created_at: parse_time(&self.created_at)?,
        })
    }
}

fn parse_code(s: Option<&str>) -> Option<ErrorCode> {
    s.and_then(|s| serde_json::from_value(serde_json::Value::String(s.to_owned())).ok())
}

fn query(conn: &Connection, where_: &str, args: impl rusqlite::Params) -> Result<Vec<OutboxRow>> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE {where_}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(args, read_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(RawRow::into_row).collect()
}

/// The first `limit` pending rows, in seq order.
pub fn pending_batch(conn: &Connection, limit: usize) -> Result<Vec<OutboxRow>> {
    query(
        conn,
        "state = 'pending' ORDER BY client_seq LIMIT ?1",
        [limit as i64],
    )
}

/// Every pending row, in seq order.
pub fn pending(conn: &Connection) -> Result<Vec<OutboxRow>> {
    query(conn, "state = 'pending' ORDER BY client_seq", [])
}

/// Every row, in seq order.
#[cfg(test)]
pub fn all(conn: &Connection) -> Result<Vec<OutboxRow>> {
    query(conn, "1 = 1 ORDER BY client_seq", [])
}

/// Every refused row the user has not dismissed, oldest first.
pub fn rejected(conn: &Connection) -> Result<Vec<Rejection>> {
    query(conn, "state = 'rejected' ORDER BY client_seq", [])?
        .into_iter()
        .map(|r| match r.state {
            RowState::Rejected { code, message } => Ok(Rejection {
                client_seq: r.client_seq,
                mutation_id: r.mutation_id,
                command: r.command,
                code,
                message,
                created_at: r.created_at,
            }),
            _ => Err(Error::corrupt("rejected row without rejection")),
        })
        .collect()
}

/// `(pending, rejected)` row counts.
pub fn counts(conn: &Connection) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT
            (SELECT count(*) FROM outbox WHERE state = 'pending'),
            (SELECT count(*) FROM outbox WHERE state = 'rejected')",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// The lowest pending seq.
pub fn first_pending(conn: &Connection) -> Result<Option<u64>> {
    Ok(conn
        .query_row(
            "SELECT min(client_seq) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )?
        .map(|s| s as u64))
}

/// The highest seq ever allocated on this device (0 before the first command).
#[cfg(test)]
pub fn last_seq(conn: &Connection) -> Result<u64> {
    Ok(meta_get(conn, LAST_SEQ)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Marks a pending row done. Returns whether it was pending.
pub fn mark_done(tx: &Transaction<'_>, client_seq: u64) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE outbox SET state = 'done', next_attempt_at = NULL
         WHERE client_seq = ?1 AND state = 'pending'",
        [client_seq as i64],
    )? == 1)
}

/// Marks a pending row rejected with the server's reason. Returns whether it was pending.
pub fn mark_rejected(
    tx: &Transaction<'_>,
    client_seq: u64,
    code: Option<ErrorCode>,
    message: &str,
) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE outbox SET state = 'rejected', next_attempt_at = NULL,
                reject_code = ?2, reject_message = ?3
         WHERE client_seq = ?1 AND state = 'pending'",
        params![client_seq as i64, code.map(|c| c.as_str()), message],
    )? == 1)
}

/// Marks every pending row below `seq` done (the server says it has them).
pub fn mark_done_below(tx: &Transaction<'_>, seq: u64) -> Result<Vec<u64>> {
    let mut stmt = tx.prepare_cached(
        "UPDATE outbox SET state = 'done', next_attempt_at = NULL
         WHERE state = 'pending' AND client_seq < ?1 RETURNING client_seq",
    )?;
    let seqs = stmt
        .query_map([seq as i64], |r| r.get::<_, i64>(0))?
        .map(|s| s.map(|s| s as u64))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(seqs)
}

/// Records a failed attempt on the pending rows: one more attempt, the error
/// for display, and when the engine means to try again.
pub fn record_failure(
    conn: &Connection,
    error: &str,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?1, next_attempt_at = ?2
         WHERE state = 'pending'",
        params![error, next_attempt_at.map(|t| t.to_rfc3339())],
    )?;
    Ok(())
}

/// The attempt count and planned retry of the head of the queue, so backoff
/// survives a restart.
pub fn head_retry(conn: &Connection) -> Result<Option<(u32, Option<DateTime<Utc>>)>> {
    let head = conn
        .query_row(
            "SELECT attempts, next_attempt_at FROM outbox WHERE state = 'pending'
             ORDER BY client_seq LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
        )
        .optional()?;
    head.map(|(a, t)| {
        Ok((
            u32::try_from(a).unwrap_or(u32::MAX),
            t.as_deref().map(parse_time).transpose()?,
        ))
    })
    .transpose()
}

/// Hides a rejected row from [`rejected`]. Returns whether there was one.
pub fn dismiss(tx: &Transaction<'_>, client_seq: u64) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE outbox SET state = 'dismissed' WHERE client_seq = ?1 AND state = 'rejected'",
        [client_seq as i64],
    )? == 1)
}

/// Deletes done and dismissed rows except the newest `keep`; the seq
/// counter lives in `meta`, so pruning never lets a seq be reused.
pub fn prune(tx: &Transaction<'_>, keep: usize) -> Result<usize> {
    Ok(tx.execute(
        "DELETE FROM outbox WHERE state IN ('done', 'dismissed') AND client_seq NOT IN (
            SELECT client_seq FROM outbox WHERE state IN ('done', 'dismissed')
            ORDER BY client_seq DESC LIMIT ?1)",
        [keep as i64],
    )?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::tests::key;
    use glassguard_protocol::ClaimId;
    use glassguard_protocol::claims::Resolution;
    use glassguard_protocol::sync::JobOutcome;
    use proptest::prelude::*;

    pub(crate) fn command(n: usize) -> Command {
        Command::RecordJobOutcome(JobOutcome {
            claim_id: ClaimId::new(),
            outcome: Resolution::Repaired,
            notes: Some(format!("job {n}")),
            photo_refs: vec![],
        })
    }

    #[derive(Clone, Debug)]
    enum Op {
        Enqueue(usize),
        /// Answer the first n pending rows; bit i of the mask rejects row i.
        Answer(usize, u32),
        Fail,
        Prune(usize),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..5).prop_map(Op::Enqueue),
            2 => (0usize..6, any::<u32>()).prop_map(|(n, m)| Op::Answer(n, m)),
            1 => Just(Op::Fail),
            1 => (0usize..4).prop_map(Op::Prune),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever happens, seqs are 1, 2, 3, ... in the order commands were
        /// written, pending rows are a suffix of the queue, and no command that
        /// is not yet answered is ever lost, across reopening the store.
        #[test]
        fn seqs_increase_and_nothing_pending_is_lost(ops in proptest::collection::vec(op(), 1..25)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(dir.path(), &key(9)).unwrap();
            let mut written: Vec<(u64, Command)> = Vec::new();
            let mut answered = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Enqueue(k) => {
                        for _ in 0..k {
                            let cmd = command(written.len());
                            let row = store.call_sync(|c| {
                                let tx = c.transaction()?;
                                let row = enqueue(&tx, &cmd, Utc::now())?;
                                tx.commit()?;
                                Ok(row)
                            }).unwrap();
                            let expected = written.last().map_or(1, |(s, _)| s + 1);
                            prop_assert_eq!(row.client_seq, expected);
                            written.push((row.client_seq, cmd));
                        }
                    }
                    Op::Answer(n, mask) => {
                        let done = store.call_sync(|c| {
                            let batch = pending_batch(c, n)?;
                            let tx = c.transaction()?;
                            let mut seqs = vec![];
                            for (i, row) in batch.iter().enumerate() {
                                if mask & (1 << i) != 0 {
                                    mark_rejected(&tx, row.client_seq, Some(ErrorCode::Forbidden), "no")?;
                                } else {
                                    mark_done(&tx, row.client_seq)?;
                                }
                                seqs.push(row.client_seq);
                            }
                            tx.commit()?;
                            Ok(seqs)
                        }).unwrap();
                        answered.extend(done);
                    }
                    Op::Fail => store.call_sync(|c| record_failure(c, "offline", None)).unwrap(),
                    Op::Prune(keep) => {
                        store.call_sync(|c| {
                            let tx = c.transaction()?;
                            prune(&tx, keep)?;
                            Ok(tx.commit()?)
                        }).unwrap();
                    }
                    Op::Reopen => {
                        drop(store);
                        store = Store::open(dir.path(), &key(9)).unwrap();
                    }
                }
                let (rows, last) = store.call_sync(|c| Ok((all(c)?, last_seq(c)?))).unwrap();
                prop_assert_eq!(last, written.len() as u64);
                prop_assert!(rows.windows(2).all(|w| w[0].client_seq < w[1].client_seq));
                // Every unanswered command is there, pending, with its payload.
                let pending: Vec<_> = rows.iter().filter(|r| r.state == RowState::Pending).collect();
                let expected: Vec<_> = written.iter().filter(|(s, _)| !answered.contains(s)).collect();
                prop_assert_eq!(pending.len(), expected.len());
                for (row, (seq, cmd)) in pending.iter().zip(expected) {
                    prop_assert_eq!(row.client_seq, *seq);
                    prop_assert_eq!(&row.command, cmd);
                }
                // Pending rows are a suffix.
                if let Some(first) = pending.first() {
                    prop_assert!(rows.iter().filter(|r| r.client_seq > first.client_seq).all(|r| r.state == RowState::Pending));
                }
                // Rejections are never pruned.
                let rejected_now = store.call_sync(|c| rejected(c)).unwrap();
                prop_assert!(rejected_now.iter().all(|r| r.code == Some(ErrorCode::Forbidden)));
            }
        }
    }

    #[test]
    fn done_below_and_dismiss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(9)).unwrap();
        store
            .call_sync(|c| {
                let tx = c.transaction()?;
                for i in 0..5 {
                    enqueue(&tx, &command(i), Utc::now())?;
                }
                tx.commit()?;
                let tx = c.transaction()?;
                assert_eq!(mark_done_below(&tx, 3)?, vec![1, 2]);
                assert!(mark_rejected(&tx, 3, None, "nope")?);
                assert!(!mark_done(&tx, 3)?, "a rejected row stays rejected");
                tx.commit()?;
                assert_eq!(first_pending(c)?, Some(4));
                assert_eq!(counts(c)?, (2, 1));
                let tx = c.transaction()?;
                assert!(dismiss(&tx, 3)?);
                assert!(!dismiss(&tx, 4)?, "only rejected rows are dismissed");
                tx.commit()?;
                assert_eq!(counts(c)?, (2, 0));
                Ok(())
            })
            .unwrap();
    }
}
