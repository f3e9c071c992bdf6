//! Randomness and token hashing.
//!
//! Every random value in the backend (session and API tokens, OTP codes,
//! voucher codes, nonces, fresh keys) comes from [`ring::rand::SystemRandom`],
//! i.e. the operating system's CSPRNG, through the helpers here. Tokens are
//! handed to clients once and only their [`token_hash`] is stored, so a
//! database leak does not leak usable tokens.
//!
//! The infallible helpers panic if the OS random number generator fails:
//! that cannot be recovered from (continuing would mean predictable keys and
//! tokens) and does not happen on supported platforms. Code that already
//! returns [`Result`] uses [`try_fill`] instead.

use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

use super::error::{CryptoError, Result};

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn try_fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new().fill(buf).map_err(|_| CryptoError::Rng)
}

/// Fills `buf` from the OS CSPRNG, panicking if it fails (see module docs).
pub(crate) fn fill(buf: &mut [u8]) {
    if try_fill(buf).is_err() {
        // Continuing with a zeroed or partial buffer would hand out
        // predictable secrets; aborting the request is the only safe option.
        panic!("the operating system's random number generator failed");
    }
}

/// `N` random bytes.
///
/// # Panics
/// If the OS random number generator fails.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// A fresh bearer token: 32 random bytes (256 bits), base64url without
/// padding (43 characters).
///
/// # Panics
/// If the OS random number generator fails.
pub fn random_token() -> String {
    let bytes = zeroize::Zeroizing::new(random_bytes::<32>());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_slice())
}

/// The SHA-256 of a token, which is what gets stored and looked up.
///
/// A plain (unkeyed, unsalted) hash is right here because tokens are 256-bit
/// random values: there is nothing to brute-force. Do not use this for
/// low-entropy secrets such as OTP codes or passwords.
pub fn token_hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `n` uniformly random decimal digits (e.g. an OTP code).
///
/// # Panics
/// If the OS random number generator fails.
pub fn random_digits(n: usize) -> String {
    random_code(b"0123456789", n)
}

/// `len` symbols drawn uniformly from `alphabet` (e.g. voucher codes).
///
/// Uses rejection sampling: bytes at or above the largest multiple of the
/// alphabet size are discarded, so `byte % size` carries no modulo bias.
///
/// # Panics
/// If `alphabet` is empty or not ASCII (both programmer errors: alphabets
/// are constants), or if the OS random number generator fails.
pub fn random_code(alphabet: &[u8], len: usize) -> String {
    assert!(!alphabet.is_empty(), "random_code: empty alphabet");
    assert!(alphabet.is_ascii(), "random_code: alphabet must be ASCII");
    // ASCII means at most 128 symbols, so `size` fits and `limit` > 0.
    let size = alphabet.len();
    let limit = 256 - (256 % size);

    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        for &b in &buf {
            if out.len() == len {
                break;
            }
            let b = usize::from(b);
            if b < limit {
                out.push(char::from(alphabet[b % size]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn token_is_43_chars_of_32_bytes_and_unique() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .expect("base64url");
        assert_eq!(decoded.len(), 32);
    }

    #[test]
    fn token_hash_is_sha256() {
        assert_eq!(
            hex::encode(token_hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(token_hash("a"), token_hash("b"));
    }

    #[test]
    fn random_digits_are_digits_of_exact_length_and_all_appear() {
        let mut counts = [0usize; 10];
        for _ in 0..2_000 {
            let code = random_digits(6);
            assert_eq!(code.len(), 6);
            for c in code.bytes() {
                assert!(c.is_ascii_digit());
                counts[usize::from(c - b'0')] += 1;
            }
        }
        // 12 000 digits: expected 1 200 each, sd ~33. A bias as large as
        // plain `% 10` on bytes (~+2.4% on 0-5) would not be caught here,
        // but a broken mapping (missing or doubled digits) is.
        for (digit, &n) in counts.iter().enumerate() {
            assert!(
                (1_000..1_400).contains(&n),
                "digit {digit} appeared {n} times"
            );
        }
        assert_eq!(random_digits(0), "");
        assert_eq!(random_digits(1_000).len(), 1_000);
    }

    #[test]
    fn random_code_uses_only_alphabet_and_covers_it() {
        let alphabet = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
        let code = random_code(alphabet, 5_000);
        assert_eq!(code.len(), 5_000);
        assert!(code.bytes().all(|c| alphabet.contains(&c)));
        for &c in alphabet {
            assert!(
                code.as_bytes().contains(&c),
                "{} never drawn",
                char::from(c)
            );
        }
        assert_eq!(random_code(b"x", 3), "xxx");
    }

    #[test]
    #[should_panic(expected = "empty alphabet")]
    fn random_code_rejects_empty_alphabet() {
        let _ = random_code(b"", 1);
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
        assert_eq!(random_bytes::<0>(), [0u8; 0]);
    }

    proptest! {
        #[test]
        fn random_code_length_is_exact(len in 0usize..200, size in 1usize..=128) {
            let alphabet: Vec<u8> = (0..size).map(|i| u8::try_from(i).unwrap_or(0)).collect();
            let code = random_code(&alphabet, len);
            prop_assert_eq!(code.len(), len);
            prop_assert!(code.bytes().all(|b| usize::from(b) < size));
        }
    }
}
