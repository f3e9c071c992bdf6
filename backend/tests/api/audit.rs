//! The tamper-evident audit trail: the hash chain, the append-only triggers,
//! signed checkpoints, `audit verify`, the trace endpoint and `traceparent`.
//! Each tamper runs as an attacker with database access would: drop the
//! triggers, then edit the table.

use chrono::Utc;
use glassguard_protocol::Role;
use glassguard_server::audit::{self, SigningKey, Tampered, Verified};
use glassguard_server::config::DatabaseUrl;
use glassguard_server::store::AuditRecord;
use glassguard_server::store::audit::{GENESIS, canonical, chain_hash};
use reqwest::StatusCode;
use sqlx::Connection;

use crate::harness::{Db, TestApp};

const ENTRIES: i64 = 12;

/// A server whose audit chain holds [`ENTRIES`] entries and no checkpoint yet.
async fn app_with_chain(db: Db) -> Option<TestApp> {
    let app = TestApp::spawn_with(db, |l| l.audit_checkpoint_every = Some(1_000_000)).await?;
    let s = &app.server.state;
    for i in 0..ENTRIES {
        let rec = AuditRecord {
            action: "policy.read".into(),
            resource_type: "policy".into(),
            resource_id: Some(format!("policy-{i}")),
            request_id: Some(format!("req-{i}")),
            ip: Some("10.0.0.7".into()),
            ..Default::default()
        };
        s.store.audit(Utc::now(), &rec).await.unwrap();
    }
    s.store.flush_audit().await;
    Some(app)
}

async fn verify(app: &TestApp) -> Result<Verified, Tampered> {
    let s = &app.server.state;
    audit::verify(
        &s.store,
        s.blobs.objects(),
        &app.server.audit_key.public_key(),
    )
    .await
    .unwrap()
}

/// A connection of the attacker's own, with the triggers dropped.
async fn attacker(app: &TestApp) -> sqlx::AnyConnection {
    use secrecy::ExposeSecret;
    let url = match &app.server.state.settings.database {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Postgres(u) => u.expose_secret().to_string(),
    };
    let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
    let on = match app.server.state.store.dialect() {
        glassguard_server::store::Dialect::Sqlite => "",
        glassguard_server::store::Dialect::Postgres => " ON audit_log",
    };
    for t in ["audit_log_no_update", "audit_log_no_delete"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TRIGGER {t}{on}")))
            .execute(&mut c)
            .await
            .unwrap();
    }
    c
}

async fn run(c: &mut sqlx::AnyConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *c)
        .await
        .unwrap();
}

async fn each_db(test: impl AsyncFn(Db)) {
    test(Db::Sqlite).await;
    test(Db::Postgres).await;
}

