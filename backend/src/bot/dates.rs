//! Purchase dates as people text them: `today`, `yesterday`, `aaj`, `kal`,
//! `parso`, `आज`, `3 days ago`, `2 din pehle`, `last week`, a weekday
//! (`on monday`, `somvar`), `12/03/2026`, `12-3-26`, `2026-03-12`,
//! `12 march`, `march 12 2026`, `12 मार्च`.
//!
//! In a purchase date `kal` and `कल` can only mean yesterday.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("mar", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
    ("जनवरी", 1),
    ("फरवरी", 2),
    ("मार्च", 3),
    ("अप्रैल", 4),
    ("मई", 5),
    ("जून", 6),
    ("जुलाई", 7),
    ("अगस्त", 8),
    ("सितंबर", 9),
    ("सितम्बर", 9),
    ("अक्टूबर", 10),
    ("नवंबर", 11),
    ("नवम्बर", 11),
    ("दिसंबर", 12),
    ("दिसम्बर", 12),
];

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sunday", Weekday::Sun),
    ("somvar", Weekday::Mon),
    ("mangalvar", Weekday::Tue),
    ("budhvar", Weekday::Wed),
    ("guruvar", Weekday::Thu),
    ("veervar", Weekday::Thu),
    ("shukravar", Weekday::Fri),
    ("shanivar", Weekday::Sat),
    ("ravivar", Weekday::Sun),
    ("सोमवार", Weekday::Mon),
    ("मंगलवार", Weekday::Tue),
    ("बुधवार", Weekday::Wed),
    ("गुरुवार", Weekday::Thu),
    ("शुक्रवार", Weekday::Fri),
    ("शनिवार", Weekday::Sat),
    ("रविवार", Weekday::Sun),
];

fn month(token: &str) -> Option<u32> {
    MONTHS
        .iter()
        .find(|(m, _)| *m == token || (m.len() > 4 && super::nlu::close(token, m)))
        .map(|(_, n)| *n)
}

fn small_number(token: &str) -> Option<i64> {
    let t = token.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    Some(match token {
        "a" | "an" | "one" | "ek" | "एक" => 1,
        "two" | "do" | "दो" => 2,
        "three" | "teen" | "तीन" => 3,
        "four" | "char" | "chaar" | "चार" => 4,
        "five" | "paanch" | "panch" | "पांच" => 5,
        "six" | "chhe" | "छह" => 6,
        "seven" | "saat" | "सात" => 7,
        _ => return None,
    })
}

/// A day of the month written like `12`, `12th`, `1st`.
fn day_of_month(token: &str) -> Option<u32> {
    let t = token
        .strip_suffix("st")
        .or_else(|| token.strip_suffix("nd"))
        .or_else(|| token.strip_suffix("rd"))
        .or_else(|| token.strip_suffix("th"))
        .unwrap_or(token);
    let d: u32 = t.parse().ok()?;
    (1..=31).contains(&d).then_some(d)
}

fn year_of(token: &str) -> Option<i32> {
    let y: i32 = token.parse().ok()?;
    match y {
        2000..=2100 => Some(y),
        0..=99 if token.len() == 2 => Some(2000 + y),
        _ => None,
    }
}

/// A day and month without a year: this year's, or last year's when this
/// year's is still ahead.
fn without_year(day: u32, month: u32, today: NaiveDate) -> Option<NaiveDate> {
    let this = NaiveDate::from_ymd_opt(today.year(), month, day)?;
    if this > today {
        NaiveDate::from_ymd_opt(today.year() - 1, month, day)
    } else {
        Some(this)
    }
}

/// A numeric date: `dd/mm/yyyy`, `dd-mm-yy`, `dd.mm.yyyy`, `dd/mm`, `yyyy-mm-dd`.
fn numeric(token: &str, today: NaiveDate) -> Option<NaiveDate> {
    let parts: Vec<&str> = token.split(['/', '-', '.']).collect();
    // "1.5" is an amount, not the first of May.
    if token.contains('.') && parts.len() != 3 {
        return None;
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 => {
            NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
        }
        [d, m, y] if d.len() <= 2 && m.len() <= 2 => {
            NaiveDate::from_ymd_opt(year_of(y)?, m.parse().ok()?, d.parse().ok()?)
        }
        [d, m] if d.len() <= 2 && m.len() <= 2 => {
            without_year(d.parse().ok()?, m.parse().ok()?, today)
        }
        _ => None,
    }
}

