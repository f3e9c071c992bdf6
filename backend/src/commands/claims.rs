//! Filing claims, moving them through their states, and technicians'
//! job outcomes.

use chrono::Duration;
use glassguard_protocol::api::{Claim, ClaimCreate, ClaimTransitionRequest, PolicyStatus};
use glassguard_protocol::sync::JobOutcome;
use glassguard_protocol::{
    ClaimAction, ClaimId, ClaimState, ErrorCode, Resolution, Role, VoucherId,
};
use sqlx::AnyConnection;

use crate::authz::{Action, Resource};
use crate::crypto::random_code;
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, Caller};
use crate::plans::{allows, check_claim};
use crate::store::claims::{claim_in, file_claim_on, short, transition_claim_on};
use crate::store::policies::policy_in;
use crate::store::users::user_by_id_in;
use crate::store::{CreateOutcome, NewClaim, NewVoucher, Transition, TransitionOutcome};

const VOUCHER_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The authorizer's view of a claim.
pub fn resource(c: &Claim) -> Resource {
    Resource::Claim {
        id: c.id,
        customer: c.customer_id,
        partner: c.partner_id,
        technician: c.technician_id,
    }
}

/// Files a claim; `Ok(false)` when this id was filed before (a retry).
pub async fn file(
    state: &AppState,
    caller: &Caller,
    req: &ClaimCreate,
    conn: &mut AnyConnection,
) -> ApiResult<bool> {
    let row = policy_in(&mut *conn, &state.keys, &req.policy_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let p = &row.policy;
    state.authorize(
        caller,
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
    if let Some(existing) = claim_in(&mut *conn, &state.keys, &req.id).await? {
        if existing.policy_id == req.policy_id {
            return Ok(false);
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
        caller,
        Action::ClaimCreate,
        "claim",
        Some(req.id.to_string()),
    );
    match file_claim_on(conn, &state.keys, &new, now, &rec).await? {
        CreateOutcome::Created => Ok(true),
        CreateOutcome::Replayed => Ok(false),
        CreateOutcome::IdTaken => Err(ApiError::conflict(
            ErrorCode::InvalidId,
            "this claim id is already used",
        )),
        CreateOutcome::ClaimsPerTermExceeded => Err(ApiError::rule(
            ErrorCode::ClaimsPerTermExceeded,
            "this policy has no claims left this term",
        )),
    }
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

/// Applies a transition the caller asked for; refused with the current
/// state when the claim has moved on.
pub async fn transition(
    state: &AppState,
    caller: &Caller,
    id: ClaimId,
    req: &ClaimTransitionRequest,
    conn: &mut AnyConnection,
) -> ApiResult<()> {
    let claim = claim_in(&mut *conn, &state.keys, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.authorize(caller, Action::for_claim(req.action), &resource(&claim))?;
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
            let t = user_by_id_in(&mut *conn, &state.keys, &tid).await?;
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
        let row = policy_in(&mut *conn, &state.keys, &claim.policy_id)
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
        caller,
        Action::for_claim(req.action),
        "claim",
        Some(id.to_string()),
    );
    match transition_claim_on(conn, &state.keys, &t, state.now(), &rec).await? {
        TransitionOutcome::Done => Ok(()),
        TransitionOutcome::Stale(cur) => Err(ApiError::Conflict(
            ErrorCode::StaleState,
            format!("the claim moved to {cur} while this request was on its way"),
            Some(cur),
        )),
        TransitionOutcome::NotFound => Err(ApiError::NotFound),
    }
}

/// A technician's outcome: starts the repair if needed, then resolves.
/// Already resolved the same way counts as done (the outcome arrived twice).
pub async fn job_outcome(
    state: &AppState,
    caller: &Caller,
    o: &JobOutcome,
    conn: &mut AnyConnection,
) -> ApiResult<()> {
    let action = match o.outcome {
        Resolution::Repaired => ClaimAction::ResolveRepaired,
        Resolution::Exchanged => ClaimAction::ResolveExchanged,
        Resolution::VoucherIssued => {
            return Err(ApiError::rule(
                ErrorCode::BenefitNotAllowed,
                "technicians record repairs and exchanges",
            ));
        }
    };
    if o.notes.as_deref().is_some_and(|n| n.chars().count() > 1000) || o.photo_refs.len() > 20 {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "notes are at most 1000 characters, photos at most 20",
        ));
    }
    let claim = claim_in(&mut *conn, &state.keys, &o.claim_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.authorize(caller, Action::for_claim(action), &resource(&claim))?;
    if claim.state == ClaimState::Resolved && claim.resolution == Some(o.outcome) {
        return Ok(());
    }
    let mut from = claim.state;
    if matches!(from, ClaimState::Allocated | ClaimState::DocumentsRequested) {
        let start = ClaimTransitionRequest {
            action: ClaimAction::StartRepair,
            expected_state: from,
            reason: None,
            technician_id: None,
            documents: None,
        };
        transition(state, caller, o.claim_id, &start, &mut *conn).await?;
        from = ClaimState::InRepair;
    }
    let resolve = ClaimTransitionRequest {
        action,
        expected_state: from,
        reason: o.notes.clone(),
        technician_id: None,
        documents: None,
    };
    transition(state, caller, o.claim_id, &resolve, conn).await
}
