//! Starts real servers and real device cores, and talks to the server the
//! way the insurer's browser users (admin, adjuster) would.
//!
//! - [`Backend`]: the server from `glassguard_server::launch_with_listener`
//!   on `127.0.0.1:0`, SQLite in a temporary data directory or a database of
//!   its own on `GLASSGUARD_TEST_POSTGRES_URL`, a [`ManualClock`], the dev
//!   SMS inbox (OTPs are read from it). It can be restarted (same data, new
//!   port) and reset (fresh data). Every [`Proxy`] made through it follows it
//!   to its new port.
//! - [`Device`]: a `glassguard_core::Core` on its own encrypted data
//!   directory, talking to the server through its own fault proxy. It can be
//!   killed and reopened on the same database file and key.
//! - [`Team`]: the people around the devices: an admin, an adjuster, a
//!   technician, and an approved shop with its staff.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::{DateTime, NaiveDate, Utc};
use glassguard_core::{Backoff, Config, Core, DbKey};
use glassguard_protocol::api::{
    Claim, ClaimEvent, CommissionLedger, Job, Me, OtpPurpose, Page, PartnerRegistered, Policy,
    Session,
};
use glassguard_protocol::sync::{Change, OfflineSale, PullResponse};
use glassguard_protocol::{
    ClaimId, DeviceId, Imei, Money, PartnerId, PhoneNumber, PolicyId, Role, UserId,
};
use glassguard_server::clock::{Clock, ManualClock};
use glassguard_server::config::{Layer, Settings};
use glassguard_server::http::AppState;
use glassguard_server::notifier::{DevInbox, drain_once};
use glassguard_server::{Server, launch_with_listener};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::proxy::Proxy;

/// The insurer's admin.
pub const ADMIN: &str = "+919100000001";
/// The adjuster who reviews and allocates claims.
pub const ADJUSTER: &str = "+919100000002";
/// The field technician.
pub const TECH: &str = "+919100000003";
/// The shop's owner (partner_admin).
pub const OWNER: &str = "+919100000004";
/// Counter staff at the shop.
pub const STAFF: &str = "+919100000005";
/// More counter staff at the same shop.
pub const STAFF_2: &str = "+919100000007";

/// Which database the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh database on `GLASSGUARD_TEST_POSTGRES_URL`.
    Postgres,
}

/// The PostgreSQL admin URL, or `None` with a loud SKIPPED line. Under
/// `CI=true` a missing PostgreSQL is a failure, not a skip.
pub fn postgres_url(what: &str) -> Option<String> {
    match std::env::var("GLASSGUARD_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(u) => Some(u),
        None => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but GLASSGUARD_TEST_POSTGRES_URL is not set: the PostgreSQL end-to-end run ({what}) is required in CI"
            );
            eprintln!(
                "\n!!!! SKIPPED: {what} on PostgreSQL (GLASSGUARD_TEST_POSTGRES_URL not set; run `cargo xtask test`) !!!!\n"
            );
            None
        }
    }
}

