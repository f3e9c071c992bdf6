//! Every refusal answers with its own stable code: bad identifiers, a
//! covered IMEI, each claim rule, each OTP failure, a replayed refresh
//! token, an illegal or stale transition, and a double redemption (also
//! when the two requests race).

use chrono::Duration;
use glassguard_protocol::api::*;
use glassguard_protocol::{ClaimId, DeviceId, PolicyId, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Db, TestApp, imei};
use crate::story::{ADJUSTER, ADMIN, CUSTOMER, OWNER, STAFF, TECH, registration, sale, transition};

fn code(b: &Value) -> &str {
    b["code"].as_str().unwrap_or("<none>")
}

/// A world with an approved partner and its staff signed in.
struct World {
    app: TestApp,
    admin: String,
    staff: String,
}

async fn world() -> World {
    let app = TestApp::spawn(Db::Sqlite).await.unwrap();
    app.seed_user(ADMIN, Role::Admin, "Asha Admin").await;
    app.seed_user(ADJUSTER, Role::Adjuster, "Arjun").await;
    app.seed_user(TECH, Role::Technician, "Tara").await;
    let admin = app.sign_in(ADMIN).await.access_token;
    let otp = app.otp(OWNER, OtpPurpose::PartnerRegistration).await;
    let (_, b) = app
        .post(
            "/v1/partners",
            None,
            &registration(OWNER, "AAPFB1234C", &otp),
        )
        .await;
    let pid = b["partner"]["id"].as_str().unwrap().to_string();
    let owner = b["session"]["access_token"].as_str().unwrap().to_string();
    app.post(
        &format!("/v1/partners/{pid}/approve"),
        Some(&admin),
        &json!({}),
    )
    .await;
    let (s, _) = app
        .post(
            &format!("/v1/partners/{pid}/staff"),
            Some(&owner),
            &json!({"phone": STAFF, "name": "Sunil", "role": "partner_staff"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let staff = app.sign_in(STAFF).await.access_token;
    World { app, admin, staff }
}

async fn sell(w: &World, customer: &str, device: &str) -> (StatusCode, Value) {
    let otp = w.app.otp(customer, OtpPurpose::SaleConsent).await;
    w.app
        .post(
            "/v1/sales",
            Some(&w.staff),
            &sale(PolicyId::new(), customer, device, &otp),
        )
        .await
}

#[tokio::test]
async fn malformed_identifiers_are_refused_with_their_codes() {
    let w = world().await;
    let good = imei("35209900176148");
    let mut body = sale(PolicyId::new(), CUSTOMER, &good, "123456");
    body["imei"] = json!("352099001761482");
    let (s, b) = w.app.post("/v1/sales", Some(&w.staff), &body).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{b}"
    );
    assert!(b["detail"].as_str().unwrap().contains("check digit"), "{b}");
    let (s, b) = w
        .app
        .post(
            "/v1/auth/otp",
            None,
            &json!({"phone": "12345 67890", "purpose": "sign_in"}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{b}"
    );
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("starts with 6, 7, 8 or 9"),
        "{b}"
    );
    let mut reg = registration("+919100000099", "AAPFB1234C", "123456");
    reg["gstin"] = json!("27AAPFB1234C1ZX");
    let (s, b) = w.app.post("/v1/partners", None, &reg).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{b}"
    );
    assert!(
        b["detail"].as_str().unwrap().contains("check character"),
        "{b}"
    );
    // Wrong types, unknown fields, not JSON at all, too large.
    let (s, b) = w
        .app
        .post(
            "/v1/auth/otp",
            None,
            &json!({"phone": 9876543210u64, "purpose": "sign_in"}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{b}"
    );
    let (s, b) = w
        .app
        .post(
            "/v1/auth/otp",
            None,
            &json!({"phone": "9876543210", "purpose": "sign_in", "admin": true}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "{b}"
    );
    let resp = w
        .app
        .http
        .post(format!("{}/v1/auth/otp", w.app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(code(&b), "invalid_request");
    assert!(
        b["request_id"].is_string(),
        "problem bodies carry the request id: {b}"
    );
    let huge = json!({"phone": "9876543210", "purpose": "x".repeat(200_000)});
    let (s, b) = w.app.post("/v1/auth/otp", None, &huge).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{b}"
    );
    // A forged or garbage token.
    let (s, b) = w.app.get("/v1/me", Some("forged-token")).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{b}"
    );
    let _ = w.admin;
}

#[tokio::test]
async fn duplicate_active_imei_is_refused_with_409() {
    let w = world().await;
    let device = imei("35209900176148");
    let (s, b) = sell(&w, CUSTOMER, &device).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = sell(&w, "+919100000077", &device).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "imei_already_covered"),
        "{b}"
    );
}

#[tokio::test]
async fn claim_rules_each_have_their_code() {
    let w = world().await;
    let (_, p1) = sell(&w, CUSTOMER, &imei("35209900176148")).await;
    let policy: Policy = serde_json::from_value(p1).unwrap();
    let customer = w.app.sign_in(CUSTOMER).await.access_token;
    let file = |incident: chrono::DateTime<chrono::Utc>| json!({"id": ClaimId::new(), "policy_id": policy.id, "incident_at": incident, "narrative": "cracked"});
    // Day 2: inside the 7-day waiting period.
    w.app.clock.advance(Duration::days(2));
    let customer = refresh_or_sign_in(&w.app, CUSTOMER, customer).await;
    let (s, b) = w
        .app
        .post(
            "/v1/claims",
            Some(&customer),
            &file(w.app.clock_now() - Duration::hours(1)),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "waiting_period"),
        "{b}"
    );
    // Day 12: an incident 5 days ago is outside the 2-day claim window.
    w.app.clock.advance(Duration::days(10));
    let customer = w.app.sign_in(CUSTOMER).await.access_token;
    let (s, b) = w
        .app
        .post(
            "/v1/claims",
            Some(&customer),
            &file(w.app.clock_now() - Duration::days(5) + Duration::hours(1)),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "outside_claim_window"),
        "{b}"
    );
    // A good claim, then a second one: one claim per term.
    let (s, b) = w
        .app
        .post(
            "/v1/claims",
            Some(&customer),
            &file(w.app.clock_now() - Duration::hours(2)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let first: ClaimId = serde_json::from_value(b["id"].clone()).unwrap();
    let (s, b) = w
        .app
        .post(
            "/v1/claims",
            Some(&customer),
            &file(w.app.clock_now() - Duration::hours(1)),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "claims_per_term_exceeded"),
        "{b}"
    );
    // Illegal and stale transitions say where the claim is.
    let adjuster = w.app.sign_in(ADJUSTER).await.access_token;
    let (s, b) = transition(&w.app, &adjuster, first, "approve", "submitted", json!({})).await;
    assert_eq!(
        (s, code(&b), b["current_state"].as_str()),
        (
            StatusCode::CONFLICT,
            "illegal_transition",
            Some("submitted")
        ),
        "{b}"
    );
    let (s, _) = transition(
        &w.app,
        &adjuster,
        first,
        "start_review",
        "submitted",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = transition(
        &w.app,
        &adjuster,
        first,
        "start_review",
        "submitted",
        json!({}),
    )
    .await;
    assert_eq!(
        (s, code(&b), b["current_state"].as_str()),
        (StatusCode::CONFLICT, "stale_state", Some("under_review")),
        "{b}"
    );
    let (s, b) = transition(
        &w.app,
        &adjuster,
        first,
        "reject",
        "under_review",
        json!({}),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        "a rejection needs a reason: {b}"
    );
    // Rejection gives the claim back: the customer may file again.
    let (s, _) = transition(
        &w.app,
        &adjuster,
        first,
        "reject",
        "under_review",
        json!({"reason": "damage predates the policy"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = w
        .app
        .post(
            "/v1/claims",
            Some(&customer),
            &file(w.app.clock_now() - Duration::hours(1)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Another customer cannot claim on this policy.
    let other = w.app.sign_in("+919100000088").await.access_token;
    let (s, _) = w
        .app
        .post(
            "/v1/claims",
            Some(&other),
            &file(w.app.clock_now() - Duration::hours(1)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn refresh_or_sign_in(app: &TestApp, phone: &str, _old: String) -> String {
    app.sign_in(phone).await.access_token
}

#[tokio::test]
async fn otp_failures_each_have_their_code() {
    // Per-address limits are raised: this test is one address making a hundred failures.
    let app = TestApp::spawn_with(Db::Sqlite, |l| {
        l.ip_otp_per_hour = Some(1000);
        l.ip_sign_in_per_hour = Some(1000);
    })
    .await
    .unwrap();
    let phone = "+919100000042";
    let sign_in =
        |code: String| json!({"phone": phone, "code": code, "device_id": DeviceId::new()});
    let good = app.otp(phone, OtpPurpose::SignIn).await;
    let wrong = if good == "000000" { "111111" } else { "000000" }.to_string();
    let (s, b) = app
        .post("/v1/auth/sign-in", None, &sign_in(wrong.clone()))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "otp_invalid"),
        "{b}"
    );
    for _ in 0..3 {
        app.post("/v1/auth/sign-in", None, &sign_in(wrong.clone()))
            .await;
    }
    let (s, b) = app
        .post("/v1/auth/sign-in", None, &sign_in(wrong.clone()))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "otp_too_many_attempts"),
        "{b}"
    );
    // Even the right code is refused now: this code had its five tries.
    let (s, b) = app.post("/v1/auth/sign-in", None, &sign_in(good)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "otp_too_many_attempts"),
        "{b}"
    );
    // A second code inside a minute is refused; after the minute, it expires in 5.
    let (s, b) = app
        .post(
            "/v1/auth/otp",
            None,
            &json!({"phone": phone, "purpose": "sign_in"}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::TOO_MANY_REQUESTS, "otp_rate_limited"),
        "{b}"
    );
    let fresh = app.otp(phone, OtpPurpose::SignIn).await;
    app.clock.advance(Duration::minutes(6));
    let (s, b) = app.post("/v1/auth/sign-in", None, &sign_in(fresh)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "otp_expired"),
        "{b}"
    );
    // A code for one purpose does not sign in.
    let consent = app.otp(phone, OtpPurpose::SaleConsent).await;
    let (s, b) = app.post("/v1/auth/sign-in", None, &sign_in(consent)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "otp_expired"),
        "{b}"
    );
    // Failures accumulate over the account's life: new codes do not reset them.
    let mut last = String::new();
    for _ in 0..25 {
        let c = app.otp(phone, OtpPurpose::SignIn).await;
        let bad = if c == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            let (_, b) = app
                .post("/v1/auth/sign-in", None, &sign_in(bad.to_string()))
                .await;
            last = code(&b).to_string();
        }
        if last == "otp_locked" {
            break;
        }
    }
    assert_eq!(last, "otp_locked");
    let (s, b) = app
        .post(
            "/v1/auth/otp",
            None,
            &json!({"phone": phone, "purpose": "sign_in"}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "otp_locked"),
        "{b}"
    );
}

#[tokio::test]
async fn replayed_refresh_token_ends_the_session() {
    let app = TestApp::spawn(Db::Sqlite).await.unwrap();
    let phone = "+919100000043";
    let otp = app.otp(phone, OtpPurpose::SignIn).await;
    let device = DeviceId::new();
    let (_, b) = app
        .post(
            "/v1/auth/sign-in",
            None,
            &json!({"phone": phone, "code": otp, "device_id": device}),
        )
        .await;
    let first: Session = serde_json::from_value(b).unwrap();
    let (s, b) = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": first.refresh_token, "device_id": device}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let second: Session = serde_json::from_value(b).unwrap();
    // The old refresh token again: the whole session is revoked, the new tokens too.
    let (s, b) = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": first.refresh_token, "device_id": device}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused"),
        "{b}"
    );
    let (s, b) = app.get("/v1/me", Some(&second.access_token)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{b}"
    );
    let (s, b) = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": second.refresh_token, "device_id": device}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "refresh_token_invalid"),
        "{b}"
    );
    // A token from another device is refused; expired access tokens say so.
    let s3 = app.sign_in(phone).await;
    let (s, b) = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": s3.refresh_token, "device_id": DeviceId::new()}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "refresh_token_invalid"),
        "{b}"
    );
    let s4 = app.sign_in(phone).await;
    app.clock.advance(Duration::minutes(16));
    let (s, b) = app.get("/v1/me", Some(&s4.access_token)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "token_expired"),
        "{b}"
    );
}

