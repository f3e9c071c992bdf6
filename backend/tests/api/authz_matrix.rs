//! The authorization matrix: every endpoint of the OpenAPI document, called
//! as every kind of caller, against the table kept next to this file
//! (`authz_matrix.tsv`: one row per endpoint, and one row per claim action
//! for `POST /v1/claims/{id}/transitions`, written `path#action`).
//!
//! Callers are relative to the row's target: `customer` owns the policy,
//! claim or voucher; `partner_staff` and `partner_admin` belong to the
//! partner that sold it (partner A, also the target of the partner rows);
//! `other_partner_admin` is the admin of another approved partner (B);
//! `technician` is allocated to the claim; `other_technician`,
//! `other_customer` (who has a policy of their own), `adjuster` and `admin`
//! complete the columns.
//!
//! A cell says `allow` or `deny`. An allowed call must succeed (2xx): each
//! call gets a body that works, and a target in a state where the request is
//! legal, so a passed authorization is not confused with a business-rule
//! refusal. A denied call must answer 401, 403 or 404. Calls that change
//! their target (filing a claim, a claim transition, redeeming a voucher)
//! get a fresh target after every success, so one caller's success never
//! spoils the next caller's attempt. Sign-out runs last: it ends the
//! callers' sessions.
//!
//! One-time codes are issued through the store rather than
//! `POST /v1/auth/otp`: by default the server allows 30 sends per hour per
//! client address, and the set-up needs more than that. The per-phone limits
//! (one a minute, five an hour) still apply; the clock is moved past them
//! and the callers' tokens refreshed, so no token outlives its 15 minutes.
//!
//! The bot's SMS webhook (`POST /v1/bot/sms`) is authenticated by the SMS
//! gateway's signature, not by a caller: every call to it is signed with
//! the server's webhook secret (and carries the caller's token as well), so
//! its row says what the authorizer decides for each kind of caller.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use glassguard_protocol::api::OtpPurpose;
use glassguard_protocol::{ClaimAction, ClaimId, DeviceId, PhoneNumber, PolicyId, Role};
use glassguard_server::store::OtpIssue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Db, TestApp, imei};
use crate::story::{registration, sale};

/// The expectation table.
const TABLE: &str = include_str!("authz_matrix.tsv");

const HEADER: &str = "method\tpath\taction_note\tanonymous\tcustomer\tother_customer\tpartner_staff\tpartner_admin\tother_partner_admin\ttechnician\tother_technician\tadjuster\tadmin";

const TRANSITIONS: &str = "/v1/claims/{id}/transitions";

/// The tus endpoints: called with tus headers (see `World::tus`).
const UPLOADS: &str = "/v1/uploads";
const UPLOAD: &str = "/v1/uploads/{id}";

/// The inbound-SMS webhook: authenticated by the gateway's signature, so
/// every caller's call is signed (see `World::signed_sms`).
const BOT_SMS: &str = "/v1/bot/sms";
const WEBHOOK_SECRET: &str = "matrix-webhook-secret-0123456789";

/// Claimable policies sold to the customer before the waiting period passes.
/// The matrix uses about 30; more are sold (and the clock moved past a new
/// waiting period) if unexpected successes use them up.
const POOL: usize = 34;

const ADMIN: &str = "+919300000001";
const ADJUSTER: &str = "+919300000002";
const TECH: &str = "+919300000003";
const OTHER_TECH: &str = "+919300000004";
const OWNER_A: &str = "+919300000005";
const STAFF_A: &str = "+919300000006";
const OWNER_B: &str = "+919300000007";
const CUSTOMER: &str = "+919300000008";
const OTHER_CUSTOMER: &str = "+919300000009";

/// The columns of the table, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Anonymous,
    Customer,
    OtherCustomer,
    PartnerStaff,
    PartnerAdmin,
    OtherPartnerAdmin,
    Technician,
    OtherTechnician,
    Adjuster,
    Admin,
}

const CALLERS: [Who; 10] = [
    Who::Anonymous,
    Who::Customer,
    Who::OtherCustomer,
    Who::PartnerStaff,
    Who::PartnerAdmin,
    Who::OtherPartnerAdmin,
    Who::Technician,
    Who::OtherTechnician,
    Who::Adjuster,
    Who::Admin,
];

impl Who {
    fn column(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Customer => "customer",
            Who::OtherCustomer => "other_customer",
            Who::PartnerStaff => "partner_staff",
            Who::PartnerAdmin => "partner_admin",
            Who::OtherPartnerAdmin => "other_partner_admin",
            Who::Technician => "technician",
            Who::OtherTechnician => "other_technician",
            Who::Adjuster => "adjuster",
            Who::Admin => "admin",
        }
    }
}

