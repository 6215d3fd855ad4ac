/* A CRL as staplerd uses it, pure (no I/O, time injected): parsed and verified like an OCSP
 * response, its revoked serials sorted for lookup, and what a staple it lists becomes. The
 * poller (crl.c) fetches; the staple service (staple.c) asks. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "crl_list.h"
#include "log.h"
#include "util.h"

void
crl_list_clear(struct crl_list *l)
{
	free(l->serials);
	memset(l, 0, sizeof(*l));
}

static int
serial_cmp(const void *a, const void *b)
{
	const struct crl_serial *x = a, *y = b;

	if (x->negative != y->negative)
		return x->negative - y->negative;
	if (x->len != y->len)
		return x->len - y->len;
	return memcmp(x->b, y->b, x->len);
}

/* The magnitude of an ASN.1 INTEGER as a key holds it (no leading zero octets). */
static int
serial_of(const ASN1_INTEGER *ai, struct crl_serial *out)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	int n, ret = -1;

	memset(out, 0, sizeof(*out));
	if (bn == NULL)
		return -1;
	n = BN_num_bytes(bn);
	if (n <= STAPLER_SERIAL_MAX) {
		out->len = (unsigned char)n;
		out->negative = BN_is_negative(bn) ? 1 : 0;
		BN_bn2bin(bn, out->b);
		ret = 0;
	}
	BN_free(bn);
	return ret;
}

int
crl_parse_verify(const unsigned char *der, size_t len, size_t max, X509 *issuer, time_t now,
    struct crl_list *out, char *why, size_t whylen)
{
	const unsigned char *p = der;
	STACK_OF(X509_REVOKED) *revoked;
	X509_CRL *crl = NULL;
	EVP_PKEY *key;
	time_t tu, nu;
	int ret = -1, crit = -1;
	void *ext;

	memset(out, 0, sizeof(*out));
	if (len > max) {
		snprintf(why, whylen, "larger than [crl] max_size (%zu > %zu bytes)", len, max);
		return -1;
	}
	if (len > LONG_MAX || (crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		snprintf(why, whylen, "not one DER CertificateList");
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
		snprintf(why, whylen, "issued by another CA than the certificates' issuer");
		goto out;
	}
	/* An issuer that states its key usage must allow CRL signing. */
	if ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) != 0 &&
	    (X509_get_key_usage(issuer) & KU_CRL_SIGN) == 0) {
		snprintf(why, whylen, "the issuer's keyUsage lacks cRLSign");
		goto out;
	}
	if ((key = X509_get0_pubkey(issuer)) == NULL || X509_CRL_verify(crl, key) != 1) {
		snprintf(why, whylen, "bad signature (not signed by the issuer's key)");
		goto out;
	}
	if ((ext = X509_CRL_get_ext_d2i(crl, NID_delta_crl, &crit, NULL)) != NULL || crit != -1) {
		ASN1_INTEGER_free(ext);
		snprintf(why, whylen, "a delta CRL (not supported: only complete CRLs are used)");
		goto out;
	}
	crit = -1;
	if ((ext = X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL)) != NULL) {
		int indirect = ((ISSUING_DIST_POINT *)ext)->indirectCRL;

		ISSUING_DIST_POINT_free(ext);
		if (indirect) {
			snprintf(why, whylen, "an indirect CRL (not supported)");
			goto out;
		}
	}
	if (util_asn1_time(X509_CRL_get0_lastUpdate(crl), &tu) < 0) {
		snprintf(why, whylen, "thisUpdate unreadable");
		goto out;
	}
	if (X509_CRL_get0_nextUpdate(crl) == NULL ||
	    util_asn1_time(X509_CRL_get0_nextUpdate(crl), &nu) < 0) {
		snprintf(why, whylen, "no nextUpdate");
		goto out;
	}
	if (tu > now + CRL_SKEW) {
		snprintf(why, whylen, "thisUpdate %lld s in the future", (long long)(tu - now));
		goto out;
	}
	if (nu <= tu || nu <= now) {
		snprintf(why, whylen, "expired (nextUpdate %lld s ago)", (long long)(now - nu));
		goto out;
	}
	revoked = X509_CRL_get_REVOKED(crl);
	out->this_update = tu;
	out->next_update = nu;
	if (sk_X509_REVOKED_num(revoked) > 0 && (out->serials = calloc(
	    (size_t)sk_X509_REVOKED_num(revoked), sizeof(*out->serials))) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_REVOKED_num(revoked); i++) {
		const X509_REVOKED *r = sk_X509_REVOKED_value(revoked, i);

		/* A serial longer than any key can hold names no staple held. */
		if (serial_of(X509_REVOKED_get0_serialNumber(r), &out->serials[out->n]) == 0)
			out->n++;
	}
	if (out->n > 1)
		qsort(out->serials, out->n, sizeof(*out->serials), serial_cmp);
	ret = 0;
out:
	if (ret < 0)
		crl_list_clear(out);
	X509_CRL_free(crl);
	return ret;
}

int
crl_listed(const struct crl_list *l, const struct stapler_key *key)
{
	struct crl_serial s;

	if (l->n == 0)
		return 0;
	memset(&s, 0, sizeof(s));
	s.len = key->serial_len;
	s.negative = key->serial_negative;
	memcpy(s.b, key->serial, key->serial_len <= STAPLER_SERIAL_MAX ? key->serial_len : 0);
	return bsearch(&s, l->serials, l->n, sizeof(s), serial_cmp) != NULL;
}

enum crl_verdict
crl_decide(int listed, enum stapler_cert_status status, time_t staple_this_update,
    time_t crl_this_update)
{
	if (!listed || status == STAPLER_REVOKED)
		return CRL_KEEP;
	return staple_this_update < crl_this_update ? CRL_WITHDRAW : CRL_DISAGREE;
}

/* One issuer followed. */
