//! `cargo xtask bench api`: throughput and tail latency of the API on SQLite,
//! against a bare axum handler on the same machine as the anchor.
//!
//! One process, one multi-thread tokio runtime:
//!
//! 1. the real server on `127.0.0.1:0`, SQLite in a temporary directory and a
//!    [`ManualClock`]; an admin, an adjuster, an approved partner with staff
//!    and a customer with a policy are set up over HTTP as a client would,
//!    the clock moves ten days and the customer files one claim;
//! 2. a bare axum app (`GET /bare`, a fixed ~600-byte JSON body) on another
//!    listener;
//! 3. a load generator: [`CONNECTIONS`] keep-alive HTTP/1.1 connections
//!    (hyper 1 client), each a loop of requests. The bare handler and the
//!    authenticated claim read run for [`WARM_UP`] then [`MEASURE`]; claim
//!    creation files one claim on each of [`CREATE_MEASURED`] policies made
//!    beforehand (straight through the store: what is measured is filing,
//!    not selling), after [`CREATE_WARM_UP`] untimed ones.
//!
//! It prints a table and writes `api.json` to `$GLASSGUARD_BENCH_OUT`
//! (default `<workspace>/target/bench`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use glassguard_protocol::api::{OtpPurpose, PartnerRegistered, Session};
use glassguard_protocol::{ClaimId, DeviceId, Imei, PhoneNumber, PolicyId, Role};
use glassguard_server::clock::{Clock, ManualClock};
use glassguard_server::config::Layer;
use glassguard_server::notifier::{DevInbox, drain_once};
use glassguard_server::plans::{PlanTerms, check_sale};
use glassguard_server::store::{AuditRecord, NewPolicy, NewUser, SaleOutcome};
use glassguard_server::{Server, launch_with_listener};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Concurrent keep-alive connections.
const CONNECTIONS: usize = 32;
/// Untimed load before each timed run.
const WARM_UP: Duration = Duration::from_secs(1);
/// The timed run for the bare handler and the claim read.
const MEASURE: Duration = Duration::from_secs(5);
/// Untimed claim filings before the timed ones.
const CREATE_WARM_UP: usize = 200;
/// Timed claim filings (one fresh policy each).
const CREATE_MEASURED: usize = 2_000;
/// The diagnostic store-only runs.
const DIAG_MEASURE: Duration = Duration::from_secs(2);
/// The target: the claim read at this fraction of the bare handler's rate or more.
const TARGET_READ_RATIO: f64 = 0.25;

const ADMIN: &str = "+919100000001";
const ADJUSTER: &str = "+919100000002";
const OWNER: &str = "+919100000004";
const STAFF: &str = "+919100000005";
const CUSTOMER: &str = "+919100000006";
const CUSTOMER_NAME: &str = "Kavya Ramanathan";
const PAN: &str = "AAPFB1234C";
const PLAN: &str = "screen-1y";
const DEVICE_PRICE_PAISE: i64 = 1_849_900;

/// The anchor's body: about the size of a claim as the API returns it.
const BARE_BODY: &str = r#"{"id":"0197a3c2-5b1e-7c3d-9f20-6a1b2c3d4e5f","policy_id":"0197a3c2-4a0d-7b2c-8e10-5f0a1b2c3d4e","customer_id":"0197a3c2-3f9c-7a1b-9d00-4e9f0a1b2c3d","partner_id":"0197a3c2-2e8b-7f0a-8cf0-3d8e9f0a1b2c","state":"submitted","resolution":null,"incident_at":"2026-03-14T09:21:40.512Z","narrative":"Dropped on the bus steps, screen cracked across","contact_phone":"+919100000006","photo_refs":["sha256-d1","sha256-d2"],"technician_id":null,"reason":null,"documents_requested":[],"voucher_id":null,"created_at":"2026-03-14T12:21:40.512Z","updated_at":"2026-03-14T12:21:40.512Z","links":{"self":"/v1/claims/0197a3c2-5b1e-7c3d-9f20-6a1b2c3d4e5f","timeline":"/v1/claims/0197a3c2-5b1e-7c3d-9f20-6a1b2c3d4e5f/timeline"}}"#;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(run())
}

/// The figures of one scenario.
struct Figures {
    name: &'static str,
    requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Figures {
    fn new(name: &'static str, seconds: f64, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self {
            name,
            requests: latencies.len(),
            seconds,
            latencies,
        }
    }

    fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The `q` quantile (nearest rank) in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = (self.latencies.len() as f64 * q).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

async fn run() -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let settings = Layer {
        data_dir: Some(dir.path().to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        ..Layer::default()
    }
    .resolve()
    .context("bench settings")?;
    let clock = ManualClock::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = launch_with_listener(settings, Arc::new(clock.clone()), listener).await?;
    let setup = Setup {
        server: &server,
        clock: &clock,
        base: format!("http://{}", server.addr),
        http: reqwest::Client::new(),
    };
    let fixture = setup.story().await?;

    let bare_addr = spawn_bare().await?;
    println!(
        "setup done in {:.1} s: {} policies ready for claims, claim body {} bytes, bare body {} bytes",
        started.elapsed().as_secs_f64(),
        fixture.spare_policies.len(),
        fixture.claim_body_len,
        BARE_BODY.len()
    );

    // 1. The anchor.
    let bare = timed_run(
        "bare axum GET /bare",
        bare_addr,
        Arc::new(|| get("/bare", None)),
    )
    .await?;

    // 2. The authenticated claim read.
    let path: Arc<str> = format!("/v1/claims/{}", fixture.claim_id).into();
    let token: Arc<str> = fixture.customer_token.clone().into();
    let read = timed_run(
        "GET /v1/claims/{id}",
        server.addr,
        Arc::new(move || get(&path, Some(&*token))),
    )
    .await?;

    // 3. Diagnostics: the read's two store calls alone, without HTTP.
    setup.drain_sms().await;
    let diag_claim = store_claim_run(&server, fixture.claim_id).await?;
    let diag_audit = store_audit_run(&server, fixture.claim_id).await?;

    // 4. Claim creation, one fresh policy per claim.
    setup.drain_sms().await;
    let create = create_run(&server, &clock, &fixture).await?;

    let read_ratio = if bare.rps() > 0.0 {
        read.rps() / bare.rps()
    } else {
        0.0
    };
    print_table(
        &[&bare, &read, &create, &diag_claim, &diag_audit],
        bare.rps(),
    );
    println!(
        "\nread_ratio = {read_ratio:.3} (target >= {TARGET_READ_RATIO}): {}",
        if read_ratio >= TARGET_READ_RATIO {
            "met"
        } else {
            "NOT MET"
        }
    );
    println!(
        "diagnostic rows call the store directly ({CONNECTIONS} tasks, no HTTP): each HTTP claim read does one store.claim and one store.audit (a write transaction on the single SQLite writer)"
    );

    let round = |x: f64, places: i32| {
        let f = 10f64.powi(places);
        (x * f).round() / f
    };
    let report = json!({
        "claim_read_rps": round(read.rps(), 1),
        "claim_read_p99_ms": round(read.quantile_ms(0.99), 3),
        "claim_create_rps": round(create.rps(), 1),
        "claim_create_p99_ms": round(create.quantile_ms(0.99), 3),
        "bare_rps": round(bare.rps(), 1),
        "bare_p99_ms": round(bare.quantile_ms(0.99), 3),
        "read_ratio": round(read_ratio, 4),
    });
    let out_dir = match std::env::var_os("GLASSGUARD_BENCH_OUT").filter(|v| !v.is_empty()) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("bench"),
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out = out_dir.join("api.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "\nwrote {} (total {:.1} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    drop(server);
    drop(dir);
    Ok(())
}

fn print_table(rows: &[&Figures], bare_rps: f64) {
    println!(
        "\n{:<34} {:>9} {:>8} {:>11} {:>9} {:>9} {:>8}",
        "scenario", "requests", "seconds", "rps", "p50 ms", "p99 ms", "vs bare"
    );
    println!("{}", "-".repeat(94));
    for f in rows {
        let ratio = if bare_rps > 0.0 {
            f.rps() / bare_rps
        } else {
            0.0
        };
        println!(
            "{:<34} {:>9} {:>8.2} {:>11.1} {:>9.3} {:>9.3} {:>8.3}",
            f.name,
            f.requests,
            f.seconds,
            f.rps(),
            f.quantile_ms(0.50),
            f.quantile_ms(0.99),
            ratio
        );
    }
}

// ---------------------------------------------------------------------------
// Setup over HTTP, as a client would.

struct Setup<'a> {
    server: &'a Server,
    clock: &'a ManualClock,
    base: String,
    http: reqwest::Client,
}

struct Fixture {
    customer_token: String,
    claim_id: ClaimId,
    claim_body_len: usize,
    /// Policies of the customer with no claim yet, one per claim to file.
    spare_policies: Vec<PolicyId>,
}

fn imei(n: u64) -> String {
    let payload = format!("86{n:012}");
    let d = glassguard_protocol::imei::luhn_check_digit(payload.as_bytes());
    format!("{payload}{d}")
}

fn gstin(pan: &str) -> Result<String> {
    let body = format!("27{pan}1Z");
    let c = glassguard_protocol::gstin::check_character(body.as_bytes())
        .context("no GSTIN check character")?;
    Ok(format!("{body}{}", c as char))
}

impl Setup<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    /// POSTs and insists on `want`.
    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        want: u16,
    ) -> Result<Value> {
        let (s, b) = self
            .call(reqwest::Method::POST, path, token, Some(body))
            .await?;
        ensure!(s == want, "POST {path}: expected {want}, got {s}: {b}");
        Ok(b)
    }

