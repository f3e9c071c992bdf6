//! Sync: devices push their outbox and pull their view of changes.
//!
//! A push applies its rows in one transaction, each row inside a savepoint:
//! an applied row keeps its effect and its mutation record; a refused row
//! rolls its effect back and keeps only the record of the refusal, so a
//! replay gets the same answer and the queue moves on. Consent codes for
//! sales are checked before the transaction begins (a code is used up by
//! checking it, whatever happens to the sale).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use glassguard_protocol::ErrorCode;
use glassguard_protocol::api::OtpPurpose;
use glassguard_protocol::sync::{
    Change, Command, EntryResult, EntryStatus, OutboxEntry, PullResponse, PushRequest, PushResponse,
};
use serde::Deserialize;
use sqlx::{Acquire, AnyConnection};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::check_otp;
use super::sales::scope_of;
use super::{AppState, Caller};
use crate::authz::{Action, Resource};
use crate::commands;
use crate::commands::sales::Consent;
use crate::error::{ApiError, ApiResult};
use crate::store::changes::Entity;
use crate::store::sync::{Prior, Recorded, highest, lock_device, prior, record};
use crate::store::{claims, policies};

/// Rows accepted in one push.
pub const MAX_PUSH_ROWS: usize = 1000;
/// Largest push body, inflated.
pub const PUSH_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Changes answered in one pull, at most.
pub const MAX_PULL: i64 = 1000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push))
        // A long offline queue arrives in batches of a few hundred rows.
        .layer(axum::extract::DefaultBodyLimit::max(PUSH_BODY_LIMIT))
        .routes(routes!(pull))
}

fn payload_hash(e: &OutboxEntry) -> Vec<u8> {
    // The command serializes the same way every time (fields in declaration order).
    let bytes = serde_json::to_vec(&e.command).unwrap_or_default();
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .to_vec()
}

fn rejected(e: &OutboxEntry, code: ErrorCode, message: String) -> EntryResult {
    EntryResult {
        client_seq: e.client_seq,
        mutation_id: e.mutation_id,
        status: EntryStatus::Rejected,
        code: Some(code),
        message: Some(message),
    }
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    e: &OutboxEntry,
    consent: Option<&Consent>,
    conn: &mut AnyConnection,
) -> ApiResult<()> {
    match &e.command {
        Command::RecordSale(sale) => {
            let consent = consent.copied().unwrap_or(Consent::Later);
            commands::sales::record(state, caller, sale, None, consent, conn)
                .await
                .map(|_| ())
        }
        Command::CreateClaim(c) => commands::claims::file(state, caller, c, conn)
            .await
            .map(|_| ()),
        Command::RequestTransition { claim_id, request } => {
            commands::claims::transition(state, caller, *claim_id, request, conn).await
        }
        Command::RecordJobOutcome(o) => commands::claims::job_outcome(state, caller, o, conn).await,
        Command::AttachBlob(a) => commands::attachments::attach(state, caller, a, conn).await,
    }
}

/// Push outbox rows, in `client_seq` order.
#[utoipa::path(post, path = "/v1/sync/push", tag = "sync", request_body = PushRequest,
    responses((status = 200, body = PushResponse), (status = 403, body = glassguard_protocol::Problem)))]
