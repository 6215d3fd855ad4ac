/* Unit tests for ocsp.c: the response verifier at an injected time, requests, GET URLs. */
#define _GNU_SOURCE   /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>

#include "certs.h"
#include "ocsp.h"
#include "testpki.h"

#define DAY 86400L

/* The fixture: a CA (the issuer) and its leaf, at an injected now a month ahead of the real
 * clock (so a check that read the clock would see different validity). */
struct fx {
	time_t now;
	struct testpki_ent ca;      /* issuer of the leaf, signs responses */
	struct testpki_ent leaf;
	struct testpki_ent other;   /* an unrelated CA */
	OCSP_CERTID *id;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct testpki_cert_opts co = { .cn = "OCSP Test CA", .ca = 1, .not_before = -365 * DAY,
		.not_after = 365 * DAY };

	assert_non_null(f);
	f->now = time(NULL) + 30 * DAY;
	co.base = f->now;
	f->ca = testpki_cert(&co);
	f->leaf = testpki_leaf("Meter 0042", &f->ca, 0x42, "http://ocsp.example/", f->now);
	co.cn = "Unrelated CA";
	f->other = testpki_cert(&co);
	f->id = certs_certid(f->leaf.cert, f->ca.cert, STAPLER_HASH_SHA1);
	assert_non_null(f->id);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	OCSP_CERTID_free(f->id);
	testpki_ent_free(&f->ca);
	testpki_ent_free(&f->leaf);
	testpki_ent_free(&f->other);
	free(f);
	return 0;
}

/* A good response for the leaf, signed by its CA, valid now-1h..now+7d. */
static struct testpki_resp_opts
good_opts(const struct fx *f)
{
	struct testpki_resp_opts o = {
		.response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL,
		.subject = f->leaf.cert, .issuer = f->ca.cert,
		.cert_status = V_OCSP_CERTSTATUS_GOOD, .reason = -1,
		.this_update = f->now - 3600, .next_update = f->now + 7 * DAY,
		.signer = &f->ca,
	};

	return o;
}

static void
assert_same_result(const struct ocsp_result *a, const struct ocsp_result *b)
{
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->revocation_reason, b->revocation_reason);
	assert_int_equal(a->revoked_at, b->revoked_at);
	assert_int_equal(a->this_update, b->this_update);
	assert_int_equal(a->next_update, b->next_update);
	assert_int_equal(a->produced_at, b->produced_at);
}

/* The same response through ocsp_verify_cached(), with a set of signers that already proved
 * o's signer (a good response it signed, verified at the fixture's now), twice: the fast path
 * must give the full path's verdict and result. */
static void
expect_same_cached(const struct fx *f, const struct testpki_resp_opts *o,
    const unsigned char *der, size_t len, time_t now, enum ocsp_verdict want,
    const struct ocsp_result *wres)
{
	struct ocsp_signers *s = ocsp_signers_new();
	struct testpki_resp_opts warm = good_opts(f);
	struct ocsp_result r;
	unsigned char *wder;
	size_t wlen;

	assert_non_null(s);
	if (o->signer != NULL)
		warm.signer = o->signer;
	warm.include_signer = 1;
	wder = testpki_ocsp_response(&warm, &wlen);
	(void)ocsp_verify_cached(wder, wlen, f->id, f->ca.cert, f->now, s, &r);
	OPENSSL_free(wder);
	for (int pass = 0; pass < 2; pass++) {
		enum ocsp_verdict v = ocsp_verify_cached(der, len, f->id, f->ca.cert, now, s, &r);

		if (v != want)
			fail_msg("cached, pass %d: verdict %s (%s), full path %s (%s)", pass,
			    ocsp_verdict_name(v), r.detail, ocsp_verdict_name(want), wres->detail);
		assert_same_result(&r, wres);
	}
	ocsp_signers_free(&s);
}

static enum ocsp_verdict
verify_opts(const struct fx *f, const struct testpki_resp_opts *o, time_t now,
    struct ocsp_result *res)
{
	unsigned char *der;
	size_t len;
	enum ocsp_verdict v;

	der = testpki_ocsp_response(o, &len);
	v = ocsp_verify(der, len, f->id, f->ca.cert, now, res);
	expect_same_cached(f, o, der, len, now, v, res);
	OPENSSL_free(der);
	if (v != OCSP_OK)
		assert_true(res->detail[0] != '\0');
	return v;
}

static void
expect_verdict(const struct fx *f, const struct testpki_resp_opts *o, enum ocsp_verdict want)
{
	struct ocsp_result res;
	enum ocsp_verdict v = verify_opts(f, o, f->now, &res);

	if (v != want)
		fail_msg("verdict %s (%s), want %s", ocsp_verdict_name(v), res.detail,
		    ocsp_verdict_name(want));
}

/* A delegated responder certificate issued by issuer. */
static struct testpki_ent
responder(const struct fx *f, const struct testpki_ent *issuer, int eku, long nb, long na)
{
	static const unsigned char serial[2] = { 0x0c, 0x5b };
	struct testpki_cert_opts o = {
		.cn = "OCSP Responder", .issuer = issuer, .serial = serial, .serial_len = 2,
		.base = f->now, .not_before = nb, .not_after = na, .ocsp_signing = eku,
	};

	return testpki_cert(&o);
}

/* --- verdicts on well-signed responses -------------------------------------------------- */

static void
test_good(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;
	time_t before = time(NULL);

	assert_int_equal(verify_opts(f, &o, f->now, &res), OCSP_OK);
	assert_int_equal(res.status, STAPLER_GOOD);
	assert_int_equal((long long)res.this_update, (long long)(f->now - 3600));
	assert_int_equal((long long)res.next_update, (long long)(f->now + 7 * DAY));
	assert_int_equal(res.revocation_reason, -1);
	assert_int_equal((long long)res.revoked_at, 0);
	/* OCSP_basic_sign stamps producedAt with the real clock. */
	assert_true(res.produced_at >= before - 1 && res.produced_at <= time(NULL) + 1);
	assert_string_equal(res.detail, "");

	/* responderID byKey works as well as byName. */
	o.resp_id_by_key = 1;
	expect_verdict(f, &o, OCSP_OK);
	/* So does the issuer's own certificate included in the response. */
	o.include_signer = 1;
	expect_verdict(f, &o, OCSP_OK);
}

