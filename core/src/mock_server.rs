//! A small in-memory server speaking the sync contract, for the engine's unit
//! tests: it keeps per-device seqs, answers duplicates and gaps, keeps a
//! change log behind an index cursor, rotates refresh tokens, and can be told
//! to fail, reject, expire tokens or demand a resync. The real server is
//! exercised by the end-to-end suite in `tests/`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use glassguard_protocol::api::*;
use glassguard_protocol::sync::*;
use glassguard_protocol::*;
use serde_json::json;

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
    pub content_encoding: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Debug, Default)]
pub struct MockState {
    pub seen: Vec<Seen>,
    /// Statuses to answer the next sync requests with, instead of serving them.
    pub fail_next: VecDeque<(StatusCode, Option<u64>)>,
    pub valid_access: HashSet<String>,
    pub expired_access: HashSet<String>,
    pub valid_refresh: HashSet<String>,
    pub used_refresh: HashSet<String>,
    pub refreshes: usize,
    pub token_counter: usize,
    pub device: Option<DeviceId>,
    pub role: Option<Role>,
    pub user: Option<UserId>,
    /// seq → (mutation id, status, code)
    pub applied: BTreeMap<u64, (uuid::Uuid, EntryStatus, Option<ErrorCode>)>,
    /// Reject these seqs with `imei_already_covered`.
    pub reject_seqs: HashSet<u64>,
    /// Answer the next push with just this expected seq.
    pub force_expected: Option<u64>,
    pub log: Vec<Change>,
    /// Cursors below this generation get `resync: true`.
    pub generation: u32,
    pub plans: Vec<Plan>,
    pub pushes: usize,
    /// Answer gzip bodies with 415, as a server without decompression would.
    pub refuse_gzip: bool,
}

pub type Shared = Arc<Mutex<MockState>>;

