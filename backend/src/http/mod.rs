//! The HTTP API: JSON under `/v1`, errors as problem JSON, an OpenAPI
//! document generated from the handlers at `/openapi.json`.
//!
//! Each resource has one module with `pub fn router() -> OpenApiRouter<AppState>`,
//! merged here. Every handler asks the one authorizer ([`AppState::authorize`])
//! before it touches data; requests carry a request id (the `x-request-id`
//! header, made here when absent) into logs, audit entries and error bodies.

mod admin;
mod auth;
mod bot;
mod claims;
mod health;
mod partners;
mod photos;
mod plans;
mod sales;
mod sync;
mod uploads;
mod users;
mod vouchers;

pub use auth::Caller;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::authz::{Action, Authorizer, Principal, Resource};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::error::{ApiError, InternalCause};
use crate::plans::Catalog;
use crate::store::{AuditRecord, AuthedUser, Store};

/// Everything a handler needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Storage.
    pub store: Store,
    /// Keys for PII, blind indexes and OTPs.
    pub keys: Keyring,
    /// The one authorizer.
    pub authz: Authorizer,
    /// Plans.
    pub catalog: Arc<Catalog>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Access-token lookups, kept for a few seconds so a burst of requests
    /// costs one database round trip. Nothing here is needed by another replica.
    pub sessions: Arc<DashMap<[u8; 32], (AuthedUser, Instant)>>,
    /// Per-IP counters for the sign-in endpoints.
    pub limiter: Arc<crate::limits::Limiter>,
    /// Blobs: the object store and unfinished uploads.
    pub blobs: crate::uploads::Blobs,
    /// The insurer's key that devices seal photos to; opens them for staff.
    pub insurer_key: Arc<crate::crypto::InsurerKey>,
}

impl AppState {
    /// Asks the authorizer; refuses with 401 for anonymous callers and 403 otherwise.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
    ) -> Result<(), ApiError> {
        if self.authz.is_allowed(&caller.principal(), action, resource) {
            return Ok(());
        }
        Err(match caller.user {
            None => ApiError::Unauthenticated(
                glassguard_protocol::ErrorCode::Unauthenticated,
                "sign in first".into(),
            ),
            Some(_) => ApiError::Forbidden,
        })
    }

    /// An audit record for this caller.
    pub fn audit(
        &self,
        caller: &Caller,
        action: Action,
        resource_type: &str,
        resource_id: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            actor_id: caller.user.as_ref().map(|u| u.user_id),
            actor_role: caller.user.as_ref().map(|u| u.role),
            action: action.as_str().to_string(),
            resource_type: resource_type.to_string(),
            resource_id,
            request_id: caller.request_id.clone(),
            ip: caller.ip.map(|i| i.to_string()),
            traceparent: caller.traceparent.clone(),
        }
    }

    /// Now, by the server's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Glassguard API",
        description = "Screen-damage protection: partners, sales, policies, claims, vouchers."
    ),
    components(schemas(glassguard_protocol::Problem, glassguard_protocol::ErrorCode))
)]
struct ApiDoc;

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(plans::router())
        .merge(partners::router())
        .merge(users::router())
        .merge(sales::router())
        .merge(claims::router())
        .merge(vouchers::router())
        .merge(admin::router())
        .merge(bot::router())
        .merge(sync::router())
        .merge(uploads::router())
        .merge(photos::router())
        .split_for_parts();
    let api = Arc::new(api);
    let body_limit = state.settings.body_limit_bytes;
    let x_request_id = HeaderName::from_static("x-request-id");
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(api.as_ref().clone()) }),
        )
        .layer(axum::middleware::from_fn(problem_and_log))
        .layer(DefaultBodyLimit::max(body_limit))
        // Devices on slow links gzip their pushes; the limit above applies to the inflated body.
        .layer(tower_http::decompression::RequestDecompressionLayer::new().gzip(true))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// Puts the request id into problem bodies, turns axum's own rejections into
/// problem JSON, and logs each request (the cause of a 500 included) with its id.
async fn problem_and_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let traceparent = traceparent(req.headers()).map(str::to_string);
    let trace_id = traceparent.as_deref().map(|t| &t[3..35]).unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_deref().unwrap_or("-"),
        trace_id
    );
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let _entered = span.enter();
    if let Some(t) = traceparent
        .as_deref()
        .and_then(|t| axum::http::HeaderValue::from_str(t).ok())
    {
        resp.headers_mut().insert("traceparent", t);
    }
    let status = resp.status();
    let cause = resp
        .extensions()
        .get::<InternalCause>()
        .map(|c| c.0.clone());
    let resp = if status.is_client_error() || status.is_server_error() {
        with_problem_body(resp, request_id.as_deref()).await
    } else {
        resp
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match cause {
        Some(cause) => {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), %method, %path, status = status.as_u16(), ms, cause, "request failed")
        }
        None => {
            tracing::info!(request_id = request_id.as_deref().unwrap_or("-"), %method, %path, status = status.as_u16(), ms, "request")
        }
    }
    resp
}

/// The W3C `traceparent` header when well formed
/// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero).
pub(crate) fn traceparent(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    ok.then_some(v)
}

async fn with_problem_body(resp: Response, request_id: Option<&str>) -> Response {
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let status = resp.status();
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut problem: serde_json::Value = if is_problem {
        serde_json::from_slice(&bytes).unwrap_or_default()
    } else {
        // axum's own rejections (bad JSON, wrong content type, body too large, no route).
        let code = match status.as_u16() {
            413 => glassguard_protocol::ErrorCode::PayloadTooLarge,
            404 => glassguard_protocol::ErrorCode::NotFound,
            405 => glassguard_protocol::ErrorCode::NotFound,
            500..=599 => glassguard_protocol::ErrorCode::Internal,
            _ => glassguard_protocol::ErrorCode::InvalidRequest,
        };
        let detail = String::from_utf8_lossy(&bytes)
            .chars()
            .take(300)
            .collect::<String>();
        serde_json::json!({
            "type": format!("urn:glassguard:problem:{code}"),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "code": code,
            "detail": if detail.is_empty() { None } else { Some(detail) },
        })
    };
    if let (Some(obj), Some(id)) = (problem.as_object_mut(), request_id) {
        obj.insert(
            "request_id".into(),
            serde_json::Value::String(id.to_string()),
        );
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body)).into_response()
}

/// The client address, as the connection reports it.
pub(crate) fn client_ip(req_parts: &axum::http::request::Parts) -> Option<IpAddr> {
    req_parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Builds the principal the authorizer sees.
pub(crate) fn principal_of(user: Option<&AuthedUser>) -> Principal {
    match user {
        None => Principal::Anonymous,
        Some(u) => Principal::User {
            id: u.user_id,
            role: u.role,
            partner: u.partner_id,
            active: u.active,
        },
    }
}

/// A partner status as the authorizer names it.
pub fn partner_status_name(s: glassguard_protocol::api::PartnerStatus) -> &'static str {
    match s {
        glassguard_protocol::api::PartnerStatus::Pending => "pending",
        glassguard_protocol::api::PartnerStatus::Approved => "approved",
        glassguard_protocol::api::PartnerStatus::Suspended => "suspended",
    }
}
