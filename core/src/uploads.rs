//! Resumable uploads (tus 1.0) of blobs, then the command that attaches them.
//!
//! A blob is a file of bytes named by its SHA-256 (a sealed photo or
//! document). [`Shared::queue_upload`] records it in the `uploads` table;
//! each sync run sends the pending ones before it pushes the outbox:
//!
//! 1. **Create** (`POST /v1/uploads` with the length and `sha256`, `kind`,
//!    `target` metadata), once; the upload's URL is kept in the table, so a
//!    killed app resumes the same upload. A target the server does not know
//!    yet (a claim still in the outbox) defers the upload to after the push.
//! 2. **Resume**: after any failure, `HEAD` asks the server how many bytes it
//!    has, and sending continues from there; only what the server lacks is
//!    sent again.
//! 3. **Send** `PATCH` chunks with `Upload-Checksum: sha256 <base64>`. The
//!    chunk size follows the link ([`ChunkSizer`]): it starts at 16 KiB,
//!    grows while chunks finish quickly and shrinks after slow or failed
//!    ones, within 8 KiB to 1 MiB. Transient failures are retried with the
//!    core's [`crate::Backoff`]; after [`MAX_FAILURES`] in a row without
//!    progress the run gives up and the sync engine's backoff takes over.
//! 4. **Attach**: only once the server reports the upload complete does the
//!    device write the `attach_blob` command to the outbox (in the same
//!    transaction that marks the upload done); the push sends it.
//!
//! A refusal that retrying cannot fix (the blob does not hash to its name,
//! the caller may not upload for the target) marks the upload failed, with
//! the reason, for the UI.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use glassguard_protocol::ErrorCode;
use glassguard_protocol::sync::Command;
use glassguard_protocol::uploads::{Attachment, BlobHash, BlobKind, PerceptualHash, metadata};
use reqwest::Method;
use rusqlite::{Connection, params};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use crate::Shared;
use crate::client::Trace;
use crate::error::{Error, Result};
use crate::outbox;

/// Smallest chunk.
pub const MIN_CHUNK: usize = 8 * 1024;
/// Largest chunk.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// First chunk of a new upload.
pub const START_CHUNK: usize = 16 * 1024;
/// How long a chunk should take on the measured link.
const CHUNK_TIME: Duration = Duration::from_secs(2);
/// Failures in a row, without progress, before a run gives up on an upload.
pub const MAX_FAILURES: u32 = 6;

/// What the blob is for: the kind and the claim or policy id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadTarget {
    /// What the blob is.
    pub kind: BlobKind,
    /// The claim (claim photos, job photos, documents) or policy (sale photos).
    pub id: Uuid,
}

/// Where an upload is, for the UI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    /// Bytes still to send (or the target is not on the server yet).
    Pending,
    /// The server has the whole blob; the attach command is in the outbox.
    Attached,
    /// The server refused it for good (see `last_error`).
    Failed,
}

impl UploadState {
    fn as_str(self) -> &'static str {
        match self {
            UploadState::Pending => "pending",
            UploadState::Attached => "attached",
            UploadState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => UploadState::Pending,
            "attached" => UploadState::Attached,
            "failed" => UploadState::Failed,
            other => return Err(Error::corrupt(format!("upload state {other:?}"))),
        })
    }
}

/// One upload, as the UI shows it: progress is `confirmed` of `length`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    /// The blob.
    pub sha256: BlobHash,
    /// What it is for.
    pub target: UploadTarget,
    /// Bytes in the blob.
    pub length: u64,
    /// Bytes the server has confirmed.
    pub confirmed: u64,
    /// Where it is.
    pub state: UploadState,
    /// Body bytes sent so far, including any sent again after a cut.
    pub bytes_sent: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// The upload in flight, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadProgress {
    /// The blob.
    pub sha256: BlobHash,
    /// Bytes the server has confirmed.
    pub confirmed: u64,
    /// Bytes in the blob.
    pub length: u64,
}

/// Picks chunk sizes from how the last chunks went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkSizer {
    size: usize,
}

impl Default for ChunkSizer {
    fn default() -> Self {
        Self { size: START_CHUNK }
    }
}

impl ChunkSizer {
    /// Resumes at a stored size.
    pub fn at(size: usize) -> Self {
        Self {
            size: size.clamp(MIN_CHUNK, MAX_CHUNK),
        }
    }

