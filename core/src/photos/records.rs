//! The `photos` table: one row per sealed photo, with the preview the user
//! sees.
//!
//! The sealed blob itself is a file under `<data_dir>/sealed/`, named by its
//! SHA-256 (the row's key). Its upload is a row of the `uploads` table
//! (see `crate::uploads`), written in the same transaction as the photo.

use chrono::{DateTime, NaiveDateTime, Utc};
use glassguard_protocol::{ClaimId, PolicyId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{PhotoFormat, ProcessedPhoto, SealedPhoto};
use crate::error::{Error, Result};

/// What a photo is evidence for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhotoTarget {
    /// The intact screen at the counter (pre-inspection), by the sale's policy id.
    Sale(PolicyId),
    /// The damage, for a claim.
    Claim(ClaimId),
    /// A technician's repair or exchange, for the claim's job.
    Job(ClaimId),
}

impl PhotoTarget {
    /// Where its upload goes: the kind of blob and the claim or policy.
    pub fn upload_target(&self) -> crate::uploads::UploadTarget {
        use glassguard_protocol::uploads::BlobKind;
        let (kind, id) = match self {
            PhotoTarget::Sale(id) => (BlobKind::SalePhoto, id.as_uuid()),
            PhotoTarget::Claim(id) => (BlobKind::ClaimPhoto, id.as_uuid()),
            PhotoTarget::Job(id) => (BlobKind::JobPhoto, id.as_uuid()),
        };
        crate::uploads::UploadTarget { kind, id }
    }

    /// The stored kind: `sale`, `claim` or `job`.
    pub fn kind(&self) -> &'static str {
        match self {
            PhotoTarget::Sale(_) => "sale",
            PhotoTarget::Claim(_) => "claim",
            PhotoTarget::Job(_) => "job",
        }
    }

    fn id(&self) -> String {
        match self {
            PhotoTarget::Sale(id) => id.to_string(),
            PhotoTarget::Claim(id) | PhotoTarget::Job(id) => id.to_string(),
        }
    }

    fn parse(kind: &str, id: &str) -> Result<Self> {
        let bad = |e: glassguard_protocol::problem::ParseError| {
            Error::corrupt(format!("photo target: {e}"))
        };
        Ok(match kind {
            "sale" => PhotoTarget::Sale(PolicyId::parse(id).map_err(bad)?),
            "claim" => PhotoTarget::Claim(ClaimId::parse(id).map_err(bad)?),
            "job" => PhotoTarget::Job(ClaimId::parse(id).map_err(bad)?),
            other => return Err(Error::corrupt(format!("photo target kind {other:?}"))),
        })
    }
}

/// A photo this device took, as stored (without its preview bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhotoRecord {
    /// Lowercase hex SHA-256 of the sealed blob: its file name and upload name.
    pub sealed_sha256: String,
    /// What the photo is for.
    pub target: PhotoTarget,
    /// The sealed blob's length.
    pub sealed_len: u64,
    /// The perceptual hash of the processed photo.
    pub phash: u64,
    /// Lowercase hex SHA-256 of the processed (unsealed) photo.
    pub plain_sha256: String,
    /// The processed photo's format.
    pub format: PhotoFormat,
    /// Processed width.
    pub width: u32,
    /// Processed height.
    pub height: u32,
    /// EXIF DateTimeOriginal, camera local time.
    pub captured_at: Option<NaiveDateTime>,
    /// EXIF Model.
    pub device_model: Option<String>,
    /// When this device stored it.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "sealed_sha256, target_kind, target_id, sealed_len, phash, plain_sha256, \
     format, width, height, captured_at, device_model, created_at";

/// The raw columns of a row, in [`COLUMNS`] order.
struct RawRow {
    sealed_sha256: String,
    kind: String,
    id: String,
    sealed_len: i64,
    phash: String,
    plain_sha256: String,
    format: String,
    width: u32,
    height: u32,
    captured_at: Option<String>,
    device_model: Option<String>,
    created_at: String,
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        sealed_sha256: r.get(0)?,
        kind: r.get(1)?,
        id: r.get(2)?,
        sealed_len: r.get(3)?,
        phash: r.get(4)?,
        plain_sha256: r.get(5)?,
        format: r.get(6)?,
        width: r.get(7)?,
        height: r.get(8)?,
        captured_at: r.get(9)?,
        device_model: r.get(10)?,
        created_at: r.get(11)?,
    })
}

fn record(raw: RawRow) -> Result<PhotoRecord> {
    Ok(PhotoRecord {
        sealed_sha256: raw.sealed_sha256,
        target: PhotoTarget::parse(&raw.kind, &raw.id)?,
        sealed_len: raw.sealed_len as u64,
        phash: u64::from_str_radix(&raw.phash, 16).map_err(Error::corrupt)?,
        plain_sha256: raw.plain_sha256,
        format: match raw.format.as_str() {
            "jpeg" => PhotoFormat::Jpeg,
            "webp" => PhotoFormat::WebP,
            other => return Err(Error::corrupt(format!("photo format {other:?}"))),
        },
        width: raw.width,
        height: raw.height,
        captured_at: raw
            .captured_at
            .map(|t| NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S"))
            .transpose()
            .map_err(Error::corrupt)?,
        device_model: raw.device_model,
        created_at: DateTime::parse_from_rfc3339(&raw.created_at)
            .map_err(Error::corrupt)?
            .with_timezone(&Utc),
    })
}

/// Stores a sealed photo's row; returns it.
pub(crate) fn insert(
    conn: &Connection,
    target: PhotoTarget,
    photo: &ProcessedPhoto,
    sealed: &SealedPhoto,
) -> Result<PhotoRecord> {
    // Stored with microseconds: the returned record must equal a read-back.
    let created_at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let record = PhotoRecord {
        sealed_sha256: hex::encode(sealed.sha256),
        target,
        sealed_len: sealed.len,
        phash: photo.phash,
        plain_sha256: hex::encode(photo.sha256),
        format: photo.format,
        width: photo.width,
        height: photo.height,
        captured_at: photo.captured_at,
        device_model: photo.device_model.clone(),
        created_at,
    };
    conn.execute(
        "INSERT INTO photos (sealed_sha256, target_kind, target_id, preview, sealed_len, phash,
             plain_sha256, format, width, height, captured_at, device_model, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            record.sealed_sha256,
            target.kind(),
            target.id(),
            photo.preview,
            sealed.len as i64,
            format!("{:016x}", photo.phash),
            record.plain_sha256,
            photo.format.as_str(),
            photo.width,
            photo.height,
            photo
                .captured_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            photo.device_model,
            created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ],
    )?;
    Ok(record)
}

/// The photos for a target, oldest first.
pub(crate) fn for_target(conn: &Connection, target: PhotoTarget) -> Result<Vec<PhotoRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM photos WHERE target_kind = ?1 AND target_id = ?2
         ORDER BY created_at, sealed_sha256"
    ))?;
    let rows = stmt.query_map(params![target.kind(), target.id()], raw_row)?;
    rows.map(|r| record(r?)).collect()
}

/// A photo's preview JPEG.
pub(crate) fn preview(conn: &Connection, sealed_sha256: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT preview FROM photos WHERE sealed_sha256 = ?1",
            [sealed_sha256],
            |r| r.get(0),
        )
        .optional()?)
}
