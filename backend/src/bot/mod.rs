//! The text ordering bot: the plan catalog, OTP-confirmed orders and claim
//! status, over the in-app chat and plain SMS, in English, Hindi and
//! Hinglish.
//!
//! Terms:
//! - **Conversation** ([`state::Conversation`]): one per channel and
//!   sender, stored between messages, forgotten after fifteen minutes of
//!   silence.
//! - **Intent** ([`nlu::Intent`]): what a message asks for when nothing is
//!   going on: GetInsuranceCatalog, OrderInsurance, CheckClaimStatus, Help,
//!   Cancel, SwitchLanguage.
//! - **Slot**: a value an order needs (phone, price, purchase date, IMEI,
//!   name; the phone number in the in-app chat when not signed in). Any
//!   message may fill several; each answer is validated and a wrong one is
//!   reprompted with what was wrong. The third failed answer to the same
//!   question gets a call-back offer instead of a fourth prompt.
//! - **Desk** ([`Desk`]): everything outside the conversation the engine
//!   needs: the catalog, the OTP service, the order book, the claims. The
//!   HTTP layer implements it over the store; tests can fake it.
//! - **Verified** ([`Verified`]): proof that a code sent to a phone came
//!   back. The only way to place an order is [`Desk::place_order`], which
//!   takes one, and the engine makes one only from a [`CodeCheck::Valid`]
//!   answer about the number the order's code was sent to.
//!
//! Data flow for one message: the HTTP layer loads the conversation (or
//! starts one), [`handle`] reads the message ([`nlu`], [`numbers`],
//! [`dates`], [`devices`]), moves the conversation along, calls the desk
//! for codes, orders and claims, and returns the reply as a list of
//! [`lang::Say`] rendered in the conversation's language; the HTTP layer
//! stores the conversation and sends the reply (split by [`segments`] on
//! SMS).

pub mod dates;
pub mod devices;
pub mod lang;
pub mod nlu;
pub mod numbers;
pub mod segments;
pub mod signature;
pub mod state;

use std::future::Future;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use glassguard_protocol::api::{Excess, Plan};
use glassguard_protocol::{Imei, Money, PhoneNumber};

use crate::plans::{Catalog, premium_for};
use devices::{Device, DeviceMatch, Devices};
use lang::{BandLine, ClaimLine, CodeFor, Confirmation, Lang, Offer, Problem, Say};
use nlu::Intent;
use state::{
    ClaimStep, Claims, Conversation, Flow, KnownPhone, Order, OrderStep, STRIKES, Slot, Source,
};

/// The lowest price taken for a phone, rupees.
pub const MIN_PRICE: i64 = 1_000;
/// The highest price covered through the bot, rupees.
pub const MAX_PRICE: i64 = 500_000;
/// How long ago a phone may have been bought. Every bot order waits for a
/// screen check anyway, so the plan's purchase window (7 days at the
/// counter) does not apply; a year bounds what is sold unseen.
pub const MAX_PURCHASE_AGE_DAYS: i64 = 365;

/// A desk call failed (storage, not a business answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeskError(pub String);

/// Result of asking for a code to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSend {
    /// Sent.
    Sent,
    /// One was sent less than a minute ago.
    TooSoon {
        /// Seconds to wait.
        seconds: u64,
    },
    /// Five in the last hour.
    Hourly,
    /// Too many failures over the number's life.
    Locked,
    /// Refused for now by another limit (per address).
    Busy,
}

/// Result of checking a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// It matches the live code for the number (now used up).
    Valid,
    /// It does not.
    Wrong,
    /// No live code (expired, used, never sent).
    Expired,
    /// The live code had all its tries.
    Exhausted,
    /// Too many failures over the number's life.
    Locked,
}

/// Proof that a code sent to this phone came back. Made only by [`handle`].
#[derive(Debug)]
pub struct Verified {
    phone: PhoneNumber,
}

impl Verified {
    /// The proven number.
    pub fn phone(&self) -> &PhoneNumber {
        &self.phone
    }
}

/// An order to place.
#[derive(Debug)]
pub struct OrderToPlace<'a> {
    /// The customer's proven number: the order is theirs.
    pub verified: &'a Verified,
    /// The phone insured.
    pub device: &'a Device,
    /// Its price.
    pub price: Money,
    /// When it was bought.
    pub bought: NaiveDate,
    /// Its IMEI.
    pub imei: Imei,
    /// The customer's name.
    pub name: &'a str,
    /// The plan.
    pub plan: &'a Plan,
    /// The premium for this price.
    pub premium: Money,
    /// The screen must be checked by this day.
    pub check_by: NaiveDate,
}

/// Result of placing an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Placed, pending the screen check.
    Placed {
        /// The reference to quote.
        reference: String,
    },
    /// The IMEI got covered or ordered meanwhile.
    ImeiTaken,
}

/// Result of a claims question.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimsAnswer {
    /// The number's claims (only the named one, when one was named).
    Listed(Vec<ClaimLine>),
    /// The named claim is not this number's (or does not exist).
    NotFound,
}

/// What the engine needs from the rest of the system.
pub trait Desk: Sync {
    /// The plans on sale.
    fn catalog(&self) -> &Catalog;
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Sends a code to a phone, within the OTP service's limits.
    fn send_code(
        &self,
        phone: &PhoneNumber,
        purpose: CodeFor,
    ) -> impl Future<Output = Result<CodeSend, DeskError>> + Send;
    /// Checks a code sent to a phone.
    fn check_code(
        &self,
        phone: &PhoneNumber,
        purpose: CodeFor,
        code: &str,
    ) -> impl Future<Output = Result<CodeCheck, DeskError>> + Send;
    /// Whether an IMEI already has a policy or a pending order.
    fn imei_taken(&self, imei: &Imei) -> impl Future<Output = Result<bool, DeskError>> + Send;
    /// Places an order.
    fn place_order(
        &self,
        order: &OrderToPlace<'_>,
    ) -> impl Future<Output = Result<Placed, DeskError>> + Send;
    /// The claims of the customer with this phone; only the named one when
    /// `reference` is given. Disclosures are audited by the desk.
    fn claims(
        &self,
        phone: &PhoneNumber,
        reference: Option<&str>,
        details: bool,
    ) -> impl Future<Output = Result<ClaimsAnswer, DeskError>> + Send;
    /// Books a call-back.
    fn request_callback(
        &self,
        phone: &PhoneNumber,
        reason: &str,
    ) -> impl Future<Output = Result<(), DeskError>> + Send;
}

