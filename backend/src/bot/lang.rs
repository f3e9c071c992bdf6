//! What the bot says, in English, Hindi (Devanagari) and Hinglish
//! (romanized Hindi).
//!
//! The engine decides *what* to say as a list of [`Say`] values; [`render`]
//! words it in the conversation's [`Lang`]. English and Hinglish are kept to
//! the GSM-7 alphabet (`Rs`, never `₹`) and written to fit one 160-character
//! SMS where the content allows; Hindi is UCS-2 on the wire anyway (70
//! characters a segment), so it uses `₹` and the SMS channel splits it.

use chrono::NaiveDate;
use glassguard_protocol::api::DocumentKind;
use glassguard_protocol::{ClaimState, Resolution};
use serde::{Deserialize, Serialize};

use super::numbers::indian_grouping;

/// A conversation's language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Hindi in Devanagari.
    Hi,
    /// Hindi in the Latin alphabet.
    Hinglish,
}

impl Lang {
    /// The wire name: `en`, `hi`, `hinglish`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Hi => "hi",
            Lang::Hinglish => "hinglish",
        }
    }
}

/// One premium band of the catalog, for the all-plans answer.
#[derive(Clone, Debug, PartialEq)]
pub struct BandLine {
    /// The band's upper price in rupees (`None`: the open top band).
    pub up_to: Option<i64>,
    /// The premium of each plan in this band, in catalog order.
    pub premiums: Vec<i64>,
}

/// A plan on offer for one price.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    /// Term in years.
    pub years: u32,
    /// Premium in rupees.
    pub premium: i64,
}

/// What the customer is asked to confirm.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirmation {
    /// Brand and model.
    pub device: String,
    /// Price paid, rupees.
    pub price: i64,
    /// Purchase date.
    pub bought: NaiveDate,
    /// Last four digits of the IMEI.
    pub imei_tail: String,
    /// Customer name.
    pub name: String,
    /// The phone, masked (in-app orders, where the customer typed it).
    pub phone: Option<String>,
    /// The chosen plan.
    pub plan: Offer,
    /// Another plan to switch to: (the digit to reply, the plan).
    pub alternative: Option<(usize, Offer)>,
}

/// One of the customer's claims, as shown.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimLine {
    /// The short reference printed in claim messages.
    pub reference: String,
    /// Where it is.
    pub state: ClaimState,
    /// When it last moved.
    pub updated: NaiveDate,
    /// The adjuster's reason (details only).
    pub reason: Option<String>,
    /// Documents asked for (details only).
    pub documents: Vec<DocumentKind>,
    /// How it was resolved (details only).
    pub resolution: Option<Resolution>,
}

/// Why a code is being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeFor {
    /// To place an order.
    Order,
    /// To show the customer's claims.
    Claims,
    /// To show the claims' details.
    Details,
}

/// Why an answer was not accepted; each says what to send instead.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// No brand or model recognised.
    UnknownDevice,
    /// A brand without a model we know.
    UnknownModel {
        /// The brand.
        brand: String,
        /// Models to suggest.
        examples: Vec<String>,
    },
    /// No amount in the message.
    PriceMissing,
    /// Too low to be a phone's price.
    PriceTooLow {
        /// What was read.
        rupees: i64,
    },
    /// Above what is sold online.
    PriceTooHigh {
        /// What was read.
        rupees: i64,
        /// The most we cover online.
        max: i64,
    },
    /// No date in the message.
    DateMissing,
    /// A date after today.
    DateFuture,
    /// Bought too long ago.
    DateTooOld {
        /// How far back a purchase may be.
        days: i64,
    },
    /// Not 15 digits.
    ImeiLength {
        /// How many digits there were.
        digits: usize,
    },
    /// The Luhn check digit does not match.
    ImeiCheckDigit,
    /// No digits at all.
    ImeiMissing,
    /// Already covered, or already ordered.
    ImeiTaken,
    /// Not a name.
    NameInvalid,
    /// Not a mobile number.
    PhoneInvalid,
}

