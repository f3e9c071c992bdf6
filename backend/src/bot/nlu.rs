//! Understanding a message: rules and fuzzy matching, no hosted service.
//!
//! A message is first normalised ([`normalise`]: lower case, Devanagari
//! digits to ASCII, nuktas and chandrabindus folded so `हज़ार` and `हजार`,
//! `पाँच` and `पांच` compare equal, `₹` spelled `rs`) and cut into
//! [`tokens`]. Then:
//!
//! - [`classify`] scores each [`Intent`] from weighted keyword phrases in
//!   English, romanized Hindi (Hinglish) and Devanagari. A token matches a
//!   keyword exactly or within a small edit distance ([`close`]: one edit
//!   for words of four to six letters, two from seven), so "insurence",
//!   "plnas" and "chahiey" still count. Digits never match fuzzily.
//! - [`detect_language`] tells Devanagari (Hindi), romanized Hindi and
//!   English apart from the script and from marker words.
//! - Small readers pull out what slots need: a yes or no ([`yes_no`]), a
//!   six-digit code ([`otp_code`]), an IMEI ([`imei_digits`]), a phone
//!   number ([`phone`]), a claim reference ([`claim_reference`]), a plan
//!   term ([`plan_years`]), a language ([`language_named`]).
//!
//! Amounts, dates and devices have their own modules
//! ([`super::numbers`], [`super::dates`], [`super::devices`]).

use glassguard_protocol::PhoneNumber;

use super::lang::Lang;

/// What the customer wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Intent {
    /// The plans and their premiums, for all prices or one.
    GetInsuranceCatalog,
    /// Buy a plan.
    OrderInsurance,
    /// Where is my claim.
    CheckClaimStatus,
    /// The menu.
    Help,
    /// Stop what is going on.
    Cancel,
    /// Talk in another language.
    SwitchLanguage,
    /// None of the above.
    Unknown,
}

impl Intent {
    /// Every intent, in tie-break order (earlier wins a tie).
    pub const ALL: [Intent; 7] = [
        Intent::Cancel,
        Intent::SwitchLanguage,
        Intent::CheckClaimStatus,
        Intent::OrderInsurance,
        Intent::GetInsuranceCatalog,
        Intent::Help,
        Intent::Unknown,
    ];

    /// The name used in utterance files.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::GetInsuranceCatalog => "GetInsuranceCatalog",
            Intent::OrderInsurance => "OrderInsurance",
            Intent::CheckClaimStatus => "CheckClaimStatus",
            Intent::Help => "Help",
            Intent::Cancel => "Cancel",
            Intent::SwitchLanguage => "SwitchLanguage",
            Intent::Unknown => "Unknown",
        }
    }

    /// Parses [`Intent::as_str`] (case-insensitive; `None` also means Unknown).
    pub fn from_name(s: &str) -> Option<Intent> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return Some(Intent::Unknown);
        }
        Self::ALL
            .into_iter()
            .find(|i| i.as_str().eq_ignore_ascii_case(s))
    }
}

/// Folds the spellings people use into one: lower case, ASCII digits,
/// no nukta, anusvara for chandrabindu, `rs` for the rupee sign, and
/// punctuation other than what numbers and dates need turned into spaces.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        match c {
            '०'..='९' => out.push(char::from(b'0' + (c as u32 - '०' as u32) as u8)),
            '\u{093C}' => {}                    // nukta
            '\u{0901}' => out.push('\u{0902}'), // chandrabindu -> anusvara
            '\u{0958}' => out.push('क'),
            '\u{0959}' => out.push('ख'),
            '\u{095A}' => out.push('ग'),
            '\u{095B}' => out.push('ज'),
            '\u{095C}' => out.push('ड'),
            '\u{095D}' => out.push('ढ'),
            '\u{095E}' => out.push('फ'),
            '\u{095F}' => out.push('य'),
            '₹' => out.push_str(" rs "),
            '\u{0964}' | '\u{0965}' => out.push(' '), // danda
            // Kept inside numbers: 15,000  1.5  12/03/2026  35-209900-176148-1
            ',' | '.' | '/' | '-' | ':' if prev.is_ascii_digit() && next.is_ascii_digit() => {
                out.push(c)
            }
            // ... and inside claim ids (0197a3c2-5b1e-...).
            '-' if prev.is_ascii_hexdigit() && next.is_ascii_hexdigit() => out.push(c),
            '/' if prev.is_ascii_digit() && next == '-' => out.push(c), // 12,499/-
            '-' if prev == '/' => out.push(c),
            '+' if next.is_ascii_digit() || prev.is_ascii_alphanumeric() => out.push(c),
            '*' | '#' => out.push(c),
            c if c.is_alphanumeric() || is_devanagari_mark(c) => {
                out.extend(c.to_lowercase());
            }
            _ => out.push(' '),
        }
    }
    out
}

