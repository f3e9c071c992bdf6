//! Sales at the counter and the policies they issue.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use glassguard_protocol::api::{OtpPurpose, Page, PartnerStatus, Policy, SaleRequest};
use glassguard_protocol::{ErrorCode, PolicyId, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::check_otp;
use super::partners::status_name;
use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::crypto::random_code;
use crate::error::{ApiError, ApiResult};
use crate::plans::{PlanTerms, check_sale};
use crate::store::{AuthedUser, NewPolicy, SaleOutcome, Scope};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_sale))
        .routes(routes!(list_policies))
        .routes(routes!(get_policy))
}

const CERT_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

fn text(field: &str, v: &str, max: usize) -> ApiResult<()> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
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
    let user = caller.user()?.clone();
    let partner = user.partner_id.ok_or(ApiError::Forbidden)?;
    let status = state
        .store
        .partner_status(&partner)
        .await?
        .ok_or(ApiError::Forbidden)?;
    state.authorize(
        &caller,
        Action::PolicyCreate,
        &Resource::Partner {
            id: partner,
            status: status_name(status),
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
    text("customer_name", &req.customer_name, 120)?;
    text("brand", &req.brand, 60)?;
    text("model", &req.model, 80)?;
    text("invoice_ref", &req.invoice_ref, 200)?;
    text("screen_photo_ref", &req.screen_photo_ref, 200)?;
    if let Some(e) = &req.customer_email
        && (!e.contains('@') || e.len() > 200)
    {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "customer_email is not an email address",
        ));
    }
    let plan = state.catalog.get(&req.plan_id).ok_or_else(|| {
        ApiError::rule(
            ErrorCode::PlanNotApplicable,
            format!("there is no plan {:?}", req.plan_id),
        )
    })?;
    let now = state.now();
    let (premium, start, end) = check_sale(
        plan,
        req.device_price,
        req.device_purchase_date,
        now.date_naive(),
    )?;
    // Before the customer's code is used up: a retry, or a covered IMEI.
    if let Some(existing) = state
        .store
        .active_policy_for_imei(&state.keys, &req.imei)
        .await?
    {
        if existing == req.id {
            let row = state
                .store
                .policy(&state.keys, &existing)
                .await?
                .ok_or(ApiError::NotFound)?;
            if row.policy.partner_id == Some(partner) {
                return Ok((StatusCode::OK, Json(row.policy)));
            }
        }
        return Err(ApiError::conflict(
            ErrorCode::ImeiAlreadyCovered,
            "this IMEI already has an active policy",
        ));
    }
    check_otp(
        &state,
        &req.customer_phone,
        OtpPurpose::SaleConsent,
        &req.customer_otp,
    )
    .await?;
    let sale = NewPolicy {
        id: req.id,
        certificate_number: format!("GG-{}-{}", now.format("%Y"), random_code(CERT_ALPHABET, 8)),
        plan_id: &plan.id,
        terms: PlanTerms::from(plan),
        partner_id: Some(partner),
        sold_by: Some(user.user_id),
        customer_phone: &req.customer_phone,
        customer_name: req.customer_name.trim(),
        customer_email: req.customer_email.as_deref(),
        imei: req.imei,
        brand: req.brand.trim(),
        model: req.model.trim(),
        device_price: req.device_price,
        premium,
        commission: premium.basis_points(plan.commission_bp),
        purchase_date: req.device_purchase_date,
        start,
        end,
        invoice_ref: &req.invoice_ref,
        screen_photo_ref: &req.screen_photo_ref,
    };
    let rec = state.audit(
        &caller,
        Action::PolicyCreate,
        "policy",
        Some(req.id.to_string()),
    );
    let status = match state
        .store
        .record_sale(&state.keys, &sale, now, &rec)
        .await?
    {
        SaleOutcome::Issued(_) => StatusCode::CREATED,
        SaleOutcome::Replayed(_) => StatusCode::OK,
        SaleOutcome::ImeiAlreadyCovered => {
            return Err(ApiError::conflict(
                ErrorCode::ImeiAlreadyCovered,
                "this IMEI already has an active policy",
            ));
        }
    };
    let row = state
        .store
        .policy(&state.keys, &req.id)
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
