//! The text bot over HTTP: `POST /v1/bot/messages` (the in-app chat) and
//! `POST /v1/bot/sms` (the SMS gateway's inbound-SMS webhook). The engine
//! is [`crate::bot`]; this module says who is talking, keeps the
//! conversation, enforces the limits and sends the replies.
//!
//! Who is talking (one conversation per channel and sender):
//! - in-app, signed in: the user (`user:<id>`); their account's phone is
//!   known, so orders and claim questions go straight to the OTP step;
//! - in-app, anonymous: a `session_id` the client makes for the chat
//!   (`session:<id>`, a random UUID kept until the chat is closed: whoever
//!   holds it continues the conversation, so it must not be guessable). The
//!   customer types their phone when ordering or asking about claims; it is
//!   only an unproven claim until the code sent to it comes back;
//! - SMS: the number the gateway says sent the message. The webhook is
//!   signed with a shared secret ([`crate::bot::signature`]), so the number
//!   is trusted as the sender (claim states are shown to it; details and
//!   orders still need an OTP). Replies go back through the SMS outbox,
//!   split into numbered one-segment parts ([`crate::bot::segments`]).
//!
//! Limits, so the bot can never send unlimited SMS: per sender,
//! [`MESSAGES_PER_WINDOW`] messages per [`WINDOW`] on either channel (past
//! it the webhook answers 429 and sends nothing); per client address on the
//! in-app chat; and the OTP service's own limits per phone (one code a
//! minute, five an hour, locked after 100 failures), with the in-app chat
//! also counted against the per-address OTP limit of `/v1/auth/otp`. The
//! SMS channel only ever sends codes to the sender's own number.
//!
//! Audited: every OTP sent or refused and every check's outcome
//! (`bot.otp.*`), every order (`bot.order.create`, with the order in one
//! transaction), every claim disclosure or refusal (`bot.claim_status.*`)
//! and every call-back request (`bot.callback.request`).

use std::time::Duration as StdDuration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glassguard_protocol::api::OtpPurpose;
use glassguard_protocol::{ClaimId, ErrorCode, Imei, PhoneNumber};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Caller};
use crate::authz::{Action, Principal, Resource};
use crate::bot::lang::{ClaimLine, CodeFor, Lang};
use crate::bot::state::{Conversation, KnownPhone, SILENCE, Source};
use crate::bot::{
    self, ClaimsAnswer, CodeCheck, CodeSend, Desk, DeskError, OrderToPlace, Placed, Reply,
    segments, signature,
};
use crate::crypto::{random_code, random_digits};
use crate::error::{ApiError, ApiResult};
use crate::plans::{Catalog, PlanTerms};
use crate::store::bot::{BotOrderOutcome, Channel, NewBotOrder, SaveConversation, SaveOutcome};
use crate::store::claims::short;
use crate::store::{AuditRecord, OtpCheck, OtpIssue, Scope};

/// The window of the per-sender and per-address message limits.
pub const WINDOW: StdDuration = StdDuration::from_secs(15 * 60);
/// Messages per sender per window (an order takes about eight).
pub const MESSAGES_PER_WINDOW: u32 = 30;
/// In-app messages per client address per window (many customers share
/// carrier-grade NAT addresses).
pub const MESSAGES_PER_ADDRESS: u32 = 300;

const REFERENCE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(message))
        .routes(routes!(inbound_sms))
}

/// A message to the bot from the in-app chat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotMessage {
    /// The client's id for this chat: 16 to 64 letters, digits, `-` or `_`,
    /// random (a UUID): whoever holds it continues the conversation.
    /// Required unless signed in (a signed-in user has one conversation).
    #[serde(default)]
    pub session_id: Option<String>,
    /// What the customer wrote (1 to 1000 characters).
    pub text: String,
}

/// The bot's reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotReply {
    /// The reply text.
    pub reply: String,
    /// Its language: `en`, `hi` or `hinglish`.
    pub language: String,
    /// What the message was understood as (with nothing else going on).
    pub intent: String,
    /// What the bot waits for next (`device`, `price`, `date`, `imei`,
    /// `name`, `phone`, `confirmation`, `code`, `callback`), if anything.
    pub expecting: Option<String>,
    /// How many SMS segments the reply would take.
    pub sms_segments: usize,
}

