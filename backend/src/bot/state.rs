//! A conversation's state between messages.
//!
//! One conversation per channel and sender; the HTTP layer loads it from
//! the database (sealed under the row's data key: it holds a name, an IMEI
//! and a phone number), hands it to the engine with the new message and
//! stores it back. It expires after [`SILENCE`] without a message: the next
//! message starts a fresh conversation (keeping only the language) and the
//! reply says so.
//!
//! Stored as JSON. It lives at most fifteen minutes, so a change of shape
//! costs at most the conversations in flight at a deploy: a state that no
//! longer decodes is treated as expired, never as an error.

use chrono::{Duration, NaiveDate};
use glassguard_protocol::{Imei, PhoneNumber};
use serde::{Deserialize, Serialize};

use super::devices::Device;
use super::lang::Lang;

/// Silence after which a conversation is forgotten.
pub const SILENCE: Duration = Duration::minutes(15);

/// Failed answers to one question before the call-back offer.
pub const STRIKES: u8 = 3;

/// How the bot knows the customer's phone number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The SMS gateway says the message came from it.
    Carrier,
    /// The signed-in account's number.
    Account,
    /// Typed into the in-app chat: unproven until a code comes back.
    Typed,
}

/// The customer's phone, and how it is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPhone {
    /// The number.
    pub phone: PhoneNumber,
    /// How it is known.
    pub source: Source,
}

/// A question the order flow can ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// Brand and model.
    Device,
    /// Price paid.
    Price,
    /// Purchase date.
    Date,
    /// IMEI.
    Imei,
    /// Customer name.
    Name,
    /// Mobile number (in-app, when not signed in).
    Phone,
}

impl Slot {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Device => "device",
            Slot::Price => "price",
            Slot::Date => "date",
            Slot::Imei => "imei",
            Slot::Name => "name",
            Slot::Phone => "phone",
        }
    }
}

/// Where an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStep {
    /// Asking for a slot.
    Collect(Slot),
    /// Read back, waiting for yes or no.
    Confirm,
    /// A code was sent, waiting for it.
    Code,
}

/// An order being taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Brand and model.
    pub device: Option<Device>,
    /// Price paid, rupees.
    pub price: Option<i64>,
    /// Purchase date.
    pub bought: Option<NaiveDate>,
    /// IMEI (Luhn-checked, not covered when it was given).
    pub imei: Option<Imei>,
    /// Customer name.
    pub name: Option<String>,
    /// Chosen plan id (the catalog's first plan when not chosen).
    pub plan: Option<String>,
    /// The number the code was sent to: the order goes to it and nowhere else.
    pub code_phone: Option<PhoneNumber>,
    /// Where the order is.
    pub step: OrderStep,
    /// Failed answers at this step.
    pub strikes: u8,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            device: None,
            price: None,
            bought: None,
            imei: None,
            name: None,
            plan: None,
            code_phone: None,
            step: OrderStep::Collect(Slot::Device),
            strikes: 0,
        }
    }
}

/// Where a claim-status question is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStep {
    /// Asking for the phone number.
    Phone,
    /// A code was sent.
    Code,
    /// The claims were shown; DETAILS may follow.
    Shown,
}

/// A claim-status question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Where it is.
    pub step: ClaimStep,
    /// The claim asked about, if one was named.
    pub reference: Option<String>,
    /// Details (personal) were asked for, not only the states.
    pub details: bool,
    /// Failed answers at this step.
    pub strikes: u8,
}

/// What the conversation is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Flow {
    /// Nothing; any intent may start.
    #[default]
    Idle,
    /// Taking an order.
    Order(Order),
    /// Answering about claims.
    Claims(Claims),
    /// A call-back was offered.
    Callback {
        /// Waiting for a phone number to call.
        need_phone: bool,
    },
}

/// The state kept between messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The language replies are in.
    pub lang: Lang,
    /// Set when the customer chose it: no more guessing from their words.
    #[serde(default)]
    pub lang_pinned: bool,
    /// The customer's phone, when known.
    #[serde(default)]
    pub phone: Option<KnownPhone>,
    /// A phone proven by a code in this conversation.
    #[serde(default)]
    pub verified: Option<PhoneNumber>,
    /// The last price the catalog was asked about (an order starting next uses it).
    #[serde(default)]
    pub quoted_price: Option<i64>,
    /// What it is doing.
    #[serde(default)]
    pub flow: Flow,
    /// The previous conversation just expired (not stored: set by the loader).
    #[serde(skip)]
    pub expired: bool,
}

impl Conversation {
    /// The conversation after `self` expired: only the language survives.
    pub fn after_expiry(&self) -> Conversation {
        Conversation {
            lang: self.lang,
            lang_pinned: self.lang_pinned,
            expired: self.flow != Flow::Idle,
            ..Conversation::default()
        }
    }
}
