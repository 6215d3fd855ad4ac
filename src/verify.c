/* Relying-party verification of a staple: ocsp_verify() over the certificate's CertID, after
 * checking that the issuer really issued it, plus an optional freshness bound. */
#include <string.h>

#include <openssl/x509v3.h>

#include "certs.h"
#include "ocsp.h"
#include "stapler/verify.h"

const char *
stapler_verify_code_name(enum stapler_verify_code code)
{
	switch (code) {
	case STAPLER_VERIFY_GOOD: return "good";
	case STAPLER_VERIFY_REVOKED: return "revoked";
	case STAPLER_VERIFY_UNKNOWN: return "unknown";
	case STAPLER_VERIFY_INVALID: return "invalid";
	case STAPLER_VERIFY_STALE: return "stale";
	}
	return "invalid";
}

/* 1 when issuer's name and key made cert. */
static int
issued_by(X509 *cert, X509 *issuer)
{
	EVP_PKEY *pk;

	if (X509_check_issued(issuer, cert) != X509_V_OK)
		return 0;
	if ((pk = X509_get0_pubkey(issuer)) == NULL)
		return 0;
	return X509_verify(cert, pk) == 1;
}

X509 *
stapler_verify_find_issuer(X509 *cert, STACK_OF(X509) *candidates)
{
	for (int i = 0; i < sk_X509_num(candidates); i++) {
		X509 *c = sk_X509_value(candidates, i);

		if (c != cert && issued_by(cert, c) && X509_up_ref(c))
			return c;
	}
	return NULL;
}

enum stapler_verify_code
stapler_verify_staple(const unsigned char *der, size_t len, X509 *cert, X509 *issuer,
    time_t now, long max_age, struct stapler_verify_result *out)
{
	struct ocsp_result r = { 0 };
	enum ocsp_verdict v;
	OCSP_CERTID *id = NULL;

	memset(out, 0, sizeof(*out));
	out->code = STAPLER_VERIFY_INVALID;
	out->status = STAPLER_UNKNOWN;
	out->revocation_reason = -1;
	if (der == NULL || cert == NULL || issuer == NULL) {
		snprintf(out->detail, sizeof(out->detail), "missing staple, certificate or issuer");
		goto out;
	}
	if (!issued_by(cert, issuer)) {
		snprintf(out->detail, sizeof(out->detail), "the issuer certificate did not issue "
		    "this certificate");
		goto out;
	}
	/* A staple answers the CertID it was fetched for: SHA-1 (the default), SHA-256, SHA-384
	 * or SHA-512, with the algorithm's parameters NULL or absent. OpenSSL finds the
	 * SingleResponse by algorithm and hashes whatever the parameters' encoding, so one try
	 * per algorithm covers both encodings. */
	v = OCSP_WRONG_CERTID;
	for (int alg = 0; alg < STAPLER_HASH_ALG_COUNT && v == OCSP_WRONG_CERTID; alg++) {
		OCSP_CERTID_free(id);
		if ((id = certs_certid(cert, issuer, (enum stapler_hash_alg)alg)) == NULL) {
			snprintf(out->detail, sizeof(out->detail), "cannot compute the OCSP CertID");
			goto out;
		}
		memset(&r, 0, sizeof(r));
		v = ocsp_verify(der, len, id, issuer, now, &r);
	}
	out->this_update = r.this_update;
	out->next_update = r.next_update;
	out->produced_at = r.produced_at;
	if (v == OCSP_EXPIRED) {
		/* What the stale response said, for the report; the code says it is stale. */
		out->status = r.status;
		out->code = STAPLER_VERIFY_STALE;
		snprintf(out->detail, sizeof(out->detail), "%s: %s", ocsp_verdict_name(v), r.detail);
		goto out;
	}
	if (v != OCSP_OK) {
		snprintf(out->detail, sizeof(out->detail), "%s: %s", ocsp_verdict_name(v), r.detail);
		goto out;
	}
	out->status = r.status;
	out->revocation_reason = r.revocation_reason;
	out->revoked_at = r.revoked_at;
	if (max_age > 0 && r.this_update < now - max_age) {
		out->code = STAPLER_VERIFY_STALE;
		snprintf(out->detail, sizeof(out->detail), "thisUpdate is %lld s old, more than "
		    "the maximum age of %ld s", (long long)(now - r.this_update), max_age);
		goto out;
	}
	out->code = r.status == STAPLER_GOOD ? STAPLER_VERIFY_GOOD :
	    r.status == STAPLER_REVOKED ? STAPLER_VERIFY_REVOKED : STAPLER_VERIFY_UNKNOWN;
out:
	OCSP_CERTID_free(id);
	return out->code;
}
