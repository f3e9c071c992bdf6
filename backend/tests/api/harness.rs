//! Spawns servers and speaks to them like a client would.

#![allow(dead_code)]

use std::sync::Arc;

use glassguard_protocol::api::*;
use glassguard_protocol::{DeviceId, PhoneNumber};
use glassguard_server::clock::ManualClock;
use glassguard_server::config::{DatabaseUrl, Layer};
use glassguard_server::notifier::{DevInbox, drain_once};
use glassguard_server::{Server, launch_with_listener};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running server and what a test needs around it.
pub struct TestApp {
    pub server: Server,
    pub base: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub pg_db: Option<String>,
}

/// The PostgreSQL admin URL, or `None` (loudly) when none is configured.
/// Under CI a missing PostgreSQL is a failure, not a skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("GLASSGUARD_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(u) => Some(u),
        None => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but GLASSGUARD_TEST_POSTGRES_URL is not set: the PostgreSQL conformance run is required in CI"
                );
            }
            eprintln!(
                "\n!!!! SKIPPED: PostgreSQL conformance test (GLASSGUARD_TEST_POSTGRES_URL not set; run `cargo xtask test`) !!!!\n"
            );
            None
        }
    }
}

pub async fn create_pg_database(admin_url: &str) -> (String, String) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("gg_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_else(|| admin_url.to_string());
    (name.clone(), format!("{base}/{name}"))
}

impl TestApp {
    pub async fn spawn(db: Db) -> Option<TestApp> {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Layer)) -> Option<TestApp> {
        Self::spawn_with_kms(db, tweak, None).await
    }

    /// A server whose master key comes from this KMS key source (in place
    /// of the one the settings name, so a test can give it credentials).
    pub async fn spawn_with_kms(
        db: Db,
        tweak: impl FnOnce(&mut Layer),
        kms: Option<glassguard_server::crypto::KmsKeySource>,
    ) -> Option<TestApp> {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = Layer {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            ..Layer::default()
        };
        let mut pg_db = None;
        if db == Db::Postgres {
            let admin = postgres_url()?;
            let (name, url) = create_pg_database(&admin).await;
            layer.database_url = Some(url);
            pg_db = Some(name);
        }
        tweak(&mut layer);
        let settings = layer.resolve().unwrap();
        let clock = ManualClock::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = match kms {
            None => launch_with_listener(settings, Arc::new(clock.clone()), listener).await,
            Some(k) => {
                glassguard_server::launch_with_key_source(
                    settings,
                    Arc::new(clock.clone()),
                    listener,
                    &k,
                    Some(k.clone()),
                )
                .await
            }
        }
        .unwrap();
        let base = format!("http://{}", server.addr);
        Some(TestApp {
            server,
            base,
            clock,
            http: reqwest::Client::new(),
            dir,
            pg_db,
        })
    }

    pub fn db_file(&self) -> std::path::PathBuf {
        match &self.server.state.settings.database {
            DatabaseUrl::Sqlite(p) => p.clone(),
            DatabaseUrl::Postgres(_) => panic!("not SQLite"),
        }
    }

    /// Delivers queued SMS now, and waits for any the background worker has
    /// taken but not yet delivered, so the inbox is complete when this returns.
    pub async fn deliver_sms(&self) {
        let s = &self.server.state;
        let inbox = DevInbox::new(s.store.clone(), s.keys.clone(), s.clock.clone());
        for _ in 0..2000 {
            while drain_once(&s.store, &s.keys, s.clock.as_ref(), &inbox).await > 0 {}
            if s.store.pending_notifications().await.unwrap() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("SMS outbox did not drain");
    }

    /// The newest SMS to a phone.
    pub async fn last_sms(&self, to: &str) -> String {
        self.deliver_sms().await;
        let phone = PhoneNumber::parse(to).unwrap();
        let s = &self.server.state;
        let msgs = s.store.inbox(&s.keys, Some(&phone), 1).await.unwrap();
        msgs.first().map(|m| m.body.clone()).unwrap_or_default()
    }

    /// The newest OTP sent to a phone.
    pub async fn last_otp(&self, to: &str) -> String {
        let body = self.last_sms(to).await;
        body.split_whitespace()
            .next()
            .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no OTP in {body:?}"))
            .to_string()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn post<B: Serialize>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            path,
            token,
            Some(serde_json::to_value(body).unwrap()),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// Requests an OTP and returns the code from the inbox. Within the
    /// one-send-per-minute limit, the test moves the clock instead of waiting.
    pub async fn otp(&self, phone: &str, purpose: OtpPurpose) -> String {
        let body = serde_json::json!({"phone": phone, "purpose": purpose});
        let (mut s, mut b) = self.post("/v1/auth/otp", None, &body).await;
        for _ in 0..3 {
            if s != StatusCode::TOO_MANY_REQUESTS || b["code"] != "otp_rate_limited" {
                break;
            }
            self.clock.advance(chrono::Duration::seconds(
                b["retry_after_seconds"].as_i64().unwrap() + 1,
            ));
            (s, b) = self.post("/v1/auth/otp", None, &body).await;
        }
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        self.last_otp(phone).await
    }

    /// Signs in by OTP; returns the session.
    pub async fn sign_in(&self, phone: &str) -> Session {
        let code = self.otp(phone, OtpPurpose::SignIn).await;
        let (s, b) = self
            .post(
                "/v1/auth/sign-in",
                None,
                &serde_json::json!({"phone": phone, "code": code, "device_id": DeviceId::new()}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        serde_json::from_value(b).unwrap()
    }

    /// Creates a user of any insurer role directly (as the CLI would for admins).
    pub async fn seed_user(
        &self,
        phone: &str,
        role: glassguard_protocol::Role,
        name: &str,
    ) -> glassguard_protocol::UserId {
        let s = &self.server.state;
        let ph = PhoneNumber::parse(phone).unwrap();
        let new = glassguard_server::store::NewUser {
            id: glassguard_protocol::UserId::new(),
            role,
            phone: &ph,
            name: Some(name),
            email: None,
            partner_id: None,
            service_centre: None,
        };
        s.store
            .create_user(&s.keys, &new, s.clock.now(), &Default::default())
            .await
            .unwrap()
            .unwrap()
            .id
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let (Some(name), Some(admin)) = (
            self.pg_db.take(),
            std::env::var("GLASSGUARD_TEST_POSTGRES_URL").ok(),
        ) {
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn json<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// A valid IMEI from a 14-digit payload.
pub fn imei(payload14: &str) -> String {
    let d = glassguard_protocol::imei::luhn_check_digit(payload14.as_bytes());
    format!("{payload14}{d}")
}

/// A valid GSTIN for a PAN (state 27, entity 1).
pub fn gstin(pan: &str) -> String {
    let body = format!("27{pan}1Z");
    let c = glassguard_protocol::gstin::check_character(body.as_bytes()).unwrap() as char;
    format!("{body}{c}")
}
