//! Amounts of money as people text them: digits with Indian or Western
//! grouping (`15000`, `15,000`, `1,50,000`), a currency mark (`₹15,000`,
//! `Rs. 15000`, `rs15000`), a multiplier (`15k`, `1.5 lakh`, `15 hazar`,
//! `15 हज़ार`), and number words in English, romanized Hindi and Devanagari
//! (`fifteen thousand`, `pandrah hazar`, `पंद्रह हज़ार`, `डेढ़ लाख`,
//! `saadhe saat hazar`).
//!
//! Input is the token list of [`super::nlu::tokens`] (already lowercased,
//! Devanagari digits mapped to ASCII and nuktas removed). Numbers that are
//! parts of other things (a 15-digit IMEI, a 10-digit phone, a date, a model
//! name like `a15`) are the callers' business: [`amounts`] reads only plain
//! numbers, and reports whether each one looked like money (a currency
//! mark, a multiplier, or four digits or more), so a bare `13` in
//! "iPhone 13" is not taken for a price.

/// One amount found in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    /// Whole rupees (paise are dropped: prices are quoted in rupees).
    pub rupees: i64,
    /// A currency mark, a multiplier word or at least four digits: surely money.
    pub money_like: bool,
    /// Index of the first token it was read from.
    pub start: usize,
    /// One past its last token.
    pub end: usize,
}

/// A number word's value in hundredths (so `ḍeḍh` = 1.5 is 150), or a multiplier.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Word {
    /// 1..=99 in hundredths (ḍeḍh and ḍhāī carry halves).
    Unit(i64),
    /// hundred / sau: multiplies what precedes it within the group.
    Hundred,
    /// thousand, lakh, crore: closes a group.
    Big(i64),
    /// sāṛhe (+½ to the next number), savā (+¼), paune (−¼).
    Fraction(i64),
}

const CURRENCY: &[&str] = &[
    "rs",
    "rs.",
    "inr",
    "rupees",
    "rupee",
    "rupaye",
    "rupaiye",
    "rupay",
    "rupya",
    "rupiya",
    "rupee.",
    "रुपये",
    "रुपए",
    "रुपया",
    "रु",
    "रू",
];

fn multiplier(token: &str) -> Option<i64> {
    Some(match token {
        "k" | "thousand" | "thousands" | "hazar" | "hazaar" | "hajar" | "hazzar" | "hzr"
        | "hajaar" | "hazār" | "हजार" | "हज़ार" => 1_000,
        "lakh" | "lakhs" | "lac" | "lacs" | "laakh" | "lakh." | "l" | "लाख" => 100_000,
        "crore" | "crores" | "cr" | "karod" | "करोड" => 10_000_000,
        _ => return None,
    })
}

