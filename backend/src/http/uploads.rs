//! Uploads over tus 1.0 under `/v1/uploads` (see [`crate::uploads`] for the
//! terms and how bytes flow).
//!
//! - `OPTIONS /v1/uploads`: what the server supports (public).
//! - `POST /v1/uploads`: create, with `Upload-Length` and `Upload-Metadata`
//!   holding `sha256`, `kind` and `target`; authorized against the target
//!   like the rest of the API → 201 + `Location`.
//! - `HEAD /v1/uploads/{id}`: how far it got.
//! - `PATCH /v1/uploads/{id}`: the next bytes, at the offset the server has.
//! - `DELETE /v1/uploads/{id}`: termination.
//!
//! Only the user who created an upload may touch it (anyone else gets 404),
//! and each request asks the authorizer again about the target. Every answer
//! carries `Tus-Resumable: 1.0.0`; a request without it (except OPTIONS) is
//! refused with 412. Refusals are problem JSON with stable codes:
//! 409 `upload_offset_mismatch`, 415 `unsupported_media_type`,
//! 460 `checksum_mismatch`, 410 `upload_expired`, 413 `payload_too_large`,
//! 422 `blob_hash_mismatch` (the whole blob is not the one its name says).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glassguard_protocol::ErrorCode;
use glassguard_protocol::uploads::{BlobHash, BlobKind, metadata};
use http_body_util::BodyExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AppState, Caller};
use crate::commands::attachments;
use crate::error::{ApiError, ApiResult};
use crate::store::uploads::{UploadRow, UploadState};
use crate::uploads::{
    OFFSET_OCTET_STREAM, SYNC_EVERY, TUS_CHECKSUM_ALGORITHMS, TUS_EXTENSIONS, TUS_VERSION,
    http_date, parse_checksum, parse_metadata,
};

/// How long a PATCH waits for another one on the same upload to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(options, create))
        .routes(routes!(head_upload, patch_upload, terminate))
        .layer(axum::middleware::from_fn(tus_headers))
}

/// Refuses requests without `Tus-Resumable: 1.0.0` (412) and stamps the
/// header on every answer.
async fn tus_headers(req: Request, next: Next) -> Response {
    let speaks_tus = req
        .headers()
        .get("tus-resumable")
        .is_some_and(|v| v.as_bytes() == TUS_VERSION.as_bytes());
    let mut resp = if req.method() != Method::OPTIONS && !speaks_tus {
        let mut r = ApiError::PreconditionFailed(
            ErrorCode::TusVersionUnsupported,
            format!("send Tus-Resumable: {TUS_VERSION}"),
        )
        .into_response();
        r.headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
        r
    } else {
        next.run(req).await
    };
    resp.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    resp
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn number(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    header_str(headers, name)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::rule(
                    ErrorCode::InvalidRequest,
                    format!("{name} must be a non-negative integer"),
                )
            })
        })
        .transpose()
}

fn hv(v: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn location(id: &Uuid) -> String {
    format!("/v1/uploads/{id}")
}

/// What the server supports.
#[utoipa::path(options, path = "/v1/uploads", tag = "uploads",
    responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size and Tus-Checksum-Algorithm headers")))]
async fn options(State(state): State<AppState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    h.insert("tus-max-size", hv(state.settings.upload_max_bytes));
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(TUS_CHECKSUM_ALGORITHMS),
    );
    r
}

fn ttl(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.settings.upload_ttl).unwrap_or(chrono::Duration::hours(24))
}