/// The bot's answer to one message.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The text, in `lang`.
    pub text: String,
    /// The reply's language.
    pub lang: Lang,
    /// What the message was understood as, with nothing else going on.
    pub intent: Intent,
    /// What the bot waits for next (`imei`, `code`, ...), if anything.
    pub expecting: Option<&'static str>,
}

/// What the conversation waits for.
fn expecting(conv: &Conversation) -> Option<&'static str> {
    match &conv.flow {
        Flow::Idle => None,
        Flow::Order(o) => Some(match o.step {
            OrderStep::Collect(s) => s.as_str(),
            OrderStep::Confirm => "confirmation",
            OrderStep::Code => "code",
        }),
        Flow::Claims(c) => match c.step {
            ClaimStep::Phone => Some("phone"),
            ClaimStep::Code => Some("code"),
            ClaimStep::Shown => None,
        },
        Flow::Callback { need_phone: true } => Some("phone"),
        Flow::Callback { need_phone: false } => Some("callback"),
    }
}

/// One message in, one reply out; `conv` is moved along.
pub async fn handle<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    text: &str,
) -> Result<Reply, DeskError> {
    let toks = nlu::tokens(text);
    let intent = nlu::classify_tokens(&toks);
    if !conv.lang_pinned
        && let Some(l) = nlu::detect_language(text, &toks)
    {
        conv.lang = l;
    }
    let mut out = Vec::new();
    if std::mem::take(&mut conv.expired) {
        out.push(Say::Expired);
    }
    step(desk, conv, &toks, intent, &mut out).await?;
    Ok(Reply {
        text: lang::render(conv.lang, &out),
        lang: conv.lang,
        intent,
        expecting: expecting(conv),
    })
}

/// Whether a message is a cancel: the strongest intent, and a clear one.
fn is_cancel(toks: &[String]) -> bool {
    matches!(nlu::scores(toks).first(), Some((Intent::Cancel, s)) if *s >= 4)
}

async fn step<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    toks: &[String],
    intent: Intent,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    // Commands that work anywhere.
    if let Some(l) = nlu::switch_request(toks) {
        conv.lang = l;
        conv.lang_pinned = true;
        out.push(Say::LanguageSet);
        out.extend(pending_question(desk, conv));
        return Ok(());
    }
    if is_cancel(toks) {
        let order = matches!(conv.flow, Flow::Order(_));
        out.push(if conv.flow == Flow::Idle {
            Say::NothingToCancel
        } else {
            Say::Cancelled { order }
        });
        conv.flow = Flow::Idle;
        conv.quoted_price = None;
        return Ok(());
    }
    if conv.flow != Flow::Idle && intent == Intent::Help && toks.len() <= 3 {
        out.push(Say::Menu);
        out.extend(pending_question(desk, conv));
        return Ok(());
    }
    match std::mem::take(&mut conv.flow) {
        Flow::Idle => idle(desk, conv, toks, intent, out).await,
        Flow::Order(o) => order(desk, conv, o, toks, intent, out).await,
        Flow::Claims(c) => claims(desk, conv, c, toks, out).await,
        Flow::Callback { need_phone } => callback(desk, conv, need_phone, toks, intent, out).await,
    }
}

/// The question the conversation is waiting on, asked again.
fn pending_question<D: Desk>(desk: &D, conv: &Conversation) -> Vec<Say> {
    match &conv.flow {
        Flow::Idle => Vec::new(),
        Flow::Order(o) => match o.step {
            OrderStep::Collect(s) => vec![ask(s)],
            OrderStep::Confirm => confirmation(desk, conv, o).into_iter().collect(),
            OrderStep::Code => vec![Say::CodeNeeded],
        },
        Flow::Claims(c) => match c.step {
            ClaimStep::Phone => vec![Say::AskPhone { callback: false }],
            ClaimStep::Code => vec![Say::CodeNeeded],
            ClaimStep::Shown => Vec::new(),
        },
        Flow::Callback { need_phone: true } => vec![Say::AskPhone { callback: true }],
        Flow::Callback { need_phone: false } => vec![Say::ThreeStrikes],
    }
}

fn ask(slot: Slot) -> Say {
    match slot {
        Slot::Device => Say::AskDevice,
        Slot::Price => Say::AskPrice,
        Slot::Date => Say::AskDate,
        Slot::Imei => Say::AskImei,
        Slot::Name => Say::AskName,
        Slot::Phone => Say::AskPhone { callback: false },
    }
}

async fn idle<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    toks: &[String],
    intent: Intent,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    // "Yes" right after a quote starts the order.
    if conv.quoted_price.is_some() && nlu::yes_no(toks) == Some(true) {
        return start_order(desk, conv, toks, out).await;
    }
    if nlu::wants_callback(toks) {
        return callback(desk, conv, false, toks, intent, out).await;
    }
    match intent {
        Intent::GetInsuranceCatalog => {
            catalog(desk, conv, toks, out);
            Ok(())
        }
        Intent::OrderInsurance => start_order(desk, conv, toks, out).await,
        Intent::CheckClaimStatus => {
            let c = Claims {
                step: ClaimStep::Shown,
                reference: nlu::claim_reference(toks),
                details: nlu::wants_details(toks),
                strikes: 0,
            };
            start_claims(desk, conv, c, out).await
        }
        Intent::Help => {
            out.push(Say::Menu);
            Ok(())
        }
        Intent::Cancel => {
            out.push(Say::NothingToCancel);
            Ok(())
        }
        Intent::SwitchLanguage | Intent::Unknown => {
            // A phone or an IMEI on its own: the customer is starting an order.
            let device = Devices::embedded().find(toks);
            if matches!(device, DeviceMatch::Model(_)) || nlu::imei_digits(toks).is_some() {
                return start_order(desk, conv, toks, out).await;
            }
            out.push(Say::NotUnderstood);
            Ok(())
        }
    }
}

