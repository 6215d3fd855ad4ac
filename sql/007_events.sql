-- Events and CRLs (issue 20): the outbox of pushed events, each webhook's delivery cursor, and
-- the CRL held per issuer. New tables only, so this applies after any rebuild of ocsp_response.
--
-- event_outbox: one row per event, written in the same transaction as the change that caused
-- it (a revocation's row, a CRL's row) or on its own (an upstream failing). id is stable and
-- unique (derived from what the event is about, so raising it again is a no-op); seq is the
-- order of delivery.
CREATE TABLE event_outbox (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,          -- the CloudEvents id: hex, stable across retries and restarts
	type TEXT NOT NULL,               -- stable name: cert_revoked, cert_withdrawn, ... (events.h)
	subject TEXT NOT NULL,            -- the certificate (ISSUER_KEY_HASH/SERIAL) or upstream it is about
	time INTEGER NOT NULL,            -- when it happened, Unix seconds UTC
	revocation INTEGER NOT NULL DEFAULT 0,  -- 1: a revocation or withdrawal, never dropped
	data TEXT NOT NULL,               -- the CloudEvents data member, a JSON object
	delivered_at INTEGER              -- when every webhook had it; NULL until then
);

-- How far each webhook (by URL) has acknowledged the outbox, in seq order.
CREATE TABLE event_cursor (
	name TEXT PRIMARY KEY,
	seq INTEGER NOT NULL
);

-- The newest verified CRL of each issuer: restarts withdraw what it lists without waiting for
-- a download, and conditional requests reuse its validators.
CREATE TABLE crl (
	issuer_name_hash TEXT NOT NULL,   -- SHA-1 of the issuer's subject name, uppercase hex
	issuer_key_hash TEXT NOT NULL,    -- SHA-1 of the issuer's public key, uppercase hex
	url TEXT NOT NULL,                -- where it came from
	this_update INTEGER NOT NULL,
	next_update INTEGER NOT NULL,
	etag TEXT,                        -- the server's validators, verbatim (NULL: none)
	last_modified TEXT,
	fetched_at INTEGER NOT NULL,
	crl_der BLOB NOT NULL,
	PRIMARY KEY (issuer_name_hash, issuer_key_hash)
);
