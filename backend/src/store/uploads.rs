//! Upload records (tus) and attachments. The bytes themselves live in a
//! staging file and then the object store (see [`crate::uploads`]); these
//! rows say whose upload it is, what it is for, how far it got and when it
//! goes away. Offsets move by conditional updates, so two requests that
//! race on one upload cannot both move it.

use chrono::{DateTime, Utc};
use glassguard_protocol::UserId;
use glassguard_protocol::uploads::{
    BlobHash, BlobKind, ClaimPhoto, DUPLICATE_PHOTO_DISTANCE, DuplicatePhoto, PerceptualHash,
};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Result, Store, StoreError, from_ms, get, ms, parse};

/// Where an upload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    /// Receiving bytes.
    Open,
    /// Verified and in the object store.
    Complete,
    /// Not finished in time; its bytes are gone.
    Expired,
    /// Ended by its owner (tus termination); its bytes are gone.
    Terminated,
}

impl UploadState {
    fn as_str(self) -> &'static str {
        match self {
            UploadState::Open => "open",
            UploadState::Complete => "complete",
            UploadState::Expired => "expired",
            UploadState::Terminated => "terminated",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "open" => UploadState::Open,
            "complete" => UploadState::Complete,
            "expired" => UploadState::Expired,
            "terminated" => UploadState::Terminated,
            other => return Err(StoreError::Corrupt(format!("upload state {other:?}"))),
        })
    }
}

/// One upload.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadRow {
    /// The upload's id (the last segment of its URL).
    pub id: Uuid,
    /// Who created it; nobody else may touch it.
    pub owner: UserId,
    /// What the blob is for.
    pub kind: BlobKind,
    /// The claim or policy it is for.
    pub target: Uuid,
    /// The blob's name.
    pub sha256: BlobHash,
    /// Bytes in the whole blob.
    pub length: i64,
    /// Bytes the server has.
    pub offset: i64,
    /// Where it is.
    pub state: UploadState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When an unfinished upload goes away.
    pub expires_at: DateTime<Utc>,
}

fn decode(r: &AnyRow) -> Result<UploadRow> {
    let kind: String = get(r, "kind")?;
    let sha: String = get(r, "sha256")?;
    let state: String = get(r, "state")?;
    Ok(UploadRow {
        id: parse(r, "id")?,
        owner: parse(r, "owner_id")?,
        kind: BlobKind::parse(&kind).map_err(|e| StoreError::Corrupt(e.message))?,
        target: parse(r, "target_id")?,
        sha256: BlobHash::parse(&sha).map_err(|e| StoreError::Corrupt(e.message))?,
        length: get(r, "length")?,
        offset: get(r, "upload_offset")?,
        state: UploadState::parse(&state)?,
        created_at: from_ms(get(r, "created_at")?)?,
        expires_at: from_ms(get(r, "expires_at")?)?,
    })
}