    /// The next chunk's size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A chunk of `bytes` took `took`: aim the next at [`CHUNK_TIME`] on
    /// the measured rate, growing at most fourfold at a time.
    pub fn sent(&mut self, bytes: usize, took: Duration) {
        let secs = took.as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let aim = (rate * CHUNK_TIME.as_secs_f64()) as usize;
        let next = aim.min(self.size.saturating_mul(4)).max(self.size / 2);
        self.size = next.clamp(MIN_CHUNK, MAX_CHUNK);
    }

    /// A chunk failed (cut, timed out): halve.
    pub fn failed(&mut self) {
        self.size = (self.size / 2).clamp(MIN_CHUNK, MAX_CHUNK);
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
struct Row {
    sha256: BlobHash,
    kind: BlobKind,
    target: Uuid,
    path: PathBuf,
    length: u64,
    url: Option<String>,
    confirmed: u64,
    state: UploadState,
    chunk_size: usize,
    bytes_sent: u64,
    last_error: Option<String>,
    phash: Option<PerceptualHash>,
}

impl Row {
    fn status(&self) -> UploadStatus {
        UploadStatus {
            sha256: self.sha256.clone(),
            target: UploadTarget {
                kind: self.kind,
                id: self.target,
            },
            length: self.length,
            confirmed: self.confirmed,
            state: self.state,
            bytes_sent: self.bytes_sent,
            last_error: self.last_error.clone(),
        }
    }
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let sha: String = r.get("sha256")?;
    let kind: String = r.get("kind")?;
    let target: String = r.get("target_id")?;
    let state: String = r.get("state")?;
    Ok(Row {
        sha256: BlobHash::parse(&sha).map_err(|e| bad(0, e.message))?,
        kind: BlobKind::parse(&kind).map_err(|e| bad(1, e.message))?,
        target: Uuid::parse_str(&target).map_err(|e| bad(2, e.to_string()))?,
        path: PathBuf::from(r.get::<_, String>("path")?),
        length: r.get::<_, i64>("length")? as u64,
        url: r.get("url")?,
        confirmed: r.get::<_, i64>("confirmed")? as u64,
        state: UploadState::parse(&state).map_err(|e| bad(7, e.to_string()))?,
        chunk_size: r.get::<_, i64>("chunk_size")? as usize,
        bytes_sent: r.get::<_, i64>("bytes_sent")? as u64,
        last_error: r.get("last_error")?,
        phash: r
            .get::<_, Option<String>>("phash")?
            .map(|p| PerceptualHash::parse(&p))
            .transpose()
            .map_err(|e| bad(11, e.message))?,
    })
}

fn rows(conn: &Connection, only_pending: bool) -> Result<Vec<Row>> {
    let sql = if only_pending {
        "SELECT * FROM uploads WHERE state = 'pending' ORDER BY created_at, sha256"
    } else {
        "SELECT * FROM uploads ORDER BY created_at, sha256"
    };
    let mut stmt = conn.prepare(sql)?;
    let out = stmt
        .query_map([], read_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// Every upload this device knows, oldest first.
pub(crate) fn statuses(conn: &Connection) -> Result<Vec<UploadStatus>> {
    Ok(rows(conn, false)?.iter().map(Row::status).collect())
}

fn key(row: &Row) -> [String; 3] {
    [
        row.sha256.to_string(),
        row.kind.as_str().to_string(),
        row.target.to_string(),
    ]
}

/// Hashes a file (on a blocking thread).
pub async fn sha256_file(path: &Path) -> Result<BlobHash> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path).map_err(|e| read_error(&path, e))?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| read_error(&path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d: [u8; 32] = h.finalize().into();
        Ok(BlobHash::from_bytes(&d))
    })
    .await
    .map_err(|e| Error::Internal(format!("hashing: {e}")))?
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::invalid(
        ErrorCode::InvalidRequest,
        format!("cannot read the blob {}: {e}", path.display()),
    )
}

/// Failures that concern every upload, not one: the session, the pinned
/// key, the local store.
fn stops_the_run(e: &Error) -> bool {
    matches!(
        e,
        Error::SessionEnded { .. }
            | Error::NotSignedIn
            | Error::PinMismatch
            | Error::Store(_)
            | Error::Corrupt(_)
            | Error::Internal(_)
    ) || matches!(
        e.code(),
        Some(ErrorCode::TokenExpired | ErrorCode::Unauthenticated)
    )
}

/// How one upload ended in one run.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Complete; the attach command is queued.
    Attached,
    /// The target is not on the server yet; try after the push.
    Deferred,
    /// Refused for good.
    Failed,
}