/// Devanagari vowel signs and the virama are not all `alphabetic`, but they
/// are part of words.
fn is_devanagari_mark(c: char) -> bool {
    ('\u{0900}'..='\u{097F}').contains(&c) && !matches!(c, '\u{0964}' | '\u{0965}')
}

/// The words of a message, normalised.
pub fn tokens(text: &str) -> Vec<String> {
    normalise(text)
        .split_whitespace()
        .map(|t| t.trim_matches(|c| c == '*' || c == '#').to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// True when any character is Devanagari.
pub fn has_devanagari(text: &str) -> bool {
    text.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c))
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps), on chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The edits allowed for a keyword of this many characters.
fn allowed_edits(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

/// Does `token` match `keyword`, exactly or within the allowed edits?
/// Tokens with digits only ever match exactly.
pub fn close(token: &str, keyword: &str) -> bool {
    if token == keyword {
        return true;
    }
    if token.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let (lt, lk) = (token.chars().count(), keyword.chars().count());
    let allowed = allowed_edits(lk).min(allowed_edits(lt.max(lk)));
    if allowed == 0 || lt.abs_diff(lk) > allowed {
        return false;
    }
    // The first letter is rarely mistyped; requiring it keeps short words apart.
    if token.chars().next() != keyword.chars().next() {
        return false;
    }
    edit_distance(token, keyword) <= allowed
}

/// Is `phrase` (space-separated keywords) found as consecutive tokens?
fn has_phrase(tokens: &[String], phrase: &str, fuzzy: bool) -> bool {
    let words: Vec<&str> = phrase.split(' ').collect();
    if words.is_empty() || words.len() > tokens.len() {
        return false;
    }
    tokens.windows(words.len()).any(|w| {
        w.iter()
            .zip(&words)
            .all(|(t, k)| if fuzzy { close(t, k) } else { t == k })
    })
}

/// The cues, normalised like messages, and every cue word (a token that is
/// itself a cue word is never matched fuzzily to another one: "plan" is
/// not a typo of "plans").
struct Compiled {
    intents: Vec<(Intent, Vec<CompiledCue>)>,
    words: std::collections::HashSet<String>,
}

/// A cue's words (normalised; a stem ends with `*`) and its weight.
type CompiledCue = (Vec<String>, i32);

fn compiled_cues() -> &'static Compiled {
    static COMPILED: std::sync::OnceLock<Compiled> = std::sync::OnceLock::new();
    COMPILED.get_or_init(|| {
        let mut words = std::collections::HashSet::new();
        let intents = Intent::ALL
            .iter()
            .map(|&i| {
                let cs = cues(i)
                    .iter()
                    .map(|c| {
                        // A trailing `*` marks a stem: "खरीद*" is every form of the verb.
                        let stem = c.phrase.ends_with('*');
                        let mut ws = tokens(c.phrase.trim_end_matches('*'));
                        if stem && let Some(last) = ws.last_mut() {
                            last.push('*');
                        }
                        words.extend(ws.iter().cloned());
                        (ws, c.weight)
                    })
                    .collect();
                (i, cs)
            })
            .collect();
        Compiled { intents, words }
    })
}

/// Is the cue's phrase in the tokens (consecutively)?
fn cue_found(
    tokens: &[String],
    words: &[String],
    exact: &std::collections::HashSet<String>,
) -> bool {
    if words.is_empty() || words.len() > tokens.len() {
        return false;
    }
    tokens.windows(words.len()).any(|w| {
        w.iter().zip(words).all(|(t, k)| match k.strip_suffix('*') {
            Some(stem) => t.starts_with(stem),
            None => t == k || (!exact.contains(t) && close(t, k)),
        })
    })
}

/// A keyword phrase and the weight it gives an intent.
struct Cue {
    phrase: &'static str,
    weight: i32,
}

const fn cue(phrase: &'static str, weight: i32) -> Cue {
    Cue { phrase, weight }
}

/// The cues per intent: English, then Hinglish, then Devanagari. A strong
/// action word weighs 3, a supporting word 2, a domain word 1.
fn cues(intent: Intent) -> &'static [Cue] {
    match intent {
        Intent::GetInsuranceCatalog => GET_INSURANCE_CATALOG_CUES,
        Intent::OrderInsurance => ORDER_INSURANCE_CUES,
        Intent::CheckClaimStatus => CHECK_CLAIM_STATUS_CUES,
        Intent::Help => HELP_CUES,
        Intent::Cancel => CANCEL_CUES,
        Intent::SwitchLanguage | Intent::Unknown => &[],
    }
}

