//! A real device core uploads a blob through the fault proxy, which cuts
//! the link several times in the middle of the upload (the server gets part
//! of a chunk, the device gets no answer) and the app is killed once on the
//! way. The upload completes; only what the server lacked is sent again
//! (beyond the chunks that were cut, less than 5 % of the blob); the blob
//! on the server is byte for byte the device's; and the attach command,
//! pushed only after the upload was confirmed, puts it on the claim.
//!
//! Blobs are arbitrary bytes named by their SHA-256 here: the photo
//! pipeline seals real photos into such blobs.

use std::time::Duration;

use glassguard_core::uploads::sha256_file;
use glassguard_core::{UploadState, UploadTarget};
use glassguard_e2e::harness::{Backend, Db, Device, STAFF, Team, customer_phone, filed_claim};
use glassguard_e2e::proxy::Fault;
use glassguard_protocol::api::Claim;
use glassguard_protocol::uploads::BlobKind;
use rand::{RngExt, SeedableRng};

const PATCH: &str = "PATCH /v1/uploads/";
const BLOB: usize = 300 * 1024;

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

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damage-1.sealed");
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let bytes: Vec<u8> = (0..BLOB).map(|_| rng.random::<u8>()).collect();
    std::fs::write(&path, &bytes).unwrap();
    let sha = sha256_file(&path).await.unwrap();
    let target = UploadTarget {
        kind: BlobKind::ClaimPhoto,
        id: claim.as_uuid(),
    };

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
    phone
        .core()
        .queue_upload(path.clone(), sha.clone(), target, None)
        .await
        .unwrap();
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
    assert!(after_first[0].confirmed < BLOB as u64, "killed mid-upload");
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
    assert_eq!((up.confirmed, up.length), (BLOB as u64, BLOB as u64));
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
    let stored = b.state().unwrap().blobs.read(&sha).await.unwrap();
    assert!(stored == bytes, "the stored blob differs from the device's");

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
