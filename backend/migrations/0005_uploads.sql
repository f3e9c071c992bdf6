-- Glassguard schema, version 5: resumable uploads (tus 1.0) and the blobs
-- attached to claims, policies (sale photos) and jobs.
--
-- An upload's bytes stay in a staging file under the data directory until
-- the last one arrives; `upload_offset` is the truth about how many of them
-- the server has (the staging file is cut back to it before each append).
-- state: 'open' (receiving), 'complete' (verified and in the object store
-- at blobs/<sha256>), 'expired', 'terminated'.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    length BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX uploads_owner_blob ON uploads(owner_id, sha256, state);
CREATE INDEX uploads_expiry ON uploads(state, expires_at);

-- A blob recorded on its target, once per (kind, target, blob).
CREATE TABLE attachments (
    kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    length BIGINT NOT NULL,
    attached_by TEXT NOT NULL REFERENCES users(id),
    attached_at BIGINT NOT NULL,
    -- Photos: the device's 64-bit perceptual hash (16 hex digits), compared
    -- with other claims' photos to flag a photo used twice.
    phash TEXT,
    PRIMARY KEY (kind, target_id, sha256)
);
CREATE INDEX attachments_phash ON attachments(kind) WHERE phash IS NOT NULL;
