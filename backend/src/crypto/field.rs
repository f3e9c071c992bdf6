//! Field encryption: PII columns sealed under a per-row data key.
//!
//! A repository asks the [`Keyring`](super::Keyring) for a fresh
//! [`DataKey`] when it inserts a row (storing the returned wrapped key next
//! to the row), or unwraps the stored one when it reads the row. Each PII
//! column value is then sealed with [`DataKey::seal`] /
//! [`DataKey::seal_str`] and stored as `nonce || ciphertext || tag`.
//!
//! The ciphertext is bound to where it is stored through [`FieldAad`]
//! (table, column, row id), so a value copied into another column or row
//! fails to decrypt instead of silently showing up in the wrong place.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::{CryptoError, Result};
use super::gcm;

/// What a field's ciphertext is bound to.
///
/// The canonical encoding is bound into every stored ciphertext and must
/// never change: for each of `table`, `column`, `row_id` in that order, the
/// UTF-8 length as a big-endian `u64` followed by the UTF-8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAad<'a> {
    /// Table name, e.g. `"customers"`.
    pub table: &'a str,
    /// Column name, e.g. `"phone"`.
    pub column: &'a str,
    /// The row's id as stored, e.g. a UUID string.
    pub row_id: &'a str,
}

impl<'a> FieldAad<'a> {
    /// Shorthand for the struct literal.
    pub fn new(table: &'a str, column: &'a str, row_id: &'a str) -> Self {
        Self {
            table,
            column,
            row_id,
        }
    }