/// The first money-like amount of a message.
fn price_in(toks: &[String]) -> Option<i64> {
    numbers::amounts(toks)
        .into_iter()
        .find(|a| a.money_like)
        .map(|a| a.rupees)
}

fn catalog<D: Desk>(desk: &D, conv: &mut Conversation, toks: &[String], out: &mut Vec<Say>) {
    let cat = desk.catalog();
    match price_in(toks).filter(|p| *p > 0) {
        Some(price) if price > MAX_PRICE => out.push(Say::Wrong(Problem::PriceTooHigh {
            rupees: price,
            max: MAX_PRICE,
        })),
        Some(price) => {
            out.push(offers_for(cat, price));
            conv.quoted_price = Some(price);
        }
        None => out.push(catalog_all(cat)),
    }
}

fn years_of(plan: &Plan) -> u32 {
    ((plan.term_days + 182) / 365).max(1)
}

fn rupees(m: Money) -> i64 {
    m.paise() / 100
}

fn offers_for(cat: &Catalog, price: i64) -> Say {
    let offers = Money::from_rupees(price)
        .ok()
        .map(|p| {
            cat.plans()
                .iter()
                .filter_map(|plan| {
                    premium_for(plan, p).map(|m| Offer {
                        years: years_of(plan),
                        premium: rupees(m),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let excess_percent = cat.plans().first().and_then(|p| match p.excess {
        Excess::PercentBp(bp) => Some(bp / 100),
        Excess::Fixed(_) => None,
    });
    Say::CatalogFor {
        price,
        offers,
        excess_percent,
    }
}

fn catalog_all(cat: &Catalog) -> Say {
    let mut limits: Vec<Option<i64>> = cat
        .plans()
        .iter()
        .flat_map(|p| p.bands.iter().map(|b| b.up_to.map(rupees)))
        .collect();
    limits.sort_by_key(|l| l.unwrap_or(i64::MAX));
    limits.dedup();
    let bands = limits
        .iter()
        .map(|limit| {
            // A price inside the band: its top, or just above the last limit.
            let probe =
                limit.unwrap_or_else(|| limits.iter().flatten().max().copied().unwrap_or(0) + 1);
            let premiums = Money::from_rupees(probe)
                .ok()
                .map(|m| {
                    cat.plans()
                        .iter()
                        .filter_map(|p| premium_for(p, m).map(rupees))
                        .collect()
                })
                .unwrap_or_default();
            BandLine {
                up_to: *limit,
                premiums,
            }
        })
        .collect();
    Say::CatalogAll {
        years: cat.plans().iter().map(years_of).collect(),
        bands,
    }
}

async fn start_order<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    toks: &[String],
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    let mut o = Order {
        price: conv.quoted_price.take(),
        ..Order::default()
    };
    let problem = fill(desk, conv, &mut o, toks, None).await?;
    if let Some(p) = problem {
        out.push(Say::Wrong(p));
    }
    advance(desk, conv, o, out);
    Ok(())
}

/// The first slot still empty, or the confirmation.
fn next_step(conv: &Conversation, o: &Order) -> OrderStep {
    if o.device.is_none() {
        OrderStep::Collect(Slot::Device)
    } else if o.price.is_none() {
        OrderStep::Collect(Slot::Price)
    } else if o.bought.is_none() {
        OrderStep::Collect(Slot::Date)
    } else if o.imei.is_none() {
        OrderStep::Collect(Slot::Imei)
    } else if o.name.is_none() {
        OrderStep::Collect(Slot::Name)
    } else if conv.phone.is_none() {
        OrderStep::Collect(Slot::Phone)
    } else {
        OrderStep::Confirm
    }
}

/// Moves the order to its next question and asks it.
fn advance<D: Desk>(desk: &D, conv: &mut Conversation, mut o: Order, out: &mut Vec<Say>) {
    let next = next_step(conv, &o);
    if next != o.step {
        o.strikes = 0;
    }
    o.step = next;
    match next {
        OrderStep::Collect(s) => {
            // A reprompt about this very question already says what to send.
            if !matches!(out.last(), Some(Say::Wrong(p)) if problem_slot(p) == s) {
                out.push(ask(s));
            }
        }
        OrderStep::Confirm | OrderStep::Code => out.extend(confirmation(desk, conv, &o)),
    }
    conv.flow = Flow::Order(o);
}

/// The chosen plan (the catalog's first by default).
fn plan_of<'c>(cat: &'c Catalog, o: &Order) -> Option<&'c Plan> {
    o.plan
        .as_deref()
        .and_then(|id| cat.get(id))
        .or_else(|| cat.plans().first())
}

fn confirmation<D: Desk>(desk: &D, conv: &Conversation, o: &Order) -> Option<Say> {
    let cat = desk.catalog();
    let plan = plan_of(cat, o)?;
    let price = Money::from_rupees(o.price?).ok()?;
    let premium = premium_for(plan, price)?;
    let alternative = cat
        .plans()
        .iter()
        .enumerate()
        .find(|(_, p)| p.id != plan.id)
        .and_then(|(i, p)| {
            premium_for(p, price).map(|m| {
                (
                    i + 1,
                    Offer {
                        years: years_of(p),
                        premium: rupees(m),
                    },
                )
            })
        });
    let imei = o.imei?;
    Some(Say::Confirm(Box::new(Confirmation {
        device: o.device.as_ref()?.label(),
        price: o.price?,
        bought: o.bought?,
        imei_tail: imei.as_str()[11..].to_string(),
        name: o.name.clone()?,
        phone: conv
            .phone
            .as_ref()
            .filter(|k| k.source == Source::Typed)
            .map(|k| k.phone.masked()),
        plan: Offer {
            years: years_of(plan),
            premium: rupees(premium),
        },
        alternative,
    })))
}

/// Problems found while reading a message: the one about the question
/// asked wins; others are reported only when nothing was asked (the first
/// message of an order, a correction at the confirmation).
struct Problems {
    asked: Option<Slot>,
    answer: Option<Problem>,
    other: Option<Problem>,
}

impl Problems {
    fn report(&mut self, slot: Slot, p: Problem) {
        if self.asked == Some(slot) {
            self.answer.get_or_insert(p);
        } else if self.asked.is_none() {
            self.other.get_or_insert(p);
        }
    }

    fn is(&self, slot: Slot) -> bool {
        self.asked == Some(slot)
    }

    fn found(self) -> Option<Problem> {
        self.answer.or(self.other)
    }
}

/// The slot a problem is about.
fn problem_slot(p: &Problem) -> Slot {
    match p {
        Problem::UnknownDevice | Problem::UnknownModel { .. } => Slot::Device,
        Problem::PriceMissing | Problem::PriceTooLow { .. } | Problem::PriceTooHigh { .. } => {
            Slot::Price
        }
        Problem::DateMissing | Problem::DateFuture | Problem::DateTooOld { .. } => Slot::Date,
        Problem::ImeiLength { .. }
        | Problem::ImeiCheckDigit
        | Problem::ImeiMissing
        | Problem::ImeiTaken => Slot::Imei,
        Problem::NameInvalid => Slot::Name,
        Problem::PhoneInvalid => Slot::Phone,
    }
}

/// Reads every slot the message fills into the order. Returns what was
/// wrong with the answer to `asked`, if it was not accepted.
async fn fill<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    o: &mut Order,
    toks: &[String],
    asked: Option<Slot>,
) -> Result<Option<Problem>, DeskError> {
    let today = desk.now().date_naive();
    let mut problems = Problems {
        asked,
        answer: None,
        other: None,
    };

    // Plan term ("2 years"), at any point.
    if let Some(y) = nlu::plan_years(toks)
        && let Some(p) = desk.catalog().plans().iter().find(|p| years_of(p) == y)
    {
        o.plan = Some(p.id.clone());
    }

    // Phone and name: only when asked (digits and words mean other things too).
    if problems.is(Slot::Phone) {
        match nlu::phone(toks) {
            Some(phone) => {
                conv.phone = Some(KnownPhone {
                    phone,
                    source: Source::Typed,
                });
            }
            None => problems.report(Slot::Phone, Problem::PhoneInvalid),
        }
        return Ok(problems.found());
    }
    if problems.is(Slot::Name) {
        match name_in(toks) {
            Some(n) => o.name = Some(n),
            None => problems.report(Slot::Name, Problem::NameInvalid),
        }
        return Ok(problems.found());
    }

    // IMEI.
    match nlu::imei_digits(toks) {
        Some(d) if d.len() == 15 => match Imei::parse(&d) {
            Ok(imei) => {
                if desk.imei_taken(&imei).await? {
                    problems.report(Slot::Imei, Problem::ImeiTaken);
                } else {
                    o.imei = Some(imei);
                }
            }
            Err(_) => problems.report(Slot::Imei, Problem::ImeiCheckDigit),
        },
        Some(d) => problems.report(Slot::Imei, Problem::ImeiLength { digits: d.len() }),
        None if problems.is(Slot::Imei) => problems.report(
            Slot::Imei,
            match nlu::only_digits(toks) {
                Some(d) => Problem::ImeiLength { digits: d.len() },
                None => Problem::ImeiMissing,
            },
        ),
        None => {}
    }

    // Device.
    match Devices::embedded().find(toks) {
        DeviceMatch::Model(d) => o.device = Some(d),
        DeviceMatch::BrandOnly { brand, examples } => {
            if o.device.is_none() || problems.is(Slot::Device) {
                problems.report(Slot::Device, Problem::UnknownModel { brand, examples });
            }
        }
        DeviceMatch::Nothing if problems.is(Slot::Device) => {
            problems.report(Slot::Device, Problem::UnknownDevice)
        }
        DeviceMatch::Nothing => {}
    }

    // Price: money-like amounts anywhere; a bare number when the price was asked.
    let amounts = numbers::amounts(toks);
    let price = amounts
        .iter()
        .find(|a| a.money_like)
        .or_else(|| amounts.first().filter(|_| problems.is(Slot::Price)));
    match price {
        Some(a) if a.rupees < MIN_PRICE => {
            problems.report(Slot::Price, Problem::PriceTooLow { rupees: a.rupees })
        }
        Some(a) if a.rupees > MAX_PRICE => problems.report(
            Slot::Price,
            Problem::PriceTooHigh {
                rupees: a.rupees,
                max: MAX_PRICE,
            },
        ),
        Some(a) => o.price = Some(a.rupees),
        None if problems.is(Slot::Price) => problems.report(Slot::Price, Problem::PriceMissing),
        None => {}
    }

    // Purchase date.
    match dates::find(toks, today) {
        Some(d) if d > today => problems.report(Slot::Date, Problem::DateFuture),
        Some(d) if (today - d) > Duration::days(MAX_PURCHASE_AGE_DAYS) => problems.report(
            Slot::Date,
            Problem::DateTooOld {
                days: MAX_PURCHASE_AGE_DAYS,
            },
        ),
        Some(d) => o.bought = Some(d),
        None if problems.is(Slot::Date) => problems.report(Slot::Date, Problem::DateMissing),
        None => {}
    }
    Ok(problems.found())
}

/// Prefixes people put before their name.
const NAME_PREFIXES: &[&[&str]] = &[
    &["my", "name", "is"],
    &["name", "is"],
    &["name"],
    &["i", "am"],
    &["i'm"],
    &["im"],
    &["this", "is"],
    &["mera", "naam"],
    &["mera", "nam"],
    &["naam"],
    &["main"],
    &["मेरा", "नाम"],
    &["नाम"],
    &["मैं"],
];

/// A person's name in the message: letters (Latin or Devanagari), two to
/// five words, no digits.
fn name_in(toks: &[String]) -> Option<String> {
    let mut words: &[String] = toks;
    for p in NAME_PREFIXES {
        if words.len() > p.len() && words.iter().zip(p.iter()).all(|(w, p)| w == p) {
            words = &words[p.len()..];
            break;
        }
    }
    while let Some(last) = words.last() {
        if ["hai", "he", "है", "hoon", "hun", "हूं", "हूँ"].contains(&last.as_str())
        {
            words = &words[..words.len() - 1];
        } else {
            break;
        }
    }
    let letters: usize = words
        .iter()
        .map(|w| w.chars().filter(|c| c.is_alphabetic()).count())
        .sum();
    let ok = !words.is_empty()
        && words.len() <= 5
        && letters >= 2
        && words.iter().all(|w| {
            w.chars().all(|c| {
                c.is_alphabetic() || c == '\'' || c == '.' || ('\u{0900}'..='\u{097F}').contains(&c)
            })
        })
        && nlu::yes_no(words) != Some(true);
    if !ok {
        return None;
    }
    let name = words
        .iter()
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_uppercase().chain(cs).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    (name.chars().count() <= 60).then_some(name)
}

/// Counts a failed answer; on the third, offers the call-back.
fn strike(conv: &mut Conversation, strikes: &mut u8, out: &mut Vec<Say>) -> bool {
    *strikes += 1;
    if *strikes >= STRIKES {
        out.clear();
        if conv.expired {
            out.push(Say::Expired);
        }
        out.push(Say::ThreeStrikes);
        conv.flow = Flow::Callback { need_phone: false };
        return true;
    }
    false
}

async fn order<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut o: Order,
    toks: &[String],
    intent: Intent,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    match o.step {
        OrderStep::Collect(slot) => {
            let before = o.clone();
            let problem = fill(desk, conv, &mut o, toks, Some(slot)).await?;
            let progressed = o != before || conv.phone.is_some() && slot == Slot::Phone;
            if let Some(p) = problem {
                if !progressed || next_step(conv, &o) == o.step {
                    // The question asked was not answered.
                    if !progressed
                        && matches!(
                            intent,
                            Intent::GetInsuranceCatalog | Intent::CheckClaimStatus
                        )
                        && toks.len() > 1
                    {
                        // Another question mid-order: answer the catalog, refuse the rest.
                        if intent == Intent::GetInsuranceCatalog {
                            catalog(desk, conv, toks, out);
                            conv.quoted_price = None;
                        } else {
                            out.push(Say::FinishOrderFirst);
                        }
                        out.push(ask(slot));
                        conv.flow = Flow::Order(o);
                        return Ok(());
                    }
                    out.push(Say::Wrong(p));
                    let mut strikes = o.strikes;
                    if strike(conv, &mut strikes, out) {
                        return Ok(());
                    }
                    o.strikes = strikes;
                    conv.flow = Flow::Order(o);
                    return Ok(());
                }
                out.push(Say::Wrong(p));
            }
            advance(desk, conv, o, out);
            Ok(())
        }
        OrderStep::Confirm => confirm(desk, conv, o, toks, out).await,
        OrderStep::Code => order_code(desk, conv, o, toks, out).await,
    }
}

async fn confirm<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut o: Order,
    toks: &[String],
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    match nlu::yes_no(toks) {
        Some(true) => {
            let Some(phone) = conv.phone.as_ref().map(|k| k.phone.clone()) else {
                o.step = OrderStep::Collect(Slot::Phone);
                out.push(ask(Slot::Phone));
                conv.flow = Flow::Order(o);
                return Ok(());
            };
            let sent = desk.send_code(&phone, CodeFor::Order).await?;
            o.strikes = 0;
            match code_sent_says(sent, &phone, CodeFor::Order, out) {
                true => {
                    o.code_phone = Some(phone);
                    o.step = OrderStep::Code;
                }
                false => o.step = OrderStep::Confirm,
            }
            conv.flow = Flow::Order(o);
            return Ok(());
        }
        Some(false) => {
            out.push(Say::Cancelled { order: true });
            conv.flow = Flow::Idle;
            return Ok(());
        }
        None => {}
    }
    // A plan's number ("2"), a term ("2 years"), or a correction.
    let before = o.clone();
    if let [t] = toks
        && let Ok(n) = t.parse::<usize>()
        && let Some(p) = desk.catalog().plans().get(n.wrapping_sub(1))
    {
        o.plan = Some(p.id.clone());
    } else {
        let problem = fill(desk, conv, &mut o, toks, None).await?;
        if let Some(p) = problem {
            out.push(Say::Wrong(p));
        }
    }
    if o != before {
        o.step = OrderStep::Confirm;
        o.strikes = 0;
        out.extend(confirmation(desk, conv, &o));
        conv.flow = Flow::Order(o);
        return Ok(());
    }
    let alternative = desk.catalog().plans().len() > 1;
    out.push(Say::ConfirmUnclear { alternative });
    let mut strikes = o.strikes;
    if strike(conv, &mut strikes, out) {
        return Ok(());
    }
    o.strikes = strikes;
    conv.flow = Flow::Order(o);
    Ok(())
}

