//! `cargo xtask bench uplink_2g`: a claim with three photos, submitted from
//! a real device core over an emulated 2G link (64 kbit/s each way, 300 ms
//! added to every request), cut twice in the middle of an upload.
//!
//! One process: the real server on `127.0.0.1:0` (SQLite), a shop that sold
//! the customer a policy ten days ago, and the customer's phone (a device
//! core behind the fault proxy, shaped by [`Link::two_g`]). The phone files
//! the claim offline and queues three sealed photos (random bytes of
//! realistic size, 100–150 KB, named by their SHA-256); then it syncs until
//! the server has the claim, the three blobs and their attachments. The
//! photos wait for the claim to reach the server (their uploads are
//! deferred past the first push), so the run covers the whole submission.
//!
//! Timed from the first sync to the claim listing its three photos. It
//! prints a table and writes `uplink_2g.json` (`claim_3_photos_seconds`,
//! `resent_fraction`: body bytes sent again over the blobs' size) to
//! `$GLASSGUARD_BENCH_OUT` (default `<workspace>/target/bench`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use glassguard_core::uploads::sha256_file;
use glassguard_core::{UploadState, UploadTarget};
use glassguard_e2e::harness::{Backend, Db, Device, STAFF, Team, customer_phone, sold_policy};
use glassguard_e2e::proxy::{Fault, Link};
use glassguard_protocol::ClaimId;
use glassguard_protocol::api::{Claim, ClaimCreate};
use glassguard_protocol::uploads::BlobKind;
use rand::{RngExt, SeedableRng};
use serde_json::json;

/// Photo sizes, bytes.
const PHOTOS: [usize; 3] = [118_000, 134_000, 149_000];

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let mut b = Backend::start(Db::Sqlite)
        .await?
        .context("SQLite always runs")?;
    Team::create(&b, &[STAFF]).await?;
    let customer = customer_phone(2_002);
    let policy = sold_policy(&b, STAFF, &customer, 2_002).await?;
    let phone = Device::signed_in(&mut b, "customer", &customer, 22).await?;
    let core = phone.core();
    core.sync_now().await?;

    // Offline: the claim and its photos.
    let claim = ClaimId::new();
    core.draft_claim(ClaimCreate {
        id: claim,
        policy_id: policy,
        incident_at: b.now() - chrono::Duration::hours(2),
        narrative: "Dropped it on the bus steps; the screen cracked".into(),
        photo_refs: vec![],
        contact_phone: None,
    })
    .await?;
    core.submit_claim(claim).await?;
    let dir = tempfile::tempdir()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut total = 0u64;
    for (i, size) in PHOTOS.iter().enumerate() {
        let path = dir.path().join(format!("photo-{i}.sealed"));
        let bytes: Vec<u8> = (0..*size).map(|_| rng.random::<u8>()).collect();
        std::fs::write(&path, &bytes)?;
        let sha = sha256_file(&path).await?;
        core.queue_upload(
            path,
            sha,
            UploadTarget {
                kind: BlobKind::ClaimPhoto,
                id: claim.as_uuid(),
            },
            None,
        )
        .await?;
        total += *size as u64;
    }

    // The 2G link, cut twice in the middle of a chunk.
    phone.proxy.set_link(Some(Link::two_g()));
    for fault in [
        Fault::Pass,
        Fault::Pass,
        Fault::CutRequest(6_000),
        Fault::Pass,
        Fault::Pass,
        Fault::Pass,
        Fault::Pass,
        Fault::Pass,
        Fault::CutRequest(9_000),
    ] {
        phone.proxy.script("PATCH /v1/uploads/", fault);
    }
    phone.proxy.reset_stats();
    let started = Instant::now();
    let mut runs = 0;
    loop {
        runs += 1;
        if let Err(e) = core.sync_now().await {
            println!("run {runs}: {e}");
        }
        let ups = core.uploads().await?;
        let done = ups.iter().all(|u| u.state == UploadState::Attached)
            && core.pending().await?.is_empty();
        if done {
            break;
        }
        ensure!(runs < 40, "not submitted after {runs} runs: {ups:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = phone.proxy.stats();
    let ups = core.uploads().await?;
    let sent: u64 = ups.iter().map(|u| u.bytes_sent).sum();
    let resent = sent.saturating_sub(total);
    let resent_fraction = resent as f64 / total as f64;

    phone.proxy.set_link(None);
    let token = b.sign_in(&customer).await?;
    let c: Claim = b.get_ok(&format!("/v1/claims/{claim}"), &token).await?;
    ensure!(
        c.photo_refs.len() == 3,
        "the claim lists {:?}",
        c.photo_refs
    );
    for u in &ups {
        let stored = b.state()?.blobs.read(&u.sha256).await?;
        ensure!(stored.len() as u64 == u.length, "blob {} differs", u.sha256);
    }

    println!();
    println!("uplink_2g: a claim with 3 photos over 64 kbit/s, 300 ms, two cuts");
    println!("  {:<34} {:>12}", "photos (bytes)", total);
    println!(
        "  {:<34} {:>12.1}",
        "claim + 3 photos submitted (s)", seconds
    );
    println!("  {:<34} {:>12}", "sync runs", runs);
    println!("  {:<34} {:>12}", "body bytes sent", sent);
    println!("  {:<34} {:>12}", "body bytes sent again", resent);
    println!("  {:<34} {:>12.4}", "resent fraction", resent_fraction);
    println!(
        "  {:<34} {:>12}",
        "requests / cut",
        format!("{} / {}", stats.requests, stats.requests_cut)
    );
    println!(
        "  {:<34} {:>12}",
        "bytes up (all, heads included)", stats.bytes_up
    );
    println!(
        "  {:<34} {:>12.0}",
        "ideal at 8000 B/s (s)",
        total as f64 / 8000.0
    );
    let report = json!({
        "claim_3_photos_seconds": (seconds * 100.0).round() / 100.0,
        "resent_fraction": (resent_fraction * 10_000.0).round() / 10_000.0,
        "photo_bytes": total,
        "body_bytes_sent": sent,
        "body_bytes_resent": resent,
        "bytes_up": stats.bytes_up,
        "bytes_down": stats.bytes_down,
        "requests": stats.requests,
        "cuts": stats.requests_cut,
        "sync_runs": runs,
        "link_bytes_per_second": Link::two_g().bytes_per_second,
        "link_latency_ms": Link::two_g().latency.as_millis() as u64,
    });
    let out = std::env::var_os("GLASSGUARD_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
        });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let file = out.join("uplink_2g.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    println!("\nwrote {}", file.display());
    Ok(())
}