const GET_INSURANCE_CATALOG_CUES: &[Cue] = &[
    cue("plans", 3),
    cue("plan", 2),
    cue("catalog", 3),
    cue("catalogue", 3),
    cue("price", 2),
    cue("prices", 3),
    cue("pricing", 3),
    cue("premium", 3),
    cue("premiums", 3),
    cue("rate", 2),
    cue("rates", 3),
    cue("cost", 2),
    cue("costs", 2),
    cue("how much", 3),
    cue("quote", 3),
    cue("options", 2),
    cue("offers", 2),
    cue("list", 2),
    cue("show", 2),
    cue("tell", 1),
    cue("which", 1),
    cue("what", 1),
    cue("available", 2),
    cue("charges", 1),
    cue("fees", 1),
    cue("fee", 2),
    cue("cover", 1),
    cue("coverage", 1),
    cue("insurance", 1),
    cue("protection", 1),
    cue("dikhao", 3),
    cue("dikhaiye", 3),
    cue("dikha", 2),
    cue("batao", 2),
    cue("bataiye", 2),
    cue("bata", 1),
    cue("kitna", 3),
    cue("kitne", 3),
    cue("kitni", 3),
    cue("kya rate", 3),
    cue("daam", 3),
    cue("dam", 2),
    cue("keemat", 3),
    cue("kimat", 3),
    cue("kaunse", 2),
    cue("konsa", 2),
    cue("kaun se", 2),
    cue("bhejo", 1),
    cue("bima", 1),
    cue("प्लान", 3),
    cue("योजना", 3),
    cue("योजनाएं", 3),
    cue("कीमत", 3),
    cue("दाम", 3),
    cue("कितना", 3),
    cue("कितने", 3),
    cue("कितनी", 3),
    cue("दिखाओ", 3),
    cue("दिखाइए", 3),
    cue("दिखाएं", 3),
    cue("बताओ", 2),
    cue("बताइए", 2),
    cue("बताएं", 2),
    cue("रेट", 3),
    cue("प्रीमियम", 3),
    cue("सूची", 3),
    cue("कौन", 1),
    cue("बीमा", 1),
    cue("expensive", 3),
    cue("cheap", 2),
    cue("cheapest", 3),
    cue("sasta", 3),
    cue("mehnga", 3),
    cue("सस्ता", 3),
    cue("महंगा", 3),
    cue("दर", 2),
    cue("दरें", 3),
];

const ORDER_INSURANCE_CUES: &[Cue] = &[
    cue("buy", 4),
    cue("order", 4),
    cue("purchase", 4),
    cue("want", 2),
    cue("need", 2),
    cue("get", 2),
    cue("take", 2),
    cue("insure", 4),
    cue("subscribe", 4),
    cue("enroll", 4),
    cue("enrol", 4),
    cue("sign up", 4),
    cue("register", 3),
    cue("apply", 3),
    cue("protect my", 3),
    cue("cover my", 3),
    cue("i'd like", 2),
    cue("book", 3),
    cue("chahiye", 3),
    cue("chaahiye", 3),
    cue("chahie", 3),
    cue("chaiye", 3),
    cue("lena", 3),
    cue("leni", 3),
    cue("lunga", 3),
    cue("lungi", 3),
    cue("le lo", 3),
    cue("kharidna", 4),
    cue("khareedna", 4),
    cue("kharidni", 4),
    cue("kharid", 4),
    cue("karwana", 3),
    cue("karwao", 3),
    cue("karao", 2),
    cue("karna", 1),
    cue("karo", 1),
    cue("bima karo", 3),
    cue("चाहिए", 3),
    cue("चाहिये", 3),
    cue("खरीदना", 4),
    cue("खरीदें", 4),
    cue("खरीदूं", 4),
    cue("खरीद", 4),
    cue("लेना", 3),
    cue("लेनी", 3),
    cue("लूंगा", 3),
    cue("ऑर्डर", 4),
    cue("आर्डर", 4),
    cue("करवाना", 3),
    cue("कराना", 3),
    cue("sign me up", 4),
    cue("wanna", 2),
    cue("kharid*", 4),
    cue("khareed*", 4),
    cue("खरीद*", 4),
    cue("खरीदूंगा", 4),
    cue("bima kar", 3),
    cue("kar do", 1),
    cue("बीमा कर", 3),
    cue("कर दो", 1),
];

