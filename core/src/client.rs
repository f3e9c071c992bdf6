//! The HTTP client: one reqwest client, one place that turns answers into
//! [`Error`]s.
//!
//! Every request carries a fresh `x-request-id` (UUIDv7) and a W3C
//! `traceparent` whose trace id is shared by all requests of one sync run
//! (a [`Trace`]), so the server's logs and audit trail can follow a run.
//! Responses may be gzip-compressed; push bodies are gzipped by the caller's
//! choice. Connect and read timeouts are bounded, TLS is rustls with TLS 1.3
//! as the floor, and an optional pin replaces CA trust ([`crate::tls`]).
//!
//! Plain `http://` is accepted only for loopback hosts (development and
//! tests); anything else must be `https://`.

use std::net::IpAddr;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use glassguard_protocol::{ErrorCode, Problem};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::tls;

/// How long to wait for a TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait between bytes of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One W3C trace (a sync run, or a single user call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trace {
    trace_id: u128,
}

impl Trace {
    /// A fresh random trace.
    pub(crate) fn new() -> Self {
        // All-zero ids are invalid in W3C trace context.
        Self {
            trace_id: fastrand::u128(1..),
        }
    }

    /// A `traceparent` for one request (a fresh span) in this trace.
    pub(crate) fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, fastrand::u64(1..))
    }
}

/// What goes in a request body.
#[derive(Debug)]
pub(crate) enum Body<'a, B: Serialize> {
    /// No body.
    Empty,
    /// JSON.
    Json(&'a B),
    /// JSON, gzip-compressed (`Content-Encoding: gzip`).
    GzipJson(&'a B),
}

// Manual impls: a derive would demand `B: Copy`, but only the reference is copied.
impl<B: Serialize> Clone for Body<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Serialize> Copy for Body<'_, B> {}

/// The server's HTTP API.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    /// A client for `server_url`, optionally trusting only `pin`.
    pub(crate) fn new(server_url: &str, pin: Option<[u8; 32]>) -> Result<Self> {
        let mut base = Url::parse(server_url)
            .map_err(|e| Error::Config(format!("server URL {server_url:?}: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&base) && pin.is_none() => {}
            "http" if pin.is_some() => {
                return Err(Error::Config(
                    "a pinned server key needs an https:// server URL".into(),
                ));
            }
            "http" => {
                return Err(Error::Config(
                    "plain http:// is only allowed for a loopback server; use https://".into(),
                ));
            }
            other => return Err(Error::Config(format!("unsupported URL scheme {other}"))),
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .gzip(true)
            .user_agent(concat!("glassguard-core/", env!("CARGO_PKG_VERSION")));
        builder = match pin {
            Some(pin) => builder.tls_backend_preconfigured(tls::pinned_config(pin)?),
            None => builder.tls_version_min(reqwest::tls::Version::TLS_1_3),
        };
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self { http, base })
    }

    /// Sends one request and decodes a JSON answer (or `()` for an empty one).
    #[tracing::instrument(skip_all, fields(%method, path, request_id))]
    pub(crate) async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_, B>,
        token: Option<&str>,
        trace: &Trace,
    ) -> Result<T> {
        let mut url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::Config(format!("path {path}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let request_id = Uuid::now_v7().to_string();
        tracing::Span::current().record("request_id", request_id.as_str());
        let mut req = self
            .http
            .request(method, url)
            .header("x-request-id", &request_id)
            .header("traceparent", trace.traceparent());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req = match body {
            Body::Empty => req,
            Body::Json(b) => req
                .header(CONTENT_TYPE, "application/json")
                .body(to_json(b)?),
            Body::GzipJson(b) => req
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_ENCODING, "gzip")
                .body(gzip(&to_json(b)?)?),
        };
        let resp = req.send().await.map_err(network)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(network)?;
        tracing::debug!(status = status.as_u16(), len = bytes.len(), "answer");
        if status.is_success() {
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes)
                .map_err(|e| Error::Protocol(format!("{path}: undecodable answer: {e}")));
        }
        Err(refusal(status, &headers, &bytes, request_id))
    }
}

/// The headers of a 2xx answer to a [`Client::raw`] request.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The headers.
    pub(crate) headers: HeaderMap,
}

impl RawAnswer {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// Resolves a path or a `Location` against the server URL.
    pub(crate) fn url(&self, location: &str) -> Result<Url> {
        let joined = if location.starts_with('/') || location.contains("://") {
            self.base.join(location)
        } else {
            self.base.join(location.trim_start_matches('/'))
        };
        joined.map_err(|e| Error::Protocol(format!("location {location:?}: {e}")))
    }

