//! PAN: 10 characters, 5 letters, 4 digits, 1 letter; the 4th letter is the
//! holder type.

use std::fmt;

use crate::problem::{ErrorCode, ParseError};

/// A Permanent Account Number, upper-cased.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pan([u8; 10]);

/// Holder types by the PAN's 4th letter.
const HOLDER_TYPES: &[u8] = b"PCHFATBLJG";

impl Pan {
    /// Parses a PAN; lower case is accepted and upper-cased.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.len() != 10 || !s.is_ascii() {
            return Err(invalid("a PAN has 10 characters"));
        }
        let mut b = [0u8; 10];
        for (i, c) in s.bytes().enumerate() {
            b[i] = c.to_ascii_uppercase();
        }
        let letters = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_uppercase);
        if !letters(0..5) || !b[5..9].iter().all(u8::is_ascii_digit) || !letters(9..10) {
            return Err(invalid(
                "a PAN is 5 letters, 4 digits and a letter, like ABCPE1234F",
            ));
        }
        if !HOLDER_TYPES.contains(&b[3]) {
            return Err(invalid("the PAN's 4th letter is not a known holder type"));
        }
        Ok(Self(b))
    }

    /// The 10 characters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The holder type letter (P person, C company, F firm, ...).
    pub fn holder_type(&self) -> char {
        self.0[3] as char
    }
}

fn invalid(msg: &str) -> ParseError {
    ParseError::new(ErrorCode::InvalidPan, msg)
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.as_str())
    }
}

crate::serde_via_parse!(Pan, "PAN: 5 letters, 4 digits, 1 letter");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pans() {
        assert_eq!(Pan::parse("abcpe1234f").unwrap().as_str(), "ABCPE1234F");
        assert_eq!(Pan::parse("AAACR5055K").unwrap().holder_type(), 'C');
        for s in [
            "ABCPE1234",
            "ABCXE1234F",
            "ABCP11234F",
            "ABCPE12345",
            "ÄBCPE1234F",
        ] {
            assert_eq!(
                Pan::parse(s).unwrap_err().code,
                ErrorCode::InvalidPan,
                "{s}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Pan::parse(&s);
        }

        #[test]
        fn well_formed_pans_round_trip(a in "[A-Z]{3}", t in "[PCHFATBLJG]", b in "[A-Z]", d in "[0-9]{4}", e in "[A-Z]") {
            let s = format!("{a}{t}{b}{d}{e}");
            let pan = Pan::parse(&s).unwrap();
            prop_assert_eq!(pan.as_str(), s.as_str());
        }
    }
}
