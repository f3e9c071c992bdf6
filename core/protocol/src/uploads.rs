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
