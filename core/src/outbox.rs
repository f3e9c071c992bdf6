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

/// Moves the pending rows from `from` on to the seqs right after `after`
/// (the server's highest), keeping their order, mutation ids and local
/// records. For a device restored from an older copy of itself,
/// whose new rows reuse seqs the server has from other changes. Returns how
/// many rows moved.
pub fn renumber_pending(tx: &Transaction<'_>, from: u64, after: u64) -> Result<usize> {
    let last: u64 = meta_get(tx, LAST_SEQ)?
        .map(|v| {
            v.parse()
                .map_err(|_| Error::corrupt("outbox sequence counter"))
        })
        .transpose()?
        .unwrap_or(0);
    let seqs = {
        let mut stmt = tx.prepare(
            "SELECT client_seq FROM outbox WHERE state = 'pending' AND client_seq >= ?1
             ORDER BY client_seq",
        )?;
        stmt.query_map([from as i64], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    // Every row from `from` on moves, so nothing left is above `from - 1`;
    // the server has `from`, so `after >= from` and the new seqs are free
    // once the moving rows are out of the way (negative seqs meanwhile).
    let start = after.max(from.saturating_sub(1)) + 1;
    for step in [0, 1] {
        for (i, old) in seqs.iter().enumerate() {
            let (from_seq, to_seq) = match step {
                0 => (*old, -(i as i64) - 1),
                _ => (-(i as i64) - 1, (start + i as u64) as i64),
            };
            tx.execute(
                "UPDATE outbox SET client_seq = ?1 WHERE client_seq = ?2",
                [to_seq, from_seq],
            )?;
            tx.execute(
                "UPDATE local_records SET client_seq = ?1 WHERE client_seq = ?2",
                [to_seq, from_seq],
            )?;
        }
    }
    if !seqs.is_empty() {
        let end = start + seqs.len() as u64 - 1;
        meta_set(tx, LAST_SEQ, &end.max(last).to_string())?;
    }
    Ok(seqs.len())
}

/// Queues again the rows the server acknowledged but no longer has: it says
/// its highest seq for this device is `highest`, below rows it answered
/// before (a server restored from a backup). Same seqs, same mutation ids,
/// so nothing can apply twice. Returns how many rows were queued again, or
/// `None` when a row of the run after `highest` is no longer here to send
/// (pruned, or refused) and the gap cannot be filled.
pub fn requeue_lost(tx: &Transaction<'_>, highest: u64) -> Result<Option<usize>> {
    let rows = {
        let mut stmt = tx.prepare(
            "SELECT client_seq, state FROM outbox WHERE client_seq > ?1
             AND client_seq <= (SELECT max(client_seq) FROM outbox WHERE state = 'done')
             ORDER BY client_seq",
        )?;
        stmt.query_map([highest as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    if rows.is_empty() {
        return Ok(Some(0));
    }
    let unbroken = rows.iter().enumerate().all(|(i, (seq, state))| {
        *seq == highest + 1 + i as u64 && state != "rejected" && state != "dismissed"
    });
    if !unbroken {
        return Ok(None);
    }
    let n = tx.execute(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = NULL
         WHERE state = 'done' AND client_seq > ?1 AND client_seq <= ?2",
        [highest as i64, rows[rows.len() - 1].0 as i64],
    )?;
    Ok(Some(n))
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
    fn renumbering_and_requeueing_keep_order_and_mutation_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(9)).unwrap();
        store
            .call_sync(|c| {
                let tx = c.transaction()?;
                for i in 0..6 {
                    enqueue(&tx, &command(i), Utc::now())?;
                }
                for seq in 1..=3 {
                    mark_done(&tx, seq)?;
                }
                tx.commit()?;
                let before = all(c)?;
                // The server holds seq 4 from another change and has up to 7.
                let tx = c.transaction()?;
                assert_eq!(renumber_pending(&tx, 4, 7)?, 3);
                tx.commit()?;
                let after = all(c)?;
                let seqs: Vec<_> = after.iter().map(|r| r.client_seq).collect();
                assert_eq!(seqs, [1, 2, 3, 8, 9, 10]);
                for (b, a) in before.iter().zip(&after) {
                    assert_eq!((&b.mutation_id, &b.command), (&a.mutation_id, &a.command));
                }
                assert_eq!(last_seq(c)?, 10);
                let tx = c.transaction()?;
                let next = enqueue(&tx, &command(6), Utc::now())?;
                assert_eq!(next.client_seq, 11);
                // The server lost 2 and 3: they go again, same seqs.
                assert_eq!(requeue_lost(&tx, 1)?, Some(2));
                assert_eq!(first_pending(&tx)?, Some(2));
                assert_eq!(requeue_lost(&tx, 1)?, Some(0), "nothing done above 1 now");
                // A refused row in the lost run cannot be sent again.
                mark_done(&tx, 2)?;
                mark_rejected(&tx, 3, None, "no")?;
                mark_done(&tx, 8)?;
                assert_eq!(requeue_lost(&tx, 1)?, None);
                Ok(())
            })
            .unwrap();
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