/// Number words. Units and fractions in hundredths.
fn word(token: &str) -> Option<Word> {
    if let Some(m) = multiplier(token) {
        return Some(Word::Big(m));
    }
    let unit = |v: i64| Some(Word::Unit(v * 100));
    match token {
        "hundred" | "sau" | "सौ" => Some(Word::Hundred),
        "dedh" | "derh" | "dedhh" | "डेढ" => Some(Word::Unit(150)),
        "dhai" | "dhaai" | "adhai" | "ढाई" | "अढाई" => Some(Word::Unit(250)),
        "sadhe" | "saadhe" | "saade" | "sade" | "साढे" => Some(Word::Fraction(50)),
        "sawa" | "sava" | "सवा" => Some(Word::Fraction(25)),
        "paune" | "pone" | "पौने" => Some(Word::Fraction(-25)),
        // English.
        "one" | "a" | "an" => unit(1),
        "two" => unit(2),
        "three" => unit(3),
        "four" => unit(4),
        "five" => unit(5),
        "six" => unit(6),
        "seven" => unit(7),
        "eight" => unit(8),
        "nine" => unit(9),
        "ten" => unit(10),
        "eleven" => unit(11),
        "twelve" => unit(12),
        "thirteen" => unit(13),
        "fourteen" => unit(14),
        "fifteen" => unit(15),
        "sixteen" => unit(16),
        "seventeen" => unit(17),
        "eighteen" => unit(18),
        "nineteen" => unit(19),
        "twenty" => unit(20),
        "thirty" => unit(30),
        "forty" | "fourty" => unit(40),
        "fifty" => unit(50),
        "sixty" => unit(60),
        "seventy" => unit(70),
        "eighty" => unit(80),
        "ninety" => unit(90),
        // Romanized Hindi.
        "ek" => unit(1),
        "do" | "doh" => unit(2),
        "teen" | "tin" => unit(3),
        "char" | "chaar" => unit(4),
        "paanch" | "panch" | "paach" | "panc" => unit(5),
        "chhe" | "chhah" | "chah" | "che" | "chheh" => unit(6),
        "saat" | "sat" => unit(7),
        "aath" | "ath" | "aat" => unit(8),
        "nau" | "nao" => unit(9),
        "das" | "dus" => unit(10),
        "gyarah" | "gyara" | "gyaarah" => unit(11),
        "barah" | "bara" | "baarah" | "baara" => unit(12),
        "terah" | "tera" => unit(13),
        "chaudah" | "chauda" | "chodah" | "choda" => unit(14),
        "pandrah" | "pandra" | "pandhra" | "pandhrah" | "pundra" => unit(15),
        "solah" | "sola" => unit(16),
        "satrah" | "satra" | "sattrah" => unit(17),
        "atharah" | "athara" | "attharah" | "atthara" => unit(18),
        "unnis" | "unees" | "unnees" | "unis" => unit(19),
        "bees" | "bis" | "bis." => unit(20),
        "ikkis" | "ikkees" => unit(21),
        "bais" | "baees" | "baais" => unit(22),
        "teis" | "tees." => unit(23),
        "chaubis" | "chaubees" | "chobis" => unit(24),
        "pachis" | "pachchis" | "pachees" | "pacchis" => unit(25),
        "chabbis" | "chhabbis" => unit(26),
        "sattais" | "sattaees" => unit(27),
        "athais" | "atthais" => unit(28),
        "untis" | "unatis" => unit(29),
        "tees" | "tis" => unit(30),
        "paintis" | "pentis" | "paintees" => unit(35),
        "chalis" | "chaalis" | "chalees" => unit(40),
        "paintalis" | "pentalis" => unit(45),
        "pachas" | "pachaas" | "pachaas." => unit(50),
        "pachpan" => unit(55),
        "saath" | "sath" => unit(60),
        "painsath" | "pensath" => unit(65),
        "sattar" | "sattar." => unit(70),
        "pachhattar" | "pachattar" => unit(75),
        "assi" | "essi" | "assee" => unit(80),
        "pachasi" | "pachaasi" => unit(85),
        "nabbe" | "nabbey" | "nabe" => unit(90),
        "pachanve" | "pachanbe" | "panchanve" => unit(95),
        // Devanagari (after normalisation: no nukta, chandrabindu as anusvara).
        "एक" => unit(1),
        "दो" => unit(2),
        "तीन" => unit(3),
        "चार" => unit(4),
        "पांच" | "पाच" => unit(5),
        "छह" | "छः" | "छे" | "छै" => unit(6),
        "सात" => unit(7),
        "आठ" => unit(8),
        "नौ" => unit(9),
        "दस" => unit(10),
        "ग्यारह" => unit(11),
        "बारह" => unit(12),
        "तेरह" => unit(13),
        "चौदह" => unit(14),
        "पंद्रह" | "पन्द्रह" => unit(15),
        "सोलह" => unit(16),
        "सत्रह" => unit(17),
        "अठारह" => unit(18),
        "उन्नीस" => unit(19),
        "बीस" => unit(20),
        "इक्कीस" => unit(21),
        "बाईस" => unit(22),
        "तेईस" => unit(23),
        "चौबीस" => unit(24),
        "पच्चीस" => unit(25),
        "छब्बीस" => unit(26),
        "सत्ताईस" => unit(27),
        "अट्ठाईस" => unit(28),
        "उनतीस" => unit(29),
        "तीस" => unit(30),
        "पैंतीस" => unit(35),
        "चालीस" => unit(40),
        "पैंतालीस" => unit(45),
        "पचास" => unit(50),
        "पचपन" => unit(55),
        "साठ" => unit(60),
        "पैंसठ" => unit(65),
        "सत्तर" => unit(70),
        "पचहत्तर" => unit(75),
        "अस्सी" => unit(80),
        "पचासी" => unit(85),
        "नब्बे" => unit(90),
        "पचानवे" | "पंचानबे" | "पचानबे" => unit(95),
        _ => None,
    }
}

/// Is `token` a currency word (`rs`, `₹` is normalised to `rs`)?
pub fn is_currency(token: &str) -> bool {
    CURRENCY.contains(&token)
}