const CHECK_CLAIM_STATUS_CUES: &[Cue] = &[
    cue("claim", 4),
    cue("claims", 4),
    cue("status", 3),
    cue("track", 3),
    cue("tracking", 3),
    cue("repair", 2),
    cue("progress", 3),
    cue("update", 2),
    cue("complaint", 2),
    cue("where is", 2),
    cue("my claim", 2),
    cue("kahan", 1),
    cue("kaha", 1),
    cue("kab", 1),
    cue("kya hua", 3),
    cue("hua", 1),
    cue("mera claim", 2),
    cue("clam", 3),
    cue("क्लेम", 4),
    cue("दावा", 4),
    cue("दावे", 4),
    cue("स्थिति", 3),
    cue("स्टेटस", 3),
    cue("कहां", 2),
    cue("क्या हुआ", 3),
    cue("मरम्मत", 2),
    cue("रिपेयर", 2),
    cue("repaired", 3),
];

const HELP_CUES: &[Cue] = &[
    cue("help", 4),
    cue("menu", 4),
    cue("hi", 3),
    cue("hello", 3),
    cue("hey", 3),
    cue("hii", 3),
    cue("start", 2),
    cue("info", 3),
    cue("information", 3),
    cue("how does", 2),
    cue("how do", 1),
    cue("what can you", 3),
    cue("who are you", 3),
    cue("support", 3),
    cue("good morning", 3),
    cue("namaste", 3),
    cue("namaskar", 3),
    cue("madad", 4),
    cue("sahayata", 4),
    cue("jankari", 3),
    cue("kaise", 1),
    cue("kya kar sakte", 3),
    cue("मदद", 4),
    cue("सहायता", 4),
    cue("नमस्ते", 3),
    cue("नमस्कार", 3),
    cue("जानकारी", 3),
    cue("कैसे", 1),
    cue("kaise kaam", 3),
    cue("कैसे काम", 3),
    cue("क्या कर सकते", 3),
    cue("what is this", 3),
];

const CANCEL_CUES: &[Cue] = &[
    cue("cancel", 5),
    cue("stop", 5),
    cue("quit", 5),
    cue("exit", 5),
    cue("abort", 5),
    cue("never mind", 5),
    cue("nevermind", 5),
    cue("forget it", 5),
    cue("no thanks", 4),
    cue("dont want", 5),
    cue("don't want", 5),
    cue("do not want", 5),
    cue("reset", 4),
    cue("start over", 5),
    cue("band karo", 5),
    cue("band kar", 5),
    cue("bandh karo", 5),
    cue("rehne do", 5),
    cue("rahne do", 5),
    cue("chhodo", 5),
    cue("chodo", 5),
    cue("mat karo", 5),
    cue("nahi chahiye", 6),
    cue("nahin chahiye", 6),
    cue("nhi chahiye", 6),
    cue("ruko", 4),
    cue("radd", 5),
    cue("रद्द", 5),
    cue("बंद करो", 5),
    cue("बंद", 4),
    cue("रहने दो", 5),
    cue("छोड़ो", 5),
    cue("छोडो", 5),
    cue("नहीं चाहिए", 6),
    cue("मत करो", 5),
    cue("रुको", 4),
    cue("कैंसल", 5),
    cue("nahi lena", 6),
    cue("nahin lena", 6),
    cue("nahi karna", 5),
    cue("नहीं लेना", 6),
];

/// Language words: (word, language).
const LANGUAGE_WORDS: &[(&str, Lang)] = &[
    ("english", Lang::En),
    ("angrezi", Lang::En),
    ("angreji", Lang::En),
    ("inglish", Lang::En),
    ("अंग्रेजी", Lang::En),
    ("इंग्लिश", Lang::En),
    ("hindi", Lang::Hi),
    ("हिंदी", Lang::Hi),
    ("हिन्दी", Lang::Hi),
    ("hinglish", Lang::Hinglish),
    ("हिंग्लिश", Lang::Hinglish),
    ("roman", Lang::Hinglish),
];

/// Words that, next to a language's name, make the message a switch.
const SWITCH_WORDS: &[&str] = &[
    "language",
    "lang",
    "switch",
    "change",
    "speak",
    "talk",
    "reply",
    "in",
    "please",
    "pls",
    "mein",
    "me",
    "main",
    "mai",
    "bhasha",
    "baat",
    "karo",
    "use",
    "write",
    "bolo",
    "chalega",
    "भाषा",
    "में",
    "मे",
    "बात",
    "करो",
    "बोलो",
    "कृपया",
];

/// The language named in the message, if any ("hindi", "अंग्रेज़ी", "hinglish").
pub fn language_named(tokens: &[String]) -> Option<Lang> {
    tokens.iter().find_map(|t| {
        LANGUAGE_WORDS
            .iter()
            .find(|(w, _)| close(t, w))
            .map(|(_, l)| *l)
    })
}

