//! Claims: filing, the queue, transitions, the timeline, documents, and
//! technicians' jobs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Duration;
use glassguard_protocol::api::{
    Claim, ClaimCreate, ClaimDocument, ClaimEvent, ClaimTransitionRequest, DocumentUpload, Job,
    Page, PolicyStatus,
};
use glassguard_protocol::{ClaimAction, ClaimId, ClaimState, ErrorCode, Role, VoucherId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sales::scope_of;
use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::crypto::random_code;
use crate::error::{ApiError, ApiResult};
use crate::plans::{allows, check_claim};
use crate::store::claims::short;
use crate::store::{CreateOutcome, NewClaim, NewVoucher, Transition, TransitionOutcome};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(file_claim, list_claims))
        .routes(routes!(get_claim))
        .routes(routes!(transition))
        .routes(routes!(timeline))
        .routes(routes!(upload_document, list_documents))
        .routes(routes!(jobs))
}

const VOUCHER_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

fn resource(c: &Claim) -> Resource {
    Resource::Claim {
        id: c.id,
        customer: c.customer_id,
        partner: c.partner_id,
        technician: c.technician_id,
    }
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
    let row = state
        .store
        .policy(&state.keys, &req.policy_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let p = &row.policy;
    state.authorize(
        &caller,
        Action::ClaimCreate,
        &Resource::Policy {
            id: p.id,
            customer: p.customer_id,
            partner: p.partner_id,
        },
    )?;
    if req.narrative.trim().is_empty() || req.narrative.chars().count() > 2000 {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "say what happened in 1 to 2000 characters",
        ));
    }
    if req.photo_refs.len() > 20 || req.photo_refs.iter().any(|r| r.is_empty() || r.len() > 200) {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "at most 20 photo references of at most 200 characters",
        ));
    }
    if let Some(existing) = state.store.claim(&state.keys, &req.id).await? {
        if existing.policy_id == req.policy_id {
            return Ok((StatusCode::OK, Json(existing)));
        }
        return Err(ApiError::conflict(
            ErrorCode::InvalidId,
            "this claim id is already used",
        ));
    }
    if p.status != PolicyStatus::Active {
        return Err(ApiError::rule(
            ErrorCode::PolicyNotActive,
            "the policy is not active",
        ));
    }
    let now = state.now();
    check_claim(
        &row.terms,
        p.start_date,
        p.end_date,
        p.claims_used,
        req.incident_at,
        now,
    )?;
    let contact = req
        .contact_phone
        .clone()
        .unwrap_or_else(|| p.customer_phone.clone());
    let new = NewClaim {
        id: req.id,
        policy_id: p.id,
        customer_id: p.customer_id,
        partner_id: p.partner_id,
        incident_at: req.incident_at,
        narrative: req.narrative.trim(),
        contact_phone: &contact,
        photo_refs: &req.photo_refs,
        claims_per_term: row.terms.claims_per_term,
    };
    let rec = state.audit(
        &caller,
        Action::ClaimCreate,
        "claim",
        Some(req.id.to_string()),
    );
    let status = match state.store.file_claim(&state.keys, &new, now, &rec).await? {
        CreateOutcome::Created => StatusCode::CREATED,
        CreateOutcome::Replayed => StatusCode::OK,
        CreateOutcome::IdTaken => {
            return Err(ApiError::conflict(
                ErrorCode::InvalidId,
                "this claim id is already used",
            ));
        }
        CreateOutcome::ClaimsPerTermExceeded => {
            return Err(ApiError::rule(
                ErrorCode::ClaimsPerTermExceeded,
                "this policy has no claims left this term",
            ));
        }
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
    state.authorize(&caller, Action::ClaimRead, &resource(&claim))?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::ClaimRead, "claim", Some(id.to_string())),
        )
        .await?;
    Ok(Json(claim))
}