/// A PostgreSQL database made for one backend, dropped with it.
#[derive(Debug)]
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Result<(PgDatabase, String)> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!("gg_e2e_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::AnyConnection::connect(admin_url)
            .await
            .context("connect to PostgreSQL")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .context("create database")?;
        let base = admin_url
            .rsplit_once('/')
            .map_or_else(|| admin_url.to_string(), |(b, _)| b.to_string());
        let url = format!("{base}/{name}");
        Ok((
            PgDatabase {
                admin_url: admin_url.to_owned(),
                name,
            },
            url,
        ))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Best effort, on a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
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

/// A running server and what a test needs around it.
#[derive(Debug)]
pub struct Backend {
    /// Which database.
    pub db: Db,
    /// The server's clock (tests move it; restarts keep it).
    pub clock: ManualClock,
    /// A plain HTTP client for the insurer's users.
    pub http: reqwest::Client,
    settings: Settings,
    server: Option<Server>,
    proxies: Vec<Proxy>,
    /// Data directories and databases of this backend, current one last.
    /// Old ones are kept until the end: a stopped server's last tasks may
    /// still hold them.
    dirs: Vec<tempfile::TempDir>,
    pgs: Vec<PgDatabase>,
    restarts: usize,
    body_limit: Option<usize>,
}

fn layer(dir: PathBuf, database_url: Option<String>, body_limit: Option<usize>) -> Layer {
    Layer {
        data_dir: Some(dir),
        body_limit_bytes: body_limit,
        listen: Some("127.0.0.1:0".into()),
        database_url,
        // Every device and person signs in from 127.0.0.1.
        ip_otp_per_hour: Some(100_000),
        ip_sign_in_per_hour: Some(100_000),
        // The longest the server allows; the fault runs must not need a
        // refresh, whose lost answer would end a session (reported apart).
        access_ttl_seconds: Some(3600),
        refresh_ttl_seconds: Some(400 * 24 * 3600),
        ..Layer::default()
    }
}

impl Backend {
    /// Starts a server; `None` when PostgreSQL is asked for and not configured.
    pub async fn start(db: Db) -> Result<Option<Backend>> {
        Self::start_with_body_limit(db, None).await
    }

    /// [`Backend::start`] with another request body limit than the server's default.
    pub async fn start_with_body_limit(
        db: Db,
        body_limit: Option<usize>,
    ) -> Result<Option<Backend>> {
        let mut b = Backend {
            body_limit,
            db,
            clock: ManualClock::new(),
            http: reqwest::Client::new(),
            settings: Settings::for_data_dir(std::env::temp_dir()),
            server: None,
            proxies: Vec::new(),
            dirs: Vec::new(),
            pgs: Vec::new(),
            restarts: 0,
        };
        if !b.fresh_settings().await? {
            return Ok(None);
        }
        b.launch().await?;
        Ok(Some(b))
    }

    /// Makes a new data directory (and database) and settings for it.
    /// `false` when PostgreSQL is not configured.
    async fn fresh_settings(&mut self) -> Result<bool> {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let url = match self.db {
            Db::Sqlite => None,
            Db::Postgres => {
                let Some(admin) = postgres_url("the sync end-to-end suite") else {
                    return Ok(false);
                };
                let (pg, url) = PgDatabase::create(&admin).await?;
                self.pgs.push(pg);
                Some(url)
            }
        };
        self.settings = layer(dir.path().to_path_buf(), url, self.body_limit)
            .resolve()
            .map_err(|e| anyhow!("{e}"))?;
        self.dirs.push(dir);
        Ok(true)
    }

    async fn launch(&mut self) -> Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = launch_with_listener(
            self.settings.clone(),
            Arc::new(self.clock.clone()),
            listener,
        )
        .await?;
        for p in &self.proxies {
            p.set_upstream(server.addr);
        }
        self.server = Some(server);
        Ok(())
    }

    fn server(&self) -> Result<&Server> {
        self.server.as_ref().context("the server is stopped")
    }

    /// Where the server listens now.
    pub fn addr(&self) -> Result<SocketAddr> {
        Ok(self.server()?.addr)
    }

    /// The server's state (store, keys), for what a test cannot do over HTTP.
    pub fn state(&self) -> Result<&AppState> {
        Ok(&self.server()?.state)
    }

    /// The server's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The server's date.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// How many times the server was restarted or reset.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// A fault proxy in front of this server, kept pointed at it across restarts.
    pub async fn proxy(&mut self, seed: u64) -> Result<Proxy> {
        let p = Proxy::start(self.addr()?, seed).await?;
        self.proxies.push(p.clone());
        Ok(p)
    }

    /// Stops the server and starts it again on the same data (same master
    /// key file, same database) on a new port; proxies follow.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.restarts += 1;
        self.launch().await
    }

    /// Stops the server (proxies then cannot reach anything until a restart).
    pub fn stop(&mut self) {
        drop(self.server.take());
        // Drop keep-alive connections to the stopped server too.
        self.http = reqwest::Client::new();
        for p in &self.proxies {
            p.close_connections();
        }
    }

    /// Loses everything: a new server on a fresh data directory (new master
    /// key) or a fresh PostgreSQL database; proxies follow.
    pub async fn reset(&mut self) -> Result<()> {
        self.stop();
        ensure!(self.fresh_settings().await?, "PostgreSQL went away");
        self.restarts += 1;
        self.launch().await
    }

    /// Restores a user under a known id (an operator re-creating accounts
    /// after the server lost its data).
    pub async fn restore_user(
        &self,
        id: UserId,
        phone: &str,
        role: Role,
        partner: Option<PartnerId>,
    ) -> Result<()> {
        let s = self.state()?;
        let ph = PhoneNumber::parse(phone).map_err(|e| anyhow!("{e:?}"))?;
        let new = glassguard_server::store::NewUser {
            id,
            role,
            phone: &ph,
            name: Some("Restored"),
            email: None,
            partner_id: partner,
            service_centre: None,
        };
        s.store
            .create_user(&s.keys, &new, s.clock.now(), &Default::default())
            .await?
            .context("phone already in use")?;
        Ok(())
    }

    /// The SQLite database file (SQLite backends only).
    pub fn sqlite_file(&self) -> Result<PathBuf> {
        match &self.settings.database {
            glassguard_server::config::DatabaseUrl::Sqlite(p) => Ok(p.clone()),
            glassguard_server::config::DatabaseUrl::Postgres(_) => bail!("not SQLite"),
        }
    }

    /// An online backup of the SQLite database to `to` (`VACUUM INTO`).
    pub async fn backup_sqlite(&self, to: &std::path::Path) -> Result<()> {
        self.sqlite_file()?;
        let to = to.to_str().context("backup path is not UTF-8")?;
        ensure!(!to.contains('\''), "backup path has a quote");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM INTO '{to}'")))
            .execute(self.state()?.store.reader())
            .await?;
        Ok(())
    }

    /// Stops the server and starts it again on a copy of the backup (as an
    /// operator restoring a backup would; same master key); proxies follow.
    /// The copy gets a new file name: the stopped server's last tasks may
    /// still hold the old file open.
    pub async fn restore_sqlite(&mut self, from: &std::path::Path) -> Result<()> {
        let db = self.sqlite_file()?;
        self.stop();
        let restored = db.with_file_name(format!("restored-{}.db", self.restarts + 1));
        std::fs::copy(from, &restored).context("restore the backup")?;
        self.settings.database = glassguard_server::config::DatabaseUrl::Sqlite(restored);
        self.restarts += 1;
        self.launch().await
    }

    /// Delivers queued SMS now and waits for those the background worker
    /// took, so the inbox is complete when this returns.
    pub async fn deliver_sms(&self) -> Result<()> {
        let s = self.state()?;
        let inbox = DevInbox::new(s.store.clone(), s.keys.clone(), s.clock.clone());
        for i in 1..=4000 {
            while drain_once(&s.store, &s.keys, s.clock.as_ref(), &inbox).await > 0 {}
            if s.store.pending_notifications().await? == 0 {
                return Ok(());
            }
            if i % 100 == 0 {
                // A stopped server's worker may have leased messages it never
                // sent: they wait out the one-minute lease.
                self.clock.advance(chrono::Duration::seconds(61));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("the SMS outbox did not drain")
    }

    /// The newest OTP sent to `phone`.
    pub async fn last_otp(&self, phone: &str) -> Result<String> {
        self.deliver_sms().await?;
        let s = self.state()?;
        let to = PhoneNumber::parse(phone).map_err(|e| anyhow!("{e:?}"))?;
        // Newest first; a claim's stage message may land after the code.
        let msgs = s.store.inbox(&s.keys, Some(&to), 50).await?;
        msgs.iter()
            .find_map(|m| {
                m.body
                    .split_whitespace()
                    .next()
                    .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(str::to_owned)
            .with_context(|| {
                let seen: Vec<String> = msgs
                    .iter()
                    .take(5)
                    .map(|m| {
                        format!(
                            "{} {}",
                            m.created_at,
                            m.body.chars().take(40).collect::<String>()
                        )
                    })
                    .collect();
                format!("no OTP in the last SMS to {phone}: {seen:#?}")
            })
    }

    /// Sends one request straight to the server (not through a proxy).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.addr()?));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    /// `POST`, expecting a success.
    pub async fn post_ok(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Value> {
        let (s, b) = self.call(Method::POST, path, token, Some(body)).await?;
        ensure!(s.is_success(), "POST {path}: {s} {b}");
        Ok(b)
    }

    /// `GET`, expecting a success, decoded.
    pub async fn get_ok<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T> {
        let (s, b) = self.call(Method::GET, path, Some(token), None).await?;
        ensure!(s.is_success(), "GET {path}: {s} {b}");
        serde_json::from_value(b.clone()).with_context(|| format!("GET {path}: {b}"))
    }

    /// Asks for an OTP over HTTP and reads it from the inbox; within the
    /// one-send-per-minute limit, moves the clock instead of waiting.
    pub async fn otp(&self, phone: &str, purpose: OtpPurpose) -> Result<String> {
        let body = json!({"phone": phone, "purpose": purpose});
        // Older messages first, so the code is the newest one.
        self.deliver_sms().await?;
        for _ in 0..4 {
            let (s, b) = self
                .call(Method::POST, "/v1/auth/otp", None, Some(&body))
                .await?;
            if s == StatusCode::ACCEPTED {
                return self.last_otp(phone).await;
            }
            ensure!(
                s == StatusCode::TOO_MANY_REQUESTS,
                "OTP for {phone}: {s} {b}"
            );
            let wait = b["retry_after_seconds"].as_i64().unwrap_or(60) + 1;
            self.clock.advance(chrono::Duration::seconds(wait));
        }
        bail!("OTP for {phone}: still rate limited")
    }

    /// Signs in over HTTP (a browser user); returns the access token.
    pub async fn sign_in(&self, phone: &str) -> Result<String> {
        let code = self.otp(phone, OtpPurpose::SignIn).await?;
        let b = self
            .post_ok(
                "/v1/auth/sign-in",
                None,
                &json!({"phone": phone, "code": code, "device_id": DeviceId::new()}),
            )
            .await?;
        let s: Session = serde_json::from_value(b)?;
        Ok(s.access_token)
    }

    /// Creates a user of an insurer role straight in the store (as the CLI
    /// does for the first admin).
    pub async fn seed_user(&self, phone: &str, role: Role, name: &str) -> Result<UserId> {
        let s = self.state()?;
        let ph = PhoneNumber::parse(phone).map_err(|e| anyhow!("{e:?}"))?;
        let new = glassguard_server::store::NewUser {
            id: UserId::new(),
            role,
            phone: &ph,
            name: Some(name),
            email: None,
            partner_id: None,
            service_centre: None,
        };
        let user = s
            .store
            .create_user(&s.keys, &new, s.clock.now(), &Default::default())
            .await?
            .context("phone already in use")?;
        Ok(user.id)
    }

    /// Policies as `token`'s user sees them on the server.
    pub async fn policies(&self, token: &str) -> Result<Vec<Policy>> {
        Ok(self
            .get_ok::<Page<Policy>>("/v1/policies", token)
            .await?
            .items)
    }

    /// Everything `token`'s user may see, pulled from the start of the
    /// change feed (paginated, unlike the list endpoints, which stop at 500):
    /// the latest state of each entity, once.
    pub async fn pull_everything(&self, token: &str) -> Result<Vec<Change>> {
        let mut cursor: Option<String> = None;
        let mut latest: BTreeMap<String, (usize, Change)> = BTreeMap::new();
        let mut n = 0usize;
        for _ in 0..10_000 {
            let path = match &cursor {
                Some(c) => format!("/v1/sync/pull?limit=1000&cursor={c}"),
                None => "/v1/sync/pull?limit=1000".to_owned(),
            };
            let page: PullResponse = self.get_ok(&path, token).await?;
            ensure!(
                !page.resync,
                "a pull from the start was answered with a resync"
            );
            for c in page.changes {
                let key = match &c {
                    Change::Policy(p) => format!("policy/{}", p.id),
                    Change::Claim(c) => format!("claim/{}", c.id),
                    Change::Job(j) => format!("claim/{}", j.claim.id),
                    Change::Voucher(v) => format!("voucher/{}", v.id),
                };
                n += 1;
                latest.insert(key, (n, c));
            }
            cursor = Some(page.cursor);
            if !page.has_more {
                let mut all: Vec<_> = latest.into_values().collect();
                all.sort_by_key(|(n, _)| *n);
                return Ok(all.into_iter().map(|(_, c)| c).collect());
            }
        }
        bail!("the feed never ended")
    }

    /// Rows in a server table, counted in the database (a cross-check that
    /// nothing exists twice or out of sight of the API).
    pub async fn count_rows(&self, table: &str) -> Result<i64> {
        ensure!(
            table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "not a table name: {table}"
        );
        Ok(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table}"
        )))
        .fetch_one(self.state()?.store.reader())
        .await?)
    }

    /// Claims as `token`'s user sees them on the server.
    pub async fn claims(&self, token: &str) -> Result<Vec<Claim>> {
        Ok(self.get_ok::<Page<Claim>>("/v1/claims", token).await?.items)
    }

    /// A claim's timeline.
    pub async fn timeline(&self, claim: ClaimId, token: &str) -> Result<Vec<ClaimEvent>> {
        Ok(self
            .get_ok::<Page<ClaimEvent>>(&format!("/v1/claims/{claim}/timeline"), token)
            .await?
            .items)
    }

    /// A technician's jobs on the server.
    pub async fn jobs(&self, token: &str) -> Result<Vec<Job>> {
        Ok(self.get_ok::<Page<Job>>("/v1/jobs", token).await?.items)
    }

    /// A partner's commission ledger.
    pub async fn commission(&self, partner: PartnerId, token: &str) -> Result<CommissionLedger> {
        self.get_ok(&format!("/v1/partners/{partner}/commission"), token)
            .await
    }

    /// The adjuster reviews, approves and allocates every submitted claim
    /// to `technician`. Returns how many it moved.
    pub async fn allocate_submitted(&self, adjuster: &str, technician: UserId) -> Result<usize> {
        let queue: Page<Claim> = self.get_ok("/v1/claims?state=submitted", adjuster).await?;
        for c in &queue.items {
            for (action, from, extra) in [
                ("start_review", "submitted", json!({})),
                ("approve", "under_review", json!({"reason": "photos match"})),
                ("allocate", "approved", json!({"technician_id": technician})),
            ] {
                let mut body = json!({"action": action, "expected_state": from});
                if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                    b.extend(e.clone());
                }
                self.post_ok(
                    &format!("/v1/claims/{}/transitions", c.id),
                    Some(adjuster),
                    &body,
                )
                .await?;
            }
        }
        Ok(queue.items.len())
    }
}