/// The date a message names, if it names one. Dates may be in the future
/// or long ago: the caller judges them.
pub fn find(tokens: &[String], today: NaiveDate) -> Option<NaiveDate> {
    let has = |w: &[&str]| tokens.iter().any(|t| w.contains(&t.as_str()));
    let ago = |n: i64| today.checked_sub_signed(Duration::days(n));
    for t in tokens {
        if let Some(d) = numeric(t, today) {
            return Some(d);
        }
    }
    // "12 march 2026", "march 12", "12th of march", "12 मार्च".
    for (i, t) in tokens.iter().enumerate() {
        let Some(m) = month(t) else { continue };
        let before = i
            .checked_sub(1)
            .and_then(|j| tokens.get(j))
            .filter(|p| p.as_str() != "of")
            .or_else(|| i.checked_sub(2).and_then(|j| tokens.get(j)));
        let after = tokens.get(i + 1);
        let (day, year_at) = match (
            before.and_then(|b| day_of_month(b)),
            after.and_then(|a| day_of_month(a)),
        ) {
            (Some(d), _) => (d, i + 1),
            (None, Some(d)) => (d, i + 2),
            (None, None) => continue,
        };
        let year = tokens.get(year_at).and_then(|y| year_of(y));
        return match year {
            Some(y) => NaiveDate::from_ymd_opt(y, m, day),
            None => without_year(day, m, today),
        };
    }
    // "3 days ago", "2 din pehle", "ek hafta pehle", "2 दिन पहले".
    for (i, t) in tokens.iter().enumerate() {
        let unit = match t.as_str() {
            "day" | "days" | "din" | "dino" | "दिन" => 1,
            "week" | "weeks" | "hafta" | "hafte" | "haftey" | "हफ्ता" | "हफ्ते" | "सप्ताह" => {
                7
            }
            "month" | "months" | "mahina" | "mahine" | "महीना" | "महीने" => 30,
            _ => continue,
        };
        let back = tokens.get(i + 1).is_some_and(|n| {
            ["ago", "back", "pehle", "pahle", "pehele", "पहले", "before"].contains(&n.as_str())
        }) || i
            .checked_sub(1)
            .and_then(|j| tokens.get(j))
            .is_some_and(|p| p == "last" || p == "pichhle" || p == "pichle");
        if !back {
            continue;
        }
        let n = i
            .checked_sub(1)
            .and_then(|j| tokens.get(j))
            .and_then(|p| small_number(p))
            .unwrap_or(1);
        return ago(n * unit);
    }
    if has(&["today", "aaj", "abhi", "आज", "अभी", "tday", "2day"]) {
        return Some(today);
    }
    if has(&["parso", "parson", "परसों", "परसो"])
        || tokens
            .windows(3)
            .any(|w| w[0] == "day" && w[1] == "before" && w[2] == "yesterday")
    {
        return ago(2);
    }
    if has(&["yesterday", "yday", "kal", "कल", "yesterdy", "yestarday"]) {
        return ago(1);
    }
    // "on monday", "somvar ko": the last such day (today counts).
    for t in tokens {
        if let Some((_, wd)) = WEEKDAYS.iter().find(|(w, _)| super::nlu::close(t, w)) {
            let back = (7 + today.weekday().num_days_from_monday() as i64
                - wd.num_days_from_monday() as i64)
                % 7;
            return ago(back);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::nlu::tokens;

    fn on(text: &str) -> Option<NaiveDate> {
        let today = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap(); // a Thursday
        find(&tokens(text), today)
    }

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    #[test]
    fn relative_dates_in_three_languages() {
        assert_eq!(on("today"), d(2026, 3, 12));
        assert_eq!(on("aaj hi liya"), d(2026, 3, 12));
        assert_eq!(on("आज"), d(2026, 3, 12));
        assert_eq!(on("yesterday"), d(2026, 3, 11));
        assert_eq!(on("kal"), d(2026, 3, 11));
        assert_eq!(on("कल खरीदा"), d(2026, 3, 11));
        assert_eq!(on("parso"), d(2026, 3, 10));
        assert_eq!(on("3 days ago"), d(2026, 3, 9));
        assert_eq!(on("2 din pehle"), d(2026, 3, 10));
        assert_eq!(on("2 दिन पहले"), d(2026, 3, 10));
        assert_eq!(on("ek hafta pehle"), d(2026, 3, 5));
        assert_eq!(on("last week"), d(2026, 3, 5));
        assert_eq!(on("on monday"), d(2026, 3, 9));
        assert_eq!(on("somvar ko"), d(2026, 3, 9));
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(on("12/03/2026"), d(2026, 3, 12));
        assert_eq!(on("5-3-26"), d(2026, 3, 5));
        assert_eq!(on("2026-03-01"), d(2026, 3, 1));
        assert_eq!(on("10/3"), d(2026, 3, 10));
        assert_eq!(on("bought on 8 march"), d(2026, 3, 8));
        assert_eq!(on("march 8th 2026"), d(2026, 3, 8));
        assert_eq!(on("8 मार्च"), d(2026, 3, 8));
        assert_eq!(on("25 december"), d(2025, 12, 25));
        assert_eq!(on("31/02/2026"), None);
        assert_eq!(on("Ravi Kumar"), None);
        assert_eq!(on("15000"), None);
    }
}