/// An inbound SMS, as the gateway posts it (signed: see the signature headers).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundSms {
    /// The sender's number.
    pub from: String,
    /// The text.
    pub text: String,
    /// The gateway's id of the message: a retry with the same id is answered once.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundSmsAccepted {
    /// The message was taken.
    pub accepted: bool,
    /// It had been handled before (nothing was sent again).
    pub duplicate: bool,
    /// SMS segments queued in reply.
    pub reply_segments: usize,
}

fn text_of(text: &str) -> ApiResult<&str> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > 1000 {
        return Err(ApiError::rule(
            ErrorCode::InvalidRequest,
            "text must be 1 to 1000 characters",
        ));
    }
    Ok(t)
}

fn body(reply: &Reply) -> BotReply {
    BotReply {
        reply: reply.text.clone(),
        language: reply.lang.as_str().to_string(),
        intent: reply.intent.as_str().to_string(),
        expecting: reply.expecting.map(str::to_string),
        sms_segments: segments::count(&reply.text),
    }
}

/// Talk to the text bot in the app.
#[utoipa::path(post, path = "/v1/bot/messages", tag = "bot", request_body = BotMessage,
    responses((status = 200, body = BotReply),
              (status = 409, body = glassguard_protocol::Problem, description = "two messages of one conversation at once; send again"),
              (status = 422, body = glassguard_protocol::Problem),
              (status = 429, body = glassguard_protocol::Problem)))]
async fn message(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<BotMessage>,
) -> ApiResult<Json<BotReply>> {
    state.authorize(&caller, Action::BotMessage, &Resource::Collection("bot"))?;
    let text = text_of(&req.text)?;
    let (sender, known) = match &caller.user {
        Some(u) => {
            let user = state
                .store
                .user_by_id(&state.keys, &u.user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            (
                format!("user:{}", u.user_id),
                Some(KnownPhone {
                    phone: user.phone,
                    source: Source::Account,
                }),
            )
        }
        None => {
            let sid = req
                .session_id
                .as_deref()
                .filter(|s| {
                    (16..=64).contains(&s.len())
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .ok_or_else(|| {
                    ApiError::rule(
                        ErrorCode::InvalidRequest,
                        "session_id (16 to 64 letters, digits, - or _; a random UUID) is required unless signed in",
                    )
                })?;
            (format!("session:{sid}"), None)
        }
    };
    state
        .limiter
        .check("bot_sender", &sender, MESSAGES_PER_WINDOW, WINDOW)?;
    if let Some(ip) = caller.ip {
        state
            .limiter
            .check("bot_app_ip", &ip.to_string(), MESSAGES_PER_ADDRESS, WINDOW)?;
    }
    let turn = Turn {
        channel: Channel::App,
        sender: &sender,
        known,
        sms_to: None,
        message_id: None,
    };
    match converse(&state, &caller, turn, text).await? {
        Conversed::Replied(reply, _) => Ok(Json(body(&reply))),
        Conversed::Duplicate => Err(ApiError::conflict(
            ErrorCode::StaleState,
            "this message was handled already",
        )),
    }
}

/// The answer while no webhook secret is configured.
fn not_configured() -> Response {
    let problem = serde_json::json!({
        "type": "urn:glassguard:problem:sms_webhook_not_configured",
        "title": "Service Unavailable",
        "status": 503,
        "code": "sms_webhook_not_configured",
        "detail": "the inbound-SMS webhook is off: set GLASSGUARD_SMS_WEBHOOK_SECRET (sms_webhook_secret) to the secret shared with the SMS gateway",
    });
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(problem)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// The SMS gateway's inbound-SMS webhook: the bot's replies go back by SMS.
#[utoipa::path(post, path = "/v1/bot/sms", tag = "bot", request_body = InboundSms,
    params(
        ("x-glassguard-timestamp" = String, Header, description = "Unix seconds when the gateway sent the request"),
        ("x-glassguard-signature" = String, Header, description = "v1=<hex HMAC-SHA256 of \"<timestamp>.<body>\" under the shared secret>"),
    ),
    responses((status = 200, body = InboundSmsAccepted),
              (status = 401, body = glassguard_protocol::Problem, description = "unsigned, wrongly signed or stale"),
              (status = 409, body = glassguard_protocol::Problem, description = "two messages of one conversation at once; send again"),
              (status = 422, body = glassguard_protocol::Problem),
              (status = 429, body = glassguard_protocol::Problem, description = "too many messages from this sender; nothing is sent"),
              (status = 503, body = glassguard_protocol::Problem, description = "no webhook secret configured")))]
async fn inbound_sms(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<Response> {
    let Some(secret) = state.settings.sms_webhook_secret.as_ref() else {
        return Ok(not_configured());
    };
    state.authorize(&caller, Action::BotSms, &Resource::Collection("bot"))?;
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        secret.expose_secret().as_bytes(),
        header_str(signature::TIMESTAMP_HEADER),
        header_str(signature::SIGNATURE_HEADER),
        &raw,
        state.now().timestamp(),
    )
    .map_err(|e| ApiError::Unauthenticated(ErrorCode::Unauthenticated, e.to_string()))?;
    let msg: InboundSms = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::rule(
            ErrorCode::InvalidRequest,
            format!("the body is not an inbound SMS: {e}"),
        )
    })?;
    let from = PhoneNumber::parse(&msg.from)?;
    let text = text_of(&msg.text)?;
    let message_id = msg.message_id.as_deref().map(str::trim);
    if let Some(mid) = message_id {
        if mid.is_empty() || mid.len() > 128 {
            return Err(ApiError::rule(
                ErrorCode::InvalidRequest,
                "message_id must be 1 to 128 characters",
            ));
        }
        if state.store.bot_sms_seen(mid).await? {
            return Ok(accepted(true, 0));
        }
    }
    state.limiter.check(
        "bot_sender",
        &format!("sms:{}", from.as_str()),
        MESSAGES_PER_WINDOW,
        WINDOW,
    )?;
    // The gateway's address is every SMS customer's address: the per-address
    // OTP limit would let one customer starve the rest. Codes on this channel
    // only ever go to the sender's own number, under the per-phone limits.
    let mut via_gateway = caller.clone();
    via_gateway.ip = None;
    let turn = Turn {
        channel: Channel::Sms,
        sender: from.as_str(),
        known: Some(KnownPhone {
            phone: from.clone(),
            source: Source::Carrier,
        }),
        sms_to: Some(&from),
        message_id,
    };
    Ok(match converse(&state, &via_gateway, turn, text).await? {
        Conversed::Replied(_, parts) => accepted(false, parts),
        Conversed::Duplicate => accepted(true, 0),
    })
}