fn stage_text(
    claim: &Claim,
    to: ClaimState,
    action: ClaimAction,
    voucher: Option<&NewVoucher>,
) -> String {
    let id = short(&claim.id);
    match (to, action, voucher) {
        (_, _, Some(v)) => format!(
            "Glassguard: claim {id} is resolved with a {} voucher, code {}, valid until {}.",
            v.value,
            v.code,
            v.expires_at.date_naive()
        ),
        (ClaimState::UnderReview, ..) => format!("Glassguard: claim {id} is being reviewed."),
        (ClaimState::Approved, ..) => format!("Glassguard: claim {id} is approved."),
        (ClaimState::Rejected, ..) => {
            format!("Glassguard: claim {id} was not approved. Open the app for the reason.")
        }
        (ClaimState::Allocated, ..) => {
            format!("Glassguard: claim {id} is with a technician; they will call you.")
        }
        (ClaimState::DocumentsRequested, ..) => {
            format!("Glassguard: claim {id} needs documents. Please upload them in the app.")
        }
        (ClaimState::InRepair, ..) => {
            format!("Glassguard: your phone for claim {id} is being repaired.")
        }
        (ClaimState::Resolved, ClaimAction::ResolveExchanged, _) => {
            format!("Glassguard: claim {id} is resolved with a replacement phone.")
        }
        (ClaimState::Resolved, ..) => {
            format!("Glassguard: claim {id} is resolved; your screen is repaired.")
        }
        (ClaimState::Closed, ..) => format!("Glassguard: claim {id} is closed."),
        _ => format!("Glassguard: claim {id} moved to {to}."),
    }
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
    let claim = load(&state, &id).await?;
    state.authorize(&caller, Action::for_claim(req.action), &resource(&claim))?;
    let user = caller.user()?.clone();
    if claim.state != req.expected_state {
        return Err(ApiError::Conflict(
            ErrorCode::StaleState,
            format!(
                "the claim is now {}, not {}",
                claim.state, req.expected_state
            ),
            Some(claim.state),
        ));
    }
    let to = claim.state.apply(req.action).map_err(|e| {
        ApiError::Conflict(
            ErrorCode::IllegalTransition,
            format!("cannot {} a claim that is {}", e.action, e.from),
            Some(e.from),
        )
    })?;
    let reason = req
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 1000) {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "the reason is at most 1000 characters",
        ));
    }
    let mut technician = None;
    let mut documents = None;
    let mut voucher = None;
    match req.action {
        ClaimAction::Reject if reason.is_none() => {
            return Err(ApiError::rule(
                ErrorCode::InvalidRequest,
                "give a reason to reject a claim",
            ));
        }
        ClaimAction::Allocate => {
            let tid = req.technician_id.ok_or_else(|| {
                ApiError::rule(ErrorCode::UnknownTechnician, "choose a technician")
            })?;
            let t = state.store.user_by_id(&state.keys, &tid).await?;
            if !t.is_some_and(|t| t.role == Role::Technician && t.active) {
                return Err(ApiError::rule(
                    ErrorCode::UnknownTechnician,
                    "no active technician has this id",
                ));
            }
            technician = Some(tid);
        }
        ClaimAction::RequestDocuments => match &req.documents {
            Some(d) if !d.is_empty() && d.len() <= 5 => documents = Some(d.as_slice()),
            _ => {
                return Err(ApiError::rule(
                    ErrorCode::InvalidRequest,
                    "list the documents (1 to 5) to ask for",
                ));
            }
        },
        _ => {}
    }
    if let Some(resolution) = req.action.resolution() {
        let row = state
            .store
            .policy(&state.keys, &claim.policy_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        if !allows(&row.terms, resolution) {
            return Err(ApiError::rule(
                ErrorCode::BenefitNotAllowed,
                "the plan does not offer this benefit",
            ));
        }
        if req.action == ClaimAction::IssueVoucher {
            voucher = Some(NewVoucher {
                id: VoucherId::new(),
                code: random_code(VOUCHER_ALPHABET, 10),
                customer_id: claim.customer_id,
                value: row.terms.voucher_value,
                expires_at: state.now()
                    + Duration::days(i64::from(row.terms.voucher_validity_days)),
            });
        }
    }
    let text = stage_text(&claim, to, req.action, voucher.as_ref());
    let t = Transition {
        claim_id: id,
        expected: req.expected_state,
        action: req.action,
        to,
        reason,
        technician,
        documents,
        voucher,
        release_claim_slot: req.action == ClaimAction::Reject,
        actor_id: user.user_id,
        actor_role: user.role,
        notify: Some((claim.contact_phone.clone(), text)),
    };
    let rec = state.audit(
        &caller,
        Action::for_claim(req.action),
        "claim",
        Some(id.to_string()),
    );
    match state
        .store
        .transition_claim(&state.keys, &t, state.now(), &rec)
        .await?
    {
        TransitionOutcome::Done => Ok(Json(load(&state, &id).await?)),
        TransitionOutcome::Stale(cur) => Err(ApiError::Conflict(
            ErrorCode::StaleState,
            format!("the claim moved to {cur} while this request was on its way"),
            Some(cur),
        )),
        TransitionOutcome::NotFound => Err(ApiError::NotFound),
    }
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
    state.authorize(&caller, Action::ClaimRead, &resource(&claim))?;
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
    state.authorize(&caller, Action::ClaimDocumentUpload, &resource(&claim))?;
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
    state.authorize(&caller, Action::ClaimRead, &resource(&claim))?;
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
