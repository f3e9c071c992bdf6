//! The notification outbox and the dev SMS inbox.
//!
//! A message is written to `notifications` in the same transaction as the
//! change it announces; a worker takes due messages with a lease (a
//! conditional update, so two workers never send one message twice within
//! the lease) and hands them to the configured sender.

use chrono::{DateTime, Duration, Utc};
use glassguard_protocol::PhoneNumber;
use glassguard_protocol::api::SmsMessage;
use sqlx::AnyConnection;

use super::keys::RowCipher;
use super::{Result, Store, StoreError, from_ms, get, ms};
use crate::crypto::Keyring;

/// A message due to be sent.
#[derive(Clone)]
pub struct Outgoing {
    /// Outbox id.
    pub id: String,
    /// Recipient.
    pub to: PhoneNumber,
    /// Text.
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold an OTP and the number is PII.
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Queues an SMS on the caller's transaction.
pub async fn enqueue_sms(
    conn: &mut AnyConnection,
    keys: &Keyring,
    kind: &str,
    to: &PhoneNumber,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let id = uuid::Uuid::now_v7().to_string();
    let (c, dek) = RowCipher::create(keys, "notifications", &id)?;
    sqlx::query(
        "INSERT INTO notifications (id, kind, dek, to_enc, body_enc, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
    )
    .bind(id)
    .bind(kind.to_string())
    .bind(dek)
    .bind(c.seal("to", to.as_str()))
    .bind(c.seal("body", body))
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(())
}

const LEASE: i64 = 60_000;

impl Store {
    /// Takes up to `limit` due messages, leasing each for a minute.
    pub async fn take_due_notifications(
        &self,
        keys: &Keyring,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Outgoing>> {
        let rows = sqlx::query(
            "SELECT id, dek, to_enc, body_enc, attempts, next_attempt_at FROM notifications \
             WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(ms(now))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = get(&r, "id")?;
            let leased = sqlx::query(
                "UPDATE notifications SET next_attempt_at = $1, attempts = attempts + 1 \
                 WHERE id = $2 AND state = 'pending' AND next_attempt_at = $3",
            )
            .bind(ms(now) + LEASE)
            .bind(id.clone())
            .bind(get::<i64>(&r, "next_attempt_at")?)
            .execute(&self.write)
            .await?;
            if leased.rows_affected() == 0 {
                continue;
            }
            let c = RowCipher::open(keys, "notifications", &id, get(&r, "dek")?)?;
            let to = PhoneNumber::parse(&c.open_str("to", &get::<Vec<u8>>(&r, "to_enc")?)?)
                .map_err(|e| StoreError::Corrupt(e.message))?;
            out.push(Outgoing {
                to,
                body: c.open_str("body", &get::<Vec<u8>>(&r, "body_enc")?)?,
                attempts: get::<i64>(&r, "attempts")? + 1,
                id,
            });
        }
        Ok(out)
    }

    /// Marks a message sent.
    pub async fn notification_sent(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE notifications SET state = 'sent', sent_at = $1, last_error = NULL WHERE id = $2")
            .bind(ms(now))
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Records a failed attempt: retried after `retry_in`, or given up.
    pub async fn notification_failed(
        &self,
        id: &str,
        error: &str,
        retry_in: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (state, next) = match retry_in {
            Some(d) => ("pending", ms(now + d)),
            None => ("failed", ms(now)),
        };
        sqlx::query("UPDATE notifications SET state = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4")
            .bind(state.to_string())
            .bind(next)
            .bind(error.chars().take(200).collect::<String>())
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Messages still waiting (for tests and the readiness check).
    pub async fn pending_notifications(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE state = 'pending'")
                .fetch_one(self.reader())
                .await?,
        )
    }

    /// The dev sender's "delivery": the message lands in the inbox table.
    pub async fn deliver_to_inbox(
        &self,
        keys: &Keyring,
        to: &PhoneNumber,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let id = uuid::Uuid::now_v7().to_string();
        let (c, dek) = RowCipher::create(keys, "sms_inbox", &id)?;
        sqlx::query("INSERT INTO sms_inbox (id, dek, to_enc, body_enc, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(dek)
            .bind(c.seal("to", to.as_str()))
            .bind(c.seal("body", body))
            .bind(ms(now))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The dev inbox, newest first, optionally for one phone.
    pub async fn inbox(
        &self,
        keys: &Keyring,
        to: Option<&PhoneNumber>,
        limit: i64,
    ) -> Result<Vec<SmsMessage>> {
        let rows = sqlx::query("SELECT * FROM sms_inbox ORDER BY id DESC LIMIT $1")
            .bind(if to.is_some() { 2000 } else { limit })
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = get(&r, "id")?;
            let c = RowCipher::open(keys, "sms_inbox", &id, get(&r, "dek")?)?;
            let phone = PhoneNumber::parse(&c.open_str("to", &get::<Vec<u8>>(&r, "to_enc")?)?)
                .map_err(|e| StoreError::Corrupt(e.message))?;
            // The recipient is encrypted: filter after decrypting (a dev inbox is small).
            if to.is_some_and(|t| *t != phone) {
                continue;
            }
            if out.len() as i64 >= limit {
                break;
            }
            out.push(SmsMessage {
                body: c.open_str("body", &get::<Vec<u8>>(&r, "body_enc")?)?,
                to: phone,
                created_at: from_ms(get(&r, "created_at")?)?,
                id,
            });
        }
        Ok(out)
    }
}
