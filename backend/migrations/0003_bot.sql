-- Glassguard schema, version 3: the text bot (in-app chat and SMS).
-- Same conventions as 0001: BLOB_T and SERIAL_PK are replaced per dialect,
-- times are BIGINT ms, dates TEXT, money BIGINT paise, _enc columns are
-- sealed under the row's data key, _index columns are blind indexes.

-- One conversation per channel and sender (an SMS number, an in-app
-- session, a signed-in user). The state is JSON holding PII (name, IMEI,
-- phone), so it is sealed; the sender is found by its blind index.
-- A conversation silent for 15 minutes is started afresh on its next
-- message; rows silent for a day are deleted.
CREATE TABLE bot_conversations (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('app', 'sms')),
    sender_index BLOB_T NOT NULL,
    dek BLOB_T NOT NULL,
    state_enc BLOB_T NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX bot_conversations_sender ON bot_conversations(channel, sender_index);
CREATE INDEX bot_conversations_updated ON bot_conversations(updated_at);

-- Orders placed through the bot after the customer's OTP. Not policies
-- yet: each waits for a check of the screen (a photo in the app, or at a
-- partner shop) by screen_check_by, then becomes a policy. At most one
-- pending order per IMEI.
CREATE TABLE bot_orders (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending_screen_check', 'activated', 'lapsed', 'cancelled')),
    channel TEXT NOT NULL CHECK (channel IN ('app', 'sms')),
    customer_id TEXT NOT NULL REFERENCES users(id),
    plan_id TEXT NOT NULL,
    plan_terms TEXT NOT NULL,
    phone_index BLOB_T NOT NULL,
    imei_index BLOB_T NOT NULL,
    dek BLOB_T NOT NULL,
    phone_enc BLOB_T NOT NULL,
    name_enc BLOB_T NOT NULL,
    imei_enc BLOB_T NOT NULL,
    brand TEXT NOT NULL,
    model TEXT NOT NULL,
    device_price BIGINT NOT NULL,
    premium BIGINT NOT NULL,
    device_purchase_date TEXT NOT NULL,
    screen_check_by TEXT NOT NULL,
    otp_verified_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX bot_orders_pending_imei ON bot_orders(imei_index) WHERE status = 'pending_screen_check';
CREATE INDEX bot_orders_phone ON bot_orders(phone_index, created_at);
CREATE INDEX bot_orders_customer ON bot_orders(customer_id);

-- Call-backs the bot offered and the customer accepted.
CREATE TABLE bot_callbacks (
    id TEXT PRIMARY KEY,
    phone_index BLOB_T NOT NULL,
    dek BLOB_T NOT NULL,
    phone_enc BLOB_T NOT NULL,
    reason TEXT NOT NULL,
    language TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX bot_callbacks_open ON bot_callbacks(done_at, created_at);

-- Message ids of inbound SMS already handled: a gateway's retry of the
-- same message is answered once.
CREATE TABLE bot_sms_seen (
    message_id TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX bot_sms_seen_received ON bot_sms_seen(received_at);
