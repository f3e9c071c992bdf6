//! Request and response bodies of the HTTP API under `/v1`.
//!
//! Bodies use the parsed domain types, so a request that deserializes is
//! already well-formed; the server still checks business rules. Structs whose
//! fields carry PII say so; servers encrypt those at rest.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::claims::{ClaimAction, ClaimState, Resolution};
use crate::ids::{ClaimId, DeviceId, DocumentId, PartnerId, PolicyId, UserId, VoucherId};
use crate::{Gstin, Imei, Money, Pan, PhoneNumber, Role};

macro_rules! wire {
    ($($item:item)*) => {
        $(
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
            #[serde(deny_unknown_fields)]
            $item
        )*
    };
}

/// What an OTP is for; a code issued for one purpose is useless for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OtpPurpose {
    /// Sign in (customers are registered on first sign-in).
    SignIn,
    /// A shop registering itself as a partner.
    PartnerRegistration,
    /// The customer agrees to a sale at the counter.
    SaleConsent,
    /// The customer agrees to a voucher being redeemed.
    VoucherRedemption,
}

impl OtpPurpose {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpPurpose::SignIn => "sign_in",
            OtpPurpose::PartnerRegistration => "partner_registration",
            OtpPurpose::SaleConsent => "sale_consent",
            OtpPurpose::VoucherRedemption => "voucher_redemption",
        }
    }
}

/// A partner's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    /// Registered, waiting for an admin.
    Pending,
    /// May sell.
    Approved,
    /// Stopped by an admin.
    Suspended,
}

/// A policy's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PolicyStatus {
    /// In force between its start and end dates.
    Active,
    /// Ended early.
    Cancelled,
    /// Past its end date.
    Expired,
}

/// What a plan can pay out as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Benefit {
    /// Repair at a service centre.
    Repair,
    /// Exchange when beyond economic repair.
    Exchange,
    /// The Rs 500 voucher.
    Voucher,
}

/// Kinds of documents a customer uploads to a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// The device's purchase invoice.
    Invoice,
    /// A government ID.
    IdProof,
    /// Anything else the adjuster asked for.
    Other,
}

/// The excess the customer pays on a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Excess {
    /// A share of the repair cost, in basis points (1000 = 10 %).
    PercentBp(u32),
    /// A fixed amount.
    Fixed(Money),
}

