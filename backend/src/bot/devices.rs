//! Phone brands and models, matched against the lists in `assets/bot/`
//! (`brands.tsv`, `models.tsv`).
//!
//! A model is known by keys: its name squeezed to letters and digits
//! (`galaxya15`), its aliases (`a15`), and any brand spelling followed by
//! either (`samsunggalaxya15`, `galaxya15`, `motog54`). A message is cut
//! into windows of one to five consecutive tokens, squeezed the same way,
//! and compared with every key: exactly, or within a small edit distance
//! when the digits agree (so `galxy a15` is an A15 but `a16` is not). The
//! longest key wins; a brand named in the message keeps only its models.
//! Keys without a brand must have a letter and three characters (`a15`,
//! `y28`), so a bare `12` is never a model.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::nlu::{close, edit_distance};

const BRANDS: &str = include_str!("../../../assets/bot/brands.tsv");
const MODELS: &str = include_str!("../../../assets/bot/models.tsv");

/// A phone: brand and model as printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Brand, e.g. `Samsung`.
    pub brand: String,
    /// Model, e.g. `Galaxy A15`.
    pub model: String,
}

impl Device {
    /// `Samsung Galaxy A15`.
    pub fn label(&self) -> String {
        format!("{} {}", self.brand, self.model)
    }
}

/// What a message says about the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceMatch {
    /// A known model.
    Model(Device),
    /// A known brand, no known model: suggest some.
    BrandOnly {
        /// The brand.
        brand: String,
        /// Close or popular models of it.
        examples: Vec<String>,
    },
    /// Nothing recognisable.
    Nothing,
}

struct Brand {
    name: String,
    /// Latin spellings, squeezed.
    squeezed: Vec<String>,
    /// Every spelling, as tokens would show it (for Devanagari ones).
    spellings: Vec<String>,
}

struct Model {
    brand: usize,
    name: String,
    /// (squeezed key, has the brand in it).
    keys: Vec<(String, bool)>,
}

/// The lists, parsed.
pub struct Devices {
    brands: Vec<Brand>,
    models: Vec<Model>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("brands", &self.brands.len())
            .field("models", &self.models.len())
            .finish()
    }
}

/// Lower-case ASCII letters and digits only (`+` spelled `plus`).
fn squeeze(s: &str) -> String {
    s.replace('+', "plus")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect()
}

fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The model code: the letter before the first digit, and all the digits
/// (`a15` in `galaxya15`). A typo may not change it: `m15` is another phone.
fn code_of(s: &str) -> (Option<char>, String) {
    let first_digit = s.find(|c: char| c.is_ascii_digit());
    let letter = first_digit
        .and_then(|i| s[..i].chars().last())
        .filter(char::is_ascii_alphabetic);
    (letter, digits_of(s))
}

/// Lines that are not comments or blank, split on tabs.
fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l.split('\t').map(str::trim).collect()))
}

