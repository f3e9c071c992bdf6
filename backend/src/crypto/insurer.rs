//! The insurer's sealing key: the X25519 private key that devices seal claim
//! photos and documents to (HPKE, see `glassguard-seal`). Devices hold only
//! the public half, so a lost phone cannot read back a photo it sent; the
//! server opens a sealed blob only to show it to insurer staff.
//!
//! The private key comes from a [`KeySource`], the same trait as the master
//! key: by default a local key file (32 random bytes, created on first run,
//! owner-only), a KMS-backed source at scale. It is never stored in the
//! database.

use std::fmt;

use glassguard_seal::{PrivateKey, PublicKey, SealError};

use super::error::{CryptoError, Result};
use super::master::KeySource;

/// The HPKE suite devices seal to, as the key endpoint names it.
pub const SUITE: &str = "x25519-hkdf-sha256-aes256gcm";

/// The insurer's key pair for sealed blobs.
pub struct InsurerKey {
    private: PrivateKey,
    public: PublicKey,
}

impl InsurerKey {
    /// Loads (or on first run creates) the key from `source`.
    pub async fn load(source: &dyn KeySource) -> Result<Self> {
        let secret = source.load().await?;
        let private =
            PrivateKey::from_bytes(secret.expose()).map_err(|_| CryptoError::InsurerKey)?;
        let public = private.public_key();
        Ok(Self { private, public })
    }

    /// The public key devices seal to.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key as 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex::encode(self.public.to_bytes())
    }

    /// Opens a sealed blob (the whole blob in memory: photos are capped in size).
    pub fn open(&self, blob: &[u8]) -> std::result::Result<Vec<u8>, SealError> {
        glassguard_seal::open(&self.private, blob)
    }
}

impl fmt::Debug for InsurerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsurerKey")
            .field("public", &self.public_hex())
            .field("private", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::LocalKeyFile;

    #[tokio::test]
    async fn a_key_file_gives_the_same_key_pair_and_opens_what_was_sealed_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalKeyFile::new(dir.path().join("insurer.key"));
        let key = InsurerKey::load(&source).await.unwrap();
        let again = InsurerKey::load(&source).await.unwrap();
        assert_eq!(key.public_hex(), again.public_hex());
        let sealed = glassguard_seal::seal(key.public_key(), b"a cracked screen").unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"a cracked screen");
        let other = InsurerKey::load(&LocalKeyFile::new(dir.path().join("other.key")))
            .await
            .unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.private.to_bytes())));
    }
}
