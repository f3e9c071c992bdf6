//! The core's one error type.
//!
//! Variants are named after what failed for the user, not after the library
//! that failed. [`Error::is_permanent`] is what the sync engine asks before it
//! retries: a transient error (network, 5xx, 429) is retried with backoff, a
//! permanent one waits for the next trigger.

use std::path::PathBuf;
use std::time::Duration;

use glassguard_protocol::{ClaimState, ErrorCode};

/// Every way a core call can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database key does not open the store (or the file is not a store).
    #[error(
        "the database key does not open {path} (wrong key, or not a Glassguard database); nothing was changed"
    )]
    WrongKey {
        /// The database file.
        path: PathBuf,
    },
    /// This build's SQLite has no encryption; the core refuses to store data in the clear.
    #[error("the local store would not be encrypted: this build has no SQLCipher")]
    NotEncrypted,
    /// The store was written by a newer version of the core.
    #[error(
        "the local store has schema version {found}, newer than this build knows ({known}); update the app"
    )]
    SchemaTooNew {
        /// The file's `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The data directory cannot be used.
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A query on the local store failed.
    #[error("local store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The configuration the shell handed in is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The call needs a signed-in user.
    #[error("not signed in")]
    NotSignedIn,
    /// The server ended the session (refresh token invalid or reused); sign in again.
    #[error("the session has ended ({code}); sign in again")]
    SessionEnded {
        /// `refresh_token_invalid`, `refresh_token_reused`, `unauthenticated` or `device_mismatch`.
        code: ErrorCode,
    },
    /// A local check refused the call before anything was written or sent.
    #[error("{message}")]
    Invalid {
        /// The stable code the UI branches on.
        code: ErrorCode,
        /// A sentence for a person.
        message: String,
    },
    /// The server refused the request (a 4xx problem answer).
    #[error("the server refused ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The stable code.
        code: ErrorCode,
        /// A sentence safe to show a person.
        message: String,
        /// For `stale_state` / `illegal_transition`: where the claim is now.
        current_state: Option<ClaimState>,
        /// The request id, for support.
        request_id: Option<String>,
    },
    /// The server asked us to slow down (429).
    #[error("the server is busy; retry later")]
    RateLimited {
        /// The `Retry-After` delay, if the server gave one.
        retry_after: Option<Duration>,
    },
    /// The server failed (5xx, or 408).
    #[error("the server failed with status {status}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` delay, if the server gave one.
        retry_after: Option<Duration>,
        /// The request id, for support.
        request_id: Option<String>,
    },
    /// The server presented a certificate whose key is not the pinned one.
    #[error("the server's certificate key does not match the pinned key; refusing to connect")]
    PinMismatch,
    /// The request did not reach the server or its answer did not come back.
    #[error("network: {0}")]
    Network(#[source] reqwest::Error),
    /// The server answered something the contract does not allow.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The server's outbox sequence is behind what this device knows it sent:
    /// the server lost rows (restore, reset) or the device id was reused.
    #[error(
        "the server expects change #{expected}, but this device's next unsent change is #{next_pending}; the server may have been reset, contact support"
    )]
    SequenceMismatch {
        /// What the server expects next.
        expected: u64,
        /// The device's first pending `client_seq`.
        next_pending: u64,
    },
    /// The photo file is larger than [`PhotoLimits::max_file_bytes`](crate::photos::PhotoLimits).
    #[error("the photo is {bytes} bytes; at most {max} are accepted")]
    PhotoTooLarge {
        /// The file's size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The photo's header claims more pixels, or a longer side, than the
    /// limits allow; refused before anything was decoded.
    #[error(
        "the photo is {width}x{height} pixels; at most {max_pixels} pixels and {max_dimension} per side are accepted"
    )]
    PhotoTooManyPixels {
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// The pixel-count limit.
        max_pixels: u64,
        /// The per-side limit.
        max_dimension: u64,
    },
    /// The file is not a JPEG or PNG.
    #[error("not a photo this app can read (JPEG or PNG expected)")]
    PhotoUnsupported,
    /// The photo file is damaged or cut short.
    #[error("the photo file is damaged: {0}")]
    PhotoCorrupt(String),
    /// Sealing a photo to the insurer's key failed.
    #[error("sealing the photo failed: {0}")]
    Seal(#[from] glassguard_seal::SealError),
    /// Writing a photo's sealed file failed.
    #[error("cannot write the sealed photo {path}: {source}")]
    PhotoFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored value could not be read back (a bug, or a damaged store).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A background task ended unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when retrying the same request cannot help (the engine then waits
    /// for the next trigger instead of backing off and retrying).
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            Error::Network(_) | Error::Server { .. } | Error::RateLimited { .. }
        )
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after } | Error::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The stable code for the UI to branch on, where there is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Refused { code, .. }
            | Error::Invalid { code, .. }
            | Error::SessionEnded { code } => Some(*code),
            Error::RateLimited { .. } => Some(ErrorCode::RateLimited),
            Error::NotSignedIn => Some(ErrorCode::Unauthenticated),
            Error::Server { .. } => Some(ErrorCode::Unavailable),
            Error::PhotoTooLarge { .. } => Some(ErrorCode::PhotoTooLarge),
            Error::PhotoTooManyPixels { .. } => Some(ErrorCode::PhotoTooManyPixels),
            Error::PhotoUnsupported => Some(ErrorCode::PhotoUnsupported),
            Error::PhotoCorrupt(_) => Some(ErrorCode::PhotoCorrupt),
            _ => None,
        }
    }

    pub(crate) fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Error::Corrupt(what.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        // Only stored JSON is parsed with `?`; wire bodies map to `Protocol` explicitly.
        Error::Corrupt(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transport_and_server_failures_are_retried() {
        assert!(!Error::RateLimited { retry_after: None }.is_permanent());
        assert!(
            !Error::Server {
                status: 503,
                retry_after: None,
                request_id: None
            }
            .is_permanent()
        );
        assert!(Error::PinMismatch.is_permanent());
        assert!(
            Error::Refused {
                status: 422,
                code: ErrorCode::InvalidRequest,
                message: String::new(),
                current_state: None,
                request_id: None
            }
            .is_permanent()
        );
        assert!(
            Error::SequenceMismatch {
                expected: 1,
                next_pending: 5
            }
            .is_permanent()
        );
    }
}
