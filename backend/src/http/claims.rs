//! Claims: filing, the queue, transitions, the timeline, documents, and
//! technicians' jobs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use glassguard_protocol::api::{
    Claim, ClaimCreate, ClaimDocument, ClaimEvent, ClaimTransitionRequest, DocumentUpload, Job,
    Page,
};
use glassguard_protocol::{ClaimId, ClaimState, ErrorCode};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sales::scope_of;
use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::commands;
use crate::error::{ApiError, ApiResult};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(file_claim, list_claims))
        .routes(routes!(get_claim))
        .routes(routes!(transition))
        .routes(routes!(timeline))
        .routes(routes!(upload_document, list_documents))
        .routes(routes!(jobs))
}

async fn load(state: &AppState, id: &ClaimId) -> ApiResult<Claim> {
    state
        .store
        .claim(&state.keys, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// File a claim on one's own policy.
#[utoipa::path(post, path = "/v1/claims", tag = "claims", request_body = ClaimCreate,
    responses((status = 201, body = Claim), (status = 200, body = Claim, description = "a retry of a filed claim"),
              (status = 422, body = glassguard_protocol::Problem)))]
async fn file_claim(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<ClaimCreate>,
) -> ApiResult<(StatusCode, Json<Claim>)> {
    let mut tx = state.store.begin().await?;
    let created = commands::claims::file(&state, &caller, &req, &mut tx).await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(load(&state, &req.id).await?)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ClaimFilter {
    /// Only claims in this state.
    state: Option<ClaimState>,
}

/// Claims the caller may see; for adjusters, the queue (oldest first).
#[utoipa::path(get, path = "/v1/claims", tag = "claims", params(ClaimFilter), responses((status = 200, body = Page<Claim>)))]
async fn list_claims(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<ClaimFilter>,
) -> ApiResult<Json<Page<Claim>>> {
    state.authorize(&caller, Action::ClaimList, &Resource::Collection("claims"))?;
    let user = caller.user()?;
    let items = state
        .store
        .list_claims(&state.keys, scope_of(user), f.state)
        .await?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::ClaimList, "claim", None),
        )
        .await?;
    Ok(Json(Page { items }))
}

/// One claim.
#[utoipa::path(get, path = "/v1/claims/{id}", tag = "claims", params(("id" = ClaimId, Path)), responses((status = 200, body = Claim)))]
async fn get_claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ClaimId>,
) -> ApiResult<Json<Claim>> {
    let claim = load(&state, &id).await?;
    state.authorize(
        &caller,
        Action::ClaimRead,
        &commands::claims::resource(&claim),
    )?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::ClaimRead, "claim", Some(id.to_string())),
        )
        .await?;
    Ok(Json(claim))
}

/// Ask for a transition; refused with the current state if the claim moved on.
#[utoipa::path(post, path = "/v1/claims/{id}/transitions", tag = "claims", params(("id" = ClaimId, Path)),
    request_body = ClaimTransitionRequest,
    responses((status = 200, body = Claim), (status = 409, body = glassguard_protocol::Problem)))]
async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ClaimId>,
    Json(req): Json<ClaimTransitionRequest>,
) -> ApiResult<Json<Claim>> {
    let mut tx = state.store.begin().await?;
    commands::claims::transition(&state, &caller, id, &req, &mut tx).await?;
    tx.commit().await?;
    Ok(Json(load(&state, &id).await?))
}

/// A claim's timeline.
#[utoipa::path(get, path = "/v1/claims/{id}/timeline", tag = "claims", params(("id" = ClaimId, Path)),
    responses((status = 200, body = Page<ClaimEvent>)))]
async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ClaimId>,
) -> ApiResult<Json<Page<ClaimEvent>>> {
    let claim = load(&state, &id).await?;
    state.authorize(
        &caller,
        Action::ClaimRead,
        &commands::claims::resource(&claim),
    )?;
    Ok(Json(Page {
        items: state.store.claim_events(&id).await?,
    }))
}

/// Upload a document the adjuster asked for.
#[utoipa::path(post, path = "/v1/claims/{id}/documents", tag = "claims", params(("id" = ClaimId, Path)),
    request_body = DocumentUpload, responses((status = 201, body = ClaimDocument)))]
async fn upload_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ClaimId>,
    Json(req): Json<DocumentUpload>,
) -> ApiResult<(StatusCode, Json<ClaimDocument>)> {
    let claim = load(&state, &id).await?;
    state.authorize(
        &caller,
        Action::ClaimDocumentUpload,
        &commands::claims::resource(&claim),
    )?;
    if claim.state != ClaimState::DocumentsRequested {
        return Err(ApiError::Conflict(
            ErrorCode::IllegalTransition,
            "documents are accepted while the claim is asking for them".into(),
            Some(claim.state),
        ));
    }
    if req.object_ref.trim().is_empty() || req.object_ref.len() > 200 {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "object_ref must be 1 to 200 characters",
        ));
    }
    let user = caller.user()?;
    let rec = state.audit(
        &caller,
        Action::ClaimDocumentUpload,
        "claim",
        Some(id.to_string()),
    );
    let doc = state
        .store
        .add_claim_document(
            &id,
            req.kind,
            &req.object_ref,
            &user.user_id,
            state.now(),
            &rec,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

/// A claim's documents.
#[utoipa::path(get, path = "/v1/claims/{id}/documents", tag = "claims", params(("id" = ClaimId, Path)),
    responses((status = 200, body = Page<ClaimDocument>)))]
async fn list_documents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ClaimId>,
) -> ApiResult<Json<Page<ClaimDocument>>> {
    let claim = load(&state, &id).await?;
    state.authorize(
        &caller,
        Action::ClaimRead,
        &commands::claims::resource(&claim),
    )?;
    Ok(Json(Page {
        items: state.store.claim_documents(&id).await?,
    }))
}

/// A technician's allocated jobs.
#[utoipa::path(get, path = "/v1/jobs", tag = "claims", responses((status = 200, body = Page<Job>)))]
async fn jobs(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Page<Job>>> {
    state.authorize(&caller, Action::JobList, &Resource::Collection("jobs"))?;
    let user = caller.user()?;
    let items = state.store.jobs(&state.keys, &user.user_id).await?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::JobList, "claim", None),
        )
        .await?;
    Ok(Json(Page { items }))
}
