//! The text bot end to end, against the real server over HTTP:
//!
//! - the transcripts in `tests/bot/*.txt` (format in `tests/bot/README.md`),
//!   each a conversation on a fresh server, on SQLite and (some) on
//!   PostgreSQL;
//! - the signed inbound-SMS webhook: an order end to end with every reply
//!   in the dev SMS inbox; unsigned, wrongly signed and stale requests
//!   refused; a flood from one number rate-limited without more SMS; a
//!   gateway retry answered once;
//! - a property test over random conversations: no order is ever created
//!   unless the message that created it was the live code texted to the
//!   order's phone.

#[path = "api/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::Duration;
use glassguard_protocol::api::OtpPurpose;
use glassguard_protocol::imei::luhn_check_digit;
use glassguard_protocol::{ClaimId, Imei, Money, PhoneNumber, PolicyId};
use glassguard_server::bot::{nlu, segments, signature};
use glassguard_server::clock::Clock;
use glassguard_server::plans::PlanTerms;
use glassguard_server::store::claims::{NewClaim, short};
use glassguard_server::store::{CreateOutcome, NewPolicy, SaleOutcome};
use harness::{Db, TestApp};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The webhook secret the test servers share with the "gateway".
const SECRET: &str = "test-webhook-secret-0123456789";

/// Transcripts also run on PostgreSQL.
const POSTGRES: &[&str] = &["order_complete_sms.txt", "claim_status_sms.txt"];

/// The transcripts the issue asks for (by what they cover).
const REQUIRED: &[&str] = &[
    "catalog_price_en.txt",
    "catalog_price_hi.txt",
    "catalog_price_hinglish.txt",
    "order_complete_sms.txt",
    "otp_wrong_three_times.txt",
    "expired_conversation.txt",
    "imei_invalid_then_corrected.txt",
    "cancel_midway.txt",
    "switch_language.txt",
    "claim_status_sms.txt",
    "claim_status_app.txt",
];

async fn spawn(db: Db) -> Option<TestApp> {
    TestApp::spawn_with(db, |l| {
        l.sms_webhook_secret = Some(SECRET.into());
        // Every chat in a test comes from 127.0.0.1.
        l.ip_otp_per_hour = Some(100_000);
    })
    .await
}

fn transcripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bot")
}

fn now_secs(app: &TestApp) -> i64 {
    app.clock.now().timestamp()
}

/// How a webhook call is signed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signing {
    Good,
    Unsigned,
    WrongSecret,
    Stale,
    Tampered,
}

