-- Sync, version 2: devices' applied mutations and the change feed.

-- One row per device: whose it is and the highest client_seq applied.
CREATE TABLE sync_devices (
    device_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    highest_seq BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- Every mutation a device pushed, with its result, written in the same
-- transaction as its effect: a replay gets this row back.
CREATE TABLE sync_mutations (
    device_id TEXT NOT NULL REFERENCES sync_devices(device_id),
    client_seq BIGINT NOT NULL,
    mutation_id TEXT NOT NULL,
    payload_hash BLOB_T NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    code TEXT,
    message TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, client_seq)
);
CREATE UNIQUE INDEX sync_mutations_id ON sync_mutations(device_id, mutation_id);

-- The change feed: one row per change to an entity, with the scope columns
-- that say who may see it. Appended in the same transaction as the change.
CREATE TABLE changes (
    seq SERIAL_PK,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    customer_id TEXT,
    partner_id TEXT,
    technician_id TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX changes_customer ON changes(customer_id, seq);
CREATE INDEX changes_partner ON changes(partner_id, seq);
CREATE INDEX changes_technician ON changes(technician_id, seq);

-- The feed's epoch: a cursor made against another database (restored or
-- reset) carries another epoch and is answered with a resync.
CREATE TABLE sync_epoch (
    epoch TEXT PRIMARY KEY
);
