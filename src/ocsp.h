/* OCSP with OpenSSL only: build requests, encode GET URLs, and verify responses (pure: no I/O,
 * no clock; the caller passes now). */
#ifndef STAPLER_OCSP_H
#define STAPLER_OCSP_H

#include <stddef.h>
#include <time.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "stapler/types.h"

/* RFC 5019 §5: requests whose GET URL fits in 255 bytes go by GET. */
#define OCSP_GET_MAX 255
/* Tolerated clock skew for thisUpdate in the future (seconds). */
#define OCSP_SKEW 300

/* Why a response was refused. Temporary verdicts are retried with backoff; the others flag the
 * upstream answer as wrong. */
enum ocsp_verdict {
	OCSP_OK = 0,
	OCSP_TRY_LATER,        /* responseStatus tryLater or internalError (temporary) */
	OCSP_MALFORMED,        /* not a DER OCSPResponse, trailing bytes, not a basic response */
	OCSP_REFUSED,          /* malformedRequest, sigRequired, unauthorized */
	OCSP_BAD_SIGNATURE,    /* signature does not verify with the signer's key */
	OCSP_BAD_SIGNER,       /* signer is neither the issuer nor a delegate it certified for OCSPSigning */
	OCSP_WRONG_CERTID,     /* no SingleResponse for the CertID asked for */
	OCSP_NOT_YET_VALID,    /* thisUpdate later than now + OCSP_SKEW */
	OCSP_EXPIRED,          /* nextUpdate not after now */
	OCSP_NO_NEXT_UPDATE,   /* nextUpdate absent: nothing tells how long it is good */
};
#define OCSP_VERDICTS (OCSP_NO_NEXT_UPDATE + 1)

/* What a verified response says about the certificate. */
struct ocsp_result {
	enum stapler_cert_status status;
	int revocation_reason;   /* -1 when none given */
	time_t revoked_at;       /* 0 unless revoked */
	time_t this_update;
	time_t next_update;
	time_t produced_at;
	char detail[160];        /* human reason when the verdict is not OCSP_OK */
};

/* "ok", "try_later", "malformed", … (stable names, used in logs and last_error). */
const char *ocsp_verdict_name(enum ocsp_verdict v);
/* 1 for verdicts worth retrying soon (tryLater/internalError), else 0. */
int ocsp_verdict_is_temporary(enum ocsp_verdict v);

/* Builds a DER OCSPRequest for id alone, without nonce or signature. Returns 0 with a new
 * buffer in *der (OPENSSL_free) or -1. */
int ocsp_request_build(const OCSP_CERTID *id, unsigned char **der, size_t *len);

/* The CertID of a DER request holding exactly one; returns a new OCSP_CERTID or NULL. */
OCSP_CERTID *ocsp_request_certid(const unsigned char *der, size_t len);

/* Why a client's request cannot be answered (all are malformedRequest on the wire). */
enum ocsp_request_error {
	OCSP_REQ_OK = 0,
	OCSP_REQ_JUNK,        /* not a DER OCSPRequest, or trailing bytes */
	OCSP_REQ_NO_ID,       /* an empty requestList */
	OCSP_REQ_MANY_IDS,    /* more than one CertID (RFC 5019 §2.1.1: one per request) */
	OCSP_REQ_CRITICAL_EXT, /* a critical extension other than the nonce, in requestExtensions
	                        * or singleRequestExtensions (RFC 6960 §4.1.2) */
};

/* "ok", "junk", "no_certid", "several_certids", "critical_extension". */
const char *ocsp_request_error_name(enum ocsp_request_error e);

/* Decodes a client's DER OCSPRequest. On OCSP_REQ_OK *id is a new copy of its one CertID
 * (OCSP_CERTID_free) and *has_nonce says whether it asked for a nonce (which a cached
 * response cannot echo, so callers ignore it); otherwise *id is NULL. has_nonce may be NULL.
 * Signatures and non-critical extensions are ignored; a critical one other than the nonce
 * is OCSP_REQ_CRITICAL_EXT. */
enum ocsp_request_error ocsp_request_decode(const unsigned char *der, size_t len,
    OCSP_CERTID **id, int *has_nonce);

/* The one CertID of a request in the lightweight shape, as slices of the request's bytes. */
struct ocsp_certid_view {
	const unsigned char *certid;         /* the whole CertID, DER, certid_len bytes */
	size_t certid_len;
	enum stapler_hash_alg alg;           /* SHA-1, SHA-256, SHA-384 or SHA-512 */
	enum stapler_hash_params params;     /* the AlgorithmIdentifier's parameters: NULL or
	                                      * absent (part of the key) */
	const unsigned char *name_hash;      /* issuerNameHash, hash_len bytes */
	const unsigned char *key_hash;       /* issuerKeyHash, hash_len bytes */
	size_t hash_len;
	const unsigned char *serial;         /* the serial's magnitude, serial_len (1 to */
	size_t serial_len;                   /* STAPLER_SERIAL_MAX) bytes */
};

