-- Glassguard schema, version 1. Written once for both databases: the store
-- replaces BLOB_T and SERIAL_PK with each dialect's spelling when it migrates.
-- Times are BIGINT milliseconds since the epoch (UTC); dates are TEXT
-- 'YYYY-MM-DD'; money is BIGINT paise; ids are UUIDv7 text.
-- Columns ending in _enc are AES-256-GCM ciphertexts under the row's data
-- key (`dek`, wrapped by the master key); columns ending in _index are blind
-- indexes (truncated HMAC) for lookups by value.

CREATE TABLE system_keys (
    purpose TEXT PRIMARY KEY,
    wrapped BLOB_T NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'suspended')),
    gstin_index BLOB_T NOT NULL UNIQUE,
    dek BLOB_T NOT NULL,
    legal_name_enc BLOB_T NOT NULL,
    gstin_enc BLOB_T NOT NULL,
    pan_enc BLOB_T NOT NULL,
    address_enc BLOB_T NOT NULL,
    contact_phone_enc BLOB_T NOT NULL,
    payout_enc BLOB_T NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('customer', 'partner_admin', 'partner_staff', 'technician', 'adjuster', 'admin')),
    phone_index BLOB_T NOT NULL UNIQUE,
    partner_id TEXT REFERENCES partners(id),
    service_centre TEXT,
    active BIGINT NOT NULL DEFAULT 1,
    dek BLOB_T NOT NULL,
    phone_enc BLOB_T NOT NULL,
    name_enc BLOB_T,
    email_enc BLOB_T,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_partner ON users(partner_id);
CREATE INDEX users_role ON users(role);

-- One row per OTP sent. The code is stored only as an HMAC.
CREATE TABLE otp_challenges (
    id TEXT PRIMARY KEY,
    phone_index BLOB_T NOT NULL,
    purpose TEXT NOT NULL,
    mac BLOB_T NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    consumed_at BIGINT
);
CREATE INDEX otp_challenges_phone ON otp_challenges(phone_index, created_at);

-- Failed OTP tries per phone over the account's lifetime; a new code does not reset it.
CREATE TABLE otp_accounts (
    phone_index BLOB_T PRIMARY KEY,
    failures BIGINT NOT NULL DEFAULT 0
);

-- A sign-in on one device: the family of its rotating refresh tokens.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    device_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    hash BLOB_T PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

CREATE TABLE access_tokens (
    hash BLOB_T PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_session ON access_tokens(session_id);

CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    certificate_number TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('active', 'cancelled', 'expired')),
    plan_id TEXT NOT NULL,
    plan_terms TEXT NOT NULL,
    partner_id TEXT REFERENCES partners(id),
    sold_by TEXT REFERENCES users(id),
    customer_id TEXT NOT NULL REFERENCES users(id),
    imei_index BLOB_T NOT NULL,
    dek BLOB_T NOT NULL,
    imei_enc BLOB_T NOT NULL,
    brand TEXT NOT NULL,
    model TEXT NOT NULL,
    device_price BIGINT NOT NULL,
    premium BIGINT NOT NULL,
    device_purchase_date TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    invoice_ref TEXT NOT NULL,
    screen_photo_ref TEXT NOT NULL,
    claims_used BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- One active policy per IMEI, enforced by the database itself.
CREATE UNIQUE INDEX policies_active_imei ON policies(imei_index) WHERE status = 'active';
CREATE INDEX policies_customer ON policies(customer_id);
CREATE INDEX policies_partner ON policies(partner_id, created_at);

CREATE TABLE commissions (
    id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners(id),
    policy_id TEXT NOT NULL UNIQUE REFERENCES policies(id),
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX commissions_partner ON commissions(partner_id, created_at);

CREATE TABLE claims (
    id TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL REFERENCES policies(id),
    customer_id TEXT NOT NULL REFERENCES users(id),
    partner_id TEXT REFERENCES partners(id),
    state TEXT NOT NULL,
    resolution TEXT,
    incident_at BIGINT NOT NULL,
    dek BLOB_T NOT NULL,
    narrative_enc BLOB_T NOT NULL,
    contact_phone_enc BLOB_T NOT NULL,
    photo_refs TEXT NOT NULL,
    technician_id TEXT REFERENCES users(id),
    reason TEXT,
    documents_requested TEXT NOT NULL,
    voucher_id TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX claims_customer ON claims(customer_id);
CREATE INDEX claims_policy ON claims(policy_id);
CREATE INDEX claims_technician ON claims(technician_id);
CREATE INDEX claims_state ON claims(state, created_at);

CREATE TABLE claim_events (
    id TEXT PRIMARY KEY,
    claim_id TEXT NOT NULL REFERENCES claims(id),
    at BIGINT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT,
    actor_role TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX claim_events_claim ON claim_events(claim_id, id);

CREATE TABLE claim_documents (
    id TEXT PRIMARY KEY,
    claim_id TEXT NOT NULL REFERENCES claims(id),
    kind TEXT NOT NULL,
    object_ref TEXT NOT NULL,
    uploaded_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX claim_documents_claim ON claim_documents(claim_id);

CREATE TABLE vouchers (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    claim_id TEXT NOT NULL UNIQUE REFERENCES claims(id),
    customer_id TEXT NOT NULL REFERENCES users(id),
    value BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    redeemed_at BIGINT,
    redeemed_by_partner TEXT REFERENCES partners(id),
    redeemed_by_user TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX vouchers_customer ON vouchers(customer_id);

-- The notification outbox: written in the same transaction as the change it
-- announces, drained by a worker. Recipient and text are encrypted.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    dek BLOB_T NOT NULL,
    to_enc BLOB_T NOT NULL,
    body_enc BLOB_T NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX notifications_due ON notifications(state, next_attempt_at);

-- What the dev SMS sender "sent", readable by admins.
CREATE TABLE sms_inbox (
    id TEXT PRIMARY KEY,
    dek BLOB_T NOT NULL,
    to_enc BLOB_T NOT NULL,
    body_enc BLOB_T NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every state change and every PII read. Appended through one function.
CREATE TABLE audit_log (
    seq SERIAL_PK,
    at BIGINT NOT NULL,
    actor_id TEXT,
    actor_role TEXT,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    request_id TEXT,
    ip TEXT
);
CREATE INDEX audit_log_resource ON audit_log(resource_id);