static void
test_revoked(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;

	o.cert_status = V_OCSP_CERTSTATUS_REVOKED;
	o.revoked_at = f->now - 5 * DAY;
	o.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
	assert_int_equal(verify_opts(f, &o, f->now, &res), OCSP_OK);
	assert_int_equal(res.status, STAPLER_REVOKED);
	assert_int_equal((long long)res.revoked_at, (long long)(f->now - 5 * DAY));
	assert_int_equal(res.revocation_reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);

	o.reason = -1;
	assert_int_equal(verify_opts(f, &o, f->now, &res), OCSP_OK);
	assert_int_equal(res.status, STAPLER_REVOKED);
	assert_int_equal(res.revocation_reason, -1);
}

static void
test_unknown(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;

	o.cert_status = V_OCSP_CERTSTATUS_UNKNOWN;
	assert_int_equal(verify_opts(f, &o, f->now, &res), OCSP_OK);
	assert_int_equal(res.status, STAPLER_UNKNOWN);
}

static void
test_expired(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;

	o.this_update = f->now - 7 * DAY;
	o.next_update = f->now - 1;
	expect_verdict(f, &o, OCSP_EXPIRED);
	/* nextUpdate == now is no longer good. */
	o.next_update = f->now;
	expect_verdict(f, &o, OCSP_EXPIRED);
	/* The same response a second earlier is. */
	assert_int_equal(verify_opts(f, &o, f->now - 1, &res), OCSP_OK);
	assert_false(ocsp_verdict_is_temporary(OCSP_EXPIRED));
}

static void
test_this_update_in_future(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);

	o.this_update = f->now + OCSP_SKEW + 60;
	expect_verdict(f, &o, OCSP_NOT_YET_VALID);
	o.this_update = f->now + OCSP_SKEW + 1;
	expect_verdict(f, &o, OCSP_NOT_YET_VALID);
	/* Within the skew: accepted. */
	o.this_update = f->now + OCSP_SKEW;
	expect_verdict(f, &o, OCSP_OK);
	o.this_update = f->now + 60;
	expect_verdict(f, &o, OCSP_OK);
}

static void
test_no_next_update(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);

	o.no_next_update = 1;
	expect_verdict(f, &o, OCSP_NO_NEXT_UPDATE);
}

static void
test_next_before_this(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);

	o.this_update = f->now - 3600;
	o.next_update = f->now - 7200;
	expect_verdict(f, &o, OCSP_MALFORMED);
}

static void
test_wrong_certid(void **state)
{
	struct fx *f = *state;
	struct testpki_ent sibling = testpki_leaf("Meter 0043", &f->ca, 0x43, NULL, f->now);
	struct testpki_resp_opts o = good_opts(f);

	o.subject = sibling.cert;
	expect_verdict(f, &o, OCSP_WRONG_CERTID);
	testpki_ent_free(&sibling);
	/* No CertID at all: nothing can match. */
	{
		struct testpki_resp_opts g = good_opts(f);
		struct ocsp_result res;
		unsigned char *der;
		size_t len;

		der = testpki_ocsp_response(&g, &len);
		assert_int_equal(ocsp_verify(der, len, NULL, f->ca.cert, f->now, &res),
		    OCSP_WRONG_CERTID);
		assert_int_equal(ocsp_verify(der, len, f->id, NULL, f->now, &res), OCSP_BAD_SIGNER);
		OPENSSL_free(der);
	}
}

/* --- who signed ------------------------------------------------------------------------- */

static void
test_unrelated_signer(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);

	o.signer = &f->other;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	/* With its certificate in the response: the signature verifies, the signer does not. */
	o.include_signer = 1;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	o.resp_id_by_key = 1;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	/* The leaf itself (issued by the CA, but no OCSPSigning) may not sign its own status. */
	o.signer = &f->leaf;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
}

static void
test_delegated_responder_with_eku(void **state)
{
	struct fx *f = *state;
	struct testpki_ent r = responder(f, &f->ca, 1, -DAY, 30 * DAY);
	struct testpki_resp_opts o = good_opts(f);

	o.signer = &r;
	o.include_signer = 1;
	expect_verdict(f, &o, OCSP_OK);
	o.resp_id_by_key = 1;
	expect_verdict(f, &o, OCSP_OK);
	/* Not included in the response: nothing tells who the signer is. */
	o.include_signer = 0;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	testpki_ent_free(&r);
}

static void
test_delegated_responder_without_eku(void **state)
{
	struct fx *f = *state;
	struct testpki_ent r = responder(f, &f->ca, 0, -DAY, 30 * DAY);
	struct testpki_resp_opts o = good_opts(f);

	o.signer = &r;
	o.include_signer = 1;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	/* Not even when the issuer carries OpenSSL "trusted for OCSP signing" aux data: only
	 * the EKU certifies a responder (OCSP_NOEXPLICIT). */
	assert_true(X509_add1_trust_object(f->ca.cert, OBJ_nid2obj(NID_OCSP_sign)));
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	testpki_ent_free(&r);
}

static void
test_delegated_responder_of_other_ca(void **state)
{
	struct fx *f = *state;
	struct testpki_ent r = responder(f, &f->other, 1, -DAY, 30 * DAY);
	struct testpki_resp_opts o = good_opts(f);

	o.signer = &r;
	o.include_signer = 1;
	expect_verdict(f, &o, OCSP_BAD_SIGNER);
	testpki_ent_free(&r);
}

static void
test_delegated_responder_expired_at_now(void **state)
{
	struct fx *f = *state;
	/* Valid from a day before the real clock until a day before the injected now. */
	struct testpki_ent r = responder(f, &f->ca, 1, -31 * DAY, -DAY);
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;
	time_t earlier = f->now - 29 * DAY;

	o.signer = &r;
	o.include_signer = 1;
	assert_int_equal(verify_opts(f, &o, f->now, &res), OCSP_BAD_SIGNER);
	assert_non_null(strstr(res.detail, "expired"));

	/* The same responder while it was valid: accepted. */
	o.this_update = earlier - 3600;
	o.next_update = earlier + DAY;
	assert_int_equal(verify_opts(f, &o, earlier, &res), OCSP_OK);
	testpki_ent_free(&r);
}