/// Posts an inbound SMS to the webhook.
async fn post_sms(
    app: &TestApp,
    from: &str,
    text: &str,
    message_id: Option<&str>,
    signing: Signing,
) -> (StatusCode, Value) {
    let body =
        serde_json::to_vec(&json!({"from": from, "text": text, "message_id": message_id})).unwrap();
    let ts = match signing {
        Signing::Stale => now_secs(app) - signature::MAX_SKEW_SECONDS - 5,
        _ => now_secs(app),
    };
    let secret = match signing {
        Signing::WrongSecret => "not-the-shared-secret-at-all",
        _ => SECRET,
    };
    let sig = signature::sign(secret.as_bytes(), ts, &body);
    let sent = match signing {
        Signing::Tampered => {
            serde_json::to_vec(&json!({"from": from, "text": "cancel", "message_id": message_id}))
                .unwrap()
        }
        _ => body,
    };
    let mut req = app
        .http
        .post(format!("{}/v1/bot/sms", app.base))
        .header("content-type", "application/json")
        .body(sent);
    if signing != Signing::Unsigned {
        req = req
            .header(signature::TIMESTAMP_HEADER, ts.to_string())
            .header(signature::SIGNATURE_HEADER, sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Posts an in-app chat message.
async fn post_app(app: &TestApp, session: &str, text: &str) -> (StatusCode, Value) {
    app.post(
        "/v1/bot/messages",
        None,
        &json!({"session_id": session, "text": text}),
    )
    .await
}

/// Every SMS to a phone, oldest first (after delivering what is queued).
async fn inbox(app: &TestApp, phone: &str) -> Vec<String> {
    app.deliver_sms().await;
    let s = &app.server.state;
    let p = PhoneNumber::parse(phone).unwrap();
    let mut msgs: Vec<String> = s
        .store
        .inbox(&s.keys, Some(&p), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    msgs.reverse();
    msgs
}

fn is_code(body: &str) -> bool {
    body.get(..6)
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
        && body
            .get(6..)
            .is_some_and(|r| r.starts_with(" is your Glassguard code"))
}

/// The newest one-time code texted to a phone.
async fn newest_code(app: &TestApp, phone: &str) -> Option<String> {
    inbox(app, phone)
        .await
        .into_iter()
        .rev()
        .find(|b| is_code(b))
        .map(|b| b[..6].to_string())
}

/// A part without its `2/3 ` number.
fn unnumbered(part: &str) -> &str {
    match part.split_once(' ') {
        Some((n, rest))
            if n.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            }) =>
        {
            rest
        }
        _ => part,
    }
}

async fn order_count(app: &TestApp, phone: &str) -> usize {
    let s = &app.server.state;
    s.store
        .bot_orders_for_phone(&s.keys, &PhoneNumber::parse(phone).unwrap())
        .await
        .unwrap()
        .len()
}

async fn total_orders(app: &TestApp) -> i64 {
    app.server.state.store.bot_order_count().await.unwrap()
}

async fn audited(app: &TestApp, action: &str) -> bool {
    // Reads are audited through a batching writer: wait for it.
    app.server.state.store.flush_audit().await;
    app.server
        .state
        .store
        .audit_entries(None, 100_000)
        .await
        .unwrap()
        .iter()
        .any(|e| e.action == action)
}

/// A valid IMEI from a number.
fn imei_for(n: u64) -> String {
    let payload = format!("35{n:012}");
    let d = luhn_check_digit(payload.as_bytes());
    format!("{payload}{d}")
}

// ---------------------------------------------------------------- fixtures

/// What `@fixture claims` made.
struct ClaimsFixture {
    own: String,
    other: String,
    other_id: String,
}

/// A policy (straight through the store: no partner) and a claim on it.
async fn policy_and_claim(app: &TestApp, phone: &str, name: &str, imei: &str) -> ClaimId {
    let s = &app.server.state;
    let now = app.clock.now();
    let ph = PhoneNumber::parse(phone).unwrap();
    let plan = s.catalog.get("screen-1y").unwrap();
    let price = Money::from_rupees(15_000).unwrap();
    let policy_id = PolicyId::new();
    let today = now.date_naive();
    let sale = NewPolicy {
        id: policy_id,
        certificate_number: format!("GG-TEST-{}", &policy_id.to_string()[28..]),
        plan_id: &plan.id,
        terms: PlanTerms::from(plan),
        partner_id: None,
        sold_by: None,
        customer_phone: &ph,
        customer_name: name,
        customer_email: None,
        imei: Imei::parse(imei).unwrap(),
        brand: "Samsung",
        model: "Galaxy A15",
        device_price: price,
        premium: Money::from_rupees(699).unwrap(),
        commission: Money::ZERO,
        purchase_date: today - Duration::days(20),
        start: today - Duration::days(20),
        end: today + Duration::days(345),
        invoice_ref: "invoice-test",
        screen_photo_ref: "photo-test",
    };
    let out = s
        .store
        .record_sale(&s.keys, &sale, now, &Default::default())
        .await
        .unwrap();
    assert!(matches!(out, SaleOutcome::Issued(_)), "{out:?}");
    let customer = s.store.user_by_phone(&s.keys, &ph).await.unwrap().unwrap();
    // A reference with letters and digits, as most are.
    let id = loop {
        let id = ClaimId::new();
        let r = short(&id);
        if r.bytes().any(|b| b.is_ascii_digit()) && r.bytes().any(|b| b.is_ascii_alphabetic()) {
            break id;
        }
    };
    let claim = NewClaim {
        id,
        policy_id,
        customer_id: customer.id,
        partner_id: None,
        incident_at: now - Duration::hours(3),
        narrative: "Fell from the table, the screen cracked",
        contact_phone: &ph,
        photo_refs: &[],
        claims_per_term: 1,
    };
    let filed = s
        .store
        .file_claim(&s.keys, &claim, now, &Default::default())
        .await
        .unwrap();
    assert_eq!(filed, CreateOutcome::Created);
    id
}

async fn claims_fixture(app: &TestApp, phone: &str) -> ClaimsFixture {
    let own = policy_and_claim(app, phone, "Meena Iyer", &imei_for(900_001)).await;
    let other = policy_and_claim(app, "+919899999999", "Other Person", &imei_for(900_002)).await;
    ClaimsFixture {
        own: short(&own),
        other: short(&other),
        other_id: other.to_string(),
    }
}

// ------------------------------------------------------------- transcripts

#[derive(Debug)]
enum Line {
    Say(String),
    Has(String),
    Lacks(String),
    Check(String, String),
    Advance(Duration),
}

struct Script {
    name: String,
    sms: bool,
    phone: String,
    fixture_claims: bool,
    lines: Vec<(usize, Line)>,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    Some(match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return None,
    })
}

fn parse_script(path: &Path) -> Result<Script, String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let mut s = Script {
        name: name.clone(),
        sms: false,
        phone: "+919810000099".into(),
        fixture_claims: false,
        lines: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim_end();
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = || format!("{name}:{n}: cannot read {l:?}");
        if let Some(rest) = l.strip_prefix('@') {
            let (k, v) = rest.split_once(' ').ok_or_else(bad)?;
            match (k, v.trim()) {
                ("channel", "sms") => s.sms = true,
                ("channel", "app") => s.sms = false,
                ("phone", p) => s.phone = PhoneNumber::parse(p).map_err(|_| bad())?.as_str().into(),
                ("fixture", "claims") => s.fixture_claims = true,
                ("advance", d) => s
                    .lines
                    .push((n, Line::Advance(parse_duration(d).ok_or_else(bad)?))),
                _ => return Err(bad()),
            }
        } else if let Some(t) = l.strip_prefix("> ") {
            s.lines.push((n, Line::Say(t.to_string())));
        } else if let Some(t) = l.strip_prefix("<! ") {
            s.lines.push((n, Line::Lacks(t.to_string())));
        } else if let Some(t) = l.strip_prefix("< ") {
            s.lines.push((n, Line::Has(t.to_string())));
        } else if let Some(t) = l.strip_prefix("? ") {
            let (k, v) = t.split_once(' ').ok_or_else(bad)?;
            s.lines
                .push((n, Line::Check(k.to_string(), v.trim().to_string())));
        } else {
            return Err(bad());
        }
    }
    Ok(s)
}

