-- Schema version 1: cached OCSP responses and the issuers needed to verify their refreshes.
-- cache.c runs each file in its own transaction and sets PRAGMA user_version itself, so a
-- migration contains neither BEGIN/COMMIT nor PRAGMA user_version.

CREATE TABLE issuer (
	key_hash TEXT PRIMARY KEY,        -- uppercase hex SHA-1 of the CA public key (CertID issuerKeyHash)
	subject TEXT NOT NULL,            -- CA subject DN, for humans (staplerctl)
	cert_der BLOB NOT NULL,           -- the CA certificate: verifies responses fetched on refresh
	added_at INTEGER NOT NULL         -- when first seen, Unix seconds UTC
);

CREATE TABLE ocsp_response (
	id INTEGER PRIMARY KEY,           -- rowid; warm start reads in this order
	serial TEXT NOT NULL,             -- uppercase hex, as `openssl x509 -serial` prints it
	issuer_key_hash TEXT NOT NULL REFERENCES issuer(key_hash),  -- CertID issuerKeyHash
	issuer_name_hash TEXT NOT NULL,   -- CertID issuerNameHash, uppercase hex
	subject TEXT NOT NULL,            -- certificate subject DN, for humans
	ocsp_url TEXT NOT NULL,           -- URL the stored response came from
	ocsp_urls TEXT NOT NULL,          -- every AIA OCSP URL in order, '\n' separated (failover)
	cert_status TEXT NOT NULL CHECK (cert_status IN ('good', 'revoked', 'unknown')),
	revoked_at INTEGER,               -- revocationTime; NULL unless revoked
	revocation_reason INTEGER,        -- CRLReason code; NULL when absent
	this_update INTEGER NOT NULL,     -- thisUpdate, Unix seconds UTC
	next_update INTEGER NOT NULL,     -- nextUpdate: the staple is not served after this
	produced_at INTEGER NOT NULL,     -- producedAt of the response
	fetched_at INTEGER NOT NULL,      -- when staplerd received it
	cert_not_after INTEGER NOT NULL,  -- certificate expiry: no refresh past it
	response_der BLOB NOT NULL,       -- the DER OCSPResponse, exactly the bytes served
	request_der BLOB NOT NULL,        -- the DER OCSPRequest a refresh re-sends
	next_refresh_at INTEGER NOT NULL DEFAULT 0,  -- scheduler: when to fetch again (0 = now)
	failures INTEGER NOT NULL DEFAULT 0,         -- scheduler: consecutive failed refreshes (backoff)
	last_error TEXT,                  -- scheduler: why the last refresh failed; NULL after success
	created_at INTEGER NOT NULL,      -- first stored; kept across replacements
	UNIQUE (issuer_key_hash, serial)  -- never the serial alone: two CAs can issue the same serial
);

-- The scheduler asks for due entries by this column on every tick.
CREATE INDEX ocsp_response_next_refresh_at ON ocsp_response (next_refresh_at);
