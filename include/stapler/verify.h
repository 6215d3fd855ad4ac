/* Verifying a stapled OCSP response the way a relying party (a DLMS server) does: offline,
 * from the certificate, its issuer and the staple alone. Part of libstapler; see
 * docs/verify-api.md. Pure: no I/O, no clock (the caller passes now). */
#ifndef STAPLER_VERIFY_H
#define STAPLER_VERIFY_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "stapler/types.h"

/* The verdict, in the order of staplerctl verify's exit codes: only GOOD accepts the peer. */
enum stapler_verify_code {
	STAPLER_VERIFY_GOOD = 0,     /* valid, fresh, status good */
	STAPLER_VERIFY_REVOKED = 1,  /* valid and fresh, status revoked */
	STAPLER_VERIFY_UNKNOWN = 2,  /* valid and fresh, status unknown */
	STAPLER_VERIFY_INVALID = 3,  /* not a valid response for this certificate (see detail) */
	STAPLER_VERIFY_STALE = 4,    /* valid but thisUpdate older than max_age, or expired */
};

struct stapler_verify_result {
	enum stapler_verify_code code;
	enum stapler_cert_status status;   /* meaningful for GOOD, REVOKED, UNKNOWN and STALE */
	int revocation_reason;             /* CRLReason, -1 when none */
	time_t revoked_at;                 /* 0 unless revoked */
	time_t this_update, next_update, produced_at;
	char detail[256];                  /* why, when the code is INVALID or STALE */
};

/* Checks a DER OCSP response (the staple) for cert issued by issuer at time now: responseStatus
 * successful; signed by issuer or by a responder it certified for id-kp-OCSPSigning; a
 * SingleResponse for cert's CertID; thisUpdate not in the future (small skew allowed);
 * nextUpdate present and after now; and, when max_age > 0, thisUpdate no older than max_age
 * seconds. issuer must have issued cert (name and signature). Fills *out and returns its
 * code. Never takes ownership of anything. */
enum stapler_verify_code stapler_verify_staple(const unsigned char *der, size_t len, X509 *cert,
    X509 *issuer, time_t now, long max_age, struct stapler_verify_result *out);

/* The certificate among candidates that issued cert (subject name and signature), or NULL.
 * Returns a new reference (X509_free). */
X509 *stapler_verify_find_issuer(X509 *cert, STACK_OF(X509) *candidates);

/* "good", "revoked", "unknown", "invalid", "stale". */
const char *stapler_verify_code_name(enum stapler_verify_code code);

#endif
