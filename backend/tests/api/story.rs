//! The whole story over HTTP, on SQLite and on PostgreSQL: partner registers
//! → admin approves → staff added → customer OTP → sale → policy → claim →
//! review → allocation → documents requested → voucher → redeemed with the
//! customer's OTP → closed.

use chrono::{Duration, Utc};
use glassguard_protocol::api::*;
use glassguard_protocol::{ClaimId, ClaimState, DeviceId, PolicyId, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Db, TestApp, gstin, imei, json};

pub const ADMIN: &str = "+919100000001";
pub const ADJUSTER: &str = "+919100000002";
pub const TECH: &str = "+919100000003";
pub const OWNER: &str = "+919100000004";
pub const STAFF: &str = "+919100000005";
pub const CUSTOMER: &str = "+919100000006";
pub const CUSTOMER_NAME: &str = "Kavya Ramanathan";
pub const OWNER_NAME: &str = "Harpreet Singh Bhatia";
pub const CUSTOMER_EMAIL: &str = "kavya.r@example.in";

/// What the story leaves behind, for tests that look at it afterwards.
pub struct StoryOutcome {
    pub app: TestApp,
    pub admin: String,
    pub policy_id: PolicyId,
    pub claim_id: ClaimId,
}

pub fn registration(phone: &str, pan: &str, code: &str) -> serde_json::Value {
    json!({
        "legal_name": "Bhatia Mobile Gallery",
        "gstin": gstin(pan),
        "pan": pan,
        "address": {"line1": "Shop 4, Sector 17 Market", "city": "Chandigarh", "state": "Chandigarh", "pin": "160017"},
        "contact_name": OWNER_NAME,
        "contact_phone": phone,
        "otp_code": code,
        "payout": {"account_name": "Bhatia Mobile Gallery", "account_number": "50100234567891", "ifsc": "HDFC0001234"},
        "device_id": DeviceId::new(),
    })
}

pub fn sale(id: PolicyId, customer: &str, imei: &str, otp: &str) -> serde_json::Value {
    json!({
        "id": id,
        "customer_phone": customer,
        "customer_name": CUSTOMER_NAME,
        "customer_email": CUSTOMER_EMAIL,
        "customer_otp": otp,
        "imei": imei,
        "brand": "Samsung",
        "model": "Galaxy A55",
        "device_price": 1_849_900,
        "device_purchase_date": Utc::now().date_naive().to_string(),
        "invoice_ref": "INV/2026/00421",
        "screen_photo_ref": "sha256-8a1f",
        "plan_id": "screen-1y",
    })
}

pub async fn transition(
    app: &TestApp,
    token: &str,
    claim: ClaimId,
    action: &str,
    from: &str,
    extra: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let mut body = json!({"action": action, "expected_state": from});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    app.post(
        &format!("/v1/claims/{claim}/transitions"),
        Some(token),
        &body,
    )
    .await
}

pub async fn run_story(db: Db) -> Option<StoryOutcome> {
    let app = TestApp::spawn(db).await?;
    Some(run_story_on(app).await)
}

