/* Unit tests for verify.c: a relying party's check of a staple, at an injected time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/ocsp.h>

#include "stapler/verify.h"
#include "certs.h"
#include "testpki.h"

#define DAY 86400L

struct fx {
	time_t now;                 /* a month ahead of the real clock: nothing may read it */
	struct testpki_ent root, ca, leaf, other, delegate, plain;
};

static int
setup(void **state)
{
	static const unsigned char dserial = 0x77, pserial = 0x78;
	struct fx *f = calloc(1, sizeof(*f));
	struct testpki_cert_opts o = { 0 };

	assert_non_null(f);
	f->now = time(NULL) + 30 * DAY;
	f->root = testpki_root("Verify Root", f->now);
	f->ca = testpki_ca("Verify CA", &f->root, f->now);
	f->leaf = testpki_leaf("Meter 0099", &f->ca, 0x99, "http://ocsp.example/", f->now);
	f->other = testpki_root("Other CA", f->now);
	o.cn = "Verify OCSP";
	o.issuer = &f->ca;
	o.serial = &dserial;
	o.serial_len = 1;
	o.base = f->now;
	o.not_before = -DAY;
	o.not_after = 30 * DAY;
	o.ocsp_signing = 1;
	f->delegate = testpki_cert(&o);
	/* Same issuer, no id-kp-OCSPSigning: may not sign responses. */
	o.cn = "Not a responder";
	o.serial = &pserial;
	o.ocsp_signing = 0;
	f->plain = testpki_cert(&o);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	testpki_ent_free(&f->root);
	testpki_ent_free(&f->ca);
	testpki_ent_free(&f->leaf);
	testpki_ent_free(&f->other);
	testpki_ent_free(&f->delegate);
	testpki_ent_free(&f->plain);
	free(f);
	return 0;
}

static struct testpki_resp_opts
good_opts(const struct fx *f)
{
	return testpki_resp_good(f->leaf.cert, &f->ca, f->now);
}

/* Builds the response from o, optionally flips one byte at flip (from the end when < 0), and
 * verifies it for the leaf under issuer at now. */
static enum stapler_verify_code
check(const struct fx *f, const struct testpki_resp_opts *o, X509 *issuer, time_t now,
    long max_age, long flip, struct stapler_verify_result *res)
{
	unsigned char *der;
	size_t len;
	enum stapler_verify_code c;

	der = testpki_ocsp_response(o, &len);
	if (flip != 0)
		der[flip < 0 ? (long)len + flip : flip] ^= 0x01;
	c = stapler_verify_staple(der, len, f->leaf.cert, issuer, now, max_age, res);
	OPENSSL_free(der);
	assert_int_equal(c, res->code);
	if (c == STAPLER_VERIFY_INVALID || c == STAPLER_VERIFY_STALE)
		assert_true(res->detail[0] != '\0');
	return c;
}

static void
test_good(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct stapler_verify_result r;

	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_GOOD);
	assert_int_equal(r.status, STAPLER_GOOD);
	assert_int_equal((long long)r.this_update, (long long)(f->now - 3600));
	assert_int_equal((long long)r.next_update, (long long)(f->now + 7 * DAY));
	assert_string_equal(stapler_verify_code_name(r.code), "good");
	/* Fresh enough for a two-hour bound. */
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 7200, 0, &r), STAPLER_VERIFY_GOOD);
	/* A delegated responder certified by the issuer may sign. */
	o.signer = &f->delegate;
	o.include_signer = 1;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_GOOD);
}

/* A staple for a SHA-2 CertID ([cache] certid_hash, or a SHA-2 /ocsp request), its hash
 * parameters NULL or absent (as Bouncy Castle sends them), verifies too; one for another
 * certificate's CertID does not. */
static void
test_sha2_certids(void **state)
{
	const EVP_MD *(*const mds[])(void) = { EVP_sha256, EVP_sha384, EVP_sha512 };
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++) {
		for (int absent = 0; absent <= 1; absent++) {
			struct testpki_resp_opts o = good_opts(f);
			struct stapler_verify_result r;
			OCSP_CERTID *id = testpki_certid(f->leaf.cert, f->ca.cert, mds[i](), absent);
			OCSP_CERTID *wrong = testpki_certid(f->delegate.cert, f->ca.cert, mds[i](),
			    absent);

			o.id = id;
			assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r),
			    STAPLER_VERIFY_GOOD);
			assert_int_equal(r.status, STAPLER_GOOD);
			o.id = wrong;
			assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r),
			    STAPLER_VERIFY_INVALID);
			OCSP_CERTID_free(id);
			OCSP_CERTID_free(wrong);
		}
	}
}

