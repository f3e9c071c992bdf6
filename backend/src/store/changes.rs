//! The change feed devices pull from: one row per change to an entity,
//! carrying the scope columns (customer, partner, technician) that say whose
//! view it belongs in. Appended on the transaction that makes the change.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::policies::Scope;
use super::{Result, Store, get, ms};

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A policy.
    Policy,
    /// A claim (or a technician's job).
    Claim,
    /// A voucher.
    Voucher,
}

/// Records that an entity changed, copying its scope columns as they are now.
pub async fn append(
    conn: &mut AnyConnection,
    entity: Entity,
    id: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    // Feed positions must become visible in order, or a reader could move its
    // cursor past a position whose transaction has not committed yet. SQLite
    // has one writer; on PostgreSQL appenders take a transaction-scoped lock,
    // held until commit, so commit order is position order.
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock(7345003)")
            .execute(&mut *conn)
            .await?;
    }
    let sql = match entity {
        Entity::Policy => {
            "INSERT INTO changes (entity, entity_id, customer_id, partner_id, technician_id, at, tag) \
             SELECT 'policy', id, customer_id, partner_id, NULL, $2, $3 FROM policies WHERE id = $1"
        }
        Entity::Claim => {
            "INSERT INTO changes (entity, entity_id, customer_id, partner_id, technician_id, at, tag) \
             SELECT 'claim', id, customer_id, partner_id, technician_id, $2, $3 FROM claims WHERE id = $1"
        }
        Entity::Voucher => {
            "INSERT INTO changes (entity, entity_id, customer_id, partner_id, technician_id, at, tag) \
             SELECT 'voucher', id, customer_id, NULL, NULL, $2, $3 FROM vouchers WHERE id = $1"
        }
    };
    sqlx::query(sql)
        .bind(id.to_string())
        .bind(ms(at))
        .bind(new_tag())
        .execute(conn)
        .await?;
    Ok(())
}

/// A random tag for a new feed position (see migration 0004).
fn new_tag() -> i64 {
    // The low half of a UUIDv7 is its random part (62 bits past the variant).
    let (_, random) = uuid::Uuid::now_v7().as_u64_pair();
    // Never 0, the tag of positions written before the tags existed.
    (random >> 1) as i64 | 1
}

/// One row of the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedRow {
    /// Position in the feed.
    pub seq: i64,
    /// What changed.
    pub entity: Entity,
    /// Its id.
    pub entity_id: String,
    /// The position's tag (see migration 0004).
    pub tag: i64,
}

impl Store {
    /// Feed rows after `after` in the caller's scope, oldest first.
    pub async fn feed(&self, scope: Scope, after: i64, limit: i64) -> Result<Vec<FeedRow>> {
        let rows = sqlx::query(
            "SELECT seq, entity, entity_id, tag FROM changes WHERE seq > $1 \
             AND (CAST($2 AS TEXT) IS NULL OR customer_id = $2) AND (CAST($3 AS TEXT) IS NULL OR partner_id = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR technician_id = $4) ORDER BY seq LIMIT $5",
        )
        .bind(after)
        .bind(scope.customer())
        .bind(scope.partner())
        .bind(scope.technician())
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let entity = match get::<String>(&r, "entity")?.as_str() {
                "policy" => Entity::Policy,
                "claim" => Entity::Claim,
                "voucher" => Entity::Voucher,
                other => return Err(super::StoreError::Corrupt(format!("feed entity {other}"))),
            };
            out.push(FeedRow {
                seq: get(&r, "seq")?,
                entity,
                entity_id: get(&r, "entity_id")?,
                tag: get(&r, "tag")?,
            });
        }
        Ok(out)
    }

    /// The tag of feed position `seq`, if the position exists.
    pub async fn feed_tag(&self, seq: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT tag FROM changes WHERE seq = $1")
            .bind(seq)
            .fetch_optional(self.reader())
            .await?)
    }

    /// This database's feed epoch, made on first use.
    pub async fn feed_epoch(&self) -> Result<String> {
        if let Some(e) = sqlx::query_scalar::<_, String>("SELECT epoch FROM sync_epoch")
            .fetch_optional(self.reader())
            .await?
        {
            return Ok(e);
        }
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO sync_epoch (epoch) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM sync_epoch)",
        )
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .execute(&mut *tx)
        .await?;
        let e: String = sqlx::query_scalar("SELECT epoch FROM sync_epoch")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(e)
    }
}