async fn push(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<PushRequest>,
) -> ApiResult<Json<PushResponse>> {
    state.authorize(&caller, Action::SyncPush, &Resource::Collection("sync"))?;
    let user = caller.user()?.clone();
    if req.entries.len() > MAX_PUSH_ROWS {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            format!("push at most {MAX_PUSH_ROWS} rows at a time"),
        ));
    }
    let device = user.device_id;
    // Consent codes, checked before the batch: only for rows not seen before.
    let mut consents: HashMap<u64, Result<Consent, ApiError>> = HashMap::new();
    {
        let mut conn = state.store.reader().acquire().await?;
        for e in &req.entries {
            let Command::RecordSale(sale) = &e.command else {
                continue;
            };
            let Some(otp) = &sale.customer_otp else {
                continue;
            };
            let known = prior(
                &mut conn,
                &device,
                e.client_seq as i64,
                &e.mutation_id.to_string(),
                &payload_hash(e),
            )
            .await?;
            if known == Prior::New {
                let checked = check_otp(&state, &sale.customer_phone, OtpPurpose::SaleConsent, otp)
                    .await
                    .map(|()| Consent::Verified);
                consents.insert(e.client_seq, checked);
            }
        }
    }
    let now = state.now();
    let mut tx = state.store.begin().await?;
    let Some(highest_seq) = lock_device(&mut tx, &device, &user.user_id, now).await? else {
        return Err(ApiError::Conflict(
            ErrorCode::DeviceMismatch,
            "this device is registered to another user".into(),
            None,
        ));
    };
    let mut expected = match highest_seq {
        // A device this server has never applied anything for (new, or the
        // server was reset) starts at the lowest row it sends: its earlier rows
        // went elsewhere. Out of order within the batch still stops at the gap.
        0 => req.entries.iter().map(|e| e.client_seq).min().unwrap_or(1),
        h => h as u64 + 1,
    };
    let mut results = Vec::with_capacity(req.entries.len());
    let mut expected_seq = None;
    for e in &req.entries {
        let hash = payload_hash(e);
        let mutation_id = e.mutation_id.to_string();
        match prior(&mut tx, &device, e.client_seq as i64, &mutation_id, &hash).await? {
            Prior::Same { applied: true, .. } => {
                results.push(EntryResult {
                    client_seq: e.client_seq,
                    mutation_id: e.mutation_id,
                    status: EntryStatus::Duplicate,
                    code: None,
                    message: None,
                });
                continue;
            }
            Prior::Same {
                applied: false,
                code,
                message,
            } => {
                results.push(rejected(
                    e,
                    code.unwrap_or(ErrorCode::InvalidRequest),
                    message.unwrap_or_default(),
                ));
                continue;
            }
            Prior::Conflict => {
                results.push(rejected(
                    e,
                    ErrorCode::MutationConflict,
                    "this seq or mutation id was already used with other data".into(),
                ));
                continue;
            }
            Prior::SeqTaken => {
                // Nothing after it may overtake it: stop here, and the device
                // numbers this row and the rest after `highest_applied_seq`.
                results.push(rejected(
                    e,
                    ErrorCode::ClientSeqTaken,
                    "this seq was used by another change from this device; number the queue after highest_applied_seq".into(),
                ));
                break;
            }
            Prior::New => {}
        }
        if e.client_seq != expected {
            expected_seq = Some(expected);
            break;
        }
        let outcome = match consents.get(&e.client_seq) {
            Some(Err(err)) => Err(ApiError::rule(err.code(), err.to_string())),
            consent => {
                let consent = consent.and_then(|c| c.as_ref().ok());
                let mut sp = (&mut *tx).begin().await?;
                match apply(&state, &caller, e, consent, &mut sp).await {
                    Ok(()) => {
                        sp.commit().await?;
                        Ok(())
                    }
                    Err(err) => {
                        sp.rollback().await?;
                        Err(err)
                    }
                }
            }
        };
        let (applied, code, message) = match &outcome {
            Ok(()) => (true, None, None),
            // A server fault is not the row's fault: stop, and let the device retry the batch.
            Err(ApiError::Internal(_)) => return Err(outcome.err().unwrap_or(ApiError::NotFound)),
            Err(err) => (false, Some(err.code()), Some(err.to_string())),
        };
        let rec = Recorded {
            device: &device,
            seq: e.client_seq as i64,
            mutation_id: &mutation_id,
            hash: &hash,
            command: e.command.name(),
            applied,
            code,
            message: message.as_deref(),
        };
        record(&mut tx, &rec, now).await?;
        results.push(match outcome {
            Ok(()) => EntryResult {
                client_seq: e.client_seq,
                mutation_id: e.mutation_id,
                status: EntryStatus::Applied,
                code: None,
                message: None,
            },
            Err(_) => rejected(
                e,
                code.unwrap_or(ErrorCode::InvalidRequest),
                message.unwrap_or_default(),
            ),
        });
        expected += 1;
    }
    tx.commit().await?;
    Ok(Json(PushResponse {
        results,
        highest_applied_seq: expected - 1,
        expected_seq,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct PullQuery {
    /// Where to continue from; absent to start.
    cursor: Option<String>,
    /// At most this many changes (default and maximum 1000).
    limit: Option<i64>,
}

/// `c2.<epoch>.<position>.<tag>`: `c1` cursors (no tag) resync once.
const CURSOR_VERSION: &str = "c2";

/// A cursor's position and that position's tag; `(0, 0)` for none.
fn parse_cursor(cursor: Option<&str>, epoch: &str) -> Option<(i64, i64)> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else {
        return Some((0, 0));
    };
    let mut parts = c.split('.');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(CURSOR_VERSION), Some(e), Some(seq), Some(tag), None) if e == epoch => {
            let seq = seq.parse().ok().filter(|s: &i64| *s >= 0)?;
            Some((seq, tag.parse().ok()?))
        }
        _ => None,
    }
}

