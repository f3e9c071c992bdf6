//! Vouchers: a customer's list, and redemption at a partner with the
//! customer's OTP.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use glassguard_protocol::ErrorCode;
use glassguard_protocol::api::{
    OtpPurpose, OtpSent, Page, Voucher, VoucherOtpRequest, VoucherRedeemRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{check_otp, send_otp};
use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, ApiResult};
use crate::store::RedeemOutcome;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_vouchers))
        .routes(routes!(redeem_otp))
        .routes(routes!(redeem))
}

/// The caller's vouchers.
#[utoipa::path(get, path = "/v1/vouchers", tag = "vouchers", responses((status = 200, body = Page<Voucher>)))]
async fn list_vouchers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<Voucher>>> {
    state.authorize(
        &caller,
        Action::VoucherList,
        &Resource::Collection("vouchers"),
    )?;
    let user = caller.user()?;
    Ok(Json(Page {
        items: state.store.vouchers_for(&user.user_id).await?,
    }))
}

/// The caller's partner, as a resource; and the voucher, checked usable.
async fn partner_and_voucher(
    state: &AppState,
    caller: &Caller,
    action: Action,
    code: &str,
) -> ApiResult<Voucher> {
    let user = caller.user()?;
    let partner = user.partner_id.ok_or(ApiError::Forbidden)?;
    let status = state
        .store
        .partner_status(&partner)
        .await?
        .ok_or(ApiError::Forbidden)?;
    state.authorize(
        caller,
        action,
        &Resource::Partner {
            id: partner,
            status: super::partner_status_name(status),
        },
    )?;
    if status != glassguard_protocol::api::PartnerStatus::Approved {
        return Err(ApiError::rule(
            ErrorCode::PartnerNotApproved,
            "only approved partners redeem vouchers",
        ));
    }
    let code = code.trim().to_uppercase();
    let v = state
        .store
        .voucher_by_code(&code)
        .await?
        .ok_or(ApiError::NotFound)?;
    if v.redeemed_at.is_some() {
        return Err(ApiError::conflict(
            ErrorCode::VoucherAlreadyRedeemed,
            "this voucher was already redeemed",
        ));
    }
    if v.expires_at <= state.now() {
        return Err(ApiError::rule(
            ErrorCode::VoucherExpired,
            "this voucher has expired",
        ));
    }
    Ok(v)
}

/// Send the voucher's owner a code to approve redemption at this partner.
#[utoipa::path(post, path = "/v1/vouchers/redeem/otp", tag = "vouchers", request_body = VoucherOtpRequest,
    responses((status = 202, body = OtpSent)))]
async fn redeem_otp(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<VoucherOtpRequest>,
) -> ApiResult<(StatusCode, Json<OtpSent>)> {
    let v = partner_and_voucher(&state, &caller, Action::VoucherRedeemOtp, &req.code).await?;
    let customer = state
        .store
        .user_by_id(&state.keys, &v.customer_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let sent = send_otp(
        &state,
        &caller,
        &customer.phone,
        OtpPurpose::VoucherRedemption,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// Redeem a voucher with the customer's code; single use, also under concurrent requests.
#[utoipa::path(post, path = "/v1/vouchers/redeem", tag = "vouchers", request_body = VoucherRedeemRequest,
    responses((status = 200, body = Voucher), (status = 409, body = glassguard_protocol::Problem)))]
async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<VoucherRedeemRequest>,
) -> ApiResult<Json<Voucher>> {
    let v = partner_and_voucher(&state, &caller, Action::VoucherRedeem, &req.code).await?;
    let customer = state
        .store
        .user_by_id(&state.keys, &v.customer_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    check_otp(
        &state,
        &customer.phone,
        OtpPurpose::VoucherRedemption,
        &req.customer_otp,
    )
    .await?;
    let user = caller.user()?;
    let partner = user.partner_id.ok_or(ApiError::Forbidden)?;
    let rec = state.audit(
        &caller,
        Action::VoucherRedeem,
        "voucher",
        Some(v.id.to_string()),
    );
    match state
        .store
        .redeem_voucher(&v.code, &partner, &user.user_id, state.now(), &rec)
        .await?
    {
        RedeemOutcome::Redeemed => Ok(Json(
            state
                .store
                .voucher_by_code(&v.code)
                .await?
                .ok_or(ApiError::NotFound)?,
        )),
        RedeemOutcome::AlreadyRedeemed => Err(ApiError::conflict(
            ErrorCode::VoucherAlreadyRedeemed,
            "this voucher was already redeemed",
        )),
        RedeemOutcome::Expired => Err(ApiError::rule(
            ErrorCode::VoucherExpired,
            "this voucher has expired",
        )),
    }
}