/// Says how a send went; true when a code is (or recently was) on its way.
fn code_sent_says(
    sent: CodeSend,
    phone: &PhoneNumber,
    purpose: CodeFor,
    out: &mut Vec<Say>,
) -> bool {
    match sent {
        CodeSend::Sent => {
            out.push(Say::CodeSent {
                to: phone.masked(),
                purpose,
            });
            true
        }
        CodeSend::TooSoon { seconds } => {
            out.push(Say::CodeTooSoon { seconds });
            true
        }
        CodeSend::Hourly => {
            out.push(Say::CodeHourly);
            false
        }
        CodeSend::Locked => {
            out.push(Say::CodeLocked);
            false
        }
        CodeSend::Busy => {
            out.push(Say::CodeBusy);
            false
        }
    }
}

async fn order_code<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut o: Order,
    toks: &[String],
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    let Some(phone) = o.code_phone.clone() else {
        // No number the code went to: back to the confirmation.
        o.step = OrderStep::Confirm;
        out.extend(confirmation(desk, conv, &o));
        conv.flow = Flow::Order(o);
        return Ok(());
    };
    if nlu::wants_resend(toks) {
        let sent = desk.send_code(&phone, CodeFor::Order).await?;
        code_sent_says(sent, &phone, CodeFor::Order, out);
        conv.flow = Flow::Order(o);
        return Ok(());
    }
    if nlu::yes_no(toks) == Some(false) {
        out.push(Say::Cancelled { order: true });
        conv.flow = Flow::Idle;
        return Ok(());
    }
    let Some(code) = nlu::otp_code(toks) else {
        out.push(Say::CodeNeeded);
        let mut strikes = o.strikes;
        if !strike(conv, &mut strikes, out) {
            o.strikes = strikes;
            conv.flow = Flow::Order(o);
        }
        return Ok(());
    };
    match desk.check_code(&phone, CodeFor::Order, &code).await? {
        CodeCheck::Valid => {
            conv.verified = Some(phone.clone());
            let verified = Verified { phone };
            place(desk, conv, o, &verified, out).await
        }
        CodeCheck::Wrong => {
            let mut strikes = o.strikes;
            if strike(conv, &mut strikes, out) {
                return Ok(());
            }
            o.strikes = strikes;
            out.push(Say::CodeWrong {
                left: STRIKES - strikes,
            });
            conv.flow = Flow::Order(o);
            Ok(())
        }
        CodeCheck::Expired => {
            out.push(Say::CodeExpired);
            conv.flow = Flow::Order(o);
            Ok(())
        }
        CodeCheck::Exhausted => {
            let mut strikes = STRIKES;
            strike(conv, &mut strikes, out);
            Ok(())
        }
        CodeCheck::Locked => {
            out.push(Say::CodeLocked);
            conv.flow = Flow::Idle;
            Ok(())
        }
    }
}

