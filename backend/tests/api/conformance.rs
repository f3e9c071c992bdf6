//! The storage conformance suite: the same stories, unchanged, against
//! SQLite and PostgreSQL. The concurrency stories are where the two
//! databases differ most (one writer vs row locks), so they are here.

use chrono::Duration;
use glassguard_protocol::api::{OtpPurpose, Policy};
use glassguard_protocol::{ClaimId, PolicyId, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Db, TestApp, imei};
use crate::story::{
    self, ADJUSTER, ADMIN, CUSTOMER, OWNER, STAFF, TECH, registration, sale, transition,
};

/// A server with an approved shop and its counter staff signed in (shared by the sync tests).
pub async fn shop(db: Db) -> Option<(TestApp, String)> {
    shop_with(db, |_| {}).await
}

/// [`shop`] on a server whose settings `tweak` changes.
pub async fn shop_with(
    db: Db,
    tweak: impl FnOnce(&mut glassguard_server::config::Layer),
) -> Option<(TestApp, String)> {
    let app = TestApp::spawn_with(db, tweak).await?;
    app.seed_user(ADMIN, Role::Admin, "Asha").await;
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
    app.post(
        &format!("/v1/partners/{pid}/staff"),
        Some(&owner),
        &json!({"phone": STAFF, "name": "Sunil", "role": "partner_staff"}),
    )
    .await;
    let staff = app.sign_in(STAFF).await.access_token;
    Some((app, staff))
}

/// Two counters sell the same IMEI at the same moment: exactly one policy.
async fn concurrent_sales_of_one_imei(db: Db) {
    let Some((app, staff)) = shop(db).await else {
        return;
    };
    let device = imei("86123404512345");
    let mut bodies = Vec::new();
    for (i, phone) in [
        "+919100000201",
        "+919100000202",
        "+919100000203",
        "+919100000204",
    ]
    .iter()
    .enumerate()
    {
        let otp = app.otp(phone, OtpPurpose::SaleConsent).await;
        let _ = i;
        bodies.push(sale(PolicyId::new(), phone, &device, &otp));
    }
    let calls = bodies
        .iter()
        .map(|b| app.post("/v1/sales", Some(&staff), b));
    let results = join_all(calls).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "imei_already_covered")
        .count();
    assert_eq!((created, refused), (1, 3), "{results:?}");
}

/// Two claims filed at once on a one-claim policy: exactly one is filed.
async fn concurrent_claims_on_one_policy(db: Db) {
    let Some((app, staff)) = shop(db).await else {
        return;
    };
    let otp = app.otp(CUSTOMER, OtpPurpose::SaleConsent).await;
    let (s, b) = app
        .post(
            "/v1/sales",
            Some(&staff),
            &sale(PolicyId::new(), CUSTOMER, &imei("86123404512345"), &otp),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let policy: Policy = serde_json::from_value(b).unwrap();
    app.clock.advance(Duration::days(9));
    let customer = app.sign_in(CUSTOMER).await.access_token;
    let at = app.clock_now() - Duration::hours(1);
    let bodies: Vec<_> =
        (0..4).map(|_| json!({"id": ClaimId::new(), "policy_id": policy.id, "incident_at": at, "narrative": "cracked"})).collect();
    let results = join_all(
        bodies
            .iter()
            .map(|b| app.post("/v1/claims", Some(&customer), b)),
    )
    .await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == StatusCode::CREATED || b["code"] == "claims_per_term_exceeded"),
        "{results:?}"
    );
}

/// Two adjusters act on one claim at once: one wins, the other is told the current state.
async fn concurrent_transitions(db: Db) {
    let Some((app, staff)) = shop(db).await else {
        return;
    };
    let otp = app.otp(CUSTOMER, OtpPurpose::SaleConsent).await;
    let (_, b) = app
        .post(
            "/v1/sales",
            Some(&staff),
            &sale(PolicyId::new(), CUSTOMER, &imei("86123404512345"), &otp),
        )
        .await;
    let policy: Policy = serde_json::from_value(b).unwrap();
    app.clock.advance(Duration::days(9));
    let customer = app.sign_in(CUSTOMER).await.access_token;
    let adjuster = app.sign_in(ADJUSTER).await.access_token;
    let claim = ClaimId::new();
    let (s, _) = app
        .post("/v1/claims", Some(&customer), &json!({"id": claim, "policy_id": policy.id, "incident_at": app.clock_now() - Duration::hours(1), "narrative": "cracked"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let results = join_all((0..4).map(|_| {
        transition(
            &app,
            &adjuster,
            claim,
            "start_review",
            "submitted",
            json!({}),
        )
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results.iter().all(|(s, b)| *s == StatusCode::OK
        || (b["code"] == "stale_state" && b["current_state"] == "under_review")));
    let (_, t) = app
        .get(&format!("/v1/claims/{claim}/timeline"), Some(&customer))
        .await;
    assert_eq!(
        t["items"].as_array().unwrap().len(),
        2,
        "one filing and one review, not four: {t}"
    );
}

pub async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

macro_rules! on_both {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $story() { super::$story(super::Db::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $story() { super::$story(super::Db::Postgres).await })*
        }
    };
}

async fn whole_story(db: Db) {
    story::run_story(db).await;
}

on_both!(
    whole_story,
    concurrent_sales_of_one_imei,
    concurrent_claims_on_one_policy,
    concurrent_transitions
);
