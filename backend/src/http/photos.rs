//! Sealed photos, from the insurer's side.
//!
//! - `GET /v1/keys/sealing`: the public key devices seal photos and
//!   documents to (public: it is a public key; devices fetch it over TLS,
//!   pinned when configured).
//! - `GET /v1/claims/{id}/photos`: a claim's photos with the duplicate-photo
//!   flags (photos on other claims with a close perceptual hash), for insurer
//!   staff.
//! - `GET /v1/claims/{id}/photos/{sha256}`: one photo, unsealed with the
//!   insurer's private key, for insurer staff. Every view is audited.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use glassguard_protocol::api::Page;
use glassguard_protocol::uploads::{BlobHash, BlobKind, ClaimPhoto, SealingKey};
use glassguard_protocol::{ClaimId, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Caller};
use crate::authz::Action;
use crate::commands;
use crate::crypto::SEALING_SUITE;
use crate::error::{ApiError, ApiResult};
use crate::store::uploads::attachments_of;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sealing_key))
        .routes(routes!(claim_photos))
        .routes(routes!(claim_photo))
}

/// The insurer's public key that devices seal photos and documents to.
#[utoipa::path(get, path = "/v1/keys/sealing", tag = "photos", responses((status = 200, body = SealingKey)))]
async fn sealing_key(State(state): State<AppState>) -> Json<SealingKey> {
    Json(SealingKey {
        suite: SEALING_SUITE.to_string(),
        public_key: state.insurer_key.public_hex(),
    })
}

/// Checks the caller may see this claim's photos; the claim's id as a uuid.
async fn authorize(state: &AppState, caller: &Caller, id: &ClaimId) -> ApiResult<()> {
    let claim = state
        .store
        .claim(&state.keys, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.authorize(
        caller,
        Action::ClaimPhotoView,
        &commands::claims::resource(&claim),
    )
}

/// A claim's photos, each with photos on other claims that look the same.
#[utoipa::path(get, path = "/v1/claims/{id}/photos", tag = "photos", params(("id" = ClaimId, Path)),
    responses((status = 200, body = Page<ClaimPhoto>)))]
async fn claim_photos(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ClaimId>,
) -> ApiResult<Json<Page<ClaimPhoto>>> {
    authorize(&state, &caller, &id).await?;
    let items = state.store.claim_photos(&id.as_uuid()).await?;
    Ok(Json(Page { items }))
}

/// One photo of a claim, unsealed (JPEG or WebP).
#[utoipa::path(get, path = "/v1/claims/{id}/photos/{sha256}", tag = "photos",
    params(("id" = ClaimId, Path), ("sha256" = String, Path, description = "the sealed blob's SHA-256")),
    responses((status = 200, content_type = "image/jpeg", description = "the photo"),
              (status = 404, body = glassguard_protocol::Problem),
              (status = 422, body = glassguard_protocol::Problem)))]
async fn claim_photo(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sha256)): Path<(ClaimId, String)>,
) -> ApiResult<Response> {
    authorize(&state, &caller, &id).await?;
    let sha256 = BlobHash::parse(&sha256).map_err(|_| ApiError::NotFound)?;
    // Only whether the blob is on this claim: not the duplicate search.
    let mut conn = state.store.reader().acquire().await?;
    let on_claim = attachments_of(&mut conn, &id.as_uuid())
        .await?
        .iter()
        .any(|(kind, sha, _)| *sha == sha256 && *kind != BlobKind::Document);
    drop(conn);
    if !on_claim {
        return Err(ApiError::NotFound);
    }
    let sealed = state
        .blobs
        .read(&sha256)
        .await
        .map_err(ApiError::Internal)?;
    let key = state.insurer_key.clone();
    let opened = tokio::task::spawn_blocking(move || key.open(&sealed))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let image = opened.map_err(|e| {
        tracing::warn!(code = e.code(), "a stored photo does not unseal");
        ApiError::rule(
            ErrorCode::SealedBlobUnreadable,
            "this photo does not open with the insurer's key; ask the device to send it again",
        )
    })?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(
                &caller,
                Action::ClaimPhotoView,
                "claim",
                Some(id.to_string()),
            ),
        )
        .await?;
    let content_type = if image.starts_with(b"RIFF") && image.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else if image.starts_with(&[0xff, 0xd8]) {
        "image/jpeg"
    } else {
        "application/octet-stream"
    };
    let mut response = image.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Unsealed PII: never cached by a browser or a proxy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
