//! `cargo xtask bench sync`: the sync protocol against one plain HTTP POST
//! per operation, over loopback.
//!
//! One process, one multi-thread tokio runtime:
//!
//! 1. the real server on `127.0.0.1:0` (SQLite in a temporary directory), an
//!    approved shop with two counter staff, each on a device core behind a
//!    pass-through [`Proxy`] that counts the bytes each way;
//! 2. **queue**: counter A records [`OPS`] sales with no network through
//!    `Core::record_sale` (timed, with the cost of a sale at a full queue);
//! 3. **push**: counter A syncs. The proxy's exchange record splits the run
//!    into its pushes (timed from the first push request to the last byte of
//!    the last push answer, bytes both ways) and the pull that follows;
//! 4. **pull**: counter B, with an empty view, pulls the [`OPS`] new policies;
//! 5. **baseline**: the same number of sales, each sent as its own plain
//!    HTTP POST (keep-alive, one after the other, like a client without a
//!    queue), through the same kind of proxy. The endpoint is
//!    `POST /v1/sync/push` with a single entry, which does exactly the same
//!    server work per sale (apply + idempotency record); `POST /v1/sales`
//!    would add a customer OTP per sale, which the rate limits forbid at this
//!    volume.
//!
//! It prints a table and writes `sync.json` to `$GLASSGUARD_BENCH_OUT`
//! (default `<workspace>/target/bench`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use glassguard_e2e::harness::{Backend, Db, Device, STAFF, STAFF_2, Team, customer_phone, sale};
use glassguard_e2e::proxy::Exchange;
use glassguard_protocol::sync::{Command, PushResponse};
use serde_json::json;

/// Operations in each run (`GLASSGUARD_SYNC_BENCH_OPS` for a quick try).
const OPS: usize = 10_000;
/// Targets from the issue.
const TARGET_PUSH_SECONDS: f64 = 1.0;
const TARGET_BYTES_PER_OP: f64 = 200.0;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(run())
}

/// Time and bytes of the exchanges whose request line starts with `prefix`.
fn span(exchanges: &[Exchange], prefix: &str) -> Result<(f64, u64, usize)> {
    let picked: Vec<_> = exchanges
        .iter()
        .filter(|e| e.line.starts_with(prefix))
        .collect();
    let first = picked.first().context("no such exchange")?;
    let last = picked
        .iter()
        .filter_map(|e| e.finished)
        .max()
        .context("no answer")?;
    let bytes = picked.iter().map(|e| e.bytes_up + e.bytes_down).sum();
    Ok((
        last.duration_since(first.started).as_secs_f64(),
        bytes,
        picked.len(),
    ))
}

