//! Errors at the HTTP edge: one `ApiError`, each variant one status, written
//! as RFC 9457 problem JSON with a stable `code`. Internal errors are logged
//! by the middleware with the request id and never shown to the caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glassguard_protocol::problem::ParseError;
use glassguard_protocol::{ClaimState, ErrorCode, Problem};

/// The one error type handlers return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The input did not parse, or breaks a rule (422 or 400).
    #[error("{1}")]
    Invalid(ErrorCode, String),
    /// No or bad credentials (401).
    #[error("{1}")]
    Unauthenticated(ErrorCode, String),
    /// Authenticated but not allowed (403).
    #[error("you are not allowed to do this")]
    Forbidden,
    /// Not there, or not the caller's to know about (404).
    #[error("not found")]
    NotFound,
    /// Conflicts with the current state (409).
    #[error("{1}")]
    Conflict(ErrorCode, String, Option<ClaimState>),
    /// Too many requests (429).
    #[error("{1}")]
    TooMany(ErrorCode, String, u64),
    /// The body is too large (413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// A precondition header is missing or unsupported (412).
    #[error("{1}")]
    PreconditionFailed(ErrorCode, String),
    /// The body is not of a type the endpoint accepts (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The thing existed but is gone for good (410).
    #[error("{1}")]
    Gone(ErrorCode, String),
    /// An upload chunk does not match its checksum (460, tus checksum extension).
    #[error("{0}")]
    ChecksumMismatch(String),
    /// Anything else (500); the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// tus 1.0's "460 Checksum Mismatch" (checksum extension).
pub fn checksum_mismatch_status() -> StatusCode {
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A business-rule refusal (422) with its code.
    pub fn rule(code: ErrorCode, msg: impl Into<String>) -> Self {
        ApiError::Invalid(code, msg.into())
    }

    /// A conflict (409) with its code.
    pub fn conflict(code: ErrorCode, msg: impl Into<String>) -> Self {
        ApiError::Conflict(code, msg.into(), None)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PreconditionFailed(..) => StatusCode::PRECONDITION_FAILED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Gone(..) => StatusCode::GONE,
            ApiError::ChecksumMismatch(_) => checksum_mismatch_status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Invalid(c, _)
            | ApiError::Unauthenticated(c, _)
            | ApiError::PreconditionFailed(c, _)
            | ApiError::Gone(c, _)
            | ApiError::Conflict(c, _, _) => *c,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::ChecksumMismatch(_) => ErrorCode::ChecksumMismatch,
            ApiError::TooMany(c, _, _) => *c,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::Invalid(e.code, e.message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Carried in the response extensions so the logging middleware can log the
/// cause of a 500 next to the request id; the body never shows it.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let (detail, current_state, retry) = match &self {
            ApiError::Internal(_) => (
                Some(
                    "Something went wrong on our side; quote the request id to support."
                        .to_string(),
                ),
                None,
                None,
            ),
            ApiError::Conflict(_, m, s) => (Some(m.clone()), *s, None),
            ApiError::TooMany(_, m, r) => (Some(m.clone()), None, Some(*r)),
            other => (Some(other.to_string()), None, None),
        };
        let problem = Problem {
            kind: format!("urn:glassguard:problem:{code}"),
            title: status
                .canonical_reason()
                .unwrap_or(match status.as_u16() {
                    460 => "Checksum Mismatch",
                    _ => "error",
                })
                .to_string(),
            status: status.as_u16(),
            code,
            detail,
            request_id: None, // filled in by the request-id middleware
            current_state,
            retry_after_seconds: retry,
        };
        let mut resp = (status, axum::Json(problem)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(v) = retry.and_then(|r| HeaderValue::from_str(&r.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let ApiError::Internal(e) = self {
            resp.extensions_mut()
                .insert(InternalCause(format!("{e:#}")));
        }
        resp
    }
}