    /// The canonical encoding (see the type docs).
    fn encode(&self) -> Vec<u8> {
        let parts = [self.table, self.column, self.row_id];
        let mut out = Vec::with_capacity(parts.iter().map(|p| 8 + p.len()).sum());
        for part in parts {
            // Length prefixes make the encoding injective: ("ab", "c") and
            // ("a", "bc") must not bind to the same bytes.
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// One 256-bit data key, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    bytes: [u8; 32],
}

impl DataKey {
    /// Takes ownership of raw key bytes (from the RNG or an unwrap).
    pub(super) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// The raw key, for tests comparing keys (wrapping works on the bytes
    /// before they become a `DataKey`).
    #[cfg(test)]
    pub(super) fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Seals `plaintext` bound to `aad`: `nonce || ciphertext || tag`, with
    /// a random 96-bit nonce.
    ///
    /// # Panics
    /// If the OS random number generator fails, or the plaintext exceeds
    /// AES-GCM's ~64 GiB message limit; neither happens in practice and
    /// neither can be handled by a caller.
    pub fn seal(&self, aad: &FieldAad, plaintext: &[u8]) -> Vec<u8> {
        match gcm::seal(&self.bytes, &aad.encode(), plaintext) {
            Ok(sealed) => sealed,
            Err(e) => panic!("field encryption failed: {e}"),
        }
    }

    /// Opens a value sealed with [`seal`](Self::seal) under the same key and
    /// `aad`. Any tampering, truncation, other key or other table / column /
    /// row id is [`CryptoError::Decrypt`].
    pub fn open(&self, aad: &FieldAad, sealed: &[u8]) -> Result<Vec<u8>> {
        gcm::open(&self.bytes, &aad.encode(), sealed)
    }

    /// [`seal`](Self::seal) for text.
    ///
    /// # Panics
    /// As [`seal`](Self::seal).
    pub fn seal_str(&self, aad: &FieldAad, s: &str) -> Vec<u8> {
        self.seal(aad, s.as_bytes())
    }

    /// [`open`](Self::open) for text sealed with [`seal_str`](Self::seal_str);
    /// [`CryptoError::NotUtf8`] if the plaintext is not UTF-8.
    pub fn open_str(&self, aad: &FieldAad, sealed: &[u8]) -> Result<String> {
        let plain = self.open(aad, sealed)?;
        String::from_utf8(plain).map_err(|e| {
            e.into_bytes().zeroize();
            CryptoError::NotUtf8
        })
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tokens::random_bytes;
    use proptest::prelude::*;

    fn key() -> DataKey {
        DataKey::from_bytes(random_bytes())
    }

    const AAD: FieldAad<'static> = FieldAad {
        table: "customers",
        column: "phone",
        row_id: "0190a5c4-0000-7000-8000-000000000001",
    };

    #[test]
    fn aad_encoding_is_stable_and_injective() {
        // Pinned: stored ciphertexts depend on these exact bytes.
        let enc = FieldAad::new("t", "col", "").encode();
        let expected = [
            "0000000000000001",
            "74", // "t"
            "0000000000000003",
            "636f6c", // "col"
            "0000000000000000",
        ]
        .concat();
        assert_eq!(hex::encode(enc), expected);
        assert_ne!(
            FieldAad::new("ab", "c", "1").encode(),
            FieldAad::new("a", "bc", "1").encode()
        );
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let k = key();
        let sealed = k.seal(&AAD, b"");
        assert_eq!(sealed.len(), gcm::OVERHEAD);
        assert_eq!(k.open(&AAD, &sealed).expect("open"), b"");
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let k = key();
        assert_ne!(k.seal_str(&AAD, "x"), k.seal_str(&AAD, "x"));
    }

    #[test]
    fn open_str_rejects_non_utf8() {
        let k = key();
        let sealed = k.seal(&AAD, &[0xff, 0xfe]);
        assert!(matches!(
            k.open_str(&AAD, &sealed),
            Err(CryptoError::NotUtf8)
        ));
    }

    #[test]
    fn debug_does_not_print_key() {
        let k = DataKey::from_bytes([0x5a; 32]);
        let dbg = format!("{k:?}");
        assert_eq!(dbg, "DataKey([redacted])");
        assert!(!dbg.to_lowercase().contains(&hex::encode(k.expose())[..8]));
    }

    fn is_decrypt(r: Result<Vec<u8>>) -> bool {
        matches!(r, Err(CryptoError::Decrypt))
    }

    proptest! {
        #[test]
        fn bytes_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..512)) {
            let k = key();
            let sealed = k.seal(&AAD, &plain);
            prop_assert_eq!(sealed.len(), plain.len() + gcm::OVERHEAD);
            prop_assert_eq!(k.open(&AAD, &sealed).expect("open"), plain);
        }

        #[test]
        fn str_round_trip(s in any::<String>(), table in "[a-z_]{1,12}", row in any::<String>()) {
            let k = key();
            let aad = FieldAad::new(&table, "name", &row);
            let sealed = k.seal_str(&aad, &s);
            prop_assert_eq!(k.open_str(&aad, &sealed).expect("open"), s);
        }

        #[test]
        fn wrong_binding_or_key_fails(plain in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = key();
            let sealed = k.seal(&AAD, &plain);
            let other_row = FieldAad::new(AAD.table, AAD.column, "other-row");
            let other_column = FieldAad::new(AAD.table, "email", AAD.row_id);
            let other_table = FieldAad::new("claims", AAD.column, AAD.row_id);
            prop_assert!(is_decrypt(k.open(&other_row, &sealed)));
            prop_assert!(is_decrypt(k.open(&other_column, &sealed)));
            prop_assert!(is_decrypt(k.open(&other_table, &sealed)));
            prop_assert!(is_decrypt(key().open(&AAD, &sealed)));
        }

        #[test]
        fn any_flipped_bit_fails(
            plain in proptest::collection::vec(any::<u8>(), 0..64),
            pos in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let k = key();
            let mut sealed = k.seal(&AAD, &plain);
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(is_decrypt(k.open(&AAD, &sealed)));
        }

        #[test]
        fn truncation_fails(
            plain in proptest::collection::vec(any::<u8>(), 0..64),
            cut in any::<proptest::sample::Index>(),
        ) {
            let k = key();
            let sealed = k.seal(&AAD, &plain);
            // Any strict prefix, including the empty one.
            let len = cut.index(sealed.len());
            prop_assert!(is_decrypt(k.open(&AAD, &sealed[..len])));
            // Dropping bytes from the front fails too.
            prop_assert!(is_decrypt(k.open(&AAD, &sealed[sealed.len() - len..])));
        }
    }
}
