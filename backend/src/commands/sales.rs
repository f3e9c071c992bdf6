//! Recording a sale at the counter.

use glassguard_protocol::api::PartnerStatus;
use glassguard_protocol::sync::OfflineSale;
use glassguard_protocol::{ErrorCode, PolicyId};
use sqlx::AnyConnection;

use super::text;
use crate::authz::{Action, Resource};
use crate::crypto::random_code;
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, Caller, partner_status_name};
use crate::plans::{PlanTerms, check_sale};
use crate::store::policies::{active_policy_for_imei_in, policy_in, record_sale_on};
use crate::store::{NewPolicy, SaleOutcome};

const CERT_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// How the customer agreed to the sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// The customer's code was checked (before the transaction began).
    Verified,
    /// Recorded offline without a code: the customer is told by SMS and can dispute it.
    Later,
}

/// What recording did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new policy.
    Issued(PolicyId),
    /// The same sale was recorded before.
    Replayed(PolicyId),
}

/// The checks a sale must pass that need no write: caller, partner, fields,
/// plan rules, and whether the IMEI is free (or this is a retry). Run before
/// the customer's code is consumed, and again inside [`record`].
pub async fn precheck<'e, E>(
    state: &AppState,
    caller: &Caller,
    sale: &OfflineSale,
    email: Option<&str>,
    exec: E,
) -> ApiResult<Option<PolicyId>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let user = caller.user()?;
    let partner = user.partner_id.ok_or(ApiError::Forbidden)?;
    let status = state
        .store
        .partner_status(&partner)
        .await?
        .ok_or(ApiError::Forbidden)?;
    state.authorize(
        caller,
        Action::PolicyCreate,
        &Resource::Partner {
            id: partner,
            status: partner_status_name(status),
        },
    )?;
    match status {
        PartnerStatus::Approved => {}
        PartnerStatus::Suspended => {
            return Err(ApiError::rule(
                ErrorCode::PartnerSuspended,
                "the partner is suspended and cannot sell",
            ));
        }
        PartnerStatus::Pending => {
            return Err(ApiError::rule(
                ErrorCode::PartnerNotApproved,
                "the partner is not approved yet",
            ));
        }
    }
    text("customer_name", &sale.customer_name, 120)?;
    text("brand", &sale.brand, 60)?;
    text("model", &sale.model, 80)?;
    text("invoice_ref", &sale.invoice_ref, 200)?;
    text("screen_photo_ref", &sale.screen_photo_ref, 200)?;
    if let Some(e) = email
        && (!e.contains('@') || e.len() > 200)
    {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "customer_email is not an email address",
        ));
    }
    let plan = state.catalog.get(&sale.plan_id).ok_or_else(|| {
        ApiError::rule(
            ErrorCode::PlanNotApplicable,
            format!("there is no plan {:?}", sale.plan_id),
        )
    })?;
    check_sale(
        plan,
        sale.device_price,
        sale.device_purchase_date,
        state.now().date_naive(),
    )?;
    match active_policy_for_imei_in(exec, &state.keys, &sale.imei).await? {
        None => Ok(None),
        Some(existing) if existing == sale.id => Ok(Some(existing)),
        Some(_) => Err(ApiError::conflict(
            ErrorCode::ImeiAlreadyCovered,
            "this IMEI already has an active policy",
        )),
    }
}

/// Records the sale on the caller's transaction.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    sale: &OfflineSale,
    email: Option<&str>,
    consent: Consent,
    conn: &mut AnyConnection,
) -> ApiResult<Recorded> {
    if let Some(existing) = precheck(state, caller, sale, email, &mut *conn).await? {
        let row = policy_in(&mut *conn, &state.keys, &existing)
            .await?
            .ok_or(ApiError::NotFound)?;
        let partner = caller.user()?.partner_id;
        if row.policy.partner_id == partner {
            return Ok(Recorded::Replayed(existing));
        }
        return Err(ApiError::conflict(
            ErrorCode::ImeiAlreadyCovered,
            "this IMEI already has an active policy",
        ));
    }
    let user = caller.user()?;
    let plan = state.catalog.get(&sale.plan_id).ok_or(ApiError::NotFound)?;
    let now = state.now();
    let (premium, start, end) = check_sale(
        plan,
        sale.device_price,
        sale.device_purchase_date,
        now.date_naive(),
    )?;
    let new = NewPolicy {
        id: sale.id,
        certificate_number: format!("GG-{}-{}", now.format("%Y"), random_code(CERT_ALPHABET, 8)),
        plan_id: &plan.id,
        terms: PlanTerms::from(plan),
        partner_id: user.partner_id,
        sold_by: Some(user.user_id),
        customer_phone: &sale.customer_phone,
        customer_name: sale.customer_name.trim(),
        customer_email: email,
        imei: sale.imei,
        brand: sale.brand.trim(),
        model: sale.model.trim(),
        device_price: sale.device_price,
        premium,
        commission: premium.basis_points(plan.commission_bp),
        purchase_date: sale.device_purchase_date,
        start,
        end,
        invoice_ref: &sale.invoice_ref,
        screen_photo_ref: &sale.screen_photo_ref,
    };
    let mut rec = state.audit(
        caller,
        Action::PolicyCreate,
        "policy",
        Some(sale.id.to_string()),
    );
    if consent == Consent::Later {
        rec.action = "policy.create.consent_later".into();
    }
    match record_sale_on(conn, &state.keys, &new, now, &rec).await? {
        SaleOutcome::Issued(id) => Ok(Recorded::Issued(id)),
        SaleOutcome::Replayed(id) => Ok(Recorded::Replayed(id)),
        SaleOutcome::ImeiAlreadyCovered => Err(ApiError::conflict(
            ErrorCode::ImeiAlreadyCovered,
            "this IMEI already has an active policy",
        )),
    }
}
