//! Resumable uploads over tus 1.0 (core protocol plus the creation,
//! checksum, expiration and termination extensions), and the blobs they
//! produce.
//!
//! Terms:
//! - **Blob**: the bytes of a sealed photo or document, named by their
//!   SHA-256 ([`BlobHash`]). Kept in the object store at `blobs/<sha256>`.
//! - **Upload**: one tus resource (`/v1/uploads/<id>`) that carries one blob
//!   from one user, for one target (a claim, or a policy for sale photos).
//!   Its record ([`crate::store::uploads::UploadRow`]) holds the offset.
//! - **Staging file**: `<data_dir>/uploads/<id>.part`, where an unfinished
//!   upload's bytes accumulate.
//!
//! How bytes flow: a PATCH streams its body into the staging file (never
//! whole in memory). Without an `Upload-Checksum` the bytes that arrived are
//! kept even when the connection breaks mid-body: the file is synced and the
//! offset recorded every [`SYNC_EVERY`] bytes and when the body ends, so a
//! HEAD after a cut reports them and the client sends only the rest. With a
//! checksum, a chunk counts only once it arrived whole and matched (else it
//! is cut off again: 460, or a broken body). The recorded offset is the
//! truth; the staging file is cut back to it before each append (a crash
//! between a write and its record leaves unrecorded bytes behind).
//!
//! When the last byte arrives the whole file is hashed; a blob whose hash is
//! not its name is refused (`blob_hash_mismatch`) and discarded. Otherwise
//! it goes to the object store and the upload is complete. A user who
//! already completed an upload of the same blob gets a new upload that is
//! complete at once (answered with `Upload-Offset` equal to the length).
//!
//! Staging files live on this machine's disk: behind a load balancer, an
//! upload's requests must reach the same replica (sticky by upload id); a
//! PATCH that finds the staging file shorter than the recorded offset ends
//! the upload (410) and the client starts a new one, never a blob with a
//! hole.
//!
//! Unfinished uploads expire [`crate::config::Settings::upload_ttl`] after
//! their last chunk (`Upload-Expires`); expired ones answer 410 and their
//! staging files are removed by [`Blobs::sweep`] (run on each creation).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use glassguard_protocol::ErrorCode;
use glassguard_protocol::uploads::BlobHash;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::config::{ObjectStoreUrl, Settings};
use crate::error::ApiError;
use crate::store::Store;
use crate::store::uploads::UploadState;

/// The protocol version we speak (`Tus-Resumable`, `Tus-Version`).
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions we support (`Tus-Extension`).
pub const TUS_EXTENSIONS: &str = "creation,checksum,expiration,termination";
/// The checksum algorithms we accept (`Tus-Checksum-Algorithm`).
pub const TUS_CHECKSUM_ALGORITHMS: &str = "sha256";
/// The content type of a PATCH body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Without a checksum, the staging file is synced and the offset recorded
/// at least this often while a body streams in.
pub const SYNC_EVERY: u64 = 256 * 1024;

/// Reads `Upload-Metadata`: comma-separated `key base64value` pairs (the
/// value may be absent). Keys are unique; values must be UTF-8.
pub fn parse_metadata(header: &str) -> Result<HashMap<String, String>, ApiError> {
    let bad = |m: &str| ApiError::rule(ErrorCode::InvalidRequest, format!("Upload-Metadata: {m}"));
    let mut out = HashMap::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let mut parts = pair.split(' ').filter(|p| !p.is_empty());
        let key = parts.next().ok_or_else(|| bad("an empty key"))?;
        let value = match parts.next() {
            None => String::new(),
            Some(v) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| bad("values are base64"))?;
                String::from_utf8(bytes).map_err(|_| bad("values are UTF-8 text"))?
            }
        };
        if parts.next().is_some() {
            return Err(bad("each pair is a key and one base64 value"));
        }
        if out.insert(key.to_string(), value).is_some() {
            return Err(bad("a key appears twice"));
        }
    }
    Ok(out)
}

/// Reads `Upload-Checksum: sha256 <base64 digest>`.
pub fn parse_checksum(header: &str) -> Result<[u8; 32], ApiError> {
    let (algo, digest) = header.trim().split_once(' ').ok_or_else(|| {
        ApiError::rule(
            ErrorCode::InvalidRequest,
            "Upload-Checksum is `sha256 <base64 digest>`",
        )
    })?;
    if !algo.eq_ignore_ascii_case("sha256") {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            format!("checksum algorithm {algo:?} is not supported; use sha256"),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .ok()
        .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
        .ok_or_else(|| {
            ApiError::rule(
                ErrorCode::InvalidRequest,
                "the sha256 checksum is 32 bytes in base64",
            )
        })
}

/// An RFC 7231 date (`Upload-Expires`).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Where blobs and unfinished uploads are kept. Cheap to clone.
#[derive(Clone)]
pub struct Blobs {
    objects: Arc<dyn ObjectStore>,
    staging: PathBuf,
    /// One PATCH at a time per upload (in this process; the offset's
    /// conditional update guards across replicas).
    locks: Arc<DashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("objects", &self.objects.to_string())
            .field("staging", &self.staging)
            .finish()
    }
}