/// Runs one transcript on a fresh server; returns its failures.
async fn run_script(db: Db, script: &Script) -> Option<Vec<String>> {
    let app = spawn(db).await?;
    let mut failures = Vec::new();
    let mut vars: HashMap<&str, String> = HashMap::new();
    let national = script.phone.trim_start_matches("+91").to_string();
    vars.insert("$PHONE", national);
    if script.fixture_claims {
        let f = claims_fixture(&app, &script.phone).await;
        vars.insert("$OWN_CLAIM", f.own);
        vars.insert("$OTHER_CLAIM_ID", f.other_id);
        vars.insert("$OTHER_CLAIM", f.other);
    }
    let session = format!("transcript-{}", script.name.trim_end_matches(".txt"));
    let mut seen = inbox(&app, &script.phone).await.len();
    let mut reply = String::new();
    let mut body = Value::Null;
    let mut parts = 0usize;
    let mut last_said = String::new();
    for (n, line) in &script.lines {
        let at = format!("{}:{n}", script.name);
        let expand = |t: &str, vars: &HashMap<&str, String>| {
            let mut out = t.to_string();
            // Longest names first: $OTHER_CLAIM_ID before $OTHER_CLAIM.
            let mut names: Vec<&&str> = vars.keys().collect();
            names.sort_by_key(|k| std::cmp::Reverse(k.len()));
            for k in names {
                out = out.replace(*k, &vars[*k]);
            }
            out
        };
        match line {
            Line::Advance(d) => app.clock.advance(*d),
            Line::Say(t) => {
                if t.contains("$OTP") || t.contains("$WRONG_OTP") {
                    let code = newest_code(&app, &script.phone).await.unwrap_or_default();
                    let wrong =
                        format!("{:06}", (code.parse::<u32>().unwrap_or(0) + 1) % 1_000_000);
                    vars.insert("$OTP", code);
                    vars.insert("$WRONG_OTP", wrong);
                }
                let text = expand(t, &vars);
                last_said = text.clone();
                if script.sms {
                    let (status, b) =
                        post_sms(&app, &script.phone, &text, None, Signing::Good).await;
                    if status != StatusCode::OK {
                        failures.push(format!("{at}: webhook answered {status}: {b}"));
                    }
                    let all = inbox(&app, &script.phone).await;
                    let new: Vec<&String> = all[seen..].iter().filter(|m| !is_code(m)).collect();
                    parts = new.len();
                    seen = all.len();
                    reply = new
                        .iter()
                        .map(|m| unnumbered(m))
                        .collect::<Vec<_>>()
                        .join(" ");
                    body = b;
                } else {
                    let (status, b) = post_app(&app, &session, &text).await;
                    if status != StatusCode::OK {
                        failures.push(format!("{at}: chat answered {status}: {b}"));
                    }
                    reply = b["reply"].as_str().unwrap_or_default().to_string();
                    parts = segments::count(&reply);
                    body = b;
                }
            }
            Line::Has(t) => {
                let t = expand(t, &vars);
                if !reply.contains(&t) {
                    failures.push(format!(
                        "{at}: after {last_said:?} the reply lacks {t:?}\n      reply: {reply:?}"
                    ));
                }
            }
            Line::Lacks(t) => {
                let t = expand(t, &vars);
                if reply.contains(&t) {
                    failures.push(format!(
                        "{at}: after {last_said:?} the reply has {t:?}\n      reply: {reply:?}"
                    ));
                }
            }
            Line::Check(k, v) => {
                let got = match k.as_str() {
                    "orders" => order_count(&app, &script.phone).await.to_string(),
                    "callbacks" => app
                        .server
                        .state
                        .store
                        .open_bot_callbacks()
                        .await
                        .unwrap()
                        .to_string(),
                    "audit" => {
                        if audited(&app, v).await {
                            v.clone()
                        } else {
                            "(none)".into()
                        }
                    }
                    "segments" => parts.to_string(),
                    "lang" if script.sms => {
                        if nlu::has_devanagari(&reply) {
                            "hi".into()
                        } else {
                            nlu::detect_language(&reply, &nlu::tokens(&reply))
                                .map_or("?", |l| l.as_str())
                                .to_string()
                        }
                    }
                    "lang" => body["language"].as_str().unwrap_or("?").to_string(),
                    "expecting" => body["expecting"].as_str().unwrap_or("none").to_string(),
                    "intent" => body["intent"].as_str().unwrap_or("?").to_string(),
                    other => {
                        failures.push(format!("{at}: unknown check {other:?}"));
                        continue;
                    }
                };
                if &got != v {
                    failures.push(format!(
                        "{at}: after {last_said:?}: {k} is {got}, not {v}\n      reply: {reply:?}"
                    ));
                }
            }
        }
    }
    Some(failures)
}