#[tokio::test]
async fn audit_an_untouched_chain_verifies_and_the_database_refuses_update_and_delete() {
    each_db(async |db| {
        let Some(app) = app_with_chain(db).await else {
            return;
        };
        let cp = audit::write_checkpoint(
            &app.server.state.store,
            app.server.state.blobs.objects(),
            &app.server.audit_key,
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(cp.seq, ENTRIES);
        assert_eq!(
            verify(&app).await,
            Ok(Verified {
                entries: ENTRIES,
                checkpoints: 1
            })
        );
        let w = app.server.state.store.reader();
        for sql in [
            "UPDATE audit_log SET action = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
        ] {
            let err = sqlx::query(sql).execute(w).await.unwrap_err();
            assert!(
                err.to_string().contains("append-only"),
                "{db:?} {sql}: {err}"
            );
        }
        assert!(verify(&app).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_an_entry_with_one_byte_flipped() {
    each_db(async |db| {
        let Some(app) = app_with_chain(db).await else {
            return;
        };
        let mut c = attacker(&app).await;
        // "policy.read" -> "policy.reae": one byte.
        run(
            &mut c,
            "UPDATE audit_log SET action = 'policy.reae' WHERE seq = 5",
        )
        .await;
        assert_eq!(
            verify(&app).await,
            Err(Tampered::Altered { seq: 5 }),
            "{db:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_a_deleted_entry() {
    each_db(async |db| {
        let Some(app) = app_with_chain(db).await else {
            return;
        };
        let mut c = attacker(&app).await;
        run(&mut c, "DELETE FROM audit_log WHERE seq = 4").await;
        assert_eq!(
            verify(&app).await,
            Err(Tampered::Missing {
                expected: 4,
                found: 5
            }),
            "{db:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_the_first_of_two_reordered_entries() {
    each_db(async |db| {
        let Some(app) = app_with_chain(db).await else {
            return;
        };
        let mut c = attacker(&app).await;
        run(&mut c, "UPDATE audit_log SET seq = -1 WHERE seq = 7").await;
        run(&mut c, "UPDATE audit_log SET seq = 7 WHERE seq = 8").await;
        run(&mut c, "UPDATE audit_log SET seq = 8 WHERE seq = -1").await;
        assert_eq!(
            verify(&app).await,
            Err(Tampered::BrokenLink { seq: 7 }),
            "{db:?}"
        );
    })
    .await;
}

/// Rewrites entry 3 and re-chains everything after it, head included: the
/// table alone is consistent again.
async fn rewrite_consistently(app: &TestApp, c: &mut sqlx::AnyConnection) {
    let rows = app.server.state.store.audit_chain(0, 10_000).await.unwrap();
    let mut prev = GENESIS;
    for row in rows {
        let mut rec = row.record.clone();
        if row.seq == 3 {
            rec.ip = Some("192.0.2.1".into());
        }
        let hash = chain_hash(&prev, &canonical(row.seq, row.at, &rec));
        sqlx::query("UPDATE audit_log SET ip = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(rec.ip.clone())
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .bind(row.seq)
            .execute(&mut *c)
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev.to_vec())
        .execute(&mut *c)
        .await
        .unwrap();
}

#[tokio::test]
async fn audit_verify_catches_a_consistent_rewrite_of_the_whole_table_by_its_checkpoint() {
    each_db(async |db| {
        let Some(app) = app_with_chain(db).await else {
            return;
        };
        let s = &app.server.state;
        audit::write_checkpoint(
            &s.store,
            s.blobs.objects(),
            &app.server.audit_key,
            Utc::now(),
        )
        .await
        .unwrap();
        let mut c = attacker(&app).await;
        rewrite_consistently(&app, &mut c).await;
        assert_eq!(
            verify(&app).await,
            Err(Tampered::CheckpointMismatch { seq: ENTRIES }),
            "{db:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn audit_verify_catches_a_truncation_below_a_checkpoint() {
    each_db(async |db| {
        let Some(app) = app_with_chain(db).await else {
            return;
        };
        let s = &app.server.state;
        audit::write_checkpoint(
            &s.store,
            s.blobs.objects(),
            &app.server.audit_key,
            Utc::now(),
        )
        .await
        .unwrap();
        let mut c = attacker(&app).await;
        run(&mut c, "DELETE FROM audit_log WHERE seq > 9").await;
        let head = s.store.audit_chain(8, 1).await.unwrap().remove(0).hash;
        sqlx::query("UPDATE audit_head SET seq = 9, hash = $1 WHERE id = 1")
            .bind(head)
            .execute(&mut c)
            .await
            .unwrap();
        assert_eq!(
            verify(&app).await,
            Err(Tampered::CheckpointBeyondEnd {
                seq: ENTRIES,
                len: 9
            }),
            "{db:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn audit_verify_refuses_a_checkpoint_signed_by_another_key() {
    let Some(app) = app_with_chain(Db::Sqlite).await else {
        return;
    };
    let s = &app.server.state;
    let other_dir = tempfile::tempdir().unwrap();
    let other = SigningKey::load_or_create(other_dir.path()).unwrap();
    // The attacker rewrites the table and signs a matching checkpoint with a key of their own.
    let mut c = attacker(&app).await;
    rewrite_consistently(&app, &mut c).await;
    audit::write_checkpoint(&s.store, s.blobs.objects(), &other, Utc::now())
        .await
        .unwrap();
    match verify(&app).await {
        Err(Tampered::BadCheckpoint { name, reason }) => {
            assert!(name.ends_with("00000000000000000012.json"), "{name}");
            assert!(reason.contains("signature"), "{reason}");
        }
        other => panic!("expected a bad checkpoint, got {other:?}"),
    }
}

#[tokio::test]
async fn audit_verify_command_exits_non_zero_naming_the_entry() {
    let Some(app) = app_with_chain(Db::Sqlite).await else {
        return;
    };
    let verify_cli = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_glassguard"))
            .args(["--data-dir"])
            .arg(app.dir.path())
            .args(["audit", "verify"])
            .env_remove("GLASSGUARD_DATABASE_URL")
            .env_remove("GLASSGUARD_OBJECT_STORE_URL")
            .output()
            .unwrap()
    };
    let ok = verify_cli();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains(&format!("{ENTRIES} entries")), "{out}");
    let mut c = attacker(&app).await;
    run(
        &mut c,
        "UPDATE audit_log SET request_id = 'req-X' WHERE seq = 6",
    )
    .await;
    let bad = verify_cli();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("audit entry 6 was altered"), "{err}");
}

#[tokio::test]
async fn audit_trace_shows_who_touched_a_policy_with_request_id_and_traceparent() {
    let Some(app) = TestApp::spawn(Db::Sqlite).await else {
        return;
    };
    app.seed_user("+919000000101", Role::Admin, "Admin").await;
    let admin = app.sign_in("+919000000101").await;
    let policy = uuid::Uuid::now_v7().to_string();
    let s = &app.server.state;
    s.store
        .audit(
            Utc::now(),
            &AuditRecord {
                actor_id: Some(admin.user.id),
                actor_role: Some(Role::Admin),
                action: "policy.read".into(),
                resource_type: "policy".into(),
                resource_id: Some(policy.clone()),
                request_id: Some("req-trace-1".into()),
                ip: Some("10.1.2.3".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A request carrying a traceparent: its audit entry keeps it, the answer echoes it.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = app
        .http
        .get(format!("{}/v1/me", app.base))
        .bearer_auth(&admin.access_token)
        .header("traceparent", tp)
        .header("x-request-id", "req-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["traceparent"], tp);
    s.store.flush_audit().await;
    let (st, b) = app
        .get(
            &format!("/v1/admin/audit?resource_id={}", admin.user.id),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let me = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "me.read")
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(me["traceparent"], tp);
    assert_eq!(me["request_id"], "req-me-1");

    let (st, b) = app
        .get(
            &format!("/v1/admin/trace/policy/{policy}"),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let items = b["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{b}");
    assert_eq!(items[0]["request_id"], "req-trace-1");
    assert_eq!(items[0]["ip"], "10.1.2.3");
    assert_eq!(items[0]["actor_id"], admin.user.id.to_string());
    let (st, b) = app
        .get(
            &format!("/v1/admin/trace/claim/{policy}"),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b["items"].as_array().unwrap().is_empty(), "{b}");
    let (st, _) = app
        .get(
            &format!("/v1/admin/trace/user/{policy}"),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn audit_rows_written_before_the_chain_are_chained_densely_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlx::any::install_default_drivers();
    {
        // A database as the release before the chain left it: migrations 1-5
        // and audit rows with gaps in their seq.
        let mut c = sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        run(
            &mut c,
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await;
        for (v, sql) in [
            (1, include_str!("../../migrations/0001_init.sql")),
            (2, include_str!("../../migrations/0002_sync.sql")),
            (3, include_str!("../../migrations/0003_bot.sql")),
            (4, include_str!("../../migrations/0004_feed_tag.sql")),
            (5, include_str!("../../migrations/0005_uploads.sql")),
        ] {
            let sql = sql
                .replace("BLOB_T", "BLOB")
                .replace("SERIAL_PK", "INTEGER PRIMARY KEY AUTOINCREMENT");
            run(&mut c, &sql).await;
            run(
                &mut c,
                &format!("INSERT INTO schema_migrations VALUES ({v}, 0)"),
            )
            .await;
        }
        for seq in [1, 5, 9] {
            run(
                &mut c,
                &format!(
                    "INSERT INTO audit_log (seq, at, action, resource_type, resource_id) \
                     VALUES ({seq}, {seq}000, 'claim.read', 'claim', 'c-{seq}')"
                ),
            )
            .await;
        }
    }
    let store = glassguard_server::store::Store::open(&DatabaseUrl::Sqlite(path))
        .await
        .unwrap();
    let rows = store.audit_chain(0, 100).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(rows[2].record.resource_id.as_deref(), Some("c-9"));
    assert_eq!(store.audit_head().await.unwrap().0, 3);
    // New entries go on from the chained rows.
    store
        .audit(
            Utc::now(),
            &AuditRecord {
                action: "claim.read".into(),
                resource_type: "claim".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let objects: std::sync::Arc<dyn object_store::ObjectStore> =
        std::sync::Arc::new(object_store::memory::InMemory::new());
    let key = SigningKey::load_or_create(dir.path()).unwrap();
    assert_eq!(
        audit::verify(&store, &objects, &key.public_key())
            .await
            .unwrap(),
        Ok(Verified {
            entries: 4,
            checkpoints: 0
        })
    );
}
