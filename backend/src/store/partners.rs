//! Partners (phone shops): KYC metadata, all encrypted; found by GSTIN
//! through its blind index. Plus the commission ledger.

use chrono::{DateTime, Utc};
use glassguard_protocol::api::{
    Address, CommissionEntry, Partner, PartnerRegistration, PartnerStatus,
};
use glassguard_protocol::{Gstin, Money, Pan, PartnerId, PhoneNumber, Role, UserId};
use sqlx::any::AnyRow;

use super::keys::{RowCipher, blind, index};
use super::users::{NewUser, UserRow, insert_user};
use super::{AuditRecord, Result, Store, StoreError, from_ms, get, ms, parse, unwire, wire};
use crate::crypto::Keyring;

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationConflict {
    /// A partner with this GSTIN exists.
    GstinTaken,
    /// The contact phone belongs to another user.
    PhoneInUse,
}

fn corrupt(e: glassguard_protocol::problem::ParseError) -> StoreError {
    StoreError::Corrupt(e.message)
}

fn decode(keys: &Keyring, r: &AnyRow) -> Result<Partner> {
    let id: String = get(r, "id")?;
    let c = RowCipher::open(keys, "partners", &id, get(r, "dek")?)?;
    let open =
        |col: &str, enc: &str| -> Result<String> { c.open_str(col, &get::<Vec<u8>>(r, enc)?) };
    let address: Address = serde_json::from_str(&open("address", "address_enc")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Partner {
        id: parse(r, "id")?,
        legal_name: open("legal_name", "legal_name_enc")?,
        gstin: Gstin::parse(&open("gstin", "gstin_enc")?).map_err(corrupt)?,
        pan: Pan::parse(&open("pan", "pan_enc")?).map_err(corrupt)?,
        address,
        contact_phone: PhoneNumber::parse(&open("contact_phone", "contact_phone_enc")?)
            .map_err(corrupt)?,
        status: unwire(r, "status")?,
        created_at: from_ms(get(r, "created_at")?)?,
    })
}

impl Store {
    /// Registers a pending partner and its first partner_admin, atomically.
    pub async fn register_partner(
        &self,
        keys: &Keyring,
        reg: &PartnerRegistration,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<std::result::Result<(Partner, UserRow), RegistrationConflict>> {
        let id = PartnerId::new();
        let sid = id.to_string();
        let (c, dek) = RowCipher::create(keys, "partners", &sid)?;
        let address =
            serde_json::to_string(&reg.address).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let payout =
            serde_json::to_string(&reg.payout).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO partners (id, status, gstin_index, dek, legal_name_enc, gstin_enc, pan_enc, address_enc, \
             contact_phone_enc, payout_enc, created_at, updated_at) \
             VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (gstin_index) DO NOTHING",
        )
        .bind(sid.clone())
        .bind(blind(keys, index::GSTIN, reg.gstin.as_str()))
        .bind(dek)
        .bind(c.seal("legal_name", &reg.legal_name))
        .bind(c.seal("gstin", reg.gstin.as_str()))
        .bind(c.seal("pan", reg.pan.as_str()))
        .bind(c.seal("address", &address))
        .bind(c.seal("contact_phone", reg.contact_phone.as_str()))
        .bind(c.seal("payout", &payout))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(Err(RegistrationConflict::GstinTaken));
        }
        let admin = NewUser {
            id: UserId::new(),
            role: Role::PartnerAdmin,
            phone: &reg.contact_phone,
            name: Some(&reg.contact_name),
            email: None,
            partner_id: Some(id),
            service_centre: None,
        };
        let Some(user) = insert_user(&mut tx, keys, &admin, now).await? else {
            return Ok(Err(RegistrationConflict::PhoneInUse));
        };
        let mut rec = audit.clone();
        rec.resource_id = Some(sid);
        rec.actor_id = Some(user.id);
        rec.actor_role = Some(Role::PartnerAdmin);
        super::audit::append(&mut tx, now, &rec).await?;
        tx.commit().await?;
        let partner = Partner {
            id,
            legal_name: reg.legal_name.clone(),
            gstin: reg.gstin,
            pan: reg.pan,
            address: reg.address.clone(),
            contact_phone: reg.contact_phone.clone(),
            status: PartnerStatus::Pending,
            created_at: from_ms(ms(now))?,
        };
        Ok(Ok((partner, user)))
    }

    /// A partner, decrypted.
    pub async fn partner(&self, keys: &Keyring, id: &PartnerId) -> Result<Option<Partner>> {
        let r = sqlx::query("SELECT * FROM partners WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await?;
        r.map(|r| decode(keys, &r)).transpose()
    }

    /// A partner's status only (no decryption).
    pub async fn partner_status(&self, id: &PartnerId) -> Result<Option<PartnerStatus>> {
        partner_status_in(self.reader(), id).await
    }

    /// Partners, optionally by status, oldest first.
    pub async fn list_partners(
        &self,
        keys: &Keyring,
        status: Option<PartnerStatus>,
    ) -> Result<Vec<Partner>> {
        let rows = sqlx::query("SELECT * FROM partners WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY id LIMIT 500")
            .bind(status.map(|s| wire(&s)))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| decode(keys, r)).collect()
    }

    /// Moves a partner from one of `from` to `to`; `Err(current)` if it was elsewhere.
    pub async fn set_partner_status(
        &self,
        id: &PartnerId,
        from: &[PartnerStatus],
        to: PartnerStatus,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<std::result::Result<(), PartnerStatus>>> {
        let mut tx = self.begin().await?;
        let cur: Option<String> = sqlx::query_scalar("SELECT status FROM partners WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(cur) = cur else { return Ok(None) };
        let cur: PartnerStatus = serde_json::from_value(serde_json::Value::String(cur))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !from.contains(&cur) {
            return Ok(Some(Err(cur)));
        }
        sqlx::query(
            "UPDATE partners SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(wire(&to))
        .bind(ms(now))
        .bind(id.to_string())
        .bind(wire(&cur))
        .execute(&mut *tx)
        .await?;
        super::audit::append(&mut tx, now, audit).await?;
        tx.commit().await?;
        Ok(Some(Ok(())))
    }

    /// A partner's commission ledger, newest first.
    pub async fn commissions(&self, partner: &PartnerId) -> Result<Vec<CommissionEntry>> {
        let rows = sqlx::query("SELECT policy_id, amount, created_at FROM commissions WHERE partner_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(partner.to_string())
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CommissionEntry {
                    policy_id: parse(r, "policy_id")?,
                    amount: Money::from_paise(get(r, "amount")?).map_err(corrupt)?,
                    created_at: from_ms(get(r, "created_at")?)?,
                })
            })
            .collect()
    }
}

/// [`Store::partner_status`] on any executor: a pool, or the transaction a sync
/// push applies its batch on (so it sees the batch's own earlier effects).
pub async fn partner_status_in<'e, E>(exec: E, id: &PartnerId) -> Result<Option<PartnerStatus>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = sqlx::query("SELECT status FROM partners WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(exec)
        .await?;
    r.map(|r| unwire(&r, "status")).transpose()
}
