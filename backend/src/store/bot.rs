//! The text bot's storage: conversations (sealed JSON state, one row per
//! channel and sender, written with an optimistic version check), orders
//! placed through the bot (pending a screen check; the customer found or
//! registered by phone in the same transaction), call-back requests, and the
//! ids of inbound SMS already handled.
//!
//! A conversation's replies on the SMS channel are queued in the outbox in
//! the same transaction that stores the conversation, so a reply is sent if
//! and only if the state that produced it was kept.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use glassguard_protocol::{Imei, Money, PhoneNumber, Role, UserId};

use super::keys::{RowCipher, blind, index};
use super::users::{NewUser, fill_name, insert_user, user_by_phone_on};
use super::{AuditRecord, Result, Store, StoreError, day, from_day, from_ms, get, ms, parse};
use crate::crypto::Keyring;
use crate::plans::PlanTerms;

/// Blind-index domain of conversation senders.
const SENDER: &str = "bot_sender";

/// Conversations silent this long are deleted when a new one starts.
const KEEP_CONVERSATIONS: Duration = Duration::days(1);

/// Handled SMS ids are kept this long.
const KEEP_SEEN: Duration = Duration::days(2);

/// Where a conversation happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The in-app chat.
    App,
    /// Plain SMS through the gateway's webhook.
    Sms,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::Sms => "sms",
        }
    }
}

/// A stored conversation.
#[derive(Clone)]
pub struct StoredConversation {
    /// Row id.
    pub id: String,
    /// Version, for the optimistic write.
    pub version: i64,
    /// Last message.
    pub updated_at: DateTime<Utc>,
    /// The state JSON; `None` when it no longer opens (treated as expired).
    pub state: Option<String>,
    dek: Vec<u8>,
}

impl std::fmt::Debug for StoredConversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state holds PII.
        f.debug_struct("StoredConversation")
            .field("id", &self.id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A conversation to store (see [`Store::save_bot_conversation`]).
#[derive(Debug)]
pub struct SaveConversation<'a> {
    /// Channel.
    pub channel: Channel,
    /// Sender key (a phone, a session id, a user id).
    pub sender: &'a str,
    /// What [`Store::bot_conversation`] returned, for the version check.
    pub previous: Option<&'a StoredConversation>,
    /// The new state JSON.
    pub state: &'a str,
    /// SMS replies: the recipient and the parts, each one segment.
    pub sms: Option<(&'a PhoneNumber, &'a [String])>,
    /// The inbound SMS id, marked handled with the state.
    pub message_id: Option<&'a str>,
}

/// The outcome of storing a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Stored (and replies queued).
    Saved,
    /// Another message of this conversation was stored meanwhile: nothing written.
    Conflict,
    /// This inbound SMS was handled before: nothing written.
    Duplicate,
}

/// An order to store.
#[derive(Debug)]
pub struct NewBotOrder<'a> {
    /// Row id.
    pub id: uuid::Uuid,
    /// The reference the customer quotes.
    pub reference: String,
    /// Where it was placed.
    pub channel: Channel,
    /// The customer's number, proven by the OTP.
    pub phone: &'a PhoneNumber,
    /// When the OTP was checked.
    pub otp_verified_at: DateTime<Utc>,
    /// Customer name.
    pub name: &'a str,
    /// Device.
    pub imei: Imei,
    /// Brand.
    pub brand: &'a str,
    /// Model.
    pub model: &'a str,
    /// Plan id.
    pub plan_id: &'a str,
    /// The plan's terms now.
    pub terms: PlanTerms,
    /// Device price.
    pub device_price: Money,
    /// Premium.
    pub premium: Money,
    /// Device purchase date.
    pub purchase_date: NaiveDate,
    /// The screen must be checked by then.
    pub screen_check_by: NaiveDate,
}

/// The outcome of placing an order.
#[derive(Debug, Clone, PartialEq)]
pub enum BotOrderOutcome {
    /// Stored, for this customer.
    Placed(UserId),
    /// The IMEI has an active policy or another pending order.
    ImeiTaken,
}