    /// Delivers queued SMS now (the worker would, a moment later).
    async fn drain_sms(&self) {
        let s = &self.server.state;
        let inbox = DevInbox::new(s.store.clone(), s.keys.clone(), s.clock.clone());
        while drain_once(&s.store, &s.keys, s.clock.as_ref(), &inbox).await > 0 {}
    }

    /// Requests an OTP (moving the clock past the per-phone send limit if
    /// needed) and reads the code from the dev inbox.
    async fn otp(&self, phone: &str, purpose: OtpPurpose) -> Result<String> {
        let body = json!({"phone": phone, "purpose": purpose});
        let (mut s, mut b) = self
            .call(reqwest::Method::POST, "/v1/auth/otp", None, Some(&body))
            .await?;
        if s == 429 && b["code"] == "otp_rate_limited" {
            let wait = b["retry_after_seconds"].as_i64().unwrap_or(60);
            self.clock.advance(chrono::Duration::seconds(wait + 1));
            (s, b) = self
                .call(reqwest::Method::POST, "/v1/auth/otp", None, Some(&body))
                .await?;
        }
        ensure!(s == 202, "OTP for {phone}: {s} {b}");
        self.drain_sms().await;
        let st = &self.server.state;
        let to = PhoneNumber::parse(phone).map_err(|e| anyhow::anyhow!("{phone}: {e:?}"))?;
        let msgs = st.store.inbox(&st.keys, Some(&to), 1).await?;
        let text = msgs.first().map(|m| m.body.clone()).unwrap_or_default();
        text.split_whitespace()
            .next()
            .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
            .with_context(|| format!("no OTP in {text:?}"))
    }

    async fn sign_in(&self, phone: &str) -> Result<Session> {
        let code = self.otp(phone, OtpPurpose::SignIn).await?;
        let b = self
            .post(
                "/v1/auth/sign-in",
                None,
                &json!({"phone": phone, "code": code, "device_id": DeviceId::new()}),
                200,
            )
            .await?;
        Ok(serde_json::from_value(b)?)
    }

