//! Sign-in by SMS OTP, tokens, and the [`Caller`] every handler receives.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::Duration;
use glassguard_protocol::api::{
    Me, OtpPurpose, OtpRequest, OtpSent, RefreshRequest, Session, SignInRequest,
};
use glassguard_protocol::{ErrorCode, PhoneNumber, Role, UserId};
use std::net::IpAddr;
use std::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::authz::{Action, Principal, Resource};
use crate::crypto::{random_digits, random_token, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::store::otps::{OTP_RESEND_GAP, OTP_TTL};
use crate::store::{
    AccessCheck, AuthedUser, NewUser, OtpCheck, OtpIssue, RefreshOutcome, TokenPair,
};

/// How long a token lookup is trusted from memory.
const SESSION_CACHE_SECONDS: u64 = 30;

/// The caller of a request: who (if signed in), the request id and address.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The signed-in user, if any.
    pub user: Option<AuthedUser>,
    /// The request id.
    pub request_id: Option<String>,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The W3C `traceparent` the client sent, when well formed.
    pub traceparent: Option<String>,
    token_hash: Option<[u8; 32]>,
}

impl Caller {
    /// The principal for the authorizer.
    pub fn principal(&self) -> Principal {
        super::principal_of(self.user.as_ref())
    }

    /// The signed-in user, or 401.
    pub fn user(&self) -> ApiResult<&AuthedUser> {
        self.user.as_ref().ok_or_else(|| {
            ApiError::Unauthenticated(ErrorCode::Unauthenticated, "sign in first".into())
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ip = super::client_ip(parts);
        let traceparent = super::traceparent(&parts.headers).map(str::to_string);
        let token = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.strip_prefix("Bearer "))
                    .filter(|t| !t.is_empty() && t.len() < 200)
                    .ok_or_else(|| {
                        ApiError::Unauthenticated(
                            ErrorCode::Unauthenticated,
                            "use Authorization: Bearer <token>".into(),
                        )
                    })?,
            ),
        };
        let Some(token) = token else {
            return Ok(Caller {
                user: None,
                request_id,
                ip,
                traceparent,
                token_hash: None,
            });
        };
        let hash = token_hash(token);
        let now = state.now();
        if let Some(hit) = state.sessions.get(&hash) {
            let (user, at) = hit.value();
            if at.elapsed().as_secs() < SESSION_CACHE_SECONDS
                && user.expires_at > now.timestamp_millis()
            {
                return Ok(Caller {
                    user: Some(user.clone()),
                    request_id,
                    ip,
                    traceparent,
                    token_hash: Some(hash),
                });
            }
        }
        match state.store.authenticate(&hash, now).await? {
            AccessCheck::Valid(user) => {
                if state.sessions.len() > 100_000 {
                    state.sessions.clear();
                }
                state.sessions.insert(hash, (user.clone(), Instant::now()));
                Ok(Caller {
                    user: Some(user),
                    request_id,
                    ip,
                    traceparent,
                    token_hash: Some(hash),
                })
            }
            AccessCheck::Expired => {
                state.sessions.remove(&hash);
                Err(ApiError::Unauthenticated(
                    ErrorCode::TokenExpired,
                    "the access token has expired; refresh it".into(),
                ))
            }
            AccessCheck::Unknown => {
                state.sessions.remove(&hash);
                Err(ApiError::Unauthenticated(
                    ErrorCode::Unauthenticated,
                    "the access token is not valid".into(),
                ))
            }
        }
    }
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_otp))
        .routes(routes!(sign_in))
        .routes(routes!(refresh))
        .routes(routes!(sign_out))
        .routes(routes!(me))
}