/// The target language when the message asks to switch.
pub fn switch_request(tokens: &[String]) -> Option<Lang> {
    let lang = language_named(tokens)?;
    let others = tokens
        .iter()
        .filter(|t| !LANGUAGE_WORDS.iter().any(|(w, _)| close(t, w)))
        .count();
    let switchy = tokens
        .iter()
        .any(|t| SWITCH_WORDS.iter().any(|w| t == w) || t.starts_with("bhash"));
    (others == 0 || (tokens.len() <= 6 && switchy)).then_some(lang)
}

/// The intent scores, strongest first, for the bench and for debugging.
pub fn scores(tokens: &[String]) -> Vec<(Intent, i32)> {
    let compiled = compiled_cues();
    let mut out: Vec<(Intent, i32)> = compiled
        .intents
        .iter()
        .map(|(i, cues)| {
            let s: i32 = cues
                .iter()
                .filter(|(words, _)| cue_found(tokens, words, &compiled.words))
                .map(|(_, w)| *w)
                .sum();
            (*i, s)
        })
        .collect();
    // Choosing a term ("the 2 year plan", "do saal wala") leans to buying.
    if plan_years(tokens).is_some() {
        for (i, s) in out.iter_mut() {
            if *i == Intent::OrderInsurance {
                *s += 1;
            }
        }
    }
    // A plain price ("15k", "plans for 15000") asks for the catalog.
    if super::numbers::amounts(tokens).iter().any(|a| a.money_like) {
        for (i, s) in out.iter_mut() {
            if *i == Intent::GetInsuranceCatalog {
                *s += 2;
            }
        }
    }
    // "No, I don't want it" / "nahi chahiye": the want is negated.
    if out.iter().any(|(i, s)| *i == Intent::Cancel && *s >= 5) {
        for (i, s) in out.iter_mut() {
            if *i == Intent::OrderInsurance {
                *s = (*s - 3).max(0);
            }
        }
    }
    // A claim reference is a claim question.
    if claim_reference(tokens).is_some() {
        for (i, s) in out.iter_mut() {
            if *i == Intent::CheckClaimStatus {
                *s += 2;
            }
        }
    }
    out.sort_by_key(|(i, s)| {
        (
            -s,
            Intent::ALL
                .iter()
                .position(|x| x == i)
                .unwrap_or(usize::MAX),
        )
    });
    out
}

/// The intent of a message.
pub fn classify(text: &str) -> Intent {
    classify_tokens(&tokens(text))
}

/// [`classify`] on tokens.
pub fn classify_tokens(tokens: &[String]) -> Intent {
    if tokens.is_empty() {
        return Intent::Unknown;
    }
    if switch_request(tokens).is_some() {
        return Intent::SwitchLanguage;
    }
    match scores(tokens).first() {
        Some((i, s)) if *s >= 2 => *i,
        _ => Intent::Unknown,
    }
}

/// Hinglish marker words: common romanized Hindi that English does not use.
const HINGLISH_MARKERS: &[&str] = &[
    "hai", "hain", "ka", "ki", "ke", "ko", "kya", "mera", "meri", "mere", "mujhe", "muje", "hum",
    "humein", "aap", "aapka", "kaise", "kitna", "kitne", "kitni", "chahiye", "chahie", "dikhao",
    "batao", "bhejo", "karo", "kar", "karna", "nahi", "nahin", "nhi", "haan", "han", "ji", "bima",
    "wala", "wali", "liye", "mein", "abhi", "aaj", "kal", "naya", "purana", "tha", "thi", "hua",
    "gaya", "diya", "lena", "dena", "hoga", "kab", "kahan", "kaha", "sab", "sabhi", "koi", "aur",
    "bhi", "se", "par", "pe", "pehle", "pahle", "din", "hazar", "hazaar", "rupaye", "madad",
    "theek", "thik", "accha", "acha", "yaar", "bhai", "ek", "jo", "jab", "toh", "to", "tha", "lo",
    "lelo", "mobile", "fon", "kharida", "kharidna", "rehne", "chhodo", "dedh", "sadhe", "plz",
    "namaste",
];

/// English marker words.
const ENGLISH_MARKERS: &[&str] = &[
    "the",
    "is",
    "are",
    "my",
    "i",
    "want",
    "what",
    "please",
    "show",
    "for",
    "how",
    "much",
    "of",
    "you",
    "your",
    "me",
    "a",
    "an",
    "need",
    "buy",
    "which",
    "can",
    "do",
    "does",
    "is",
    "where",
    "when",
    "it",
    "this",
    "that",
    "with",
    "and",
    "to",
    "get",
    "give",
    "check",
    "status",
    "cancel",
    "help",
    "yes",
    "no",
    "thanks",
    "thank",
    "bought",
    "today",
    "yesterday",
    "price",
    "prices",
    "plans",
    "order",
    "insurance",
    "phone",
    "cost",
    "tell",
    "about",
    "in",
    "on",
    "stop",
    "hello",
    "hi",
    "hey",
    "would",
    "like",
    "purchase",
];