    /// The story up to a filed claim, plus spare policies for claim creation.
    async fn story(&self) -> Result<Fixture> {
        let st = &self.server.state;
        // The first admin is made directly, as the CLI would.
        let admin_phone = PhoneNumber::parse(ADMIN).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let new_admin = NewUser {
            id: glassguard_protocol::UserId::new(),
            role: Role::Admin,
            phone: &admin_phone,
            name: Some("Asha Admin"),
            email: None,
            partner_id: None,
            service_centre: None,
        };
        st.store
            .create_user(
                &st.keys,
                &new_admin,
                st.clock.now(),
                &AuditRecord::default(),
            )
            .await?
            .context("admin exists")?;
        let admin = self.sign_in(ADMIN).await?.access_token;
        self.post(
            "/v1/users",
            Some(&admin),
            &json!({"phone": ADJUSTER, "name": "Arjun Adjuster", "role": "adjuster"}),
            201,
        )
        .await?;

        // The shop registers, is approved, adds counter staff.
        let code = self.otp(OWNER, OtpPurpose::PartnerRegistration).await?;
        let registration = json!({
            "legal_name": "Bhatia Mobile Gallery",
            "gstin": gstin(PAN)?,
            "pan": PAN,
            "address": {"line1": "Shop 4, Sector 17 Market", "city": "Chandigarh", "state": "Chandigarh", "pin": "160017"},
            "contact_name": "Harpreet Singh Bhatia",
            "contact_phone": OWNER,
            "otp_code": code,
            "payout": {"account_name": "Bhatia Mobile Gallery", "account_number": "50100234567891", "ifsc": "HDFC0001234"},
            "device_id": DeviceId::new(),
        });
        let registered: PartnerRegistered =
            serde_json::from_value(self.post("/v1/partners", None, &registration, 201).await?)?;
        let owner = registered.session.access_token;
        let partner_id = registered.partner.id;
        self.post(
            &format!("/v1/partners/{partner_id}/approve"),
            Some(&admin),
            &json!({"reason": "KYC checked"}),
            200,
        )
        .await?;
        self.post(
            &format!("/v1/partners/{partner_id}/staff"),
            Some(&owner),
            &json!({"phone": STAFF, "name": "Sunil Kumar", "role": "partner_staff"}),
            201,
        )
        .await?;
        let staff = self.sign_in(STAFF).await?;

        // The sale at the counter, with the customer's consent by OTP.
        let otp = self.otp(CUSTOMER, OtpPurpose::SaleConsent).await?;
        let policy_id = PolicyId::new();
        let sale = json!({
            "id": policy_id,
            "customer_phone": CUSTOMER,
            "customer_name": CUSTOMER_NAME,
            "customer_email": "kavya.r@example.in",
            "customer_otp": otp,
            "imei": imei(0),
            "brand": "Samsung",
            "model": "Galaxy A55",
            "device_price": DEVICE_PRICE_PAISE,
            "device_purchase_date": st.clock.now().date_naive().to_string(),
            "invoice_ref": "INV/2026/00421",
            "screen_photo_ref": "sha256-8a1f",
            "plan_id": PLAN,
        });
        self.post("/v1/sales", Some(&staff.access_token), &sale, 201)
            .await?;

        // More policies for the same customer, straight through the store:
        // claim creation needs one policy per claim, and what is measured is
        // filing, not selling.
        let plan = st
            .catalog
            .get(PLAN)
            .with_context(|| format!("no plan {PLAN}"))?;
        let customer_phone = PhoneNumber::parse(CUSTOMER).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let price = glassguard_protocol::Money::from_paise(DEVICE_PRICE_PAISE)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let now = st.clock.now();
        let today = now.date_naive();
        let (premium, start, end) =
            check_sale(plan, price, today, today).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut spare_policies = Vec::with_capacity(CREATE_WARM_UP + CREATE_MEASURED);
        for i in 0..(CREATE_WARM_UP + CREATE_MEASURED) {
            let id = PolicyId::new();
            let device = Imei::parse(&imei(i as u64 + 1)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let p = NewPolicy {
                id,
                certificate_number: format!("GG-BENCH-{i:06}"),
                plan_id: &plan.id,
                terms: PlanTerms::from(plan),
                partner_id: Some(partner_id),
                sold_by: Some(staff.user.id),
                customer_phone: &customer_phone,
                customer_name: CUSTOMER_NAME,
                customer_email: None,
                imei: device,
                brand: "Samsung",
                model: "Galaxy A55",
                device_price: price,
                premium,
                commission: premium.basis_points(plan.commission_bp),
                purchase_date: today,
                start,
                end,
                invoice_ref: "INV/BENCH",
                screen_photo_ref: "sha256-bench",
            };
            let audit = AuditRecord {
                action: "policy.create".into(),
                resource_type: "policy".into(),
                resource_id: Some(id.to_string()),
                ..AuditRecord::default()
            };
            match st.store.record_sale(&st.keys, &p, now, &audit).await? {
                SaleOutcome::Issued(_) => spare_policies.push(id),
                other => bail!("pre-sale {i}: {other:?}"),
            }
        }
        self.drain_sms().await;

        // Ten days later the screen breaks; the customer files a claim.
        self.clock.advance(chrono::Duration::days(10));
        let customer = self.sign_in(CUSTOMER).await?.access_token;
        let claim_id = ClaimId::new();
        let incident = st.clock.now() - chrono::Duration::hours(3);
        let claim = json!({"id": claim_id, "policy_id": policy_id, "incident_at": incident,
            "narrative": "Dropped on the bus steps, screen cracked across", "photo_refs": ["sha256-d1", "sha256-d2"]});
        self.post("/v1/claims", Some(&customer), &claim, 201)
            .await?;
        let (s, b) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/claims/{claim_id}"),
                Some(&customer),
                None,
            )
            .await?;
        ensure!(s == 200, "claim read: {s} {b}");
        self.drain_sms().await;
        Ok(Fixture {
            customer_token: customer,
            claim_id,
            claim_body_len: b.to_string().len(),
            spare_policies,
        })
    }
}