/// Something to say. A reply is a list of these, rendered in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Say {
    /// The menu.
    Menu,
    /// Every plan, by price band.
    CatalogAll {
        /// Term of each plan in years, in catalog order.
        years: Vec<u32>,
        /// The bands.
        bands: Vec<BandLine>,
    },
    /// The plans for one price.
    CatalogFor {
        /// The phone's price.
        price: i64,
        /// The plans.
        offers: Vec<Offer>,
        /// The excess, in percent of the repair.
        excess_percent: Option<u32>,
    },
    /// Ask for brand and model.
    AskDevice,
    /// Ask for the price.
    AskPrice,
    /// Ask for the purchase date.
    AskDate,
    /// Ask for the IMEI.
    AskImei,
    /// Ask for the name.
    AskName,
    /// Ask for the phone number (in-app, anonymous).
    AskPhone {
        /// For a call-back rather than a code.
        callback: bool,
    },
    /// An answer was not accepted.
    Wrong(Problem),
    /// Read the order back.
    Confirm(Box<Confirmation>),
    /// Neither yes nor no at the confirmation.
    ConfirmUnclear {
        /// Whether another plan can be picked.
        alternative: bool,
    },
    /// A code went out.
    CodeSent {
        /// Where (masked).
        to: String,
        /// What for.
        purpose: CodeFor,
    },
    /// A code was sent less than a minute ago.
    CodeTooSoon {
        /// Seconds to wait.
        seconds: u64,
    },
    /// Five codes in the last hour.
    CodeHourly,
    /// Too many wrong codes over time.
    CodeLocked,
    /// The sender refused for now (per-address limit).
    CodeBusy,
    /// Wrong code.
    CodeWrong {
        /// Tries left before the call-back offer.
        left: u8,
    },
    /// The code expired.
    CodeExpired,
    /// Not a code.
    CodeNeeded,
    /// The order is in.
    OrderPlaced {
        /// Its reference.
        reference: String,
        /// Plan term.
        years: u32,
        /// Premium.
        premium: i64,
        /// The screen must be checked by then.
        check_by: NaiveDate,
    },
    /// Three failures: offer a call-back.
    ThreeStrikes,
    /// A call-back was booked.
    CallbackBooked {
        /// The number (masked).
        to: String,
    },
    /// Stopped.
    Cancelled {
        /// An order was being taken.
        order: bool,
    },
    /// Nothing was going on.
    NothingToCancel,
    /// The language changed.
    LanguageSet,
    /// The previous conversation expired.
    Expired,
    /// Not understood.
    NotUnderstood,
    /// Mid-order, something else was asked.
    FinishOrderFirst,
    /// No claims on this number.
    ClaimsNone {
        /// The number (masked).
        to: String,
        /// The claim window, hours.
        window_hours: i64,
    },
    /// The claims, briefly (and whether details can be asked for).
    Claims {
        /// The claims.
        items: Vec<ClaimLine>,
        /// Offer DETAILS.
        offer_details: bool,
    },
    /// The claims with their details.
    ClaimDetails {
        /// The claims.
        items: Vec<ClaimLine>,
    },
    /// A claim that is not this number's (or does not exist).
    ClaimNotFound {
        /// What was asked for.
        reference: String,
    },
}

/// Rupees as the language writes them.
fn rs(lang: Lang, rupees: i64) -> String {
    match lang {
        Lang::Hi => format!("₹{}", indian_grouping(rupees)),
        _ => format!("Rs {}", indian_grouping(rupees)),
    }
}

/// `10k`, `1.5L`: band limits in few characters.
fn short_amount(rupees: i64) -> String {
    if rupees >= 100_000 && rupees % 100_000 == 0 {
        format!("{}L", rupees / 100_000)
    } else if rupees >= 100_000 {
        format!("{:.1}L", rupees as f64 / 100_000.0)
    } else if rupees % 1000 == 0 {
        format!("{}k", rupees / 1000)
    } else {
        indian_grouping(rupees)
    }
}

fn date(lang: Lang, d: NaiveDate) -> String {
    match lang {
        Lang::Hi => d.format("%d-%m-%Y").to_string(),
        _ => d.format("%-d %b %Y").to_string(),
    }
}

fn years(lang: Lang, n: u32) -> String {
    match (lang, n) {
        (Lang::En, 1) => "1 yr".into(),
        (Lang::En, n) => format!("{n} yrs"),
        (Lang::Hinglish, n) => format!("{n} saal"),
        (Lang::Hi, n) => format!("{n} साल"),
    }
}

/// A claim state in words.
pub fn state_name(lang: Lang, s: ClaimState) -> &'static str {
    use ClaimState::*;
    match lang {
        Lang::En => match s {
            Draft => "draft",
            Submitted => "received",
            UnderReview => "under review",
            Approved => "approved",
            Rejected => "rejected",
            Allocated => "with a technician",
            DocumentsRequested => "documents needed",
            InRepair => "in repair",
            Resolved => "resolved",
            Closed => "closed",
        },
        Lang::Hinglish => match s {
            Draft => "draft",
            Submitted => "mil gaya",
            UnderReview => "jaanch mein",
            Approved => "manzoor",
            Rejected => "namanzoor",
            Allocated => "technician ke paas",
            DocumentsRequested => "documents chahiye",
            InRepair => "repair mein",
            Resolved => "nipat gaya",
            Closed => "band",
        },
        Lang::Hi => match s {
            Draft => "ड्राफ्ट",
            Submitted => "प्राप्त",
            UnderReview => "जांच में",
            Approved => "मंजूर",
            Rejected => "नामंजूर",
            Allocated => "तकनीशियन के पास",
            DocumentsRequested => "दस्तावेज़ चाहिए",
            InRepair => "मरम्मत में",
            Resolved => "निपटाया गया",
            Closed => "बंद",
        },
    }
}