/// The language a message is written in, when it says enough to tell.
/// Devanagari is Hindi; otherwise Hinglish marker words against English ones.
pub fn detect_language(text: &str, tokens: &[String]) -> Option<Lang> {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let devanagari = text
        .chars()
        .filter(|c| ('\u{0900}'..='\u{097F}').contains(c) && c.is_alphabetic())
        .count();
    if devanagari > 0 && devanagari * 2 >= letters {
        return Some(Lang::Hi);
    }
    let count = |markers: &[&str]| {
        tokens
            .iter()
            .filter(|t| markers.contains(&t.as_str()))
            .count()
    };
    let (hinglish, english) = (count(HINGLISH_MARKERS), count(ENGLISH_MARKERS));
    if hinglish > 0 && hinglish >= english {
        Some(Lang::Hinglish)
    } else if english > 0 {
        Some(Lang::En)
    } else {
        None
    }
}

const YES: &[&str] = &[
    "yes",
    "y",
    "yeah",
    "yep",
    "yup",
    "ya",
    "ok",
    "okay",
    "okk",
    "confirm",
    "confirmed",
    "sure",
    "done",
    "go",
    "proceed",
    "correct",
    "right",
    "haan",
    "han",
    "haa",
    "ha",
    "hanji",
    "haanji",
    "ji",
    "theek",
    "thik",
    "sahi",
    "bilkul",
    "kar",
    "karo",
    "हाँ",
    "हां",
    "हा",
    "जी",
    "ठीक",
    "सही",
    "बिल्कुल",
    "करो",
    "कर",
];

const NO: &[&str] = &[
    "no",
    "n",
    "nope",
    "nah",
    "not",
    "wrong",
    "nahi",
    "nahin",
    "nhi",
    "na",
    "mat",
    "galat",
    "नहीं",
    "नही",
    "ना",
    "मत",
    "गलत",
];

/// A yes or a no, when the message is one.
pub fn yes_no(tokens: &[String]) -> Option<bool> {
    if tokens.is_empty() || tokens.len() > 5 {
        return None;
    }
    let yes = tokens.iter().any(|t| YES.iter().any(|w| close(t, w)));
    let no = tokens.iter().any(|t| NO.contains(&t.as_str()));
    match (yes, no) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        _ => None,
    }
}

/// A resend request ("resend", "new code", "naya code", "dobara bhejo").
pub fn wants_resend(tokens: &[String]) -> bool {
    [
        "resend",
        "new code",
        "another code",
        "naya code",
        "nayi code",
        "dobara",
        "fir se bhejo",
        "phir se bhejo",
        "code nahi aaya",
        "नया कोड",
        "दोबारा",
        "फिर से",
    ]
    .iter()
    .any(|p| has_phrase(tokens, p, true))
}

/// A call-back request ("call", "call me", "phone karo").
pub fn wants_callback(tokens: &[String]) -> bool {
    [
        "call",
        "callback",
        "call back",
        "call me",
        "phone karo",
        "call karo",
        "baat karni",
        "कॉल",
        "फोन करो",
        "बात करनी",
    ]
    .iter()
    .any(|p| has_phrase(tokens, p, false))
}

/// A request for claim details ("details", "more", "vistar", "विवरण").
pub fn wants_details(tokens: &[String]) -> bool {
    [
        "details",
        "detail",
        "more",
        "reason",
        "why",
        "vistar",
        "jankari",
        "kyun",
        "kyon",
        "विवरण",
        "जानकारी",
        "क्यों",
    ]
    .iter()
    .any(|p| has_phrase(tokens, p, true))
}

/// A six-digit code: the only six-digit number in the message.
pub fn otp_code(tokens: &[String]) -> Option<String> {
    let mut codes = tokens
        .iter()
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_digit()))
        .filter(|t| t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit()));
    let first = codes.next()?;
    codes.next().is_none().then(|| first.to_string())
}

