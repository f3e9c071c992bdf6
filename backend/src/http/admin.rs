//! Admin views: the dev SMS inbox and the audit log.

use axum::Json;
use axum::extract::{Path, Query, State};
use glassguard_protocol::PhoneNumber;
use glassguard_protocol::api::{AuditEntry, Page, SmsMessage};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::error::ApiResult;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sms_inbox))
        .routes(routes!(audit_log))
        .routes(routes!(trace))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct InboxFilter {
    /// Only messages to this phone.
    to: Option<PhoneNumber>,
    /// At most this many (default 50).
    limit: Option<i64>,
}

/// What the dev SMS sender has "sent", newest first.
#[utoipa::path(get, path = "/v1/admin/sms", tag = "admin", params(InboxFilter), responses((status = 200, body = Page<SmsMessage>)))]
async fn sms_inbox(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<InboxFilter>,
) -> ApiResult<Json<Page<SmsMessage>>> {
    state.authorize(&caller, Action::SmsRead, &Resource::Collection("sms"))?;
    let items = state
        .store
        .inbox(
            &state.keys,
            f.to.as_ref(),
            f.limit.unwrap_or(50).clamp(1, 500),
        )
        .await?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::SmsRead, "sms", None),
        )
        .await?;
    Ok(Json(Page { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditFilter {
    /// Only entries about this resource id.
    resource_id: Option<String>,
    /// At most this many (default 100).
    limit: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", params(AuditFilter), responses((status = 200, body = Page<AuditEntry>)))]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<AuditFilter>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    state.authorize(&caller, Action::AuditRead, &Resource::Collection("audit"))?;
    let items = state
        .store
        .audit_entries(
            f.resource_id.as_deref(),
            f.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(Page { items }))
}

/// The resources a trace can be asked for.
#[derive(Clone, Copy, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Traced {
    /// A policy.
    Policy,
    /// A claim.
    Claim,
}

/// Who read or changed one policy or claim, when, from where and with which
/// request id and trace context: its audit entries, oldest first.
#[utoipa::path(
    get,
    path = "/v1/admin/trace/{resource_type}/{id}",
    tag = "admin",
    params(
        ("resource_type" = Traced, Path, description = "policy or claim"),
        ("id" = uuid::Uuid, Path, description = "the policy's or claim's id")
    ),
    responses((status = 200, body = Page<AuditEntry>))
)]
async fn trace(
    State(state): State<AppState>,
    caller: Caller,
    Path((resource_type, id)): Path<(Traced, uuid::Uuid)>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    state.authorize(&caller, Action::AuditTrace, &Resource::Collection("audit"))?;
    let resource_type = match resource_type {
        Traced::Policy => "policy",
        Traced::Claim => "claim",
    };
    let items = state
        .store
        .audit_trace(resource_type, &id.to_string(), 10_000)
        .await?;
    Ok(Json(Page { items }))
}
