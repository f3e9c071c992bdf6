//! The restore drill: the whole story, a photo over tus, a backup taken
//! while the server runs, the data directory wiped, a restore, and
//! everything back: every table row for row, the photo blob byte for byte,
//! every audit entry; and a server started on the restored data serves it.

use std::path::{Path, PathBuf};

use base64::Engine;
use glassguard_protocol::api::AuditEntry;
use glassguard_protocol::uploads::BlobHash;
use glassguard_server::config::Layer;
use reqwest::{Method, StatusCode};

use crate::harness::{Db, TestApp, json};
use crate::story::{CUSTOMER, run_story};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Uploads `data` as a claim photo over tus (creation + one PATCH).
pub async fn upload_photo(app: &TestApp, token: &str, claim: &str, data: &[u8]) -> BlobHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let sha = BlobHash::from_bytes(digest.as_ref().try_into().unwrap());
    let meta = format!(
        "sha256 {},kind {},target {},filename {}",
        b64(sha.as_str()),
        b64("claim_photo"),
        b64(claim),
        b64("damage.jpg.sealed")
    );
    let resp = app
        .http
        .request(Method::POST, format!("{}/v1/uploads", app.base))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", data.len().to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", app.base)
    };
    let resp = app
        .http
        .request(Method::PATCH, url)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    sha
}

/// Every row of every table of a SQLite file, in a stable order.
fn sqlite_rows(db: &Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))
                .unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (t, rows)
        })
        .collect()
}

/// All files under a directory (relative paths).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

