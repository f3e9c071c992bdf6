//! Demo data for `glassguard serve --demo`: an admin, an adjuster, a
//! technician and an approved demo partner with a staff member, so a person
//! can walk every flow locally. Idempotent: a second start adds nothing.

use glassguard_protocol::api::{Address, PartnerRegistration, PartnerStatus, PayoutAccount};
use glassguard_protocol::{DeviceId, Gstin, Pan, PhoneNumber, Role, UserId};

use crate::http::AppState;
use crate::store::{AuditRecord, NewUser};

/// Demo phones, printed at start-up.
pub const ADMIN_PHONE: &str = "+919000000001";
/// The demo adjuster.
pub const ADJUSTER_PHONE: &str = "+919000000002";
/// The demo technician.
pub const TECHNICIAN_PHONE: &str = "+919000000003";
/// The demo partner's admin.
pub const PARTNER_ADMIN_PHONE: &str = "+919000000004";
/// The demo partner's counter staff.
pub const PARTNER_STAFF_PHONE: &str = "+919000000005";
/// The demo partner's GSTIN (Maharashtra).
pub const PARTNER_GSTIN: &str = "27AAPFU0939F1ZV";

fn phone(s: &str) -> anyhow::Result<PhoneNumber> {
    Ok(PhoneNumber::parse(s)?)
}

fn seed_audit(action: &str) -> AuditRecord {
    AuditRecord {
        action: action.to_string(),
        resource_type: "demo".into(),
        ..Default::default()
    }
}

/// Creates the demo users and partner unless they exist.
pub async fn seed(state: &AppState) -> anyhow::Result<()> {
    let now = state.now();
    if state
        .store
        .user_by_phone(&state.keys, &phone(ADMIN_PHONE)?)
        .await?
        .is_some()
    {
        return Ok(());
    }
    for (p, role, name, centre) in [
        (ADMIN_PHONE, Role::Admin, "Demo Admin", None),
        (ADJUSTER_PHONE, Role::Adjuster, "Demo Adjuster", None),
        (
            TECHNICIAN_PHONE,
            Role::Technician,
            "Demo Technician",
            Some("Glassguard Service Centre, Pune"),
        ),
    ] {
        let ph = phone(p)?;
        let u = NewUser {
            id: UserId::new(),
            role,
            phone: &ph,
            name: Some(name),
            email: None,
            partner_id: None,
            service_centre: centre,
        };
        state
            .store
            .create_user(&state.keys, &u, now, &seed_audit("demo.user"))
            .await?;
    }
    let reg = PartnerRegistration {
        legal_name: "Demo Mobiles Pvt Ltd".into(),
        gstin: Gstin::parse(PARTNER_GSTIN)?,
        pan: Pan::parse(&PARTNER_GSTIN[2..12])?,
        address: Address {
            line1: "12 FC Road".into(),
            line2: None,
            city: "Pune".into(),
            state: "Maharashtra".into(),
            pin: "411004".into(),
        },
        contact_name: "Demo Shop Owner".into(),
        contact_phone: phone(PARTNER_ADMIN_PHONE)?,
        otp_code: String::new(),
        payout: PayoutAccount {
            account_name: "Demo Mobiles".into(),
            account_number: "000123456789".into(),
            ifsc: "HDFC0000001".into(),
        },
        device_id: DeviceId::new(),
    };
    if let Ok((partner, _)) = state
        .store
        .register_partner(&state.keys, &reg, now, &seed_audit("demo.partner"))
        .await?
    {
        state
            .store
            .set_partner_status(
                &partner.id,
                &[PartnerStatus::Pending],
                PartnerStatus::Approved,
                now,
                &seed_audit("demo.partner.approve"),
            )
            .await?;
        let ph = phone(PARTNER_STAFF_PHONE)?;
        let staff = NewUser {
            id: UserId::new(),
            role: Role::PartnerStaff,
            phone: &ph,
            name: Some("Demo Counter Staff"),
            email: None,
            partner_id: Some(partner.id),
            service_centre: None,
        };
        state
            .store
            .create_user(&state.keys, &staff, now, &seed_audit("demo.user"))
            .await?;
    }
    Ok(())
}
