/* Fuzz harness: OCSP responses from upstream responders (ocsp_verify) and staples checked by
 * a relying party (stapler_verify_staple), for the fixed leaf at a fixed time. Each response
 * that decodes is also signed again by the issuer and verified once more, so that the checks
 * after the signature (CertID, status, times) see mutated contents too. Every response also goes
 * through ocsp_verify_cached() with the issuer and its delegated responder already proven: the
 * fast path must agree with the full one. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>

#include "fuzzpki.h"
#include "ocsp.h"
#include "stapler/verify.h"

static OCSP_CERTID *leaf_id;
static struct ocsp_signers *signers;

/* The signers a daemon would have proven by now: the issuing CA and its delegated responder,
 * each from a good response it signed. */
static void
warm(void)
{
	const struct fuzz_pki *p = fuzz_pki();
	const struct testpki_ent *who[2] = { &p->ca, &p->responder };
	struct ocsp_result res;

	if (signers == NULL && (signers = ocsp_signers_new()) == NULL)
		abort();
	ocsp_signers_clear(signers);
	for (int i = 0; i < 2; i++) {
		struct testpki_resp_opts o = testpki_resp_good(p->leaf.cert, &p->ca, FUZZ_NOW);
		unsigned char *der;
		size_t len;

		o.signer = who[i];
		o.include_signer = 1;
		der = testpki_ocsp_response(&o, &len);
		fuzz_check(der != NULL && ocsp_verify_cached(der, len, leaf_id, p->ca.cert, FUZZ_NOW,
		    signers, &res) == OCSP_OK, "warm-up response refused");
		OPENSSL_free(der);
	}
}

static void
verify(const unsigned char *der, size_t len)
{
	const struct fuzz_pki *p = fuzz_pki();
	struct stapler_verify_result vr;
	struct ocsp_result res, cres;
	enum ocsp_verdict v, cv;

	v = ocsp_verify(der, len, leaf_id, p->ca.cert, FUZZ_NOW, &res);
	(void)ocsp_verdict_is_temporary(v);
	/* The fast path of proven signers gives the full path's verdict and result. */
	cv = ocsp_verify_cached(der, len, leaf_id, p->ca.cert, FUZZ_NOW, signers, &cres);
	fuzz_check(cv == v, "ocsp_verify_cached: another verdict than ocsp_verify");
	fuzz_check(cres.status == res.status && cres.this_update == res.this_update &&
	    cres.next_update == res.next_update && cres.produced_at == res.produced_at &&
	    cres.revoked_at == res.revoked_at && cres.revocation_reason == res.revocation_reason,
	    "ocsp_verify_cached: another result than ocsp_verify");
	(void)stapler_verify_staple(der, len, p->leaf.cert, p->ca.cert, FUZZ_NOW, 3600, &vr);
}

/* OpenSSL's getters are const; the harness signs the decoded structure in place. */
#define FUZZ_UNCONST(type, p) ((type *)(uintptr_t)(p))

/* The response with its tbsResponseData signed again by the issuer, responderID and times as
 * they were. Not OCSP_basic_sign(): it rewrites the responderID, and OpenSSL 3.0 frees a
 * byKey one as if it were a name. */
static void
resign(const unsigned char *der, size_t len)
{
	const struct fuzz_pki *p = fuzz_pki();
	const unsigned char *q = der;
	OCSP_RESPONSE *resp, *again = NULL;
	OCSP_BASICRESP *bs = NULL;
	unsigned char *out = NULL;
	int n;

	if ((resp = d2i_OCSP_RESPONSE(NULL, &q, (long)len)) == NULL ||
	    OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (bs = OCSP_response_get1_basic(resp)) == NULL)
		goto out;
	if (ASN1_item_sign(ASN1_ITEM_rptr(OCSP_RESPDATA),
	    FUZZ_UNCONST(X509_ALGOR, OCSP_resp_get0_tbs_sigalg(bs)), NULL,
	    FUZZ_UNCONST(ASN1_BIT_STRING, OCSP_resp_get0_signature(bs)),
	    FUZZ_UNCONST(void, OCSP_resp_get0_respdata(bs)), p->ca.key, EVP_sha256()) <= 0 ||
	    (again = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs)) == NULL ||
	    (n = i2d_OCSP_RESPONSE(again, &out)) <= 0)
		goto out;
	verify(out, (size_t)n);
out:
	OPENSSL_free(out);
	OCSP_RESPONSE_free(again);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (leaf_id == NULL && (leaf_id = certs_certid(fuzz_pki()->leaf.cert,
	    fuzz_pki()->ca.cert, STAPLER_HASH_SHA1)) == NULL)
		abort();
	if (signers == NULL)
		warm();
	verify(data, size);
	if (size > 0)
		resign(data, size);
	ERR_clear_error();
	return 0;
}
