/* A CRL as staplerd uses it, pure: parsed and verified (crl_parse_verify()), its revoked
 * serials (crl_listed()), and what a staple it lists becomes (crl_decide()). */
#ifndef STAPLER_CRL_LIST_H
#define STAPLER_CRL_LIST_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "stapler/types.h"

/* A CRL's thisUpdate may be this far ahead of the clock (seconds), as for OCSP. */
#define CRL_SKEW 300
/* One revoked serial: its magnitude, as in struct stapler_key. */
struct crl_serial {
	unsigned char len, negative;
	unsigned char b[STAPLER_SERIAL_MAX];
};

/* A verified CRL: its dates and its revoked serials, sorted (crl_listed()). */
struct crl_list {
	time_t this_update, next_update;
	size_t n;
	struct crl_serial *serials;
};
void crl_list_clear(struct crl_list *l);

/* Parses der (exactly one DER CertificateList, at most max bytes) and checks it the way an
 * OCSP response is checked (pure: no I/O, now injected): issued by issuer (its name) and
 * signed with issuer's key (an issuer with keyUsage lacks cRLSign is refused), not a delta
 * CRL and not an indirect one, thisUpdate at most CRL_SKEW after now, nextUpdate present and
 * after thisUpdate and after now. Returns 0 and fills *out (crl_list_clear()), or -1 with why
 * set to one readable sentence. */
int crl_parse_verify(const unsigned char *der, size_t len, size_t max, X509 *issuer, time_t now,
    struct crl_list *out, char *why, size_t whylen);
/* 1 when key's serial is in l. */
int crl_listed(const struct crl_list *l, const struct stapler_key *key);

/* What a staple held for a serial a CRL lists becomes (pure). */
enum crl_verdict {
	CRL_KEEP = 0,        /* not listed, or held revoked: nothing to do */
	CRL_WITHDRAW,        /* held good/unknown from before the CRL: withdrawn */
	CRL_DISAGREE,        /* held good/unknown from after the CRL: served (OCSP is newer), told */
};
enum crl_verdict crl_decide(int listed, enum stapler_cert_status status, time_t staple_this_update,
    time_t crl_this_update);

#endif