static void
test_intermediate_issuer(void **state)
{
	/* The issuer is an intermediate whose root is nowhere in sight: it alone is trusted. */
	struct fx *f = *state;
	struct testpki_ent sub = testpki_ca("OCSP Sub CA", &f->ca, f->now);
	struct testpki_ent leaf = testpki_leaf("Meter 0099", &sub, 0x99, NULL, f->now);
	struct testpki_ent r = responder(f, &sub, 1, -DAY, 30 * DAY);
	struct testpki_resp_opts o = good_opts(f);
	OCSP_CERTID *id = certs_certid(leaf.cert, sub.cert, STAPLER_HASH_SHA1);
	struct ocsp_result res;
	unsigned char *der;
	size_t len;

	o.subject = leaf.cert;
	o.issuer = sub.cert;
	o.signer = &sub;
	der = testpki_ocsp_response(&o, &len);
	assert_int_equal(ocsp_verify(der, len, id, sub.cert, f->now, &res), OCSP_OK);
	/* The root above it did not sign for the leaf. */
	assert_int_equal(ocsp_verify(der, len, id, f->ca.cert, f->now, &res), OCSP_BAD_SIGNER);
	OPENSSL_free(der);

	o.signer = &r;
	o.include_signer = 1;
	der = testpki_ocsp_response(&o, &len);
	assert_int_equal(ocsp_verify(der, len, id, sub.cert, f->now, &res), OCSP_OK);
	OPENSSL_free(der);

	/* A responder certified by the root for the root's own certificates is not a responder
	 * for the intermediate's. */
	testpki_ent_free(&r);
	r = responder(f, &f->ca, 1, -DAY, 30 * DAY);
	o.signer = &r;
	der = testpki_ocsp_response(&o, &len);
	if ((ocsp_verify(der, len, id, sub.cert, f->now, &res)) != OCSP_BAD_SIGNER)
		fail_msg("root's responder accepted for the intermediate: %s", res.detail);
	OPENSSL_free(der);

	OCSP_CERTID_free(id);
	testpki_ent_free(&r);
	testpki_ent_free(&leaf);
	testpki_ent_free(&sub);
}

static void
test_corrupt_signature(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;
	unsigned char *der;
	size_t len;

	/* Without certificates the response ends with the signature BIT STRING; its last
	 * byte is the last byte of ECDSA's s. */
	der = testpki_ocsp_response(&o, &len);
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &res), OCSP_OK);
	der[len - 1] ^= 0x01;
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &res),
	    OCSP_BAD_SIGNATURE);
	assert_true(res.detail[0] != '\0');
	assert_false(ocsp_verdict_is_temporary(OCSP_BAD_SIGNATURE));
	OPENSSL_free(der);
}

static void
test_corrupt_signed_data(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;
	unsigned char *der, *p;
	char want[16];
	struct tm tm;
	time_t t = f->now + 7 * DAY;
	size_t len;

	/* Move nextUpdate by changing one digit of its GeneralizedTime: still well formed,
	 * no longer what the CA signed. */
	der = testpki_ocsp_response(&o, &len);
	gmtime_r(&t, &tm);
	strftime(want, sizeof(want), "%Y%m%d%H%M%S", &tm);
	p = memmem(der, len, want, 14);
	assert_non_null(p);
	p[3] = p[3] == '9' ? '8' : (unsigned char)(p[3] + 1);
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &res),
	    OCSP_BAD_SIGNATURE);
	OPENSSL_free(der);
}

/* The signer set: the first response of a delegated responder is verified in full and proves
 * it; the next ones take one signature check, give the same result, and a corrupt one is still
 * refused; the responder is no longer taken once it expires; a clear forgets it. */
static void
test_signer_cache(void **state)
{
	struct fx *f = *state;
	struct testpki_ent r = responder(f, &f->ca, 1, -DAY, 30 * DAY);
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_signers *s = ocsp_signers_new();
	struct ocsp_result full, cached;
	unsigned long long hits, misses;
	unsigned char *der;
	size_t len;

	assert_non_null(s);
	o.signer = &r;
	o.include_signer = 1;
	der = testpki_ocsp_response(&o, &len);
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &full), OCSP_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ocsp_verify_cached(der, len, f->id, f->ca.cert, f->now, s, &cached),
		    OCSP_OK);
		assert_same_result(&cached, &full);
	}
	ocsp_signers_stats(s, &hits, &misses);
	assert_int_equal(misses, 1);
	assert_int_equal(hits, 2);

	/* The last byte is the responder certificate's signature: a certificate that is not
	 * the proven one is not taken on trust (here it no longer verifies at all). */
	der[len - 1] ^= 0x01;
	assert_int_not_equal(ocsp_verify_cached(der, len, f->id, f->ca.cert, f->now, s, &cached),
	    OCSP_OK);
	der[len - 1] ^= 0x01;
	OPENSSL_free(der);

	/* Another response, its signature corrupted, from the proven responder. */
	o.this_update = f->now - 60;
	der = testpki_ocsp_response(&o, &len);
	{
		/* Flip the last byte of the signature, found by its bytes. */
		const unsigned char *q = der;
		OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &q, (long)len);
		OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
		const ASN1_OCTET_STRING *sig = OCSP_resp_get0_signature(bs);
		unsigned char *c = memmem(der, len, ASN1_STRING_get0_data(sig),
		    (size_t)ASN1_STRING_length(sig));

		assert_non_null(c);
		c[ASN1_STRING_length(sig) - 1] ^= 0x01;
		OCSP_BASICRESP_free(bs);
		OCSP_RESPONSE_free(resp);
	}
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &full),
	    OCSP_BAD_SIGNATURE);
	assert_int_equal(ocsp_verify_cached(der, len, f->id, f->ca.cert, f->now, s, &cached),
	    OCSP_BAD_SIGNATURE);
	OPENSSL_free(der);
	ocsp_signers_stats(s, &hits, &misses);
	assert_int_equal(hits, 2);

	/* Past the responder's notAfter: the full path decides (and refuses). */
	o.this_update = f->now + 31 * DAY - 3600;
	o.next_update = f->now + 32 * DAY;
	der = testpki_ocsp_response(&o, &len);
	assert_int_equal(ocsp_verify_cached(der, len, f->id, f->ca.cert, f->now + 31 * DAY, s,
	    &cached), ocsp_verify(der, len, f->id, f->ca.cert, f->now + 31 * DAY, &full));
	assert_int_not_equal(full.detail[0], '\0');
	ocsp_signers_stats(s, &hits, &misses);
	assert_int_equal(hits, 2);
	OPENSSL_free(der);

	/* Forgotten after a clear (a reload of the trust anchors). */
	o = good_opts(f);
	o.signer = &r;
	o.include_signer = 1;
	der = testpki_ocsp_response(&o, &len);
	ocsp_signers_clear(s);
	assert_int_equal(ocsp_verify_cached(der, len, f->id, f->ca.cert, f->now, s, &cached),
	    OCSP_OK);
	ocsp_signers_stats(s, &hits, &misses);
	assert_int_equal(hits, 2);
	assert_int_equal(misses, 5);
	OPENSSL_free(der);
	ocsp_signers_free(&s);
	ocsp_signers_free(&s);    /* NULL is fine */
	testpki_ent_free(&r);
}

