//! Roles: who a signed-in user is. Authorization itself lives in the
//! server's policies; this is just the vocabulary.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns policies, files claims.
    Customer,
    /// Runs a partner shop: staff, commission.
    PartnerAdmin,
    /// Sells at the counter.
    PartnerStaff,
    /// Works allocated repair and exchange jobs.
    Technician,
    /// Reviews and allocates claims at the insurer.
    Adjuster,
    /// Approves partners, manages users, reads audit.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Customer,
        Role::PartnerAdmin,
        Role::PartnerStaff,
        Role::Technician,
        Role::Adjuster,
        Role::Admin,
    ];

    /// The wire name, also the Cedar `Role` entity id.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::PartnerAdmin => "partner_admin",
            Role::PartnerStaff => "partner_staff",
            Role::Technician => "technician",
            Role::Adjuster => "adjuster",
            Role::Admin => "admin",
        }
    }

    /// Parses the wire name.
    pub fn from_name(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// True for the roles that belong to a partner.
    pub fn is_partner_user(self) -> bool {
        matches!(self, Role::PartnerAdmin | Role::PartnerStaff)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
