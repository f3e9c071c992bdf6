//! Policies: a sale at the counter becomes a policy, its customer (found or
//! registered by phone), a commission line and an SMS, in one transaction.
//! The database itself keeps one active policy per IMEI (a partial unique
//! index on the IMEI's blind index).

use chrono::{DateTime, NaiveDate, Utc};
use glassguard_protocol::api::Policy;
use glassguard_protocol::{Imei, Money, PartnerId, PhoneNumber, PolicyId, Role, UserId};
use sqlx::any::AnyRow;

use super::keys::{RowCipher, blind, index};
use super::users::{NewUser, fill_name, insert_user, user_by_phone_on};
use super::{
    AuditRecord, Result, Store, StoreError, day, from_day, from_ms, get, ms, parse, parse_opt,
    unwire,
};
use crate::crypto::Keyring;
use crate::plans::PlanTerms;

/// Which rows a caller may list.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// Everything (insurer staff).
    All,
    /// One customer's.
    Customer(UserId),
    /// One partner's.
    Partner(PartnerId),
    /// One technician's (claims allocated to them).
    Technician(UserId),
}

impl Scope {
    pub(crate) fn customer(&self) -> Option<String> {
        match self {
            Scope::Customer(u) => Some(u.to_string()),
            _ => None,
        }
    }
    pub(crate) fn partner(&self) -> Option<String> {
        match self {
            Scope::Partner(p) => Some(p.to_string()),
            _ => None,
        }
    }
    pub(crate) fn technician(&self) -> Option<String> {
        match self {
            Scope::Technician(u) => Some(u.to_string()),
            _ => None,
        }
    }
}

/// A sale to record.
#[derive(Debug)]
pub struct NewPolicy<'a> {
    /// Client-made id.
    pub id: PolicyId,
    /// Printed certificate number.
    pub certificate_number: String,
    /// Plan id.
    pub plan_id: &'a str,
    /// The plan's terms at sale.
    pub terms: PlanTerms,
    /// Selling partner.
    pub partner_id: Option<PartnerId>,
    /// Selling user.
    pub sold_by: Option<UserId>,
    /// Customer phone.
    pub customer_phone: &'a PhoneNumber,
    /// Customer name.
    pub customer_name: &'a str,
    /// Customer email.
    pub customer_email: Option<&'a str>,
    /// Device.
    pub imei: Imei,
    /// Brand.
    pub brand: &'a str,
    /// Model.
    pub model: &'a str,
    /// Device price.
    pub device_price: Money,
    /// Premium.
    pub premium: Money,
    /// Commission owed to the partner.
    pub commission: Money,
    /// Device purchase date.
    pub purchase_date: NaiveDate,
    /// Cover start.
    pub start: NaiveDate,
    /// Cover end.
    pub end: NaiveDate,
    /// Invoice reference.
    pub invoice_ref: &'a str,
    /// Screen photo reference.
    pub screen_photo_ref: &'a str,
}

/// The outcome of recording a sale.
#[derive(Debug, Clone, PartialEq)]
pub enum SaleOutcome {
    /// Issued.
    Issued(PolicyId),
    /// The same id was recorded before (a retry): nothing new was written.
    Replayed(PolicyId),
    /// Another active policy covers the IMEI.
    ImeiAlreadyCovered,
}

/// A policy as stored, with its terms.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    /// The wire view.
    pub policy: Policy,
    /// Terms at sale.
    pub terms: PlanTerms,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const SELECT: &str = "SELECT p.*, u.dek AS u_dek, u.phone_enc AS u_phone_enc, u.name_enc AS u_name_enc \
                      FROM policies p JOIN users u ON u.id = p.customer_id";