/// The object store a URL names. A local folder must exist already
/// (nothing is created here: the KMS key source reads through this before
/// the server may write anything).
pub fn object_store(url: &ObjectStoreUrl) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match url {
        ObjectStoreUrl::Local(dir) => Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir)
                .with_context(|| format!("object folder {}", dir.display()))?,
        ),
        ObjectStoreUrl::S3 { bucket, prefix } => {
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .context("S3 object store")?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            }
        }
    })
}

/// The object path of a blob.
pub fn blob_path(sha256: &BlobHash) -> ObjectPath {
    ObjectPath::from(format!("blobs/{}", sha256.as_str()))
}

impl Blobs {
    /// Opens the object store the settings name and the staging folder.
    pub fn open(settings: &Settings) -> anyhow::Result<Blobs> {
        if let ObjectStoreUrl::Local(dir) = &settings.object_store {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let objects = object_store(&settings.object_store)?;
        let staging = settings.data_dir.join("uploads");
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        Ok(Blobs {
            objects,
            staging,
            locks: Default::default(),
        })
    }

    /// The object store.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// A stored blob's bytes (tests and tools; blobs are small).
    pub async fn read(&self, sha256: &BlobHash) -> anyhow::Result<Vec<u8>> {
        let got = self.objects.get(&blob_path(sha256)).await?;
        Ok(got.bytes().await?.to_vec())
    }

    /// The staging file of an upload.
    pub fn part_file(&self, id: &Uuid) -> PathBuf {
        self.staging.join(format!("{id}.part"))
    }

    /// The lock a PATCH holds on its upload.
    pub fn lock(&self, id: &Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.entry(*id).or_default().clone()
    }

    /// Forgets the lock of an upload that will not be written again.
    pub fn forget(&self, id: &Uuid) {
        self.locks.remove(id);
    }

    /// Removes a staging file (gone already is fine).
    pub async fn discard(&self, id: &Uuid) {
        if let Err(e) = tokio::fs::remove_file(self.part_file(id)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(upload = %id, error = %e, "cannot remove a staging file");
        }
    }

    /// Hashes a finished staging file and, if it is the blob it claims to
    /// be, copies it into the object store. `Ok(false)`: the hash differs.
    pub async fn publish(&self, id: &Uuid, sha256: &BlobHash) -> anyhow::Result<bool> {
        let path = self.part_file(id);
        let mut file = tokio::fs::File::open(&path)
            .await
            .with_context(|| format!("open {}", path.display()))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let digest = ctx.finish();
        let got: [u8; 32] = digest
            .as_ref()
            .try_into()
            .context("a SHA-256 digest is 32 bytes")?;
        if &BlobHash::from_bytes(&got) != sha256 {
            return Ok(false);
        }
        let target = blob_path(sha256);
        if self.objects.head(&target).await.is_ok() {
            // The same bytes are there already (another user, or a retry).
            return Ok(true);
        }
        let mut file = tokio::fs::File::open(&path).await?;
        let mut upload = WriteMultipart::new(self.objects.put_multipart(&target).await?);
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            upload.write(&buf[..n]);
        }
        upload.finish().await?;
        Ok(true)
    }

    /// Ends open uploads past their expiry and removes their staging files.
    pub async fn sweep(&self, store: &Store, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut n = 0;
        for id in store.expired_uploads(now, 200).await? {
            if store.end_upload(&id, UploadState::Expired).await? {
                self.discard(&id).await;
                self.forget(&id);
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(expired = n, "expired uploads removed");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs() {
        let m = parse_metadata("sha256 YWJj,kind Y2xhaW1fcGhvdG8=,empty").unwrap();
        assert_eq!(m["sha256"], "abc");
        assert_eq!(m["kind"], "claim_photo");
        assert_eq!(m["empty"], "");
        assert!(parse_metadata("a YWJj,a YWJj").is_err());
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata("a YWJj YWJj").is_err());
    }

    #[test]
    fn checksums() {
        let d = ring::digest::digest(&ring::digest::SHA256, b"x");
        let b64 = base64::engine::general_purpose::STANDARD.encode(d.as_ref());
        assert_eq!(
            parse_checksum(&format!("sha256 {b64}")).unwrap().as_slice(),
            d.as_ref()
        );
        assert!(parse_checksum(&format!("md5 {b64}")).is_err());
        assert!(parse_checksum("sha256 YWJj").is_err());
    }

    #[test]
    fn dates_are_rfc7231() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T06:07:08Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Fri, 04 Dec 2026 06:07:08 GMT");
    }
}