fn accepted(duplicate: bool, reply_segments: usize) -> Response {
    Json(InboundSmsAccepted {
        accepted: true,
        duplicate,
        reply_segments,
    })
    .into_response()
}

/// One message's context.
struct Turn<'a> {
    channel: Channel,
    sender: &'a str,
    /// The phone the channel vouches for (SMS sender, signed-in account).
    known: Option<KnownPhone>,
    /// Where SMS replies go.
    sms_to: Option<&'a PhoneNumber>,
    /// The inbound SMS id.
    message_id: Option<&'a str>,
}

enum Conversed {
    /// The reply, and the number of SMS parts queued.
    Replied(Reply, usize),
    /// The inbound SMS was handled before.
    Duplicate,
}

/// Loads the conversation, runs the engine, stores it with its replies.
async fn converse(
    state: &AppState,
    caller: &Caller,
    turn: Turn<'_>,
    text: &str,
) -> ApiResult<Conversed> {
    let now = state.now();
    let stored = state
        .store
        .bot_conversation(&state.keys, turn.channel, turn.sender)
        .await?;
    let mut conv = match &stored {
        Some(s) => {
            let decoded: Option<Conversation> = s
                .state
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok());
            match decoded {
                Some(c) if now - s.updated_at <= SILENCE => c,
                Some(c) => c.after_expiry(),
                None => Conversation::default(),
            }
        }
        None => Conversation::default(),
    };
    if let Some(k) = turn.known {
        conv.phone = Some(k);
    }
    let desk = LiveDesk {
        state,
        caller,
        channel: turn.channel,
        lang: conv.lang,
    };
    let reply = bot::handle(&desk, &mut conv, text)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("bot desk: {e}")))?;
    let json = serde_json::to_string(&conv)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("bot state: {e}")))?;
    let parts = match turn.sms_to {
        Some(_) => segments::split(&reply.text),
        None => Vec::new(),
    };
    let save = SaveConversation {
        channel: turn.channel,
        sender: turn.sender,
        previous: stored.as_ref(),
        state: &json,
        sms: turn.sms_to.map(|to| (to, parts.as_slice())),
        message_id: turn.message_id,
    };
    match state
        .store
        .save_bot_conversation(&state.keys, &save, now)
        .await?
    {
        SaveOutcome::Saved => Ok(Conversed::Replied(reply, parts.len())),
        SaveOutcome::Duplicate => Ok(Conversed::Duplicate),
        SaveOutcome::Conflict => Err(ApiError::conflict(
            ErrorCode::StaleState,
            "another message of this conversation was handled at the same time; send this one again",
        )),
    }
}

