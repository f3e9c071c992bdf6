//! GSTIN: 2-digit state code, the holder's PAN, an entity number, `Z` by
//! default, and a base-36 check character.

use std::fmt;

use crate::pan::Pan;
use crate::problem::{ErrorCode, ParseError};

const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A GST identification number with a valid check character.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gstin([u8; 15]);

impl Gstin {
    /// Parses a GSTIN; lower case is accepted and upper-cased.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.len() != 15 || !s.is_ascii() {
            return Err(invalid("a GSTIN has 15 characters"));
        }
        let mut b = [0u8; 15];
        for (i, c) in s.bytes().enumerate() {
            b[i] = c.to_ascii_uppercase();
        }
        let state = std::str::from_utf8(&b[..2]).unwrap_or_default();
        match state.parse::<u8>() {
            Ok(1..=38) | Ok(97) | Ok(99) => {}
            _ => return Err(invalid("a GSTIN starts with a state code from 01 to 38")),
        }
        Pan::parse(std::str::from_utf8(&b[2..12]).unwrap_or_default())
            .map_err(|_| invalid("characters 3 to 12 of a GSTIN are the holder's PAN"))?;
        if !matches!(b[12], b'1'..=b'9' | b'A'..=b'Z') {
            return Err(invalid(
                "the 13th character of a GSTIN is the entity number, 1-9 or A-Z",
            ));
        }
        if !b[13].is_ascii_alphanumeric() {
            return Err(invalid(
                "the 14th character of a GSTIN is a letter or digit (usually Z)",
            ));
        }
        if check_character(&b[..14]) != Some(b[14]) {
            return Err(invalid(
                "the GSTIN's check character is wrong; please re-check it",
            ));
        }
        Ok(Self(b))
    }

    /// The 15 characters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The two-digit state code (`07` Delhi, `27` Maharashtra, ...).
    pub fn state_code(&self) -> &str {
        &self.as_str()[..2]
    }

    /// The holder's PAN embedded in the GSTIN.
    pub fn pan(&self) -> &str {
        &self.as_str()[2..12]
    }
}

/// The check character over the first 14 characters, or `None` if one is
/// outside the alphabet.
pub fn check_character(first14: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in first14.iter().enumerate() {
        let v = ALPHABET.iter().position(|a| a == c)? as u32;
        let p = v * if i % 2 == 0 { 1 } else { 2 };
        sum += p / 36 + p % 36;
    }
    Some(ALPHABET[((36 - sum % 36) % 36) as usize])
}

fn invalid(msg: &str) -> ParseError {
    ParseError::new(ErrorCode::InvalidGstin, msg)
}

impl fmt::Display for Gstin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Gstin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gstin({})", self.as_str())
    }
}

crate::serde_via_parse!(Gstin, "15-character GSTIN with a valid check character");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_gstins() {
        // Published examples with valid check characters.
        let g = Gstin::parse("27AAPFU0939F1ZV").unwrap();
        assert_eq!(g.state_code(), "27");
        assert_eq!(g.pan(), "AAPFU0939F");
        assert!(Gstin::parse("29aagcb7383j1z4").is_ok());
    }

    #[test]
    fn bad_gstins() {
        for s in [
            "27AAPFU0939F1ZW",
            "27AAPFU0939F1Z",
            "00AAPFU0939F1ZV",
            "27AAPFU0939F0ZV",
            "27AAPXU0939F1ZV",
        ] {
            assert_eq!(
                Gstin::parse(s).unwrap_err().code,
                ErrorCode::InvalidGstin,
                "{s}"
            );
        }
    }

    proptest! {
        #[test]
        fn generated_gstins_parse_and_typos_do_not(state in 1u8..=38, pan4 in "[A-Z]{3}[PCHFATBLJG][A-Z][0-9]{4}[A-Z]", ent in "[1-9A-Z]", pos in 0usize..15) {
            let body = format!("{state:02}{pan4}{ent}Z");
            let c = check_character(body.as_bytes()).unwrap() as char;
            let s = format!("{body}{c}");
            prop_assert!(Gstin::parse(&s).is_ok());
            // Any single-character substitution is caught (the check character
            // alone, or the format rules).
            let mut b = s.clone().into_bytes();
            b[pos] = if b[pos] == b'Q' { b'R' } else if b[pos].is_ascii_digit() { b'0' + (b[pos] - b'0' + 1) % 10 } else { b'Q' };
            prop_assert!(Gstin::parse(std::str::from_utf8(&b).unwrap()).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Gstin::parse(&s);
        }
    }
}