static void
test_revoked_and_unknown(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct stapler_verify_result r;

	o.cert_status = V_OCSP_CERTSTATUS_REVOKED;
	o.revoked_at = f->now - 2 * DAY;
	o.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_REVOKED);
	assert_int_equal(r.status, STAPLER_REVOKED);
	assert_int_equal((long long)r.revoked_at, (long long)(f->now - 2 * DAY));
	assert_int_equal(r.revocation_reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
	o = good_opts(f);
	o.cert_status = V_OCSP_CERTSTATUS_UNKNOWN;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_UNKNOWN);
}

static void
test_invalid(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct stapler_verify_result r;
	static const unsigned char junk[] = "not an OCSP response";

	/* A flipped byte in the signature (the last bytes of the DER). */
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, -3, &r), STAPLER_VERIFY_INVALID);
	/* Signed by another CA. */
	o.signer = &f->other;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_INVALID);
	/* Signed by a certificate of the issuer without id-kp-OCSPSigning. */
	o.signer = &f->plain;
	o.include_signer = 1;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_INVALID);
	/* For another certificate: the CertID does not match. */
	o = good_opts(f);
	o.subject = f->plain.cert;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_INVALID);
	assert_non_null(strstr(r.detail, "wrong_certid"));
	/* tryLater carries no answer. */
	o = good_opts(f);
	o.response_status = OCSP_RESPONSE_STATUS_TRYLATER;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_INVALID);
	/* The wrong issuer certificate is refused before the response is looked at. */
	o = good_opts(f);
	assert_int_equal(check(f, &o, f->other.cert, f->now, 0, 0, &r), STAPLER_VERIFY_INVALID);
	assert_non_null(strstr(r.detail, "did not issue"));
	assert_int_equal(stapler_verify_staple(junk, sizeof(junk), f->leaf.cert, f->ca.cert, f->now,
	    0, &r), STAPLER_VERIFY_INVALID);
	assert_int_equal(stapler_verify_staple(NULL, 0, f->leaf.cert, f->ca.cert, f->now, 0, &r),
	    STAPLER_VERIFY_INVALID);
	/* thisUpdate well in the future. */
	o.this_update = f->now + DAY;
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 0, 0, &r), STAPLER_VERIFY_INVALID);
}

static void
test_stale(void **state)
{
	struct fx *f = *state;
	struct testpki_resp_opts o = good_opts(f);
	struct stapler_verify_result r;

	/* Older than max-age: valid signature, but too old for this relying party. */
	assert_int_equal(check(f, &o, f->ca.cert, f->now, 1800, 0, &r), STAPLER_VERIFY_STALE);
	assert_int_equal(r.status, STAPLER_GOOD);
	assert_non_null(strstr(r.detail, "maximum age"));
	/* Verified after nextUpdate: the time comes from the caller, not the clock. */
	assert_int_equal(check(f, &o, f->ca.cert, f->now + 8 * DAY, 0, 0, &r), STAPLER_VERIFY_STALE);
	assert_string_equal(stapler_verify_code_name(r.code), "stale");
	assert_int_equal(check(f, &o, f->ca.cert, f->now + 7 * DAY - 1, 0, 0, &r),
	    STAPLER_VERIFY_GOOD);
}

static void
test_find_issuer(void **state)
{
	struct fx *f = *state;
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *got;

	assert_non_null(sk);
	assert_null(stapler_verify_find_issuer(f->leaf.cert, sk));
	sk_X509_push(sk, f->other.cert);
	sk_X509_push(sk, f->leaf.cert);
	assert_null(stapler_verify_find_issuer(f->leaf.cert, sk));
	sk_X509_push(sk, f->root.cert);
	sk_X509_push(sk, f->ca.cert);
	got = stapler_verify_find_issuer(f->leaf.cert, sk);
	assert_ptr_equal(got, f->ca.cert);
	X509_free(got);
	got = stapler_verify_find_issuer(f->ca.cert, sk);
	assert_ptr_equal(got, f->root.cert);
	X509_free(got);
	sk_X509_free(sk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sha2_certids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_issuer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