    /// Sends one request with extra headers and raw bytes (the tus upload
    /// requests); a non-2xx answer is an error, as with [`Client::send`].
    #[tracing::instrument(skip_all, fields(%method, request_id))]
    pub(crate) async fn raw(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
        token: Option<&str>,
        trace: &Trace,
    ) -> Result<RawAnswer> {
        let request_id = Uuid::now_v7().to_string();
        tracing::Span::current().record("request_id", request_id.as_str());
        let mut req = self
            .http
            .request(method, url)
            .header("x-request-id", &request_id)
            .header("traceparent", trace.traceparent());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.map_err(network)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(network)?;
        if status.is_success() {
            return Ok(RawAnswer { headers });
        }
        Err(refusal(status, &headers, &bytes, request_id))
    }
}

fn to_json<B: Serialize>(b: &B) -> Result<Vec<u8>> {
    serde_json::to_vec(b).map_err(|e| Error::Internal(format!("encoding a request: {e}")))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    enc.write_all(bytes)
        .and_then(|_| enc.finish())
        .map_err(|e| Error::Internal(format!("gzip: {e}")))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn network(e: reqwest::Error) -> Error {
    if tls::is_pin_mismatch(&e) {
        Error::PinMismatch
    } else {
        Error::Network(e)
    }
}

fn retry_after(headers: &HeaderMap, problem: Option<&Problem>) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| problem.and_then(|p| p.retry_after_seconds))
        .map(Duration::from_secs)
}

/// Turns a non-2xx answer into an error.
fn refusal(status: StatusCode, headers: &HeaderMap, body: &[u8], request_id: String) -> Error {
    let problem: Option<Problem> = serde_json::from_slice(body).ok();
    let request_id = problem
        .as_ref()
        .and_then(|p| p.request_id.clone())
        .or(Some(request_id));
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Error::RateLimited {
            retry_after: retry_after(headers, problem.as_ref()),
        };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Error::Server {
            status: status.as_u16(),
            retry_after: retry_after(headers, problem.as_ref()),
            request_id,
        };
    }
    match problem {
        Some(p) => Error::Refused {
            status: status.as_u16(),
            code: p.code,
            message: p.detail.unwrap_or(p.title),
            current_state: p.current_state,
            request_id,
        },
        None => Error::Refused {
            status: status.as_u16(),
            code: match status {
                StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
                StatusCode::FORBIDDEN => ErrorCode::Forbidden,
                StatusCode::NOT_FOUND => ErrorCode::NotFound,
                StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
                _ => ErrorCode::InvalidRequest,
            },
            message: format!("the server answered {status}"),
            current_state: None,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_be_plain_http() {
        assert!(Client::new("http://127.0.0.1:8080", None).is_ok());
        assert!(Client::new("http://localhost:8080/api", None).is_ok());
        assert!(Client::new("http://[::1]:8080", None).is_ok());
        assert!(matches!(
            Client::new("http://example.com", None),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new("http://127.0.0.1:1", Some([0; 32])),
            Err(Error::Config(_))
        ));
        assert!(Client::new("https://example.com", Some([0; 32])).is_ok());
        assert!(matches!(
            Client::new("ftp://example.com", None),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn traceparent_is_w3c() {
        let t = Trace::new();
        let a = t.traceparent();
        let b = t.traceparent();
        let parts: Vec<_> = a.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(parts[1].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(&a[..35], &b[..35], "one trace id per run");
        assert_ne!(a, b, "a fresh span per request");
        assert_ne!(&Trace::new().traceparent()[3..35], &a[3..35]);
    }

    #[test]
    fn refusals_map_to_errors() {
        let h = HeaderMap::new();
        let problem = serde_json::json!({
            "type": "urn:glassguard:problem:token_expired", "title": "t", "status": 401,
            "code": "token_expired", "detail": "expired"
        });
        let e = refusal(
            StatusCode::UNAUTHORIZED,
            &h,
            problem.to_string().as_bytes(),
            "r".into(),
        );
        assert_eq!(e.code(), Some(ErrorCode::TokenExpired));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        let e = refusal(StatusCode::TOO_MANY_REQUESTS, &h, b"", "r".into());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(!e.is_permanent());
        let e = refusal(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>",
            "r".into(),
        );
        assert!(matches!(e, Error::Server { status: 502, .. }));
        let e = refusal(StatusCode::NOT_FOUND, &HeaderMap::new(), b"", "r".into());
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
    }
}
