//! One-time codes by SMS, as the security model sets them: 6 digits, valid 5
//! minutes, 5 tries per code, 100 failures over an account's lifetime (a new
//! code does not reset the count; a success does, the limit is on
//! consecutive failures), one send per 60 s and 5 per hour per phone. Only an
//! HMAC of the code is stored; it is checked in constant time.

use chrono::{DateTime, Duration, Utc};
use glassguard_protocol::PhoneNumber;
use glassguard_protocol::api::OtpPurpose;
use sqlx::AnyConnection;

use super::keys::{blind, index};
use super::{Result, Store, get, ms};
use crate::crypto::Keyring;

/// Code lifetime.
pub const OTP_TTL: Duration = Duration::minutes(5);
/// Tries per code.
pub const OTP_TRIES: i64 = 5;
/// Consecutive failures before the account is locked.
pub const OTP_LIFETIME_FAILURES: i64 = 100;
/// Minimum gap between two sends to one phone.
pub const OTP_RESEND_GAP: Duration = Duration::seconds(60);
/// Sends per phone per hour.
pub const OTP_PER_HOUR: i64 = 5;

/// The answer to a send request.
#[derive(Debug, Clone, PartialEq)]
pub enum OtpIssue {
    /// Sent (queued for the SMS worker).
    Issued,
    /// Asked again too soon.
    TooSoon {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Five sends in the last hour.
    HourlyLimit {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Too many failures over the account's life.
    Locked,
}

/// The answer to a code check.
#[derive(Debug, Clone, PartialEq)]
pub enum OtpCheck {
    /// The code matched and is now used up.
    Valid,
    /// Wrong code; `remaining` tries left on this code.
    Invalid {
        /// Tries left.
        remaining: i64,
    },
    /// No live code (expired, used, or never sent).
    Expired,
    /// This code had its five tries.
    TooManyAttempts,
    /// Too many failures over the account's life.
    Locked,
}

async fn failures(conn: &mut AnyConnection, phone_index: &[u8]) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT failures FROM otp_accounts WHERE phone_index = $1")
            .bind(phone_index.to_vec())
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}

impl Store {
    /// Issues a code: checks the limits, stores its HMAC and queues the SMS, in one transaction.
    pub async fn issue_otp(
        &self,
        keys: &Keyring,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<OtpIssue> {
        let pi = blind(keys, index::PHONE, phone.as_str());
        let mut tx = self.begin().await?;
        if failures(&mut tx, &pi).await? >= OTP_LIFETIME_FAILURES {
            return Ok(OtpIssue::Locked);
        }
        let recent: Vec<i64> = sqlx::query_scalar(
            "SELECT created_at FROM otp_challenges WHERE phone_index = $1 AND created_at > $2 ORDER BY created_at DESC",
        )
        .bind(pi.clone())
        .bind(ms(now - Duration::hours(1)))
        .fetch_all(&mut *tx)
        .await?;
        let now_ms = ms(now);
        if let Some(last) = recent.first() {
            let wait = last + OTP_RESEND_GAP.num_milliseconds() - now_ms;
            if wait > 0 {
                return Ok(OtpIssue::TooSoon {
                    retry_after: (wait as u64).div_ceil(1000),
                });
            }
        }
        if recent.len() as i64 >= OTP_PER_HOUR {
            let oldest = recent.last().copied().unwrap_or(now_ms);
            let wait = oldest + 3_600_000 - now_ms;
            return Ok(OtpIssue::HourlyLimit {
                retry_after: (wait.max(1000) as u64).div_ceil(1000),
            });
        }
        let id = uuid::Uuid::now_v7().to_string();
        let mac = keys.otp_mac(purpose.as_str(), phone.as_str(), &id, code);
        sqlx::query(
            "INSERT INTO otp_challenges (id, phone_index, purpose, mac, created_at, expires_at, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(id)
        .bind(pi)
        .bind(purpose.as_str().to_string())
        .bind(mac.to_vec())
        .bind(now_ms)
        .bind(ms(now + OTP_TTL))
        .execute(&mut *tx)
        .await?;
        let body = format!(
            "{code} is your Glassguard code. It expires in 5 minutes. Never share it, not even with us."
        );
        super::notifications::enqueue_sms(&mut tx, keys, "otp", phone, &body, now).await?;
        tx.commit().await?;
        Ok(OtpIssue::Issued)
    }

    /// Checks a code. Failure counts are committed whatever the outcome.
    pub async fn verify_otp(
        &self,
        keys: &Keyring,
        phone: &PhoneNumber,
        purpose: OtpPurpose,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<OtpCheck> {
        let pi = blind(keys, index::PHONE, phone.as_str());
        let mut tx = self.begin().await?;
        if failures(&mut tx, &pi).await? >= OTP_LIFETIME_FAILURES {
            return Ok(OtpCheck::Locked);
        }
        let row = sqlx::query(
            "SELECT id, mac, expires_at, attempts FROM otp_challenges \
             WHERE phone_index = $1 AND purpose = $2 AND consumed_at IS NULL ORDER BY created_at DESC LIMIT 1",
        )
        .bind(pi.clone())
        .bind(purpose.as_str().to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(OtpCheck::Expired);
        };
        let id: String = get(&row, "id")?;
        if get::<i64>(&row, "expires_at")? <= ms(now) {
            return Ok(OtpCheck::Expired);
        }
        let attempts: i64 = get(&row, "attempts")?;
        if attempts >= OTP_TRIES {
            return Ok(OtpCheck::TooManyAttempts);
        }
        let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        let stored: Vec<u8> = get(&row, "mac")?;
        if well_formed && keys.otp_verify(purpose.as_str(), phone.as_str(), &id, code, &stored) {
            let used = sqlx::query(
                "UPDATE otp_challenges SET consumed_at = $1 WHERE id = $2 AND consumed_at IS NULL",
            )
            .bind(ms(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE otp_accounts SET failures = 0 WHERE phone_index = $1")
                .bind(pi)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(if used.rows_affected() == 1 {
                OtpCheck::Valid
            } else {
                OtpCheck::Expired
            });
        }
        sqlx::query("UPDATE otp_challenges SET attempts = attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO otp_accounts (phone_index, failures) VALUES ($1, 1) \
             ON CONFLICT (phone_index) DO UPDATE SET failures = otp_accounts.failures + 1",
        )
        .bind(pi.clone())
        .execute(&mut *tx)
        .await?;
        let total = failures(&mut tx, &pi).await?;
        tx.commit().await?;
        Ok(if total >= OTP_LIFETIME_FAILURES {
            OtpCheck::Locked
        } else if attempts + 1 >= OTP_TRIES {
            OtpCheck::TooManyAttempts
        } else {
            OtpCheck::Invalid {
                remaining: OTP_TRIES - attempts - 1,
            }
        })
    }
}
