//! An official tus client that no one here wrote, tuspy (pinned in
//! `xtask/src/setup.rs`, installed by `cargo xtask test` into the venv
//! `<target>/xtask/venv-tus`), uploads a file to the real server, is killed
//! after two chunks, resumes from the URL it stored, and the blob in the
//! object store is byte-identical to the file.
//!
//! A second test cuts the link in the middle of a chunk (through the fault
//! proxy): tuspy resumes inside that chunk, from the bytes the server kept.
//!
//! The interpreter is `$GLASSGUARD_TUS_PYTHON` or the venv's. Under
//! `CI=true` a missing interpreter or tuspy fails the test; elsewhere the
//! test says loudly that it did not run.

use std::path::PathBuf;
use std::process::Command;

use glassguard_core::uploads::sha256_file;
use glassguard_e2e::harness::{Backend, Db, STAFF, Team, customer_phone, filed_claim};
use glassguard_e2e::proxy::Fault;
use rand::{RngExt, SeedableRng};

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GLASSGUARD_TUS_PYTHON") {
        return Some(PathBuf::from(p));
    }
    // This binary is <target>/debug/deps/tus_client-*.
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    let p = target
        .join("xtask")
        .join("venv-tus")
        .join("bin")
        .join("python");
    p.is_file().then_some(p)
}

fn tuspy() -> Option<PathBuf> {
    // As `cargo xtask` reads it: CI set to anything but empty, 0 or false.
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"));
    let found = python().filter(|p| {
        Command::new(p)
            .args(["-c", "import tusclient"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        let msg = "tuspy is not installed (run `cargo xtask test`, or set GLASSGUARD_TUS_PYTHON to a python with tuspy==1.1.0)";
        assert!(!ci, "{msg}");
        eprintln!("\n*** NOT RUN: {msg} ***\n");
    }
    found
}

fn run(python: &PathBuf, args: &[String]) -> (i32, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tus/upload.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "tuspy: exit {:?}\n{stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn value(stdout: &str, key: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn tuspy_uploads_resumes_after_being_killed_and_the_blob_is_identical() {
    let Some(python) = tuspy() else {
        return;
    };
    let b = Backend::start(Db::Sqlite).await.unwrap().unwrap();
    Team::create(&b, &[STAFF]).await.unwrap();
    let customer = customer_phone(4242);
    let (token, claim) = filed_claim(&b, STAFF, &customer, 4242).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("damage-1.jpg.sealed");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let bytes: Vec<u8> = (0..200_000).map(|_| rng.random::<u8>()).collect();
    std::fs::write(&file, &bytes).unwrap();
    let sha = sha256_file(&file).await.unwrap();
    let endpoint = format!("http://{}/v1/uploads", b.addr().unwrap());
    let store = dir.path().join("tus-urls.json");
    let args = |extra: &[&str]| {
        let mut a = vec![
            endpoint.clone(),
            token.clone(),
            file.display().to_string(),
            sha.to_string(),
            "claim_photo".to_string(),
            claim.to_string(),
            store.display().to_string(),
            "32768".to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    // Killed after two chunks.
    let py = python.clone();
    let first = args(&["2"]);
    let (code, out) = tokio::task::spawn_blocking(move || run(&py, &first))
        .await
        .unwrap();
    assert_eq!(code, 3, "{out}");
    assert_eq!(value(&out, "offset"), Some(65_536), "{out}");
    assert!(
        b.state().unwrap().blobs.read(&sha).await.is_err(),
        "not complete yet"
    );

    // Started again: resumes where the server's copy ends.
    let py = python.clone();
    let second = args(&[]);
    let (code, out) = tokio::task::spawn_blocking(move || run(&py, &second))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(value(&out, "resumed_from"), Some(65_536), "{out}");
    assert_eq!(value(&out, "offset"), Some(200_000), "{out}");
    let stored = b.state().unwrap().blobs.read(&sha).await.unwrap();
    assert!(
        stored == bytes,
        "the stored blob is the file, byte for byte"
    );
}

/// The link breaks in the middle of tuspy's second chunk (the fault proxy
/// forwards part of the request and closes both sides): tuspy fails, the
/// server keeps the bytes that arrived, and the next run resumes from there
/// (inside the chunk, not at its start).
#[tokio::test]
async fn tuspy_resumes_inside_a_chunk_the_link_cut() {
    let Some(python) = tuspy() else {
        return;
    };
    let mut b = Backend::start(Db::Sqlite).await.unwrap().unwrap();
    Team::create(&b, &[STAFF]).await.unwrap();
    let customer = customer_phone(4343);
    let (token, claim) = filed_claim(&b, STAFF, &customer, 4343).await.unwrap();
    let proxy = b.proxy(43).await.unwrap();
    proxy.script("PATCH /v1/uploads/", Fault::Pass);
    proxy.script("PATCH /v1/uploads/", Fault::CutRequest(20_000));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("damage-2.jpg.sealed");
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let bytes: Vec<u8> = (0..150_000).map(|_| rng.random::<u8>()).collect();
    std::fs::write(&file, &bytes).unwrap();
    let sha = sha256_file(&file).await.unwrap();
    let args = vec![
        format!("{}/v1/uploads", proxy.url()),
        token,
        file.display().to_string(),
        sha.to_string(),
        "claim_photo".to_string(),
        claim.to_string(),
        dir.path().join("tus-urls.json").display().to_string(),
        "32768".to_string(),
    ];
    let (py, a) = (python.clone(), args.clone());
    let (code, out) = tokio::task::spawn_blocking(move || run(&py, &a))
        .await
        .unwrap();
    assert_ne!(code, 0, "the cut fails the first run: {out}");
    assert_eq!(proxy.stats().requests_cut, 1);

    let (code, out) = tokio::task::spawn_blocking(move || run(&python, &args))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    let resumed = value(&out, "resumed_from").unwrap();
    assert!(
        resumed > 32_768 && resumed < 65_536,
        "resumed from {resumed}: the part of the cut chunk that arrived is kept"
    );
    assert_eq!(value(&out, "offset"), Some(150_000), "{out}");
    let stored = b.state().unwrap().blobs.read(&sha).await.unwrap();
    assert!(
        stored == bytes,
        "the stored blob is the file, byte for byte"
    );
}
