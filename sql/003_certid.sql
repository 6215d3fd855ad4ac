-- Schema version 3: a row is keyed by the whole CertID it answers, and AIA URL lists cannot be
-- split.
--
-- * ocsp_response gains hash_alg ('sha1' or 'sha256': the CertID's hash algorithm) and is
--   unique on (hash_alg, issuer_name_hash, issuer_key_hash, serial). issuer_name_hash and
--   issuer_key_hash stay the SHA-1 hashes of the issuer's subject name and public key whatever
--   hash_alg is: for one issuer they determine its SHA-256 hashes, so they name the issuer in
--   every row. Before, two CAs sharing a key under different names shared rows.
-- * issuer is keyed by (name_hash, key_hash), so those two CAs are two issuers.
-- * ocsp_urls holds netstrings ("LEN:URL," per URL, LEN its byte count), not '\n'-separated
--   text: a URL holding a newline once became two URLs.
--
-- SQLite changes a UNIQUE constraint or a primary key only by rebuilding the table: create the
-- new one, copy, drop the old, rename, recreate the indexes (cache.c runs migrations with
-- foreign keys off, in one transaction). Every existing row is a SHA-1 CertID.

CREATE TABLE issuer_v3 (
	name_hash TEXT NOT NULL,          -- uppercase hex SHA-1 of the CA subject name (CertID issuerNameHash)
	key_hash TEXT NOT NULL,           -- uppercase hex SHA-1 of the CA public key (CertID issuerKeyHash)
	subject TEXT NOT NULL,            -- CA subject DN, for humans (staplerctl)
	cert_der BLOB NOT NULL,           -- the CA certificate: verifies responses fetched on refresh
	added_at INTEGER NOT NULL,        -- when first seen, Unix seconds UTC
	PRIMARY KEY (name_hash, key_hash)
);

-- Version 2 knew an issuer by its key hash; its name hash is the one its rows carry.
INSERT INTO issuer_v3 (name_hash, key_hash, subject, cert_der, added_at)
	SELECT DISTINCT r.issuer_name_hash, i.key_hash, i.subject, i.cert_der, i.added_at
	FROM issuer i JOIN ocsp_response r ON r.issuer_key_hash = i.key_hash;

CREATE TABLE ocsp_response_v3 (
	id INTEGER PRIMARY KEY,           -- rowid; warm start reads in this order
	hash_alg TEXT NOT NULL DEFAULT 'sha1' CHECK (hash_alg IN ('sha1', 'sha256')),  -- CertID hashAlgorithm
	serial TEXT NOT NULL,             -- uppercase hex, as `openssl x509 -serial` prints it
	issuer_name_hash TEXT NOT NULL,   -- SHA-1 of the issuer's subject name, uppercase hex
	issuer_key_hash TEXT NOT NULL,    -- SHA-1 of the issuer's public key, uppercase hex
	subject TEXT NOT NULL,            -- certificate subject DN, for humans
	ocsp_url TEXT NOT NULL,           -- URL the stored response came from
	ocsp_urls TEXT NOT NULL,          -- every AIA OCSP URL in order, as netstrings "LEN:URL,"
	cert_status TEXT NOT NULL CHECK (cert_status IN ('good', 'revoked', 'unknown')),
	revoked_at INTEGER,               -- revocationTime; NULL unless revoked
	revocation_reason INTEGER,        -- CRLReason code; NULL when absent
	this_update INTEGER NOT NULL,     -- thisUpdate, Unix seconds UTC
	next_update INTEGER NOT NULL,     -- nextUpdate: the staple is not served after this
	produced_at INTEGER NOT NULL,     -- producedAt of the response
	fetched_at INTEGER NOT NULL,      -- when staplerd received it
	cert_not_after INTEGER NOT NULL,  -- certificate expiry: no refresh past it
	response_der BLOB NOT NULL,       -- the DER OCSPResponse, exactly the bytes served
	request_der BLOB NOT NULL,        -- the DER OCSPRequest a refresh re-sends (its CertID's algorithm)
	next_refresh_at INTEGER NOT NULL DEFAULT 0,  -- scheduler: when to fetch again (0 = now)
	failures INTEGER NOT NULL DEFAULT 0,         -- scheduler: consecutive failed refreshes (backoff)
	last_error TEXT,                  -- scheduler: why the last refresh failed; NULL after success
	created_at INTEGER NOT NULL,      -- first stored; kept across replacements
	FOREIGN KEY (issuer_name_hash, issuer_key_hash) REFERENCES issuer (name_hash, key_hash),
	-- The whole CertID: never the serial alone (two CAs can issue the same serial), never
	-- the key hash alone (two CAs can share a key), one response per hash algorithm (a
	-- response echoes the CertID it was asked for).
	UNIQUE (hash_alg, issuer_name_hash, issuer_key_hash, serial)
);

-- The '\n'-separated lists as netstrings, URL order kept.
CREATE TEMP TABLE url_lists_v3 AS
	WITH RECURSIVE split (id, pos, url, rest) AS (
		SELECT id, 0, NULL, ocsp_urls || char(10) FROM ocsp_response
		UNION ALL
		SELECT id, pos + 1, substr(rest, 1, instr(rest, char(10)) - 1),
		    substr(rest, instr(rest, char(10)) + 1)
		FROM split WHERE rest <> ''
	)
	SELECT id, group_concat(length(CAST(url AS BLOB)) || ':' || url || ',', '') AS list
	FROM (SELECT id, pos, url FROM split WHERE url IS NOT NULL AND url <> '' ORDER BY id, pos)
	GROUP BY id;

INSERT INTO ocsp_response_v3 (id, hash_alg, serial, issuer_name_hash, issuer_key_hash, subject,
	ocsp_url, ocsp_urls, cert_status, revoked_at, revocation_reason, this_update, next_update,
	produced_at, fetched_at, cert_not_after, response_der, request_der, next_refresh_at,
	failures, last_error, created_at)
	SELECT r.id, 'sha1', r.serial, r.issuer_name_hash, r.issuer_key_hash, r.subject,
	    r.ocsp_url, coalesce(u.list, ''), r.cert_status, r.revoked_at, r.revocation_reason,
	    r.this_update, r.next_update, r.produced_at, r.fetched_at, r.cert_not_after,
	    r.response_der, r.request_der, r.next_refresh_at, r.failures, r.last_error,
	    r.created_at
	FROM ocsp_response r LEFT JOIN url_lists_v3 u ON u.id = r.id;

DROP TABLE url_lists_v3;
DROP TABLE ocsp_response;
DROP TABLE issuer;
ALTER TABLE issuer_v3 RENAME TO issuer;
ALTER TABLE ocsp_response_v3 RENAME TO ocsp_response;

-- The scheduler asks for due entries by this column on every tick.
CREATE INDEX ocsp_response_next_refresh_at ON ocsp_response (next_refresh_at);
-- The housekeeping purge finds rows of expired certificates by this column.
CREATE INDEX ocsp_response_cert_not_after ON ocsp_response (cert_not_after);
-- staplerctl show/evict/refresh SERIAL look a serial up across issuers and algorithms.
CREATE INDEX ocsp_response_serial ON ocsp_response (serial);
