//! IMEI: 15 digits, the last a Luhn check digit over the first 14.

use std::fmt;

use crate::problem::{ErrorCode, ParseError};

/// A valid IMEI. Separators people type (spaces, dashes, slashes) are removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Imei([u8; 15]);

impl Imei {
    /// Parses `"35-209900-176148-1"`, `"352099001761481"` and the like.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut digits = [0u8; 15];
        let mut n = 0;
        for c in s.chars() {
            match c {
                '0'..='9' => {
                    if n == 15 {
                        return Err(invalid("an IMEI has 15 digits; this has more"));
                    }
                    digits[n] = c as u8;
                    n += 1;
                }
                ' ' | '-' | '/' | '.' => {}
                _ => return Err(invalid("an IMEI has only digits")),
            }
        }
        if n != 15 {
            return Err(invalid("an IMEI has 15 digits"));
        }
        if luhn_check_digit(&digits[..14]) != digits[14] - b'0' {
            return Err(invalid(
                "the IMEI's check digit is wrong; please re-read it from the phone (*#06#)",
            ));
        }
        Ok(Self(digits))
    }

    /// The 15 digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The Type Allocation Code (first 8 digits): identifies the model.
    pub fn tac(&self) -> &str {
        &self.as_str()[..8]
    }
}

/// The Luhn check digit for a run of ASCII digits.
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    // Doubling starts from the rightmost digit of the payload.
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

fn invalid(msg: &str) -> ParseError {
    ParseError::new(ErrorCode::InvalidImei, msg)
}

impl fmt::Display for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Imei({})", self.as_str())
    }
}

crate::serde_via_parse!(Imei, "15-digit IMEI with a valid Luhn check digit");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_imeis() {
        assert_eq!(
            Imei::parse("490154203237518").unwrap().as_str(),
            "490154203237518"
        );
        assert_eq!(
            Imei::parse("35-209900-176148-1").unwrap().as_str(),
            "352099001761481"
        );
        assert_eq!(Imei::parse("490154203237518").unwrap().tac(), "49015420");
    }

    #[test]
    fn bad_imeis() {
        for s in [
            "490154203237519",
            "49015420323751",
            "4901542032375180",
            "49015420323751x",
            "",
        ] {
            assert_eq!(
                Imei::parse(s).unwrap_err().code,
                ErrorCode::InvalidImei,
                "{s}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_14_digits_with_their_check_digit_parse(payload in "[0-9]{14}") {
            let d = luhn_check_digit(payload.as_bytes());
            let s = format!("{payload}{d}");
            let imei = Imei::parse(&s).unwrap();
            prop_assert_eq!(imei.as_str(), s.as_str());
            let json = serde_json::to_string(&imei).unwrap();
            prop_assert_eq!(serde_json::from_str::<Imei>(&json).unwrap(), imei);
        }

        #[test]
        fn a_wrong_check_digit_never_parses(payload in "[0-9]{14}", delta in 1u8..10) {
            let d = (luhn_check_digit(payload.as_bytes()) + delta) % 10;
            let s = format!("{payload}{d}");
            prop_assert!(Imei::parse(&s).is_err());
        }

        #[test]
        fn a_single_digit_typo_is_caught(payload in "[0-9]{14}", pos in 0usize..15, delta in 1u8..10) {
            let d = luhn_check_digit(payload.as_bytes());
            let mut s: Vec<u8> = format!("{payload}{d}").into_bytes();
            s[pos] = b'0' + (s[pos] - b'0' + delta) % 10;
            prop_assert!(Imei::parse(std::str::from_utf8(&s).unwrap()).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Imei::parse(&s);
        }
    }
}