/// A stored order, decrypted.
#[derive(Debug, Clone)]
pub struct BotOrderRow {
    /// Reference.
    pub reference: String,
    /// `pending_screen_check`, ...
    pub status: String,
    /// Channel.
    pub channel: String,
    /// Customer.
    pub customer_id: UserId,
    /// Phone.
    pub phone: PhoneNumber,
    /// Name.
    pub name: String,
    /// IMEI.
    pub imei: Imei,
    /// Plan.
    pub plan_id: String,
    /// Brand.
    pub brand: String,
    /// Model.
    pub model: String,
    /// Price.
    pub device_price: Money,
    /// Premium.
    pub premium: Money,
    /// Screen check deadline.
    pub screen_check_by: NaiveDate,
    /// When the OTP was checked.
    pub otp_verified_at: DateTime<Utc>,
    /// Placed at.
    pub created_at: DateTime<Utc>,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn sender_index(keys: &Keyring, channel: Channel, sender: &str) -> Vec<u8> {
    blind(keys, SENDER, &format!("{}:{sender}", channel.as_str()))
}

impl Store {
    /// The conversation of a sender on a channel, if one is stored.
    pub async fn bot_conversation(
        &self,
        keys: &Keyring,
        channel: Channel,
        sender: &str,
    ) -> Result<Option<StoredConversation>> {
        let r = sqlx::query(
            "SELECT id, dek, state_enc, version, updated_at FROM bot_conversations \
             WHERE channel = $1 AND sender_index = $2",
        )
        .bind(channel.as_str().to_string())
        .bind(sender_index(keys, channel, sender))
        .fetch_optional(self.reader())
        .await?;
        let Some(r) = r else { return Ok(None) };
        let id: String = get(&r, "id")?;
        let dek: Vec<u8> = get(&r, "dek")?;
        // A state that no longer opens is dropped, not an error: the
        // conversation starts afresh.
        let state = RowCipher::open(keys, "bot_conversations", &id, dek.clone())
            .and_then(|c| c.open_str("state", &get::<Vec<u8>>(&r, "state_enc")?))
            .ok();
        Ok(Some(StoredConversation {
            version: get(&r, "version")?,
            updated_at: from_ms(get(&r, "updated_at")?)?,
            state,
            dek,
            id,
        }))
    }

    /// Stores a conversation's new state, queues its SMS replies and marks
    /// the inbound message handled, in one transaction.
    pub async fn save_bot_conversation(
        &self,
        keys: &Keyring,
        save: &SaveConversation<'_>,
        now: DateTime<Utc>,
    ) -> Result<SaveOutcome> {
        let mut tx = self.begin().await?;
        if let Some(mid) = save.message_id {
            sqlx::query("DELETE FROM bot_sms_seen WHERE received_at < $1")
                .bind(ms(now - KEEP_SEEN))
                .execute(&mut *tx)
                .await?;
            let first = sqlx::query(
                "INSERT INTO bot_sms_seen (message_id, received_at) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(mid.to_string())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !first {
                return Ok(SaveOutcome::Duplicate);
            }
        }
        let saved = match save.previous {
            Some(p) => {
                let c = RowCipher::open(keys, "bot_conversations", &p.id, p.dek.clone())?;
                sqlx::query(
                    "UPDATE bot_conversations SET state_enc = $1, version = version + 1, updated_at = $2 \
                     WHERE id = $3 AND version = $4",
                )
                .bind(c.seal("state", save.state))
                .bind(ms(now))
                .bind(p.id.clone())
                .bind(p.version)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
            None => {
                sqlx::query("DELETE FROM bot_conversations WHERE updated_at < $1")
                    .bind(ms(now - KEEP_CONVERSATIONS))
                    .execute(&mut *tx)
                    .await?;
                let id = uuid::Uuid::now_v7().to_string();
                let (c, dek) = RowCipher::create(keys, "bot_conversations", &id)?;
                sqlx::query(
                    "INSERT INTO bot_conversations (id, channel, sender_index, dek, state_enc, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6) ON CONFLICT (channel, sender_index) DO NOTHING",
                )
                .bind(id.clone())
                .bind(save.channel.as_str().to_string())
                .bind(sender_index(keys, save.channel, save.sender))
                .bind(dek)
                .bind(c.seal("state", save.state))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
        };
        if !saved {
            return Ok(SaveOutcome::Conflict);
        }
        if let Some((to, parts)) = save.sms {
            for part in parts {
                super::notifications::enqueue_sms(&mut tx, keys, "bot_reply", to, part, now)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(SaveOutcome::Saved)
    }

    /// Whether an IMEI has an active policy or a pending bot order.
    pub async fn bot_imei_taken(&self, keys: &Keyring, imei: &Imei) -> Result<bool> {
        let ix = blind(keys, index::IMEI, imei.as_str());
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM policies WHERE imei_index = $1 AND status = 'active') \
             + (SELECT COUNT(*) FROM bot_orders WHERE imei_index = $1 AND status = 'pending_screen_check')",
        )
        .bind(ix)
        .fetch_one(self.reader())
        .await?;
        Ok(n > 0)
    }

    /// Places an order: the customer (found or registered by phone), the
    /// order and its audit entry, atomically.
    pub async fn place_bot_order(
        &self,
        keys: &Keyring,
        o: &NewBotOrder<'_>,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<BotOrderOutcome> {
        let imei_index = blind(keys, index::IMEI, o.imei.as_str());
        let mut tx = self.begin().await?;
        let covered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM policies WHERE imei_index = $1 AND status = 'active'",
        )
        .bind(imei_index.clone())
        .fetch_one(&mut *tx)
        .await?;
        if covered > 0 {
            return Ok(BotOrderOutcome::ImeiTaken);
        }
        let customer = match user_by_phone_on(&mut tx, keys, o.phone).await? {
            Some(u) => {
                fill_name(&mut tx, keys, &u.id, o.name).await?;
                u
            }
            None => {
                let new = NewUser {
                    id: UserId::new(),
                    role: Role::Customer,
                    phone: o.phone,
                    name: Some(o.name),
                    email: None,
                    partner_id: None,
                    service_centre: None,
                };
                insert_user(&mut tx, keys, &new, now)
                    .await?
                    .ok_or_else(|| corrupt("customer phone raced"))?
            }
        };
        let id = o.id.to_string();
        let (c, dek) = RowCipher::create(keys, "bot_orders", &id)?;
        let done = sqlx::query(
            "INSERT INTO bot_orders (id, reference, status, channel, customer_id, plan_id, plan_terms, phone_index, imei_index, \
             dek, phone_enc, name_enc, imei_enc, brand, model, device_price, premium, device_purchase_date, screen_check_by, \
             otp_verified_at, created_at, updated_at) \
             VALUES ($1, $2, 'pending_screen_check', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id.clone())
        .bind(o.reference.clone())
        .bind(o.channel.as_str().to_string())
        .bind(customer.id.to_string())
        .bind(o.plan_id.to_string())
        .bind(serde_json::to_string(&o.terms).map_err(corrupt)?)
        .bind(blind(keys, index::PHONE, o.phone.as_str()))
        .bind(imei_index)
        .bind(dek)
        .bind(c.seal("phone", o.phone.as_str()))
        .bind(c.seal("name", o.name))
        .bind(c.seal("imei", o.imei.as_str()))
        .bind(o.brand.to_string())
        .bind(o.model.to_string())
        .bind(o.device_price.paise())
        .bind(o.premium.paise())
        .bind(day(o.purchase_date))
        .bind(day(o.screen_check_by))
        .bind(ms(o.otp_verified_at))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Another pending order on this IMEI (the partial unique index).
            return Ok(BotOrderOutcome::ImeiTaken);
        }
        let mut audit = audit.clone();
        if audit.actor_id.is_none() {
            audit.actor_id = Some(customer.id);
            audit.actor_role = Some(Role::Customer);
        }
        audit.resource_id = Some(id);
        super::audit::append(&mut tx, now, &audit).await?;
        tx.commit().await?;
        Ok(BotOrderOutcome::Placed(customer.id))
    }

    /// The bot orders placed for a phone, oldest first.
    pub async fn bot_orders_for_phone(
        &self,
        keys: &Keyring,
        phone: &PhoneNumber,
    ) -> Result<Vec<BotOrderRow>> {
        let rows = sqlx::query("SELECT * FROM bot_orders WHERE phone_index = $1 ORDER BY id")
            .bind(blind(keys, index::PHONE, phone.as_str()))
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = get(r, "id")?;
                let c = RowCipher::open(keys, "bot_orders", &id, get(r, "dek")?)?;
                let money = |col: &str| -> Result<Money> {
                    Money::from_paise(get(r, col)?).map_err(corrupt)
                };
                Ok(BotOrderRow {
                    reference: get(r, "reference")?,
                    status: get(r, "status")?,
                    channel: get(r, "channel")?,
                    customer_id: parse(r, "customer_id")?,
                    phone: PhoneNumber::parse(
                        &c.open_str("phone", &get::<Vec<u8>>(r, "phone_enc")?)?,
                    )
                    .map_err(corrupt)?,
                    name: c.open_str("name", &get::<Vec<u8>>(r, "name_enc")?)?,
                    imei: Imei::parse(&c.open_str("imei", &get::<Vec<u8>>(r, "imei_enc")?)?)
                        .map_err(corrupt)?,
                    plan_id: get(r, "plan_id")?,
                    brand: get(r, "brand")?,
                    model: get(r, "model")?,
                    device_price: money("device_price")?,
                    premium: money("premium")?,
                    screen_check_by: from_day(&get::<String>(r, "screen_check_by")?)?,
                    otp_verified_at: from_ms(get(r, "otp_verified_at")?)?,
                    created_at: from_ms(get(r, "created_at")?)?,
                })
            })
            .collect()
    }

