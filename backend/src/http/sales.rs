//! Sales at the counter and the policies they issue.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use glassguard_protocol::api::{OtpPurpose, Page, Policy, SaleRequest};
use glassguard_protocol::{PolicyId, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::check_otp;
use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::commands::sales::{self, Consent, Recorded};
use crate::error::{ApiError, ApiResult};
use crate::store::{AuthedUser, Scope};
use glassguard_protocol::sync::OfflineSale;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_sale))
        .routes(routes!(list_policies))
        .routes(routes!(get_policy))
}

/// The scope of rows a user may list.
pub(super) fn scope_of(user: &AuthedUser) -> Scope {
    match user.role {
        Role::Customer => Scope::Customer(user.user_id),
        Role::PartnerAdmin | Role::PartnerStaff => match user.partner_id {
            Some(p) => Scope::Partner(p),
            None => Scope::Customer(user.user_id),
        },
        Role::Technician => Scope::Technician(user.user_id),
        Role::Adjuster | Role::Admin => Scope::All,
    }
}

/// Record a sale: the customer's OTP confirms it, the plan's rules decide it.
#[utoipa::path(post, path = "/v1/sales", tag = "sales", request_body = SaleRequest,
    responses((status = 201, body = Policy), (status = 200, body = Policy, description = "a retry of a recorded sale"),
              (status = 409, body = glassguard_protocol::Problem), (status = 422, body = glassguard_protocol::Problem)))]
async fn record_sale(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<SaleRequest>,
) -> ApiResult<(StatusCode, Json<Policy>)> {
    let sale = OfflineSale {
        id: req.id,
        customer_phone: req.customer_phone.clone(),
        customer_name: req.customer_name.clone(),
        customer_otp: Some(req.customer_otp.clone()),
        imei: req.imei,
        brand: req.brand.clone(),
        model: req.model.clone(),
        device_price: req.device_price,
        device_purchase_date: req.device_purchase_date,
        invoice_ref: req.invoice_ref.clone(),
        screen_photo_ref: req.screen_photo_ref.clone(),
        plan_id: req.plan_id.clone(),
    };
    let email = req.customer_email.as_deref();
    // Everything that can refuse the sale is checked before the customer's
    // code is used up; a retry of a recorded sale needs no new code.
    let replay = sales::precheck(&state, &caller, &sale, email, state.store.reader()).await?;
    if replay.is_none() {
        check_otp(
            &state,
            &req.customer_phone,
            OtpPurpose::SaleConsent,
            &req.customer_otp,
        )
        .await?;
    }
    let mut tx = state.store.begin().await?;
    let recorded = sales::record(&state, &caller, &sale, email, Consent::Verified, &mut tx).await?;
    tx.commit().await?;
    let (status, id) = match recorded {
        Recorded::Issued(id) => (StatusCode::CREATED, id),
        Recorded::Replayed(id) => (StatusCode::OK, id),
    };
    let row = state
        .store
        .policy(&state.keys, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((status, Json(row.policy)))
}

/// Policies the caller may see: a customer's own, a partner's sales, or all for insurer staff.
#[utoipa::path(get, path = "/v1/policies", tag = "sales", responses((status = 200, body = Page<Policy>)))]
async fn list_policies(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<Policy>>> {
    state.authorize(
        &caller,
        Action::PolicyList,
        &Resource::Collection("policies"),
    )?;
    let user = caller.user()?;
    let items = state
        .store
        .list_policies(&state.keys, scope_of(user))
        .await?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::PolicyList, "policy", None),
        )
        .await?;
    Ok(Json(Page { items }))
}

/// One policy (its certificate).
#[utoipa::path(get, path = "/v1/policies/{id}", tag = "sales", params(("id" = PolicyId, Path)), responses((status = 200, body = Policy)))]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PolicyId>,
) -> ApiResult<Json<Policy>> {
    let row = state
        .store
        .policy(&state.keys, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let p = row.policy;
    state.authorize(
        &caller,
        Action::PolicyRead,
        &Resource::Policy {
            id,
            customer: p.customer_id,
            partner: p.partner_id,
        },
    )?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::PolicyRead, "policy", Some(id.to_string())),
        )
        .await?;
    Ok(Json(p))
}