#[tokio::test]
async fn a_voucher_is_redeemed_once_even_under_concurrent_requests() {
    let w = world().await;
    let (_, p) = sell(&w, CUSTOMER, &imei("35209900176148")).await;
    let policy: Policy = serde_json::from_value(p).unwrap();
    w.app.clock.advance(Duration::days(10));
    let customer = w.app.sign_in(CUSTOMER).await.access_token;
    let adjuster = w.app.sign_in(ADJUSTER).await.access_token;
    let staff = w.app.sign_in(STAFF).await.access_token;
    let claim = ClaimId::new();
    let (s, b) = w
        .app
        .post("/v1/claims", Some(&customer), &json!({"id": claim, "policy_id": policy.id, "incident_at": w.app.clock_now() - Duration::hours(1), "narrative": "cracked"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let tech: Value = w
        .app
        .get("/v1/users?role=technician", Some(&adjuster))
        .await
        .1;
    let tech_id = tech["items"][0]["id"].clone();
    for (a, from, extra) in [
        ("start_review", "submitted", json!({})),
        ("approve", "under_review", json!({})),
        ("allocate", "approved", json!({"technician_id": tech_id})),
        ("issue_voucher", "allocated", json!({})),
    ] {
        let (s, b) = transition(&w.app, &adjuster, claim, a, from, extra).await;
        assert_eq!(s, StatusCode::OK, "{a}: {b}");
    }
    let (_, b) = w.app.get("/v1/vouchers", Some(&customer)).await;
    let code_ = b["items"][0]["code"].as_str().unwrap().to_string();
    w.app.clock.advance(Duration::seconds(61));
    let (s, _) = w
        .app
        .post(
            "/v1/vouchers/redeem/otp",
            Some(&staff),
            &json!({"code": code_}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let otp = w.app.last_otp(CUSTOMER).await;
    // Eight tellers press "redeem" at once with the same code and OTP.
    let body = json!({"code": code_, "customer_otp": otp});
    let tries = (0..8).map(|_| w.app.post("/v1/vouchers/redeem", Some(&staff), &body));
    let results = crate::conformance::join_all(tries).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    // Later attempts are told why.
    w.app.clock.advance(Duration::seconds(61));
    let (s, b) = w
        .app
        .post(
            "/v1/vouchers/redeem/otp",
            Some(&staff),
            &json!({"code": code_}),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "voucher_already_redeemed"),
        "{b}"
    );
}

#[tokio::test]
async fn one_address_cannot_send_unlimited_codes() {
    let app = TestApp::spawn_with(Db::Sqlite, |l| l.ip_otp_per_hour = Some(3))
        .await
        .unwrap();
    for i in 0..3 {
        let (s, b) = app
            .post(
                "/v1/auth/otp",
                None,
                &json!({"phone": format!("+91910000010{i}"), "purpose": "sign_in"}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let resp = app
        .http
        .post(format!("{}/v1/auth/otp", app.base))
        .json(&json!({"phone": "+919100000109", "purpose": "sign_in"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    let b: Value = resp.json().await.unwrap();
    assert_eq!(code(&b), "rate_limited");
}
