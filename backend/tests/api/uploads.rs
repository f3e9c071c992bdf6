//! Uploads over tus 1.0: every rule of the protocol as the server applies
//! it (201/204/409/412/413/415/460/410/404), the whole blob checked against
//! its name, a body cut short keeping what arrived, ownership, and the
//! `attach_blob` command that puts an uploaded photo on its claim.

use base64::Engine;
use chrono::Duration;
use glassguard_protocol::api::OtpPurpose;
use glassguard_protocol::uploads::BlobHash;
use glassguard_protocol::{ClaimId, PolicyId};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::conformance::shop_with;
use crate::harness::{Db, TestApp, imei};
use crate::story::sale;

const CUSTOMER: &str = "+919100000406";
const OTHER: &str = "+919100000407";
const OCTETS: &str = "application/offset+octet-stream";

struct World {
    app: TestApp,
    customer: String,
    other: String,
    staff: String,
    claim: ClaimId,
    policy: PolicyId,
}

/// A shop, a customer with a claim, another customer with a policy.
async fn world(db: Db) -> Option<World> {
    world_with(db, |_| {}).await
}

async fn world_with(
    db: Db,
    tweak: impl FnOnce(&mut glassguard_server::config::Layer),
) -> Option<World> {
    let (app, staff) = shop_with(db, tweak).await?;
    let mut policies = vec![];
    for (phone, device) in [(CUSTOMER, "86123404599990"), (OTHER, "86123404599991")] {
        let otp = app.otp(phone, OtpPurpose::SaleConsent).await;
        let id = PolicyId::new();
        let (s, b) = app
            .post(
                "/v1/sales",
                Some(&staff),
                &sale(id, phone, &imei(device), &otp),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        policies.push(id);
    }
    app.clock.advance(Duration::days(10));
    let customer = app.sign_in(CUSTOMER).await.access_token;
    let other = app.sign_in(OTHER).await.access_token;
    let staff = app.sign_in(crate::story::STAFF).await.access_token;
    let claim = ClaimId::new();
    let (s, b) = app
        .post(
            "/v1/claims",
            Some(&customer),
            &json!({"id": claim, "policy_id": policies[0], "incident_at": app.clock_now() - Duration::hours(2),
                    "narrative": "Dropped it, the screen cracked"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    Some(World {
        app,
        customer,
        other,
        staff,
        claim,
        policy: policies[0],
    })
}

fn sha(bytes: &[u8]) -> BlobHash {
    let d = ring_digest(bytes);
    BlobHash::from_bytes(&d)
}

fn ring_digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn checksum(bytes: &[u8]) -> String {
    format!(
        "sha256 {}",
        base64::engine::general_purpose::STANDARD.encode(ring_digest(bytes))
    )
}

fn blob(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn tus(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Value) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{}", app.base, path)
    };
    let mut req = app.http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, v)
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn tus_v() -> (&'static str, String) {
    ("tus-resumable", "1.0.0".into())
}

async fn create(
    w: &World,
    token: &str,
    sha256: &BlobHash,
    len: usize,
    kind: &str,
    target: &str,
) -> (StatusCode, HeaderMap, Value) {
    let meta = format!(
        "sha256 {},kind {},target {},filename {}",
        b64(sha256.as_str()),
        b64(kind),
        b64(target),
        b64("damage.jpg.sealed")
    );
    tus(
        &w.app,
        Method::POST,
        "/v1/uploads",
        Some(token),
        &[
            tus_v(),
            ("upload-length", len.to_string()),
            ("upload-metadata", meta),
        ],
        None,
    )
    .await
}

async fn patch(
    w: &World,
    token: &str,
    location: &str,
    offset: usize,
    bytes: &[u8],
    with_checksum: Option<String>,
) -> (StatusCode, HeaderMap, Value) {
    let mut headers = vec![
        tus_v(),
        ("content-type", OCTETS.to_string()),
        ("upload-offset", offset.to_string()),
    ];
    if let Some(c) = with_checksum {
        headers.push(("upload-checksum", c));
    }
    tus(
        &w.app,
        Method::PATCH,
        location,
        Some(token),
        &headers,
        Some(bytes.to_vec()),
    )
    .await
}

async fn head(w: &World, token: &str, location: &str) -> (StatusCode, HeaderMap, Value) {
    tus(
        &w.app,
        Method::HEAD,
        location,
        Some(token),
        &[tus_v()],
        None,
    )
    .await
}

/// Creates an upload of `data` for the world's claim; its location.
async fn new_upload(w: &World, data: &[u8]) -> String {
    let (s, headers, b) = create(
        w,
        &w.customer,
        &sha(data),
        data.len(),
        "claim_photo",
        &w.claim.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    h(&headers, "location").to_string()
}

async fn every_tus_rule(db: Db) {
    let Some(w) = world(db).await else {
        return;
    };
    // OPTIONS: what the server supports (public, no Tus-Resumable needed).
    let (s, headers, _) = tus(&w.app, Method::OPTIONS, "/v1/uploads", None, &[], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h(&headers, "tus-resumable"), "1.0.0");
    assert_eq!(h(&headers, "tus-version"), "1.0.0");
    assert_eq!(
        h(&headers, "tus-extension"),
        "creation,checksum,expiration,termination"
    );
    assert_eq!(h(&headers, "tus-checksum-algorithm"), "sha256");
    assert!(h(&headers, "tus-max-size").parse::<u64>().unwrap() >= 16 * 1024 * 1024);

    let data = blob(100_000, 7);
    // 412 without Tus-Resumable, and the answer still names the version.
    let (s, headers, b) = tus(
        &w.app,
        Method::POST,
        "/v1/uploads",
        Some(&w.customer),
        &[("upload-length", "10".into())],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{b}");
    assert_eq!(b["code"], "tus_version_unsupported");
    assert_eq!(h(&headers, "tus-resumable"), "1.0.0");
    assert_eq!(h(&headers, "tus-version"), "1.0.0");

    // 201 + Location; HEAD says 0 of the length, when it expires, no caching.
    let loc = new_upload(&w, &data).await;
    assert!(loc.starts_with("/v1/uploads/"), "{loc}");
    let (s, headers, _) = head(&w, &w.customer, &loc).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h(&headers, "upload-offset"), "0");
    assert_eq!(h(&headers, "upload-length"), "100000");
    assert_eq!(h(&headers, "cache-control"), "no-store");
    assert!(h(&headers, "upload-expires").ends_with(" GMT"));
    assert_eq!(h(&headers, "tus-resumable"), "1.0.0");

    // 415: the wrong content type.
    let (s, _, b) = tus(
        &w.app,
        Method::PATCH,
        &loc,
        Some(&w.customer),
        &[
            tus_v(),
            ("content-type", "application/json".into()),
            ("upload-offset", "0".into()),
        ],
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
    assert_eq!(b["code"], "unsupported_media_type");

    // 409: the wrong offset.
    let (s, _, b) = patch(&w, &w.customer, &loc, 10, &data[10..20], None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "upload_offset_mismatch");

    // 460: a damaged chunk is discarded.
    let (s, headers, b) = patch(
        &w,
        &w.customer,
        &loc,
        0,
        &data[..30_000],
        Some(checksum(&data[1..30_001])),
    )
    .await;
    assert_eq!(s.as_u16(), 460, "{b}");
    assert_eq!(b["code"], "checksum_mismatch");
    assert_eq!(h(&headers, "tus-resumable"), "1.0.0");
    let (_, headers, _) = head(&w, &w.customer, &loc).await;
    assert_eq!(h(&headers, "upload-offset"), "0", "the chunk was discarded");

    // 204 with the new offset, checksum or not.
    let (s, headers, b) = patch(
        &w,
        &w.customer,
        &loc,
        0,
        &data[..30_000],
        Some(checksum(&data[..30_000])),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(h(&headers, "upload-offset"), "30000");
    let (s, headers, _) = patch(&w, &w.customer, &loc, 30_000, &data[30_000..60_000], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h(&headers, "upload-offset"), "60000");

    // 413: past the announced length.
    let mut too_long = data[60_000..].to_vec();
    too_long.push(0);
    let (s, _, b) = patch(&w, &w.customer, &loc, 60_000, &too_long, None).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

    // Someone else: not found; nobody: 401.
    let (s, _, _) = head(&w, &w.other, &loc).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = patch(&w, &w.other, &loc, 60_000, &data[60_000..], None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = tus(&w.app, Method::HEAD, &loc, None, &[tus_v()], None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The rest: complete, verified, and in the object store byte for byte.
    let (s, headers, b) = patch(&w, &w.customer, &loc, 60_000, &data[60_000..], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(h(&headers, "upload-offset"), "100000");
    assert_eq!(
        h(&headers, "upload-expires"),
        "",
        "a complete upload does not expire"
    );
    let stored = w.app.server.state.blobs.read(&sha(&data)).await.unwrap();
    assert!(stored == data, "the stored blob is the uploaded one");
    let (s, headers, _) = head(&w, &w.customer, &loc).await;
    assert_eq!(
        (s, h(&headers, "upload-offset")),
        (StatusCode::OK, "100000")
    );

    // The same blob again by the same user: complete at once.
    let (s, headers, b) = create(
        &w,
        &w.customer,
        &sha(&data),
        data.len(),
        "claim_photo",
        &w.claim.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(h(&headers, "upload-offset"), "100000");

    // 404: no such upload.
    let (s, _, b) = head(&w, &w.customer, &format!("/v1/uploads/{}", Uuid::now_v7())).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _, _) = head(&w, &w.customer, "/v1/uploads/not-an-id").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // DELETE: termination, then it is gone.
    let other_data = blob(5_000, 9);
    let loc2 = new_upload(&w, &other_data).await;
    let (s, _, b) = tus(
        &w.app,
        Method::DELETE,
        &loc2,
        Some(&w.customer),
        &[tus_v()],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _, _) = head(&w, &w.customer, &loc2).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // 410: not finished in time.
    let loc3 = new_upload(&w, &other_data).await;
    let (s, _, _) = patch(&w, &w.customer, &loc3, 0, &other_data[..1000], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    w.app.clock.advance(Duration::hours(25));
    let customer = w.app.sign_in(CUSTOMER).await.access_token;
    let (s, _, _) = head(&w, &customer, &loc3).await;
    assert_eq!(s, StatusCode::GONE);
    let (s, _, b) = patch(&w, &customer, &loc3, 1000, &other_data[1000..], None).await;
    assert_eq!(s, StatusCode::GONE, "{b}");
    assert_eq!(b["code"], "upload_expired");
}

#[tokio::test]
async fn every_tus_rule_on_sqlite() {
    every_tus_rule(Db::Sqlite).await;
}

#[tokio::test]
async fn every_tus_rule_on_postgres() {
    every_tus_rule(Db::Postgres).await;
}

async fn refusals_and_attachments(db: Db) {
    let Some(w) = world(db).await else {
        return;
    };
    let claim = w.claim.to_string();
    let data = blob(20_000, 3);

    // Another customer may not write into this customer's claim.
    let (s, _, b) = create(&w, &w.other, &sha(&data), data.len(), "claim_photo", &claim).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // Nor may the shop put a claim photo on it, or a customer a sale photo on a policy.
    let (s, _, _) = create(&w, &w.staff, &sha(&data), data.len(), "claim_photo", &claim).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = create(
        &w,
        &w.customer,
        &sha(&data),
        data.len(),
        "sale_photo",
        &w.policy.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The shop may put the pre-inspection photo on the policy it sold.
    let (s, _, b) = create(
        &w,
        &w.staff,
        &sha(&data),
        data.len(),
        "sale_photo",
        &w.policy.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // A target that does not exist; a bad kind; no metadata; too large.
    let (s, _, _) = create(
        &w,
        &w.customer,
        &sha(&data),
        data.len(),
        "claim_photo",
        &ClaimId::new().to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, b) = create(&w, &w.customer, &sha(&data), data.len(), "selfie", &claim).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _, b) = tus(
        &w.app,
        Method::POST,
        "/v1/uploads",
        Some(&w.customer),
        &[tus_v(), ("upload-length", "10".into())],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _, _) = create(&w, &w.customer, &sha(&data), 1 << 40, "claim_photo", &claim).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    // A blob that does not hash to its name is refused whole and forgotten.
    let (s, headers, b) = create(
        &w,
        &w.customer,
        &sha(b"something else"),
        data.len(),
        "claim_photo",
        &claim,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let bad = h(&headers, "location").to_string();
    let (s, _, b) = patch(&w, &w.customer, &bad, 0, &data, None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["code"], "blob_hash_mismatch");
    let (s, _, _) = head(&w, &w.customer, &bad).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        w.app
            .server
            .state
            .blobs
            .read(&sha(b"something else"))
            .await
            .is_err()
    );

    // Attaching before the upload is complete: refused, and the queue moves on.
    let loc = new_upload(&w, &data).await;
    let attach = |seq: u64| {
        json!({"client_seq": seq, "mutation_id": Uuid::now_v7(), "command": "attach_blob",
               "payload": {"kind": "claim_photo", "target": claim, "sha256": sha(&data), "length": data.len()}})
    };
    let (s, b) = w
        .app
        .post(
            "/v1/sync/push",
            Some(&w.customer),
            &json!({"entries": [attach(1)]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["results"][0]["status"], "rejected", "{b}");
    assert_eq!(b["results"][0]["code"], "blob_not_uploaded");
    let (s, _, _) = patch(&w, &w.customer, &loc, 0, &data, Some(checksum(&data))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Another customer cannot attach it (not theirs, not their claim).
    let (_, b) = w
        .app
        .post(
            "/v1/sync/push",
            Some(&w.other),
            &json!({"entries": [attach(1)]}),
        )
        .await;
    assert_eq!(b["results"][0]["status"], "rejected", "{b}");
    assert_eq!(b["results"][0]["code"], "forbidden", "{b}");
    // Now it attaches, once, and the claim lists the photo.
    let (_, b) = w
        .app
        .post(
            "/v1/sync/push",
            Some(&w.customer),
            &json!({"entries": [attach(2), attach(3)]}),
        )
        .await;
    assert_eq!(b["results"][0]["status"], "applied", "{b}");
    assert_eq!(b["results"][1]["status"], "applied", "{b}");
    let (s, b) = w
        .app
        .get(&format!("/v1/claims/{claim}"), Some(&w.customer))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["photo_refs"], json!([sha(&data).reference()]), "{b}");
}

#[tokio::test]
async fn refusals_and_attachments_on_sqlite() {
    refusals_and_attachments(Db::Sqlite).await;
}

#[tokio::test]
async fn refusals_and_attachments_on_postgres() {
    refusals_and_attachments(Db::Postgres).await;
}

/// A PATCH whose connection breaks mid-body keeps the bytes that arrived
/// (no checksum to hold them to), and HEAD reports them.
#[tokio::test]
async fn a_body_cut_short_keeps_what_arrived() {
    let Some(w) = world(Db::Sqlite).await else {
        return;
    };
    let data = blob(50_000, 5);
    let loc = new_upload(&w, &data).await;
    let addr = w.app.server.addr;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head_text = format!(
        "PATCH {loc} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ntus-resumable: 1.0.0\r\n\
         content-type: {OCTETS}\r\nupload-offset: 0\r\ncontent-length: {}\r\n\r\n",
        w.customer,
        data.len()
    );
    conn.write_all(head_text.as_bytes()).await.unwrap();
    conn.write_all(&data[..12_345]).await.unwrap();
    conn.flush().await.unwrap();
    conn.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    let mut offset = String::new();
    for _ in 0..200 {
        let (_, headers, _) = head(&w, &w.customer, &loc).await;
        offset = h(&headers, "upload-offset").to_string();
        if offset == "12345" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(offset, "12345", "the bytes that arrived are kept");
    let (s, headers, _) = patch(&w, &w.customer, &loc, 12_345, &data[12_345..], None).await;
    assert_eq!(
        (s, h(&headers, "upload-offset")),
        (StatusCode::NO_CONTENT, "50000")
    );
    assert!(w.app.server.state.blobs.read(&sha(&data)).await.unwrap() == data);
}

/// Unfinished uploads past their expiry are swept as new uploads are
/// created: the staging file goes, and the upload answers 410.
#[tokio::test]
async fn expired_uploads_are_swept() {
    let Some(w) = world(Db::Sqlite).await else {
        return;
    };
    let data = blob(5_000, 11);
    let loc = new_upload(&w, &data).await;
    let (s, _, _) = patch(&w, &w.customer, &loc, 0, &data[..1000], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let id: Uuid = loc.rsplit('/').next().unwrap().parse().unwrap();
    let part = w.app.server.state.blobs.part_file(&id);
    assert!(part.is_file());
    w.app.clock.advance(Duration::hours(25));
    let customer = w.app.sign_in(CUSTOMER).await.access_token;
    let fresh = blob(10, 12);
    let (s, _, b) = create(
        &w,
        &customer,
        &sha(&fresh),
        10,
        "claim_photo",
        &w.claim.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for _ in 0..500 {
        if !part.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!part.exists(), "the expired upload's staging file is gone");
    let (s, _, _) = head(&w, &customer, &loc).await;
    assert_eq!(s, StatusCode::GONE);
}

/// A staging file that lost acknowledged bytes (a restored disk, another
/// replica) ends the upload instead of growing a blob with a hole.
#[tokio::test]
async fn a_staging_file_that_lost_bytes_ends_the_upload() {
    let Some(w) = world(Db::Sqlite).await else {
        return;
    };
    let data = blob(8_000, 13);
    let loc = new_upload(&w, &data).await;
    let (s, _, _) = patch(&w, &w.customer, &loc, 0, &data[..3000], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let id: Uuid = loc.rsplit('/').next().unwrap().parse().unwrap();
    std::fs::write(w.app.server.state.blobs.part_file(&id), b"").unwrap();
    let (s, _, b) = patch(&w, &w.customer, &loc, 3000, &data[3000..], None).await;
    assert_eq!(s, StatusCode::GONE, "{b}");
    assert_eq!(b["code"], "upload_expired");
    // A new upload of the same blob goes through.
    let loc = new_upload(&w, &data).await;
    let (s, headers, _) = patch(&w, &w.customer, &loc, 0, &data, None).await;
    assert_eq!(
        (s, h(&headers, "upload-offset")),
        (StatusCode::NO_CONTENT, "8000")
    );
}

/// With `GLASSGUARD_TEST_S3_URL=s3://bucket/prefix` (and the usual `AWS_*`
/// variables, e.g. `AWS_ENDPOINT=http://127.0.0.1:5055 AWS_ALLOW_HTTP=true`
/// for a local moto server), a completed upload lands in that bucket.
#[tokio::test]
async fn a_completed_upload_lands_in_s3_when_one_is_configured() {
    let Some(url) = std::env::var("GLASSGUARD_TEST_S3_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("\n!!!! SKIPPED: S3 upload test (GLASSGUARD_TEST_S3_URL not set) !!!!\n");
        return;
    };
    let Some(w) = world_with(Db::Sqlite, |l| l.object_store_url = Some(url)).await else {
        return;
    };
    let data = blob(300_000, 21);
    let loc = new_upload(&w, &data).await;
    let (s, _, _) = patch(
        &w,
        &w.customer,
        &loc,
        0,
        &data[..100_000],
        Some(checksum(&data[..100_000])),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, headers, b) = patch(&w, &w.customer, &loc, 100_000, &data[100_000..], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(h(&headers, "upload-offset"), "300000");
    let stored = w.app.server.state.blobs.read(&sha(&data)).await.unwrap();
    assert!(stored == data, "the blob in S3 is the uploaded one");
    let local = w
        .app
        .dir
        .path()
        .join("objects/blobs")
        .join(sha(&data).as_str());
    assert!(!local.exists(), "not in the local folder");
}

/// Uploads `bytes` in one PATCH as `token` for `claim` and attaches them with
/// `phash`; the push's result.
async fn upload_and_attach(
    w: &World,
    token: &str,
    claim: &ClaimId,
    bytes: &[u8],
    phash: &str,
    seq: u64,
) -> Value {
    let (s, headers, b) = create(
        w,
        token,
        &sha(bytes),
        bytes.len(),
        "claim_photo",
        &claim.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let loc = h(&headers, "location").to_string();
    let (s, _, b) = patch(w, token, &loc, 0, bytes, Some(checksum(bytes))).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = w
        .app
        .post(
            "/v1/sync/push",
            Some(token),
            &json!({"entries": [{"client_seq": seq, "mutation_id": Uuid::now_v7(), "command": "attach_blob",
                "payload": {"kind": "claim_photo", "target": claim, "sha256": sha(bytes),
                            "length": bytes.len(), "phash": phash}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["results"][0].clone()
}

/// Insurer staff see a claim's photos unsealed with the insurer's key (each
/// view audited), with photos on other claims that look the same flagged;
/// a blob sealed to another key answers its own code; customers see none.
async fn staff_see_photos_unsealed_with_duplicates_flagged(db: Db) {
    let Some(w) = world(db).await else { return };
    let adjuster_phone = "+919100000408";
    w.app
        .seed_user(
            adjuster_phone,
            glassguard_protocol::Role::Adjuster,
            "Asha Adjuster",
        )
        .await;
    let adjuster = w.app.sign_in(adjuster_phone).await.access_token;
    let (s, key) = w.app.get("/v1/keys/sealing", None).await;
    assert_eq!(s, StatusCode::OK, "{key}");
    assert_eq!(key["suite"], "x25519-hkdf-sha256-aes256gcm");
    let insurer = glassguard_seal::PublicKey::from_bytes(
        &hex::decode(key["public_key"].as_str().unwrap()).unwrap(),
    )
    .unwrap();

    // The customer's photo, sealed to the insurer.
    let photo: Vec<u8> = [&[0xff, 0xd8, 0xff, 0xe0][..], &blob(5_000, 9)].concat();
    let sealed = glassguard_seal::seal(&insurer, &photo).unwrap();
    let r = upload_and_attach(&w, &w.customer, &w.claim, &sealed, "0f0f0f0f0f0f0f0f", 1).await;
    assert_eq!(r["status"], "applied", "{r}");

    // Another customer files a claim with a photo 3 bits away from it, and
    // one far from it.
    let (_, policies) = w.app.get("/v1/policies", Some(&w.other)).await;
    let other_policy = policies["items"][0]["id"].clone();
    let other_claim = ClaimId::new();
    let (s, b) = w
        .app
        .post(
            "/v1/claims",
            Some(&w.other),
            &json!({"id": other_claim, "policy_id": other_policy,
                    "incident_at": w.app.clock_now() - Duration::hours(1), "narrative": "Cracked"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let near = glassguard_seal::seal(&insurer, b"\xff\xd8 near").unwrap();
    let far = glassguard_seal::seal(&insurer, b"\xff\xd8 far").unwrap();
    let r = upload_and_attach(&w, &w.other, &other_claim, &near, "0f0f0f0f0f0f0f08", 1).await;
    assert_eq!(r["status"], "applied", "{r}");
    let r = upload_and_attach(&w, &w.other, &other_claim, &far, "f0f0f0f0f0f0f0f0", 2).await;
    assert_eq!(r["status"], "applied", "{r}");

    let (s, b) = w
        .app
        .get(&format!("/v1/claims/{}/photos", w.claim), Some(&adjuster))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let items = b["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{b}");
    assert_eq!(items[0]["sha256"], sha(&sealed).as_str());
    assert_eq!(items[0]["phash"], "0f0f0f0f0f0f0f0f");
    assert_eq!(
        items[0]["duplicates"],
        json!([{"claim_id": other_claim, "sha256": sha(&near), "distance": 3}]),
        "only the near photo is flagged"
    );

    // The photo unseals to exactly what the device sealed, and the view is audited.
    let url = format!(
        "{}/v1/claims/{}/photos/{}",
        w.app.base,
        w.claim,
        sha(&sealed)
    );
    let resp = w
        .app
        .http
        .get(&url)
        .bearer_auth(&adjuster)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), photo.as_slice());
    w.app.server.state.store.flush_audit().await;
    let claim_id = w.claim.to_string();
    let audit = w
        .app
        .server
        .state
        .store
        .audit_entries(Some(&claim_id), 100)
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.action == "claim.photo.view"
            && e.actor_role == Some(glassguard_protocol::Role::Adjuster)),
        "the view is in the audit log"
    );

    // The customer who took it cannot read it back from the server, nor list flags.
    let resp = w
        .app
        .http
        .get(&url)
        .bearer_auth(&w.customer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A photo not on this claim is not found, even if it exists elsewhere.
    let (s, _) = w
        .app
        .get(
            &format!("/v1/claims/{}/photos/{}", w.claim, sha(&near)),
            Some(&adjuster),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A blob sealed to another key: its own code, not a crash.
    let (_, stranger) = glassguard_seal::PrivateKey::generate();
    let wrong = glassguard_seal::seal(&stranger, b"\xff\xd8 wrong key").unwrap();
    let r = upload_and_attach(&w, &w.customer, &w.claim, &wrong, "0000000000000000", 2).await;
    assert_eq!(r["status"], "applied", "{r}");
    let (s, b) = w
        .app
        .get(
            &format!("/v1/claims/{}/photos/{}", w.claim, sha(&wrong)),
            Some(&adjuster),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["code"], "sealed_blob_unreadable");
}

#[tokio::test]
async fn staff_see_photos_unsealed_with_duplicates_flagged_on_sqlite() {
    staff_see_photos_unsealed_with_duplicates_flagged(Db::Sqlite).await;
}

#[tokio::test]
async fn staff_see_photos_unsealed_with_duplicates_flagged_on_postgres() {
    staff_see_photos_unsealed_with_duplicates_flagged(Db::Postgres).await;
}
