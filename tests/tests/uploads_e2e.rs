//! A real device core takes a claim photo (a real camera JPEG through the
//! photo pipeline, sealed to the insurer's key) and uploads it through the
//! fault proxy, which cuts the link several times in the middle of the
//! upload (the server gets part of a chunk, the device gets no answer) and
//! the app is killed once on the way. The upload completes; only what the
//! server lacked is sent again (beyond the chunks that were cut, less than
//! 5 % of the blob); the blob on the server is byte for byte the device's
//! and unseals with the insurer's private key to exactly the photo the
//! device produced; and the attach command, pushed only after the upload
//! was confirmed, puts it on the claim with its perceptual hash.

use std::time::Duration;

use glassguard_core::{PhotoTarget, UploadState};
use glassguard_e2e::harness::{Backend, Db, Device, STAFF, Team, customer_phone, filed_claim};
use glassguard_e2e::proxy::Fault;
use glassguard_protocol::api::Claim;
use glassguard_protocol::uploads::BlobHash;

const PATCH: &str = "PATCH /v1/uploads/";
/// A real camera photo (2560 px, with EXIF), from the core's fixtures.
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/tests/data/photos/boats-2560.jpg"
);

async fn cut_upload(db: Db) {
    let Some(mut b) = Backend::start(db).await.unwrap() else {
        return;
    };
    Team::create(&b, &[STAFF]).await.unwrap();
    let customer = customer_phone(7001);
    let (_, claim) = filed_claim(&b, STAFF, &customer, 7001).await.unwrap();
    let mut phone = Device::signed_in(&mut b, "customer", &customer, 71)
        .await
        .unwrap();

    // Cuts in the middle of the second, fourth and fifth chunks: the server
    // gets the head and part of the body, then the link is gone.
    for fault in [
        Fault::Pass,
        Fault::CutRequest(3_000),
        Fault::Pass,
        Fault::CutRequest(5_000),
        Fault::CutRequest(2_000),
    ] {
        phone.proxy.script(PATCH, fault);
    }
    phone.proxy.reset_stats();
    let jpeg = std::fs::read(PHOTO).unwrap();
    let record = phone
        .core()
        .add_photo(PhotoTarget::Claim(claim), jpeg)
        .await
        .unwrap();
    let sha = BlobHash::parse(&record.sealed_sha256).unwrap();
    let blob_len = record.sealed_len;
    assert!(blob_len > 100_000, "a real photo: {blob_len} bytes sealed");
    let bytes = std::fs::read(phone.core().sealed_photo_path(sha.as_str()).unwrap()).unwrap();
    // The UI's progress bar: the upload in flight, as the server confirms it.
    let mut status = phone.core().status();
    let watcher = tokio::spawn(async move {
        let mut seen = vec![];
        while status.changed().await.is_ok() {
            if let Some(p) = status.borrow_and_update().upload.clone() {
                seen.push(p.confirmed);
            }
        }
        seen
    });

    // The first run gets through part of it; after the first cut the app is
    // killed (the run aborted with it) and opened again on its database.
    let core = phone.shared();
    let first = tokio::spawn(async move { core.sync_now().await });
    for _ in 0..1000 {
        if phone.proxy.stats().requests_cut >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.abort();
    let _ = first.await;
    let after_first = phone.core().uploads().await.unwrap();
    println!("killed after the first cut: {after_first:?}");
    assert!(after_first[0].confirmed < blob_len, "killed mid-upload");
    phone.kill_and_reopen().unwrap();
    // The old core is gone; so is its status channel.
    let progress = watcher.await.unwrap();
    assert!(
        progress.contains(&16_384),
        "progress showed the first confirmed chunk: {progress:?}"
    );

    let mut runs = 1;
    loop {
        let ups = phone.core().uploads().await.unwrap();
        let pending = phone.core().pending().await.unwrap();
        if ups[0].state == UploadState::Attached && pending.is_empty() {
            break;
        }
        assert!(runs < 30, "the upload did not finish: {ups:?} {pending:?}");
        runs += 1;
        if let Err(e) = phone.core().sync_now().await {
            println!("run {runs}: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let up = phone.core().uploads().await.unwrap().remove(0);
    let stats = phone.proxy.stats();
    assert_eq!(phone.proxy.scripted_left(), 0, "every cut happened");
    assert_eq!(stats.requests_cut, 3, "{stats:?}");
    assert_eq!((up.confirmed, up.length), (blob_len, blob_len));
    let resent = up.bytes_sent - up.length;
    // The cut requests' full sizes (heads included) bound the cut chunks.
    let beyond = resent.saturating_sub(stats.request_bytes_cut);
    println!(
        "blob {} bytes, {} runs, sent {} body bytes, {} again; cut requests {} bytes; beyond the cut chunks {beyond} ({:.2} %)",
        up.length,
        runs,
        up.bytes_sent,
        resent,
        stats.request_bytes_cut,
        beyond as f64 * 100.0 / up.length as f64
    );
    assert!(
        (beyond as f64) < 0.05 * up.length as f64,
        "re-sent {beyond} bytes beyond the cut chunks"
    );

    // The server's blob is the device's, byte for byte.
    let state = b.state().unwrap();
    let stored = state.blobs.read(&sha).await.unwrap();
    assert!(stored == bytes, "the stored blob differs from the device's");
    // It unseals to exactly the photo the device produced (the device keeps
    // only that photo's hash, and cannot open the blob itself).
    let photo = state.insurer_key.open(&stored).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &photo);
    let plain: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        plain, record.plain_sha256,
        "the unsealed photo is the device's"
    );
    assert!(photo.starts_with(&[0xff, 0xd8]), "a JPEG");
    let photos = state.store.claim_photos(&claim.as_uuid()).await.unwrap();
    assert_eq!(
        photos[0].phash.map(|p| p.bits()),
        Some(record.phash),
        "the perceptual hash came with the attach command"
    );

    // The attach command was applied: the claim lists the photo.
    let token = b.sign_in(&customer).await.unwrap();
    let c: Claim = b
        .get_ok(&format!("/v1/claims/{claim}"), &token)
        .await
        .unwrap();
    assert!(
        c.photo_refs.contains(&sha.reference()),
        "{:?}",
        c.photo_refs
    );
    assert!(phone.core().rejected().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_upload_cut_mid_chunk_resumes_and_the_blob_is_the_devices_on_sqlite() {
    cut_upload(Db::Sqlite).await;
}

#[tokio::test]
async fn an_upload_cut_mid_chunk_resumes_and_the_blob_is_the_devices_on_postgres() {
    cut_upload(Db::Postgres).await;
}