fn decode(keys: &Keyring, r: &AnyRow) -> Result<PolicyRow> {
    let id: String = get(r, "id")?;
    let c = RowCipher::open(keys, "policies", &id, get(r, "dek")?)?;
    let customer: String = get(r, "customer_id")?;
    let u = RowCipher::open(keys, "users", &customer, get(r, "u_dek")?)?;
    let money = |col: &str| -> Result<Money> { Money::from_paise(get(r, col)?).map_err(corrupt) };
    let terms: PlanTerms =
        serde_json::from_str(&get::<String>(r, "plan_terms")?).map_err(corrupt)?;
    Ok(PolicyRow {
        policy: Policy {
            id: parse(r, "id")?,
            certificate_number: get(r, "certificate_number")?,
            status: unwire(r, "status")?,
            plan_id: get(r, "plan_id")?,
            partner_id: parse_opt(r, "partner_id")?,
            customer_id: parse(r, "customer_id")?,
            customer_name: u
                .open_opt("name", get(r, "u_name_enc")?)?
                .unwrap_or_default(),
            customer_phone: PhoneNumber::parse(
                &u.open_str("phone", &get::<Vec<u8>>(r, "u_phone_enc")?)?,
            )
            .map_err(corrupt)?,
            imei: Imei::parse(&c.open_str("imei", &get::<Vec<u8>>(r, "imei_enc")?)?)
                .map_err(corrupt)?,
            brand: get(r, "brand")?,
            model: get(r, "model")?,
            device_price: money("device_price")?,
            premium: money("premium")?,
            device_purchase_date: from_day(&get::<String>(r, "device_purchase_date")?)?,
            start_date: from_day(&get::<String>(r, "start_date")?)?,
            end_date: from_day(&get::<String>(r, "end_date")?)?,
            invoice_ref: get(r, "invoice_ref")?,
            screen_photo_ref: get(r, "screen_photo_ref")?,
            claims_used: get::<i64>(r, "claims_used")? as u32,
            created_at: from_ms(get(r, "created_at")?)?,
        },
        terms,
    })
}

impl Store {
    /// Records a sale: customer, policy, commission, SMS and audit, atomically.
    pub async fn record_sale(
        &self,
        keys: &Keyring,
        s: &NewPolicy<'_>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<SaleOutcome> {
        let mut tx = self.begin().await?;
        let r = record_sale_on(&mut tx, keys, s, now, audit).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// A policy with its terms.
    pub async fn policy(&self, keys: &Keyring, id: &PolicyId) -> Result<Option<PolicyRow>> {
        policy_in(self.reader(), keys, id).await
    }

    /// Policies in scope, newest first.
    pub async fn list_policies(&self, keys: &Keyring, scope: Scope) -> Result<Vec<Policy>> {
        let sql = format!(
            "{SELECT} WHERE (CAST($1 AS TEXT) IS NULL OR p.customer_id = $1) AND (CAST($2 AS TEXT) IS NULL OR p.partner_id = $2) \
             ORDER BY p.id DESC LIMIT 500"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope.customer())
            .bind(scope.partner())
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| decode(keys, r).map(|p| p.policy))
            .collect()
    }

    /// The status of the active policy on an IMEI, if any (for the duplicate warning).
    pub async fn active_policy_for_imei(
        &self,
        keys: &Keyring,
        imei: &Imei,
    ) -> Result<Option<PolicyId>> {
        active_policy_for_imei_in(self.reader(), keys, imei).await
    }
}