impl Devices {
    /// The lists compiled into the binary.
    pub fn embedded() -> &'static Devices {
        static DEVICES: OnceLock<Devices> = OnceLock::new();
        DEVICES.get_or_init(|| {
            let (d, problems) = Devices::parse(BRANDS, MODELS);
            for p in problems {
                tracing::warn!(problem = %p, "assets/bot device list");
            }
            d
        })
    }

    /// Parses the two lists; lines that do not fit are reported and skipped.
    pub fn parse(brands: &str, models: &str) -> (Devices, Vec<String>) {
        let mut problems = Vec::new();
        let mut out = Devices {
            brands: Vec::new(),
            models: Vec::new(),
        };
        for (line, cells) in rows(brands) {
            let [name, aliases] = cells.as_slice() else {
                problems.push(format!("brands.tsv line {line}: want 2 columns"));
                continue;
            };
            let mut spellings: Vec<String> = aliases
                .split('|')
                .map(|a| a.trim().to_lowercase())
                .collect();
            spellings.push(name.to_lowercase());
            let mut squeezed: Vec<String> = spellings
                .iter()
                .map(|s| squeeze(s))
                .filter(|s| !s.is_empty())
                .collect();
            squeezed.sort();
            squeezed.dedup();
            out.brands.push(Brand {
                name: (*name).to_string(),
                squeezed,
                spellings,
            });
        }
        for (line, cells) in rows(models) {
            let [brand, name, aliases] = cells.as_slice() else {
                problems.push(format!("models.tsv line {line}: want 3 columns"));
                continue;
            };
            let Some(b) = out.brands.iter().position(|x| x.name == *brand) else {
                problems.push(format!("models.tsv line {line}: unknown brand {brand}"));
                continue;
            };
            let mut bare: Vec<String> = aliases
                .split('|')
                .map(squeeze)
                .chain([squeeze(name)])
                .filter(|s| !s.is_empty())
                .collect();
            bare.sort();
            bare.dedup();
            let mut keys = Vec::new();
            for k in &bare {
                if k.chars().any(|c| c.is_ascii_alphabetic()) && k.len() >= 3 {
                    keys.push((k.clone(), false));
                }
                for bs in &out.brands[b].squeezed {
                    if !k.starts_with(bs.as_str()) {
                        keys.push((format!("{bs}{k}"), true));
                    }
                }
            }
            out.models.push(Model {
                brand: b,
                name: (*name).to_string(),
                keys,
            });
        }
        (out, problems)
    }

    /// The brand a token names, if any.
    fn brand_of_token(&self, token: &str) -> Option<usize> {
        let sq = squeeze(token);
        self.brands.iter().position(|b| {
            b.spellings.iter().any(|s| s == token)
                || b.squeezed
                    .iter()
                    .any(|s| *s == sq || (s.len() >= 4 && sq.len() >= 4 && close(&sq, s)))
        })
    }

    /// What `tokens` say about the phone.
    pub fn find(&self, tokens: &[String]) -> DeviceMatch {
        // Windows of up to five tokens, squeezed.
        let mut windows: Vec<String> = Vec::new();
        for start in 0..tokens.len() {
            let mut acc = String::new();
            for t in tokens.iter().skip(start).take(5) {
                acc.push_str(&squeeze(t));
                if !acc.is_empty() {
                    windows.push(acc.clone());
                }
            }
        }
        windows.sort();
        windows.dedup();
        let mut brand: Option<usize> = tokens.iter().find_map(|t| self.brand_of_token(t));
        if brand.is_none() {
            // "one plus": a spelling across two tokens.
            brand = self.brands.iter().position(|b| {
                b.squeezed
                    .iter()
                    .any(|s| s.len() >= 4 && windows.iter().any(|w| w == s))
            });
        }
        let mut best: Option<(usize, usize)> = None; // (model, key length)
        let mut tie = false;
        for (mi, m) in self.models.iter().enumerate() {
            if brand.is_some_and(|b| b != m.brand) {
                continue;
            }
            for (key, _) in &m.keys {
                if !windows.iter().any(|w| matches_key(w, key)) {
                    continue;
                }
                match best {
                    Some((bi, len)) if len > key.len() || (len == key.len() && bi == mi) => {}
                    Some((bi, len)) if len == key.len() && bi != mi => {
                        // Same length, another model: ambiguous unless one
                        // is an exact hit and the other only fuzzy.
                        tie = true;
                    }
                    _ => {
                        best = Some((mi, key.len()));
                        tie = false;
                    }
                }
            }
        }
        match (best, tie, brand) {
            (Some((mi, _)), false, _) => {
                let m = &self.models[mi];
                DeviceMatch::Model(Device {
                    brand: self.brands[m.brand].name.clone(),
                    model: m.name.clone(),
                })
            }
            (_, _, Some(b)) => DeviceMatch::BrandOnly {
                brand: self.brands[b].name.clone(),
                examples: self.examples(b, &windows),
            },
            _ => DeviceMatch::Nothing,
        }
    }

    /// Two models of a brand to suggest: the closest to what was written,
    /// else the most popular.
    fn examples(&self, brand: usize, windows: &[String]) -> Vec<String> {
        let mut scored: Vec<(usize, usize, &str)> = self
            .models
            .iter()
            .enumerate()
            .filter(|(_, m)| m.brand == brand)
            .map(|(i, m)| {
                let sq = squeeze(&m.name);
                let d = windows
                    .iter()
                    .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
                    .map(|w| edit_distance(w, &sq))
                    .min()
                    .unwrap_or(usize::MAX);
                (d, i, m.name.as_str())
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(2)
            .map(|(_, _, n)| n.to_string())
            .collect()
    }

    /// Every model's label (for tests and suggestions).
    pub fn labels(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|m| format!("{} {}", self.brands[m.brand].name, m.name))
            .collect()
    }
}

/// A window matches a key exactly, or fuzzily when the digits agree and
/// the key is long enough for a typo to be told from another model.
fn matches_key(window: &str, key: &str) -> bool {
    if window == key {
        return true;
    }
    if key.len() < 6 || code_of(window) != code_of(key) || window.len().abs_diff(key.len()) > 2 {
        return false;
    }
    let allowed = if key.len() >= 10 { 2 } else { 1 };
    window.chars().next() == key.chars().next() && edit_distance(window, key) <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::nlu::tokens;

    fn find(text: &str) -> DeviceMatch {
        Devices::embedded().find(&tokens(text))
    }

    fn model(text: &str) -> Option<String> {
        match find(text) {
            DeviceMatch::Model(d) => Some(d.label()),
            _ => None,
        }
    }

    #[test]
    fn the_lists_parse_cleanly() {
        let (d, problems) = Devices::parse(BRANDS, MODELS);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(d.models.len() >= 100);
    }

    #[test]
    fn models_by_brand_alias_and_typo() {
        assert_eq!(
            model("Samsung Galaxy A15").as_deref(),
            Some("Samsung Galaxy A15")
        );
        assert_eq!(
            model("samsung a15 5g").as_deref(),
            Some("Samsung Galaxy A15 5G")
        );
        assert_eq!(model("galaxy a 15").as_deref(), Some("Samsung Galaxy A15"));
        assert_eq!(
            model("samsang galxy a15").as_deref(),
            Some("Samsung Galaxy A15")
        );
        assert_eq!(model("a15").as_deref(), Some("Samsung Galaxy A15"));
        assert_eq!(
            model("iphone 15 pro").as_deref(),
            Some("Apple iPhone 15 Pro")
        );
        assert_eq!(
            model("I have an iPhone 13").as_deref(),
            Some("Apple iPhone 13")
        );
        assert_eq!(
            model("redmi note 13 pro").as_deref(),
            Some("Redmi Note 13 Pro")
        );
        assert_eq!(model("moto g54").as_deref(), Some("Motorola G54"));
        assert_eq!(
            model("one plus nord ce 4").as_deref(),
            Some("OnePlus Nord CE 4")
        );
        assert_eq!(model("realme c65").as_deref(), Some("Realme C65"));
        assert_eq!(model("सैमसंग A15").as_deref(), Some("Samsung Galaxy A15"));
    }

    #[test]
    fn near_misses_are_not_models() {
        assert_eq!(model("a16x"), None);
        assert_eq!(model("plans for a 15000 phone"), None);
        assert_eq!(model("12"), None);
        assert_eq!(find("Ravi Kumar"), DeviceMatch::Nothing);
        match find("samsung galaxy a99") {
            DeviceMatch::BrandOnly { brand, examples } => {
                assert_eq!(brand, "Samsung");
                assert_eq!(examples.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
