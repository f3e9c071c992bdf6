//! Blobs and what they are for: who may upload one for a target, and
//! attaching an uploaded blob to its claim, policy or job (`attach_blob`).

use glassguard_protocol::uploads::{Attachment, BlobKind};
use glassguard_protocol::{ClaimId, ErrorCode, PolicyId};
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::authz::{Action, Resource};
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, Caller};
use crate::store::claims::claim_in;
use crate::store::policies::policy_in;
use crate::store::uploads::{NewAttachment, add_claim_photo_in, attach_in, completed_upload_in};

/// Photos a claim holds at most (as when it is filed).
pub const MAX_CLAIM_PHOTOS: usize = 20;

/// The action that guards uploading and attaching a blob of this kind.
pub fn action(kind: BlobKind) -> Action {
    match kind {
        BlobKind::ClaimPhoto => Action::UploadClaimPhoto,
        BlobKind::JobPhoto => Action::UploadJobPhoto,
        BlobKind::Document => Action::UploadDocument,
        BlobKind::SalePhoto => Action::UploadSalePhoto,
    }
}

/// The authorizer's view of a blob's target; `NotFound` when it does not
/// exist (or the id is not one).
pub async fn target_resource(
    state: &AppState,
    kind: BlobKind,
    target: Uuid,
    conn: &mut AnyConnection,
) -> ApiResult<Resource> {
    match kind {
        BlobKind::ClaimPhoto | BlobKind::JobPhoto | BlobKind::Document => {
            let id = ClaimId::try_from(target).map_err(|_| ApiError::NotFound)?;
            let claim = claim_in(&mut *conn, &state.keys, &id)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(super::claims::resource(&claim))
        }
        BlobKind::SalePhoto => {
            let id = PolicyId::try_from(target).map_err(|_| ApiError::NotFound)?;
            let row = policy_in(&mut *conn, &state.keys, &id)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(Resource::Policy {
                id: row.policy.id,
                customer: row.policy.customer_id,
                partner: row.policy.partner_id,
            })
        }
    }
}

/// Asks the authorizer whether the caller may upload (or attach) a blob of
/// `kind` for `target`.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    kind: BlobKind,
    target: Uuid,
    conn: &mut AnyConnection,
) -> ApiResult<()> {
    // Anonymous callers learn nothing about targets.
    caller.user()?;
    let resource = target_resource(state, kind, target, conn).await?;
    state.authorize(caller, action(kind), &resource)
}

/// Attaches a blob the caller has completely uploaded to its target.
/// Attaching the same blob twice is done already. Claim photos also go on
/// the claim's `photo_refs` (as `sha256:<hex>`), which devices pull.
pub async fn attach(
    state: &AppState,
    caller: &Caller,
    a: &Attachment,
    conn: &mut AnyConnection,
) -> ApiResult<()> {
    authorize(state, caller, a.kind, a.target, &mut *conn).await?;
    let user = caller.user()?.clone();
    let uploaded = completed_upload_in(&mut *conn, &user.user_id, &a.sha256).await?;
    let Some(upload) = uploaded else {
        return Err(ApiError::rule(
            ErrorCode::BlobNotUploaded,
            "this blob has not been completely uploaded by you",
        ));
    };
    if u64::try_from(upload.length).ok() != Some(a.length) {
        return Err(ApiError::rule(
            ErrorCode::BlobNotUploaded,
            "the uploaded blob has another length",
        ));
    }
    let now = state.now();
    let length = i64::try_from(a.length).unwrap_or(i64::MAX);
    let new = attach_in(
        &mut *conn,
        &NewAttachment {
            kind: a.kind,
            target: &a.target,
            sha256: &a.sha256,
            length,
            phash: a.phash.filter(|_| a.kind != BlobKind::Document),
        },
        &user.user_id,
        now,
    )
    .await?;
    if !new {
        return Ok(());
    }
    if a.kind == BlobKind::ClaimPhoto {
        let id = ClaimId::try_from(a.target).map_err(|_| ApiError::NotFound)?;
        let claim = claim_in(&mut *conn, &state.keys, &id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let reference = a.sha256.reference();
        if !claim.photo_refs.contains(&reference) {
            if claim.photo_refs.len() >= MAX_CLAIM_PHOTOS {
                return Err(ApiError::rule(
                    ErrorCode::InvalidRequest,
                    format!("a claim holds at most {MAX_CLAIM_PHOTOS} photos"),
                ));
            }
            let mut refs = claim.photo_refs.clone();
            refs.push(reference);
            add_claim_photo_in(&mut *conn, &a.target, &refs, now).await?;
        }
    }
    let rec = state.audit(
        caller,
        action(a.kind),
        "attachment",
        Some(format!("{}/{}", a.target, a.sha256)),
    );
    crate::store::audit::append(&mut *conn, now, &rec).await?;
    Ok(())
}