/// A digit token: `15000`, `15,000`, `1,50,000`, `15.5`, optionally with a
/// glued `k`/`l` suffix or `rs` prefix. Returns (value, had a
/// suffix multiplier, had a currency prefix, digits before the point);
/// the value is in hundredths.
fn digit_token(token: &str) -> Option<(i64, bool, bool, usize)> {
    let (t, currency) = match token
        .strip_prefix("rs.")
        .or_else(|| token.strip_prefix("rs"))
    {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => (rest, true),
        _ => match token.strip_prefix("inr") {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => (rest, true),
            _ => (token, false),
        },
    };
    let (t, mult) = if let Some(rest) = t.strip_suffix('k') {
        (rest, 1_000)
    } else if let Some(rest) = t.strip_suffix("lakh").or_else(|| t.strip_suffix('l')) {
        (rest, 100_000)
    } else if let Some(rest) = t.strip_suffix("/-") {
        (rest, 1)
    } else {
        (t, 1)
    };
    if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    if !int.bytes().all(|b| b.is_ascii_digit() || b == b',')
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.ends_with(',')
        || int.contains(",,")
    {
        return None;
    }
    let digits: String = int.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 10 || frac.len() > 2 {
        return None;
    }
    let whole: i64 = digits.parse().ok()?;
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    let hundredths = whole.checked_mul(100)?.checked_add(cents)?;
    Some((
        hundredths.checked_mul(mult)?,
        mult != 1,
        currency,
        digits.len(),
    ))
}

/// Every amount in `tokens`, in order.
pub fn amounts(tokens: &[String]) -> Vec<Amount> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(a) = read_at(tokens, i) {
            i = a.end;
            out.push(a);
        } else {
            i += 1;
        }
    }
    out
}

/// Reads one amount starting at token `i`.
fn read_at(tokens: &[String], i: usize) -> Option<Amount> {
    let currency_before = i > 0 && is_currency(&tokens[i - 1]);
    let start = if currency_before { i - 1 } else { i };
    // Digits with a multiplier word after them ("15 hazar", "1.5 lakh",
    // "1 lakh 20 hazar") are read as a run of number words below.
    if let Some((hundredths, suffixed, prefixed, int_digits)) = digit_token(&tokens[i])
        && (suffixed || prefixed || tokens.get(i + 1).is_none_or(|t| multiplier(t).is_none()))
    {
        let mut end = i + 1;
        let currency_after = tokens.get(end).is_some_and(|t| is_currency(t));
        if currency_after {
            end += 1;
        }
        let money_like =
            suffixed || prefixed || currency_before || currency_after || int_digits >= 4;
        return Some(Amount {
            rupees: hundredths / 100,
            money_like,
            start,
            end,
        });
    }
    // Number words: only an amount when a multiplier closes it ("pandrah
    // hazar"), or a currency word follows; "do" alone is the English verb.
    let (value, end, had_big) = read_words(tokens, i)?;
    let currency_after = tokens.get(end).is_some_and(|t| is_currency(t));
    if !had_big && !currency_after && !currency_before {
        return None;
    }
    Some(Amount {
        rupees: value / 100,
        money_like: true,
        start,
        end: if currency_after { end + 1 } else { end },
    })
}

/// Reads a run of number words; returns (value in hundredths, end, saw a multiplier).
fn read_words(tokens: &[String], i: usize) -> Option<(i64, usize, bool)> {
    let mut total: i64 = 0;
    let mut group: i64 = 0; // hundredths
    let mut pending_fraction: i64 = 0; // hundredths to add to the next unit
    let mut j = i;
    let mut had_big = false;
    let mut any = false;
    while let Some(t) = tokens.get(j) {
        let Some(w) = word(t).or_else(|| {
            // Digits inside a word run: "1 lakh bees hazar", "sadhe 7 hazar".
            digit_token(t)
                .filter(|(_, suffixed, prefixed, _)| !suffixed && !prefixed)
                .map(|(v, ..)| Word::Unit(v))
        }) else {
            break;
        };
        match w {
            Word::Unit(v) => {
                // "a" and "an" only count before a multiplier ("a lakh").
                if (t == "a" || t == "an")
                    && !matches!(
                        tokens.get(j + 1).and_then(|n| word(n)),
                        Some(Word::Big(_) | Word::Hundred)
                    )
                {
                    break;
                }
                // Units add up ("twenty five", "do sau pachas"), but a
                // unit no smaller than the one before ends the run ("five twenty").
                if group != 0 && v >= group {
                    break;
                }
                group = group.checked_add(v + pending_fraction)?;
                pending_fraction = 0;
            }
            Word::Fraction(f) => {
                if group != 0 {
                    break;
                }
                pending_fraction = f;
            }
            Word::Hundred => {
                let base = if group == 0 {
                    100 + pending_fraction
                } else {
                    group
                };
                pending_fraction = 0;
                group = base.checked_mul(100)?;
            }
            Word::Big(m) => {
                // "sawa lakh": a fraction of one.
                let base = if group == 0 {
                    100 + pending_fraction
                } else {
                    group
                };
                pending_fraction = 0;
                total = total.checked_add(base.checked_mul(m)?)?;
                group = 0;
                had_big = true;
            }
        }
        any = true;
        j += 1;
    }
    if !any {
        return None;
    }
    Some((total.checked_add(group)?, j, had_big))
}