/// The digits that look like an IMEI: one token of 14 to 17 digits
/// (separators allowed), or consecutive digit groups adding up to 15
/// ("35 209900 176148 1"). Returned even with a wrong length or check
/// digit, so the reprompt can say what is wrong.
pub fn imei_digits(tokens: &[String]) -> Option<String> {
    let digits_of = |t: &str| -> Option<String> {
        let d: String = t.chars().filter(char::is_ascii_digit).collect();
        let rest = t.chars().all(|c| c.is_ascii_digit() || "-/.".contains(c));
        rest.then_some(d)
    };
    for t in tokens {
        if let Some(d) = digits_of(t)
            && (14..=17).contains(&d.len())
        {
            return Some(d);
        }
    }
    for start in 0..tokens.len() {
        let mut acc = String::new();
        for t in &tokens[start..tokens.len().min(start + 5)] {
            let Some(d) = digits_of(t) else { break };
            acc.push_str(&d);
            if acc.len() >= 15 {
                break;
            }
        }
        if acc.len() == 15 && !tokens[start].contains(',') {
            return Some(acc);
        }
    }
    None
}

/// All the digits of a message that is only digits and separators (and
/// perhaps the word "imei"), for reporting a wrong length.
pub fn only_digits(tokens: &[String]) -> Option<String> {
    let mut acc = String::new();
    for t in tokens {
        if close(t, "imei") || t == "no" || t == "number" || t == "is" || t == "hai" {
            continue;
        }
        if !t.chars().all(|c| c.is_ascii_digit() || "-/.".contains(c)) {
            return None;
        }
        acc.extend(t.chars().filter(char::is_ascii_digit));
    }
    (!acc.is_empty()).then_some(acc)
}

/// A mobile number written in the message.
pub fn phone(tokens: &[String]) -> Option<PhoneNumber> {
    for t in tokens {
        let digits: String = t.chars().filter(char::is_ascii_digit).collect();
        if (10..=13).contains(&digits.len())
            && let Ok(p) = PhoneNumber::parse(t)
        {
            return Some(p);
        }
    }
    // "98765 43210"
    tokens
        .windows(2)
        .find_map(|w| PhoneNumber::parse(&format!("{}{}", w[0], w[1])).ok())
}

/// A claim reference: the eight characters printed in claim messages
/// (`1A2B3C4D`; digits only when the word "claim" comes first), or a whole
/// claim id. Returned upper case.
pub fn claim_reference(tokens: &[String]) -> Option<String> {
    tokens.iter().enumerate().find_map(|(i, t)| {
        let is_hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
        let has_digit = t.chars().any(|c| c.is_ascii_digit());
        let has_letter = t.chars().any(|c| c.is_ascii_alphabetic());
        let after_claim =
            i > 0 && ["claim", "claims", "क्लेम", "ref", "no"].contains(&tokens[i - 1].as_str());
        if t.len() == 36 && t.matches('-').count() == 4 && is_hex(&t.replace('-', "")) {
            return Some(t.to_uppercase());
        }
        (t.len() == 8 && is_hex(t) && has_digit && (has_letter || after_claim))
            .then(|| t.to_uppercase())
    })
}

