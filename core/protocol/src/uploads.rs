//! Blobs (sealed photos and documents) and how they are attached.
//!
//! A blob travels over tus 1.0 (`/v1/uploads`), named by the SHA-256 of its
//! bytes ([`BlobHash`]). Its upload names what it is for ([`BlobKind`]) and
//! the claim, policy or job it belongs to; the server checks the whole blob
//! against its name when the last byte arrives. Only after the server has
//! confirmed the upload does the device push [`Attachment`] (the sync
//! command `attach_blob`), which records the blob on its target.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::problem::{ErrorCode, ParseError};

/// The SHA-256 of a blob's bytes, as 64 lowercase hex digits: the blob's name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(String);

impl BlobHash {
    /// Parses 64 hex digits (either case; kept lowercase).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::new(
                ErrorCode::InvalidRequest,
                "a blob is named by the 64 hex digits of its SHA-256",
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The hash from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in bytes {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        Self(s)
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reference a claim's `photo_refs` holds for this blob: `sha256:<hex>`.
    pub fn reference(&self) -> String {
        format!("sha256:{}", self.0)
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.0)
    }
}

crate::serde_via_parse!(BlobHash, "SHA-256 of the blob, 64 hex digits");

/// What a blob is for; says which target it attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A photo of the damage, on a claim (the customer's).
    ClaimPhoto,
    /// The screen pre-inspection photo of a sale, on the policy (the shop's).
    SalePhoto,
    /// A photo of a technician's work, on the job (the claim allocated to them).
    JobPhoto,
    /// A document the adjuster asked for, on a claim (the customer's).
    Document,
}

impl BlobKind {
    /// Every kind.
    pub const ALL: [BlobKind; 4] = [
        BlobKind::ClaimPhoto,
        BlobKind::SalePhoto,
        BlobKind::JobPhoto,
        BlobKind::Document,
    ];

    /// The wire name (`claim_photo`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::ClaimPhoto => "claim_photo",
            BlobKind::SalePhoto => "sale_photo",
            BlobKind::JobPhoto => "job_photo",
            BlobKind::Document => "document",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ParseError::new(
                    ErrorCode::InvalidRequest,
                    "kind is one of claim_photo, sale_photo, job_photo, document",
                )
            })
    }
}

impl fmt::Display for BlobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Attach an uploaded blob to its target (sync command `attach_blob`).
///
/// Bound into the outbox payload hash: must not change shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// What the blob is for.
    pub kind: BlobKind,
    /// The claim (claim photos, job photos, documents) or policy (sale photos).
    pub target: Uuid,
    /// The blob's name.
    pub sha256: BlobHash,
    /// Its length in bytes.
    pub length: u64,
    /// For photos: the 64-bit perceptual hash of the unsealed image, as 16
    /// hex digits, which the server compares with other claims' photos to
    /// flag a photo used twice. Absent for documents (and left out of the
    /// payload then, so older payload hashes are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phash: Option<PerceptualHash>,
}

/// A 64-bit perceptual hash (DCT pHash) of a photo, as 16 lowercase hex digits.
/// Similar photos have hashes a few bits apart ([`PerceptualHash::distance`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerceptualHash(u64);

impl PerceptualHash {
    /// Wraps the 64 bits.
    pub fn new(bits: u64) -> Self {
        Self(bits)
    }

    /// The 64 bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Parses 16 hex digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.len() != 16 {
            return Err(ParseError::new(
                ErrorCode::InvalidRequest,
                "a perceptual hash is 16 hex digits",
            ));
        }
        u64::from_str_radix(s, 16).map(Self).map_err(|_| {
            ParseError::new(
                ErrorCode::InvalidRequest,
                "a perceptual hash is 16 hex digits",
            )
        })
    }

    /// How many of the 64 bits differ (0 = the same picture as far as the hash can tell).
    pub fn distance(self, other: PerceptualHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

impl fmt::Display for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PerceptualHash({:016x})", self.0)
    }
}

crate::serde_via_parse!(PerceptualHash, "64-bit perceptual hash, 16 hex digits");

/// Photo hashes at most this many bits apart are flagged as the same photo.
pub const DUPLICATE_PHOTO_DISTANCE: u32 = 10;

/// The insurer's public key that devices seal photos and documents to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SealingKey {
    /// The HPKE suite: `x25519-hkdf-sha256-aes256gcm`.
    pub suite: String,
    /// The X25519 public key, 64 hex digits.
    pub public_key: String,
}

/// A photo on a claim as insurer staff see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimPhoto {
    /// What it is (a claim photo or a technician's job photo).
    pub kind: BlobKind,
    /// The sealed blob's name; `GET /v1/claims/{id}/photos/{sha256}` shows it.
    pub sha256: BlobHash,
    /// The sealed blob's length in bytes.
    pub length: u64,
    /// The perceptual hash the device reported, if any.
    pub phash: Option<PerceptualHash>,
    /// When it was attached.
    pub attached_at: chrono::DateTime<chrono::Utc>,
    /// Photos on other claims that look the same: a fraud flag for the
    /// adjuster, not a refusal.
    pub duplicates: Vec<DuplicatePhoto>,
}

/// A photo on another claim whose perceptual hash is close to this one's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DuplicatePhoto {
    /// The other claim.
    pub claim_id: Uuid,
    /// The other photo.
    pub sha256: BlobHash,
    /// Bits apart (0..=[`DUPLICATE_PHOTO_DISTANCE`]).
    pub distance: u32,
}

/// The tus metadata keys our server reads from `Upload-Metadata`.
pub mod metadata {
    /// The blob's SHA-256, hex.
    pub const SHA256: &str = "sha256";
    /// A [`super::BlobKind`] wire name.
    pub const KIND: &str = "kind";
    /// The target's id.
    pub const TARGET: &str = "target";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perceptual_hashes_round_trip_and_measure_distance() {
        let a = PerceptualHash::parse("00000000000000ff").unwrap();
        assert_eq!(a.to_string(), "00000000000000ff");
        assert_eq!(a.distance(PerceptualHash::new(0)), 8);
        assert!(PerceptualHash::parse("xyz").is_err());
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json, "00000000000000ff");
        let att: Attachment = serde_json::from_value(serde_json::json!({
            "kind": "document", "target": Uuid::nil(), "sha256": "ab".repeat(32), "length": 3
        }))
        .unwrap();
        assert_eq!(att.phash, None);
        assert!(!serde_json::to_string(&att).unwrap().contains("phash"));
    }

    #[test]
    fn hashes_parse_to_lowercase_and_refuse_the_rest() {
        let h = BlobHash::parse(&"AB".repeat(32)).unwrap();
        assert_eq!(h.as_str(), "ab".repeat(32));
        assert_eq!(h.reference(), format!("sha256:{}", "ab".repeat(32)));
        assert!(BlobHash::parse("abc").is_err());
        assert!(BlobHash::parse(&"zz".repeat(32)).is_err());
        assert_eq!(BlobHash::from_bytes(&[0xab; 32]), h);
        for k in BlobKind::ALL {
            assert_eq!(BlobKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