/// The desk over the real store, OTP service, catalog and authorizer.
struct LiveDesk<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    channel: Channel,
    lang: Lang,
}

fn otp_purpose(p: CodeFor) -> OtpPurpose {
    match p {
        // The customer agrees to a sale, as at the counter.
        CodeFor::Order => OtpPurpose::SaleConsent,
        // Proving the number, as at sign-in.
        CodeFor::Claims | CodeFor::Details => OtpPurpose::SignIn,
    }
}

fn desk_error(e: impl std::fmt::Display) -> DeskError {
    DeskError(e.to_string())
}

impl LiveDesk<'_> {
    /// An audit record for a bot event.
    fn record(&self, action: &str, resource_type: &str, id: Option<String>) -> AuditRecord {
        let asked = match self.channel {
            Channel::App => Action::BotMessage,
            Channel::Sms => Action::BotSms,
        };
        AuditRecord {
            action: action.to_string(),
            ..self.state.audit(self.caller, asked, resource_type, id)
        }
    }

    async fn audit(
        &self,
        action: &str,
        resource_type: &str,
        id: Option<String>,
    ) -> Result<(), DeskError> {
        self.state
            .store
            .audit(self.state.now(), &self.record(action, resource_type, id))
            .await
            .map_err(desk_error)
    }

    fn line(&self, c: &glassguard_protocol::api::Claim, details: bool) -> ClaimLine {
        ClaimLine {
            reference: short(&c.id),
            state: c.state,
            updated: c.updated_at.date_naive(),
            reason: c.reason.clone().filter(|_| details),
            documents: if details {
                c.documents_requested.clone()
            } else {
                Vec::new()
            },
            resolution: c.resolution.filter(|_| details),
        }
    }
}