fn document_name(lang: Lang, d: DocumentKind) -> &'static str {
    match (lang, d) {
        (Lang::Hi, DocumentKind::Invoice) => "बिल",
        (Lang::Hi, DocumentKind::IdProof) => "पहचान पत्र",
        (Lang::Hi, DocumentKind::Other) => "अन्य दस्तावेज़",
        (Lang::Hinglish, DocumentKind::Invoice) => "bill",
        (_, DocumentKind::Invoice) => "invoice",
        (_, DocumentKind::IdProof) => "ID proof",
        (Lang::Hinglish, DocumentKind::Other) => "aur documents",
        (_, DocumentKind::Other) => "other documents",
    }
}

fn resolution_name(lang: Lang, r: Resolution) -> &'static str {
    match (lang, r) {
        (Lang::En, Resolution::Repaired) => "repaired",
        (Lang::En, Resolution::Exchanged) => "phone exchanged",
        (Lang::En, Resolution::VoucherIssued) => "Rs 500 voucher issued (see the app)",
        (Lang::Hinglish, Resolution::Repaired) => "repair ho gaya",
        (Lang::Hinglish, Resolution::Exchanged) => "phone badla gaya",
        (Lang::Hinglish, Resolution::VoucherIssued) => "Rs 500 voucher diya (app dekhein)",
        (Lang::Hi, Resolution::Repaired) => "मरम्मत हो गई",
        (Lang::Hi, Resolution::Exchanged) => "फोन बदला गया",
        (Lang::Hi, Resolution::VoucherIssued) => "₹500 वाउचर जारी (ऐप देखें)",
    }
}

/// Words a reply in this language; the parts joined by spaces.
pub fn render(lang: Lang, parts: &[Say]) -> String {
    parts
        .iter()
        .map(|p| say(lang, p))
        .collect::<Vec<_>>()
        .join(" ")
}