/// Sends a code, within the limits; the same answer whether or not the phone is known.
pub(crate) async fn send_otp(
    state: &AppState,
    caller: &Caller,
    phone: &PhoneNumber,
    purpose: OtpPurpose,
) -> ApiResult<OtpSent> {
    if let Some(ip) = caller.ip {
        state.limiter.check(
            "otp_ip",
            &ip.to_string(),
            state.settings.ip_otp_per_hour,
            std::time::Duration::from_secs(3600),
        )?;
    }
    let code = random_digits(6);
    match state
        .store
        .issue_otp(&state.keys, phone, purpose, &code, state.now())
        .await?
    {
        OtpIssue::Issued => Ok(OtpSent {
            expires_in_seconds: OTP_TTL.num_seconds() as u64,
            resend_after_seconds: OTP_RESEND_GAP.num_seconds() as u64,
        }),
        OtpIssue::TooSoon { retry_after } => Err(ApiError::TooMany(
            ErrorCode::OtpRateLimited,
            "a code was sent less than a minute ago".into(),
            retry_after,
        )),
        OtpIssue::HourlyLimit { retry_after } => Err(ApiError::TooMany(
            ErrorCode::OtpRateLimited,
            "five codes were sent in the last hour".into(),
            retry_after,
        )),
        OtpIssue::Locked => Err(locked()),
    }
}

fn locked() -> ApiError {
    ApiError::Unauthenticated(
        ErrorCode::OtpLocked,
        "too many wrong codes on this number; contact support".into(),
    )
}

/// Checks a code; each failure has its own code.
pub(crate) async fn check_otp(
    state: &AppState,
    phone: &PhoneNumber,
    purpose: OtpPurpose,
    code: &str,
) -> ApiResult<()> {
    match state
        .store
        .verify_otp(&state.keys, phone, purpose, code.trim(), state.now())
        .await?
    {
        OtpCheck::Valid => Ok(()),
        OtpCheck::Invalid { remaining } => Err(ApiError::Unauthenticated(
            ErrorCode::OtpInvalid,
            format!("the code is wrong; {remaining} tries left"),
        )),
        OtpCheck::Expired => Err(ApiError::Unauthenticated(
            ErrorCode::OtpExpired,
            "the code has expired; ask for a new one".into(),
        )),
        OtpCheck::TooManyAttempts => Err(ApiError::Unauthenticated(
            ErrorCode::OtpTooManyAttempts,
            "too many wrong tries; ask for a new code".into(),
        )),
        OtpCheck::Locked => Err(locked()),
    }
}

/// A fresh token pair: the plaintexts for the client, the hashes for the store.
pub(crate) fn new_tokens(state: &AppState) -> (String, String, TokenPair) {
    let access = random_token();
    let refresh = random_token();
    let now = state.now();
    let pair = TokenPair {
        access_hash: token_hash(&access).to_vec(),
        access_expires: now
            + Duration::from_std(state.settings.access_ttl).unwrap_or(Duration::minutes(15)),
        refresh_hash: token_hash(&refresh).to_vec(),
        refresh_expires: now
            + Duration::from_std(state.settings.refresh_ttl).unwrap_or(Duration::days(30)),
    };
    (access, refresh, pair)
}

pub(crate) fn session_body(state: &AppState, access: String, refresh: String, me: Me) -> Session {
    Session {
        access_token: access,
        access_expires_in: state.settings.access_ttl.as_secs(),
        refresh_token: refresh,
        user: me,
    }
}

/// Ask for a one-time code by SMS.
#[utoipa::path(post, path = "/v1/auth/otp", tag = "auth", request_body = OtpRequest,
    responses((status = 202, body = OtpSent), (status = 429, body = glassguard_protocol::Problem)))]
async fn request_otp(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<OtpRequest>,
) -> ApiResult<(StatusCode, Json<OtpSent>)> {
    state.authorize(
        &caller,
        Action::OtpRequest,
        &Resource::Collection("sessions"),
    )?;
    let sent = send_otp(&state, &caller, &req.phone, req.purpose).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// Sign in with a code; a new phone becomes a customer.
#[utoipa::path(post, path = "/v1/auth/sign-in", tag = "auth", request_body = SignInRequest,
    responses((status = 200, body = Session), (status = 401, body = glassguard_protocol::Problem)))]
