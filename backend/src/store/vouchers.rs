//! Vouchers: the Rs 500 benefit, single use. Redemption is one conditional
//! update, so two concurrent redemptions cannot both succeed.

use chrono::{DateTime, Utc};
use glassguard_protocol::api::Voucher;
use glassguard_protocol::{Money, PartnerId, UserId};
use sqlx::any::AnyRow;

use super::{AuditRecord, Result, Store, StoreError, from_ms, get, ms, parse, parse_opt};

/// The outcome of a redemption.
#[derive(Debug, Clone, PartialEq)]
pub enum RedeemOutcome {
    /// Redeemed now, by this request.
    Redeemed,
    /// Redeemed before.
    AlreadyRedeemed,
    /// Past its expiry.
    Expired,
}

fn decode(r: &AnyRow) -> Result<Voucher> {
    Ok(Voucher {
        id: parse(r, "id")?,
        code: get(r, "code")?,
        claim_id: parse(r, "claim_id")?,
        customer_id: parse(r, "customer_id")?,
        value: Money::from_paise(get(r, "value")?).map_err(|e| StoreError::Corrupt(e.message))?,
        expires_at: from_ms(get(r, "expires_at")?)?,
        redeemed_at: get::<Option<i64>>(r, "redeemed_at")?
            .map(from_ms)
            .transpose()?,
        redeemed_by_partner: parse_opt(r, "redeemed_by_partner")?,
    })
}

impl Store {
    /// A customer's vouchers.
    pub async fn vouchers_for(&self, customer: &UserId) -> Result<Vec<Voucher>> {
        let rows = sqlx::query("SELECT * FROM vouchers WHERE customer_id = $1 ORDER BY id DESC")
            .bind(customer.to_string())
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// A voucher by its id.
    pub async fn voucher_by_id(&self, id: &str) -> Result<Option<Voucher>> {
        let r = sqlx::query("SELECT * FROM vouchers WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(decode).transpose()
    }

    /// A voucher by its code.
    pub async fn voucher_by_code(&self, code: &str) -> Result<Option<Voucher>> {
        let r = sqlx::query("SELECT * FROM vouchers WHERE code = $1")
            .bind(code.to_string())
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(decode).transpose()
    }

    /// Redeems once; a second request, concurrent or later, gets `AlreadyRedeemed`.
    pub async fn redeem_voucher(
        &self,
        code: &str,
        partner: &PartnerId,
        user: &UserId,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<RedeemOutcome> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE vouchers SET redeemed_at = $1, redeemed_by_partner = $2, redeemed_by_user = $3 \
             WHERE code = $4 AND redeemed_at IS NULL AND expires_at > $1",
        )
        .bind(ms(now))
        .bind(partner.to_string())
        .bind(user.to_string())
        .bind(code.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            let id: String = sqlx::query_scalar("SELECT id FROM vouchers WHERE code = $1")
                .bind(code.to_string())
                .fetch_one(&mut *tx)
                .await?;
            super::changes::append(&mut tx, super::changes::Entity::Voucher, &id, now).await?;
            super::audit::append(&mut tx, now, audit).await?;
            tx.commit().await?;
            return Ok(RedeemOutcome::Redeemed);
        }
        let redeemed: Option<Option<i64>> =
            sqlx::query_scalar("SELECT redeemed_at FROM vouchers WHERE code = $1")
                .bind(code.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        Ok(match redeemed {
            Some(Some(_)) => RedeemOutcome::AlreadyRedeemed,
            _ => RedeemOutcome::Expired,
        })
    }
}