async fn run() -> Result<()> {
    let started = Instant::now();
    let mut b = Backend::start(Db::Sqlite)
        .await?
        .context("SQLite is always there")?;
    let team = Team::create(&b, &[STAFF, STAFF_2]).await?;
    let a = Device::signed_in(&mut b, "counter A", STAFF, 1).await?;
    let c = Device::signed_in(&mut b, "counter B", STAFF_2, 2).await?;
    a.core().sync_now().await?;
    c.core().sync_now().await?;

    // Queue: every sale through the core, with the network off.
    let ops: usize = match std::env::var("GLASSGUARD_SYNC_BENCH_OPS") {
        Ok(v) => v.parse().context("GLASSGUARD_SYNC_BENCH_OPS")?,
        Err(_) => OPS,
    };
    a.proxy.set_offline(true);
    let queue_started = Instant::now();
    let mut last_hundred = Duration::ZERO;
    let mut ids = BTreeSet::new();
    for n in 0..ops as u64 {
        let t = Instant::now();
        let s = sale(n, &customer_phone(n % 500), b.today())?;
        ids.insert(a.core().record_sale(s).await?);
        if n as usize + 100 >= ops {
            last_hundred += t.elapsed();
        }
    }
    let queue_seconds = queue_started.elapsed().as_secs_f64();
    let record_ms = last_hundred.as_secs_f64() * 1000.0 / 100f64.min(ops as f64);
    ensure!(
        a.core().pending().await?.len() == ops,
        "the queue holds every sale"
    );
    println!(
        "setup done in {:.1} s: {ops} sales queued through the core in {queue_seconds:.2} s (the last 100 at {record_ms:.2} ms each)",
        started.elapsed().as_secs_f64(),
    );

    // Push (and the pull that follows it in the same run).
    a.proxy.set_offline(false);
    a.proxy.reset_stats();
    a.proxy.record(true);
    let report = a.core().sync_now().await?;
    a.proxy.record(false);
    ensure!(
        report.applied == ops && a.core().pending().await?.is_empty(),
        "every sale applied: {report:?}"
    );
    let exchanges = a.proxy.take_exchanges();
    let (push_seconds, push_bytes, push_requests) = span(&exchanges, "POST /v1/sync/push")?;
    let bytes_per_op = push_bytes as f64 / ops as f64;
    // Per push request: from the request reaching the proxy to the answer's
    // last byte (almost all of it the server applying the batch).
    let push_request_ms: Vec<f64> = exchanges
        .iter()
        .filter(|e| e.line.starts_with("POST /v1/sync/push"))
        .filter_map(|e| {
            e.finished
                .map(|f| f.duration_since(e.started).as_secs_f64() * 1000.0)
        })
        .collect();
    let push_request_ms_mean =
        push_request_ms.iter().sum::<f64>() / push_request_ms.len().max(1) as f64;
    let gzip_refused = exchanges
        .iter()
        .filter(|e| e.line.starts_with("POST /v1/sync/push"))
        .count()
        > ops.div_ceil(glassguard_core::sync::PUSH_BATCH);

    // Pull, on the other counter.
    c.proxy.reset_stats();
    c.proxy.record(true);
    let t = Instant::now();
    let report = c.core().sync_now().await?;
    let pull_total = t.elapsed().as_secs_f64();
    c.proxy.record(false);
    ensure!(
        report.pulled >= ops,
        "the other counter pulled every policy: {report:?}"
    );
    let (pull_seconds, pull_bytes, pull_requests) =
        span(&c.proxy.take_exchanges(), "GET /v1/sync/pull")?;

    // Baseline: one POST per sale.
    let proxy = b.proxy(3).await?;
    let token = b.sign_in(STAFF).await?;
    let sales: Vec<_> = (0..ops as u64)
        .map(|n| sale(100_000 + n, &customer_phone(n % 500), b.today()))
        .collect::<Result<_>>()?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/sync/push", proxy.url());
    proxy.record(true);
    let t = Instant::now();
    for (i, s) in sales.iter().enumerate() {
        let mut entry = serde_json::to_value(Command::RecordSale(s.clone()))?;
        entry["client_seq"] = json!(i + 1);
        entry["mutation_id"] = json!(uuid::Uuid::now_v7());
        let resp = http
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({ "entries": [entry] }))
            .send()
            .await?;
        ensure!(
            resp.status().is_success(),
            "baseline POST {i}: {}",
            resp.status()
        );
        let body: PushResponse = resp.json().await?;
        ensure!(body.results.len() == 1, "baseline POST {i}: {body:?}");
    }
    let baseline_seconds = t.elapsed().as_secs_f64();
    proxy.record(false);
    let (_, baseline_bytes, _) = span(&proxy.take_exchanges(), "POST /v1/sync/push")?;
    let baseline_bytes_per_op = baseline_bytes as f64 / ops as f64;
    let ledger = b.commission(team.partner, &team.owner).await?;
    ensure!(
        ledger.entries.len() == 2 * ops,
        "every sale once: {}",
        ledger.entries.len()
    );
    let booked: BTreeSet<_> = ledger.entries.iter().map(|e| e.policy_id).collect();
    ensure!(ids.is_subset(&booked), "every queued sale is a policy");

    let rate = |s: f64| if s > 0.0 { ops as f64 / s } else { 0.0 };
    println!();
    println!(
        "{:<44} {:>10} {:>12} {:>10} {:>9}",
        "run", "seconds", "ops/s", "bytes/op", "requests"
    );
    println!(
        "{:<44} {:>10.3} {:>12.0} {:>10.1} {:>9}",
        format!("push {ops} queued sales (core, batches)"),
        push_seconds,
        rate(push_seconds),
        bytes_per_op,
        push_requests
    );
    println!(
        "{:<44} {:>10.3} {:>12.0} {:>10.1} {:>9}",
        format!("pull {ops} changes (other core, empty view)"),
        pull_seconds,
        rate(pull_seconds),
        pull_bytes as f64 / ops as f64,
        pull_requests
    );
    println!(
        "{:<44} {:>10.3} {:>12.0} {:>10.1} {:>9}",
        format!("baseline: {ops} POSTs, one sale each"),
        baseline_seconds,
        rate(baseline_seconds),
        baseline_bytes_per_op,
        ops
    );
    println!();
    println!(
        "push: {:.1}x the baseline's speed; target {ops} in under {TARGET_PUSH_SECONDS} s: {}; under {TARGET_BYTES_PER_OP} bytes/op: {}",
        baseline_seconds / push_seconds.max(f64::EPSILON),
        if push_seconds < TARGET_PUSH_SECONDS {
            "met"
        } else {
            "NOT MET"
        },
        if bytes_per_op < TARGET_BYTES_PER_OP {
            "met"
        } else {
            "NOT MET"
        },
    );
    println!(
        "push: {:.1} ms per {}-row request on average, {:.2} ms per sale, nearly all of it the server applying the batch",
        push_request_ms_mean,
        glassguard_core::sync::PUSH_BATCH,
        push_request_ms_mean / glassguard_core::sync::PUSH_BATCH as f64
    );
    println!(
        "pull: the whole sync run on counter B took {pull_total:.3} s; recording a sale with {ops} queued: {record_ms:.2} ms"
    );
    if gzip_refused {
        println!(
            "note: the server refused the gzip push body (no request decompression), so the core fell back to plain JSON; bytes/op are plain JSON"
        );
    }

    let round = |x: f64, places: i32| {
        let f = 10f64.powi(places);
        (x * f).round() / f
    };
    let report = json!({
        "push_10k_seconds": round(push_seconds, 4),
        "bytes_per_op": round(bytes_per_op, 1),
        "pull_10k_seconds": round(pull_seconds, 4),
        "baseline_10k_seconds": round(baseline_seconds, 4),
        "push_ops_per_second": round(rate(push_seconds), 0),
        "pull_changes_per_second": round(rate(pull_seconds), 0),
        "baseline_ops_per_second": round(rate(baseline_seconds), 0),
        "baseline_bytes_per_op": round(baseline_bytes_per_op, 1),
        "pull_bytes_per_change": round(pull_bytes as f64 / ops as f64, 1),
        "operations": ops,
        "push_request_ms_mean": round(push_request_ms_mean, 1),
        "queue_seconds": round(queue_seconds, 2),
        "record_sale_ms_at_full_queue": round(record_ms, 2),
        "push_gzip_refused": gzip_refused,
        "target_push_met": push_seconds < TARGET_PUSH_SECONDS,
        "target_bytes_met": bytes_per_op < TARGET_BYTES_PER_OP,
    });
    let out = std::env::var_os("GLASSGUARD_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
        });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let file = out.join("sync.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    println!("\nwrote {}", file.display());
    Ok(())
}