/// The people around the devices, signed in over HTTP where they use a browser.
#[derive(Debug, Clone)]
pub struct Team {
    /// Admin's access token.
    pub admin: String,
    /// Adjuster's access token.
    pub adjuster: String,
    /// The technician's user id.
    pub technician: UserId,
    /// The approved shop.
    pub partner: PartnerId,
    /// The shop owner's access token.
    pub owner: String,
}

fn gstin(pan: &str) -> Result<String> {
    let body = format!("27{pan}1Z");
    let c = glassguard_protocol::gstin::check_character(body.as_bytes())
        .context("GSTIN check character")? as char;
    Ok(format!("{body}{c}"))
}

impl Team {
    /// Admin, adjuster, technician; a shop registered by [`OWNER`],
    /// approved, with `staff` as its counter staff.
    pub async fn create(b: &Backend, staff: &[&str]) -> Result<Team> {
        b.seed_user(ADMIN, Role::Admin, "Asha Admin").await?;
        let admin = b.sign_in(ADMIN).await?;
        b.post_ok(
            "/v1/users",
            Some(&admin),
            &json!({"phone": ADJUSTER, "name": "Arjun Adjuster", "role": "adjuster"}),
        )
        .await?;
        let tech = b
            .post_ok(
                "/v1/users",
                Some(&admin),
                &json!({"phone": TECH, "name": "Tara Tech", "role": "technician", "service_centre": "Sector 22 Service Centre"}),
            )
            .await?;
        let technician: UserId = serde_json::from_value(tech["id"].clone())?;
        let adjuster = b.sign_in(ADJUSTER).await?;
        let pan = "AAPFB1234C";
        let code = b.otp(OWNER, OtpPurpose::PartnerRegistration).await?;
        let reg = b
            .post_ok(
                "/v1/partners",
                None,
                &json!({
                    "legal_name": "Bhatia Mobile Gallery",
                    "gstin": gstin(pan)?,
                    "pan": pan,
                    "address": {"line1": "Shop 4, Sector 17 Market", "city": "Chandigarh", "state": "Chandigarh", "pin": "160017"},
                    "contact_name": "Harpreet Singh Bhatia",
                    "contact_phone": OWNER,
                    "otp_code": code,
                    "payout": {"account_name": "Bhatia Mobile Gallery", "account_number": "50100234567891", "ifsc": "HDFC0001234"},
                    "device_id": DeviceId::new(),
                }),
            )
            .await?;
        let reg: PartnerRegistered = serde_json::from_value(reg)?;
        let partner = reg.partner.id;
        let owner = reg.session.access_token;
        b.post_ok(
            &format!("/v1/partners/{partner}/approve"),
            Some(&admin),
            &json!({"reason": "KYC checked"}),
        )
        .await?;
        for (i, phone) in staff.iter().enumerate() {
            b.post_ok(
                &format!("/v1/partners/{partner}/staff"),
                Some(&owner),
                &json!({"phone": phone, "name": format!("Counter {i}"), "role": "partner_staff"}),
            )
            .await?;
        }
        Ok(Team {
            admin,
            adjuster,
            technician,
            partner,
            owner,
        })
    }
}