async fn place<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut o: Order,
    verified: &Verified,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    let cat = desk.catalog();
    let today = desk.now().date_naive();
    let (Some(plan), Some(device), Some(price), Some(bought), Some(imei), Some(name)) = (
        plan_of(cat, &o),
        o.device.as_ref(),
        o.price.and_then(|p| Money::from_rupees(p).ok()),
        o.bought,
        o.imei,
        o.name.as_deref(),
    ) else {
        // Cannot happen: the code step follows a complete confirmation.
        advance(desk, conv, o, out);
        return Ok(());
    };
    let Some(premium) = premium_for(plan, price) else {
        out.push(Say::Wrong(Problem::PriceMissing));
        o.price = None;
        advance(desk, conv, o, out);
        return Ok(());
    };
    let check_by = today + Duration::days(i64::from(plan.purchase_window_days.max(1)));
    let placed = desk
        .place_order(&OrderToPlace {
            verified,
            device,
            price,
            bought,
            imei,
            name,
            plan,
            premium,
            check_by,
        })
        .await?;
    match placed {
        Placed::Placed { reference } => {
            out.push(Say::OrderPlaced {
                reference,
                years: years_of(plan),
                premium: rupees(premium),
                check_by,
            });
            conv.flow = Flow::Idle;
        }
        Placed::ImeiTaken => {
            out.push(Say::Wrong(Problem::ImeiTaken));
            o.imei = None;
            o.code_phone = None;
            o.step = OrderStep::Collect(Slot::Imei);
            o.strikes = 0;
            conv.flow = Flow::Order(o);
        }
    }
    Ok(())
}

