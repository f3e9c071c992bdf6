//! The actions the server asks the policies about.
//!
//! One variant per Cedar `Action::"<name>"` declared in
//! `assets/policies/schema.cedarschema`; the loader refuses a schema that
//! declares more or fewer, so this enum and the schema cannot drift apart.

use std::fmt;

use glassguard_protocol::ClaimAction;

/// Something a caller asks to do. [`Action::as_str`] is the Cedar action id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `otp.request`: Ask for a one-time password (public).
    OtpRequest,
    /// `session.create`: Sign in with an OTP (public).
    SessionCreate,
    /// `session.refresh`: Refresh a session (public: the refresh token is the credential).
    SessionRefresh,
    /// `session.delete`: Sign out.
    SessionDelete,
    /// `me.read`: Read the caller's own profile.
    MeRead,
    /// `plan.list`: List the plans on sale (public).
    PlanList,
    /// `partner.register`: Apply to become a partner (public).
    PartnerRegister,
    /// `partner.list`: List partners.
    PartnerList,
    /// `partner.read`: Read one partner.
    PartnerRead,
    /// `partner.approve`: Approve a pending partner.
    PartnerApprove,
    /// `partner.suspend`: Suspend a partner.
    PartnerSuspend,
    /// `staff.create`: Add a staff user to a partner.
    StaffCreate,
    /// `staff.list`: List a partner's staff.
    StaffList,
    /// `commission.read`: Read a partner's commission.
    CommissionRead,
    /// `user.create`: Create a user (technician, adjuster, admin).
    UserCreate,
    /// `user.list`: List users.
    UserList,
    /// `policy.create`: Sell a policy at a partner.
    PolicyCreate,
    /// `policy.list`: List policies (scoped to the caller by the handler).
    PolicyList,
    /// `policy.read`: Read one policy.
    PolicyRead,
    /// `claim.create`: File a claim against a policy.
    ClaimCreate,
    /// `claim.list`: List claims (scoped to the caller by the handler).
    ClaimList,
    /// `claim.read`: Read one claim.
    ClaimRead,
    /// `claim.document.upload`: Upload a document to a claim.
    ClaimDocumentUpload,
    /// `claim.submit`: Claim transition `submit` (device side only: never permitted on the server).
    ClaimSubmit,
    /// `claim.start_review`: Claim transition `start_review`.
    ClaimStartReview,
    /// `claim.approve`: Claim transition `approve`.
    ClaimApprove,
    /// `claim.reject`: Claim transition `reject`.
    ClaimReject,
    /// `claim.allocate`: Claim transition `allocate`.
    ClaimAllocate,
    /// `claim.request_documents`: Claim transition `request_documents`.
    ClaimRequestDocuments,
    /// `claim.start_repair`: Claim transition `start_repair`.
    ClaimStartRepair,
    /// `claim.resolve_repaired`: Claim transition `resolve_repaired`.
    ClaimResolveRepaired,
    /// `claim.resolve_exchanged`: Claim transition `resolve_exchanged`.
    ClaimResolveExchanged,
    /// `claim.issue_voucher`: Claim transition `issue_voucher`.
    ClaimIssueVoucher,
    /// `claim.close`: Claim transition `close`.
    ClaimClose,
    /// `job.list`: List the technician's jobs.
    JobList,
    /// `voucher.list`: List vouchers (scoped to the caller by the handler).
    VoucherList,
    /// `voucher.redeem`: Redeem a voucher at a partner.
    VoucherRedeem,
    /// `voucher.redeem_otp`: Send the customer the OTP that confirms a redemption at a partner.
    VoucherRedeemOtp,
    /// `sms.read`: Read the SMS outbox.
    SmsRead,
    /// `audit.read`: Read the audit log.
    AuditRead,
    /// `audit.trace`: Read the trace of one policy or claim.
    AuditTrace,
    /// `sync.push`: Push a device's outbox.
    SyncPush,
    /// `sync.pull`: Pull the caller's view of changes.
    SyncPull,
    /// `voucher.read`: Read one voucher.
    VoucherRead,
    /// `bot.message`: Talk to the text bot in the app (public).
    BotMessage,
    /// `bot.sms`: Deliver an inbound SMS to the text bot (the SMS gateway's webhook; its HMAC signature is the credential).
    BotSms,
    /// `claim.photo.view`: See a claim's photos unsealed, with duplicate-photo flags (insurer staff).
    ClaimPhotoView,
    /// `upload.claim_photo`: Upload and attach a photo of the damage to a claim.
    UploadClaimPhoto,
    /// `upload.job_photo`: Upload and attach a photo of a technician's work to a job (its claim).
    UploadJobPhoto,
    /// `upload.document`: Upload and attach a document to a claim.
    UploadDocument,
    /// `upload.sale_photo`: Upload and attach the screen pre-inspection photo of a sale (its policy).
    UploadSalePhoto,
}