/// The body of [`Store::record_sale`], on the caller's transaction (the sync
/// push applies it together with the mutation record).
pub async fn record_sale_on(
    conn: &mut sqlx::AnyConnection,
    keys: &Keyring,
    s: &NewPolicy<'_>,
    now: DateTime<Utc>,
    audit: &AuditRecord,
) -> Result<SaleOutcome> {
    let customer = match user_by_phone_on(&mut *conn, keys, s.customer_phone).await? {
        Some(u) => {
            fill_name(&mut *conn, keys, &u.id, s.customer_name).await?;
            u
        }
        None => {
            let new = NewUser {
                id: UserId::new(),
                role: Role::Customer,
                phone: s.customer_phone,
                name: Some(s.customer_name),
                email: s.customer_email,
                partner_id: None,
                service_centre: None,
            };
            match insert_user(&mut *conn, keys, &new, now).await? {
                Some(u) => u,
                // Another counter registered the same customer a moment ago.
                None => user_by_phone_on(&mut *conn, keys, s.customer_phone)
                    .await?
                    .ok_or_else(|| corrupt("customer phone raced"))?,
            }
        }
    };
    let imei_index = blind(keys, index::IMEI, s.imei.as_str());
    // A policy past its end no longer blocks the IMEI.
    sqlx::query("UPDATE policies SET status = 'expired', updated_at = $1 WHERE imei_index = $2 AND status = 'active' AND end_date < $3")
        .bind(ms(now))
        .bind(imei_index.clone())
        .bind(day(s.start))
        .execute(&mut *conn)
        .await?;
    let id = s.id.to_string();
    let (c, dek) = RowCipher::create(keys, "policies", &id)?;
    let done = sqlx::query(
        "INSERT INTO policies (id, certificate_number, status, plan_id, plan_terms, partner_id, sold_by, customer_id, \
         imei_index, dek, imei_enc, brand, model, device_price, premium, device_purchase_date, start_date, end_date, \
         invoice_ref, screen_photo_ref, claims_used, created_at, updated_at) \
         VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 0, $20, $20) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id.clone())
    .bind(s.certificate_number.clone())
    .bind(s.plan_id.to_string())
    .bind(serde_json::to_string(&s.terms).map_err(corrupt)?)
    .bind(s.partner_id.map(|p| p.to_string()))
    .bind(s.sold_by.map(|u| u.to_string()))
    .bind(customer.id.to_string())
    .bind(imei_index)
    .bind(dek)
    .bind(c.seal("imei", s.imei.as_str()))
    .bind(s.brand.to_string())
    .bind(s.model.to_string())
    .bind(s.device_price.paise())
    .bind(s.premium.paise())
    .bind(day(s.purchase_date))
    .bind(day(s.start))
    .bind(day(s.end))
    .bind(s.invoice_ref.to_string())
    .bind(s.screen_photo_ref.to_string())
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM policies WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(if exists.is_some() {
            SaleOutcome::Replayed(s.id)
        } else {
            SaleOutcome::ImeiAlreadyCovered
        });
    }
    if let Some(partner) = s.partner_id {
        sqlx::query("INSERT INTO commissions (id, partner_id, policy_id, amount, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(partner.to_string())
            .bind(s.id.to_string())
            .bind(s.commission.paise())
            .bind(ms(now))
            .execute(&mut *conn)
            .await?;
    }
    let body = format!(
        "Glassguard: your screen protection {} for {} {} is active from {} to {}.",
        s.certificate_number, s.brand, s.model, s.start, s.end
    );
    super::changes::append(&mut *conn, super::changes::Entity::Policy, &id, now).await?;
    super::notifications::enqueue_sms(
        &mut *conn,
        keys,
        "policy_issued",
        s.customer_phone,
        &body,
        now,
    )
    .await?;
    super::audit::append(&mut *conn, now, audit).await?;
    Ok(SaleOutcome::Issued(s.id))
}

/// [`Store::policy`] on any executor: a pool, or the transaction a sync
/// push applies its batch on (so it sees the batch's own earlier effects).
pub async fn policy_in<'e, E>(exec: E, keys: &Keyring, id: &PolicyId) -> Result<Option<PolicyRow>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!("{SELECT} WHERE p.id = $1");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(exec)
        .await?;
    r.map(|r| decode(keys, &r)).transpose()
}

/// [`Store::active_policy_for_imei`] on any executor.
pub async fn active_policy_for_imei_in<'e, E>(
    exec: E,
    keys: &Keyring,
    imei: &Imei,
) -> Result<Option<PolicyId>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r: Option<String> =
        sqlx::query_scalar("SELECT id FROM policies WHERE imei_index = $1 AND status = 'active'")
            .bind(blind(keys, index::IMEI, imei.as_str()))
            .fetch_optional(exec)
            .await?;
    r.map(|s| s.parse().map_err(|_| corrupt("bad policy id")))
        .transpose()
}
