//! Stable error codes and the RFC 9457 problem body the API answers with.
//!
//! A client branches on [`ErrorCode`], never on the human `detail` text. Codes
//! are part of the protocol: renaming one is a breaking change.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::claims::ClaimState;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $v:ident => $s:literal,)*) => {
        /// Every refusal the system can give, each with its own stable code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $s)] $v,)*
        }

        impl ErrorCode {
            /// Every code, for tests and documentation.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$v),*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$v => $s,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not the JSON the endpoint expects, or a field has the wrong type.
    InvalidRequest => "invalid_request",
    /// The body is larger than the endpoint accepts.
    PayloadTooLarge => "payload_too_large",
    /// An id is not a UUIDv7.
    InvalidId => "invalid_id",
    /// An IMEI is not 15 digits with a valid Luhn check digit.
    InvalidImei => "invalid_imei",
    /// A phone number is not a valid mobile number.
    InvalidPhone => "invalid_phone",
    /// A GSTIN has the wrong format or check character.
    InvalidGstin => "invalid_gstin",
    /// A PAN has the wrong format.
    InvalidPan => "invalid_pan",
    /// An amount is negative, fractional beyond paise, or too large.
    InvalidMoney => "invalid_money",
    /// A date or time is out of the range the field accepts.
    InvalidDate => "invalid_date",
    /// No valid access token was presented.
    Unauthenticated => "unauthenticated",
    /// The access token has expired; refresh it.
    TokenExpired => "token_expired",
    /// The caller may not do this.
    Forbidden => "forbidden",
    /// The thing does not exist, or the caller may not know it exists.
    NotFound => "not_found",
    /// The OTP does not match.
    OtpInvalid => "otp_invalid",
    /// The OTP has expired or was never issued; request a new one.
    OtpExpired => "otp_expired",
    /// Too many wrong tries for this code; request a new one.
    OtpTooManyAttempts => "otp_too_many_attempts",
    /// Too many failed codes over the account's lifetime; support must unlock it.
    OtpLocked => "otp_locked",
    /// A code was sent too recently or too often; wait before asking again.
    OtpRateLimited => "otp_rate_limited",
    /// The refresh token is unknown, expired or bound to another device.
    RefreshTokenInvalid => "refresh_token_invalid",
    /// A refresh token was used twice: the whole session was revoked.
    RefreshTokenReused => "refresh_token_reused",
    /// Too many requests; try again after the `Retry-After` delay.
    RateLimited => "rate_limited",
    /// A partner with this GSTIN already exists.
    GstinTaken => "gstin_taken",
    /// The phone number already belongs to another user.
    PhoneInUse => "phone_in_use",
    /// The partner is not approved (yet) and cannot sell or add staff.
    PartnerNotApproved => "partner_not_approved",
    /// The partner is suspended.
    PartnerSuspended => "partner_suspended",
    /// The partner is not in a state that allows this change.
    PartnerStateConflict => "partner_state_conflict",
    /// The IMEI already has an active policy.
    ImeiAlreadyCovered => "imei_already_covered",
    /// No plan covers a device at this price.
    NoPlanForPrice => "no_plan_for_price",
    /// The plan does not exist or does not cover a device at this price.
    PlanNotApplicable => "plan_not_applicable",
    /// The device was bought longer ago than the plan allows.
    DevicePurchaseTooOld => "device_purchase_too_old",
    /// The policy is not active at the incident date.
    PolicyNotActive => "policy_not_active",
    /// The incident happened inside the plan's waiting period.
    WaitingPeriod => "waiting_period",
    /// The claim is filed too long after the incident.
    OutsideClaimWindow => "outside_claim_window",
    /// The policy has used all its claims for this term.
    ClaimsPerTermExceeded => "claims_per_term_exceeded",
    /// The transition is not allowed from the claim's current state.
    IllegalTransition => "illegal_transition",
    /// The claim moved on since the caller looked; `current_state` says where it is.
    StaleState => "stale_state",
    /// The chosen resolution is not among the plan's benefits.
    BenefitNotAllowed => "benefit_not_allowed",
    /// The technician does not exist or is not active.
    UnknownTechnician => "unknown_technician",
    /// The voucher was already redeemed.
    VoucherAlreadyRedeemed => "voucher_already_redeemed",
    /// The voucher has expired.
    VoucherExpired => "voucher_expired",
    /// A sync mutation reused a seq or id with a different payload.
    MutationConflict => "mutation_conflict",
    /// A sync mutation came with a seq the server has from another mutation
    /// of the same device (the device was restored from an older copy of
    /// itself); the device numbers its queue again after the server's
    /// highest seq and sends it again.
    ClientSeqTaken => "client_seq_taken",
    /// The device belongs to another user; sign in again on this device.
    DeviceMismatch => "device_mismatch",
    /// A request to the upload endpoints did not say `Tus-Resumable: 1.0.0`.
    TusVersionUnsupported => "tus_version_unsupported",
    /// An upload chunk was not sent as `application/offset+octet-stream`.
    UnsupportedMediaType => "unsupported_media_type",
    /// An upload chunk started at another offset than the server has; ask
    /// with HEAD and send from there.
    UploadOffsetMismatch => "upload_offset_mismatch",
    /// An upload chunk does not match its `Upload-Checksum`; it was discarded.
    ChecksumMismatch => "checksum_mismatch",
    /// The upload expired before it was finished; start a new one.
    UploadExpired => "upload_expired",
    /// The whole uploaded blob does not hash to the name it was uploaded
    /// under; it was discarded.
    BlobHashMismatch => "blob_hash_mismatch",
    /// The blob to attach has not been completely uploaded by this user.
    BlobNotUploaded => "blob_not_uploaded",
    /// A stored blob does not open with the insurer's key (sealed to another
    /// key, or damaged); the device that took it should send it again.
    SealedBlobUnreadable => "sealed_blob_unreadable",
    /// A photo file is larger than the pipeline accepts.
    PhotoTooLarge => "photo_too_large",
    /// A photo's dimensions or pixel count are beyond the limits (a
    /// decompression bomb, or a panorama far beyond a phone camera's).
    PhotoTooManyPixels => "photo_too_many_pixels",
    /// The file is not a JPEG or PNG photo.
    PhotoUnsupported => "photo_unsupported",
    /// The photo file is damaged or cut short.
    PhotoCorrupt => "photo_corrupt",
    /// Something failed on the server; the request id lets support find it.
    Internal => "internal",
    /// A dependency is unavailable; retry later.
    Unavailable => "unavailable",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string did not parse into a domain type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The stable code (`invalid_imei`, ...).
    pub code: ErrorCode,
    /// A sentence for a person.
    pub message: String,
}

impl ParseError {
    /// A parse error with its code and a sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem body with our stable `code`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type (`urn:glassguard:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable code a client branches on.
    pub code: ErrorCode,
    /// A sentence about this occurrence, safe to show a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id, for support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `stale_state` and `illegal_transition`: where the claim is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<ClaimState>,
    /// For rate limits: seconds to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
        }
    }
}
