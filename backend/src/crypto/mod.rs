//! Encryption at rest for PII, blind indexes, OTP storage and randomness.
//!
//! How data flows:
//!
//! 1. At start-up a [`KeySource`] ([`LocalKeyFile`] by default,
//!    [`KmsKeySource`] at scale) yields the [`MasterKey`] (several versions
//!    while a rotation runs).
//! 2. [`Keyring::generate`] (first run) or [`Keyring::open`] (later runs)
//!    derives the key-encryption key (KEK) from it with HKDF-SHA256 and
//!    unwraps, or creates, the system keys: the blind-index key and the OTP
//!    key. The master key is dropped (and zeroized) right after.
//! 3. Each row with PII gets its own [`DataKey`] (DEK), stored next to the
//!    row as a [`WrappedKey`]: AES-256-GCM under the KEK, bound to the
//!    master key version and a row binding such as `"claims/<id>"`.
//! 4. Each PII column value is sealed with AES-256-GCM under the row's DEK,
//!    bound to its table, column and row id by [`FieldAad`].
//! 5. Columns that must be searchable by equality (phone, IMEI, GSTIN) also
//!    store [`Keyring::blind_index`], an HMAC under the blind-index key.
//! 6. OTP codes are stored only as [`Keyring::otp_mac`] and checked in
//!    constant time with [`Keyring::otp_verify`].
//!
//! Tokens, codes and nonces come from the OS CSPRNG via the helpers in
//! [`tokens`]. All primitives are from `ring`; key bytes live in zeroizing
//! containers and every `Debug` impl prints `[redacted]` instead of keys.

mod error;
mod field;
mod gcm;
mod insurer;
mod keyring;
mod kms;
mod master;
pub mod tokens;

pub use error::{CryptoError, Result};
pub use field::{DataKey, FieldAad};
pub use insurer::{InsurerKey, SUITE as SEALING_SUITE};
pub use keyring::{Keyring, SYSTEM_KEY_BLIND_INDEX, SYSTEM_KEY_OTP, WrappedKey};
pub use kms::{KEYS_PREFIX, KmsKeySource, WrappedMasterKey};
pub use master::{KeySource, LocalKeyFile, MasterKey};
pub use tokens::{random_bytes, random_code, random_digits, random_token, token_hash};