/// One row of the table.
struct Row {
    line: usize,
    method: String,
    path: String,
    expect: [bool; 10],
}

impl Row {
    /// The documented path (before any `#action`).
    fn route(&self) -> &str {
        self.path.split('#').next().unwrap_or_default()
    }

    /// The claim action of a transitions row.
    fn action(&self) -> Option<&str> {
        self.path.split_once('#').map(|(_, a)| a)
    }

    fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Calls that use up their target when they succeed.
    fn consumes_target(&self) -> bool {
        matches!(
            (self.method.as_str(), self.route()),
            ("POST", "/v1/claims" | TRANSITIONS | "/v1/vouchers/redeem")
                | ("PATCH" | "DELETE", UPLOAD)
        )
    }
}

/// The JSON recipe of a claim photo upload (turned into tus headers by `World::tus`).
fn upload_body(claim: &str, bytes: &[u8]) -> Value {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    json!({"kind": "claim_photo", "target": claim, "sha256": hex, "length": bytes.len()})
}

fn parse_table() -> Vec<Row> {
    let mut lines = TABLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().expect("authz_matrix.tsv is empty");
    assert_eq!(
        header, HEADER,
        "authz_matrix.tsv: the header must be exactly the columns this test knows"
    );
    lines
        .map(|(i, l)| {
            let line = i + 1;
            let cells: Vec<&str> = l.split('\t').collect();
            assert_eq!(
                cells.len(),
                3 + CALLERS.len(),
                "authz_matrix.tsv line {line}: {} cells, not {}",
                cells.len(),
                3 + CALLERS.len()
            );
            let mut expect = [false; 10];
            for (e, cell) in expect.iter_mut().zip(&cells[3..]) {
                *e = match *cell {
                    "allow" => true,
                    "deny" => false,
                    other => {
                        panic!("authz_matrix.tsv line {line}: {other:?} is neither allow nor deny")
                    }
                };
            }
            Row {
                line,
                method: cells[0].to_string(),
                path: cells[1].to_string(),
                expect,
            }
        })
        .collect()
}

/// The state each claim action is tried from: one where it is legal (none
/// is for `submit`, which only happens on the device).
fn tried_from(action: &str) -> Option<&'static str> {
    Some(match action {
        "submit" | "start_review" => "submitted",
        "approve" | "reject" => "under_review",
        "allocate" => "approved",
        "request_documents" | "start_repair" | "issue_voucher" => "allocated",
        "resolve_repaired" | "resolve_exchanged" => "in_repair",
        "close" => "resolved",
        _ => return None,
    })
}