fn scripts() -> Vec<Script> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(transcripts_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| parse_script(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[tokio::test]
async fn transcripts_on_sqlite() {
    let scripts = scripts();
    let names: Vec<&str> = scripts.iter().map(|s| s.name.as_str()).collect();
    for r in REQUIRED {
        assert!(names.contains(r), "tests/bot/{r} is missing");
    }
    let mut failures = Vec::new();
    for s in &scripts {
        let f = run_script(Db::Sqlite, s).await.expect("SQLite always runs");
        println!(
            "transcript {}: {}",
            s.name,
            if f.is_empty() { "ok" } else { "FAILED" }
        );
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} transcript expectation(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test]
async fn transcripts_on_postgres() {
    let mut failures = Vec::new();
    for s in scripts()
        .iter()
        .filter(|s| POSTGRES.contains(&s.name.as_str()))
    {
        let Some(f) = run_script(Db::Postgres, s).await else {
            return; // skipped loudly by the harness
        };
        println!(
            "transcript {} on PostgreSQL: {}",
            s.name,
            if f.is_empty() { "ok" } else { "FAILED" }
        );
        failures.extend(f);
    }
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

// ----------------------------------------------------------------- webhook

/// The order flow over SMS, one answer per message (also the bench's flow).
const ORDER_FLOW: &[&str] = &[
    "I want to buy screen insurance",
    "Samsung Galaxy A15",
    "15000",
    "today",
    "$IMEI",
    "Ravi Kumar",
    "yes",
    "$OTP",
];

#[tokio::test]
async fn signed_sms_order_end_to_end_with_every_reply_in_the_inbox() {
    let app = spawn(Db::Sqlite).await.unwrap();
    let phone = "+919820000001";
    let imei = imei_for(4242);
    let mut expected_segments = 0;
    let mut codes = 0;
    for (i, step) in ORDER_FLOW.iter().enumerate() {
        let text = match *step {
            "$IMEI" => imei.clone(),
            "$OTP" => newest_code(&app, phone).await.expect("a code was texted"),
            t => t.to_string(),
        };
        let (status, b) =
            post_sms(&app, phone, &text, Some(&format!("gw-{i}")), Signing::Good).await;
        assert_eq!(status, StatusCode::OK, "{text}: {b}");
        assert_eq!(b["accepted"], true);
        assert_eq!(b["duplicate"], false);
        expected_segments += b["reply_segments"].as_u64().unwrap() as usize;
        if text == "yes" {
            codes += 1;
        }
    }
    let msgs = inbox(&app, phone).await;
    // Every reply, and the one code, reached the inbox; each is one segment.
    assert_eq!(msgs.len(), expected_segments + codes, "{msgs:#?}");
    assert_eq!(msgs.iter().filter(|m| is_code(m)).count(), 1);
    for m in &msgs {
        assert_eq!(segments::count(m), 1, "{m}");
    }
    let last = msgs.last().unwrap();
    assert!(
        last.contains("Order GB-") && last.contains("pending"),
        "{last}"
    );
    assert!(msgs.len() <= 10, "{} SMS for one order", msgs.len());
    let s = &app.server.state;
    let orders = s
        .store
        .bot_orders_for_phone(&s.keys, &PhoneNumber::parse(phone).unwrap())
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    let o = &orders[0];
    assert_eq!(o.status, "pending_screen_check");
    assert_eq!(o.channel, "sms");
    assert_eq!(o.imei.as_str(), imei);
    assert_eq!(
        (o.brand.as_str(), o.model.as_str()),
        ("Samsung", "Galaxy A15")
    );
    assert_eq!(o.premium.paise(), 69_900);
    assert_eq!(o.name, "Ravi Kumar");
    assert!(last.contains(&o.reference), "{last}");
    // The customer is registered by phone, and the order is audited.
    let user = s
        .store
        .user_by_phone(&s.keys, &PhoneNumber::parse(phone).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, o.customer_id);
    assert!(audited(&app, "bot.order.create").await);
}

#[tokio::test]
async fn unsigned_wrongly_signed_or_stale_webhooks_are_refused() {
    let app = spawn(Db::Sqlite).await.unwrap();
    let phone = "+919820000002";
    for signing in [
        Signing::Unsigned,
        Signing::WrongSecret,
        Signing::Stale,
        Signing::Tampered,
    ] {
        let (status, b) = post_sms(&app, phone, "plans", None, signing).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signing:?}: {b}");
        assert_eq!(b["code"], "unauthenticated", "{signing:?}: {b}");
    }
    assert!(
        inbox(&app, phone).await.is_empty(),
        "a refused webhook sent SMS"
    );
    let (status, _) = post_sms(&app, phone, "plans", None, Signing::Good).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        inbox(&app, phone).await.len(),
        2,
        "the catalog is two parts"
    );

    // Without a configured secret the webhook is off, and says why.
    let off = TestApp::spawn(Db::Sqlite).await.unwrap();
    let (status, b) = post_sms(&off, phone, "plans", None, Signing::Good).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["code"], "sms_webhook_not_configured", "{b}");
}

#[tokio::test]
async fn a_flood_from_one_number_is_rate_limited_without_more_sms() {
    let app = spawn(Db::Sqlite).await.unwrap();
    let phone = "+919820000003";
    let mut accepted_segments = 0;
    let mut statuses = Vec::new();
    for i in 0..60 {
        let (status, b) = post_sms(
            &app,
            phone,
            &format!("plans for {}k", 10 + i),
            None,
            Signing::Good,
        )
        .await;
        if status == StatusCode::OK {
            accepted_segments += b["reply_segments"].as_u64().unwrap() as usize;
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{b}");
            assert_eq!(b["code"], "rate_limited", "{b}");
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 30, "the limit is 30 messages per sender per 15 minutes");
    let after_flood = inbox(&app, phone).await.len();
    assert_eq!(after_flood, accepted_segments);
    // More flooding sends nothing more.
    for _ in 0..10 {
        let (status, _) = post_sms(&app, phone, "order", None, Signing::Good).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(inbox(&app, phone).await.len(), after_flood);
    // Another number is not affected.
    let (status, _) = post_sms(&app, "+919820000004", "plans", None, Signing::Good).await;
    assert_eq!(status, StatusCode::OK);

    // Asking for codes again and again texts one a minute at most.
    let phone = "+919820000005";
    for step in &ORDER_FLOW[..7] {
        let text = if *step == "$IMEI" {
            imei_for(777)
        } else {
            step.to_string()
        };
        post_sms(&app, phone, &text, None, Signing::Good).await;
    }
    for _ in 0..15 {
        let (status, b) = post_sms(&app, phone, "resend", None, Signing::Good).await;
        assert_eq!(status, StatusCode::OK, "{b}");
    }
    let codes = inbox(&app, phone)
        .await
        .iter()
        .filter(|m| is_code(m))
        .count();
    assert_eq!(codes, 1, "resending within a minute sent more codes");
}

#[tokio::test]
async fn a_gateway_retry_is_answered_once() {
    let app = spawn(Db::Sqlite).await.unwrap();
    let phone = "+919820000006";
    let (s1, b1) = post_sms(
        &app,
        phone,
        "plans for 15000",
        Some("gw-retry-1"),
        Signing::Good,
    )
    .await;
    let (s2, b2) = post_sms(
        &app,
        phone,
        "plans for 15000",
        Some("gw-retry-1"),
        Signing::Good,
    )
    .await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(b1["duplicate"], false);
    assert_eq!(b2["duplicate"], true, "{b2}");
    assert_eq!(inbox(&app, phone).await.len(), 1);
}

#[tokio::test]
async fn the_in_app_chat_needs_a_session_and_knows_signed_in_users() {
    let app = spawn(Db::Sqlite).await.unwrap();
    let (status, b) = app
        .post("/v1/bot/messages", None, &json!({"text": "plans"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (status, b) = post_app(&app, "short", "plans").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // A signed-in customer's number is known: no phone question, straight
    // to the confirmation.
    let phone = "+919820000007";
    let session = app.sign_in(phone).await;
    let token = session.access_token;
    let mut last = Value::Null;
    for text in [
        "buy cover for samsung galaxy a15, 15000, today".to_string(),
        imei_for(31_337),
        "Kavya Rao".to_string(),
    ] {
        let (status, b) = app
            .post("/v1/bot/messages", Some(&token), &json!({"text": text}))
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        last = b;
    }
    assert_eq!(last["expecting"], "confirmation", "{last}");
    assert!(
        !last["reply"].as_str().unwrap().contains("******"),
        "{last}"
    );
    app.clock.advance(Duration::seconds(61));
    let (_, b) = app
        .post("/v1/bot/messages", Some(&token), &json!({"text": "yes"}))
        .await;
    assert_eq!(b["expecting"], "code", "{b}");
    let code = newest_code(&app, phone).await.unwrap();
    let (_, b) = app
        .post("/v1/bot/messages", Some(&token), &json!({"text": code}))
        .await;
    assert!(b["reply"].as_str().unwrap().contains("Order GB-"), "{b}");
    assert_eq!(order_count(&app, phone).await, 1);
}

// ---------------------------------------------------------- property test

/// One thing the customer (or a test) does.
#[derive(Clone, Debug)]
enum Act {
    /// Sends one of [`PHRASES`].
    Say(usize),
    /// Sends the happy path up to the confirmation, in one go.
    Prefix,
    /// Sends the newest code texted to the conversation's phone.
    RightCode,
    /// Sends a six-digit code that is not it.
    WrongCode(u32),
    /// Sends the newest code texted to another number.
    OtherNumbersCode,
    /// Time passes.
    Wait(u16),
}

const PHRASES: &[&str] = &[
    "I want to buy insurance",
    "Samsung Galaxy A15",
    "15000",
    "today",
    "$IMEI",
    "Ravi Kumar",
    "yes",
    "no",
    "2",
    "cancel",
    "$PHONE",
    "$OTHER_PHONE",
    "help",
    "plans for 15k",
    "order samsung a15 15000 today $IMEI",
    "hindi",
    "english",
    "call",
    "resend",
    "mera claim",
    "details",
    "123456",
];

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (0..PHRASES.len()).prop_map(Act::Say),
        2 => Just(Act::Prefix),
        3 => Just(Act::RightCode),
        2 => any::<u32>().prop_map(|n| Act::WrongCode(n % 1_000_000)),
        1 => Just(Act::OtherNumbersCode),
        1 => (1u16..1200).prop_map(Act::Wait),
    ]
}

/// One random conversation; checks after every message that an order was
/// created only by the live code of the order's phone.
async fn conversation(
    app: &TestApp,
    case: u64,
    sms: bool,
    acts: &[Act],
) -> Result<usize, TestCaseError> {
    let phone = format!("+9197{:08}", case);
    let other = format!("+9196{:08}", case);
    let imei = imei_for(1_000_000 + case);
    let session = format!("prop-session-{case:08}");
    let mut messages = 0;
    let mut created = 0;
    for a in acts {
        let texts: Vec<String> = match a {
            Act::Say(i) => vec![PHRASES[*i].to_string()],
            Act::Prefix => [
                "order samsung a15 15000 today $IMEI",
                "Ravi Kumar",
                "$PHONE",
                "yes",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            Act::RightCode => match newest_code(app, &phone).await {
                Some(c) => vec![c],
                None => continue,
            },
            Act::WrongCode(n) => vec![format!("{n:06}")],
            Act::OtherNumbersCode => {
                // A live code for another number, of the same purpose.
                let s = &app.server.state;
                let code = format!("{:06}", (case * 7919 + 13) % 1_000_000);
                let _ = s
                    .store
                    .issue_otp(
                        &s.keys,
                        &PhoneNumber::parse(&other).unwrap(),
                        OtpPurpose::SaleConsent,
                        &code,
                        app.clock.now(),
                    )
                    .await
                    .unwrap();
                vec![code]
            }
            Act::Wait(secs) => {
                app.clock.advance(Duration::seconds(i64::from(*secs)));
                continue;
            }
        };
        for t in texts {
            if messages >= 28 {
                return Ok(created);
            }
            messages += 1;
            let text = t
                .replace("$IMEI", &imei)
                .replace("$OTHER_PHONE", other.trim_start_matches("+91"))
                .replace("$PHONE", phone.trim_start_matches("+91"));
            let before_total = total_orders(app).await;
            let own_before = order_count(app, &phone).await;
            let other_before = order_count(app, &other).await;
            let status = if sms {
                post_sms(app, &phone, &text, None, Signing::Good).await.0
            } else {
                post_app(app, &session, &text).await.0
            };
            prop_assert!(status == StatusCode::OK, "{text:?} answered {status}");
            let after_total = total_orders(app).await;
            let own_new = order_count(app, &phone).await - own_before;
            let other_new = order_count(app, &other).await - other_before;
            prop_assert_eq!(
                (after_total - before_total) as usize,
                own_new + other_new,
                "an order appeared for a number this conversation never used"
            );
            prop_assert!(own_new + other_new <= 1, "two orders from one message");
            // A message that places an order sends no code, so the newest
            // code now is the newest code before it.
            if own_new == 1 {
                let live_own = newest_code(app, &phone).await;
                prop_assert_eq!(
                    Some(text.trim().to_string()),
                    live_own,
                    "an order for {} without its live code",
                    phone
                );
                created += 1;
            }
            if other_new == 1 {
                let live_other = newest_code(app, &other).await;
                prop_assert!(!sms, "an SMS conversation ordered for another number");
                prop_assert_eq!(
                    Some(text.trim().to_string()),
                    live_other,
                    "an order for {} without its live code",
                    other
                );
                created += 1;
            }
        }
    }
    Ok(created)
}

#[test]
fn no_order_is_ever_created_without_the_matching_otp() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(spawn(Db::Sqlite)).unwrap();
    let config = proptest::test_runner::Config {
        cases: 32,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Default::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let case = std::sync::atomic::AtomicU64::new(0);
    let orders = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (any::<bool>(), proptest::collection::vec(act(), 1..14));
    let result = runner.run(&strategy, |(sms, acts)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let created = rt.block_on(conversation(&app, n, sms, &acts))?;
        orders.fetch_add(created, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The property must have been exercised on its positive side too.
    let made = orders.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "property: {} conversations, {made} orders",
        case.into_inner()
    );
    assert!(
        made > 0,
        "no random conversation ever ordered: the test proves nothing"
    );
    rt.block_on(async move { drop(app) });
}