fn say(lang: Lang, s: &Say) -> String {
    use Lang::*;
    match s {
        Say::Menu => match lang {
            En => "Hi! Glassguard screen cover. Send PLANS for prices, ORDER to buy, CLAIM for claim status, HINDI or HINGLISH for another language, CANCEL to stop.".into(),
            Hinglish => "Namaste! Glassguard screen bima. Rate ke liye PLAN, kharidne ke liye ORDER, claim ke liye CLAIM, bhasha: ENGLISH/HINDI, rokne ke liye CANCEL bhejein.".into(),
            Hi => "नमस्ते! ग्लासगार्ड स्क्रीन बीमा। दाम: प्लान, खरीदें: ऑर्डर, क्लेम की स्थिति: क्लेम, भाषा: ENGLISH, रोकें: रद्द लिखें।".into(),
        },
        Say::CatalogAll { years: terms, bands } => {
            let terms_en = terms.iter().map(|y| format!("{y}")).collect::<Vec<_>>().join("/");
            let lines = bands
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let premiums = b
                        .premiums
                        .iter()
                        .map(|p| indian_grouping(*p).replace(',', ""))
                        .collect::<Vec<_>>()
                        .join("/");
                    let money = if i == 0 {
                        match lang {
                            Hi => format!("₹{premiums}"),
                            _ => format!("Rs {premiums}"),
                        }
                    } else {
                        premiums
                    };
                    match (lang, b.up_to) {
                        (En, Some(u)) => format!("to {} {money}", short_amount(u)),
                        (En, None) => format!("above {money}"),
                        (Hinglish, Some(u)) => format!("{} tak {money}", short_amount(u)),
                        (Hinglish, None) => format!("upar {money}"),
                        (Hi, Some(u)) => format!("{} तक {money}", short_amount(u)),
                        (Hi, None) => format!("उससे ऊपर {money}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            match lang {
                En => format!("Screen cover, premium for {terms_en} yrs by phone price: {lines}. Send your phone's price, or ORDER."),
                Hinglish => format!("Screen cover, {terms_en} saal ka premium, phone ke daam se: {lines}. Apne phone ka daam bhejein ya ORDER."),
                Hi => format!("स्क्रीन कवर, {terms_en} साल का प्रीमियम, फोन के दाम से: {lines}। अपने फोन का दाम भेजें या ऑर्डर लिखें।"),
            }
        }
        Say::CatalogFor { price, offers, excess_percent } => {
            let list = offers
                .iter()
                .map(|o| format!("{} {}", years(lang, o.years), rs(lang, o.premium)))
                .collect::<Vec<_>>()
                .join(", ");
            let excess = excess_percent.map(|e| match lang {
                En => format!(" ({e}% excess)"),
                Hinglish => format!(" ({e}% excess)"),
                Hi => format!(" ({e}% एक्सेस)"),
            }).unwrap_or_default();
            match lang {
                En => format!("For a {} phone: {list}. Covers screen damage{excess}. Reply ORDER to buy.", rs(lang, *price)),
                Hinglish => format!("{} ke phone ke liye: {list}. Screen damage cover{excess}. Lene ke liye ORDER bhejein.", rs(lang, *price)),
                Hi => format!("{} के फोन के लिए: {list}। स्क्रीन टूटने पर कवर{excess}। लेने के लिए ऑर्डर लिखें।", rs(lang, *price)),
            }
        }
        Say::AskDevice => match lang {
            En => "Which phone is it? Send brand and model, e.g. Samsung Galaxy A15.".into(),
            Hinglish => "Kaunsa phone hai? Brand aur model bhejein, jaise Samsung Galaxy A15.".into(),
            Hi => "कौन सा फोन है? ब्रांड और मॉडल लिखें, जैसे Samsung Galaxy A15।".into(),
        },
        Say::AskPrice => match lang {
            En => "What did you pay for it? e.g. 15000 or 15k.".into(),
            Hinglish => "Phone kitne ka liya? Jaise 15000 ya 15k.".into(),
            Hi => "फोन कितने का लिया? जैसे 15000 या पंद्रह हज़ार।".into(),
        },
        Say::AskDate => match lang {
            En => "When did you buy it? e.g. today, yesterday or 12/03/2026.".into(),
            Hinglish => "Kab kharida? Jaise aaj, kal ya 12/03/2026.".into(),
            Hi => "कब खरीदा? जैसे आज, कल या 12/03/2026।".into(),
        },
        Say::AskImei => match lang {
            En => "Send the 15-digit IMEI (dial *#06# to see it).".into(),
            Hinglish => "15 digit ka IMEI bhejein (*#06# dial karke dekhein).".into(),
            Hi => "15 अंकों का IMEI भेजें (*#06# डायल करके देखें)।".into(),
        },
        Say::AskName => match lang {
            En => "Your full name, as on the invoice?".into(),
            Hinglish => "Aapka poora naam, bill par jaisa?".into(),
            Hi => "आपका पूरा नाम, बिल के अनुसार?".into(),
        },
        Say::AskPhone { callback: false } => match lang {
            En => "Your 10-digit mobile number? We'll text a code to it.".into(),
            Hinglish => "Aapka 10 digit mobile number? Us par code bhejenge.".into(),
            Hi => "आपका 10 अंकों का मोबाइल नंबर? उस पर कोड भेजेंगे।".into(),
        },
        Say::AskPhone { callback: true } => match lang {
            En => "Your 10-digit mobile number, so we can call you back?".into(),
            Hinglish => "Call back ke liye aapka 10 digit mobile number?".into(),
            Hi => "कॉल बैक के लिए आपका 10 अंकों का मोबाइल नंबर?".into(),
        },
        Say::Wrong(p) => problem(lang, p),
        Say::Confirm(c) => {
            let phone = c.phone.as_ref().map(|p| format!(", {p}")).unwrap_or_default();
            let alt = c.alternative.as_ref().map(|(n, o)| match lang {
                En => format!(", {n} for {} {}", years(lang, o.years), rs(lang, o.premium)),
                Hinglish => format!(", {} {} ke liye {n}", years(lang, o.years), rs(lang, o.premium)),
                Hi => format!(", {} ({}) के लिए {n}", years(lang, o.years), rs(lang, o.premium)),
            }).unwrap_or_default();
            match lang {
                En => format!(
                    "Check: {}, {}, bought {}, IMEI ..{}, {}{phone}. {} cover {}. Reply YES to order{alt}, or NO.",
                    c.device, rs(lang, c.price), date(lang, c.bought), c.imei_tail, c.name,
                    years(lang, c.plan.years), rs(lang, c.plan.premium)
                ),
                Hinglish => format!(
                    "Check karein: {}, {}, {} ko liya, IMEI ..{}, {}{phone}. {} cover {}. YES bhejein{alt}, ya NO.",
                    c.device, rs(lang, c.price), date(lang, c.bought), c.imei_tail, c.name,
                    years(lang, c.plan.years), rs(lang, c.plan.premium)
                ),
                Hi => format!(
                    "जांच लें: {}, {}, {} को खरीदा, IMEI ..{}, {}{phone}। {} कवर {}। ऑर्डर के लिए हाँ{alt}, नहीं तो नहीं लिखें।",
                    c.device, rs(lang, c.price), date(lang, c.bought), c.imei_tail, c.name,
                    years(lang, c.plan.years), rs(lang, c.plan.premium)
                ),
            }
        }
        Say::ConfirmUnclear { alternative } => match (lang, alternative) {
            (En, false) => "Reply YES to place the order, or NO to stop.".into(),
            (En, true) => "Reply YES to place the order, the plan's number to switch plans, or NO to stop.".into(),
            (Hinglish, _) => "Order ke liye YES bhejein, rokne ke liye NO.".into(),
            (Hi, _) => "ऑर्डर के लिए हाँ लिखें, रोकने के लिए नहीं।".into(),
        },
        Say::CodeSent { to, purpose } => {
            let what = match (lang, purpose) {
                (En, CodeFor::Order) => "to place the order",
                (En, CodeFor::Claims) => "to see your claims",
                (En, CodeFor::Details) => "to see the details",
                (Hinglish, CodeFor::Order) => "order ke liye",
                (Hinglish, CodeFor::Claims) => "claim dekhne ke liye",
                (Hinglish, CodeFor::Details) => "details ke liye",
                (Hi, CodeFor::Order) => "ऑर्डर के लिए",
                (Hi, CodeFor::Claims) => "क्लेम देखने के लिए",
                (Hi, CodeFor::Details) => "विवरण के लिए",
            };
            match lang {
                En => format!("We've texted a 6-digit code to {to}. Reply with it {what}."),
                Hinglish => format!("{to} par 6 digit ka code bheja hai. {what} woh code bhejein."),
                Hi => format!("{to} पर 6 अंकों का कोड भेजा है। {what} वह कोड लिखें।"),
            }
        }
        Say::CodeTooSoon { seconds } => match lang {
            En => format!("A code was sent less than a minute ago. Use it, or reply RESEND in {seconds} s."),
            Hinglish => format!("Ek minute se pehle code bheja tha. Wahi bhejein, ya {seconds} second baad RESEND."),
            Hi => format!("एक मिनट से पहले कोड भेजा था। वही लिखें, या {seconds} सेकंड बाद RESEND लिखें।"),
        },
        Say::CodeHourly => match lang {
            En => "Too many codes went to this number this hour. Try later, or reply CALL.".into(),
            Hinglish => "Is ghante is number par bahut code ja chuke. Baad mein try karein ya CALL bhejein.".into(),
            Hi => "इस घंटे इस नंबर पर बहुत कोड जा चुके हैं। बाद में कोशिश करें या कॉल लिखें।".into(),
        },
        Say::CodeLocked => match lang {
            En => "This number is locked after many wrong codes. Reply CALL and we'll help.".into(),
            Hinglish => "Bahut galat code ke baad yeh number lock hai. CALL bhejein, hum madad karenge.".into(),
            Hi => "बहुत गलत कोड के बाद यह नंबर लॉक है। कॉल लिखें, हम मदद करेंगे।".into(),
        },
        Say::CodeBusy => match lang {
            En => "We can't send a code right now. Please try again later.".into(),
            Hinglish => "Abhi code nahi bhej sakte. Thodi der baad try karein.".into(),
            Hi => "अभी कोड नहीं भेज सकते। थोड़ी देर बाद कोशिश करें।".into(),
        },
        Say::CodeWrong { left } => match lang {
            En => format!("That code is wrong. Tries left: {left}. Reply RESEND for a new code."),
            Hinglish => format!("Code galat hai. Baaki koshish: {left}. Naye code ke liye RESEND."),
            Hi => format!("कोड गलत है। बाकी कोशिश: {left}। नए कोड के लिए RESEND लिखें।"),
        },
        Say::CodeExpired => match lang {
            En => "That code has expired. Reply RESEND for a new one.".into(),
            Hinglish => "Code expire ho gaya. Naye code ke liye RESEND bhejein.".into(),
            Hi => "कोड की समय सीमा खत्म हो गई। नए कोड के लिए RESEND लिखें।".into(),
        },
        Say::CodeNeeded => match lang {
            En => "Reply with the 6-digit code we texted, RESEND for a new one, or CANCEL.".into(),
            Hinglish => "SMS wala 6 digit code bhejein, naye ke liye RESEND, ya CANCEL.".into(),
            Hi => "SMS वाला 6 अंकों का कोड लिखें, नए के लिए RESEND, या रद्द।".into(),
        },
        Say::OrderPlaced { reference, years: y, premium, check_by } => match lang {
            En => format!(
                "Order {reference} is pending: {} cover, {}. It starts once your screen is checked: a photo in the Glassguard app, or at a partner shop, by {}.",
                years(lang, *y), rs(lang, *premium), date(lang, *check_by)
            ),
            Hinglish => format!(
                "Order {reference} pending hai: {} cover, {}. Screen check ke baad chalu hoga: app mein screen ki photo ya partner shop par, {} tak.",
                years(lang, *y), rs(lang, *premium), date(lang, *check_by)
            ),
            Hi => format!(
                "ऑर्डर {reference} लंबित है: {} कवर, {}। स्क्रीन जांच के बाद चालू होगा: ऐप में स्क्रीन की फोटो या पार्टनर दुकान पर, {} तक।",
                years(lang, *y), rs(lang, *premium), date(lang, *check_by)
            ),
        },
        Say::ThreeStrikes => match lang {
            En => "Sorry, that didn't work 3 times. Reply CALL and our team will phone you, or ORDER to start again.".into(),
            Hinglish => "Maaf kijiye, 3 baar nahi hua. CALL bhejein, hamari team phone karegi, ya dobara ORDER.".into(),
            Hi => "माफ़ कीजिए, 3 बार नहीं हुआ। कॉल लिखें, हमारी टीम फोन करेगी, या फिर से ऑर्डर लिखें।".into(),
        },
        Say::CallbackBooked { to } => match lang {
            En => format!("Thanks! We'll call you on {to} within one working day."),
            Hinglish => format!("Shukriya! Hum ek working day mein {to} par call karenge."),
            Hi => format!("धन्यवाद! हम एक कार्य दिवस में {to} पर कॉल करेंगे।"),
        },
        Say::Cancelled { order: true } => match lang {
            En => "Cancelled; nothing was ordered. Send HELP for the menu.".into(),
            Hinglish => "Cancel ho gaya; koi order nahi hua. Menu ke liye HELP bhejein.".into(),
            Hi => "रद्द कर दिया; कोई ऑर्डर नहीं हुआ। मेनू के लिए मदद लिखें।".into(),
        },
        Say::Cancelled { order: false } => match lang {
            En => "Cancelled. Send HELP for the menu.".into(),
            Hinglish => "Cancel ho gaya. Menu ke liye HELP bhejein.".into(),
            Hi => "रद्द कर दिया। मेनू के लिए मदद लिखें।".into(),
        },
        Say::NothingToCancel => match lang {
            En => "Nothing to cancel. Send HELP for the menu.".into(),
            Hinglish => "Cancel karne ko kuch nahi hai. Menu ke liye HELP bhejein.".into(),
            Hi => "रद्द करने को कुछ नहीं है। मेनू के लिए मदद लिखें।".into(),
        },
        Say::LanguageSet => match lang {
            En => "OK, English from now on.".into(),
            Hinglish => "Theek hai, ab Hinglish mein baat karte hain.".into(),
            Hi => "ठीक है, अब हिंदी में बात करते हैं।".into(),
        },
        Say::Expired => match lang {
            En => "Our last chat timed out after 15 minutes, so we're starting over.".into(),
            Hinglish => "Pichhli baat 15 minute baad khatam ho gayi, isliye naye sire se shuru.".into(),
            Hi => "पिछली बातचीत 15 मिनट बाद खत्म हो गई, इसलिए फिर से शुरू करते हैं।".into(),
        },
        Say::NotUnderstood => match lang {
            En => "Sorry, I didn't get that. Send PLANS, ORDER, CLAIM or HELP.".into(),
            Hinglish => "Maaf kijiye, samajh nahi aaya. PLAN, ORDER, CLAIM ya HELP bhejein.".into(),
            Hi => "माफ़ कीजिए, समझ नहीं आया। प्लान, ऑर्डर, क्लेम या मदद लिखें।".into(),
        },
        Say::FinishOrderFirst => match lang {
            En => "You're in the middle of an order. Finish it, or reply CANCEL first.".into(),
            Hinglish => "Aapka order chal raha hai. Pehle use poora karein ya CANCEL bhejein.".into(),
            Hi => "आपका ऑर्डर चल रहा है। पहले उसे पूरा करें या रद्द लिखें।".into(),
        },
        Say::ClaimsNone { to, window_hours } => match lang {
            En => format!("No claims found for {to}. To file one, use the Glassguard app within {window_hours} hours of the damage."),
            Hinglish => format!("{to} par koi claim nahi mila. Claim ke liye damage ke {window_hours} ghante mein Glassguard app use karein."),
            Hi => format!("{to} पर कोई क्लेम नहीं मिला। क्लेम के लिए नुकसान के {window_hours} घंटे में Glassguard ऐप इस्तेमाल करें।"),
        },
        Say::Claims { items, offer_details } => {
            let list = items
                .iter()
                .map(|c| format!("{} {} ({})", c.reference, state_name(lang, c.state), date(lang, c.updated)))
                .collect::<Vec<_>>()
                .join("; ");
            let more = match (lang, offer_details) {
                (_, false) => String::new(),
                (En, true) => " Reply DETAILS for reasons and next steps.".into(),
                (Hinglish, true) => " Vistar ke liye DETAILS bhejein.".into(),
                (Hi, true) => " विवरण के लिए DETAILS लिखें।".into(),
            };
            match lang {
                En => format!("Your claims: {list}.{more}"),
                Hinglish => format!("Aapke claim: {list}.{more}"),
                Hi => format!("आपके क्लेम: {list}।{more}"),
            }
        }
        Say::ClaimDetails { items } => items
            .iter()
            .map(|c| {
                let mut parts = vec![format!("{}: {}", c.reference, state_name(lang, c.state))];
                if let Some(r) = c.resolution {
                    parts.push(resolution_name(lang, r).to_string());
                }
                if !c.documents.is_empty() && c.state == ClaimState::DocumentsRequested {
                    let docs = c.documents.iter().map(|d| document_name(lang, *d)).collect::<Vec<_>>().join(", ");
                    parts.push(match lang {
                        En => format!("upload in the app: {docs}"),
                        Hinglish => format!("app mein upload karein: {docs}"),
                        Hi => format!("ऐप में अपलोड करें: {docs}"),
                    });
                }
                if let Some(reason) = &c.reason {
                    parts.push(match lang {
                        En => format!("note: {reason}"),
                        Hinglish => format!("note: {reason}"),
                        Hi => format!("टिप्पणी: {reason}"),
                    });
                }
                parts.join(", ") + if lang == Hi { "।" } else { "." }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Say::ClaimNotFound { reference } => match lang {
            En => format!("I can't find claim {reference} on this number. I can only share claims filed from this phone."),
            Hinglish => format!("Is number par claim {reference} nahi mila. Main sirf isi phone ke claim bata sakta hoon."),
            Hi => format!("इस नंबर पर क्लेम {reference} नहीं मिला। मैं सिर्फ इसी फोन के क्लेम बता सकता हूं।"),
        },
    }
}

fn problem(lang: Lang, p: &Problem) -> String {
    use Lang::*;
    match p {
        Problem::UnknownDevice => match lang {
            En => "I don't know that phone. Send brand and model, e.g. Redmi Note 13 or iPhone 15.".into(),
            Hinglish => "Yeh phone samajh nahi aaya. Brand aur model bhejein, jaise Redmi Note 13 ya iPhone 15.".into(),
            Hi => "यह फोन समझ नहीं आया। ब्रांड और मॉडल लिखें, जैसे Redmi Note 13 या iPhone 15।".into(),
        },
        Problem::UnknownModel { brand, examples } => {
            let ex = examples.join(match lang {
                En => " or ",
                Hinglish => " ya ",
                Hi => " या ",
            });
            match lang {
                En => format!("Which {brand} model is it? e.g. {ex}."),
                Hinglish => format!("{brand} ka kaunsa model hai? Jaise {ex}."),
                Hi => format!("{brand} का कौन सा मॉडल है? जैसे {ex}।"),
            }
        }
        Problem::PriceMissing => match lang {
            En => "I need the price in rupees, e.g. 15000 or 15k.".into(),
            Hinglish => "Daam rupaye mein bhejein, jaise 15000 ya 15k.".into(),
            Hi => "दाम रुपयों में लिखें, जैसे 15000 या 15k।".into(),
        },
        Problem::PriceTooLow { rupees } => match lang {
            En => format!("{} looks too low for a phone; send the full price, e.g. 15000.", rs(lang, *rupees)),
            Hinglish => format!("{} phone ke liye bahut kam hai; poora daam bhejein, jaise 15000.", rs(lang, *rupees)),
            Hi => format!("{} फोन के लिए बहुत कम है; पूरा दाम लिखें, जैसे 15000।", rs(lang, *rupees)),
        },
        Problem::PriceTooHigh { rupees, max } => match lang {
            En => format!("{} is more than we cover online ({}). Send the price again, or CALL.", rs(lang, *rupees), rs(lang, *max)),
            Hinglish => format!("{} online cover ki seema ({}) se zyada hai. Daam dobara bhejein ya CALL.", rs(lang, *rupees), rs(lang, *max)),
            Hi => format!("{} ऑनलाइन कवर की सीमा ({}) से ज़्यादा है। दाम फिर से लिखें या कॉल।", rs(lang, *rupees), rs(lang, *max)),
        },
        Problem::DateMissing => match lang {
            En => "I couldn't read that date. Send e.g. today, 2 days ago or 12/03/2026.".into(),
            Hinglish => "Date samajh nahi aayi. Jaise aaj, 2 din pehle ya 12/03/2026 bhejein.".into(),
            Hi => "तारीख समझ नहीं आई। जैसे आज, 2 दिन पहले या 12/03/2026 लिखें।".into(),
        },
        Problem::DateFuture => match lang {
            En => "That date is in the future. When did you buy the phone?".into(),
            Hinglish => "Yeh date aage ki hai. Phone kab kharida?".into(),
            Hi => "यह तारीख आगे की है। फोन कब खरीदा?".into(),
        },
        Problem::DateTooOld { days } => match lang {
            En => format!("Online we cover phones bought in the last {days} days. Send the purchase date, or CALL."),
            Hinglish => format!("Online sirf pichhle {days} din mein liye phone cover hote hain. Date bhejein ya CALL."),
            Hi => format!("ऑनलाइन सिर्फ पिछले {days} दिन में लिए फोन कवर होते हैं। तारीख लिखें या कॉल।"),
        },
        Problem::ImeiLength { digits } => match lang {
            En => format!("An IMEI has 15 digits; that had {digits}. Dial *#06# and send it again."),
            Hinglish => format!("IMEI mein 15 digit hote hain; isme {digits} the. *#06# dial karke dobara bhejein."),
            Hi => format!("IMEI में 15 अंक होते हैं; इसमें {digits} थे। *#06# डायल करके फिर भेजें।"),
        },
        Problem::ImeiCheckDigit => match lang {
            En => "That IMEI's last digit doesn't match (a typo?). Dial *#06# and send it again.".into(),
            Hinglish => "Is IMEI ka aakhri digit match nahi hua (typo?). *#06# dial karke dobara bhejein.".into(),
            Hi => "इस IMEI का आखिरी अंक मेल नहीं खाता (टाइपो?)। *#06# डायल करके फिर भेजें।".into(),
        },
        Problem::ImeiMissing => match lang {
            En => "Please send the 15-digit IMEI; dial *#06# to see it.".into(),
            Hinglish => "15 digit ka IMEI bhejein; *#06# dial karke dekhein.".into(),
            Hi => "15 अंकों का IMEI भेजें; *#06# डायल करके देखें।".into(),
        },
        Problem::ImeiTaken => match lang {
            En => "That IMEI already has cover or an order. Send another IMEI, or CANCEL.".into(),
            Hinglish => "Is IMEI par pehle se cover ya order hai. Doosra IMEI bhejein ya CANCEL.".into(),
            Hi => "इस IMEI पर पहले से कवर या ऑर्डर है। दूसरा IMEI भेजें या रद्द लिखें।".into(),
        },
        Problem::NameInvalid => match lang {
            En => "Please send your name in letters, e.g. Ravi Kumar.".into(),
            Hinglish => "Apna naam letters mein bhejein, jaise Ravi Kumar.".into(),
            Hi => "अपना नाम अक्षरों में लिखें, जैसे रवि कुमार।".into(),
        },
        Problem::PhoneInvalid => match lang {
            En => "That isn't a mobile number. Send 10 digits, e.g. 98765 43210.".into(),
            Hinglish => "Yeh mobile number nahi hai. 10 digit bhejein, jaise 98765 43210.".into(),
            Hi => "यह मोबाइल नंबर नहीं है। 10 अंक लिखें, जैसे 98765 43210।".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::segments;

    fn every_say() -> Vec<Say> {
        let d = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
        let line = ClaimLine {
            reference: "1A2B3C4D".into(),
            state: ClaimState::DocumentsRequested,
            updated: d,
            reason: Some("photos match".into()),
            documents: vec![DocumentKind::Invoice, DocumentKind::IdProof],
            resolution: None,
        };
        vec![
            Say::Menu,
            Say::CatalogFor {
                price: 15_000,
                offers: vec![
                    Offer {
                        years: 1,
                        premium: 699,
                    },
                    Offer {
                        years: 2,
                        premium: 1199,
                    },
                ],
                excess_percent: Some(10),
            },
            Say::AskDevice,
            Say::AskPrice,
            Say::AskDate,
            Say::AskImei,
            Say::AskName,
            Say::AskPhone { callback: false },
            Say::AskPhone { callback: true },
            Say::Wrong(Problem::ImeiCheckDigit),
            Say::Wrong(Problem::ImeiLength { digits: 14 }),
            Say::Wrong(Problem::UnknownDevice),
            Say::Wrong(Problem::DateMissing),
            Say::Confirm(Box::new(Confirmation {
                device: "Samsung Galaxy A15".into(),
                price: 15_000,
                bought: d,
                imei_tail: "3809".into(),
                name: "Ravi Kumar".into(),
                phone: None,
                plan: Offer {
                    years: 1,
                    premium: 699,
                },
                alternative: Some((
                    2,
                    Offer {
                        years: 2,
                        premium: 1199,
                    },
                )),
            })),
            Say::CodeSent {
                to: "******3210".into(),
                purpose: CodeFor::Order,
            },
            Say::CodeWrong { left: 2 },
            Say::OrderPlaced {
                reference: "GB-7KQ2M9XA".into(),
                years: 1,
                premium: 699,
                check_by: d,
            },
            Say::ThreeStrikes,
            Say::Cancelled { order: true },
            Say::Expired,
            Say::NotUnderstood,
            Say::ClaimNotFound {
                reference: "1A2B3C4D".into(),
            },
            Say::Claims {
                items: vec![line.clone()],
                offer_details: true,
            },
            Say::ClaimDetails { items: vec![line] },
        ]
    }

    #[test]
    fn english_and_hinglish_fit_one_gsm_segment() {
        for lang in [Lang::En, Lang::Hinglish] {
            for s in every_say() {
                let text = render(lang, std::slice::from_ref(&s));
                assert!(
                    segments::is_gsm7(&text),
                    "{lang:?} {s:?}: not GSM-7: {text}"
                );
                assert!(
                    segments::count(&text) == 1,
                    "{lang:?} {s:?}: {} chars: {text}",
                    text.chars().count()
                );
            }
        }
    }

    #[test]
    fn hindi_is_devanagari_and_splits_into_few_segments() {
        for s in every_say() {
            let text = render(Lang::Hi, std::slice::from_ref(&s));
            assert!(crate::bot::nlu::has_devanagari(&text), "{s:?}: {text}");
            assert!(segments::count(&text) <= 3, "{s:?}: {text}");
        }
    }
}
