-- Schema version 4: when an entry was last asked for, so that entries nobody asks for any more
-- stop being refreshed and are removed ([cache] unused_ttl). Written with the row (at every
-- refresh), not on every hit: the daemon keeps the exact time in memory. A row from before
-- counts as asked for when it was last fetched.
ALTER TABLE ocsp_response ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;  -- Unix seconds UTC
UPDATE ocsp_response SET used_at = fetched_at;