impl Team {
    /// Signs the browser users in again, e.g. after the test moved the
    /// server's clock past their access tokens' life.
    pub async fn sign_in_again(&mut self, b: &Backend) -> Result<()> {
        self.admin = b.sign_in(ADMIN).await?;
        self.adjuster = b.sign_in(ADJUSTER).await?;
        self.owner = b.sign_in(OWNER).await?;
        Ok(())
    }
}

/// Backoff for devices under test: the same shape, milliseconds instead of minutes.
pub fn test_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        max_retry_after: Duration::from_millis(50),
    }
}

/// A device: a core on its own encrypted store, behind its own proxy.
#[derive(Debug)]
pub struct Device {
    /// For messages.
    pub name: String,
    /// Who signs in on it.
    pub phone: String,
    /// Its network.
    pub proxy: Proxy,
    dir: tempfile::TempDir,
    key: [u8; 32],
    /// The insurer's public key its photos are sealed to.
    insurer: Option<[u8; 32]>,
    core: Arc<Core>,
    reopened: usize,
}

fn open_core(
    dir: &std::path::Path,
    key: [u8; 32],
    url: String,
    insurer: Option<[u8; 32]>,
) -> Result<Core> {
    Core::open_with(
        Config {
            data_dir: dir.to_path_buf(),
            db_key: DbKey::new(key),
            server_url: url,
            pinned_server_key: None,
            insurer_public_key: insurer,
        },
        test_backoff(),
    )
    .context("open the core")
}