// ---------------------------------------------------------------------------
// The anchor.

async fn spawn_bare() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/bare",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                BARE_BODY,
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bare server stopped: {e}");
        }
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// The load generator.

type Body = Full<Bytes>;
type MakeRequest = Arc<dyn Fn() -> Request<Body> + Send + Sync>;

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", "127.0.0.1");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Full::new(Bytes::new())).expect("a valid request")
}

fn post_json(path: &str, token: &str, body: Bytes) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("a valid request")
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Body>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole response; returns the status.
async fn send(sender: &mut SendRequest<Body>, req: Request<Body>) -> Result<u16> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

/// [`CONNECTIONS`] loops for [`WARM_UP`] + [`MEASURE`]; counts what completes in the measured window.
async fn timed_run(name: &'static str, addr: SocketAddr, make: MakeRequest) -> Result<Figures> {
    let t0 = Instant::now();
    let measure_from = t0 + WARM_UP;
    let measure_to = measure_from + MEASURE;
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut lat = Vec::with_capacity(16_384);
            loop {
                let start = Instant::now();
                if start >= measure_to {
                    break;
                }
                let status = send(&mut sender, make()).await?;
                let end = Instant::now();
                ensure!((200..300).contains(&status), "{name}: status {status}");
                if start >= measure_from && end <= measure_to {
                    lat.push(end - start);
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(Figures::new(name, MEASURE.as_secs_f64(), all))
}

/// Files one claim per spare policy: [`CREATE_WARM_UP`] untimed, then [`CREATE_MEASURED`] timed.
async fn create_run(server: &Server, clock: &ManualClock, fixture: &Fixture) -> Result<Figures> {
    let incident = clock.now() - chrono::Duration::hours(3);
    let bodies: Vec<Bytes> = fixture
        .spare_policies
        .iter()
        .map(|p| {
            let b = json!({"id": ClaimId::new(), "policy_id": p, "incident_at": incident,
                "narrative": "Slipped out of the pocket onto the platform; the screen shattered", "photo_refs": ["sha256-b1"]});
            Bytes::from(b.to_string())
        })
        .collect();
    let (warm, timed) = bodies.split_at(CREATE_WARM_UP.min(bodies.len()));
    let token: Arc<str> = fixture.customer_token.clone().into();
    file_all(server.addr, &token, warm.to_vec()).await?;
    let t0 = Instant::now();
    let lat = file_all(server.addr, &token, timed.to_vec()).await?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(Figures::new("POST /v1/claims (create)", secs, lat))
}

async fn file_all(addr: SocketAddr, token: &Arc<str>, bodies: Vec<Bytes>) -> Result<Vec<Duration>> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (bodies, next, token) = (bodies.clone(), next.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let req = post_json("/v1/claims", &token, body.clone());
                let start = Instant::now();
                let status = send(&mut sender, req).await?;
                lat.push(start.elapsed());
                ensure!(status == 201, "claim {i}: status {status}");
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

// ---------------------------------------------------------------------------
// Diagnostics: the store alone, no HTTP.

/// Runs `op` from [`CONNECTIONS`] tasks for [`DIAG_MEASURE`].
async fn store_run<F, Fut>(name: &'static str, op: F) -> Result<Figures>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let until = Instant::now() + DIAG_MEASURE;
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < until {
                let start = Instant::now();
                op().await?;
                lat.push(start.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(Figures::new(name, t0.elapsed().as_secs_f64(), all))
}

async fn store_claim_run(server: &Server, id: ClaimId) -> Result<Figures> {
    let state = server.state.clone();
    store_run("(diag) store.claim only", move || {
        let state = state.clone();
        async move {
            state
                .store
                .claim(&state.keys, &id)
                .await?
                .context("the claim is gone")?;
            Ok(())
        }
    })
    .await
}

async fn store_audit_run(server: &Server, id: ClaimId) -> Result<Figures> {
    let state = server.state.clone();
    let rec = Arc::new(AuditRecord {
        action: "claim.read".into(),
        resource_type: "claim".into(),
        resource_id: Some(id.to_string()),
        ..AuditRecord::default()
    });
    store_run("(diag) store.audit only", move || {
        let (state, rec) = (state.clone(), rec.clone());
        async move {
            state.store.audit(state.now(), &rec).await?;
            Ok(())
        }
    })
    .await
}
