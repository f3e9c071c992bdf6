//! The claim state machine.
//!
//! `draft` (device only) → `submitted` → `under_review` → `approved` |
//! `rejected` → `allocated` → `documents_requested` → `in_repair` →
//! `resolved` (`repaired` | `exchanged` | `voucher_issued`) → `closed`.
//!
//! The allowed transitions are the table [`TRANSITIONS`]; [`ClaimState::apply`]
//! is the one function that says whether a transition is allowed and, if not,
//! why. Who may ask for a transition is an authorization question answered by
//! the server's policies, not here. Only the server moves a claim.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a claim is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Being written on the device; the server never holds a draft.
    Draft,
    /// Filed by the customer, waiting for an adjuster.
    Submitted,
    /// An adjuster is looking at it.
    UnderReview,
    /// Approved; waiting to be allocated.
    Approved,
    /// Rejected with a reason.
    Rejected,
    /// Allocated to a technician or service centre.
    Allocated,
    /// The customer was asked for documents.
    DocumentsRequested,
    /// The device is being repaired or exchanged.
    InRepair,
    /// Resolved by repair, exchange or voucher.
    Resolved,
    /// Done.
    Closed,
}

/// How a claim was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The screen was repaired.
    Repaired,
    /// The device was exchanged for a replacement.
    Exchanged,
    /// The customer took the Rs 500 voucher instead of a repair.
    VoucherIssued,
}

/// A transition a client can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClaimAction {
    /// File a draft (device side).
    Submit,
    /// An adjuster picks the claim up.
    StartReview,
    /// Approve the claim.
    Approve,
    /// Reject the claim (with a reason).
    Reject,
    /// Allocate to a technician (with the technician's id).
    Allocate,
    /// Ask the customer for documents.
    RequestDocuments,
    /// The technician starts the repair or exchange.
    StartRepair,
    /// Resolved by repair.
    ResolveRepaired,
    /// Resolved by exchange.
    ResolveExchanged,
    /// Resolved by issuing the Rs 500 voucher.
    IssueVoucher,
    /// Close a resolved or rejected claim.
    Close,
}

use ClaimAction as A;
use ClaimState as S;

/// Every allowed transition: (from, action, to).
pub const TRANSITIONS: &[(ClaimState, ClaimAction, ClaimState)] = &[
    (S::Draft, A::Submit, S::Submitted),
    (S::Submitted, A::StartReview, S::UnderReview),
    (S::UnderReview, A::Approve, S::Approved),
    (S::UnderReview, A::Reject, S::Rejected),
    (S::Approved, A::Allocate, S::Allocated),
    (S::Allocated, A::RequestDocuments, S::DocumentsRequested),
    (S::Allocated, A::StartRepair, S::InRepair),
    (S::DocumentsRequested, A::StartRepair, S::InRepair),
    (S::InRepair, A::ResolveRepaired, S::Resolved),
    (S::InRepair, A::ResolveExchanged, S::Resolved),
    // The customer may opt out of the repair for the voucher at any point
    // after allocation, including while documents are awaited.
    (S::Allocated, A::IssueVoucher, S::Resolved),
    (S::DocumentsRequested, A::IssueVoucher, S::Resolved),
    (S::InRepair, A::IssueVoucher, S::Resolved),
    (S::Resolved, A::Close, S::Closed),
    (S::Rejected, A::Close, S::Closed),
];

/// Why a transition was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a claim that is {from}; allowed here: {allowed:?}")]
pub struct TransitionError {
    /// The state the claim is in.
    pub from: ClaimState,
    /// What was asked.
    pub action: ClaimAction,
    /// What would have been allowed from `from`.
    pub allowed: Vec<ClaimAction>,
}

impl ClaimState {
    /// The state `action` leads to from `self`, or why it is not allowed.
    pub fn apply(self, action: ClaimAction) -> Result<ClaimState, TransitionError> {
        TRANSITIONS
            .iter()
            .find(|(from, a, _)| *from == self && *a == action)
            .map(|(_, _, to)| *to)
            .ok_or_else(|| TransitionError {
                from: self,
                action,
                allowed: self.allowed_actions(),
            })
    }

    /// The actions allowed from this state.
    pub fn allowed_actions(self) -> Vec<ClaimAction> {
        TRANSITIONS
            .iter()
            .filter(|(f, _, _)| *f == self)
            .map(|(_, a, _)| *a)
            .collect()
    }

    /// True when no further transition is possible.
    pub fn is_terminal(self) -> bool {
        self.allowed_actions().is_empty()
    }

