//! Devices' pushed mutations: who owns a device, the highest seq applied,
//! and each mutation's result, kept so a replay gets the same answer.

use chrono::{DateTime, Utc};
use glassguard_protocol::{DeviceId, ErrorCode, UserId};
use sqlx::AnyConnection;

use super::{Result, get, ms};

/// What the server already knows of a pushed row.
#[derive(Clone, Debug, PartialEq)]
pub enum Prior {
    /// Nothing: a new mutation.
    New,
    /// The same mutation was applied or rejected before; this was its result.
    Same {
        /// True if it was applied.
        applied: bool,
        /// The rejection code.
        code: Option<ErrorCode>,
        /// The rejection message.
        message: Option<String>,
    },
    /// The mutation id was used with another payload or another seq.
    Conflict,
    /// The seq was used by another mutation of this device.
    SeqTaken,
}

/// Claims the device for the user (first push) and locks its row for this
/// transaction; returns the highest seq applied, or `None` if the device
/// belongs to another user.
pub async fn lock_device(
    conn: &mut AnyConnection,
    device: &DeviceId,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    sqlx::query(
        "INSERT INTO sync_devices (device_id, user_id, highest_seq, updated_at) VALUES ($1, $2, 0, $3) ON CONFLICT (device_id) DO NOTHING",
    )
    .bind(device.to_string())
    .bind(user.to_string())
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    // An update takes the row lock on PostgreSQL; SQLite has one writer anyway.
    sqlx::query("UPDATE sync_devices SET updated_at = $1 WHERE device_id = $2")
        .bind(ms(now))
        .bind(device.to_string())
        .execute(&mut *conn)
        .await?;
    let r = sqlx::query("SELECT user_id, highest_seq FROM sync_devices WHERE device_id = $1")
        .bind(device.to_string())
        .fetch_one(&mut *conn)
        .await?;
    if get::<String>(&r, "user_id")? != user.to_string() {
        return Ok(None);
    }
    Ok(Some(get(&r, "highest_seq")?))
}

/// What is known of (device, seq) or (device, mutation id).
pub async fn prior(
    conn: &mut AnyConnection,
    device: &DeviceId,
    seq: i64,
    mutation_id: &str,
    hash: &[u8],
) -> Result<Prior> {
    let r = sqlx::query(
        "SELECT client_seq, mutation_id, payload_hash, status, code, message FROM sync_mutations \
         WHERE device_id = $1 AND (client_seq = $2 OR mutation_id = $3)",
    )
    .bind(device.to_string())
    .bind(seq)
    .bind(mutation_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut ours = None;
    for row in &r {
        if get::<String>(row, "mutation_id")? == mutation_id {
            ours = Some(row);
        }
    }
    let Some(r) = ours else {
        // Only the seq is known, from another mutation: a device restored
        // from an older copy of itself numbers new work from its old count.
        return Ok(if r.is_empty() {
            Prior::New
        } else {
            Prior::SeqTaken
        });
    };
    let same = get::<i64>(r, "client_seq")? == seq && get::<Vec<u8>>(r, "payload_hash")? == hash;
    if !same {
        return Ok(Prior::Conflict);
    }
    let code: Option<String> = get(r, "code")?;
    Ok(Prior::Same {
        applied: get::<String>(r, "status")? == "applied",
        code: code.and_then(|c| serde_json::from_value(serde_json::Value::String(c)).ok()),
        message: get(r, "message")?,
    })
}

/// A mutation's result, as it will be answered to replays.
#[derive(Clone, Debug)]
pub struct Recorded<'a> {
    /// Device.
    pub device: &'a DeviceId,
    /// Seq.
    pub seq: i64,
    /// Mutation id.
    pub mutation_id: &'a str,
    /// SHA-256 of the canonical payload.
    pub hash: &'a [u8],
    /// Command name.
    pub command: &'a str,
    /// Applied (or rejected).
    pub applied: bool,
    /// Rejection code.
    pub code: Option<ErrorCode>,
    /// Rejection message.
    pub message: Option<&'a str>,
}

/// Stores the result and moves the device's highest seq, on the caller's transaction.
pub async fn record(conn: &mut AnyConnection, m: &Recorded<'_>, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_mutations (device_id, client_seq, mutation_id, payload_hash, command, status, code, message, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(m.device.to_string())
    .bind(m.seq)
    .bind(m.mutation_id.to_string())
    .bind(m.hash.to_vec())
    .bind(m.command.to_string())
    .bind(if m.applied { "applied" } else { "rejected" }.to_string())
    .bind(m.code.map(|c| c.as_str().to_string()))
    .bind(m.message.map(str::to_string))
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE sync_devices SET highest_seq = $1 WHERE device_id = $2 AND highest_seq < $1",
    )
    .bind(m.seq)
    .bind(m.device.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The highest seq applied for a device (0 when unknown).
pub async fn highest(pool: &sqlx::AnyPool, device: &DeviceId) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT highest_seq FROM sync_devices WHERE device_id = $1")
            .bind(device.to_string())
            .fetch_optional(pool)
            .await?
            .unwrap_or(0),
    )
}