/// Create an upload for one blob (tus creation).
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = u64, Header, description = "bytes in the whole blob"),
        ("Upload-Metadata" = String, Header, description = "`sha256`, `kind` (claim_photo | sale_photo | job_photo | document) and `target` (claim or policy id), each base64"),
    ),
    responses((status = 201, description = "created; `Location` names it (`Upload-Offset` equals the length when this user had uploaded the blob before)"),
              (status = 413, body = glassguard_protocol::Problem),
              (status = 422, body = glassguard_protocol::Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user = caller.user()?.clone();
    let length = match number(&headers, "upload-length")? {
        Some(l) => l,
        None => {
            return Err(ApiError::rule(
                ErrorCode::InvalidRequest,
                "send Upload-Length (deferred lengths are not supported)",
            ));
        }
    };
    if length > state.settings.upload_max_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let meta = parse_metadata(header_str(&headers, "upload-metadata").unwrap_or_default())?;
    let field = |k: &str| {
        meta.get(k).ok_or_else(|| {
            ApiError::rule(
                ErrorCode::InvalidRequest,
                format!(
                    "Upload-Metadata needs {}",
                    [metadata::SHA256, metadata::KIND, metadata::TARGET].join(", ")
                ),
            )
        })
    };
    let sha256 = BlobHash::parse(field(metadata::SHA256)?)?;
    let kind = BlobKind::parse(field(metadata::KIND)?)?;
    let target = Uuid::parse_str(field(metadata::TARGET)?)
        .map_err(|_| ApiError::rule(ErrorCode::InvalidId, "target is a claim or policy id"))?;
    {
        let mut conn = state.store.reader().acquire().await?;
        attachments::authorize(&state, &caller, kind, target, &mut conn).await?;
    }
    let now = state.now();
    let length_i = i64::try_from(length).map_err(|_| ApiError::PayloadTooLarge)?;
    let before = state.store.completed_upload(&user.user_id, &sha256).await?;
    let done = before.is_some_and(|b| b.length == length_i);
    let row = UploadRow {
        id: Uuid::now_v7(),
        owner: user.user_id,
        kind,
        target,
        sha256,
        length: length_i,
        offset: if done { length_i } else { 0 },
        state: if done {
            UploadState::Complete
        } else {
            UploadState::Open
        },
        created_at: now,
        expires_at: now + ttl(&state),
    };
    if !done {
        tokio::fs::File::create(state.blobs.part_file(&row.id))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    state.store.insert_upload(&row).await?;
    state
        .store
        .audit(
            now,
            &state.audit(
                &caller,
                attachments::action(kind),
                "upload",
                Some(row.id.to_string()),
            ),
        )
        .await?;
    // Expired uploads go away as new ones come.
    let (blobs, store) = (state.blobs.clone(), state.store.clone());
    tokio::spawn(async move {
        if let Err(e) = blobs.sweep(&store, now).await {
            tracing::warn!(error = %e, "sweeping expired uploads failed");
        }
    });
    let mut r = StatusCode::CREATED.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, hv(location(&row.id)));
    if done {
        h.insert("upload-offset", hv(length));
    } else {
        h.insert("upload-expires", hv(http_date(row.expires_at)));
    }
    Ok(r)
}

/// The caller's upload `id`, still live, after asking the authorizer about
/// its target again. Someone else's upload is not found.
async fn owned(state: &AppState, caller: &Caller, id: &str) -> ApiResult<UploadRow> {
    let user = caller.user()?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    let row = state.store.upload(&id).await?.ok_or(ApiError::NotFound)?;
    if row.owner != user.user_id {
        return Err(ApiError::NotFound);
    }
    let mut conn = state.store.reader().acquire().await?;
    attachments::authorize(state, caller, row.kind, row.target, &mut conn).await?;
    Ok(row)
}

/// Refuses an upload that is gone: terminated (404) or expired (410,
/// expiring it now if its time has passed).
async fn live(state: &AppState, row: &UploadRow) -> ApiResult<()> {
    let gone = || {
        ApiError::Gone(
            ErrorCode::UploadExpired,
            "the upload expired; start a new one".into(),
        )
    };
    match row.state {
        UploadState::Terminated => Err(ApiError::NotFound),
        UploadState::Expired => Err(gone()),
        UploadState::Open if row.expires_at <= state.now() => {
            if state
                .store
                .end_upload(&row.id, UploadState::Expired)
                .await?
            {
                state.blobs.discard(&row.id).await;
                state.blobs.forget(&row.id);
            }
            Err(gone())
        }
        UploadState::Open | UploadState::Complete => Ok(()),
    }
}

fn offsets(row: &UploadRow, offset: i64) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("upload-offset", hv(offset));
    h.insert("upload-length", hv(row.length));
    if offset < row.length {
        h.insert("upload-expires", hv(http_date(row.expires_at)));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// How far an upload got.
#[utoipa::path(head, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 204, description = "`Upload-Offset`, `Upload-Length`, `Upload-Expires`"),
              (status = 404, body = glassguard_protocol::Problem),
              (status = 410, body = glassguard_protocol::Problem)))]
