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

/* RFC 5019 GET URL: base, a '/' unless base ends with one, then the URL-encoded base64 of der.
 * Returns a new string (free()) when it is at most OCSP_GET_MAX bytes, else NULL (use POST). */
char *ocsp_get_url(const char *base, const unsigned char *der, size_t len);

/* Verifies a DER OCSPResponse for id (PRODUCT.md §8.1): responseStatus successful; a basic
 * response signed by issuer, or by a responder certificate issued by issuer with
 * id-kp-OCSPSigning and valid at now; a SingleResponse for id; thisUpdate <= now + OCSP_SKEW;
 * nextUpdate present and > now. Fills *res (times, status) and returns OCSP_OK, or another
 * verdict with res->detail set. Does no I/O and reads no clock. */
enum ocsp_verdict ocsp_verify(const unsigned char *der, size_t len, const OCSP_CERTID *id,
    X509 *issuer, time_t now, struct ocsp_result *res);

#endif