/* --- responseStatus and garbage --------------------------------------------------------- */

static void
expect_status(const struct fx *f, int status, enum ocsp_verdict want, int temporary)
{
	struct testpki_resp_opts o = good_opts(f);

	o.response_status = status;
	expect_verdict(f, &o, want);
	assert_int_equal(ocsp_verdict_is_temporary(want), temporary);
}

static void
test_response_status(void **state)
{
	struct fx *f = *state;

	expect_status(f, OCSP_RESPONSE_STATUS_TRYLATER, OCSP_TRY_LATER, 1);
	expect_status(f, OCSP_RESPONSE_STATUS_INTERNALERROR, OCSP_TRY_LATER, 1);
	expect_status(f, OCSP_RESPONSE_STATUS_UNAUTHORIZED, OCSP_REFUSED, 0);
	expect_status(f, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, OCSP_REFUSED, 0);
	expect_status(f, OCSP_RESPONSE_STATUS_SIGREQUIRED, OCSP_REFUSED, 0);
	assert_false(ocsp_verdict_is_temporary(OCSP_OK));
}

static void
test_malformed(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct ocsp_result res;
	unsigned char junk[512], *der, *longer;
	size_t len, i;
	uint32_t x = 0x12345678;

	der = testpki_ocsp_response(&o, &len);
	/* Truncated at every length: never accepted, never a crash. */
	for (i = 0; i < len; i++)
		assert_int_equal(ocsp_verify(der, i, f->id, f->ca.cert, f->now, &res),
		    OCSP_MALFORMED);
	longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, der, len);
	longer[len] = 0;
	assert_int_equal(ocsp_verify(longer, len + 1, f->id, f->ca.cert, f->now, &res),
	    OCSP_MALFORMED);
	assert_non_null(strstr(res.detail, "trailing"));
	assert_int_equal(ocsp_verify(longer, len, f->id, f->ca.cert, f->now, &res), OCSP_OK);
	assert_int_equal(ocsp_verify(NULL, 0, f->id, f->ca.cert, f->now, &res), OCSP_MALFORMED);
	for (i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (unsigned char)(x >> 16);
	}
	assert_int_equal(ocsp_verify(junk, sizeof(junk), f->id, f->ca.cert, f->now, &res),
	    OCSP_MALFORMED);
	memcpy(junk, "HTTP/1.1 200 OK\r\n", 17);
	assert_int_equal(ocsp_verify(junk, 17, f->id, f->ca.cert, f->now, &res), OCSP_MALFORMED);
	free(longer);
	OPENSSL_free(der);
}

static void
test_verdict_names(void **state)
{
	(void)state;
	assert_string_equal(ocsp_verdict_name(OCSP_OK), "ok");
	assert_string_equal(ocsp_verdict_name(OCSP_TRY_LATER), "try_later");
	assert_string_equal(ocsp_verdict_name(OCSP_BAD_SIGNER), "bad_signer");
	assert_string_equal(ocsp_verdict_name(OCSP_NO_NEXT_UPDATE), "no_next_update");
	assert_string_not_equal(ocsp_verdict_name(OCSP_BAD_SIGNATURE),
	    ocsp_verdict_name(OCSP_BAD_SIGNER));
}

/* --- requests and GET URLs -------------------------------------------------------------- */

static void
test_request_round_trip(void **state)
{
	struct fx *f = *state;
	unsigned char *der = NULL, *longer;
	const unsigned char *p;
	OCSP_REQUEST *req;
	OCSP_CERTID *back, *other;
	struct testpki_ent sibling;
	size_t len;

	assert_int_equal(ocsp_request_build(f->id, &der, &len), 0);
	assert_non_null(der);
	back = ocsp_request_certid(der, len);
	assert_non_null(back);
	assert_int_equal(OCSP_id_cmp(back, f->id), 0);
	OCSP_CERTID_free(back);

	/* A control: another serial gives another CertID. */
	sibling = testpki_leaf("Meter 0043", &f->ca, 0x43, NULL, f->now);
	other = certs_certid(sibling.cert, f->ca.cert, STAPLER_HASH_SHA1);
	assert_int_not_equal(OCSP_id_cmp(other, f->id), 0);
	OCSP_CERTID_free(other);
	testpki_ent_free(&sibling);

	/* No nonce, no other extension, no signature. */
	p = der;
	req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
	assert_non_null(req);
	assert_int_equal(OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1), -1);
	assert_int_equal(OCSP_REQUEST_get_ext_count(req), 0);
	assert_int_equal(OCSP_ONEREQ_get_ext_count(OCSP_request_onereq_get0(req, 0)), 0);
	assert_int_equal(OCSP_request_is_signed(req), 0);
	assert_int_equal(OCSP_request_onereq_count(req), 1);

	/* Two CertIDs: not a request we answer. */
	assert_non_null(OCSP_request_add0_id(req, OCSP_CERTID_dup(f->id)));
	{
		unsigned char *two = NULL;
		int n = i2d_OCSP_REQUEST(req, &two);

		assert_true(n > 0);
		assert_null(ocsp_request_certid(two, (size_t)n));
		OPENSSL_free(two);
	}
	OCSP_REQUEST_free(req);

	longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, der, len);
	longer[len] = 0;
	assert_null(ocsp_request_certid(longer, len + 1));
	assert_null(ocsp_request_certid(der, len - 1));
	assert_null(ocsp_request_certid(der, 0));
	assert_null(ocsp_request_certid((const unsigned char *)"GET / HTTP/1.0", 14));
	free(longer);
	OPENSSL_free(der);
}

static void
test_get_url_escaping(void **state)
{
	/* base64 of fb ff is "+/8=": every character that needs escaping. */
	static const unsigned char bytes[2] = { 0xfb, 0xff };
	char *url;

	(void)state;
	url = ocsp_get_url("http://ocsp.example", bytes, sizeof(bytes));
	assert_non_null(url);
	assert_string_equal(url, "http://ocsp.example/%2B%2F8%3D");
	free(url);
	url = ocsp_get_url("http://ocsp.example/", bytes, sizeof(bytes));
	assert_non_null(url);
	assert_string_equal(url, "http://ocsp.example/%2B%2F8%3D");
	free(url);
	url = ocsp_get_url("http://ocsp.example/ocsp/", (const unsigned char *)"abc", 3);
	assert_non_null(url);
	assert_string_equal(url, "http://ocsp.example/ocsp/YWJj");
	free(url);
}