pub struct Mock {
    pub state: Shared,
    pub url: String,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl Mock {
    pub async fn start() -> Mock {
        let state: Shared = Arc::new(Mutex::new(MockState {
            plans: vec![plan()],
            ..MockState::default()
        }));
        let app = axum::Router::new()
            .route("/v1/auth/otp", post(otp))
            .route("/v1/auth/sign-in", post(sign_in))
            .route("/v1/auth/refresh", post(refresh))
            .route(
                "/v1/auth/sign-out",
                post(|| async { StatusCode::NO_CONTENT }),
            )
            .route("/v1/plans", get(plans))
            .route("/v1/sync/push", post(push))
            .route("/v1/sync/pull", get(pull))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Mock {
            state,
            url: format!("http://{addr}"),
            _task: task,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap()
    }

    /// Every access token issued so far stops working (`token_expired`).
    pub fn expire_access(&self) {
        let mut s = self.lock();
        let valid: Vec<_> = s.valid_access.drain().collect();
        s.expired_access.extend(valid);
    }

    /// Adds a change to the log, as if another party changed something.
    pub fn push_change(&self, c: Change) {
        self.lock().log.push(c);
    }
}

fn problem(status: StatusCode, code: ErrorCode, retry_after: Option<u64>) -> Response {
    let body = Json(json!({
        "type": format!("urn:glassguard:problem:{code}"),
        "title": code.as_str(),
        "status": status.as_u16(),
        "code": code,
        "detail": format!("mock says {code}"),
    }));
    let mut resp = (status, body).into_response();
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    resp
}

fn record(s: &mut MockState, path: &str, h: &HeaderMap) {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    s.seen.push(Seen {
        path: path.into(),
        request_id: get("x-request-id"),
        traceparent: get("traceparent"),
        content_encoding: get("content-encoding"),
        authorization: get("authorization"),
    });
}

/// Checks the bearer token; `Some` is the refusal to send.
fn auth_failure(s: &MockState, h: &HeaderMap) -> Option<Response> {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if s.valid_access.contains(token) {
        None
    } else if s.expired_access.contains(token) {
        Some(problem(
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenExpired,
            None,
        ))
    } else {
        Some(problem(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            None,
        ))
    }
}

fn issue(s: &mut MockState) -> Session {
    s.token_counter += 1;
    let access = format!("access-{}", s.token_counter);
    let refresh = format!("refresh-{}", s.token_counter);
    s.valid_access.insert(access.clone());
    s.valid_refresh.insert(refresh.clone());
    Session {
        access_token: access,
        access_expires_in: 900,
        refresh_token: refresh,
        user: Me {
            id: s.user.unwrap_or_default(),
            role: s.role.unwrap_or(Role::PartnerStaff),
            partner_id: None,
            name: Some("Asha".into()),
            phone: PhoneNumber::parse("9876543210").unwrap(),
        },
    }
}

async fn otp(State(st): State<Shared>, h: HeaderMap) -> Response {
    record(&mut st.lock().unwrap(), "/v1/auth/otp", &h);
    (
        StatusCode::ACCEPTED,
        Json(OtpSent {
            expires_in_seconds: 300,
            resend_after_seconds: 60,
        }),
    )
        .into_response()
}

async fn sign_in(
    State(st): State<Shared>,
    h: HeaderMap,
    Json(req): Json<SignInRequest>,
) -> Response {
    let mut s = st.lock().unwrap();
    record(&mut s, "/v1/auth/sign-in", &h);
    if req.code != "123456" {
        return problem(StatusCode::UNAUTHORIZED, ErrorCode::OtpInvalid, None);
    }
    s.device = Some(req.device_id);
    if s.user.is_none() {
        s.user = Some(UserId::new());
    }
    Json(issue(&mut s)).into_response()
}

async fn refresh(
    State(st): State<Shared>,
    h: HeaderMap,
    Json(req): Json<RefreshRequest>,
) -> Response {
    let mut s = st.lock().unwrap();
    record(&mut s, "/v1/auth/refresh", &h);
    s.refreshes += 1;
    if s.device != Some(req.device_id) {
        return problem(
            StatusCode::UNAUTHORIZED,
            ErrorCode::RefreshTokenInvalid,
            None,
        );
    }
    if s.used_refresh.contains(&req.refresh_token) {
        s.valid_access.clear();
        s.valid_refresh.clear();
        return problem(
            StatusCode::UNAUTHORIZED,
            ErrorCode::RefreshTokenReused,
            None,
        );
    }
    if !s.valid_refresh.remove(&req.refresh_token) {
        return problem(
            StatusCode::UNAUTHORIZED,
            ErrorCode::RefreshTokenInvalid,
            None,
        );
    }
    s.used_refresh.insert(req.refresh_token);
    Json(issue(&mut s)).into_response()
}

async fn plans(State(st): State<Shared>, h: HeaderMap) -> Response {
    let mut s = st.lock().unwrap();
    record(&mut s, "/v1/plans", &h);
    if h.contains_key("authorization")
        && let Some(r) = auth_failure(&s, &h)
    {
        return r;
    }
    Json(Page {
        items: s.plans.clone(),
    })
    .into_response()
}

fn take_failure(s: &mut MockState) -> Option<Response> {
    s.fail_next.pop_front().map(|(status, retry_after)| {
        let code = if status == StatusCode::TOO_MANY_REQUESTS {
            ErrorCode::RateLimited
        } else {
            ErrorCode::Unavailable
        };
        problem(status, code, retry_after)
    })
}

async fn push(State(st): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    let mut s = st.lock().unwrap();
    record(&mut s, "/v1/sync/push", &h);
    if let Some(r) = auth_failure(&s, &h) {
        return r;
    }
    if let Some(r) = take_failure(&mut s) {
        return r;
    }
    let gzipped = h.get("content-encoding").is_some_and(|v| v == "gzip");
    if gzipped && s.refuse_gzip {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "gzip not supported").into_response();
    }
    s.pushes += 1;
    let raw = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let req: PushRequest = serde_json::from_slice(&raw).unwrap();
    let highest = s.applied.keys().next_back().copied().unwrap_or(0);
    if let Some(expected) = s.force_expected.take() {
        return Json(PushResponse {
            results: vec![],
            highest_applied_seq: highest,
            expected_seq: Some(expected),
        })
        .into_response();
    }
    let mut results = vec![];
    let mut expected_seq = None;
    for e in req.entries {
        let highest = s.applied.keys().next_back().copied().unwrap_or(0);
        if let Some((mid, status, code)) = s.applied.get(&e.client_seq).copied() {
            if mid != e.mutation_id {
                results.push(EntryResult {
                    client_seq: e.client_seq,
                    mutation_id: e.mutation_id,
                    status: EntryStatus::Rejected,
                    code: Some(ErrorCode::MutationConflict),
                    message: Some("conflict".into()),
                });
            } else {
                let status = if status == EntryStatus::Rejected {
                    status
                } else {
                    EntryStatus::Duplicate
                };
                results.push(EntryResult {
                    client_seq: e.client_seq,
                    mutation_id: mid,
                    status,
                    code,
                    message: code.map(|c| c.to_string()),
                });
            }
            continue;
        }
        if e.client_seq != highest + 1 {
            expected_seq = Some(highest + 1);
            break;
        }
        if s.reject_seqs.contains(&e.client_seq) {
            s.applied.insert(
                e.client_seq,
                (
                    e.mutation_id,
                    EntryStatus::Rejected,
                    Some(ErrorCode::ImeiAlreadyCovered),
                ),
            );
            results.push(EntryResult {
                client_seq: e.client_seq,
                mutation_id: e.mutation_id,
                status: EntryStatus::Rejected,
                code: Some(ErrorCode::ImeiAlreadyCovered),
                message: Some("this phone already has an active policy".into()),
            });
            continue;
        }
        let user = s.user.unwrap_or_default();
        match &e.command {
            Command::RecordSale(sale) => s.log.push(Change::Policy(policy_from(sale, user))),
            Command::CreateClaim(c) => s.log.push(Change::Claim(claim_from(c, user))),
            _ => {}
        }
        s.applied
            .insert(e.client_seq, (e.mutation_id, EntryStatus::Applied, None));
        results.push(EntryResult {
            client_seq: e.client_seq,
            mutation_id: e.mutation_id,
            status: EntryStatus::Applied,
            code: None,
            message: None,
        });
    }
    let highest = s.applied.keys().next_back().copied().unwrap_or(0);
    Json(PushResponse {
        results,
        highest_applied_seq: highest,
        expected_seq,
    })
    .into_response()
}

#[derive(serde::Deserialize)]
struct PullQuery {
    cursor: Option<String>,
    limit: usize,
}

async fn pull(State(st): State<Shared>, h: HeaderMap, Query(q): Query<PullQuery>) -> Response {
    let mut s = st.lock().unwrap();
    record(&mut s, "/v1/sync/pull", &h);
    if let Some(r) = auth_failure(&s, &h) {
        return r;
    }
    if let Some(r) = take_failure(&mut s) {
        return r;
    }
    let highest = s.applied.keys().next_back().copied().unwrap_or(0);
    // Cursor format: "<generation>:<index>".
    let start = match q.cursor.as_deref() {
        None => 0,
        Some(c) => {
            let (g, i) = c.split_once(':').unwrap();
            if g.parse::<u32>().unwrap() < s.generation {
                return Json(PullResponse {
                    changes: vec![],
                    cursor: String::new(),
                    has_more: true,
                    highest_applied_seq: highest,
                    resync: true,
                    server_time: Utc::now(),
                })
                .into_response();
            }
            i.parse().unwrap()
        }
    };
    let end = (start + q.limit).min(s.log.len());
    Json(PullResponse {
        changes: s.log[start..end].to_vec(),
        cursor: format!("{}:{end}", s.generation),
        has_more: end < s.log.len(),
        highest_applied_seq: highest,
        resync: false,
        server_time: Utc::now(),
    })
    .into_response()
}

pub fn plan() -> Plan {
    Plan {
        id: "screen-1y".into(),
        name: "Screen protection, 1 year".into(),
        coverage: "screen".into(),
        term_days: 365,
        waiting_period_days: 7,
        claim_window_days: 2,
        purchase_window_days: 7,
        claims_per_term: 1,
        excess: Excess::PercentBp(1000),
        benefits: vec![Benefit::Repair, Benefit::Exchange, Benefit::Voucher],
        voucher_value: Money::from_rupees(500).unwrap(),
        voucher_validity_days: 90,
        commission_bp: 1500,
        bands: vec![
            PriceBand {
                up_to: Some(Money::from_rupees(10_000).unwrap()),
                premium: Money::from_rupees(399).unwrap(),
            },
            PriceBand {
                up_to: Some(Money::from_rupees(20_000).unwrap()),
                premium: Money::from_rupees(699).unwrap(),
            },
        ],
    }
}

pub fn imei(n: u64) -> Imei {
    let payload = format!("{:014}", 35_000_000_000_000 + n);
    let d = glassguard_protocol::imei::luhn_check_digit(payload.as_bytes());
    Imei::parse(&format!("{payload}{d}")).unwrap()
}

pub fn sale(n: u64) -> OfflineSale {
    OfflineSale {
        id: PolicyId::new(),
        customer_phone: PhoneNumber::parse("9123456789").unwrap(),
        customer_name: "Ravindra Kulkarni".into(),
        customer_otp: None,
        imei: imei(n),
        brand: "Acme".into(),
        model: "A1".into(),
        device_price: Money::from_rupees(15_000).unwrap(),
        device_purchase_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        invoice_ref: format!("INV-{n}"),
        screen_photo_ref: format!("sha256:{n:064}"),
        plan_id: "screen-1y".into(),
    }
}

pub fn policy_from(sale: &OfflineSale, customer: UserId) -> Policy {
    Policy {
        id: sale.id,
        certificate_number: format!("GG-{}", sale.imei.as_str()),
        status: PolicyStatus::Active,
        plan_id: sale.plan_id.clone(),
        partner_id: None,
        customer_id: customer,
        customer_name: sale.customer_name.clone(),
        customer_phone: sale.customer_phone.clone(),
        imei: sale.imei,
        brand: sale.brand.clone(),
        model: sale.model.clone(),
        device_price: sale.device_price,
        premium: Money::from_rupees(699).unwrap(),
        device_purchase_date: sale.device_purchase_date,
        start_date: sale.device_purchase_date,
        end_date: sale.device_purchase_date,
        invoice_ref: sale.invoice_ref.clone(),
        screen_photo_ref: sale.screen_photo_ref.clone(),
        claims_used: 0,
        created_at: Utc::now(),
    }
}

pub fn claim_from(c: &ClaimCreate, customer: UserId) -> Claim {
    Claim {
        id: c.id,
        policy_id: c.policy_id,
        customer_id: customer,
        partner_id: None,
        state: ClaimState::Submitted,
        resolution: None,
        incident_at: c.incident_at,
        narrative: c.narrative.clone(),
        contact_phone: c
            .contact_phone
            .clone()
            .unwrap_or_else(|| PhoneNumber::parse("9123456789").unwrap()),
        photo_refs: c.photo_refs.clone(),
        technician_id: None,
        reason: None,
        documents_requested: vec![],
        voucher_id: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}
