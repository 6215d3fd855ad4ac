-- Schema version 6: the key is the CertID as encoded, and SHA-384 and SHA-512 CertIDs.
--
-- * ocsp_response gains hash_params ('null' or 'absent'): how the CertID's hash
--   AlgorithmIdentifier encodes its parameters. `openssl ocsp` sends NULL parameters, Bouncy
--   Castle (as RFC 5754 says) leaves them absent; a CA signs the CertID it was sent byte for
--   byte, so the two are two CertIDs and two rows, and the UNIQUE constraint takes it in.
-- * hash_alg may also be 'sha384' or 'sha512'.
--
-- SQLite changes a CHECK or UNIQUE constraint only by rebuilding the table (as in
-- 003_certid.sql; cache.c runs migrations with foreign keys off, in one transaction). An
-- existing row's encoding is read from the request it was fetched with (request_der, the one
-- a refresh re-sends): its CertID's AlgorithmIdentifier without parameters is
-- 30 07 06 05 <SHA-1 OID> or 30 0B 06 09 <SHA-256 OID>; any other row is 'null'.

CREATE TABLE ocsp_response_v6 (
	id INTEGER PRIMARY KEY,           -- rowid; warm start reads in this order
	hash_alg TEXT NOT NULL DEFAULT 'sha1'
	    CHECK (hash_alg IN ('sha1', 'sha256', 'sha384', 'sha512')),  -- CertID hashAlgorithm
	hash_params TEXT NOT NULL DEFAULT 'null'
	    CHECK (hash_params IN ('null', 'absent')),  -- its parameters: NULL (05 00) or absent
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
	request_der BLOB NOT NULL,        -- the DER OCSPRequest a refresh re-sends: its CertID is
	                                  -- the row's, byte for byte
	next_refresh_at INTEGER NOT NULL DEFAULT 0,  -- scheduler: when to fetch again (0 = now)
	failures INTEGER NOT NULL DEFAULT 0,         -- scheduler: consecutive failed refreshes (backoff)
	last_error TEXT,                  -- scheduler: why the last refresh failed; NULL after success
	created_at INTEGER NOT NULL,      -- first stored; kept across replacements
	used_at INTEGER NOT NULL DEFAULT 0,  -- last asked for, as of the row's last write
	upstream_etag TEXT,               -- the upstream's ETag for response_der, verbatim
	upstream_last_modified TEXT,      -- the upstream's Last-Modified for response_der, verbatim
	FOREIGN KEY (issuer_name_hash, issuer_key_hash) REFERENCES issuer (name_hash, key_hash),
	-- The whole CertID as encoded: never the serial alone (two CAs can issue the same
	-- serial), never the key hash alone (two CAs can share a key), one response per hash
	-- algorithm and parameters' encoding (a response echoes the CertID it was asked for).
	UNIQUE (hash_alg, hash_params, issuer_name_hash, issuer_key_hash, serial)
);

INSERT INTO ocsp_response_v6 (id, hash_alg, hash_params, serial, issuer_name_hash,
	issuer_key_hash, subject, ocsp_url, ocsp_urls, cert_status, revoked_at, revocation_reason,
	this_update, next_update, produced_at, fetched_at, cert_not_after, response_der,
	request_der, next_refresh_at, failures, last_error, created_at, used_at, upstream_etag,
	upstream_last_modified)
	SELECT id, hash_alg,
	    CASE WHEN (hash_alg = 'sha1' AND instr(request_der, X'300706052B0E03021A') > 0)
	        OR (hash_alg = 'sha256' AND instr(request_der, X'300B0609608648016503040201') > 0)
	        THEN 'absent' ELSE 'null' END,
	    serial, issuer_name_hash, issuer_key_hash, subject, ocsp_url, ocsp_urls, cert_status,
	    revoked_at, revocation_reason, this_update, next_update, produced_at, fetched_at,
	    cert_not_after, response_der, request_der, next_refresh_at, failures, last_error,
	    created_at, used_at, upstream_etag, upstream_last_modified
	FROM ocsp_response;

DROP TABLE ocsp_response;
ALTER TABLE ocsp_response_v6 RENAME TO ocsp_response;

-- The scheduler asks for due entries by this column on every tick.
CREATE INDEX ocsp_response_next_refresh_at ON ocsp_response (next_refresh_at);
-- The housekeeping purge finds rows of expired certificates by this column.
CREATE INDEX ocsp_response_cert_not_after ON ocsp_response (cert_not_after);
-- staplerctl show/evict/refresh SERIAL look a serial up across issuers and CertID forms.
CREATE INDEX ocsp_response_serial ON ocsp_response (serial);