static void
test_get_url_real_request(void **state)
{
	struct fx *f = *state;
	unsigned char *der = NULL, *dec;
	char *url, *q, b64[512];
	size_t len, n = 0;
	int dlen;

	assert_int_equal(ocsp_request_build(f->id, &der, &len), 0);
	url = ocsp_get_url("http://ocsp.example:8080/path", der, len);
	assert_non_null(url);
	assert_int_equal(strncmp(url, "http://ocsp.example:8080/path/", 30), 0);
	assert_true(strlen(url) <= OCSP_GET_MAX);
	/* Undo the URL encoding, then the base64: the request comes back. */
	for (q = url + 30; *q != '\0' && n < sizeof(b64) - 1; q++) {
		if (*q == '%') {
			assert_true(strncmp(q, "%2B", 3) == 0 || strncmp(q, "%2F", 3) == 0 ||
			    strncmp(q, "%3D", 3) == 0);
			b64[n++] = q[2] == 'B' ? '+' : q[2] == 'F' ? '/' : '=';
			q += 2;
		} else {
			assert_true(*q != '+' && *q != '/' && *q != '=');
			b64[n++] = *q;
		}
	}
	b64[n] = '\0';
	dec = malloc(n);
	assert_non_null(dec);
	dlen = EVP_DecodeBlock(dec, (unsigned char *)b64, (int)n);
	assert_true(dlen >= (int)len);   /* DecodeBlock counts padding as zero bytes */
	assert_memory_equal(dec, der, len);
	free(dec);
	free(url);
	OPENSSL_free(der);
}

static void
test_get_url_too_long(void **state)
{
	unsigned char zeros[300];
	char *url;

	(void)state;
	memset(zeros, 0, sizeof(zeros));
	/* "http://xyz/" is 11 bytes; 183 zero bytes are 244 base64 characters: 255 in all. */
	url = ocsp_get_url("http://xyz", zeros, 183);
	assert_non_null(url);
	assert_int_equal(strlen(url), OCSP_GET_MAX);
	free(url);
	assert_null(ocsp_get_url("http://xyz", zeros, 184));
	assert_null(ocsp_get_url("http://xyz", zeros, sizeof(zeros)));
	/* The escapes count: 2 bytes of fb ff take 11 + 10 bytes, not 11 + 4. */
	{
		char base[300];
		unsigned char ff[2] = { 0xfb, 0xff };

		memset(base, 'a', sizeof(base));
		memcpy(base, "http://", 7);
		base[OCSP_GET_MAX - 10 - 1] = '\0';   /* base + '/' + 10 = 255 */
		url = ocsp_get_url(base, ff, 2);
		assert_non_null(url);
		assert_int_equal(strlen(url), OCSP_GET_MAX);
		free(url);
		base[OCSP_GET_MAX - 10 - 1] = 'a';
		base[OCSP_GET_MAX - 10] = '\0';
		assert_null(ocsp_get_url(base, ff, 2));
	}
}

/* --- incoming requests (the OCSP responder interface) ------------------------------------- */

/* DER of a request for ids[0..n-1], with a nonce extension when nonce is set. */
static unsigned char *
request_der(OCSP_CERTID *const *ids, int n, int nonce, size_t *len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	unsigned char *der = NULL;
	int dlen;

	assert_non_null(req);
	for (int i = 0; i < n; i++)
		assert_non_null(OCSP_request_add0_id(req, OCSP_CERTID_dup(ids[i])));
	if (nonce)
		assert_int_equal(OCSP_request_add1_nonce(req, NULL, 16), 1);
	dlen = i2d_OCSP_REQUEST(req, &der);
	assert_true(dlen > 0);
	*len = (size_t)dlen;
	OCSP_REQUEST_free(req);
	return der;
}

/* ---- the small reader of the /ocsp hit path (ocsp_request_read) ---- */

struct dbuf {
	unsigned char b[1024];
	size_t n;
};

/* Appends tag, a DER length (or the long form of width lw when lw > 0, to make non-minimal
 * ones) and body. */
static void
tlv_w(struct dbuf *d, unsigned char tag, const unsigned char *body, size_t n, int lw)
{
	assert_true(d->n + n + 6 <= sizeof(d->b));
	d->b[d->n++] = tag;
	if (lw == 0 && n < 0x80) {
		d->b[d->n++] = (unsigned char)n;
	} else {
		int w = lw > 0 ? lw : n < 0x100 ? 1 : 2;

		d->b[d->n++] = (unsigned char)(0x80 | w);
		for (int i = w - 1; i >= 0; i--)
			d->b[d->n++] = (unsigned char)(n >> (8 * i));
	}
	if (n > 0)
		memcpy(d->b + d->n, body, n);
	d->n += n;
}

static void
tlv(struct dbuf *d, unsigned char tag, const struct dbuf *body)
{
	tlv_w(d, tag, body->b, body->n, 0);
}

struct req_shape {
	const char *what;
	int alg;              /* 1 SHA-1, 256, 384, 512, or 5 (MD5: no CertID hash of ours) */
	int params;           /* 0 absent, 1 NULL, 2 something else */
	const unsigned char *serial;
	size_t serial_len;
	int extensions;       /* 0 none; 1 nonce; 2 critical nonce; 3 critical unknown; 4 that
	                       * on the Request */
	int requests;         /* how many Requests */
	int requestor;        /* a requestorName [1] */
	int long_len;         /* the CertID's SEQUENCE with a non-minimal length */
	int trailing;         /* a byte after the request */
	int reader;           /* what ocsp_request_read() must say: 0 or -1 */
};