    /// How many bot orders exist (for tests and the bench).
    pub async fn bot_order_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM bot_orders")
            .fetch_one(self.reader())
            .await?)
    }

    /// Records a call-back request and its audit entry.
    pub async fn record_bot_callback(
        &self,
        keys: &Keyring,
        phone: &PhoneNumber,
        reason: &str,
        language: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<()> {
        let id = uuid::Uuid::now_v7().to_string();
        let (c, dek) = RowCipher::create(keys, "bot_callbacks", &id)?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO bot_callbacks (id, phone_index, dek, phone_enc, reason, language, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.clone())
        .bind(blind(keys, index::PHONE, phone.as_str()))
        .bind(dek)
        .bind(c.seal("phone", phone.as_str()))
        .bind(reason.chars().take(200).collect::<String>())
        .bind(language.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.resource_id = Some(id);
        super::audit::append(&mut tx, now, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Call-back requests not yet done (for tests and operators).
    pub async fn open_bot_callbacks(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM bot_callbacks WHERE done_at IS NULL")
                .fetch_one(self.reader())
                .await?,
        )
    }

    /// Whether an inbound SMS id was handled already.
    pub async fn bot_sms_seen(&self, message_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bot_sms_seen WHERE message_id = $1")
            .bind(message_id.to_string())
            .fetch_one(self.reader())
            .await?;
        Ok(n > 0)
    }
}