impl Device {
    /// A new device (fresh store, fresh device id) for `phone`, not signed in.
    pub async fn new(backend: &mut Backend, name: &str, phone: &str, seed: u64) -> Result<Device> {
        let proxy = backend.proxy(seed).await?;
        let dir = tempfile::tempdir()?;
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = (seed as u8).wrapping_add(i as u8).wrapping_mul(31);
        }
        // The sealing key, as the app would fetch it from `GET /v1/keys/sealing`.
        let insurer = backend
            .state()
            .ok()
            .map(|s| s.insurer_key.public_key().to_bytes());
        let core = Arc::new(open_core(dir.path(), key, proxy.url(), insurer)?);
        Ok(Device {
            insurer,
            name: name.to_owned(),
            phone: phone.to_owned(),
            proxy,
            dir,
            key,
            core,
            reopened: 0,
        })
    }

    /// A device signed in as `phone`, with the catalog fetched.
    pub async fn signed_in(
        backend: &mut Backend,
        name: &str,
        phone: &str,
        seed: u64,
    ) -> Result<Device> {
        let d = Device::new(backend, name, phone, seed).await?;
        d.sign_in(backend).await?;
        d.core.refresh_plans().await?;
        Ok(d)
    }

    /// The core.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// A shared handle to the core (to run a call in a task that may be aborted).
    pub fn shared(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// How many times it was killed and reopened.
    pub fn reopened(&self) -> usize {
        self.reopened
    }

    /// Kills the app (drops the core, aborting anything in flight that holds
    /// no other handle) and opens it again on the same database file and key.
    pub fn kill_and_reopen(&mut self) -> Result<()> {
        let fresh = open_core(self.dir.path(), self.key, self.proxy.url(), self.insurer);
        // Replacing drops the old core; opening first keeps `self` whole if
        // opening fails. SQLite allows the second connection meanwhile.
        self.core = Arc::new(fresh?);
        self.reopened += 1;
        Ok(())
    }

    /// Kills the app and keeps its files, e.g. to look at or copy them.
    pub fn kill(self) -> StoppedDevice {
        let Device {
            name,
            phone,
            proxy,
            dir,
            key,
            insurer,
            core,
            reopened,
        } = self;
        drop(core);
        StoppedDevice {
            name,
            phone,
            proxy,
            dir,
            key,
            insurer,
            reopened,
        }
    }

    /// Signs in through the core (OTP by SMS, read from the dev inbox).
    pub async fn sign_in(&self, backend: &Backend) -> Result<Me> {
        let phone = PhoneNumber::parse(&self.phone).map_err(|e| anyhow!("{e:?}"))?;
        backend.deliver_sms().await?;
        let mut sent = false;
        for _ in 0..4 {
            match self
                .core
                .request_otp(phone.clone(), OtpPurpose::SignIn)
                .await
            {
                Ok(_) => {
                    sent = true;
                    break;
                }
                Err(glassguard_core::Error::RateLimited { retry_after }) => {
                    let wait = retry_after.unwrap_or(Duration::from_secs(60)).as_secs() + 1;
                    backend
                        .clock
                        .advance(chrono::Duration::seconds(wait as i64));
                }
                Err(e) => return Err(e).context("request an OTP"),
            }
        }
        ensure!(sent, "{}: OTP still rate limited", self.name);
        let code = backend.last_otp(&self.phone).await?;
        self.core.sign_in(phone, code).await.context("sign in")
    }
}