/* Reads a DER OCSPRequest of RFC 9919's lightweight shape without OpenSSL and without
 * allocating: no version, requestor name or signature, exactly one Request, a SHA-1, SHA-256,
 * SHA-384 or SHA-512 CertID with NULL or absent parameters and a positive serial in shortest form,
 * extensions only non-critical ones or the nonce (ignored). Returns 0 with *v pointing into
 * der, or -1 for anything else, which ocsp_request_decode() then judges: a request this
 * reader takes is one that decoder accepts with the same CertID (fuzz_ocsp_request checks
 * it), never the other way round. */
int ocsp_request_read(const unsigned char *der, size_t len, struct ocsp_certid_view *v);

/* Decodes the request part of an RFC 5019 GET path (what follows "/ocsp/", still URL
 * encoded). Tolerates what real clients and proxies produce: %-escapes in any case, '+'
 * decoded to a space, the extra leading '/' of a doubled slash, URL-safe base64 and missing
 * padding. Returns a new buffer (free()) and its length in *len, or NULL when it is not
 * base64 or would decode to more than max bytes. */
unsigned char *ocsp_get_decode(const char *path, size_t max, size_t *len);
/* The same without allocating, for requests of at most OCSP_GET_DECODE_INTO_MAX bytes (and
 * at most cap): the DER goes into out. Returns 0 with *len, or -1 (not base64, or longer). */
#define OCSP_GET_DECODE_INTO_MAX 1024
int ocsp_get_decode_into(const char *path, unsigned char *out, size_t cap, size_t *len);

/* DER of an unsigned OCSPResponse holding only status (RFC 6960 §2.3: malformedRequest,
 * internalError, tryLater, sigRequired, unauthorized). Returns 0 with a new buffer in *der
 * (OPENSSL_free) or -1. */
int ocsp_response_status_build(int status, unsigned char **der, size_t *len);

/* RFC 5019 GET URL: base, a '/' unless base ends with one, then the URL-encoded base64 of der.
 * Returns a new string (free()) when it is at most OCSP_GET_MAX bytes, else NULL (use POST). */
char *ocsp_get_url(const char *base, const unsigned char *der, size_t len);

/* Verifies a DER OCSPResponse for id (docs/contract.md §8.1): responseStatus successful; a basic
 * response signed by issuer, or by a responder certificate issued by issuer with
 * id-kp-OCSPSigning and valid at now; a SingleResponse for id; thisUpdate <= now + OCSP_SKEW;
 * nextUpdate present and > now. Fills *res (times, status) and returns OCSP_OK, or another
 * verdict with res->detail set; once the SingleResponse is found, res->status says what it
 * claims even when the times refuse it (EXPIRED, NOT_YET_VALID): only OCSP_OK makes it true.
 * Does no I/O and reads no clock. */
enum ocsp_verdict ocsp_verify(const unsigned char *der, size_t len, const OCSP_CERTID *id,
    X509 *issuer, time_t now, struct ocsp_result *res);

/* Responder certificates that a full verification proved for their issuers (the issuer
 * itself, or a delegate it certified for OCSPSigning), kept with both certificates' validity,
 * so that the next response one of them signs is decoded without the certificates it carries
 * and checked with one signature verification (docs/contract.md §10: no repeated signature work).
 * At most OCSP_SIGNERS_MAX; full, it starts over. Clear it when the trust anchors change. */
#define OCSP_SIGNERS_MAX 256
struct ocsp_signers;
/* Returns a new empty set, or NULL; free with ocsp_signers_free() (NULL is fine). */
struct ocsp_signers *ocsp_signers_new(void);
void ocsp_signers_clear(struct ocsp_signers *s);
void ocsp_signers_free(struct ocsp_signers **s);
/* Verifications answered by a proven signer, and the others, since the start. */
void ocsp_signers_stats(const struct ocsp_signers *s, unsigned long long *hits,
    unsigned long long *misses);

/* ocsp_verify() with a set of proven signers (NULL: none). A response whose signer is not in
 * the set, or that the fast path does not accept, is verified in full, and a signer proven so
 * joins the set. The verdict is the same either way: the fast path only accepts a response
 * that the full path would accept for id, issuer and now. */
enum ocsp_verdict ocsp_verify_cached(const unsigned char *der, size_t len,
    const OCSP_CERTID *id, X509 *issuer, time_t now, struct ocsp_signers *signers,
    struct ocsp_result *res);

#endif