impl Action {
    /// Every action, in schema order.
    pub const ALL: [Action; 51] = [
        Action::OtpRequest,
        Action::SessionCreate,
        Action::SessionRefresh,
        Action::SessionDelete,
        Action::MeRead,
        Action::PlanList,
        Action::PartnerRegister,
        Action::PartnerList,
        Action::PartnerRead,
        Action::PartnerApprove,
        Action::PartnerSuspend,
        Action::StaffCreate,
        Action::StaffList,
        Action::CommissionRead,
        Action::UserCreate,
        Action::UserList,
        Action::PolicyCreate,
        Action::PolicyList,
        Action::PolicyRead,
        Action::ClaimCreate,
        Action::ClaimList,
        Action::ClaimRead,
        Action::ClaimDocumentUpload,
        Action::ClaimSubmit,
        Action::ClaimStartReview,
        Action::ClaimApprove,
        Action::ClaimReject,
        Action::ClaimAllocate,
        Action::ClaimRequestDocuments,
        Action::ClaimStartRepair,
        Action::ClaimResolveRepaired,
        Action::ClaimResolveExchanged,
        Action::ClaimIssueVoucher,
        Action::ClaimClose,
        Action::JobList,
        Action::VoucherList,
        Action::VoucherRedeem,
        Action::VoucherRedeemOtp,
        Action::SmsRead,
        Action::AuditRead,
        Action::AuditTrace,
        Action::SyncPush,
        Action::SyncPull,
        Action::VoucherRead,
        Action::BotMessage,
        Action::BotSms,
        Action::ClaimPhotoView,
        Action::UploadClaimPhoto,
        Action::UploadJobPhoto,
        Action::UploadDocument,
        Action::UploadSalePhoto,
    ];

    /// The Cedar action id, e.g. `claim.read` for `Action::"claim.read"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::OtpRequest => "otp.request",
            Action::SessionCreate => "session.create",
            Action::SessionRefresh => "session.refresh",
            Action::SessionDelete => "session.delete",
            Action::MeRead => "me.read",
            Action::PlanList => "plan.list",
            Action::PartnerRegister => "partner.register",
            Action::PartnerList => "partner.list",
            Action::PartnerRead => "partner.read",
            Action::PartnerApprove => "partner.approve",
            Action::PartnerSuspend => "partner.suspend",
            Action::StaffCreate => "staff.create",
            Action::StaffList => "staff.list",
            Action::CommissionRead => "commission.read",
            Action::UserCreate => "user.create",
            Action::UserList => "user.list",
            Action::PolicyCreate => "policy.create",
            Action::PolicyList => "policy.list",
            Action::PolicyRead => "policy.read",
            Action::ClaimCreate => "claim.create",
            Action::ClaimList => "claim.list",
            Action::ClaimRead => "claim.read",
            Action::ClaimDocumentUpload => "claim.document.upload",
            Action::ClaimSubmit => "claim.submit",
            Action::ClaimStartReview => "claim.start_review",
            Action::ClaimApprove => "claim.approve",
            Action::ClaimReject => "claim.reject",
            Action::ClaimAllocate => "claim.allocate",
            Action::ClaimRequestDocuments => "claim.request_documents",
            Action::ClaimStartRepair => "claim.start_repair",
            Action::ClaimResolveRepaired => "claim.resolve_repaired",
            Action::ClaimResolveExchanged => "claim.resolve_exchanged",
            Action::ClaimIssueVoucher => "claim.issue_voucher",
            Action::ClaimClose => "claim.close",
            Action::JobList => "job.list",
            Action::VoucherList => "voucher.list",
            Action::VoucherRedeem => "voucher.redeem",
            Action::VoucherRedeemOtp => "voucher.redeem_otp",
            Action::SmsRead => "sms.read",
            Action::AuditRead => "audit.read",
            Action::AuditTrace => "audit.trace",
            Action::SyncPush => "sync.push",
            Action::SyncPull => "sync.pull",
            Action::VoucherRead => "voucher.read",
            Action::BotMessage => "bot.message",
            Action::BotSms => "bot.sms",
            Action::ClaimPhotoView => "claim.photo.view",
            Action::UploadClaimPhoto => "upload.claim_photo",
            Action::UploadJobPhoto => "upload.job_photo",
            Action::UploadDocument => "upload.document",
            Action::UploadSalePhoto => "upload.sale_photo",
        }
    }

    /// Parses a Cedar action id.
    pub fn from_name(s: &str) -> Option<Action> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The action guarding a claim transition: `claim.<wire name>`.
    pub fn for_claim(action: ClaimAction) -> Action {
        match action {
            ClaimAction::Submit => Action::ClaimSubmit,
            ClaimAction::StartReview => Action::ClaimStartReview,
            ClaimAction::Approve => Action::ClaimApprove,
            ClaimAction::Reject => Action::ClaimReject,
            ClaimAction::Allocate => Action::ClaimAllocate,
            ClaimAction::RequestDocuments => Action::ClaimRequestDocuments,
            ClaimAction::StartRepair => Action::ClaimStartRepair,
            ClaimAction::ResolveRepaired => Action::ClaimResolveRepaired,
            ClaimAction::ResolveExchanged => Action::ClaimResolveExchanged,
            ClaimAction::IssueVoucher => Action::ClaimIssueVoucher,
            ClaimAction::Close => Action::ClaimClose,
        }
    }

    /// The position in [`Action::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
