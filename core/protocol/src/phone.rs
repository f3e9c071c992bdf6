//! Mobile numbers in E.164. Indian numbers are accepted the way people write
//! them (`98765 43210`, `098765 43210`, `+91-98765-43210`) and normalised to
//! `+919876543210`.

use std::fmt;

use crate::problem::{ErrorCode, ParseError};

/// A mobile number in E.164 form (`+` and 8–15 digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses and normalises. Numbers without a country code are taken as Indian.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let trimmed = s.trim();
        let mut plus = false;
        let mut digits = String::with_capacity(16);
        for c in trimmed.chars() {
            match c {
                '0'..='9' => digits.push(c),
                // A leading `+` (possibly inside a bracket: "(+91)") marks a country code.
                '+' if digits.is_empty() && !plus => plus = true,
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => return Err(invalid("a phone number has only digits, spaces and dashes")),
            }
            if digits.len() > 16 {
                return Err(invalid("a phone number has at most 15 digits"));
            }
        }
        let national = if plus {
            if let Some(rest) = digits.strip_prefix("91") {
                rest.to_string()
            } else {
                // Another country: keep E.164 as given; the country allow-list
                // is a policy decision made by the server, not a parse rule.
                if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
                    return Err(invalid("not a valid international number"));
                }
                return Ok(Self(format!("+{digits}")));
            }
        } else if digits.len() == 11 && digits.starts_with('0') {
            digits[1..].to_string()
        } else if digits.len() == 12 && digits.starts_with("91") {
            digits[2..].to_string()
        } else {
            digits
        };
        if national.len() != 10 {
            return Err(invalid("an Indian mobile number has 10 digits"));
        }
        if !matches!(national.as_bytes()[0], b'6'..=b'9') {
            return Err(invalid("an Indian mobile number starts with 6, 7, 8 or 9"));
        }
        Ok(Self(format!("+91{national}")))
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code (`91` for India).
    pub fn is_indian(&self) -> bool {
        self.0.starts_with("+91")
    }

    /// The last four digits, for messages and logs that must not show the number.
    pub fn masked(&self) -> String {
        format!("******{}", &self.0[self.0.len() - 4..])
    }
}

fn invalid(msg: &str) -> ParseError {
    ParseError::new(ErrorCode::InvalidPhone, msg)
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug never prints the number: it is PII and Debug ends up in logs.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

crate::serde_via_parse!(PhoneNumber, "mobile number; Indian numbers may omit +91");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn indian_forms_normalise() {
        for s in [
            "98765 43210",
            "098765 43210",
            "+91-98765-43210",
            "919876543210",
            "+91 9876543210",
            "(+91) 98765-43210",
        ] {
            assert_eq!(
                PhoneNumber::parse(s).unwrap().as_str(),
                "+919876543210",
                "{s}"
            );
        }
    }

    #[test]
    fn bad_numbers() {
        for s in [
            "12345 67890",
            "98765 4321",
            "98765x43210",
            "",
            "+",
            "+0123456789",
            "+91 55555 55555",
        ] {
            assert_eq!(
                PhoneNumber::parse(s).unwrap_err().code,
                ErrorCode::InvalidPhone,
                "{s}"
            );
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country() {
        assert_eq!(
            PhoneNumber::parse("+44 7700 900123").unwrap().as_str(),
            "+447700900123"
        );
        assert!(!PhoneNumber::parse("+44 7700 900123").unwrap().is_indian());
    }

    #[test]
    fn debug_masks_the_number() {
        let p = PhoneNumber::parse("9876543210").unwrap();
        assert!(!format!("{p:?}").contains("98765"));
    }

    proptest! {
        #[test]
        fn every_written_form_normalises_to_the_same(first in "[6-9]", rest in "[0-9]{9}", form in 0usize..4) {
            let n = format!("{first}{rest}");
            let written = match form {
                0 => n.clone(),
                1 => format!("0{} {}", &n[..5], &n[5..]),
                2 => format!("+91-{}-{}", &n[..5], &n[5..]),
                _ => format!("91{n}"),
            };
            let p = PhoneNumber::parse(&written).unwrap();
            prop_assert_eq!(p.as_str(), format!("+91{n}"));
            prop_assert_eq!(PhoneNumber::parse(p.as_str()).unwrap(), p);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = PhoneNumber::parse(&s);
        }
    }
}