/// What the uploads of one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UploadRun {
    /// Uploads completed (and their attach commands queued).
    pub(crate) attached: usize,
    /// Uploads waiting for their target to reach the server.
    pub(crate) deferred: usize,
    /// Uploads refused for good.
    pub(crate) failed: usize,
}

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");

fn tus() -> (&'static str, String) {
    (TUS.0, TUS.1.to_string())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn offset_of(answer: &crate::client::RawAnswer) -> Result<u64> {
    answer
        .header("upload-offset")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Protocol("an upload answer without Upload-Offset".into()))
}

/// Records a blob (a file at `path` of `length` bytes, checked by the
/// caller) to upload to `target`; the sync runs send it. Run inside the
/// caller's transaction when the blob belongs to another local write.
pub(crate) fn enqueue(
    c: &Connection,
    sha256: &BlobHash,
    target: UploadTarget,
    path: &str,
    length: u64,
    phash: Option<PerceptualHash>,
) -> Result<()> {
    c.execute(
        "INSERT INTO uploads (sha256, kind, target_id, path, length, state, chunk_size, created_at, phash) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8) \
         ON CONFLICT (sha256, kind, target_id) DO UPDATE SET path = excluded.path \
         WHERE uploads.state = 'pending'",
        params![
            sha256.as_str(),
            target.kind.as_str(),
            target.id.to_string(),
            path,
            length as i64,
            START_CHUNK as i64,
            Utc::now().to_rfc3339(),
            phash.map(|p| p.to_string()),
        ],
    )?;
    Ok(())
}