/// Starts or continues a claims question: who is asking decides whether a
/// code is needed first.
async fn start_claims<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut c: Claims,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    let Some(known) = conv.phone.clone() else {
        c.step = ClaimStep::Phone;
        out.push(Say::AskPhone { callback: false });
        conv.flow = Flow::Claims(c);
        return Ok(());
    };
    // The states of one's claims: the SMS sender and the signed-in user
    // are known; a number typed in the app must be proven first. Details
    // are personal: always proven.
    let proven = conv.verified.as_ref() == Some(&known.phone);
    let need_code = !proven && (c.details || known.source == Source::Typed);
    if need_code {
        let purpose = if c.details {
            CodeFor::Details
        } else {
            CodeFor::Claims
        };
        let sent = desk.send_code(&known.phone, purpose).await?;
        if code_sent_says(sent, &known.phone, purpose, out) {
            c.step = ClaimStep::Code;
            c.strikes = 0;
            conv.flow = Flow::Claims(c);
        } else {
            conv.flow = Flow::Idle;
        }
        return Ok(());
    }
    show_claims(desk, conv, c, &known.phone, out).await
}

async fn show_claims<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut c: Claims,
    phone: &PhoneNumber,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    let window_hours = desk
        .catalog()
        .plans()
        .first()
        .map_or(48, |p| i64::from(p.claim_window_days) * 24);
    match desk
        .claims(phone, c.reference.as_deref(), c.details)
        .await?
    {
        ClaimsAnswer::NotFound => {
            out.push(Say::ClaimNotFound {
                reference: c.reference.clone().unwrap_or_default(),
            });
            conv.flow = Flow::Idle;
        }
        ClaimsAnswer::Listed(items) if items.is_empty() => {
            out.push(Say::ClaimsNone {
                to: phone.masked(),
                window_hours,
            });
            conv.flow = Flow::Idle;
        }
        ClaimsAnswer::Listed(items) if c.details => {
            out.push(Say::ClaimDetails { items });
            conv.flow = Flow::Idle;
        }
        ClaimsAnswer::Listed(items) => {
            out.push(Say::Claims {
                items,
                offer_details: true,
            });
            c.step = ClaimStep::Shown;
            conv.flow = Flow::Claims(c);
        }
    }
    Ok(())
}