/// The story on a server a test started.
pub async fn run_story_on(app: TestApp) -> StoryOutcome {
    app.seed_user(ADMIN, Role::Admin, "Asha Admin").await;
    let admin = app.sign_in(ADMIN).await.access_token;

    // The admin creates the insurer's people.
    let (s, b) = app
        .post(
            "/v1/users",
            Some(&admin),
            &json!({"phone": ADJUSTER, "name": "Arjun Adjuster", "role": "adjuster"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .post("/v1/users", Some(&admin), &json!({"phone": TECH, "name": "Tara Tech", "role": "technician", "service_centre": "Sector 22 Service Centre"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let tech_id = b["id"].as_str().unwrap().to_string();

    // 1. The shop registers itself.
    let code = app.otp(OWNER, OtpPurpose::PartnerRegistration).await;
    let (s, b) = app
        .post(
            "/v1/partners",
            None,
            &registration(OWNER, "AAPFB1234C", &code),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let registered: PartnerRegistered = json(b);
    assert_eq!(registered.partner.status, PartnerStatus::Pending);
    let owner = registered.session.access_token.clone();
    let pid = registered.partner.id.to_string();

    // Pending partners cannot add staff.
    let (s, b) = app
        .post(
            &format!("/v1/partners/{pid}/staff"),
            Some(&owner),
            &json!({"phone": STAFF, "name": "Sunil", "role": "partner_staff"}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("partner_not_approved")
        )
    );

    // 2. The admin sees it waiting and approves it.
    let (s, b) = app.get("/v1/partners?status=pending", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == pid.as_str())
    );
    let (s, b) = app
        .post(
            &format!("/v1/partners/{pid}/approve"),
            Some(&admin),
            &json!({"reason": "KYC checked"}),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{b}"
    );
    let (s, b) = app
        .post(
            &format!("/v1/partners/{pid}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("partner_state_conflict"))
    );

    // 3. The owner adds counter staff.
    let (s, b) = app
        .post(
            &format!("/v1/partners/{pid}/staff"),
            Some(&owner),
            &json!({"phone": STAFF, "name": "Sunil Kumar", "role": "partner_staff"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let staff = app.sign_in(STAFF).await.access_token;

    // 4. At the counter: the customer's consent by OTP, and the sale.
    let device = imei("35209900176148");
    let otp = app.otp(CUSTOMER, OtpPurpose::SaleConsent).await;
    let policy_id = PolicyId::new();
    let (s, b) = app
        .post(
            "/v1/sales",
            Some(&staff),
            &sale(policy_id, CUSTOMER, &device, &otp),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let policy: Policy = json(b);
    assert_eq!(policy.premium.paise(), 69_900);
    assert_eq!(policy.status, PolicyStatus::Active);
    assert!(policy.certificate_number.starts_with("GG-"));
    assert!(
        app.last_sms(CUSTOMER)
            .await
            .contains(&policy.certificate_number)
    );
    // A retry of the same sale is answered with the same policy, not a second one.
    let (s, b) = app
        .post(
            "/v1/sales",
            Some(&staff),
            &sale(policy_id, CUSTOMER, &device, "000000"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["certificate_number"], policy.certificate_number.as_str());
    // Commission: 15 % of ₹699.
    let (s, b) = app
        .get(&format!("/v1/partners/{pid}/commission"), Some(&owner))
        .await;
    assert_eq!(
        (s, b["total"].as_i64()),
        (StatusCode::OK, Some(10_485)),
        "{b}"
    );

    // 5. The customer signs in and sees the policy.
    let customer_session = app.sign_in(CUSTOMER).await;
    assert_eq!(customer_session.user.role, Role::Customer);
    assert_eq!(customer_session.user.name.as_deref(), Some(CUSTOMER_NAME));
    let (s, b) = app
        .get("/v1/policies", Some(&customer_session.access_token))
        .await;
    assert_eq!(
        (s, b["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );

    // 6. Ten days later the screen breaks; the customer files a claim.
    app.clock.advance(Duration::days(10));
    let customer = app.sign_in(CUSTOMER).await.access_token;
    let admin = app.sign_in(ADMIN).await.access_token;
    let adjuster = app.sign_in(ADJUSTER).await.access_token;
    let technician = app.sign_in(TECH).await.access_token;
    let staff = app.sign_in(STAFF).await.access_token;
    let claim_id = ClaimId::new();
    let incident = app.clock_now() - Duration::hours(3);
    let (s, b) = app
        .post(
            "/v1/claims",
            Some(&customer),
            &json!({"id": claim_id, "policy_id": policy_id, "incident_at": incident, "narrative": "Dropped on the bus steps, screen cracked across", "photo_refs": ["sha256-d1", "sha256-d2"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["state"], "submitted");

    // 7. Review, approval, allocation, documents.
    let steps: [(&str, &str, serde_json::Value, &str); 4] = [
        ("start_review", "submitted", json!({}), "under_review"),
        (
            "approve",
            "under_review",
            json!({"reason": "photos match the damage"}),
            "approved",
        ),
        (
            "allocate",
            "approved",
            json!({"technician_id": tech_id}),
            "allocated",
        ),
        (
            "request_documents",
            "allocated",
            json!({"documents": ["invoice", "id_proof"]}),
            "documents_requested",
        ),
    ];
    for (action, from, extra, to) in steps {
        let (s, b) = transition(&app, &adjuster, claim_id, action, from, extra).await;
        assert_eq!(
            (s, b["state"].as_str()),
            (StatusCode::OK, Some(to)),
            "{action}: {b}"
        );
        assert!(
            app.last_sms(CUSTOMER)
                .await
                .starts_with("Glassguard: claim")
        );
    }
    // The technician sees the job with the device.
    let (s, b) = app.get("/v1/jobs", Some(&technician)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"][0]["imei"], device.as_str());
    // The customer uploads the documents asked for.
    for kind in ["invoice", "id_proof"] {
        let (s, b) = app
            .post(
                &format!("/v1/claims/{claim_id}/documents"),
                Some(&customer),
                &json!({"kind": kind, "object_ref": format!("doc-{kind}")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    // 8. The customer opts for the voucher.
    let (s, b) = transition(
        &app,
        &adjuster,
        claim_id,
        "issue_voucher",
        "documents_requested",
        json!({}),
    )
    .await;
    assert_eq!(
        (s, b["state"].as_str(), b["resolution"].as_str()),
        (StatusCode::OK, Some("resolved"), Some("voucher_issued")),
        "{b}"
    );
    let (s, b) = app.get("/v1/vouchers", Some(&customer)).await;
    assert_eq!(s, StatusCode::OK);
    let voucher: Voucher = json(b["items"][0].clone());
    assert_eq!(voucher.value.paise(), 50_000);
    assert!(app.last_sms(CUSTOMER).await.contains(&voucher.code));

    // 9. Redeemed at the shop with the customer's OTP (a minute after the last code).
    app.clock.advance(Duration::seconds(61));
    let (s, b) = app
        .post(
            "/v1/vouchers/redeem/otp",
            Some(&staff),
            &json!({"code": voucher.code}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let code = app.last_otp(CUSTOMER).await;
    let (s, b) = app
        .post(
            "/v1/vouchers/redeem",
            Some(&staff),
            &json!({"code": voucher.code, "customer_otp": code}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["redeemed_at"].is_string());

    // 10. Closed; the timeline shows every stage.
    let (s, b) = transition(&app, &adjuster, claim_id, "close", "resolved", json!({})).await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("closed")),
        "{b}"
    );
    let (s, b) = app
        .get(&format!("/v1/claims/{claim_id}/timeline"), Some(&customer))
        .await;
    assert_eq!(s, StatusCode::OK);
    let states: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "submitted",
            "under_review",
            "approved",
            "allocated",
            "documents_requested",
            "resolved",
            "closed"
        ]
    );
    let (s, b) = app
        .get(
            &format!("/v1/admin/audit?resource_id={claim_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["items"].as_array().unwrap().len() >= 8, "{b}");
    assert!(ClaimState::from_name("closed").is_some());

    StoryOutcome {
        app,
        admin,
        policy_id,
        claim_id,
    }
}

impl TestApp {
    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use glassguard_server::clock::Clock;
        self.clock.now()
    }
}