impl Store {
    /// Records a new upload.
    #[tracing::instrument(skip_all, fields(upload = %u.id))]
    pub async fn insert_upload(&self, u: &UploadRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, owner_id, kind, target_id, sha256, length, upload_offset, \
             state, created_at, expires_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(u.id.to_string())
        .bind(u.owner.to_string())
        .bind(u.kind.as_str().to_string())
        .bind(u.target.to_string())
        .bind(u.sha256.as_str().to_string())
        .bind(u.length)
        .bind(u.offset)
        .bind(u.state.as_str().to_string())
        .bind(ms(u.created_at))
        .bind(ms(u.expires_at))
        .bind((u.state == UploadState::Complete).then(|| ms(u.created_at)))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// An upload by id.
    pub async fn upload(&self, id: &Uuid) -> Result<Option<UploadRow>> {
        let r = sqlx::query("SELECT * FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.write)
            .await?;
        r.as_ref().map(decode).transpose()
    }

    /// Moves an open upload's offset from `from` to `to` and pushes its
    /// expiry out; false when it was not at `from` (or not open any more).
    pub async fn advance_upload(
        &self,
        id: &Uuid,
        from: i64,
        to: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE uploads SET upload_offset = $3, expires_at = $4 \
             WHERE id = $1 AND upload_offset = $2 AND state = 'open'",
        )
        .bind(id.to_string())
        .bind(from)
        .bind(to)
        .bind(ms(expires_at))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an open upload complete (its blob is in the object store).
    pub async fn complete_upload(&self, id: &Uuid, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE uploads SET state = 'complete', completed_at = $2 \
             WHERE id = $1 AND state = 'open'",
        )
        .bind(id.to_string())
        .bind(ms(now))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends an open upload (expired or terminated); false if it was not open.
    pub async fn end_upload(&self, id: &Uuid, state: UploadState) -> Result<bool> {
        let done = sqlx::query("UPDATE uploads SET state = $2 WHERE id = $1 AND state = 'open'")
            .bind(id.to_string())
            .bind(state.as_str().to_string())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets an upload (its blob failed verification).
    pub async fn delete_upload(&self, id: &Uuid) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// A complete upload of this blob by this user, if there is one.
    pub async fn completed_upload(
        &self,
        owner: &UserId,
        sha256: &BlobHash,
    ) -> Result<Option<UploadRow>> {
        let mut conn = self.reader().acquire().await?;
        completed_upload_in(&mut conn, owner, sha256).await
    }

    /// Open uploads past their expiry, at most `limit`.
    pub async fn expired_uploads(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT * FROM uploads WHERE state = 'open' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(ms(now))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| decode(r).map(|u| u.id)).collect()
    }
}

/// A complete upload of this blob by this user, read on the caller's transaction.
pub async fn completed_upload_in(
    conn: &mut AnyConnection,
    owner: &UserId,
    sha256: &BlobHash,
) -> Result<Option<UploadRow>> {
    let r = sqlx::query(
        "SELECT * FROM uploads WHERE owner_id = $1 AND sha256 = $2 AND state = 'complete' \
         ORDER BY created_at LIMIT 1",
    )
    .bind(owner.to_string())
    .bind(sha256.as_str().to_string())
    .fetch_optional(conn)
    .await?;
    r.as_ref().map(decode).transpose()
}

/// An attachment as recorded.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    /// What the blob is.
    pub kind: BlobKind,
    /// Its claim or policy.
    pub target: &'a Uuid,
    /// Its name.
    pub sha256: &'a BlobHash,
    /// Its length.
    pub length: i64,
    /// For photos, the device's perceptual hash.
    pub phash: Option<PerceptualHash>,
}

/// Records an attachment; false when this blob was already on this target.
pub async fn attach_in(
    conn: &mut AnyConnection,
    a: &NewAttachment<'_>,
    by: &UserId,
    at: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO attachments (kind, target_id, sha256, length, attached_by, attached_at, phash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, target_id, sha256) DO NOTHING",
    )
    .bind(a.kind.as_str().to_string())
    .bind(a.target.to_string())
    .bind(a.sha256.as_str().to_string())
    .bind(a.length)
    .bind(by.to_string())
    .bind(ms(at))
    .bind(a.phash.map(|p| p.to_string()))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn phash_of(r: &AnyRow) -> Result<Option<PerceptualHash>> {
    get::<Option<String>>(r, "phash")?
        .map(|p| PerceptualHash::parse(&p).map_err(|e| StoreError::Corrupt(e.message)))
        .transpose()
}

impl Store {
    /// The photos on a claim (the customer's and the technician's), oldest
    /// first, each with the photos on *other* claims whose perceptual hash
    /// is within [`DUPLICATE_PHOTO_DISTANCE`] bits: the duplicate-photo flag.
    ///
    /// The comparison scans every photo hash on record; a BK-tree or
    /// multi-index hashing would take over when that grows past memory.
    pub async fn claim_photos(&self, claim: &Uuid) -> Result<Vec<ClaimPhoto>> {
        let mine = sqlx::query(
            "SELECT * FROM attachments WHERE target_id = $1 AND kind IN ('claim_photo', 'job_photo') \
             ORDER BY attached_at, sha256",
        )
        .bind(claim.to_string())
        .fetch_all(self.reader())
        .await?;
        let others = sqlx::query(
            "SELECT target_id, sha256, phash FROM attachments \
             WHERE phash IS NOT NULL AND kind IN ('claim_photo', 'job_photo') AND target_id <> $1",
        )
        .bind(claim.to_string())
        .fetch_all(self.reader())
        .await?;
        let mut known = Vec::with_capacity(others.len());
        for r in &others {
            let Some(phash) = phash_of(r)? else { continue };
            let target: String = get(r, "target_id")?;
            let sha: String = get(r, "sha256")?;
            known.push((
                Uuid::parse_str(&target).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                BlobHash::parse(&sha).map_err(|e| StoreError::Corrupt(e.message))?,
                phash,
            ));
        }
        mine.iter()
            .map(|r| {
                let kind: String = get(r, "kind")?;
                let sha: String = get(r, "sha256")?;
                let phash = phash_of(r)?;
                let mut duplicates: Vec<DuplicatePhoto> = phash
                    .map(|p| {
                        known
                            .iter()
                            .filter(|(_, _, q)| p.distance(*q) <= DUPLICATE_PHOTO_DISTANCE)
                            .map(|(claim_id, sha256, q)| DuplicatePhoto {
                                claim_id: *claim_id,
                                sha256: sha256.clone(),
                                distance: p.distance(*q),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                duplicates.sort_by_key(|d| d.distance);
                Ok(ClaimPhoto {
                    kind: BlobKind::parse(&kind).map_err(|e| StoreError::Corrupt(e.message))?,
                    sha256: BlobHash::parse(&sha).map_err(|e| StoreError::Corrupt(e.message))?,
                    length: u64::try_from(get::<i64>(r, "length")?).unwrap_or_default(),
                    phash,
                    attached_at: from_ms(get(r, "attached_at")?)?,
                    duplicates,
                })
            })
            .collect()
    }
}

/// The blobs attached to a target, oldest first: `(kind, sha256, length)`.
pub async fn attachments_of(
    conn: &mut AnyConnection,
    target: &Uuid,
) -> Result<Vec<(BlobKind, BlobHash, i64)>> {
    let rows =
        sqlx::query("SELECT * FROM attachments WHERE target_id = $1 ORDER BY attached_at, sha256")
            .bind(target.to_string())
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|r| {
            let kind: String = get(r, "kind")?;
            let sha: String = get(r, "sha256")?;
            Ok((
                BlobKind::parse(&kind).map_err(|e| StoreError::Corrupt(e.message))?,
                BlobHash::parse(&sha).map_err(|e| StoreError::Corrupt(e.message))?,
                get(r, "length")?,
            ))
        })
        .collect()
}

/// Puts a reference on a claim's photo list (once), bumps the claim's
/// version and appends the change to the feed, so devices pull it.
pub async fn add_claim_photo_in(
    conn: &mut AnyConnection,
    claim: &Uuid,
    photo_refs: &[String],
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE claims SET photo_refs = $2, version = version + 1, updated_at = $3 WHERE id = $1",
    )
    .bind(claim.to_string())
    .bind(serde_json::to_string(photo_refs).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .bind(ms(at))
    .execute(&mut *conn)
    .await?;
    super::changes::append(conn, super::changes::Entity::Claim, &claim.to_string(), at).await
}
