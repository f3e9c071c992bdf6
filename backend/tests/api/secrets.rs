//! No secret in the clear anywhere it could leak: the whole story runs with
//! logs captured at TRACE, then every secret the test saw (OTP codes,
//! access and refresh tokens, the master key) is looked for in the logs, in
//! a backup, and in every file under the data directory, as text, hex and
//! base64. The master key file itself is the one place the local key source
//! keeps its key (with KMS there is none) and is left out.
//!
//! Data keys and KEKs are not reachable from outside the crate; they are
//! covered by the backup's and database's encryption tests and by never
//! being formatted (`Debug` prints `[redacted]`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use glassguard_protocol::DeviceId;
use glassguard_protocol::api::OtpPurpose;
use reqwest::StatusCode;
use serde_json::json;

use crate::backup::{files_under, upload_photo};
use crate::harness::{Db, TestApp};
use crate::story::{ADMIN, CUSTOMER, run_story_on};

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Where `needle` occurs in `hay`; a `bounded` needle only counts when no
/// ASCII letter or digit touches it (six-digit codes would otherwise match
/// inside longer numbers by chance).
fn contains(hay: &[u8], needle: &[u8], bounded: bool) -> bool {
    if needle.is_empty() || hay.len() < needle.len() {
        return false;
    }
    hay.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && (!bounded
                || ((i == 0 || !hay[i - 1].is_ascii_alphanumeric())
                    && hay
                        .get(i + needle.len())
                        .is_none_or(|b| !b.is_ascii_alphanumeric())))
    })
}

struct Secret {
    what: String,
    forms: Vec<(Vec<u8>, bool)>,
}

fn secret(what: &str, raw: &[u8], bounded: bool) -> Secret {
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    Secret {
        what: what.into(),
        forms: vec![
            (raw.to_vec(), bounded),
            (hex::encode(raw).into_bytes(), false),
            (b64.trim_end_matches('=').as_bytes().to_vec(), false),
            (b64url.into_bytes(), false),
        ],
    }
}

fn leaks(secrets: &[Secret], place: &str, hay: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for s in secrets {
        for (form, bounded) in &s.forms {
            if contains(hay, form, *bounded) {
                out.push(format!("{} in {place}", s.what));
            }
        }
    }
    out
}

#[tokio::test]
async fn no_secret_in_logs_backups_or_the_data_directory() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    // This test's runtime is on this thread: the server's tasks log here.
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests register callsites on other threads at the same time; a
    // registration racing with ours can cache "not interested" (and a low
    // max level) for them. Recompute once ours is in place, and again once
    // the server's callsites exist.
    tracing::callsite::rebuild_interest_cache();

    let app = TestApp::spawn(Db::Sqlite).await.unwrap();
    tracing::callsite::rebuild_interest_cache();
    let story = run_story_on(app).await;
    let app = &story.app;
    let mut secrets = Vec::new();

    // Tokens: one full session of each kind, a refresh, and the story's.
    let code = app.otp(CUSTOMER, OtpPurpose::SignIn).await;
    let device = DeviceId::new();
    let (s, b) = app
        .post(
            "/v1/auth/sign-in",
            None,
            &json!({"phone": CUSTOMER, "code": code, "device_id": device}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let session: glassguard_protocol::api::Session = crate::harness::json(b);
    let (s, b) = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": session.refresh_token, "device_id": device}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    for (what, t) in [
        ("access token", session.access_token.as_str()),
        ("refresh token", session.refresh_token.as_str()),
        ("story admin token", story.admin.as_str()),
        (
            "refreshed access token",
            b["access_token"].as_str().unwrap(),
        ),
        (
            "refreshed refresh token",
            b["refresh_token"].as_str().unwrap(),
        ),
    ] {
        secrets.push(secret(what, t.as_bytes(), false));
    }
    let admin = app.sign_in(ADMIN).await.access_token;
    secrets.push(secret("admin token", admin.as_bytes(), false));
    let photo: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    upload_photo(
        app,
        &session.access_token,
        &story.claim_id.to_string(),
        &photo,
    )
    .await;

    // Every OTP and voucher code the dev inbox holds.
    let state = &app.server.state;
    app.deliver_sms().await;
    let inbox = state.store.inbox(&state.keys, None, 10_000).await.unwrap();
    let mut codes = 0;
    for m in &inbox {
        for word in m.body.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.len() == 6 && word.bytes().all(|b| b.is_ascii_digit()) {
                secrets.push(secret(&format!("code {word}"), word.as_bytes(), true));
                codes += 1;
            }
        }
    }
    assert!(codes >= 8, "the story sends codes: {inbox:?}");

    // The master key.
    let key_file = state.settings.master_key_file.clone();
    let key_hex = std::fs::read_to_string(&key_file).unwrap();
    let key = hex::decode(key_hex.trim()).unwrap();
    secrets.push(secret("master key", &key, false));

    let backup_dir = tempfile::tempdir().unwrap();
    let target = backup_dir.path().join("b");
    glassguard_server::backup::backup(state, &target)
        .await
        .unwrap();
    state.store.flush_audit().await;

    let logged = logs.0.lock().unwrap().clone();
    assert!(
        logged.len() > 10_000,
        "TRACE logs were captured: {}",
        String::from_utf8_lossy(&logged)
    );

    let mut found = leaks(&secrets, "the logs", &logged);
    for f in files_under(&target) {
        found.extend(leaks(
            &secrets,
            &f.display().to_string(),
            &std::fs::read(&f).unwrap(),
        ));
    }
    // The data directory: the database with its WAL, objects, staging files.
    let data_files = files_under(&state.settings.data_dir);
    assert!(data_files.iter().any(|f| f.ends_with("glassguard.db")));
    for f in data_files.iter().filter(|f| **f != key_file) {
        found.extend(leaks(
            &secrets,
            &f.display().to_string(),
            &std::fs::read(f).unwrap(),
        ));
    }
    assert!(found.is_empty(), "secrets in the clear: {found:#?}");

    // The dev SMS inbox is stored encrypted: the codes it shows above are
    // nowhere in the database file in the clear (checked), and its rows are
    // ciphertexts.
    let plain_bodies: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sms_inbox WHERE body_enc IS NULL OR dek IS NULL")
            .fetch_one(state.store.reader())
            .await
            .unwrap();
    assert_eq!(plain_bodies, 0);

    // The test itself can see a leak: plant one and find it.
    assert!(
        !leaks(
            &secrets,
            "a planted log line",
            format!("token={admin}").as_bytes()
        )
        .is_empty()
    );
    let with_code = inbox
        .iter()
        .map(|m| m.body.as_str())
        .find(|b| b.split_whitespace().next().is_some_and(|w| w.len() == 6))
        .unwrap();
    assert!(
        !leaks(&secrets, "a planted code", with_code.as_bytes()).is_empty(),
        "{with_code}"
    );
}