/// Groups rupees the Indian way: `1,50,000`.
pub fn indian_grouping(rupees: i64) -> String {
    let digits = rupees.unsigned_abs().to_string();
    let sign = if rupees < 0 { "-" } else { "" };
    if digits.len() <= 3 {
        return format!("{sign}{digits}");
    }
    let (head, tail) = digits.split_at(digits.len() - 3);
    let mut groups: Vec<&str> = Vec::new();
    let mut rest = head;
    while rest.len() > 2 {
        let (a, b) = rest.split_at(rest.len() - 2);
        groups.push(b);
        rest = a;
    }
    if !rest.is_empty() {
        groups.push(rest);
    }
    groups.reverse();
    format!("{sign}{},{tail}", groups.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::nlu::tokens;
    use proptest::prelude::*;

    fn first(text: &str) -> Option<i64> {
        amounts(&tokens(text))
            .into_iter()
            .find(|a| a.money_like)
            .map(|a| a.rupees)
    }

    #[test]
    fn digits_with_grouping_currency_and_multipliers() {
        for (text, want) in [
            ("plans for a 15000 phone", 15_000),
            ("15k", 15_000),
            ("15 k", 15_000),
            ("₹15,000", 15_000),
            ("Rs. 15000", 15_000),
            ("rs15000", 15_000),
            ("1,50,000", 150_000),
            ("150,000", 150_000),
            ("1.5 lakh", 150_000),
            ("1.2L", 120_000),
            ("15 hazar", 15_000),
            ("15 हज़ार", 15_000),
            ("१५०००", 15_000),
            ("12,499/-", 12_499),
            ("15000.50", 15_000),
            ("1 lakh 20 hazar", 120_000),
            ("price 999 rupees", 999),
        ] {
            assert_eq!(first(text), Some(want), "{text}");
        }
    }

    #[test]
    fn number_words_in_three_languages() {
        for (text, want) in [
            ("पंद्रह हज़ार", 15_000),
            ("पन्द्रह हजार का फोन", 15_000),
            ("pandrah hazar", 15_000),
            ("bees hazaar ka phone", 20_000),
            ("fifteen thousand", 15_000),
            ("twenty five thousand", 25_000),
            ("a lakh", 100_000),
            ("डेढ़ लाख", 150_000),
            ("dhai hazar", 2_500),
            ("saadhe saat hazar", 7_500),
            ("sawa lakh", 125_000),
            ("paune do lakh", 175_000),
            ("ek lakh bees hazar", 120_000),
            ("teen sau rupaye", 300),
            ("बारह हजार पांच सौ", 12_500),
        ] {
            assert_eq!(first(text), Some(want), "{text}");
        }
    }

    #[test]
    fn small_bare_numbers_are_not_money() {
        assert_eq!(first("iphone 13"), None);
        assert_eq!(first("what do you do"), None);
        assert_eq!(first("redmi note 13 pro 5g"), None);
        let a = amounts(&tokens("13"));
        assert_eq!(a.len(), 1);
        assert!(!a[0].money_like);
    }

    #[test]
    fn grouping_is_indian() {
        assert_eq!(indian_grouping(699), "699");
        assert_eq!(indian_grouping(15_000), "15,000");
        assert_eq!(indian_grouping(150_000), "1,50,000");
        assert_eq!(indian_grouping(12_345_678), "1,23,45,678");
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panic(s in "\\PC{0,60}") {
            let _ = amounts(&tokens(&s));
        }

        #[test]
        fn written_amounts_read_back(r in 1_000i64..10_000_000) {
            let grouped = indian_grouping(r);
            prop_assert_eq!(first(&grouped), Some(r));
            prop_assert_eq!(first(&format!("₹{grouped}")), Some(r));
            prop_assert_eq!(first(&format!("Rs {r}")), Some(r));
            if r % 1000 == 0 {
                prop_assert_eq!(first(&format!("{}k", r / 1000)), Some(r));
            }
        }
    }
}
