//! Identifiers: UUIDv7, generated where the entity is born (on a device for
//! offline writes), so ids sort by creation time and never collide.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::problem::{ErrorCode, ParseError};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "Uuid", into = "Uuid")]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh UUIDv7.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// Parses a UUID string; only version 7 is accepted.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                let u = Uuid::parse_str(s).map_err(|_| ParseError::new(ErrorCode::InvalidId, "not a UUID"))?;
                Self::try_from(u)
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
        impl TryFrom<Uuid> for $name {
            type Error = ParseError;
            fn try_from(u: Uuid) -> Result<Self, ParseError> {
                if u.get_version_num() == 7 {
                    Ok(Self(u))
                } else {
                    Err(ParseError::new(ErrorCode::InvalidId, "ids are UUIDv7"))
                }
            }
        }
        impl From<$name> for Uuid {
            fn from(v: $name) -> Uuid {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// A person who signs in: customer, partner user, technician, adjuster or admin.
    UserId
);
id_type!(
    /// A channel partner (a phone shop).
    PartnerId
);
id_type!(
    /// An issued policy.
    PolicyId
);
id_type!(
    /// A claim against a policy.
    ClaimId
);
id_type!(
    /// A Rs 500 voucher.
    VoucherId
);
id_type!(
    /// A device (tablet, phone, browser) a session is bound to.
    DeviceId
);
id_type!(
    /// A document attached to a claim or a policy.
    DocumentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_sort_by_creation() {
        let a = ClaimId::new();
        let b = ClaimId::new();
        assert!(a <= b);
        assert_eq!(ClaimId::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn v4_ids_are_refused() {
        let err = ClaimId::parse("6f1c2f0e-5a4b-4c3d-9e8f-0a1b2c3d4e5f").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidId);
        assert!(
            serde_json::from_str::<ClaimId>("\"6f1c2f0e-5a4b-4c3d-9e8f-0a1b2c3d4e5f\"").is_err()
        );
    }
}
