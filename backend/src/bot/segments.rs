//! SMS segments: a reply that fits one segment goes out as it is; a longer
//! one is cut at word boundaries into parts that each fit one segment,
//! numbered `1/3 `, `2/3 `, ... so a feature phone that does not
//! reassemble concatenated SMS still shows them in order.
//!
//! A segment holds 160 characters of the GSM 03.38 alphabet (the extension
//! characters `^{}\[~]|€` count twice), or 70 UTF-16 code units when any
//! character is outside it (UCS-2: every Hindi reply).

/// Characters of the GSM 03.38 basic alphabet.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Characters of the extension table (sent as an escape and the character).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// One segment's capacity in GSM-7 characters.
pub const GSM_SEGMENT: usize = 160;
/// One segment's capacity in UCS-2 code units.
pub const UCS2_SEGMENT: usize = 70;

/// True when every character can be sent in the GSM 7-bit alphabet.
pub fn is_gsm7(text: &str) -> bool {
    text.chars()
        .all(|c| GSM_BASIC.contains(c) || GSM_EXTENDED.contains(c))
}

/// The cost of `text` in the given encoding.
fn cost(text: &str, gsm: bool) -> usize {
    if gsm {
        text.chars()
            .map(|c| if GSM_EXTENDED.contains(c) { 2 } else { 1 })
            .sum()
    } else {
        text.encode_utf16().count()
    }
}

/// Cuts `text` into parts of at most one segment each, numbered when there
/// is more than one. Whitespace runs become single spaces.
pub fn split(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.is_empty() {
        return Vec::new();
    }
    let gsm = is_gsm7(&joined);
    let limit = if gsm { GSM_SEGMENT } else { UCS2_SEGMENT };
    if cost(&joined, gsm) <= limit {
        return vec![joined];
    }
    // Reserve room for the widest prefix ("12/12 "), and grow it if the
    // count turns out to need more digits.
    let mut digits = 1;
    loop {
        let prefix = 2 * digits + 2;
        let chunks = pack(&words, limit - prefix, gsm);
        if chunks.len() < 10usize.pow(digits as u32) || digits >= 3 {
            let n = chunks.len();
            return chunks
                .into_iter()
                .enumerate()
                .map(|(i, c)| format!("{}/{n} {c}", i + 1))
                .collect();
        }
        digits += 1;
    }
}

/// Greedy packing of words into chunks of at most `cap`; a word longer
/// than `cap` is cut.
fn pack(words: &[&str], cap: usize, gsm: bool) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in words {
        let mut word: &str = word;
        loop {
            let sep = usize::from(!current.is_empty());
            if cost(&current, gsm) + sep + cost(word, gsm) <= cap {
                if sep == 1 {
                    current.push(' ');
                }
                current.push_str(word);
                break;
            }
            if !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                continue;
            }
            // The word alone is too long: cut it at a character boundary.
            let mut end = 0;
            for (i, c) in word.char_indices() {
                if cost(&word[..i + c.len_utf8()], gsm) > cap {
                    break;
                }
                end = i + c.len_utf8();
            }
            let end = end.max(word.chars().next().map_or(1, char::len_utf8));
            chunks.push(word[..end].to_string());
            word = &word[end..];
            if word.is_empty() {
                break;
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// How many SMS a reply takes.
pub fn count(text: &str) -> usize {
    split(text).len()
}

/// Whether one part fits one segment (for tests and the bench).
pub fn fits_one(part: &str) -> bool {
    let gsm = is_gsm7(part);
    cost(part, gsm) <= if gsm { GSM_SEGMENT } else { UCS2_SEGMENT }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_replies_are_one_segment_unnumbered() {
        let s = "Send the 15-digit IMEI (dial *#06# to see it).";
        assert_eq!(split(s), vec![s.to_string()]);
        assert!(is_gsm7(s));
        assert!(!is_gsm7("₹699"));
        assert!(!is_gsm7("बीमा"));
    }

    #[test]
    fn limits_are_160_gsm_and_70_ucs2() {
        let a160 = "a".repeat(160);
        assert_eq!(split(&a160).len(), 1);
        assert_eq!(split(&"a ".repeat(81)).len(), 2);
        // The euro sign costs two.
        assert_eq!(split(&"€".repeat(80)).len(), 1);
        assert_eq!(split(&"€".repeat(81)).len(), 2);
        let hi = "क".repeat(70);
        assert_eq!(split(&hi).len(), 1);
        let parts = split(&"नमस्ते ".repeat(20));
        assert!(parts.len() > 1);
        assert!(parts[0].starts_with("1/"), "{parts:?}");
        assert!(parts.iter().all(|p| fits_one(p)), "{parts:?}");
    }

    proptest! {
        #[test]
        fn parts_fit_and_keep_the_words(words in proptest::collection::vec("[a-zA-Z0-9€]{1,12}|[क-ह]{1,8}|\\PC{1,5}", 0..80)) {
            let text = words.join(" ");
            let parts = split(&text);
            for p in &parts {
                prop_assert!(fits_one(p), "{p:?}");
            }
            let n = parts.len();
            let body: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(i, p)| if n > 1 {
                    p.strip_prefix(&format!("{}/{n} ", i + 1)).unwrap_or(p).to_string()
                } else {
                    p.clone()
                })
                .collect();
            let original: String = text.split_whitespace().collect::<Vec<_>>().join("");
            let rebuilt: String = body.join("").split_whitespace().collect::<Vec<_>>().join("");
            prop_assert_eq!(rebuilt, original);
        }
    }
}