async fn claims<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    mut c: Claims,
    toks: &[String],
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    match c.step {
        ClaimStep::Phone => match nlu::phone(toks) {
            Some(phone) => {
                conv.phone = Some(KnownPhone {
                    phone,
                    source: Source::Typed,
                });
                start_claims(desk, conv, c, out).await
            }
            None => {
                out.push(Say::Wrong(Problem::PhoneInvalid));
                let mut strikes = c.strikes;
                if !strike(conv, &mut strikes, out) {
                    c.strikes = strikes;
                    conv.flow = Flow::Claims(c);
                }
                Ok(())
            }
        },
        ClaimStep::Code => {
            let Some(known) = conv.phone.clone() else {
                c.step = ClaimStep::Phone;
                out.push(Say::AskPhone { callback: false });
                conv.flow = Flow::Claims(c);
                return Ok(());
            };
            let purpose = if c.details {
                CodeFor::Details
            } else {
                CodeFor::Claims
            };
            if nlu::wants_resend(toks) {
                let sent = desk.send_code(&known.phone, purpose).await?;
                code_sent_says(sent, &known.phone, purpose, out);
                conv.flow = Flow::Claims(c);
                return Ok(());
            }
            let Some(code) = nlu::otp_code(toks) else {
                out.push(Say::CodeNeeded);
                let mut strikes = c.strikes;
                if !strike(conv, &mut strikes, out) {
                    c.strikes = strikes;
                    conv.flow = Flow::Claims(c);
                }
                return Ok(());
            };
            match desk.check_code(&known.phone, purpose, &code).await? {
                CodeCheck::Valid => {
                    conv.verified = Some(known.phone.clone());
                    show_claims(desk, conv, c, &known.phone, out).await
                }
                CodeCheck::Wrong => {
                    let mut strikes = c.strikes;
                    if !strike(conv, &mut strikes, out) {
                        c.strikes = strikes;
                        out.push(Say::CodeWrong {
                            left: STRIKES - strikes,
                        });
                        conv.flow = Flow::Claims(c);
                    }
                    Ok(())
                }
                CodeCheck::Expired => {
                    out.push(Say::CodeExpired);
                    conv.flow = Flow::Claims(c);
                    Ok(())
                }
                CodeCheck::Exhausted => {
                    let mut strikes = STRIKES;
                    strike(conv, &mut strikes, out);
                    Ok(())
                }
                CodeCheck::Locked => {
                    out.push(Say::CodeLocked);
                    conv.flow = Flow::Idle;
                    Ok(())
                }
            }
        }
        ClaimStep::Shown => {
            if nlu::wants_details(toks) {
                c.details = true;
                if let Some(r) = nlu::claim_reference(toks) {
                    c.reference = Some(r);
                }
                return start_claims(desk, conv, c, out).await;
            }
            // Anything else: a new question.
            idle(desk, conv, toks, nlu::classify_tokens(toks), out).await
        }
    }
}

