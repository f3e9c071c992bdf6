-- The audit log becomes a hash chain: hash_n = SHA-256(hash_{n-1} || canonical_n)
-- (see backend/src/store/audit.rs). Rows written before this migration are
-- chained by the store right after it (`audit::chain_existing`).
ALTER TABLE audit_log ADD COLUMN traceparent TEXT;
ALTER TABLE audit_log ADD COLUMN prev_hash BLOB_T;
ALTER TABLE audit_log ADD COLUMN hash BLOB_T;
CREATE INDEX audit_log_resource_type ON audit_log(resource_type, resource_id);

-- The chain's head: one row, locked by every append (on PostgreSQL the
-- UPDATE takes a row lock held to commit, so appends are serialized; SQLite
-- has one writer anyway).
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BLOB_T NOT NULL
);