fn cursor(epoch: &str, seq: i64, tag: i64) -> String {
    format!("{CURSOR_VERSION}.{epoch}.{seq}.{tag}")
}

/// Pull the caller's view of what changed since the cursor.
#[utoipa::path(get, path = "/v1/sync/pull", tag = "sync", params(PullQuery), responses((status = 200, body = PullResponse)))]
async fn pull(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PullQuery>,
) -> ApiResult<Json<PullResponse>> {
    state.authorize(&caller, Action::SyncPull, &Resource::Collection("sync"))?;
    let user = caller.user()?.clone();
    let epoch = state.store.feed_epoch().await?;
    let applied = highest(state.store.reader(), &user.device_id).await? as u64;
    // A position that no longer holds its tag was written again after a
    // restore from a backup: the changes between are unknown to the device.
    let valid = match parse_cursor(q.cursor.as_deref(), &epoch) {
        Some((0, _)) => Some((0, 0)),
        Some((seq, tag)) => (state.store.feed_tag(seq).await? == Some(tag)).then_some((seq, tag)),
        None => None,
    };
    let Some((after, after_tag)) = valid else {
        return Ok(Json(PullResponse {
            changes: vec![],
            cursor: cursor(&epoch, 0, 0),
            has_more: true,
            highest_applied_seq: applied,
            resync: true,
            server_time: state.now(),
        }));
    };
    let limit = q.limit.unwrap_or(MAX_PULL).clamp(1, MAX_PULL);
    let mut rows = state.store.feed(scope_of(&user), after, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let (next, next_tag) = rows.last().map_or((after, after_tag), |r| (r.seq, r.tag));
    // The latest state of each entity once, in the order of its last change.
    let mut last: HashMap<(Entity, String), i64> = HashMap::new();
    for r in &rows {
        last.insert((r.entity, r.entity_id.clone()), r.seq);
    }
    let mut wanted: Vec<_> = last.into_iter().collect();
    wanted.sort_by_key(|(_, seq)| *seq);
    let mut changes = Vec::with_capacity(wanted.len());
    let reader = state.store.reader();
    for ((entity, id), _) in wanted {
        let change = match entity {
            Entity::Policy => {
                let Ok(pid) = id.parse() else { continue };
                let Some(row) = policies::policy_in(reader, &state.keys, &pid).await? else {
                    continue;
                };
                let p = row.policy;
                let res = Resource::Policy {
                    id: p.id,
                    customer: p.customer_id,
                    partner: p.partner_id,
                };
                state
                    .authz
                    .is_allowed(&caller.principal(), Action::PolicyRead, &res)
                    .then_some(Change::Policy(p))
            }
            Entity::Claim => {
                let Ok(cid) = id.parse() else { continue };
                let Some(job) = claims::job_in(reader, &state.keys, &cid).await? else {
                    continue;
                };
                let allowed = state.authz.is_allowed(
                    &caller.principal(),
                    Action::ClaimRead,
                    &commands::claims::resource(&job.claim),
                );
                match allowed {
                    false => None,
                    true if job.claim.technician_id == Some(user.user_id) => Some(Change::Job(job)),
                    true => Some(Change::Claim(job.claim)),
                }
            }
            Entity::Voucher => {
                let Some(v) = state.store.voucher_by_id(&id).await? else {
                    continue;
                };
                let res = Resource::Voucher {
                    id: v.id,
                    customer: v.customer_id,
                };
                state
                    .authz
                    .is_allowed(&caller.principal(), Action::VoucherRead, &res)
                    .then_some(Change::Voucher(v))
            }
        };
        changes.extend(change);
    }
    if !changes.is_empty() {
        state
            .store
            .audit(
                state.now(),
                &state.audit(
                    &caller,
                    Action::SyncPull,
                    "sync",
                    Some(user.device_id.to_string()),
                ),
            )
            .await?;
    }
    Ok(Json(PullResponse {
        changes,
        cursor: cursor(&epoch, next, next_tag),
        has_more,
        highest_applied_seq: applied,
        resync: false,
        server_time: state.now(),
    }))
}