async fn callback<D: Desk>(
    desk: &D,
    conv: &mut Conversation,
    need_phone: bool,
    toks: &[String],
    intent: Intent,
    out: &mut Vec<Say>,
) -> Result<(), DeskError> {
    let asked = nlu::wants_callback(toks);
    if need_phone {
        match nlu::phone(toks) {
            Some(phone) => {
                conv.phone = Some(KnownPhone {
                    phone,
                    source: Source::Typed,
                });
            }
            None if asked => {
                out.push(Say::AskPhone { callback: true });
                conv.flow = Flow::Callback { need_phone: true };
                return Ok(());
            }
            // Something else entirely (words, not a mistyped number): answer that.
            None if intent != Intent::Unknown
                && toks.iter().any(|t| t.chars().any(char::is_alphabetic)) =>
            {
                return Box::pin(idle(desk, conv, toks, intent, out)).await;
            }
            None => {
                out.push(Say::Wrong(Problem::PhoneInvalid));
                conv.flow = Flow::Callback { need_phone: true };
                return Ok(());
            }
        }
    } else if !asked {
        // Not a call-back: whatever else it is.
        return Box::pin(idle(desk, conv, toks, intent, out)).await;
    }
    match conv.phone.clone() {
        Some(k) => {
            desk.request_callback(&k.phone, "customer asked for a call-back in the bot")
                .await?;
            out.push(Say::CallbackBooked {
                to: k.phone.masked(),
            });
            conv.flow = Flow::Idle;
        }
        None => {
            out.push(Say::AskPhone { callback: true });
            conv.flow = Flow::Callback { need_phone: true };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The engine against a fake desk: whole conversations without a server.
    //! (The same property over HTTP, against the real store and OTP service,
    //! is in `backend/tests/bot.rs`.)

    use std::collections::HashMap;
    use std::sync::Mutex;

    use proptest::prelude::*;

    use super::*;
    use crate::plans::EMBEDDED_CATALOG;

    #[derive(Default)]
    struct Books {
        /// The live code per phone.
        codes: HashMap<String, String>,
        sent: u32,
        /// The phone whose code was just accepted, not yet used for an order.
        accepted: Option<String>,
        orders: Vec<String>,
    }

    struct FakeDesk {
        catalog: Catalog,
        books: Mutex<Books>,
    }

    impl FakeDesk {
        fn new() -> Self {
            FakeDesk {
                catalog: Catalog::parse(EMBEDDED_CATALOG).unwrap(),
                books: Mutex::new(Books::default()),
            }
        }

        fn code_of(&self, phone: &str) -> Option<String> {
            self.books.lock().unwrap().codes.get(phone).cloned()
        }
    }

    impl Desk for FakeDesk {
        fn catalog(&self) -> &Catalog {
            &self.catalog
        }

        fn now(&self) -> DateTime<Utc> {
            NaiveDate::from_ymd_opt(2026, 3, 12)
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap()
                .and_utc()
        }

        async fn send_code(&self, phone: &PhoneNumber, _: CodeFor) -> Result<CodeSend, DeskError> {
            let mut b = self.books.lock().unwrap();
            b.sent += 1;
            let code = format!("{:06}", 100_000 + b.sent * 7);
            b.codes.insert(phone.as_str().to_string(), code);
            Ok(CodeSend::Sent)
        }

        async fn check_code(
            &self,
            phone: &PhoneNumber,
            _: CodeFor,
            code: &str,
        ) -> Result<CodeCheck, DeskError> {
            let mut b = self.books.lock().unwrap();
            if b.codes.get(phone.as_str()).map(String::as_str) == Some(code) {
                b.codes.remove(phone.as_str());
                b.accepted = Some(phone.as_str().to_string());
                Ok(CodeCheck::Valid)
            } else {
                Ok(CodeCheck::Wrong)
            }
        }

        async fn imei_taken(&self, _: &Imei) -> Result<bool, DeskError> {
            Ok(false)
        }

        async fn place_order(&self, o: &OrderToPlace<'_>) -> Result<Placed, DeskError> {
            let mut b = self.books.lock().unwrap();
            let phone = o.verified.phone().as_str().to_string();
            assert_eq!(
                b.accepted.take().as_deref(),
                Some(phone.as_str()),
                "an order for a number whose code was not just accepted"
            );
            b.orders.push(phone);
            Ok(Placed::Placed {
                reference: format!("GB-TEST{}", b.orders.len()),
            })
        }

        async fn claims(
            &self,
            _: &PhoneNumber,
            reference: Option<&str>,
            _: bool,
        ) -> Result<ClaimsAnswer, DeskError> {
            Ok(match reference {
                Some(_) => ClaimsAnswer::NotFound,
                None => ClaimsAnswer::Listed(Vec::new()),
            })
        }

        async fn request_callback(&self, _: &PhoneNumber, _: &str) -> Result<(), DeskError> {
            Ok(())
        }
    }

    fn talk(desk: &FakeDesk, conv: &mut Conversation, text: &str) -> Reply {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(handle(desk, conv, text)).unwrap()
    }

    #[test]
    fn an_order_step_by_step_in_eight_messages() {
        let desk = FakeDesk::new();
        let phone = PhoneNumber::parse("+919876543210").unwrap();
        let mut conv = Conversation {
            phone: Some(KnownPhone {
                phone: phone.clone(),
                source: Source::Carrier,
            }),
            ..Conversation::default()
        };
        for (text, expect) in [
            ("I want to buy screen insurance", "device"),
            ("Samsung Galaxy A15", "price"),
            ("15000", "date"),
            ("today", "imei"),
            ("356938035643809", "name"),
            ("Ravi Kumar", "confirmation"),
            ("yes", "code"),
        ] {
            let r = talk(&desk, &mut conv, text);
            assert_eq!(r.expecting, Some(expect), "{text}: {}", r.text);
        }
        let code = desk.code_of(phone.as_str()).unwrap();
        let r = talk(&desk, &mut conv, &code);
        assert!(r.text.contains("Order GB-TEST1"), "{}", r.text);
        assert_eq!(r.expecting, None);
        assert_eq!(desk.books.lock().unwrap().orders, vec![phone.as_str()]);
    }

    const PHRASES: &[&str] = &[
        "order samsung galaxy a15 15000 today 356938035643809",
        "Ravi Kumar",
        "9876543210",
        "9123456789",
        "yes",
        "no",
        "2",
        "resend",
        "cancel",
        "help",
        "hindi",
        "call",
        "plans for 15k",
        "mera claim",
        "details",
        "123456",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever is said, in whatever order, the engine places an order
        /// only right after the desk accepted the code of that order's number.
        #[test]
        fn orders_follow_an_accepted_code(
            sms in any::<bool>(),
            steps in proptest::collection::vec((0..PHRASES.len() + 2, any::<bool>()), 1..30),
        ) {
            let desk = FakeDesk::new();
            let own = PhoneNumber::parse("+919876543210").unwrap();
            let mut conv = Conversation::default();
            for (i, other) in steps {
                if sms {
                    conv.phone = Some(KnownPhone { phone: own.clone(), source: Source::Carrier });
                }
                let text = match i {
                    i if i < PHRASES.len() => PHRASES[i].to_string(),
                    // The live code of this number, or of the other one.
                    _ => {
                        let who = if other { "+919123456789" } else { own.as_str() };
                        match desk.code_of(who) {
                            Some(c) => c,
                            None => continue,
                        }
                    }
                };
                let before = desk.books.lock().unwrap().orders.len();
                talk(&desk, &mut conv, &text);
                let b = desk.books.lock().unwrap();
                prop_assert!(b.orders.len() <= before + 1);
                if sms {
                    prop_assert!(b.orders.iter().all(|p| p == own.as_str()));
                }
            }
        }
    }
}