static void
shape_der(const struct fx *f, const struct req_shape *sh, struct dbuf *out)
{
	static const unsigned char sha1[] = { 0x2b, 0x0e, 0x03, 0x02, 0x1a };
	static const unsigned char sha256[] = { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
	    0x01 };
	static const unsigned char sha384[] = { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
	    0x02 };
	static const unsigned char sha512[] = { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
	    0x03 };
	static const unsigned char md5[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05 };
	static const unsigned char nonce[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01,
	    0x02 };
	static const unsigned char other[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01,
	    0x63 };
	static const unsigned char ff = 0xff, val[] = { 0x04, 0x02, 0xab, 0xcd };
	struct dbuf alg = { 0 }, cid = { 0 }, cidseq = { 0 }, req = { 0 }, reqs = { 0 },
	    list = { 0 }, ext = { 0 }, exts = { 0 }, extseq = { 0 }, tbs = { 0 }, tbsseq = { 0 };
	unsigned char nh[64], kh[64];
	const EVP_MD *md = sh->alg == 1 ? EVP_sha1() : sh->alg == 256 ? EVP_sha256() :
	    sh->alg == 384 ? EVP_sha384() : sh->alg == 512 ? EVP_sha512() : EVP_md5();
	unsigned int nl = 0, kl = 0;
	unsigned char *name = NULL;
	int n = i2d_X509_NAME(X509_get_subject_name(f->ca.cert), &name);

	assert_true(n > 0 && EVP_Digest(name, (size_t)n, nh, &nl, md, NULL) == 1);
	assert_int_equal(X509_pubkey_digest(f->ca.cert, md, kh, &kl), 1);
	OPENSSL_free(name);
	tlv_w(&alg, 0x06, sh->alg == 1 ? sha1 : sh->alg == 256 ? sha256 : sh->alg == 384 ? sha384 :
	    sh->alg == 512 ? sha512 : md5, sh->alg == 1 ? sizeof(sha1) : sh->alg == 5 ?
	    sizeof(md5) : 9, 0);
	if (sh->params == 1)
		tlv_w(&alg, 0x05, NULL, 0, 0);
	else if (sh->params == 2)
		tlv_w(&alg, 0x04, nh, 1, 0);
	tlv(&cid, 0x30, &alg);
	tlv_w(&cid, 0x04, nh, nl, 0);
	tlv_w(&cid, 0x04, kh, kl, 0);
	tlv_w(&cid, 0x02, sh->serial, sh->serial_len, 0);
	tlv_w(&cidseq, 0x30, cid.b, cid.n, sh->long_len);
	if (sh->extensions > 0) {
		tlv_w(&ext, 0x06, sh->extensions >= 3 ? other : nonce, sizeof(nonce), 0);
		if (sh->extensions >= 2)
			tlv_w(&ext, 0x01, &ff, 1, 0);
		tlv_w(&ext, 0x04, val, sizeof(val), 0);
		tlv(&exts, 0x30, &ext);
		tlv(&extseq, 0x30, &exts);
	}
	memcpy(req.b, cidseq.b, cidseq.n);
	req.n = cidseq.n;
	if (sh->extensions == 4)
		tlv(&req, 0xa0, &extseq);
	for (int i = 0; i < sh->requests; i++)
		tlv(&reqs, 0x30, &req);
	if (sh->requestor) {
		static const unsigned char gn[] = { 0x82, 0x03, 'a', '.', 'b' };   /* dNSName */

		tlv_w(&tbs, 0xa1, gn, sizeof(gn), 0);
	}
	tlv(&list, 0x30, &reqs);
	memcpy(tbs.b + tbs.n, list.b, list.n);
	tbs.n += list.n;
	if (sh->extensions > 0 && sh->extensions < 4)
		tlv(&tbs, 0xa2, &extseq);
	tlv(&tbsseq, 0x30, &tbs);
	out->n = 0;
	tlv(out, 0x30, &tbsseq);
	if (sh->trailing)
		out->b[out->n++] = 0;
}

/* A table of request shapes: what the reader takes it takes from OpenSSL's own verdict with
 * the same CertID byte for byte; what it leaves, OpenSSL still judges (tested through the
 * daemon in test_service_ocsp.py). */
static void
test_request_reader(void **state)
{
	static const unsigned char s42[] = { 0x42 }, s_hi[] = { 0x00, 0x80 },
	    s_pad[] = { 0x00, 0x42 }, s_neg[] = { 0xff }, s_zero[] = { 0x00 },
	    s_long[33] = { 0x01 };
	const struct req_shape shapes[] = {
		{ "SHA-1, NULL params", 1, 1, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "SHA-1, no params", 1, 0, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "SHA-256, NULL params", 256, 1, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "SHA-256, no params", 256, 0, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "nonce", 1, 1, s42, 1, 1, 1, 0, 0, 0, 0 },
		{ "critical nonce", 1, 1, s42, 1, 2, 1, 0, 0, 0, 0 },
		{ "serial 0x80", 1, 1, s_hi, 2, 0, 1, 0, 0, 0, 0 },
		{ "SHA-384, NULL params", 384, 1, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "SHA-384, no params", 384, 0, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "SHA-512, NULL params", 512, 1, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "SHA-512, no params", 512, 0, s42, 1, 0, 1, 0, 0, 0, 0 },
		{ "MD5", 5, 1, s42, 1, 0, 1, 0, 0, 0, -1 },
		{ "odd parameters", 1, 2, s42, 1, 0, 1, 0, 0, 0, -1 },
		{ "critical unknown extension", 1, 1, s42, 1, 3, 1, 0, 0, 0, -1 },
		{ "critical unknown extension on the Request", 1, 1, s42, 1, 4, 1, 0, 0, 0, -1 },
		{ "two requests", 1, 1, s42, 1, 0, 2, 0, 0, 0, -1 },
		{ "no request", 1, 1, s42, 1, 0, 0, 0, 0, 0, -1 },
		{ "requestorName", 1, 1, s42, 1, 0, 1, 1, 0, 0, -1 },
		{ "non-minimal length", 1, 1, s42, 1, 0, 1, 0, 2, 0, -1 },
		{ "trailing byte", 1, 1, s42, 1, 0, 1, 0, 0, 1, -1 },
		{ "padded serial", 1, 1, s_pad, 2, 0, 1, 0, 0, 0, -1 },
		{ "negative serial", 1, 1, s_neg, 1, 0, 1, 0, 0, 0, -1 },
		{ "zero serial", 1, 1, s_zero, 1, 0, 1, 0, 0, 0, -1 },
		{ "33-octet serial", 1, 1, s_long, 33, 0, 1, 0, 0, 0, -1 },
	};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct req_shape *sh = &shapes[i];
		struct ocsp_certid_view v;
		struct dbuf d;
		OCSP_CERTID *id = NULL;
		unsigned char *enc = NULL;
		int r, n;

		shape_der(f, sh, &d);
		r = ocsp_request_read(d.b, d.n, &v);
		if (r != sh->reader)
			fail_msg("%s: reader says %d, want %d", sh->what, r, sh->reader);
		if (r < 0) {
			/* Left to OpenSSL; a second read of the same bytes agrees. */
			assert_int_equal(ocsp_request_read(d.b, d.n, &v), -1);
			continue;
		}
		if (ocsp_request_decode(d.b, d.n, &id, NULL) != OCSP_REQ_OK)
			fail_msg("%s: the reader took a request OpenSSL refuses", sh->what);
		n = i2d_OCSP_CERTID(id, &enc);
		assert_true(n > 0);
		if ((size_t)n != v.certid_len || memcmp(enc, v.certid, v.certid_len) != 0)
			fail_msg("%s: another CertID than OpenSSL's", sh->what);
		assert_int_equal(v.alg, sh->alg == 1 ? STAPLER_HASH_SHA1 : sh->alg == 256 ?
		    STAPLER_HASH_SHA256 : sh->alg == 384 ? STAPLER_HASH_SHA384 : STAPLER_HASH_SHA512);
		assert_int_equal(v.params, sh->params == 1 ? STAPLER_PARAMS_NULL :
		    STAPLER_PARAMS_ABSENT);
		assert_int_equal(v.hash_len, stapler_hash_alg_len(v.alg));
		assert_int_equal(v.serial_len, sh->serial[0] == 0 ? sh->serial_len - 1 :
		    sh->serial_len);
		assert_memory_equal(v.serial, sh->serial + (sh->serial[0] == 0), v.serial_len);
		OPENSSL_free(enc);
		OCSP_CERTID_free(id);
	}
	/* What OpenSSL builds for the fixture's CertID, with and without a nonce. */
	for (int nonce = 0; nonce <= 1; nonce++) {
		OCSP_CERTID *one[1] = { f->id };
		struct ocsp_certid_view v;
		unsigned char *der, *enc = NULL;
		size_t len;
		int n;

		der = request_der(one, 1, nonce, &len);
		assert_int_equal(ocsp_request_read(der, len, &v), 0);
		n = i2d_OCSP_CERTID(f->id, &enc);
		assert_int_equal((size_t)n, v.certid_len);
		assert_memory_equal(enc, v.certid, v.certid_len);
		assert_int_equal(ocsp_request_read(der, len - 1, &v), -1);
		OPENSSL_free(enc);
		OPENSSL_free(der);
	}
}