/// The actions that take a new claim to `state`.
fn route_to(state: &str) -> &'static [&'static str] {
    match state {
        "submitted" => &[],
        "under_review" => &["start_review"],
        "approved" => &["start_review", "approve"],
        "allocated" => &["start_review", "approve", "allocate"],
        "documents_requested" => &["start_review", "approve", "allocate", "request_documents"],
        "in_repair" => &["start_review", "approve", "allocate", "start_repair"],
        "resolved" => &["start_review", "approve", "allocate", "issue_voucher"],
        other => panic!("no route to {other}"),
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// A signed-in caller.
struct Actor {
    device: DeviceId,
    access: String,
    refresh: String,
}

/// The server, its people and the targets the rows are tried on.
struct World {
    app: TestApp,
    actors: HashMap<Who, Actor>,
    /// When the oldest access token was issued (by the server's clock).
    refreshed_at: DateTime<Utc>,
    seq: u32,
    partner_a: String,
    technician_id: String,
    /// Claimable policies of the customer, sold by partner A.
    pool: VecDeque<String>,
    /// A claim of the customer, allocated to the technician, asking for documents.
    view_claim: String,
    view_policy: String,
    /// Per row: the current target (a policy, claim or voucher code).
    targets: HashMap<String, String>,
    /// The bytes of each upload the customer created (by upload id).
    upload_blobs: HashMap<String, Vec<u8>>,
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        self.app.clock_now()
    }

    fn next(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn fresh_phone(&mut self) -> String {
        format!("+91940{:07}", self.next())
    }

    fn fresh_pan(&mut self) -> String {
        let n = self.next();
        format!(
            "AAPF{}{:04}K",
            char::from(b'A' + (n / 10_000 % 26) as u8),
            n % 10_000
        )
    }

    async fn call(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = self.actors.get(&who).map(|a| a.access.clone());
        if path == BOT_SMS {
            return self.signed_sms(token.as_deref(), body).await;
        }
        if path.starts_with(UPLOADS) {
            return self.tus(method, path, token.as_deref(), body).await;
        }
        self.app.call(method, path, token.as_deref(), body).await
    }

    /// A tus request: `Tus-Resumable` always; a creation's JSON recipe
    /// (`kind`, `target`, `sha256`, `length`) becomes `Upload-Length` and
    /// `Upload-Metadata`; a PATCH sends the upload's whole blob from 0.
    async fn tus(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(text(v));
        let mut req = self
            .app
            .http
            .request(method.clone(), format!("{}{path}", self.app.base))
            .header("tus-resumable", "1.0.0");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if method == Method::POST
            && let Some(b) = &body
        {
            req = req.header("upload-length", b["length"].to_string()).header(
                "upload-metadata",
                format!(
                    "sha256 {},kind {},target {}",
                    b64(&b["sha256"]),
                    b64(&b["kind"]),
                    b64(&b["target"])
                ),
            );
        }
        if method == Method::PATCH {
            let id = path.rsplit('/').next().unwrap_or_default();
            let bytes = self.upload_blobs.get(id).cloned().unwrap_or_default();
            req = req
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", "0")
                .body(bytes);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        match location {
            Some(l) => (status, json!({ "location": l })),
            None => (status, serde_json::from_str(&text).unwrap_or(Value::Null)),
        }
    }

    /// A photo sealed to the server's key, uploaded by the customer and
    /// attached to the claim they can see (once): its blob hash.
    async fn view_photo(&mut self) -> String {
        const KEY: &str = "view_photo";
        if let Some(sha) = self.targets.get(KEY) {
            return sha.clone();
        }
        let (s, key) = self.app.get("/v1/keys/sealing", None).await;
        assert_eq!(s, StatusCode::OK, "{key}");
        let key = hex::decode(text(&key["public_key"])).expect("hex");
        let key = glassguard_seal::PublicKey::from_bytes(&key).expect("an X25519 key");
        let sealed = glassguard_seal::seal(&key, b"\xff\xd8 matrix photo").expect("sealed");
        let body = upload_body(&self.view_claim, &sealed);
        let sha = text(&body["sha256"]);
        let (s, b) = self
            .call(Who::Customer, Method::POST, UPLOADS, Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let location = text(&b["location"]);
        let id = location.rsplit('/').next().unwrap_or_default().to_string();
        self.upload_blobs.insert(id.clone(), sealed);
        let (s, b) = self
            .call(
                Who::Customer,
                Method::PATCH,
                &format!("{UPLOADS}/{id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let push = json!({"entries": [{"client_seq": 1, "mutation_id": uuid::Uuid::now_v7(),
            "command": "attach_blob", "payload": {"kind": "claim_photo", "target": self.view_claim,
            "sha256": sha, "length": body["length"], "phash": "f0f0f0f0f0f0f0f0"}}]});
        let (s, b) = self
            .call(Who::Customer, Method::POST, "/v1/sync/push", Some(push))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["results"][0]["status"], "applied", "{b}");
        self.targets.insert(KEY.to_string(), sha.clone());
        sha
    }

    /// A new upload of a blob of its own, created by the customer for the
    /// claim they can see: its id.
    async fn customer_upload(&mut self) -> String {
        let n = self.next();
        let bytes = format!("matrix blob {n}").into_bytes();
        let body = upload_body(&self.view_claim, &bytes);
        let (s, b) = self
            .call(Who::Customer, Method::POST, UPLOADS, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = text(&b["location"])
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        self.upload_blobs.insert(id.clone(), bytes);
        id
    }

    /// The SMS gateway's webhook, signed as the gateway signs it (with the
    /// caller's token too, which the webhook does not need).
    async fn signed_sms(&self, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        use glassguard_server::bot::signature;
        let raw = serde_json::to_vec(&body.unwrap_or(Value::Null)).unwrap();
        let ts = self.now().timestamp();
        let mut req = self
            .app
            .http
            .post(format!("{}{BOT_SMS}", self.app.base))
            .header("content-type", "application/json")
            .header(signature::TIMESTAMP_HEADER, ts.to_string())
            .header(
                signature::SIGNATURE_HEADER,
                signature::sign(WEBHOOK_SECRET.as_bytes(), ts, &raw),
            )
            .body(raw);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A set-up call that must answer `want`.
    async fn must(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let (s, b) = self.call(who, method.clone(), path, body).await;
        assert_eq!(s, want, "set-up: {method} {path} as {}: {b}", who.column());
        b
    }

    /// Moves the clock; refreshes every token before any could expire.
    async fn advance(&mut self, by: Duration) {
        self.app.clock.advance(by);
        if self.now() - self.refreshed_at > Duration::minutes(10) {
            self.refresh_all().await;
        }
    }

    async fn refresh_all(&mut self) {
        for (who, a) in self.actors.iter_mut() {
            let body = json!({"refresh_token": a.refresh, "device_id": a.device});
            let (s, b) = self.app.post("/v1/auth/refresh", None, &body).await;
            assert_eq!(s, StatusCode::OK, "refreshing {}: {b}", who.column());
            a.access = text(&b["access_token"]);
            a.refresh = text(&b["refresh_token"]);
        }
        self.refreshed_at = self.now();
    }

    /// Issues a one-time code to `phone`, waiting out the per-phone limits.
    async fn code(&mut self, phone: &str, purpose: OtpPurpose) -> String {
        let ph = PhoneNumber::parse(phone).unwrap();
        for _ in 0..4 {
            let code = format!("{:06}", (self.next() * 7_919 + 123_457) % 1_000_000);
            let now = self.now();
            let s = &self.app.server.state;
            let issued = s
                .store
                .issue_otp(&s.keys, &ph, purpose, &code, now)
                .await
                .unwrap();
            match issued {
                OtpIssue::Issued => return code,
                OtpIssue::TooSoon { retry_after } | OtpIssue::HourlyLimit { retry_after } => {
                    self.advance(Duration::seconds(retry_after as i64 + 1))
                        .await;
                }
                OtpIssue::Locked => panic!("{phone} is locked"),
            }
        }
        panic!("no code could be sent to {phone}")
    }

    async fn sign_in(&mut self, phone: &str) -> Actor {
        let code = self.code(phone, OtpPurpose::SignIn).await;
        let device = DeviceId::new();
        let (s, b) = self
            .app
            .post(
                "/v1/auth/sign-in",
                None,
                &json!({"phone": phone, "code": code, "device_id": device}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "set-up: sign in {phone}: {b}");
        Actor {
            device,
            access: text(&b["access_token"]),
            refresh: text(&b["refresh_token"]),
        }
    }

    /// A partner registration with a verified contact phone and a new PAN.
    async fn registration_body(&mut self, phone: &str) -> (Value, DeviceId) {
        let code = self.code(phone, OtpPurpose::PartnerRegistration).await;
        let pan = self.fresh_pan();
        let device = DeviceId::new();
        let mut body = registration(phone, &pan, &code);
        body["device_id"] = json!(device);
        (body, device)
    }

    /// Registers and approves a partner; its admin becomes `who`.
    async fn partner(&mut self, owner: &str, who: Who) -> String {
        let (body, device) = self.registration_body(owner).await;
        let b = self
            .must(
                Who::Anonymous,
                Method::POST,
                "/v1/partners",
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        let session = &b["session"];
        self.actors.insert(
            who,
            Actor {
                device,
                access: text(&session["access_token"]),
                refresh: text(&session["refresh_token"]),
            },
        );
        let id = text(&b["partner"]["id"]);
        self.must(
            Who::Admin,
            Method::POST,
            &format!("/v1/partners/{id}/approve"),
            Some(json!({"reason": "KYC checked"})),
            StatusCode::OK,
        )
        .await;
        id
    }

    /// A sale to `customer` with the customer's consent code, of a new device bought today.
    async fn sale_body(&mut self, customer: &str) -> Value {
        let code = self.code(customer, OtpPurpose::SaleConsent).await;
        let n = self.next();
        let device = imei(&format!("3561{n:010}"));
        let mut body = sale(PolicyId::new(), customer, &device, &code);
        body["device_purchase_date"] = json!(self.now().date_naive().to_string());
        body
    }

    async fn sell(&mut self, seller: Who, customer: &str) -> String {
        let body = self.sale_body(customer).await;
        let b = self
            .must(
                seller,
                Method::POST,
                "/v1/sales",
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        text(&b["id"])
    }

    /// Sells `n` policies to the customer at partner A.
    async fn top_up(&mut self, n: usize) {
        for _ in 0..n {
            let id = self.sell(Who::PartnerStaff, CUSTOMER).await;
            self.pool.push_back(id);
        }
    }

    fn claim_body(&self, policy: &str) -> Value {
        json!({
            "id": ClaimId::new(),
            "policy_id": policy,
            "incident_at": self.now() - Duration::hours(3),
            "narrative": "Dropped on the bus steps, screen cracked across",
            "photo_refs": ["sha256-d1", "sha256-d2"],
        })
    }

    /// A policy of the customer with its claim unused; when the pool is
    /// empty, sells more and moves the clock past their waiting period.
    async fn claimable_policy(&mut self) -> String {
        if self.pool.is_empty() {
            self.top_up(10).await;
            self.advance(Duration::days(8)).await;
        }
        self.pool.pop_front().expect("pool refilled")
    }

    fn transition_body(&self, action: &str, from: &str) -> Value {
        let mut b = json!({"action": action, "expected_state": from});
        match action {
            "approve" => b["reason"] = json!("photos match the damage"),
            "reject" => b["reason"] = json!("the damage is older than the policy"),
            "allocate" => b["technician_id"] = json!(self.technician_id),
            "request_documents" => b["documents"] = json!(["invoice", "id_proof"]),
            _ => {}
        }
        b
    }

    /// A new claim of the customer, walked to `state` by the adjuster and
    /// the technician.
    async fn claim_in(&mut self, state: &str) -> String {
        let policy = self.claimable_policy().await;
        let body = self.claim_body(&policy);
        let b = self
            .must(
                Who::Customer,
                Method::POST,
                "/v1/claims",
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        let claim = text(&b["id"]);
        let mut at = text(&b["state"]);
        for action in route_to(state) {
            let who = if matches!(
                *action,
                "start_repair" | "resolve_repaired" | "resolve_exchanged"
            ) {
                Who::Technician
            } else {
                Who::Adjuster
            };
            let body = self.transition_body(action, &at);
            let b = self
                .must(
                    who,
                    Method::POST,
                    &format!("/v1/claims/{claim}/transitions"),
                    Some(body),
                    StatusCode::OK,
                )
                .await;
            at = text(&b["state"]);
        }
        assert_eq!(at, state);
        claim
    }

    /// A new voucher of the customer (a claim resolved by voucher).
    async fn voucher(&mut self) -> String {
        let claim = self.claim_in("resolved").await;
        let b = self
            .must(
                Who::Customer,
                Method::GET,
                "/v1/vouchers",
                None,
                StatusCode::OK,
            )
            .await;
        let items = b["items"].as_array().cloned().unwrap_or_default();
        let v = items
            .iter()
            .find(|v| v["claim_id"] == claim.as_str())
            .unwrap_or_else(|| panic!("no voucher for {claim}: {b}"));
        text(&v["code"])
    }

    async fn ensure_partner_a(&mut self, status: &str) {
        let path = format!("/v1/partners/{}", self.partner_a);
        let b = self
            .must(Who::Admin, Method::GET, &path, None, StatusCode::OK)
            .await;
        if b["status"] != status {
            let verb = if status == "approved" {
                "approve"
            } else {
                "suspend"
            };
            let b = self
                .must(
                    Who::Admin,
                    Method::POST,
                    &format!("{path}/{verb}"),
                    Some(json!({"reason": "matrix set-up"})),
                    StatusCode::OK,
                )
                .await;
            assert_eq!(b["status"], status);
        }
    }

    /// The row's current target, made when there is none.
    async fn target(&mut self, row: &Row) -> String {
        if let Some(t) = self.targets.get(&row.key()) {
            return t.clone();
        }
        let t = match row.route() {
            "/v1/claims" => self.claimable_policy().await,
            UPLOAD => self.customer_upload().await,
            TRANSITIONS => {
                self.claim_in(
                    row.action()
                        .and_then(tried_from)
                        .expect("a known claim action"),
                )
                .await
            }
            _ => self.voucher().await,
        };
        self.targets.insert(row.key(), t.clone());
        t
    }

    /// The path and body that try `row`; `None` when this test has no recipe for it.
    async fn prepare(&mut self, row: &Row) -> Option<(String, Option<Value>)> {
        let route = row.route().to_string();
        let on = |id: &str| row.route().replace("{id}", id);
        Some(match (row.method.as_str(), row.route()) {
            (
                "GET",
                "/healthz" | "/readyz" | "/v1/me" | "/v1/plans" | "/v1/partners" | "/v1/users"
                | "/v1/policies" | "/v1/claims" | "/v1/jobs" | "/v1/vouchers" | "/v1/admin/sms"
                | "/v1/admin/audit" | "/v1/sync/pull",
            ) => (route, None),
            // The bot is public: each caller chats from a new session.
            ("POST", "/v1/bot/messages") => {
                let n = self.next();
                let session = format!("matrix-chat-{n:06}");
                (route, Some(json!({"session_id": session, "text": "plans"})))
            }
            // Each webhook call comes from a new sender (signed in `call`).
            ("POST", BOT_SMS) => {
                let phone = self.fresh_phone();
                (route, Some(json!({"from": phone, "text": "plans"})))
            }
            // An empty push: authorization is all it exercises.
            ("POST", "/v1/sync/push") => (route, Some(json!({"entries": []}))),
            ("POST", "/v1/auth/sign-out") => (route, None),
            ("GET", "/v1/plans/quote") => (format!("{route}?device_price=1849900"), None),
            ("POST", "/v1/auth/otp") => {
                let phone = self.fresh_phone();
                (route, Some(json!({"phone": phone, "purpose": "sign_in"})))
            }
            ("POST", "/v1/auth/sign-in") => {
                let phone = self.fresh_phone();
                let code = self.code(&phone, OtpPurpose::SignIn).await;
                (
                    route,
                    Some(json!({"phone": phone, "code": code, "device_id": DeviceId::new()})),
                )
            }
            ("POST", "/v1/auth/refresh") => {
                let phone = self.fresh_phone();
                let a = self.sign_in(&phone).await;
                (
                    route,
                    Some(json!({"refresh_token": a.refresh, "device_id": a.device})),
                )
            }
            ("POST", "/v1/partners") => {
                let phone = self.fresh_phone();
                (route, Some(self.registration_body(&phone).await.0))
            }
            (
                "GET",
                "/v1/partners/{id}" | "/v1/partners/{id}/staff" | "/v1/partners/{id}/commission",
            ) => (on(&self.partner_a), None),
            ("POST", "/v1/partners/{id}/approve") => {
                self.ensure_partner_a("suspended").await;
                (
                    on(&self.partner_a),
                    Some(json!({"reason": "KYC re-checked"})),
                )
            }
            ("POST", "/v1/partners/{id}/suspend") => {
                self.ensure_partner_a("approved").await;
                (
                    on(&self.partner_a),
                    Some(json!({"reason": "complaints under review"})),
                )
            }
            ("POST", "/v1/partners/{id}/staff") => {
                let phone = self.fresh_phone();
                (
                    on(&self.partner_a),
                    Some(json!({"phone": phone, "name": "Naveen Kumar", "role": "partner_staff"})),
                )
            }
            ("POST", "/v1/users") => {
                let phone = self.fresh_phone();
                (
                    route,
                    Some(json!({"phone": phone, "name": "Anil Adjuster", "role": "adjuster"})),
                )
            }
            ("POST", "/v1/sales") => {
                let phone = self.fresh_phone();
                (route, Some(self.sale_body(&phone).await))
            }
            ("GET", "/v1/policies/{id}") => (on(&self.view_policy), None),
            ("GET", "/v1/admin/trace/{resource_type}/{id}") => {
                (format!("/v1/admin/trace/policy/{}", self.view_policy), None)
            }
            ("POST", "/v1/claims") => {
                let policy = self.target(row).await;
                (route, Some(self.claim_body(&policy)))
            }
            (
                "GET",
                "/v1/claims/{id}" | "/v1/claims/{id}/timeline" | "/v1/claims/{id}/documents",
            ) => (on(&self.view_claim), None),
            ("POST", "/v1/claims/{id}/documents") => {
                let n = self.next();
                (
                    on(&self.view_claim),
                    Some(json!({"kind": "invoice", "object_ref": format!("doc-invoice-{n}")})),
                )
            }
            ("POST", TRANSITIONS) => {
                let action = row.action()?;
                let from = tried_from(action)?;
                let claim = self.target(row).await;
                (on(&claim), Some(self.transition_body(action, from)))
            }
            ("GET", "/v1/keys/sealing") => (route, None),
            ("GET", "/v1/claims/{id}/photos") => (on(&self.view_claim), None),
            ("GET", "/v1/claims/{id}/photos/{sha256}") => {
                let sha = self.view_photo().await;
                (on(&self.view_claim).replace("{sha256}", &sha), None)
            }
            ("OPTIONS", UPLOADS) => (route, None),
            ("POST", UPLOADS) => {
                let n = self.next();
                let bytes = format!("matrix create {n}").into_bytes();
                (route, Some(upload_body(&self.view_claim, &bytes)))
            }
            ("HEAD" | "PATCH" | "DELETE", UPLOAD) => {
                let id = self.target(row).await;
                (on(&id), None)
            }
            ("POST", "/v1/vouchers/redeem/otp") => {
                let code = self.target(row).await;
                (route, Some(json!({"code": code})))
            }
            ("POST", "/v1/vouchers/redeem") => {
                let code = self.target(row).await;
                let otp = self.code(CUSTOMER, OtpPurpose::VoucherRedemption).await;
                (route, Some(json!({"code": code, "customer_otp": otp})))
            }
            _ => return None,
        })
    }

    /// Tries `row` as `who`; waits out a per-phone OTP limit (which answers
    /// only after authorization passed) and tries again.
    async fn attempt(&mut self, row: &Row, who: Who) -> Option<(StatusCode, Value)> {
        let (path, body) = self.prepare(row).await?;
        let method = Method::from_bytes(row.method.as_bytes()).expect("an HTTP method");
        let mut out = self.call(who, method.clone(), &path, body.clone()).await;
        for _ in 0..3 {
            if out.0 != StatusCode::TOO_MANY_REQUESTS || out.1["code"] != "otp_rate_limited" {
                break;
            }
            let wait = out.1["retry_after_seconds"].as_i64().unwrap_or(60);
            self.advance(Duration::seconds(wait + 1)).await;
            out = self.call(who, method.clone(), &path, body.clone()).await;
        }
        if out.0.is_success() && row.consumes_target() {
            self.targets.remove(&row.key());
        }
        Some(out)
    }

    /// Admin, adjuster, two technicians; partner A (admin and staff) and
    /// partner B (admin), both approved; a customer with a pool of policies
    /// from A and another customer with a policy from B; ten days later,
    /// everyone signed in and a claim asking for documents.
    async fn build() -> World {
        let app = TestApp::spawn_with(Db::Sqlite, |l| {
            l.sms_webhook_secret = Some(WEBHOOK_SECRET.into())
        })
        .await
        .expect("SQLite always runs");
        let now = app.clock_now();
        let mut w = World {
            app,
            actors: HashMap::new(),
            refreshed_at: now,
            seq: 0,
            partner_a: String::new(),
            technician_id: String::new(),
            pool: VecDeque::new(),
            view_claim: String::new(),
            view_policy: String::new(),
            targets: HashMap::new(),
            upload_blobs: HashMap::new(),
        };
        w.app.seed_user(ADMIN, Role::Admin, "Asha Admin").await;
        let admin = w.sign_in(ADMIN).await;
        w.actors.insert(Who::Admin, admin);
        for (phone, role, who) in [
            (ADJUSTER, "adjuster", Who::Adjuster),
            (TECH, "technician", Who::Technician),
            (OTHER_TECH, "technician", Who::OtherTechnician),
        ] {
            let body = json!({"phone": phone, "name": format!("Insurer {role}"), "role": role, "service_centre": (role == "technician").then_some("Sector 22 Service Centre")});
            let b = w
                .must(
                    Who::Admin,
                    Method::POST,
                    "/v1/users",
                    Some(body),
                    StatusCode::CREATED,
                )
                .await;
            if who == Who::Technician {
                w.technician_id = text(&b["id"]);
            }
            let actor = w.sign_in(phone).await;
            w.actors.insert(who, actor);
        }
        w.partner_a = w.partner(OWNER_A, Who::PartnerAdmin).await;
        w.partner(OWNER_B, Who::OtherPartnerAdmin).await;
        let staff = json!({"phone": STAFF_A, "name": "Sunil Kumar", "role": "partner_staff"});
        w.must(
            Who::PartnerAdmin,
            Method::POST,
            &format!("/v1/partners/{}/staff", w.partner_a),
            Some(staff),
            StatusCode::CREATED,
        )
        .await;
        let staff = w.sign_in(STAFF_A).await;
        w.actors.insert(Who::PartnerStaff, staff);

        w.sell(Who::OtherPartnerAdmin, OTHER_CUSTOMER).await;
        let other = w.sign_in(OTHER_CUSTOMER).await;
        w.actors.insert(Who::OtherCustomer, other);
        w.top_up(POOL).await;
        let customer = w.sign_in(CUSTOMER).await;
        w.actors.insert(Who::Customer, customer);

        // Past the waiting period.
        w.advance(Duration::days(10)).await;
        w.view_claim = w.claim_in("documents_requested").await;
        let b = w
            .must(
                Who::Customer,
                Method::GET,
                &format!("/v1/claims/{}", w.view_claim),
                None,
                StatusCode::OK,
            )
            .await;
        w.view_policy = text(&b["policy_id"]);
        w
    }
}

/// Every (method, path) of the OpenAPI document is in the table and every
/// row is in the document; one transitions row per claim action; no duplicates.
async fn coverage(w: &World, rows: &[Row]) -> Vec<String> {
    const METHODS: [&str; 8] = [
        "get", "post", "put", "patch", "delete", "head", "options", "trace",
    ];
    let (s, doc) = w.app.get("/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("the document has paths") {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS.contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.clone(), r.route().to_string()))
        .collect();
    let mut problems = Vec::new();
    for (m, p) in documented.difference(&tabled) {
        problems.push(format!(
            "{m} {p} is in the OpenAPI document but not in authz_matrix.tsv"
        ));
    }
    for (m, p) in tabled.difference(&documented) {
        problems.push(format!(
            "{m} {p} is in authz_matrix.tsv but not in the OpenAPI document"
        ));
    }
    let mut seen = HashSet::new();
    for r in rows {
        if !seen.insert(r.key()) {
            problems.push(format!(
                "authz_matrix.tsv line {}: {} appears twice",
                r.line,
                r.key()
            ));
        }
        if r.route() == TRANSITIONS && r.action().is_none() {
            problems.push(format!(
                "authz_matrix.tsv line {}: write one {TRANSITIONS}#<action> row per claim action",
                r.line
            ));
        }
        if r.route() != TRANSITIONS && r.action().is_some() {
            problems.push(format!(
                "authz_matrix.tsv line {}: only {TRANSITIONS} rows carry an #action",
                r.line
            ));
        }
    }
    let tabled_actions: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.route() == TRANSITIONS)
        .filter_map(Row::action)
        .collect();
    let actions: BTreeSet<&str> = ClaimAction::ALL.iter().map(|a| a.as_str()).collect();
    for a in actions.difference(&tabled_actions) {
        problems.push(format!(
            "POST {TRANSITIONS}#{a}: a claim action without a row in authz_matrix.tsv"
        ));
    }
    for a in tabled_actions.difference(&actions) {
        problems.push(format!("POST {TRANSITIONS}#{a}: no such claim action"));
    }
    problems
}

#[tokio::test]
async fn every_endpoint_as_every_role() {
    let started = std::time::Instant::now();
    let rows = parse_table();
    let mut w = World::build().await;
    let mut problems = coverage(&w, &rows).await;

    // Sign-out ends the callers' sessions: last.
    let (last, first): (Vec<&Row>, Vec<&Row>) =
        rows.iter().partition(|r| r.route() == "/v1/auth/sign-out");
    let mut mismatches = Vec::new();
    let mut grid = Vec::new();
    let mut calls = 0;
    for row in first.into_iter().chain(last) {
        let mut statuses = Vec::new();
        for (who, expected) in CALLERS.into_iter().zip(row.expect) {
            let Some((status, body)) = w.attempt(row, who).await else {
                problems.push(format!(
                    "{} (authz_matrix.tsv line {}): authz_matrix.rs has no request for this row",
                    row.key(),
                    row.line
                ));
                break;
            };
            calls += 1;
            statuses.push(format!("{:>3}", status.as_u16()));
            let denied = matches!(status.as_u16(), 401 | 403 | 404);
            let code = if status.is_success() {
                "-"
            } else {
                body["code"].as_str().unwrap_or("-")
            };
            let mismatch = match (expected, denied) {
                (true, true) => Some("expected allow"),
                (false, false) => Some("expected deny "),
                (true, false) if !status.is_success() => {
                    Some("expected allow (2xx; authorization passed but the test's request failed)")
                }
                _ => None,
            };
            if let Some(what) = mismatch {
                mismatches.push(format!(
                    "{:<5} {:<46} {:<20} {what}, got {} {code}",
                    row.method,
                    row.path,
                    who.column(),
                    status.as_u16()
                ));
            }
        }
        if matches!(
            row.route(),
            "/v1/partners/{id}/approve" | "/v1/partners/{id}/suspend"
        ) {
            w.ensure_partner_a("approved").await;
        }
        grid.push(format!(
            "{:<5} {:<46} {}",
            row.method,
            row.path,
            statuses.join(" ")
        ));
    }

    // What each caller got, in the table's column order (handy with --nocapture).
    println!(
        "{:<52} {}",
        "statuses:",
        CALLERS.map(|c| &c.column()[..3]).join(" ")
    );
    for line in &grid {
        println!("{line}");
    }

    println!(
        "authz matrix: {} rows x {} callers, {calls} calls, {} mismatches, {} coverage problems, {:.1}s",
        rows.len(),
        CALLERS.len(),
        mismatches.len(),
        problems.len(),
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() || !mismatches.is_empty() {
        let mut report = String::new();
        for p in &problems {
            report.push_str(&format!("\n  coverage: {p}"));
        }
        if !mismatches.is_empty() {
            report.push_str("\n  method path                                           caller               expected / got");
            for m in &mismatches {
                report.push_str(&format!("\n  {m}"));
            }
        }
        panic!(
            "the authorization matrix does not hold ({} mismatches, {} coverage problems):{report}",
            mismatches.len(),
            problems.len()
        );
    }
}
