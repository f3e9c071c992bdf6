//! AES-256-GCM with a random nonce, the one AEAD construction used by this
//! module, for both field encryption (under a data key) and key wrapping
//! (under a key-encryption key).
//!
//! Layout: `nonce (12 bytes) || ciphertext || tag (16 bytes)`. Nonces are
//! random: each key seals few messages (a data key covers one row; a KEK
//! wraps one key per row), far below the ~2^32 messages at which random
//! 96-bit nonces start to risk a collision.
//!
//! ring's key types are built per call from the raw bytes rather than kept
//! around, because ring does not zeroize them on drop; the raw bytes live in
//! zeroizing containers owned by the callers.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroize as _;

use super::error::{CryptoError, Result};
use super::tokens;

/// Bytes that sealing adds to a plaintext: the nonce and the tag.
pub(super) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const TAG_LEN: usize = 16;

/// `new` only rejects keys of the wrong length, which the array type rules
/// out; the error is still mapped rather than unwrapped.
fn key(bytes: &[u8; 32], on_error: CryptoError) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| on_error)
}

/// Seals `plaintext` under `key` with a fresh random nonce.
pub(super) fn seal(key_bytes: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = key(key_bytes, CryptoError::Encrypt)?;
    let mut nonce = [0u8; NONCE_LEN];
    tokens::try_fill(&mut nonce)?;

    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Encrypt);
    match tag {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(out)
        }
        Err(e) => {
            // `out` still holds a copy of the plaintext.
            out.zeroize();
            Err(e)
        }
    }
}

/// Opens `sealed` (as produced by [`seal`]) under `key`; any tampering,
/// truncation, wrong key or wrong `aad` is [`CryptoError::Decrypt`].
pub(super) fn open(key_bytes: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;

    let key = key(key_bytes, CryptoError::Decrypt)?;
    let mut buf = ciphertext.to_vec();
    let opened = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map(|plain| plain.len());
    match opened {
        Ok(len) => {
            buf.truncate(len);
            Ok(buf)
        }
        Err(_) => {
            // Don't leave unauthenticated decrypted bytes lying around.
            buf.zeroize();
            Err(CryptoError::Decrypt)
        }
    }
}