async fn sign_in(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<SignInRequest>,
) -> ApiResult<Json<Session>> {
    state.authorize(
        &caller,
        Action::SessionCreate,
        &Resource::Collection("sessions"),
    )?;
    if let Some(ip) = caller.ip {
        state.limiter.check(
            "sign_in_ip",
            &ip.to_string(),
            state.settings.ip_sign_in_per_hour,
            std::time::Duration::from_secs(3600),
        )?;
    }
    check_otp(&state, &req.phone, OtpPurpose::SignIn, &req.code).await?;
    let now = state.now();
    let user = match state.store.user_by_phone(&state.keys, &req.phone).await? {
        Some(u) => u,
        None => {
            let new = NewUser {
                id: UserId::new(),
                role: Role::Customer,
                phone: &req.phone,
                name: None,
                email: None,
                partner_id: None,
                service_centre: None,
            };
            let rec = state.audit(
                &caller,
                Action::SessionCreate,
                "user",
                Some(new.id.to_string()),
            );
            match state
                .store
                .create_user(&state.keys, &new, now, &rec)
                .await?
            {
                Some(u) => u,
                // Registered by a concurrent request a moment ago.
                None => state
                    .store
                    .user_by_phone(&state.keys, &req.phone)
                    .await?
                    .ok_or(ApiError::NotFound)?,
            }
        }
    };
    if !user.active {
        return Err(ApiError::Forbidden);
    }
    let (access, refresh, pair) = new_tokens(&state);
    state
        .store
        .create_session(&user.id, &req.device_id, &pair, now)
        .await?;
    let me = Me {
        id: user.id,
        role: user.role,
        partner_id: user.partner_id,
        name: user.name,
        phone: user.phone,
    };
    Ok(Json(session_body(&state, access, refresh, me)))
}

/// Trade a refresh token for a new pair; a reused token revokes the session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = glassguard_protocol::Problem)))]
async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<Session>> {
    state.authorize(
        &caller,
        Action::SessionRefresh,
        &Resource::Collection("sessions"),
    )?;
    let (access, refresh, pair) = new_tokens(&state);
    let outcome = state
        .store
        .rotate_refresh(
            &token_hash(&req.refresh_token),
            &req.device_id,
            &pair,
            state.now(),
        )
        .await?;
    match outcome {
        RefreshOutcome::Rotated(user_id) => {
            let user = state
                .store
                .user_by_id(&state.keys, &user_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let me = Me {
                id: user.id,
                role: user.role,
                partner_id: user.partner_id,
                name: user.name,
                phone: user.phone,
            };
            Ok(Json(session_body(&state, access, refresh, me)))
        }
        RefreshOutcome::Reused => {
            // Cached lookups of this session's access tokens must die too.
            state.sessions.clear();
            Err(ApiError::Unauthenticated(
                ErrorCode::RefreshTokenReused,
                "this refresh token was already used; the session has been ended, sign in again"
                    .into(),
            ))
        }
        RefreshOutcome::Invalid => Err(ApiError::Unauthenticated(
            ErrorCode::RefreshTokenInvalid,
            "the refresh token is not valid; sign in again".into(),
        )),
    }
}

/// End this session on every token it issued.
#[utoipa::path(post, path = "/v1/auth/sign-out", tag = "auth", responses((status = 204)))]
async fn sign_out(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state.authorize(
        &caller,
        Action::SessionDelete,
        &Resource::Collection("sessions"),
    )?;
    let user = caller.user()?;
    state
        .store
        .revoke_session(&user.session_id, "signed_out", state.now())
        .await?;
    if let Some(h) = caller.token_hash {
        state.sessions.remove(&h);
    }
    state
        .sessions
        .retain(|_, (u, _)| u.session_id != user.session_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Who am I.
#[utoipa::path(get, path = "/v1/me", tag = "auth", responses((status = 200, body = Me)))]
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    state.authorize(&caller, Action::MeRead, &Resource::Collection("sessions"))?;
    let u = caller.user()?;
    let user = state
        .store
        .user_by_id(&state.keys, &u.user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state
        .store
        .audit(
            state.now(),
            &state.audit(&caller, Action::MeRead, "user", Some(user.id.to_string())),
        )
        .await?;
    Ok(Json(Me {
        id: user.id,
        role: user.role,
        partner_id: user.partner_id,
        name: user.name,
        phone: user.phone,
    }))
}