async fn head_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = owned(&state, &caller, &id).await?;
    live(&state, &row).await?;
    // HEAD answers 200 in tus; the body is empty either way.
    let mut r = offsets(&row, row.offset);
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}

/// Send the next bytes of an upload (tus core protocol and checksum).
#[utoipa::path(patch, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = Uuid, Path),
           ("Tus-Resumable" = String, Header, description = "1.0.0"),
           ("Upload-Offset" = u64, Header, description = "where these bytes start; must be the server's offset"),
           ("Upload-Checksum" = Option<String>, Header, description = "`sha256 <base64>` of this chunk")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "taken; `Upload-Offset` is the new offset"),
              (status = 409, body = glassguard_protocol::Problem),
              (status = 413, body = glassguard_protocol::Problem),
              (status = 415, body = glassguard_protocol::Problem),
              (status = 422, body = glassguard_protocol::Problem, description = "blob_hash_mismatch: the whole blob is not the one its name says; discarded"),
              (status = 460, body = glassguard_protocol::Problem, description = "checksum_mismatch: the chunk was discarded")))]
async fn patch_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = header_str(&headers, "content-type").unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some(OFFSET_OCTET_STREAM) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send chunks as {OFFSET_OCTET_STREAM}"
        )));
    }
    let claimed = number(&headers, "upload-offset")?
        .ok_or_else(|| ApiError::rule(ErrorCode::InvalidRequest, "send Upload-Offset"))?;
    let checksum = header_str(&headers, "upload-checksum")
        .map(parse_checksum)
        .transpose()?;
    let declared = number(&headers, "content-length")?;
    let row = owned(&state, &caller, &id).await?;
    live(&state, &row).await?;
    let lock = state.blobs.lock(&row.id);
    let _writing = tokio::time::timeout(LOCK_WAIT, lock.lock_owned())
        .await
        .map_err(|_| {
            ApiError::conflict(
                ErrorCode::UploadOffsetMismatch,
                "another request is writing this upload; ask with HEAD and try again",
            )
        })?;
    // Read again under the lock: the offset may have moved meanwhile.
    let row = state
        .store
        .upload(&row.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    live(&state, &row).await?;
    let claimed = i64::try_from(claimed).unwrap_or(i64::MAX);
    if claimed != row.offset {
        return Err(ApiError::conflict(
            ErrorCode::UploadOffsetMismatch,
            format!("the server has {} bytes; send from there", row.offset),
        ));
    }
    if row.state == UploadState::Complete {
        return Ok(offsets(&row, row.offset));
    }
    if declared
        .is_some_and(|d| claimed.saturating_add(i64::try_from(d).unwrap_or(i64::MAX)) > row.length)
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let io = |e: std::io::Error| ApiError::Internal(e.into());
    let path = state.blobs.part_file(&row.id);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .await
        .map_err(io)?;
    let start = u64::try_from(row.offset).unwrap_or_default();
    let on_disk = file.metadata().await.map_err(io)?.len();
    if on_disk < start {
        // The staging file lost bytes the server acknowledged (a disk
        // restored, or a replica without this upload's file): the upload
        // cannot go on; the client starts a new one.
        tracing::error!(upload = %row.id, on_disk, offset = row.offset, "staging file shorter than the recorded offset");
        drop(file);
        if state
            .store
            .end_upload(&row.id, UploadState::Expired)
            .await?
        {
            state.blobs.discard(&row.id).await;
        }
        return Err(ApiError::Gone(
            ErrorCode::UploadExpired,
            "this upload's stored bytes are gone; start a new one".into(),
        ));
    }
    // Bytes past the recorded offset were never acknowledged: drop them.
    file.set_len(start).await.map_err(io)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(io)?;
    let mut ctx = checksum.map(|_| ring::digest::Context::new(&ring::digest::SHA256));
    let mut committed = row.offset;
    let mut pos = row.offset;
    let ttl = ttl(&state);
    let mut body = body;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let n = i64::try_from(data.len()).unwrap_or(i64::MAX);
                if pos.saturating_add(n) > row.length {
                    file.set_len(u64::try_from(committed).unwrap_or_default())
                        .await
                        .map_err(io)?;
                    return Err(ApiError::PayloadTooLarge);
                }
                file.write_all(&data).await.map_err(io)?;
                pos += n;
                if let Some(ctx) = ctx.as_mut() {
                    ctx.update(&data);
                } else if (pos - committed) as u64 >= SYNC_EVERY {
                    file.sync_data().await.map_err(io)?;
                    state
                        .store
                        .advance_upload(&row.id, committed, pos, state.now() + ttl)
                        .await?;
                    committed = pos;
                }
            }
            Some(Err(e)) => {
                // The connection broke mid-body. Keep what arrived, unless
                // it was to be checked against a checksum it cannot match.
                if ctx.is_none() && pos > committed {
                    file.sync_data().await.map_err(io)?;
                    state
                        .store
                        .advance_upload(&row.id, committed, pos, state.now() + ttl)
                        .await?;
                } else {
                    file.set_len(u64::try_from(committed).unwrap_or_default())
                        .await
                        .map_err(io)?;
                }
                tracing::info!(upload = %row.id, kept = pos - row.offset, error = %e, "upload body broke off");
                return Err(ApiError::rule(
                    ErrorCode::InvalidRequest,
                    "the body ended before its length",
                ));
            }
        }
    }
    if let (Some(ctx), Some(expected)) = (ctx, checksum)
        && ctx.finish().as_ref() != expected.as_slice()
    {
        file.set_len(u64::try_from(committed).unwrap_or_default())
            .await
            .map_err(io)?;
        return Err(ApiError::ChecksumMismatch(
            "the chunk does not match its Upload-Checksum; it was discarded".into(),
        ));
    }
    file.sync_data().await.map_err(io)?;
    drop(file);
    let expires_at = state.now() + ttl;
    if pos != committed
        && !state
            .store
            .advance_upload(&row.id, committed, pos, expires_at)
            .await?
    {
        return Err(ApiError::conflict(
            ErrorCode::UploadOffsetMismatch,
            "the upload moved while this chunk was written; ask with HEAD",
        ));
    }
    let mut row = row;
    row.offset = pos;
    row.expires_at = expires_at;
    if pos == row.length {
        let published = state
            .blobs
            .publish(&row.id, &row.sha256)
            .await
            .map_err(ApiError::Internal)?;
        if !published {
            state.store.delete_upload(&row.id).await?;
            state.blobs.discard(&row.id).await;
            state.blobs.forget(&row.id);
            return Err(ApiError::rule(
                ErrorCode::BlobHashMismatch,
                "the uploaded bytes do not hash to the blob's name; they were discarded",
            ));
        }
        state.store.complete_upload(&row.id, state.now()).await?;
        state.blobs.discard(&row.id).await;
        state.blobs.forget(&row.id);
        tracing::info!(upload = %row.id, length = row.length, "upload complete");
    }
    Ok(offsets(&row, pos))
}

/// End an unfinished upload (tus termination).
#[utoipa::path(delete, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 204, description = "terminated"), (status = 404, body = glassguard_protocol::Problem),
              (status = 409, body = glassguard_protocol::Problem, description = "the upload is complete")))]
async fn terminate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = owned(&state, &caller, &id).await?;
    live(&state, &row).await?;
    if row.state == UploadState::Complete {
        return Err(ApiError::conflict(
            ErrorCode::InvalidRequest,
            "the upload is complete; its blob stays",
        ));
    }
    let lock = state.blobs.lock(&row.id);
    let _writing = tokio::time::timeout(LOCK_WAIT, lock.lock_owned()).await;
    if state
        .store
        .end_upload(&row.id, UploadState::Terminated)
        .await?
    {
        state.blobs.discard(&row.id).await;
    }
    state.blobs.forget(&row.id);
    state
        .store
        .audit(
            state.now(),
            &state.audit(
                &caller,
                attachments::action(row.kind),
                "upload",
                Some(row.id.to_string()),
            ),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