/// A device whose app is not running: its files and key, and its network.
#[derive(Debug)]
pub struct StoppedDevice {
    /// For messages.
    pub name: String,
    /// Who signs in on it.
    pub phone: String,
    /// Its network.
    pub proxy: Proxy,
    dir: tempfile::TempDir,
    key: [u8; 32],
    insurer: Option<[u8; 32]>,
    reopened: usize,
}

impl StoppedDevice {
    /// The data directory (the encrypted database lives here).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The database key.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// Starts the app again on the same files.
    pub fn reopen(self) -> Result<Device> {
        let core = Arc::new(open_core(
            self.dir.path(),
            self.key,
            self.proxy.url(),
            self.insurer,
        )?);
        Ok(Device {
            name: self.name,
            phone: self.phone,
            proxy: self.proxy,
            dir: self.dir,
            key: self.key,
            insurer: self.insurer,
            core,
            reopened: self.reopened + 1,
        })
    }
}

/// A valid IMEI, different for every `n`.
pub fn imei(n: u64) -> Result<Imei> {
    let payload = format!("35{:012}", n % 1_000_000_000_000);
    let d = glassguard_protocol::imei::luhn_check_digit(payload.as_bytes());
    Imei::parse(&format!("{payload}{d}")).map_err(|e| anyhow!("{e:?}"))
}

