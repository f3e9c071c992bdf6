//! The sync endpoints over HTTP: idempotent pushes (replay, changed
//! payload, gap, refused row that does not block), and pulls that return
//! only what the caller may see, with a resync for a cursor the server
//! cannot serve.

use chrono::Utc;
use glassguard_protocol::PolicyId;
use glassguard_protocol::sync::{PullResponse, PushResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::conformance::shop;
use crate::harness::{Db, TestApp, imei, json as parse};

fn offline_sale(customer: &str, device: &str) -> Value {
    json!({"command": "record_sale", "payload": {
        "id": PolicyId::new(), "customer_phone": customer, "customer_name": "Meena Iyer",
        "imei": device, "brand": "Xiaomi", "model": "Redmi Note 13", "device_price": 1_499_900,
        "device_purchase_date": Utc::now().date_naive().to_string(), "invoice_ref": "INV-9",
        "screen_photo_ref": "photo-9", "plan_id": "screen-1y"}})
}

fn entry(seq: u64, id: Uuid, command: &Value) -> Value {
    let mut e = command.clone();
    e["client_seq"] = json!(seq);
    e["mutation_id"] = json!(id);
    e
}

async fn push(app: &TestApp, token: &str, entries: Vec<Value>) -> PushResponse {
    let (s, b) = app
        .post("/v1/sync/push", Some(token), &json!({"entries": entries}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    parse(b)
}

fn statuses(r: &PushResponse) -> Vec<(u64, String, Option<String>)> {
    r.results
        .iter()
        .map(|e| {
            (
                e.client_seq,
                serde_json::to_value(e.status)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
                e.code.map(|c| c.as_str().to_string()),
            )
        })
        .collect()
}

async fn the_push_contract(db: Db) {
    let Some((app, staff)) = shop(db).await else {
        return;
    };
    let sales: Vec<Value> = (0..3)
        .map(|i| {
            offline_sale(
                &format!("+91910000030{i}"),
                &imei(&format!("8612340451234{i}")),
            )
        })
        .collect();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let batch: Vec<Value> = (0..3)
        .map(|i| entry(i as u64 + 1, ids[i], &sales[i]))
        .collect();
    let r = push(&app, &staff, batch.clone()).await;
    assert_eq!(
        statuses(&r),
        [
            (1, "applied".into(), None),
            (2, "applied".into(), None),
            (3, "applied".into(), None)
        ]
    );
    assert_eq!(r.highest_applied_seq, 3);
    // The acknowledgement was lost: the same batch again changes nothing.
    let r = push(&app, &staff, batch.clone()).await;
    assert_eq!(
        statuses(&r)
            .iter()
            .map(|s| s.1.as_str())
            .collect::<Vec<_>>(),
        ["duplicate"; 3]
    );
    let (_, b) = app.get("/v1/policies", Some(&staff)).await;
    assert_eq!(
        b["items"].as_array().unwrap().len(),
        3,
        "every policy exactly once"
    );
    // The same seq and id with another payload is refused, not applied.
    let changed = entry(
        2,
        ids[1],
        &offline_sale("+919100000399", &imei("86123404512399")),
    );
    let r = push(&app, &staff, vec![changed]).await;
    assert_eq!(
        statuses(&r),
        [(2, "rejected".into(), Some("mutation_conflict".into()))]
    );
    // A gap: the server names the seq it expects and applies nothing past it.
    let r = push(&app, &staff, vec![entry(5, Uuid::now_v7(), &sales[0])]).await;
    assert_eq!((r.results.len(), r.expected_seq), (0, Some(4)));
    // A refused row (an IMEI already covered) consumes its seq; the queue moves on.
    let dup = offline_sale("+919100000398", &imei("86123404512340"));
    let fresh = offline_sale("+919100000397", &imei("86123404512377"));
    let r = push(
        &app,
        &staff,
        vec![
            entry(4, Uuid::now_v7(), &dup),
            entry(5, Uuid::now_v7(), &fresh),
        ],
    )
    .await;
    assert_eq!(
        statuses(&r),
        [
            (4, "rejected".into(), Some("imei_already_covered".into())),
            (5, "applied".into(), None)
        ]
    );
    // Duplicate and out-of-order seqs in one batch.
    let six = entry(
        6,
        Uuid::now_v7(),
        &offline_sale("+919100000396", &imei("86123404512366")),
    );
    let seven = entry(
        7,
        Uuid::now_v7(),
        &offline_sale("+919100000395", &imei("86123404512355")),
    );
    let r = push(&app, &staff, vec![seven.clone(), six.clone(), six.clone()]).await;
    assert_eq!(
        (r.results.len(), r.expected_seq),
        (0, Some(6)),
        "seq 7 before 6 stops the batch"
    );
    let r = push(&app, &staff, vec![six.clone(), six.clone(), seven.clone()]).await;
    assert_eq!(
        statuses(&r)
            .iter()
            .map(|s| s.1.as_str())
            .collect::<Vec<_>>(),
        ["applied", "duplicate", "applied"]
    );
    // Customers cannot sell through sync either: the same authorizer decides.
    let customer = app.sign_in("+919100000300").await.access_token;
    let r = push(
        &app,
        &customer,
        vec![entry(
            1,
            Uuid::now_v7(),
            &offline_sale("+919100000394", &imei("86123404512344")),
        )],
    )
    .await;
    assert_eq!(
        statuses(&r),
        [(1, "rejected".into(), Some("forbidden".into()))]
    );
    // Anonymous callers cannot push.
    let (s, _) = app
        .post("/v1/sync/push", None, &json!({"entries": []}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn the_pull_contract(db: Db) {
    let Some((app, staff)) = shop(db).await else {
        return;
    };
    let batch: Vec<Value> = (0..5)
        .map(|i| {
            entry(
                i + 1,
                Uuid::now_v7(),
                &offline_sale(
                    &format!("+91910000031{i}"),
                    &imei(&format!("8612340451235{i}")),
                ),
            )
        })
        .collect();
    push(&app, &staff, batch).await;
    // The shop pulls its five sales, in pages.
    let (s, b) = app.get("/v1/sync/pull?limit=3", Some(&staff)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first: PullResponse = parse(b);
    assert_eq!(
        (
            first.changes.len(),
            first.has_more,
            first.resync,
            first.highest_applied_seq
        ),
        (3, true, false, 5)
    );
    let (_, b) = app
        .get(
            &format!("/v1/sync/pull?limit=3&cursor={}", first.cursor),
            Some(&staff),
        )
        .await;
    let second: PullResponse = parse(b);
    assert_eq!((second.changes.len(), second.has_more), (2, false));
    // A customer sees only their own policy; another shop's customer nothing of this shop.
    let customer = app.sign_in("+919100000312").await.access_token;
    let (_, b) = app.get("/v1/sync/pull", Some(&customer)).await;
    let mine: PullResponse = parse(b);
    assert_eq!(mine.changes.len(), 1, "{mine:?}");
    let stranger = app.sign_in("+919100000319").await.access_token;
    let (_, b) = app.get("/v1/sync/pull", Some(&stranger)).await;
    assert_eq!(parse::<PullResponse>(b).changes.len(), 0);
    // A cursor from another database (a reset or a restore) gets a resync, not a loop.
    let (_, b) = app
        .get("/v1/sync/pull?cursor=c1.0000feedbeef.42", Some(&staff))
        .await;
    let again: PullResponse = parse(b);
    assert!(again.resync && again.changes.is_empty());
    let (_, b) = app
        .get(
            &format!("/v1/sync/pull?cursor={}", again.cursor),
            Some(&staff),
        )
        .await;
    assert_eq!(parse::<PullResponse>(b).changes.len(), 5);
    let (_, b) = app.get("/v1/sync/pull?cursor=garbage", Some(&staff)).await;
    assert!(parse::<PullResponse>(b).resync);
}

#[tokio::test]
async fn push_contract_on_sqlite() {
    the_push_contract(Db::Sqlite).await
}

#[tokio::test]
async fn push_contract_on_postgres() {
    the_push_contract(Db::Postgres).await
}

#[tokio::test]
async fn pull_contract_on_sqlite() {
    the_pull_contract(Db::Sqlite).await
}

#[tokio::test]
async fn pull_contract_on_postgres() {
    the_pull_contract(Db::Postgres).await
}