impl Desk for LiveDesk<'_> {
    fn catalog(&self) -> &Catalog {
        &self.state.catalog
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.state.now()
    }

    async fn send_code(
        &self,
        phone: &PhoneNumber,
        purpose: CodeFor,
    ) -> Result<CodeSend, DeskError> {
        // The same per-address bucket as POST /v1/auth/otp: the chat is no
        // way around it.
        if let Some(ip) = self.caller.ip
            && self
                .state
                .limiter
                .check(
                    "otp_ip",
                    &ip.to_string(),
                    self.state.settings.ip_otp_per_hour,
                    StdDuration::from_secs(3600),
                )
                .is_err()
        {
            self.audit("bot.otp.refuse", "otp", None).await?;
            return Ok(CodeSend::Busy);
        }
        let code = random_digits(6);
        let issued = self
            .state
            .store
            .issue_otp(
                &self.state.keys,
                phone,
                otp_purpose(purpose),
                &code,
                self.now(),
            )
            .await
            .map_err(desk_error)?;
        let (outcome, action) = match issued {
            OtpIssue::Issued => (CodeSend::Sent, "bot.otp.send"),
            OtpIssue::TooSoon { retry_after } => (
                CodeSend::TooSoon {
                    seconds: retry_after,
                },
                "bot.otp.refuse",
            ),
            OtpIssue::HourlyLimit { .. } => (CodeSend::Hourly, "bot.otp.refuse"),
            OtpIssue::Locked => (CodeSend::Locked, "bot.otp.refuse"),
        };
        self.audit(action, "otp", None).await?;
        Ok(outcome)
    }

    async fn check_code(
        &self,
        phone: &PhoneNumber,
        purpose: CodeFor,
        code: &str,
    ) -> Result<CodeCheck, DeskError> {
        let checked = self
            .state
            .store
            .verify_otp(
                &self.state.keys,
                phone,
                otp_purpose(purpose),
                code,
                self.now(),
            )
            .await
            .map_err(desk_error)?;
        let (outcome, action) = match checked {
            OtpCheck::Valid => (CodeCheck::Valid, "bot.otp.accept"),
            OtpCheck::Invalid { .. } => (CodeCheck::Wrong, "bot.otp.reject"),
            OtpCheck::Expired => (CodeCheck::Expired, "bot.otp.reject"),
            OtpCheck::TooManyAttempts => (CodeCheck::Exhausted, "bot.otp.reject"),
            OtpCheck::Locked => (CodeCheck::Locked, "bot.otp.reject"),
        };
        self.audit(action, "otp", None).await?;
        Ok(outcome)
    }

    async fn imei_taken(&self, imei: &Imei) -> Result<bool, DeskError> {
        self.state
            .store
            .bot_imei_taken(&self.state.keys, imei)
            .await
            .map_err(desk_error)
    }

    async fn place_order(&self, o: &OrderToPlace<'_>) -> Result<Placed, DeskError> {
        let now = self.now();
        let reference = format!("GB-{}", random_code(REFERENCE_ALPHABET, 8));
        let new = NewBotOrder {
            id: uuid::Uuid::now_v7(),
            reference: reference.clone(),
            channel: self.channel,
            phone: o.verified.phone(),
            otp_verified_at: now,
            name: o.name,
            imei: o.imei,
            brand: &o.device.brand,
            model: &o.device.model,
            plan_id: &o.plan.id,
            terms: PlanTerms::from(o.plan),
            device_price: o.price,
            premium: o.premium,
            purchase_date: o.bought,
            screen_check_by: o.check_by,
        };
        let rec = self.record("bot.order.create", "bot_order", None);
        match self
            .state
            .store
            .place_bot_order(&self.state.keys, &new, now, &rec)
            .await
            .map_err(desk_error)?
        {
            BotOrderOutcome::Placed(_) => Ok(Placed::Placed { reference }),
            BotOrderOutcome::ImeiTaken => Ok(Placed::ImeiTaken),
        }
    }

    async fn claims(
        &self,
        phone: &PhoneNumber,
        reference: Option<&str>,
        details: bool,
    ) -> Result<ClaimsAnswer, DeskError> {
        let store = &self.state.store;
        let keys = &self.state.keys;
        let refuse = || async {
            self.audit(
                "bot.claim_status.refuse",
                "claim",
                reference.map(str::to_string),
            )
            .await
            .map(|_| ClaimsAnswer::NotFound)
        };
        let Some(user) = store.user_by_phone(keys, phone).await.map_err(desk_error)? else {
            return match reference {
                Some(_) => refuse().await,
                None => Ok(ClaimsAnswer::Listed(Vec::new())),
            };
        };
        // The bot acts for the phone's owner: the policies decide what they may read.
        let principal = Principal::User {
            id: user.id,
            role: user.role,
            partner: user.partner_id,
            active: user.active,
        };
        let may_read = |c: &glassguard_protocol::api::Claim| {
            self.state.authz.is_allowed(
                &principal,
                Action::ClaimRead,
                &Resource::Claim {
                    id: c.id,
                    customer: c.customer_id,
                    partner: c.partner_id,
                    technician: c.technician_id,
                },
            )
        };
        let claims = match reference.map(|r| r.to_ascii_lowercase()) {
            // A whole claim id: whoever's it is, the policies decide.
            Some(r) if r.len() == 36 => {
                let Ok(id) = r.parse::<ClaimId>() else {
                    return refuse().await;
                };
                match store.claim(keys, &id).await.map_err(desk_error)? {
                    Some(c) if may_read(&c) => vec![c],
                    _ => return refuse().await,
                }
            }
            r => {
                let mine = store
                    .list_claims(keys, Scope::Customer(user.id), None)
                    .await
                    .map_err(desk_error)?;
                let mine: Vec<_> = mine
                    .into_iter()
                    .filter(|c| may_read(c))
                    .filter(|c| {
                        r.as_deref()
                            .is_none_or(|r| short(&c.id).eq_ignore_ascii_case(r))
                    })
                    .collect();
                if r.is_some() && mine.is_empty() {
                    return refuse().await;
                }
                mine
            }
        };
        let action = if details {
            "bot.claim_details.read"
        } else {
            "bot.claim_status.read"
        };
        for c in &claims {
            self.audit(action, "claim", Some(c.id.to_string())).await?;
        }
        Ok(ClaimsAnswer::Listed(
            claims.iter().map(|c| self.line(c, details)).collect(),
        ))
    }

    async fn request_callback(&self, phone: &PhoneNumber, reason: &str) -> Result<(), DeskError> {
        let rec = self.record("bot.callback.request", "bot_callback", None);
        self.state
            .store
            .record_bot_callback(
                &self.state.keys,
                phone,
                reason,
                self.lang.as_str(),
                self.now(),
                &rec,
            )
            .await
            .map_err(desk_error)
    }
}