/// A customer's phone number, different for every `n`.
pub fn customer_phone(n: u64) -> String {
    format!("+9198{:08}", n % 100_000_000)
}

/// A sale of device number `n` to `customer`, bought on `purchased`
/// (the invoice date, which the staff enter, not the tablet's clock).
pub fn sale(n: u64, customer: &str, purchased: NaiveDate) -> Result<OfflineSale> {
    Ok(OfflineSale {
        id: PolicyId::new(),
        customer_phone: PhoneNumber::parse(customer).map_err(|e| anyhow!("{e:?}"))?,
        customer_name: format!("Customer {n}"),
        customer_otp: None,
        imei: imei(n)?,
        brand: "Xiaomi".into(),
        model: "Redmi Note 13".into(),
        device_price: Money::from_rupees(14_999).map_err(|e| anyhow!("{e:?}"))?,
        device_purchase_date: purchased,
        invoice_ref: format!("INV-{n}"),
        screen_photo_ref: format!("sha256-screen-{n}"),
        plan_id: "screen-1y".into(),
    })
}

/// A policy sold over the API by the shop's `staff` to `customer` (device
/// number `n`), with the server's clock then moved past the waiting period.
pub async fn sold_policy(b: &Backend, staff: &str, customer: &str, n: u64) -> Result<PolicyId> {
    let staff_token = b.sign_in(staff).await?;
    let mut s = sale(n, customer, b.today())?;
    s.customer_otp = Some(b.otp(customer, OtpPurpose::SaleConsent).await?);
    let policy = s.id;
    b.post_ok("/v1/sales", Some(&staff_token), &serde_json::to_value(&s)?)
        .await?;
    b.clock.advance(chrono::Duration::days(10));
    Ok(policy)
}

/// [`sold_policy`], and a claim filed on it by the customer over the API.
/// Returns the customer's access token and the claim's id.
pub async fn filed_claim(
    b: &Backend,
    staff: &str,
    customer: &str,
    n: u64,
) -> Result<(String, glassguard_protocol::ClaimId)> {
    let policy = sold_policy(b, staff, customer, n).await?;
    let token = b.sign_in(customer).await?;
    let claim = glassguard_protocol::ClaimId::new();
    b.post_ok(
        "/v1/claims",
        Some(&token),
        &json!({"id": claim, "policy_id": policy, "incident_at": b.now() - chrono::Duration::hours(2),
                "narrative": "Dropped it on the bus steps"}),
    )
    .await?;
    Ok((token, claim))
}
