//! How the SMS gateway signs the inbound-SMS webhook.
//!
//! The gateway and the server share a secret
//! (`GLASSGUARD_SMS_WEBHOOK_SECRET`). Each request carries
//!
//! - `x-glassguard-timestamp`: Unix seconds when it was sent, and
//! - `x-glassguard-signature`: `v1=` and the hex HMAC-SHA256, under the
//!   secret, of the timestamp, a `.`, and the raw request body.
//!
//! The server refuses a missing or wrong signature, and a timestamp more
//! than [`MAX_SKEW_SECONDS`] away from its clock (a replayed request); a
//! gateway retry within that window is caught by the message id instead.
//! The comparison is constant-time (`ring::hmac::verify`).

use ring::hmac;

/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-glassguard-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-glassguard-signature";
/// How far a timestamp may be from the server's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is missing.
    #[error("the request is not signed ({0} is missing)")]
    Missing(&'static str),
    /// A header does not parse.
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    /// Too old or too far in the future.
    #[error("the signature timestamp is too far from the server's clock")]
    Stale,
    /// The HMAC does not match.
    #[error("the signature does not match")]
    Mismatch,
}

fn message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}.").into_bytes();
    m.extend_from_slice(body);
    m
}

/// The `x-glassguard-signature` value for a body sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!(
        "v1={}",
        hex::encode(hmac::sign(&key, &message(timestamp, body)).as_ref())
    )
}

/// Checks a request's headers against its body at `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let ts = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let sig = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(TIMESTAMP_HEADER))?;
    let mac = sig
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|m| m.len() == 32)
        .ok_or(SignatureError::Malformed(SIGNATURE_HEADER))?;
    if (now - ts).abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &message(ts, body), &mac).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bodies_verify_and_tampering_does_not() {
        let secret = b"shared-secret";
        let body = br#"{"from":"+919812345678","text":"plans"}"#;
        let sig = sign(secret, 1_000, body);
        assert_eq!(
            verify(secret, Some("1000"), Some(&sig), body, 1_010),
            Ok(())
        );
        assert_eq!(
            verify(secret, Some("1000"), Some(&sig), b"{}", 1_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some("1000"), Some(&sig), body, 1_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, Some("1001"), Some(&sig), body, 1_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                secret,
                Some("1000"),
                Some(&sig),
                body,
                1_000 + MAX_SKEW_SECONDS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(secret, None, Some(&sig), body, 1_000),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(secret, Some("1000"), Some("v1=zz"), body, 1_000),
            Err(SignatureError::Malformed(SIGNATURE_HEADER))
        );
    }
}
