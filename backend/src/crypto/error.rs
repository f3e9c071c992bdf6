//! The crypto module's error type.
//!
//! Every fallible operation under `crypto` returns [`CryptoError`]. The
//! variants are named after what went wrong so callers can decide between
//! "refuse to start" (key file, master key problems) and "treat this row as
//! corrupt" (decryption failures). No variant ever carries key material.

use std::path::PathBuf;

/// The result type of the crypto module.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// What can go wrong while loading keys, wrapping/unwrapping keys or
/// decrypting fields.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authenticated decryption failed: the ciphertext was tampered with or
    /// truncated, or the key or associated data (table, column, row id,
    /// binding) is not the one it was sealed with. Deliberately not more
    /// specific: AES-GCM cannot tell these apart, and neither should we.
    #[error(
        "decryption failed: the ciphertext is corrupt or was sealed under another key or binding"
    )]
    Decrypt,

    /// Encryption failed: the plaintext exceeds AES-GCM's per-message limit
    /// (about 64 GiB), far beyond any field or key.
    #[error("encryption failed: input too long")]
    Encrypt,

    /// Decryption succeeded but the plaintext is not UTF-8, so it was not
    /// sealed with `seal_str`.
    #[error("decrypted field is not valid UTF-8")]
    NotUtf8,

    /// The configured master key cannot unwrap the stored system keys: the
    /// key file was replaced or points at another installation's key.
    /// Starting anyway would make every encrypted column unreadable.
    #[error(
        "the master key does not match the one the stored keys were wrapped with \
         (was the key file replaced?); refusing to start"
    )]
    WrongMasterKey,

    /// A system key that must be stored after the first run is missing.
    #[error("stored system key {0:?} is missing; the key table is incomplete")]
    MissingSystemKey(String),

    /// A wrapped key names a master key version this keyring does not hold.
    #[error("wrapped key needs master key version {0}, which is not loaded")]
    UnknownMasterVersion(u32),

    /// Stored wrapped-key bytes are not in a shape this code understands.
    #[error("malformed wrapped key: {0}")]
    MalformedWrappedKey(&'static str),

    /// Bindings under `system/` are reserved for the keyring's own keys, so
    /// that a stored system key can never be unwrapped as a row's data key.
    #[error("key binding {0:?} is reserved for system keys")]
    ReservedBinding(String),

    /// The master key file could not be read, created or written.
    #[error("master key file {}: {source}", path.display())]
    KeyFileIo {
        /// The key file's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The master key file is readable or writable by group or others.
    #[error(
        "master key file {} has mode {mode:o} and is accessible by group or others; \
         refusing to use it (run `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The key file's path.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },

    /// The master key file does not hold exactly 64 hex digits.
    #[error("master key file {} is corrupt: expected one line of 64 hex digits", path.display())]
    KeyFileCorrupt {
        /// The key file's path.
        path: PathBuf,
    },

    /// The insurer key source did not yield a usable X25519 private key.
    #[error("the insurer's sealing key is not an X25519 private key")]
    InsurerKey,

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Rng,

    /// Key derivation failed (cannot happen with the fixed lengths used
    /// here; kept as an error rather than a panic).
    #[error("key derivation failed")]
    KeyDerivation,

    /// The KMS key source could not produce the master key (KMS
    /// unreachable, key refused, wrapped key missing or corrupt). The
    /// message says which, and what to do.
    #[error("KMS key source: {0}")]
    Kms(String),
}