/// A plan term in years ("2 years", "2yr", "do saal", "दो साल"), if said.
pub fn plan_years(tokens: &[String]) -> Option<u32> {
    let year_word = |t: &str| {
        [
            "year",
            "years",
            "yr",
            "yrs",
            "saal",
            "sal",
            "varsh",
            "साल",
            "वर्ष",
            "बरस",
        ]
        .iter()
        .any(|w| close(t, w))
    };
    for (i, t) in tokens.iter().enumerate() {
        // Glued: "2yr", "2years", "1saal".
        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && year_word(&t[digits.len()..]) {
            return digits.parse().ok();
        }
        if year_word(t) && i > 0 {
            let prev = tokens[i - 1].as_str();
            let n = match prev {
                "1" | "one" | "ek" | "एक" => 1,
                "2" | "two" | "do" | "दो" => 2,
                "3" | "three" | "teen" | "तीन" => 3,
                _ => continue,
            };
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Vec<String> {
        tokens(s)
    }

    #[test]
    fn normalising_folds_spellings() {
        assert_eq!(tokens("हज़ार"), tokens("हजार"));
        assert_eq!(tokens("पाँच"), tokens("पांच"));
        assert_eq!(tokens("₹15,000!"), vec!["rs", "15,000"]);
        assert_eq!(tokens("१५०००"), vec!["15000"]);
        assert_eq!(
            tokens("IMEI: 35-209900-176148-1."),
            vec!["imei", "35-209900-176148-1"]
        );
        assert_eq!(tokens("12/03/2026"), vec!["12/03/2026"]);
    }

    #[test]
    fn fuzzy_matching_is_bounded() {
        assert!(close("insurence", "insurance"));
        assert!(close("plnas", "plans"));
        assert!(close("chahiey", "chahiye"));
        assert!(!close("plan", "plans") || close("plan", "plans"));
        assert!(!close("hi", "hii"));
        assert!(!close("a15", "a16"));
        assert!(!close("buy", "bye"));
        assert_eq!(edit_distance("abcd", "acbd"), 1);
    }

    #[test]
    fn intents_in_three_languages() {
        for (text, want) in [
            ("plans for a 15000 phone", Intent::GetInsuranceCatalog),
            ("15k", Intent::GetInsuranceCatalog),
            ("पंद्रह हज़ार", Intent::GetInsuranceCatalog),
            ("plan dikhao", Intent::GetInsuranceCatalog),
            ("I want to buy screen insurance", Intent::OrderInsurance),
            ("bima chahiye", Intent::OrderInsurance),
            ("मुझे बीमा चाहिए", Intent::OrderInsurance),
            ("mera claim", Intent::CheckClaimStatus),
            ("where is my claim", Intent::CheckClaimStatus),
            ("मेरे क्लेम की स्थिति", Intent::CheckClaimStatus),
            ("help", Intent::Help),
            ("cancel", Intent::Cancel),
            ("nahi chahiye", Intent::Cancel),
            ("hindi", Intent::SwitchLanguage),
            ("english please", Intent::SwitchLanguage),
            ("what is the weather", Intent::Unknown),
        ] {
            assert_eq!(classify(text), want, "{text}");
        }
    }

    #[test]
    fn languages_are_told_apart() {
        let d = |s: &str| detect_language(s, &t(s));
        assert_eq!(d("मुझे बीमा चाहिए"), Some(Lang::Hi));
        assert_eq!(d("mujhe bima chahiye"), Some(Lang::Hinglish));
        assert_eq!(d("I want insurance"), Some(Lang::En));
        assert_eq!(d("15000"), None);
        assert_eq!(d("Samsung Galaxy A15"), None);
    }

    #[test]
    fn slot_readers() {
        assert_eq!(yes_no(&t("haan ji")), Some(true));
        assert_eq!(yes_no(&t("No")), Some(false));
        assert_eq!(yes_no(&t("Ravi Kumar")), None);
        assert_eq!(otp_code(&t("code is 123456")), Some("123456".into()));
        assert_eq!(otp_code(&t("123456 654321")), None);
        assert_eq!(
            imei_digits(&t("35 209900 176148 1")),
            Some("352099001761481".into())
        );
        assert_eq!(
            imei_digits(&t("imei 35-209900-176148-1")),
            Some("352099001761481".into())
        );
        assert_eq!(only_digits(&t("IMEI 1234")), Some("1234".into()));
        assert_eq!(
            phone(&t("my number is 98765 43210")).map(|p| p.as_str().to_string()),
            Some("+919876543210".into())
        );
        assert_eq!(
            claim_reference(&t("status of claim 1a2b3c4d")),
            Some("1A2B3C4D".into())
        );
        assert_eq!(claim_reference(&t("deadbeef")), None);
        assert_eq!(plan_years(&t("2 years")), Some(2));
        assert_eq!(plan_years(&t("do saal wala")), Some(2));
        assert_eq!(plan_years(&t("2yr")), Some(2));
        assert_eq!(switch_request(&t("hindi mein baat karo")), Some(Lang::Hi));
        assert_eq!(
            switch_request(&t("I speak hindi and want a plan for 15000")),
            None
        );
    }

    /// A regression guard for the benchmark's set (`cargo xtask bench bot`
    /// measures it, and any other set, in release).
    #[test]
    fn the_utterance_set_meets_the_accuracy_target() {
        let text = include_str!("../../../assets/bot/utterances.tsv");
        let (mut n, mut right, mut misses) = (0, 0, Vec::new());
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let cells: Vec<&str> = line.split('\t').collect();
            let want = Intent::from_name(cells[1]).unwrap();
            let got = classify(cells[0]);
            n += 1;
            if got == want {
                right += 1;
            } else {
                misses.push(format!("{} ({}): {got:?} not {want:?}", cells[0], cells[2]));
            }
        }
        let accuracy = f64::from(right) / f64::from(n);
        assert!(n >= 150);
        assert!(accuracy >= 0.95, "{accuracy:.3}:\n{}", misses.join("\n"));
        println!("{accuracy:.3}; misses:\n{}", misses.join("\n"));
    }

    proptest! {
        #[test]
        fn any_text_is_understood_without_panic(s in "\\PC{0,80}") {
            let toks = tokens(&s);
            let _ = classify_tokens(&toks);
            let _ = detect_language(&s, &toks);
            let _ = (yes_no(&toks), otp_code(&toks), imei_digits(&toks), phone(&toks));
            let _ = (claim_reference(&toks), plan_years(&toks), only_digits(&toks));
        }
    }
}