async fn audit(app: &TestApp, token: &str) -> Vec<serde_json::Value> {
    let (s, b) = app.get("/v1/admin/audit?limit=1000", Some(token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Parsed as the protocol type too, so a shape change is caught here.
    let _: glassguard_protocol::api::Page<AuditEntry> = json(b.clone());
    let items = b["items"].as_array().unwrap().clone();
    assert!(
        items.len() < 1000,
        "the audit page is full: raise the limit"
    );
    items
}

/// Every row of every table of a PostgreSQL database, as JSON text, in a
/// stable order.
async fn postgres_rows(url: &str) -> Vec<(String, Vec<String>)> {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (t,) in tables {
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t)::text AS j FROM \"{t}\" t ORDER BY j"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        out.push((t, rows.into_iter().map(|(j,)| j).collect()));
    }
    let _ = conn.close().await;
    out
}

/// The database's rows, whichever it is.
async fn all_rows(settings: &glassguard_server::config::Settings) -> Vec<(String, Vec<String>)> {
    match &settings.database {
        glassguard_server::config::DatabaseUrl::Sqlite(p) => sqlite_rows(p)
            .into_iter()
            .map(|(t, rows)| (t, rows.iter().map(|r| format!("{r:?}")).collect()))
            .collect(),
        glassguard_server::config::DatabaseUrl::Postgres(u) => {
            postgres_rows(secrecy::ExposeSecret::expose_secret(u)).await
        }
    }
}

#[tokio::test]
async fn restore_drill_on_sqlite() {
    restore_drill(Db::Sqlite).await;
}

#[tokio::test]
async fn restore_drill_on_postgres() {
    restore_drill(Db::Postgres).await;
}

async fn restore_drill(db: Db) {
    let Some(story) = run_story(db).await else {
        return;
    };
    let app = &story.app;
    let customer = app.sign_in(CUSTOMER).await.access_token;
    let photo: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let sha = upload_photo(app, &customer, &story.claim_id.to_string(), &photo).await;

    let admin = app.sign_in(crate::story::ADMIN).await.access_token;
    let (_, policy_before) = app
        .get(&format!("/v1/policies/{}", story.policy_id), Some(&admin))
        .await;
    let (_, claim_before) = app
        .get(&format!("/v1/claims/{}", story.claim_id), Some(&admin))
        .await;
    let audit_before = audit(app, &admin).await;
    assert!(audit_before.len() > 20, "{}", audit_before.len());

    // Back up while the server runs, after a signed checkpoint of the audit
    // chain (one is written every N entries; the story has fewer).
    let state = &app.server.state;
    state.store.flush_audit().await;
    glassguard_server::audit::write_checkpoint(
        &state.store,
        state.blobs.objects(),
        &app.server.audit_key,
        state.now(),
    )
    .await
    .unwrap();
    let rows_before = all_rows(&state.settings).await;
    assert!(rows_before.len() > 10, "{}", rows_before.len());
    assert!(rows_before.iter().map(|(_, r)| r.len()).sum::<usize>() > 50);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("backup");
    let manifest = glassguard_server::backup::backup(state, &target)
        .await
        .unwrap();
    assert_eq!(
        manifest.database_kind,
        if db == Db::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert!(
        manifest
            .files
            .iter()
            .any(|f| f.object_path.as_deref() == Some(&format!("blobs/{}", sha.as_str()))),
        "{manifest:?}"
    );
    // A second backup into the same directory is refused.
    assert!(
        glassguard_server::backup::backup(state, &target)
            .await
            .is_err()
    );

    // The operator keeps the master key elsewhere; the data directory is lost.
    let vault = out.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    let key_file = vault.join("master.key");
    std::fs::copy(&state.settings.master_key_file, &key_file).unwrap();
    // And the audit signing key (a secret too: it is not in the backup).
    let audit_key_file = vault.join(glassguard_server::audit::KEY_FILE);
    std::fs::copy(
        state
            .settings
            .data_dir
            .join(glassguard_server::audit::KEY_FILE),
        &audit_key_file,
    )
    .unwrap();
    let data_dir = state.settings.data_dir.clone();
    let StoryOutcome { app, .. } = story;
    drop(app);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // (The test's temporary directory goes with the server; an operator's
    // would be lost with the disk.)
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(!data_dir.exists());

    let restored = out.path().join("restored");
    // PostgreSQL: a new, empty database (dropped at the end).
    let restored_db = match db {
        Db::Sqlite => None,
        Db::Postgres => {
            Some(crate::harness::create_pg_database(&crate::harness::postgres_url().unwrap()).await)
        }
    };
    let restored_url = restored_db.as_ref().map(|(_, url)| url.clone());
    let settings = Layer {
        data_dir: Some(restored.clone()),
        master_key_file: Some(key_file.clone()),
        database_url: restored_url.clone(),
        ..Layer::default()
    }
    .resolve()
    .unwrap();

    let db_written = || match &restored_url {
        None => restored.join("glassguard.db").exists(),
        Some(url) => {
            let url = url.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move { !postgres_rows(&url).await.is_empty() })
            })
            .join()
            .unwrap()
        }
    };

    // Under another master key the backup is refused before anything is written.
    let other_key = out.path().join("other.key");
    let mut wrong = settings.clone();
    wrong.master_key_file = other_key;
    let err = glassguard_server::backup::restore(&target, &wrong)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("another master key"), "{err:#}");
    assert!(!db_written());

    // A damaged file is refused, naming the file.
    let damaged = out.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    for f in files_under(&target) {
        let rel = f.strip_prefix(&target).unwrap();
        std::fs::create_dir_all(damaged.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&f, damaged.join(rel)).unwrap();
    }
    let victim = damaged.join("database.enc");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let err = glassguard_server::backup::restore(&damaged, &settings)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("database.enc"), "{err:#}");
    assert!(!db_written());

    let source = glassguard_server::key_source(&settings).unwrap();
    glassguard_server::backup::verify(&target, source.as_ref())
        .await
        .unwrap();
    glassguard_server::backup::restore(&target, &settings)
        .await
        .unwrap();
    // Restoring over it again is refused.
    let err = glassguard_server::backup::restore(&target, &settings)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("empty"), "{err:#}");

    // Every table, row for row.
    let rows_after = all_rows(&settings).await;
    assert_eq!(rows_before.len(), rows_after.len());
    for ((t1, r1), (t2, r2)) in rows_before.iter().zip(&rows_after) {
        assert_eq!(t1, t2);
        assert_eq!(r1.len(), r2.len(), "rows of {t1}");
        assert!(r1 == r2, "table {t1} differs after the restore");
    }

    // A server on the restored data serves the same policy, claim, photo
    // and audit log, and the audit chain verifies against its checkpoint.
    std::fs::copy(
        &audit_key_file,
        restored.join(glassguard_server::audit::KEY_FILE),
    )
    .unwrap();
    let app = TestApp::spawn_with(Db::Sqlite, |l| {
        l.data_dir = Some(restored.clone());
        l.master_key_file = Some(key_file.clone());
        l.database_url = restored_url.clone();
    })
    .await
    .unwrap();
    assert_eq!(app.server.state.blobs.read(&sha).await.unwrap(), photo);
    let admin = app.sign_in(crate::story::ADMIN).await.access_token;
    let (s, policy_after) = app
        .get(
            &format!("/v1/policies/{}", story_policy(&policy_before)),
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(policy_after, policy_before);
    let (s, claim_after) = app
        .get(
            &format!("/v1/claims/{}", claim_before["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(claim_after, claim_before);
    let audit_after = audit(&app, &admin).await;
    for entry in &audit_before {
        assert!(
            audit_after.iter().any(|a| a == entry),
            "audit entry lost: {entry}"
        );
    }
    app.server.state.store.flush_audit().await;
    let verified = glassguard_server::audit::verify(
        &app.server.state.store,
        app.server.state.blobs.objects(),
        &app.server.audit_key.public_key(),
    )
    .await
    .unwrap()
    .expect("the restored audit chain verifies");
    assert!(verified.checkpoints >= 1, "the checkpoint came back too");
    assert!(verified.entries >= audit_before.len() as i64);
    drop(app);
    if let Some((name, _)) = restored_db {
        drop_pg_database(&name).await;
    }
}

async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let admin = crate::harness::postgres_url().unwrap();
    let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap();
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await;
}

fn story_policy(policy: &serde_json::Value) -> String {
    policy["id"].as_str().unwrap().to_string()
}

use crate::story::StoryOutcome;