wire! {
    /// Ask for a one-time code by SMS.
    pub struct OtpRequest {
        /// The phone to send it to.
        pub phone: PhoneNumber,
        /// What the code will be good for.
        pub purpose: OtpPurpose,
    }

    /// A code was sent.
    pub struct OtpSent {
        /// Seconds until the code expires.
        pub expires_in_seconds: u64,
        /// Seconds before another code may be requested.
        pub resend_after_seconds: u64,
    }

    /// Sign in with a code.
    pub struct SignInRequest {
        /// The phone the code was sent to.
        pub phone: PhoneNumber,
        /// The six digits.
        pub code: String,
        /// The device the session is bound to.
        pub device_id: DeviceId,
    }

    /// Exchange a refresh token for a new pair (the old refresh token dies).
    pub struct RefreshRequest {
        /// The refresh token last received.
        pub refresh_token: String,
        /// The device the session is bound to.
        pub device_id: DeviceId,
    }

    /// Tokens for a signed-in user.
    pub struct Session {
        /// Bearer token for API calls.
        pub access_token: String,
        /// Seconds until the access token expires.
        pub access_expires_in: u64,
        /// Single-use token to get the next pair.
        pub refresh_token: String,
        /// Who signed in.
        pub user: Me,
    }

    /// The signed-in user.
    pub struct Me {
        /// User id.
        pub id: UserId,
        /// Role.
        pub role: Role,
        /// The partner, for partner users.
        pub partner_id: Option<PartnerId>,
        /// Name, if known (PII).
        pub name: Option<String>,
        /// Phone (PII).
        pub phone: PhoneNumber,
    }

    /// A postal address (PII).
    pub struct Address {
        /// Street lines.
        pub line1: String,
        /// More street.
        #[serde(default)]
        pub line2: Option<String>,
        /// City or town.
        pub city: String,
        /// State.
        pub state: String,
        /// Six-digit PIN code.
        pub pin: String,
    }

    /// Where commission is paid (PII).
    pub struct PayoutAccount {
        /// Account holder.
        pub account_name: String,
        /// Account number.
        pub account_number: String,
        /// IFSC of the branch.
        pub ifsc: String,
    }

    /// A shop registers itself; the contact phone is verified by OTP.
    pub struct PartnerRegistration {
        /// Legal name on the GST registration.
        pub legal_name: String,
        /// GSTIN.
        pub gstin: Gstin,
        /// PAN of the business.
        pub pan: Pan,
        /// Shop address.
        pub address: Address,
        /// The person registering (becomes partner_admin).
        pub contact_name: String,
        /// Their phone.
        pub contact_phone: PhoneNumber,
        /// The code sent for `partner_registration`.
        pub otp_code: String,
        /// Payout account.
        pub payout: PayoutAccount,
        /// The device the new session is bound to.
        pub device_id: DeviceId,
    }

    /// A partner shop.
    pub struct Partner {
        /// Id.
        pub id: PartnerId,
        /// Legal name.
        pub legal_name: String,
        /// GSTIN.
        pub gstin: Gstin,
        /// PAN.
        pub pan: Pan,
        /// Address.
        pub address: Address,
        /// Contact phone.
        pub contact_phone: PhoneNumber,
        /// Lifecycle.
        pub status: PartnerStatus,
        /// Registered at.
        pub created_at: DateTime<Utc>,
    }

    /// Answer to a registration: the pending partner and a session for its admin.
    pub struct PartnerRegistered {
        /// The partner, pending approval.
        pub partner: Partner,
        /// The partner_admin's session.
        pub session: Session,
    }

    /// An admin's decision on a partner.
    pub struct PartnerDecision {
        /// Why (kept in the audit trail).
        #[serde(default)]
        pub reason: Option<String>,
    }

    /// Add a staff member or another admin to a partner.
    pub struct StaffCreate {
        /// Their phone (they sign in by OTP).
        pub phone: PhoneNumber,
        /// Their name.
        pub name: String,
        /// partner_staff or partner_admin.
        pub role: Role,
    }

    /// Create an insurer user (adjuster, technician, admin).
    pub struct UserCreate {
        /// Their phone.
        pub phone: PhoneNumber,
        /// Their name.
        pub name: String,
        /// adjuster, technician or admin.
        pub role: Role,
        /// For technicians: the service centre they work for.
        #[serde(default)]
        pub service_centre: Option<String>,
    }

    /// A user as others see them.
    pub struct UserSummary {
        /// Id.
        pub id: UserId,
        /// Role.
        pub role: Role,
        /// Name (PII).
        pub name: Option<String>,
        /// Phone (PII).
        pub phone: PhoneNumber,
        /// Partner, for partner users.
        pub partner_id: Option<PartnerId>,
        /// Service centre, for technicians.
        pub service_centre: Option<String>,
        /// False once deactivated.
        pub active: bool,
    }

    /// One line of a partner's commission ledger.
    pub struct CommissionEntry {
        /// The policy sold.
        pub policy_id: PolicyId,
        /// The commission.
        pub amount: Money,
        /// When it was earned.
        pub created_at: DateTime<Utc>,
    }

    /// A partner's commission ledger.
    pub struct CommissionLedger {
        /// Entries, newest first.
        pub entries: Vec<CommissionEntry>,
        /// Sum of all entries.
        pub total: Money,
    }

    /// The premium for devices up to a price.
    pub struct PriceBand {
        /// Upper bound of the device price (inclusive); `None` for the last band.
        pub up_to: Option<Money>,
        /// Premium for devices in this band.
        pub premium: Money,
    }

    /// A plan in the catalog.
    pub struct Plan {
        /// Stable slug.
        pub id: String,
        /// Name shown to people.
        pub name: String,
        /// What is covered (`screen`).
        pub coverage: String,
        /// Length of a term in days.
        pub term_days: u32,
        /// Days after activation before a claim's incident is covered.
        pub waiting_period_days: u32,
        /// Days after the incident within which a claim must be filed.
        pub claim_window_days: u32,
        /// Days after the device purchase within which the plan may be bought.
        pub purchase_window_days: u32,
        /// Claims allowed per term.
        pub claims_per_term: u32,
        /// Excess on a claim.
        pub excess: Excess,
        /// What a claim may be resolved as.
        pub benefits: Vec<Benefit>,
        /// Value of the voucher benefit.
        pub voucher_value: Money,
        /// Days a voucher stays valid.
        pub voucher_validity_days: u32,
        /// Partner commission in basis points of the premium.
        pub commission_bp: u32,
        /// Premium by device price.
        pub bands: Vec<PriceBand>,
    }

    /// A premium quote.
    pub struct Quote {
        /// The plan.
        pub plan_id: String,
        /// The device price quoted for.
        pub device_price: Money,
        /// The premium.
        pub premium: Money,
    }

    /// Record a sale at the counter. The id is made on the device so a retry
    /// cannot sell twice.
    pub struct SaleRequest {
        /// The policy id, a UUIDv7 made by the client.
        pub id: PolicyId,
        /// Customer's phone (PII).
        pub customer_phone: PhoneNumber,
        /// Customer's name (PII).
        pub customer_name: String,
        /// Customer's email (PII).
        #[serde(default)]
        pub customer_email: Option<String>,
        /// The code sent to the customer for `sale_consent`.
        pub customer_otp: String,
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
        /// Invoice number or document reference.
        pub invoice_ref: String,
        /// Reference of the screen pre-inspection photo.
        pub screen_photo_ref: String,
        /// Plan chosen.
        pub plan_id: String,
    }

    /// An issued policy.
    pub struct Policy {
        /// Id.
        pub id: PolicyId,
        /// Certificate number printed for the customer.
        pub certificate_number: String,
        /// Lifecycle.
        pub status: PolicyStatus,
        /// Plan.
        pub plan_id: String,
        /// Selling partner.
        pub partner_id: Option<PartnerId>,
        /// Customer.
        pub customer_id: UserId,
        /// Customer's name (PII).
        pub customer_name: String,
        /// Customer's phone (PII).
        pub customer_phone: PhoneNumber,
        /// Device IMEI.
        pub imei: Imei,
        /// Brand.
        pub brand: String,
        /// Model.
        pub model: String,
        /// Device price.
        pub device_price: Money,
        /// Premium paid.
        pub premium: Money,
        /// Device purchase date.
        pub device_purchase_date: NaiveDate,
        /// Cover starts.
        pub start_date: NaiveDate,
        /// Cover ends (inclusive).
        pub end_date: NaiveDate,
        /// Invoice reference.
        pub invoice_ref: String,
        /// Screen pre-inspection photo reference.
        pub screen_photo_ref: String,
        /// Claims filed this term (rejected ones excluded).
        pub claims_used: u32,
        /// Issued at.
        pub created_at: DateTime<Utc>,
    }

    /// File a claim. The id is made on the device so a retry cannot file twice.
    pub struct ClaimCreate {
        /// The claim id, a UUIDv7 made by the client.
        pub id: ClaimId,
        /// The policy claimed on.
        pub policy_id: PolicyId,
        /// When the screen broke.
        pub incident_at: DateTime<Utc>,
        /// What happened (PII: free text).
        pub narrative: String,
        /// Photo references of the damage.
        #[serde(default)]
        pub photo_refs: Vec<String>,
        /// Contact number for this claim, if not the policy's.
        #[serde(default)]
        pub contact_phone: Option<PhoneNumber>,
    }

    /// A claim.
    pub struct Claim {
        /// Id.
        pub id: ClaimId,
        /// Policy.
        pub policy_id: PolicyId,
        /// Customer.
        pub customer_id: UserId,
        /// The partner that sold the policy.
        pub partner_id: Option<PartnerId>,
        /// State.
        pub state: ClaimState,
        /// How it was resolved.
        pub resolution: Option<Resolution>,
        /// When the screen broke.
        pub incident_at: DateTime<Utc>,
        /// What happened (PII).
        pub narrative: String,
        /// Contact number (PII).
        pub contact_phone: PhoneNumber,
        /// Photos.
        pub photo_refs: Vec<String>,
        /// Allocated technician.
        pub technician_id: Option<UserId>,
        /// The adjuster's reason for the last decision.
        pub reason: Option<String>,
        /// Documents the customer was asked for.
        pub documents_requested: Vec<DocumentKind>,
        /// The voucher, when resolved by voucher.
        pub voucher_id: Option<VoucherId>,
        /// Filed at.
        pub created_at: DateTime<Utc>,
        /// Last change.
        pub updated_at: DateTime<Utc>,
    }

    /// Ask the server to move a claim.
    pub struct ClaimTransitionRequest {
        /// What to do.
        pub action: ClaimAction,
        /// The state the caller saw; a different current state is refused as stale.
        pub expected_state: ClaimState,
        /// Reason (required to reject).
        #[serde(default)]
        pub reason: Option<String>,
        /// Technician (required to allocate).
        #[serde(default)]
        pub technician_id: Option<UserId>,
        /// Documents to ask for (required to request documents).
        #[serde(default)]
        pub documents: Option<Vec<DocumentKind>>,
    }

    /// One step in a claim's life.
    pub struct ClaimEvent {
        /// When.
        pub at: DateTime<Utc>,
        /// From state (none for the filing).
        pub from: Option<ClaimState>,
        /// To state.
        pub to: ClaimState,
        /// The action.
        pub action: ClaimAction,
        /// Role of whoever did it.
        pub actor_role: Role,
        /// Reason given.
        pub reason: Option<String>,
    }

    /// Upload a document to a claim that asked for one.
    pub struct DocumentUpload {
        /// Kind.
        pub kind: DocumentKind,
        /// Object reference of the uploaded file.
        pub object_ref: String,
    }

    /// A document attached to a claim.
    pub struct ClaimDocument {
        /// Id.
        pub id: DocumentId,
        /// Claim.
        pub claim_id: ClaimId,
        /// Kind.
        pub kind: DocumentKind,
        /// Object reference.
        pub object_ref: String,
        /// Uploaded at.
        pub created_at: DateTime<Utc>,
    }

    /// A technician's job: the claim and the device to work on.
    pub struct Job {
        /// The claim.
        pub claim: Claim,
        /// Device brand.
        pub brand: String,
        /// Device model.
        pub model: String,
        /// Device IMEI.
        pub imei: Imei,
    }

    /// A Rs 500 voucher.
    pub struct Voucher {
        /// Id.
        pub id: VoucherId,
        /// The code the customer shows.
        pub code: String,
        /// The claim it resolved.
        pub claim_id: ClaimId,
        /// The customer.
        pub customer_id: UserId,
        /// Value.
        pub value: Money,
        /// Valid until.
        pub expires_at: DateTime<Utc>,
        /// When redeemed.
        pub redeemed_at: Option<DateTime<Utc>>,
        /// Where redeemed.
        pub redeemed_by_partner: Option<PartnerId>,
    }

    /// Send the voucher's customer a code to approve a redemption.
    pub struct VoucherOtpRequest {
        /// The voucher code.
        pub code: String,
    }

    /// Redeem a voucher at a partner with the customer's code.
    pub struct VoucherRedeemRequest {
        /// The voucher code.
        pub code: String,
        /// The code sent to the customer for `voucher_redemption`.
        pub customer_otp: String,
    }

    /// A message in the dev SMS inbox.
    pub struct SmsMessage {
        /// Id (UUIDv7, so ids sort by time).
        pub id: String,
        /// Recipient (PII).
        pub to: PhoneNumber,
        /// Text.
        pub body: String,
        /// Sent at.
        pub created_at: DateTime<Utc>,
    }

    /// An audit entry.
    pub struct AuditEntry {
        /// Sequence number.
        pub seq: i64,
        /// When.
        pub at: DateTime<Utc>,
        /// Who.
        pub actor_id: Option<UserId>,
        /// Their role.
        pub actor_role: Option<Role>,
        /// What (`claim.read`, `claim.approve`, ...).
        pub action: String,
        /// Resource type.
        pub resource_type: String,
        /// Resource id.
        pub resource_id: Option<String>,
        /// Request id.
        pub request_id: Option<String>,
        /// Client address.
        pub ip: Option<String>,
        /// The W3C trace context the client sent.
        #[serde(default)]
        pub traceparent: Option<String>,
    }
}

/// A list answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_types_are_refused() {
        let ok = r#"{"phone":"98765 43210","purpose":"sign_in"}"#;
        let req: OtpRequest = serde_json::from_str(ok).unwrap();
        assert_eq!(req.phone.as_str(), "+919876543210");
        assert!(
            serde_json::from_str::<OtpRequest>(
                r#"{"phone":"98765 43210","purpose":"sign_in","x":1}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<OtpRequest>(r#"{"phone":9876543210,"purpose":"sign_in"}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<OtpRequest>(r#"{"phone":"12345","purpose":"sign_in"}"#).is_err()
        );
    }
}
