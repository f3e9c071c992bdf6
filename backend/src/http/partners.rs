//! Partners: self-registration, approval and suspension, staff, commission.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use glassguard_protocol::api::{
    CommissionLedger, Me, Page, Partner, PartnerDecision, PartnerRegistered, PartnerRegistration,
    PartnerStatus, StaffCreate, UserSummary,
};
use glassguard_protocol::{ErrorCode, Money, PartnerId, UserId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{check_otp, new_tokens, session_body};
use super::{AppState, Caller, partner_status_name};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ApiResult};
use crate::store::{NewUser, RegistrationConflict};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list_partners))
        .routes(routes!(get_partner))
        .routes(routes!(approve))
        .routes(routes!(suspend))
        .routes(routes!(add_staff, list_staff))
        .routes(routes!(commission))
}

async fn partner_resource(state: &AppState, id: &PartnerId) -> ApiResult<Resource> {
    let status = state
        .store
        .partner_status(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Resource::Partner {
        id: *id,
        status: partner_status_name(status),
    })
}

fn check_text(field: &str, v: &str, max: usize) -> ApiResult<()> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// A shop registers itself; its contact phone is verified by OTP.
#[utoipa::path(post, path = "/v1/partners", tag = "partners", request_body = PartnerRegistration,
    responses((status = 201, body = PartnerRegistered), (status = 409, body = glassguard_protocol::Problem)))]
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(reg): Json<PartnerRegistration>,
) -> ApiResult<(StatusCode, Json<PartnerRegistered>)> {
    state.authorize(
        &caller,
        Action::PartnerRegister,
        &Resource::Collection("partners"),
    )?;
    check_text("legal_name", &reg.legal_name, 200)?;
    check_text("contact_name", &reg.contact_name, 120)?;
    check_text("address.line1", &reg.address.line1, 200)?;
    check_text("address.city", &reg.address.city, 80)?;
    if reg.address.pin.len() != 6 || !reg.address.pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "address.pin must be a six-digit PIN code",
        ));
    }
    if reg.gstin.pan() != reg.pan.as_str() {
        return Err(ApiError::rule(
            ErrorCode::InvalidGstin,
            "the GSTIN does not carry this PAN",
        ));
    }
    check_otp(
        &state,
        &reg.contact_phone,
        glassguard_protocol::api::OtpPurpose::PartnerRegistration,
        &reg.otp_code,
    )
    .await?;
    let now = state.now();
    let rec = state.audit(&caller, Action::PartnerRegister, "partner", None);
    let (partner, user) = match state
        .store
        .register_partner(&state.keys, &reg, now, &rec)
        .await?
    {
        Ok(v) => v,
        Err(RegistrationConflict::GstinTaken) => {
            return Err(ApiError::conflict(
                ErrorCode::GstinTaken,
                "a partner with this GSTIN is already registered",
            ));
        }
        Err(RegistrationConflict::PhoneInUse) => {
            return Err(ApiError::conflict(
                ErrorCode::PhoneInUse,
                "this phone number already belongs to another account",
            ));
        }
    };
    let (access, refresh, pair) = new_tokens(&state);
    state
        .store
        .create_session(&user.id, &reg.device_id, &pair, now)
        .await?;
    let me = Me {
        id: user.id,
        role: user.role,
        partner_id: user.partner_id,
        name: user.name,
        phone: user.phone,
    };
    Ok((
        StatusCode::CREATED,
        Json(PartnerRegistered {
            partner,
            session: session_body(&state, access, refresh, me),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct PartnerFilter {
    /// Only partners in this status.
    status: Option<PartnerStatus>,
}

/// Partners, e.g. those awaiting approval.
#[utoipa::path(get, path = "/v1/partners", tag = "partners", params(PartnerFilter), responses((status = 200, body = Page<Partner>)))]
async fn list_partners(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<PartnerFilter>,
) -> ApiResult<Json<Page<Partner>>> {
    state.authorize(
        &caller,
        Action::PartnerList,
        &Resource::Collection("partners"),
    )?;
    let items = state.store.list_partners(&state.keys, f.status).await?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::PartnerList, "partner", None),
        )
        .await?;
    Ok(Json(Page { items }))
}

/// One partner.
#[utoipa::path(get, path = "/v1/partners/{id}", tag = "partners", params(("id" = PartnerId, Path)), responses((status = 200, body = Partner)))]
async fn get_partner(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PartnerId>,
) -> ApiResult<Json<Partner>> {
    let res = partner_resource(&state, &id).await?;
    state.authorize(&caller, Action::PartnerRead, &res)?;
    let p = state
        .store
        .partner(&state.keys, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(
                &caller,
                Action::PartnerRead,
                "partner",
                Some(id.to_string()),
            ),
        )
        .await?;
    Ok(Json(p))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: PartnerId,
    action: Action,
    from: &[PartnerStatus],
    to: PartnerStatus,
) -> ApiResult<Json<Partner>> {
    let res = partner_resource(state, &id).await?;
    state.authorize(caller, action, &res)?;
    let rec = state.audit(caller, action, "partner", Some(id.to_string()));
    match state
        .store
        .set_partner_status(&id, from, to, state.now(), &rec)
        .await?
    {
        None => Err(ApiError::NotFound),
        Some(Err(cur)) => Err(ApiError::conflict(
            ErrorCode::PartnerStateConflict,
            format!(
                "the partner is {}; this decision does not apply",
                partner_status_name(cur)
            ),
        )),
        Some(Ok(())) => Ok(Json(
            state
                .store
                .partner(&state.keys, &id)
                .await?
                .ok_or(ApiError::NotFound)?,
        )),
    }
}

/// Approve a pending (or re-instate a suspended) partner.
#[utoipa::path(post, path = "/v1/partners/{id}/approve", tag = "partners", params(("id" = PartnerId, Path)),
    request_body = PartnerDecision, responses((status = 200, body = Partner)))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PartnerId>,
    Json(_d): Json<PartnerDecision>,
) -> ApiResult<Json<Partner>> {
    decide(
        &state,
        &caller,
        id,
        Action::PartnerApprove,
        &[PartnerStatus::Pending, PartnerStatus::Suspended],
        PartnerStatus::Approved,
    )
    .await
}

