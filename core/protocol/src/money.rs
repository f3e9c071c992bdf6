//! Money: an integer number of paise, never a float. Shown as ₹ with Indian
//! digit grouping (`₹1,23,456.78`).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::problem::{ErrorCode, ParseError};

/// The largest amount we accept: ₹1,00,00,00,000 (a hundred crore rupees).
pub const MAX_PAISE: i64 = 100 * 10_000_000 * 100;

/// A non-negative amount in paise. On the wire it is a JSON integer of paise.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

impl Money {
    /// Zero rupees.
    pub const ZERO: Money = Money(0);

    /// An amount in paise; refuses negative and absurd amounts.
    pub fn from_paise(paise: i64) -> Result<Self, ParseError> {
        if !(0..=MAX_PAISE).contains(&paise) {
            return Err(invalid("an amount is between ₹0 and ₹1,00,00,00,000"));
        }
        Ok(Self(paise))
    }

    /// Whole rupees.
    pub fn from_rupees(rupees: i64) -> Result<Self, ParseError> {
        Self::from_paise(
            rupees
                .checked_mul(100)
                .ok_or_else(|| invalid("amount too large"))?,
        )
    }

    /// Parses what people write: `15000`, `15,000`, `₹1,23,456.78`, `Rs. 699`, `15k`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut t = s.trim();
        for prefix in ["₹", "Rs.", "Rs", "rs.", "rs", "INR", "inr"] {
            if let Some(rest) = t.strip_prefix(prefix) {
                t = rest.trim_start();
                break;
            }
        }
        let (t, multiplier) = match t.strip_suffix(['k', 'K']) {
            Some(rest) => (rest.trim_end(), 1000),
            None => (t, 1),
        };
        let (int_part, frac_part) = match t.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t, ""),
        };
        let int_digits: String = int_part.chars().filter(|c| *c != ',').collect();
        if int_digits.is_empty()
            || !int_digits.bytes().all(|b| b.is_ascii_digit())
            || int_digits.len() > 12
        {
            return Err(invalid("write an amount like 15000 or ₹15,000.50"));
        }
        if frac_part.len() > 2 || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("an amount has at most two digits of paise"));
        }
        let rupees: i64 = int_digits
            .parse()
            .map_err(|_| invalid("amount too large"))?;
        let paise: i64 = match frac_part.len() {
            0 => 0,
            1 => frac_part.parse::<i64>().unwrap_or(0) * 10,
            _ => frac_part.parse::<i64>().unwrap_or(0),
        };
        let total = rupees
            .checked_mul(100)
            .and_then(|r| r.checked_add(paise))
            .and_then(|p| p.checked_mul(multiplier))
            .ok_or_else(|| invalid("amount too large"))?;
        Self::from_paise(total)
    }

    /// The amount in paise.
    pub fn paise(self) -> i64 {
        self.0
    }

    /// Adds, refusing overflow past [`MAX_PAISE`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::from_paise(self.0.checked_add(other.0)?).ok()
    }

    /// Subtracts, refusing to go below zero.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        Money::from_paise(self.0.checked_sub(other.0)?).ok()
    }

    /// A share in basis points (1 % = 100 bp), rounded half up to the paisa.
    pub fn basis_points(self, bp: u32) -> Money {
        // i128 so that no product of two in-range values can overflow.
        let v = (i128::from(self.0) * i128::from(bp) + 5_000) / 10_000;
        Money(v as i64)
    }
}

impl TryFrom<i64> for Money {
    type Error = ParseError;
    fn try_from(v: i64) -> Result<Self, ParseError> {
        Money::from_paise(v)
    }
}

impl From<Money> for i64 {
    fn from(m: Money) -> i64 {
        m.0
    }
}

fn invalid(msg: &str) -> ParseError {
    ParseError::new(ErrorCode::InvalidMoney, msg)
}

/// Groups a string of digits the Indian way: the last three, then twos.
fn indian_grouping(digits: &str) -> String {
    let n = digits.len();
    if n <= 3 {
        return digits.to_string();
    }
    let (head, tail) = digits.split_at(n - 3);
    let mut out = String::with_capacity(n + n / 2);
    let first = head.len() % 2;
    if first == 1 {
        out.push_str(&head[..1]);
    }
    for (i, chunk) in head.as_bytes()[first..].chunks(2).enumerate() {
        if i > 0 || first == 1 {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out.push(',');
    out.push_str(tail);
    out
}

impl fmt::Display for Money {
    /// `₹1,23,456.78`; whole rupees are shown without paise (`₹699`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rupees = indian_grouping(&(self.0 / 100).to_string());
        match self.0 % 100 {
            0 => write!(f, "₹{rupees}"),
            p => write!(f, "₹{rupees}.{p:02}"),
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({} paise)", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_uses_indian_grouping() {
        let cases = [
            (0, "₹0"),
            (69_900, "₹699"),
            (1_000_000, "₹10,000"),
            (12_345_678, "₹1,23,456.78"),
            (10_000_000_000, "₹10,00,00,000"),
            (5, "₹0.05"),
        ];
        for (paise, s) in cases {
            assert_eq!(Money::from_paise(paise).unwrap().to_string(), s);
        }
    }

    #[test]
    fn parse_forms() {
        assert_eq!(Money::parse("15000").unwrap().paise(), 1_500_000);
        assert_eq!(Money::parse("₹15,000").unwrap().paise(), 1_500_000);
        assert_eq!(Money::parse("15k").unwrap().paise(), 1_500_000);
        assert_eq!(Money::parse("Rs. 1,23,456.78").unwrap().paise(), 12_345_678);
        assert_eq!(Money::parse("699.5").unwrap().paise(), 69_950);
        for s in ["", "-5", "1.234", "abc", "₹", "1e5", "99999999999999"] {
            assert_eq!(
                Money::parse(s).unwrap_err().code,
                ErrorCode::InvalidMoney,
                "{s}"
            );
        }
    }

    #[test]
    fn wire_form_is_integer_paise_and_refuses_negatives() {
        assert_eq!(
            serde_json::to_string(&Money::from_paise(69_900).unwrap()).unwrap(),
            "69900"
        );
        assert!(serde_json::from_str::<Money>("-1").is_err());
        assert!(serde_json::from_str::<Money>("1.5").is_err());
        assert!(serde_json::from_str::<Money>("\"100\"").is_err());
    }

    #[test]
    fn commission_rounds_to_the_paisa() {
        assert_eq!(
            Money::from_rupees(699).unwrap().basis_points(1500).paise(),
            10_485
        );
        assert_eq!(Money::from_paise(1).unwrap().basis_points(5000).paise(), 1);
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(p in 0i64..MAX_PAISE) {
            let m = Money::from_paise(p).unwrap();
            prop_assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Money::parse(&s);
        }
    }
}
