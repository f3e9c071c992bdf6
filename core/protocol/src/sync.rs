//! The sync contract between a device's outbox and the server.
//!
//! A device writes each domain change together with an [`OutboxEntry`] in one
//! local transaction. It pushes entries in `client_seq` order
//! ([`PushRequest`]); the server applies each one at most once, keyed by
//! `(device, client_seq, mutation_id, payload hash)`, stores the result in the
//! same transaction as the effect, and answers per entry ([`EntryResult`]).
//! A replay gets the stored result back as `duplicate`; the same seq or id
//! with another payload is `rejected` with `mutation_conflict`; a gap stops
//! the batch and the server names the `expected_seq`. A rejected entry still
//! consumes its seq, so it never blocks the queue.
//!
//! The device then pulls ([`PullResponse`]) what it may see, from an opaque
//! cursor, applying the changes and the next cursor in one local transaction.
//! A cursor the server cannot serve gets `resync: true`: drop the cached view
//! and pull from the start (never the outbox).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Claim, ClaimCreate, ClaimTransitionRequest, Job, Policy, Voucher};
use crate::claims::Resolution;
use crate::ids::{ClaimId, PolicyId};
use crate::problem::ErrorCode;
use crate::uploads::Attachment;
use crate::{Imei, Money, PhoneNumber};

/// A sale recorded at the counter, possibly with the network off. When the
/// customer could not receive the consent code (no network), `customer_otp`
/// is absent and the server asks the customer to confirm later by SMS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineSale {
    /// The policy id, made on the device.
    pub id: PolicyId,
    /// Customer's phone (PII).
    pub customer_phone: PhoneNumber,
    /// Customer's name (PII).
    pub customer_name: String,
    /// The consent code, if the customer could get it at the counter.
    #[serde(default)]
    pub customer_otp: Option<String>,
    /// The device.
    pub imei: Imei,
    /// Brand.
    pub brand: String,
    /// Model.
    pub model: String,
    /// Price paid for the device.
    pub device_price: Money,
    /// When the device was bought.
    pub device_purchase_date: NaiveDate,
    /// Invoice reference.
    pub invoice_ref: String,
    /// Screen pre-inspection photo reference.
    pub screen_photo_ref: String,
    /// Plan chosen.
    pub plan_id: String,
}

/// A technician's outcome for an allocated job, recorded in the field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobOutcome {
    /// The claim worked on.
    pub claim_id: ClaimId,
    /// Repaired or exchanged.
    pub outcome: Resolution,
    /// What was done.
    #[serde(default)]
    pub notes: Option<String>,
    /// Photos of the work.
    #[serde(default)]
    pub photo_refs: Vec<String>,
}

/// A named command in the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "command", content = "payload", rename_all = "snake_case")]
pub enum Command {
    /// Record a sale.
    RecordSale(OfflineSale),
    /// File a claim.
    CreateClaim(ClaimCreate),
    /// Ask for a claim transition.
    RequestTransition {
        /// The claim.
        claim_id: ClaimId,
        /// The transition.
        request: ClaimTransitionRequest,
    },
    /// A technician's outcome.
    RecordJobOutcome(JobOutcome),
    /// Attach a blob whose upload the server has confirmed.
    AttachBlob(Attachment),
}

impl Command {
    /// The command's name, as stored in the outbox.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RecordSale(_) => "record_sale",
            Command::CreateClaim(_) => "create_claim",
            Command::RequestTransition { .. } => "request_transition",
            Command::RecordJobOutcome(_) => "record_job_outcome",
            Command::AttachBlob(_) => "attach_blob",
        }
    }
}

/// One outbox row on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxEntry {
    /// Monotonic per device, from 1.
    pub client_seq: u64,
    /// Unique per mutation.
    pub mutation_id: Uuid,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

/// A batch of outbox rows, in `client_seq` order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The rows.
    pub entries: Vec<OutboxEntry>,
}

/// What happened to one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Applied now.
    Applied,
    /// Applied before; this is the stored result.
    Duplicate,
    /// Refused; the seq is consumed and the queue moves on.
    Rejected,
}

/// The result for one row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryResult {
    /// The row's seq.
    pub client_seq: u64,
    /// The row's mutation id.
    pub mutation_id: Uuid,
    /// Outcome.
    pub status: EntryStatus,
    /// For rejections: the stable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// For rejections: a sentence for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer to a push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResponse {
    /// Per-row results, for the rows processed (all of them unless a gap stopped the batch).
    pub results: Vec<EntryResult>,
    /// The highest seq the server has applied (or rejected) for this device.
    pub highest_applied_seq: u64,
    /// When the batch skipped a seq: the seq the server expects next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
}

/// One change the caller may see: the entity's current state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Change {
    /// A policy.
    Policy(Policy),
    /// A claim.
    Claim(Claim),
    /// A technician's job.
    Job(Job),
    /// A voucher.
    Voucher(Voucher),
}

/// The answer to a pull.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullResponse {
    /// Changes, oldest first.
    pub changes: Vec<Change>,
    /// Where to continue from (opaque).
    pub cursor: String,
    /// More changes wait.
    pub has_more: bool,
    /// The highest seq the server has applied for this device.
    pub highest_applied_seq: u64,
    /// The cursor could not be served: drop the cached view and pull from the start.
    pub resync: bool,
    /// Server time of this answer (devices never order by their own clocks).
    pub server_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_flat_and_named() {
        let e = OutboxEntry {
            client_seq: 7,
            mutation_id: Uuid::nil(),
            command: Command::RecordJobOutcome(JobOutcome {
                claim_id: ClaimId::new(),
                outcome: Resolution::Repaired,
                notes: None,
                photo_refs: vec![],
            }),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["command"], "record_job_outcome");
        assert_eq!(v["client_seq"], 7);
        assert_eq!(serde_json::from_value::<OutboxEntry>(v).unwrap(), e);
    }
}