/// Suspend a partner.
#[utoipa::path(post, path = "/v1/partners/{id}/suspend", tag = "partners", params(("id" = PartnerId, Path)),
    request_body = PartnerDecision, responses((status = 200, body = Partner)))]
async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PartnerId>,
    Json(_d): Json<PartnerDecision>,
) -> ApiResult<Json<Partner>> {
    decide(
        &state,
        &caller,
        id,
        Action::PartnerSuspend,
        &[PartnerStatus::Pending, PartnerStatus::Approved],
        PartnerStatus::Suspended,
    )
    .await
}

/// Add a staff member (partner_admin of an approved partner).
#[utoipa::path(post, path = "/v1/partners/{id}/staff", tag = "partners", params(("id" = PartnerId, Path)),
    request_body = StaffCreate, responses((status = 201, body = UserSummary)))]
async fn add_staff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PartnerId>,
    Json(req): Json<StaffCreate>,
) -> ApiResult<(StatusCode, Json<UserSummary>)> {
    let res = partner_resource(&state, &id).await?;
    state.authorize(&caller, Action::StaffCreate, &res)?;
    if !req.role.is_partner_user() {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "staff are partner_staff or partner_admin",
        ));
    }
    check_text("name", &req.name, 120)?;
    match state.store.partner_status(&id).await? {
        Some(PartnerStatus::Approved) => {}
        Some(PartnerStatus::Suspended) => {
            return Err(ApiError::rule(
                ErrorCode::PartnerSuspended,
                "the partner is suspended",
            ));
        }
        _ => {
            return Err(ApiError::rule(
                ErrorCode::PartnerNotApproved,
                "staff can be added once the partner is approved",
            ));
        }
    }
    let new = NewUser {
        id: UserId::new(),
        role: req.role,
        phone: &req.phone,
        name: Some(&req.name),
        email: None,
        partner_id: Some(id),
        service_centre: None,
    };
    let rec = state.audit(
        &caller,
        Action::StaffCreate,
        "user",
        Some(new.id.to_string()),
    );
    let user = state
        .store
        .create_user(&state.keys, &new, state.now(), &rec)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                ErrorCode::PhoneInUse,
                "this phone number already belongs to another account",
            )
        })?;
    Ok((StatusCode::CREATED, Json(user.summary())))
}

/// A partner's staff.
#[utoipa::path(get, path = "/v1/partners/{id}/staff", tag = "partners", params(("id" = PartnerId, Path)),
    responses((status = 200, body = Page<UserSummary>)))]
async fn list_staff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PartnerId>,
) -> ApiResult<Json<Page<UserSummary>>> {
    let res = partner_resource(&state, &id).await?;
    state.authorize(&caller, Action::StaffList, &res)?;
    let items = state
        .store
        .list_users(&state.keys, None, Some(id))
        .await?
        .iter()
        .map(|u| u.summary())
        .collect();
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::StaffList, "partner", Some(id.to_string())),
        )
        .await?;
    Ok(Json(Page { items }))
}

/// A partner's commission ledger.
#[utoipa::path(get, path = "/v1/partners/{id}/commission", tag = "partners", params(("id" = PartnerId, Path)),
    responses((status = 200, body = CommissionLedger)))]
async fn commission(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PartnerId>,
) -> ApiResult<Json<CommissionLedger>> {
    let res = partner_resource(&state, &id).await?;
    state.authorize(&caller, Action::CommissionRead, &res)?;
    let entries = state.store.commissions(&id).await?;
    let total = entries
        .iter()
        .try_fold(Money::ZERO, |acc, e| acc.checked_add(e.amount))
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("commission overflow")))?;
    Ok(Json(CommissionLedger { entries, total }))
}
