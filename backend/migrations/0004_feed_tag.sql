-- Glassguard schema, version 4: each feed position carries a random tag, and
-- a pull cursor names the tag of its position. A database restored from a
-- backup reuses positions for new changes; a cursor from before the restore
-- then names a tag the position no longer has, and the device resyncs
-- instead of skipping the changes it never saw.
ALTER TABLE changes ADD COLUMN tag BIGINT NOT NULL DEFAULT 0;
