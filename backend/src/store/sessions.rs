//! Sessions and tokens. Access tokens are opaque and short-lived; refresh
//! tokens rotate on every use and are bound to the device the session was
//! opened on. Only SHA-256 hashes of tokens are stored. A refresh token used
//! a second time means it was stolen or replayed: the whole session dies.

use chrono::{DateTime, Utc};
use glassguard_protocol::{DeviceId, PartnerId, Role, UserId};

use super::{Result, Store, get, ms, parse, parse_opt, unwire};

/// Who an access token belongs to.
#[derive(Clone, Debug)]
pub struct AuthedUser {
    /// User.
    pub user_id: UserId,
    /// Role.
    pub role: Role,
    /// Partner, for partner users.
    pub partner_id: Option<PartnerId>,
    /// Active flag.
    pub active: bool,
    /// Session.
    pub session_id: String,
    /// The device the session is bound to.
    pub device_id: DeviceId,
    /// When the access token expires.
    pub expires_at: i64,
}

/// The outcome of an access-token lookup.
#[derive(Clone, Debug)]
pub enum AccessCheck {
    /// Good.
    Valid(AuthedUser),
    /// Known but past its expiry.
    Expired,
    /// Unknown or revoked.
    Unknown,
}

/// The outcome of a refresh.
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshOutcome {
    /// New tokens were stored for this user.
    Rotated(UserId),
    /// The token had been used before: the session is now revoked.
    Reused,
    /// Unknown, expired, revoked, or another device's.
    Invalid,
}

/// Token hashes and expiries for a new pair.
#[derive(Clone, Debug)]
pub struct TokenPair {
    /// SHA-256 of the access token.
    pub access_hash: Vec<u8>,
    /// Its expiry.
    pub access_expires: DateTime<Utc>,
    /// SHA-256 of the refresh token.
    pub refresh_hash: Vec<u8>,
    /// Its expiry.
    pub refresh_expires: DateTime<Utc>,
}

async fn store_pair(conn: &mut sqlx::AnyConnection, session: &str, p: &TokenPair) -> Result<()> {
    sqlx::query("INSERT INTO access_tokens (hash, session_id, expires_at) VALUES ($1, $2, $3)")
        .bind(p.access_hash.clone())
        .bind(session.to_string())
        .bind(ms(p.access_expires))
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES ($1, $2, $3)")
        .bind(p.refresh_hash.clone())
        .bind(session.to_string())
        .bind(ms(p.refresh_expires))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Opens a session on the caller's transaction.
pub async fn open_session(
    conn: &mut sqlx::AnyConnection,
    user: &UserId,
    device: &DeviceId,
    pair: &TokenPair,
    now: DateTime<Utc>,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, device_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.clone())
    .bind(user.to_string())
    .bind(device.to_string())
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    store_pair(conn, &id, pair).await?;
    Ok(id)
}

impl Store {
    /// Opens a session in its own transaction.
    pub async fn create_session(
        &self,
        user: &UserId,
        device: &DeviceId,
        pair: &TokenPair,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let mut tx = self.begin().await?;
        let id = open_session(&mut tx, user, device, pair, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Looks up an access token by its hash: one query.
    pub async fn authenticate(
        &self,
        access_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<AccessCheck> {
        let r = sqlx::query(
            "SELECT a.expires_at, s.id AS session_id, s.device_id, s.revoked_at, u.id AS user_id, u.role, u.partner_id, u.active \
             FROM access_tokens a JOIN sessions s ON s.id = a.session_id JOIN users u ON u.id = s.user_id \
             WHERE a.hash = $1",
        )
        .bind(access_hash.to_vec())
        .fetch_optional(self.reader())
        .await?;
        let Some(r) = r else {
            return Ok(AccessCheck::Unknown);
        };
        if get::<Option<i64>>(&r, "revoked_at")?.is_some() {
            return Ok(AccessCheck::Unknown);
        }
        let expires_at: i64 = get(&r, "expires_at")?;
        if expires_at <= ms(now) {
            return Ok(AccessCheck::Expired);
        }
        Ok(AccessCheck::Valid(AuthedUser {
            user_id: parse(&r, "user_id")?,
            role: unwire(&r, "role")?,
            partner_id: parse_opt(&r, "partner_id")?,
            active: get::<i64>(&r, "active")? != 0,
            session_id: get(&r, "session_id")?,
            device_id: parse(&r, "device_id")?,
            expires_at,
        }))
    }

    /// Uses a refresh token once and stores the next pair.
    pub async fn rotate_refresh(
        &self,
        refresh_hash: &[u8],
        device: &DeviceId,
        next: &TokenPair,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "SELECT r.session_id, r.expires_at, r.used_at, s.device_id, s.revoked_at, s.user_id \
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1",
        )
        .bind(refresh_hash.to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = r else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session: String = get(&r, "session_id")?;
        if get::<Option<i64>>(&r, "revoked_at")?.is_some() {
            return Ok(RefreshOutcome::Invalid);
        }
        let fresh = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
        )
        .bind(ms(now))
        .bind(refresh_hash.to_vec())
        .execute(&mut *tx)
        .await?;
        if get::<Option<i64>>(&r, "used_at")?.is_some() || fresh.rows_affected() == 0 {
            revoke(&mut tx, &session, "refresh_token_reused", now).await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused);
        }
        if get::<String>(&r, "device_id")? != device.to_string()
            || get::<i64>(&r, "expires_at")? <= ms(now)
        {
            // A token presented from another device is treated as stolen.
            revoke(&mut tx, &session, "refresh_token_misused", now).await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Invalid);
        }
        store_pair(&mut tx, &session, next).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated(parse(&r, "user_id")?))
    }

    /// Revokes a session (sign-out).
    pub async fn revoke_session(
        &self,
        session: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        revoke(&mut tx, session, reason, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn revoke(
    conn: &mut sqlx::AnyConnection,
    session: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(ms(now))
        .bind(reason.to_string())
        .bind(session.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM access_tokens WHERE session_id = $1")
        .bind(session.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