impl Shared {
    /// Records a blob to upload; see [`crate::Core::queue_upload`].
    pub(crate) async fn queue_upload(
        &self,
        path: PathBuf,
        sha256: BlobHash,
        target: UploadTarget,
        phash: Option<PerceptualHash>,
    ) -> Result<()> {
        let length = tokio::fs::metadata(&path)
            .await
            .map_err(|e| read_error(&path, e))?
            .len();
        let actual = sha256_file(&path).await?;
        if actual != sha256 {
            return Err(Error::invalid(
                ErrorCode::BlobHashMismatch,
                format!("the file hashes to {actual}, not {sha256}"),
            ));
        }
        let path_text = path
            .to_str()
            .ok_or_else(|| Error::Config(format!("{} is not UTF-8", path.display())))?
            .to_string();
        self.store
            .call(move |c| enqueue(c, &sha256, target, &path_text, length, phash))
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Sends every pending upload; see the module docs. A transient failure
    /// stops the run with that error (after the others were tried).
    pub(crate) async fn upload_all(&self, trace: &Trace) -> Result<UploadRun> {
        let result = self.upload_pending(trace).await;
        // Nothing is in flight any more, however the run ended.
        self.status.send_if_modified(|s| s.upload.take().is_some());
        result
    }

    async fn upload_pending(&self, trace: &Trace) -> Result<UploadRun> {
        let pending = self.store.call(|c| rows(c, true)).await?;
        let mut run = UploadRun::default();
        let mut transient = None;
        for row in pending {
            let sha = row.sha256.clone();
            match self.upload_one(row, trace).await {
                Ok(Outcome::Attached) => run.attached += 1,
                Ok(Outcome::Deferred) => run.deferred += 1,
                Ok(Outcome::Failed) => run.failed += 1,
                Err(e) if stops_the_run(&e) => return Err(e),
                // Odd answers for this upload: it stays pending, the others go on.
                Err(e) if e.is_permanent() => {
                    tracing::warn!(sha256 = %sha, error = %e, "upload stopped; trying again next run");
                }
                Err(e) => transient = Some(e),
            }
        }
        if run.attached > 0 {
            self.refresh_counts().await?;
        }
        match transient {
            Some(e) => Err(e),
            None => Ok(run),
        }
    }

    async fn save(&self, row: &Row) -> Result<()> {
        let progress = UploadProgress {
            sha256: row.sha256.clone(),
            confirmed: row.confirmed,
            length: row.length,
        };
        self.status.send_if_modified(|s| {
            let changed = s.upload.as_ref() != Some(&progress);
            s.upload = Some(progress);
            changed
        });
        let row = row.clone();
        self.store
            .call(move |c| {
                c.execute(
                    "UPDATE uploads SET url = ?4, confirmed = ?5, state = ?6, chunk_size = ?7, \
                     bytes_sent = ?8, last_error = ?9 \
                     WHERE sha256 = ?1 AND kind = ?2 AND target_id = ?3",
                    params![
                        key(&row)[0],
                        key(&row)[1],
                        key(&row)[2],
                        row.url,
                        row.confirmed as i64,
                        row.state.as_str(),
                        row.chunk_size as i64,
                        row.bytes_sent as i64,
                        row.last_error,
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// Marks the upload attached and queues `attach_blob`, in one transaction.
    async fn attach(&self, row: &mut Row) -> Result<()> {
        row.state = UploadState::Attached;
        row.confirmed = row.length;
        row.last_error = None;
        let done = row.clone();
        let command = Command::AttachBlob(Attachment {
            kind: row.kind,
            target: row.target,
            sha256: row.sha256.clone(),
            length: row.length,
            phash: row.phash,
        });
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                let changed = tx.execute(
                    "UPDATE uploads SET state = 'attached', confirmed = length, last_error = NULL, \
                     bytes_sent = ?4, chunk_size = ?5 \
                     WHERE sha256 = ?1 AND kind = ?2 AND target_id = ?3 AND state = 'pending'",
                    params![
                        key(&done)[0],
                        key(&done)[1],
                        key(&done)[2],
                        done.bytes_sent as i64,
                        done.chunk_size as i64
                    ],
                )?;
                if changed == 1 {
                    outbox::enqueue(&tx, &command, Utc::now())?;
                }
                Ok(tx.commit()?)
            })
            .await
    }

    async fn fail(&self, row: &mut Row, e: &Error) -> Result<Outcome> {
        tracing::warn!(sha256 = %row.sha256, error = %e, "upload refused for good");
        row.state = UploadState::Failed;
        row.last_error = Some(e.to_string());
        self.save(row).await?;
        Ok(Outcome::Failed)
    }

    #[tracing::instrument(skip_all, fields(sha256 = %row.sha256, length = row.length))]
    async fn upload_one(&self, mut row: Row, trace: &Trace) -> Result<Outcome> {
        let mut sizer = ChunkSizer::at(row.chunk_size);
        let mut failures = 0u32;
        // Whether the stored offset is known to be the server's (else HEAD first).
        let mut in_step = false;
        let mut file = match tokio::fs::File::open(&row.path).await {
            Ok(f) => f,
            Err(e) => {
                let e = read_error(&row.path, e);
                return self.fail(&mut row, &e).await;
            }
        };
        loop {
            let step = self
                .step(&mut row, &mut file, &mut sizer, in_step, trace)
                .await;
            match step {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {
                    failures = 0;
                    in_step = true;
                }
                Err(e) if e.is_permanent() => {
                    match e.code() {
                        // Someone else's view of the offset: ask again.
                        Some(ErrorCode::UploadOffsetMismatch) => {
                            failures += 1;
                            in_step = false;
                        }
                        // The chunk arrived damaged: send it again.
                        Some(ErrorCode::ChecksumMismatch) => {
                            failures += 1;
                            in_step = false;
                        }
                        // The upload is gone: start a new one.
                        Some(ErrorCode::UploadExpired | ErrorCode::NotFound)
                            if row.url.is_some() =>
                        {
                            tracing::info!(error = %e, "the upload is gone; creating it again");
                            row.url = None;
                            row.confirmed = 0;
                            self.save(&row).await?;
                            failures += 1;
                        }
                        // The target is not on the server yet (queued claim or sale).
                        Some(ErrorCode::NotFound) => return Ok(Outcome::Deferred),
                        Some(ErrorCode::TokenExpired | ErrorCode::Unauthenticated) => {
                            return Err(e);
                        }
                        _ if matches!(e, Error::SessionEnded { .. } | Error::NotSignedIn) => {
                            return Err(e);
                        }
                        _ if matches!(e, Error::Refused { .. } | Error::Invalid { .. }) => {
                            return self.fail(&mut row, &e).await;
                        }
                        _ => return Err(e),
                    }
                    if failures >= MAX_FAILURES {
                        return Err(e);
                    }
                }
                Err(e) => {
                    failures += 1;
                    in_step = false;
                    sizer.failed();
                    row.last_error = Some(e.to_string());
                    tracing::info!(error = %e, failures, chunk = sizer.size(), "upload interrupted; resuming");
                    if failures >= MAX_FAILURES {
                        row.chunk_size = sizer.size();
                        self.save(&row).await?;
                        return Err(e);
                    }
                    tokio::time::sleep(self.backoff.delay(failures, e.retry_after())).await;
                }
            }
        }
    }

    /// One request: create, HEAD or PATCH. `Some` when the upload is over.
    async fn step(
        &self,
        row: &mut Row,
        file: &mut tokio::fs::File,
        sizer: &mut ChunkSizer,
        in_step: bool,
        trace: &Trace,
    ) -> Result<Option<Outcome>> {
        let Some(url) = row.url.clone() else {
            let meta = format!(
                "{} {},{} {},{} {}",
                metadata::SHA256,
                b64(row.sha256.as_str()),
                metadata::KIND,
                b64(row.kind.as_str()),
                metadata::TARGET,
                b64(&row.target.to_string())
            );
            let answer = self
                .authed_raw(
                    Method::POST,
                    self.client.url("v1/uploads")?,
                    &[
                        tus(),
                        ("upload-length", row.length.to_string()),
                        ("upload-metadata", meta),
                    ],
                    None,
                    trace,
                )
                .await?;
            let location = answer
                .header("location")
                .ok_or_else(|| Error::Protocol("a created upload without Location".into()))?;
            row.url = Some(self.client.url(location)?.to_string());
            // A blob this user uploaded before is complete at once.
            row.confirmed = answer
                .header("upload-offset")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            self.save(row).await?;
            return self.finish_if_done(row).await;
        };
        let url = reqwest::Url::parse(&url)
            .map_err(|e| Error::Corrupt(format!("stored upload URL: {e}")))?;
        if !in_step {
            let answer = self
                .authed_raw(Method::HEAD, url, &[tus()], None, trace)
                .await?;
            row.confirmed = offset_of(&answer)?;
            self.save(row).await?;
            return self.finish_if_done(row).await;
        }
        if row.confirmed >= row.length {
            return self.finish_if_done(row).await;
        }
        let want = sizer.size().min((row.length - row.confirmed) as usize);
        let mut chunk = vec![0u8; want];
        file.seek(std::io::SeekFrom::Start(row.confirmed))
            .await
            .map_err(|e| read_error(&row.path, e))?;
        file.read_exact(&mut chunk)
            .await
            .map_err(|e| read_error(&row.path, e))?;
        let digest = sha2::Sha256::digest(&chunk);
        let checksum = format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        // Counted before it goes: a run killed mid-chunk still knows it sent it.
        row.bytes_sent += want as u64;
        self.save(row).await?;
        let started = Instant::now();
        let sent = self
            .authed_raw(
                Method::PATCH,
                url,
                &[
                    tus(),
                    ("content-type", "application/offset+octet-stream".into()),
                    ("upload-offset", row.confirmed.to_string()),
                    ("upload-checksum", checksum),
                ],
                Some(chunk),
                trace,
            )
            .await;
        let answer = sent?;
        sizer.sent(want, started.elapsed());
        row.chunk_size = sizer.size();
        row.confirmed = offset_of(&answer)?;
        row.last_error = None;
        self.save(row).await?;
        self.finish_if_done(row).await
    }

    async fn finish_if_done(&self, row: &mut Row) -> Result<Option<Outcome>> {
        if row.confirmed < row.length {
            return Ok(None);
        }
        self.attach(row).await?;
        tracing::info!(sha256 = %row.sha256, sent = row.bytes_sent, "upload complete; attach queued");
        Ok(Some(Outcome::Attached))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_the_link_within_bounds() {
        let mut s = ChunkSizer::default();
        assert_eq!(s.size(), START_CHUNK);
        // A fast link: grows, at most fourfold a step, up to the cap.
        for _ in 0..10 {
            let n = s.size();
            s.sent(n, Duration::from_millis(10));
        }
        assert_eq!(s.size(), MAX_CHUNK);
        // 64 kbit/s: 8000 bytes a second, two seconds a chunk.
        let mut s = ChunkSizer::default();
        for _ in 0..10 {
            let n = s.size();
            s.sent(n, Duration::from_secs_f64(n as f64 / 8000.0));
        }
        assert!((MIN_CHUNK..=20_000).contains(&s.size()), "{}", s.size());
        // Failures halve, down to the floor.
        for _ in 0..10 {
            s.failed();
        }
        assert_eq!(s.size(), MIN_CHUNK);
        assert_eq!(ChunkSizer::at(1).size(), MIN_CHUNK);
    }
}