static void
test_request_decode(void **state)
{
	struct fx *f = *state;
	OCSP_CERTID *two[2], *id, *sha256;
	unsigned char *der;
	size_t len;
	int nonce;

	two[0] = f->id;
	/* One CertID, no nonce. */
	der = request_der(two, 1, 0, &len);
	assert_int_equal(ocsp_request_decode(der, len, &id, &nonce), OCSP_REQ_OK);
	assert_int_equal(OCSP_id_cmp(id, f->id), 0);
	assert_int_equal(nonce, 0);
	OCSP_CERTID_free(id);
	/* Trailing bytes and truncation are junk. */
	assert_int_equal(ocsp_request_decode(der, len - 1, &id, NULL), OCSP_REQ_JUNK);
	assert_null(id);
	OPENSSL_free(der);

	/* A nonce is reported, and the CertID is still the one asked for. */
	der = request_der(two, 1, 1, &len);
	assert_int_equal(ocsp_request_decode(der, len, &id, &nonce), OCSP_REQ_OK);
	assert_int_equal(nonce, 1);
	assert_int_equal(OCSP_id_cmp(id, f->id), 0);
	OCSP_CERTID_free(id);
	OPENSSL_free(der);

	/* Several CertIDs, and none. */
	two[1] = f->id;
	der = request_der(two, 2, 0, &len);
	assert_int_equal(ocsp_request_decode(der, len, &id, &nonce), OCSP_REQ_MANY_IDS);
	assert_null(id);
	OPENSSL_free(der);
	der = request_der(two, 0, 0, &len);
	assert_int_equal(ocsp_request_decode(der, len, &id, NULL), OCSP_REQ_NO_ID);
	OPENSSL_free(der);

	/* Junk. */
	assert_int_equal(ocsp_request_decode((const unsigned char *)"junk", 4, &id, NULL),
	    OCSP_REQ_JUNK);
	assert_int_equal(ocsp_request_decode(NULL, 0, &id, NULL), OCSP_REQ_JUNK);
	assert_string_equal(ocsp_request_error_name(OCSP_REQ_MANY_IDS), "several_certids");

	/* A SHA-256 CertID decodes as it was sent (the caller decides what to do with it). */
	sha256 = OCSP_cert_to_id(EVP_sha256(), f->leaf.cert, f->ca.cert);
	assert_non_null(sha256);
	two[0] = sha256;
	der = request_der(two, 1, 0, &len);
	assert_int_equal(ocsp_request_decode(der, len, &id, NULL), OCSP_REQ_OK);
	assert_int_equal(OCSP_id_cmp(id, sha256), 0);
	assert_int_not_equal(OCSP_id_cmp(id, f->id), 0);
	OCSP_CERTID_free(id);
	OPENSSL_free(der);
	OCSP_CERTID_free(sha256);
}

/* Where an extension goes in request_with_ext(). */
enum ext_place { EXT_REQUEST, EXT_SINGLE };

/* DER of a request for id with one extension (nid, critical) at place; nid NID_undef is a
 * private OID nobody defined. */
static unsigned char *
request_with_ext(OCSP_CERTID *id, enum ext_place place, int nid, int critical, size_t *len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
	ASN1_OBJECT *obj;
	X509_EXTENSION *ext;
	OCSP_ONEREQ *one;
	unsigned char *der = NULL;
	int dlen;

	assert_non_null(req);
	assert_non_null(value);
	assert_int_equal(ASN1_OCTET_STRING_set(value, (const unsigned char *)"\x05\x00", 2), 1);
	obj = nid == NID_undef ? OBJ_txt2obj("1.3.6.1.4.1.59034.1.1", 1) : OBJ_nid2obj(nid);
	assert_non_null(obj);
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, value);
	assert_non_null(ext);
	assert_non_null(one = OCSP_request_add0_id(req, OCSP_CERTID_dup(id)));
	if (place == EXT_REQUEST)
		assert_int_equal(OCSP_REQUEST_add_ext(req, ext, -1), 1);
	else
		assert_int_equal(OCSP_ONEREQ_add_ext(one, ext, -1), 1);
	dlen = i2d_OCSP_REQUEST(req, &der);
	assert_true(dlen > 0);
	*len = (size_t)dlen;
	X509_EXTENSION_free(ext);
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(value);
	OCSP_REQUEST_free(req);
	return der;
}