    /// Every state, in lifecycle order.
    pub const ALL: [ClaimState; 10] = [
        S::Draft,
        S::Submitted,
        S::UnderReview,
        S::Approved,
        S::Rejected,
        S::Allocated,
        S::DocumentsRequested,
        S::InRepair,
        S::Resolved,
        S::Closed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            S::Draft => "draft",
            S::Submitted => "submitted",
            S::UnderReview => "under_review",
            S::Approved => "approved",
            S::Rejected => "rejected",
            S::Allocated => "allocated",
            S::DocumentsRequested => "documents_requested",
            S::InRepair => "in_repair",
            S::Resolved => "resolved",
            S::Closed => "closed",
        }
    }

    /// Parses the wire name.
    pub fn from_name(s: &str) -> Option<ClaimState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl ClaimAction {
    /// Every action.
    pub const ALL: [ClaimAction; 11] = [
        A::Submit,
        A::StartReview,
        A::Approve,
        A::Reject,
        A::Allocate,
        A::RequestDocuments,
        A::StartRepair,
        A::ResolveRepaired,
        A::ResolveExchanged,
        A::IssueVoucher,
        A::Close,
    ];

    /// The resolution this action records, if it resolves the claim.
    pub fn resolution(self) -> Option<Resolution> {
        match self {
            A::ResolveRepaired => Some(Resolution::Repaired),
            A::ResolveExchanged => Some(Resolution::Exchanged),
            A::IssueVoucher => Some(Resolution::VoucherIssued),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            A::Submit => "submit",
            A::StartReview => "start_review",
            A::Approve => "approve",
            A::Reject => "reject",
            A::Allocate => "allocate",
            A::RequestDocuments => "request_documents",
            A::StartRepair => "start_repair",
            A::ResolveRepaired => "resolve_repaired",
            A::ResolveExchanged => "resolve_exchanged",
            A::IssueVoucher => "issue_voucher",
            A::Close => "close",
        }
    }
}

impl Resolution {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Repaired => "repaired",
            Resolution::Exchanged => "exchanged",
            Resolution::VoucherIssued => "voucher_issued",
        }
    }

    /// Parses the wire name.
    pub fn from_name(s: &str) -> Option<Resolution> {
        [
            Resolution::Repaired,
            Resolution::Exchanged,
            Resolution::VoucherIssued,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ClaimAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn happy_path_by_voucher() {
        let mut s = S::Submitted;
        for a in [
            A::StartReview,
            A::Approve,
            A::Allocate,
            A::RequestDocuments,
            A::IssueVoucher,
            A::Close,
        ] {
            s = s.apply(a).unwrap();
        }
        assert_eq!(s, S::Closed);
        assert!(s.is_terminal());
    }

    #[test]
    fn refusal_says_why_and_what_is_allowed() {
        let e = S::Submitted.apply(A::Approve).unwrap_err();
        assert_eq!(e.from, S::Submitted);
        assert_eq!(e.allowed, vec![A::StartReview]);
    }

    #[test]
    fn wire_names_match_serde() {
        for s in S::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
            assert_eq!(S::from_name(s.as_str()), Some(s));
        }
        for a in A::ALL {
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::Value::String(a.as_str().into())
            );
        }
    }

    #[test]
    fn table_is_a_function() {
        for (i, (f, a, _)) in TRANSITIONS.iter().enumerate() {
            assert!(
                TRANSITIONS[i + 1..]
                    .iter()
                    .all(|(f2, a2, _)| (f2, a2) != (f, a)),
                "duplicate {f} {a}"
            );
        }
    }

    fn any_action() -> impl Strategy<Value = ClaimAction> {
        proptest::sample::select(A::ALL.to_vec())
    }

    proptest! {
        /// Whatever sequence of requests arrives, the claim only ever takes
        /// table transitions, never returns to draft, and closed is final.
        #[test]
        fn random_walks_only_take_table_edges(actions in proptest::collection::vec(any_action(), 0..40)) {
            let mut s = S::Submitted;
            for a in actions {
                match s.apply(a) {
                    Ok(next) => {
                        prop_assert!(TRANSITIONS.contains(&(s, a, next)));
                        prop_assert_ne!(next, S::Draft);
                        s = next;
                    }
                    Err(e) => {
                        prop_assert_eq!(e.from, s);
                        prop_assert!(!e.allowed.contains(&a));
                    }
                }
                if s == S::Closed {
                    prop_assert!(s.allowed_actions().is_empty());
                }
            }
        }

        /// A resolution is only ever recorded on the way into `resolved`.
        #[test]
        fn resolutions_lead_to_resolved(a in any_action()) {
            for s in S::ALL {
                if let Ok(next) = s.apply(a) {
                    prop_assert_eq!(a.resolution().is_some(), next == S::Resolved);
                }
            }
        }
    }
}