static void
test_request_critical_extensions(void **state)
{
	static const struct {
		enum ext_place place;
		int nid, critical;
		enum ocsp_request_error want;
	} cases[] = {
		/* Not understood and critical: refused, at either level. */
		{ EXT_REQUEST, NID_undef, 1, OCSP_REQ_CRITICAL_EXT },
		{ EXT_SINGLE, NID_undef, 1, OCSP_REQ_CRITICAL_EXT },
		{ EXT_SINGLE, NID_id_pkix_OCSP_serviceLocator, 1, OCSP_REQ_CRITICAL_EXT },
		{ EXT_REQUEST, NID_id_pkix_OCSP_acceptableResponses, 1, OCSP_REQ_CRITICAL_EXT },
		/* Not critical: ignored. */
		{ EXT_REQUEST, NID_undef, 0, OCSP_REQ_OK },
		{ EXT_SINGLE, NID_undef, 0, OCSP_REQ_OK },
		/* The nonce is understood (and ignored), critical or not. */
		{ EXT_REQUEST, NID_id_pkix_OCSP_Nonce, 1, OCSP_REQ_OK },
		{ EXT_SINGLE, NID_id_pkix_OCSP_Nonce, 1, OCSP_REQ_OK },
	};
	struct fx *f = *state;
	OCSP_CERTID *id;
	unsigned char *der;
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		der = request_with_ext(f->id, cases[i].place, cases[i].nid, cases[i].critical, &len);
		if (ocsp_request_decode(der, len, &id, NULL) != cases[i].want)
			fail_msg("case %zu: not %s", i, ocsp_request_error_name(cases[i].want));
		if (cases[i].want == OCSP_REQ_OK)
			assert_int_equal(OCSP_id_cmp(id, f->id), 0);
		else
			assert_null(id);
		OCSP_CERTID_free(id);
		OPENSSL_free(der);
	}
	assert_string_equal(ocsp_request_error_name(OCSP_REQ_CRITICAL_EXT), "critical_extension");
}

/* Decodes path with ocsp_get_decode() and checks it gives want[0..wlen-1]. */
static void
assert_get_decodes(const char *path, const unsigned char *want, size_t wlen)
{
	size_t len = 0;
	unsigned char *got = ocsp_get_decode(path, 1024, &len);

	if (got == NULL)
		fail_msg("does not decode: %s", path);
	assert_int_equal(len, wlen);
	assert_memory_equal(got, want, wlen);
	free(got);
}

static void
test_get_decode_quirks(void **state)
{
	/* base64 "MPv/+w==" is 30 fb ff fb: a '/', a '+' and padding. */
	static const unsigned char want[4] = { 0x30, 0xfb, 0xff, 0xfb };
	struct fx *f = *state;
	unsigned char *der;
	char *url;
	size_t len;

	(void)f;
	assert_get_decodes("MPv%2F%2Bw%3D%3D", want, 4);      /* as ocsp_get_url() writes it */
	assert_get_decodes("MPv%2f%2bw%3d%3d", want, 4);      /* lowercase escapes */
	assert_get_decodes("MPv/+w==", want, 4);              /* not escaped at all */
	assert_get_decodes("MPv/%20w==", want, 4);            /* '+' turned into a space */
	assert_get_decodes("MPv/ w==", want, 4);
	assert_get_decodes("/MPv%2F%2Bw%3D%3D", want, 4);     /* a doubled slash */
	assert_get_decodes("//MPv/+w", want, 4);              /* and no padding */
	assert_get_decodes("MPv_-w==", want, 4);              /* URL-safe alphabet */

	assert_null(ocsp_get_decode("", 1024, &len));
	assert_null(ocsp_get_decode("/", 1024, &len));
	assert_null(ocsp_get_decode("MPv%2", 1024, &len));    /* cut escape */
	assert_null(ocsp_get_decode("MPv%zz+w==", 1024, &len));
	assert_null(ocsp_get_decode("MPv!+w==", 1024, &len));
	assert_null(ocsp_get_decode("MP=v+w==", 1024, &len));  /* '=' inside */
	assert_null(ocsp_get_decode("MPv/+", 1024, &len));     /* 5 characters: no length */
	assert_null(ocsp_get_decode("MPv/+w==", 3, &len));     /* more than max */

	/* A real request through ocsp_get_url() and back. */
	assert_int_equal(ocsp_request_build(f->id, &der, &len), 0);
	url = ocsp_get_url("http://x/ocsp", der, len);
	assert_non_null(url);
	assert_get_decodes(url + strlen("http://x/ocsp/"), der, len);
	free(url);
	OPENSSL_free(der);
}

static void
test_status_responses(void **state)
{
	static const unsigned char malformed[] = { 0x30, 0x03, 0x0a, 0x01, 0x01 };
	static const unsigned char unauthorized[] = { 0x30, 0x03, 0x0a, 0x01, 0x06 };
	static const unsigned char try_later[] = { 0x30, 0x03, 0x0a, 0x01, 0x03 };
	struct fx *f = *state;
	struct ocsp_result res;
	unsigned char *der;
	size_t len;

	assert_int_equal(ocsp_response_status_build(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, &der,
	    &len), 0);
	assert_int_equal(len, sizeof(malformed));
	assert_memory_equal(der, malformed, len);
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &res), OCSP_REFUSED);
	OPENSSL_free(der);
	assert_int_equal(ocsp_response_status_build(OCSP_RESPONSE_STATUS_UNAUTHORIZED, &der, &len), 0);
	assert_int_equal(len, sizeof(unauthorized));
	assert_memory_equal(der, unauthorized, len);
	assert_int_equal(ocsp_verify(der, len, f->id, f->ca.cert, f->now, &res), OCSP_REFUSED);
	OPENSSL_free(der);
	assert_int_equal(ocsp_response_status_build(OCSP_RESPONSE_STATUS_TRYLATER, &der, &len), 0);
	assert_memory_equal(der, try_later, len);
	OPENSSL_free(der);
	/* "successful" needs a signed body: not something this builds. */
	assert_int_equal(ocsp_response_status_build(OCSP_RESPONSE_STATUS_SUCCESSFUL, &der, &len), -1);
	assert_null(der);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signer_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_this_update_in_future, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_next_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_before_this, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_certid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unrelated_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delegated_responder_with_eku, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delegated_responder_without_eku, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delegated_responder_of_other_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delegated_responder_expired_at_now, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_intermediate_issuer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_signature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_signed_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test(test_verdict_names),
		cmocka_unit_test_setup_teardown(test_request_round_trip, setup, teardown),
		cmocka_unit_test(test_get_url_escaping),
		cmocka_unit_test_setup_teardown(test_get_url_real_request, setup, teardown),
		cmocka_unit_test(test_get_url_too_long),
		cmocka_unit_test_setup_teardown(test_request_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_critical_extensions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_decode_quirks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_responses, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
