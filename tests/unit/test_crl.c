/* Unit tests for crl.c's pure parts: a CRL verified like an OCSP response with the time
 * injected (signature, issuer, dates, size, delta CRLs refused, no trailing bytes), the serial
 * lookup, and the withdrawal decision. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "crl.h"
#include "testpki.h"

#define NOW ((time_t)1800000000)

static struct testpki_ent root, other;

struct crl_opts {
	const struct testpki_ent *issuer;   /* whose name it carries */
	EVP_PKEY *key;                      /* who signs (NULL: the issuer) */
	const long *serials;
	int n;
	time_t this_update, next_update;
	int no_next_update, delta;
};

/* A DER CRL (OPENSSL_free) built from o. */
static unsigned char *
make_crl(const struct crl_opts *o, size_t *len)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	unsigned char *der = NULL;
	int n;

	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(o->issuer->cert)), 1);
	ASN1_TIME_set(t, o->this_update);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	if (!o->no_next_update) {
		ASN1_TIME_set(t, o->next_update);
		assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
	}
	for (int i = 0; i < o->n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *s = ASN1_INTEGER_new();

		ASN1_INTEGER_set(s, o->serials[i]);
		X509_REVOKED_set_serialNumber(r, s);
		ASN1_TIME_set(t, o->this_update - 60);
		X509_REVOKED_set_revocationDate(r, t);
		assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
		ASN1_INTEGER_free(s);
	}
	if (o->delta) {
		ASN1_INTEGER *base = ASN1_INTEGER_new();

		ASN1_INTEGER_set(base, 1);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_delta_crl, base, 1, 0), 1);
		ASN1_INTEGER_free(base);
	}
	X509_CRL_sort(crl);
	assert_true(X509_CRL_sign(crl, o->key != NULL ? o->key : o->issuer->key, EVP_sha256()) > 0);
	n = i2d_X509_CRL(crl, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return der;
}

static struct crl_opts
good_opts(const long *serials, int n)
{
	struct crl_opts o = { &root, NULL, serials, n, NOW - 600, NOW + 3600, 0, 0 };

	return o;
}

static struct stapler_key
key_of(long serial)
{
	struct stapler_key k;
	unsigned char b[8];
	int n = 0;

	memset(&k, 0, sizeof(k));
	for (int i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(serial & 0xff);
		serial >>= 8;
	}
	while (n < 7 && b[n] == 0)
		n++;
	k.serial_len = (unsigned char)(8 - n);
	memcpy(k.serial, b + n, k.serial_len);
	return k;
}

static int
verify(const struct crl_opts *o, size_t max, time_t now, struct crl_list *out, char *why)
{
	size_t len;
	unsigned char *der = make_crl(o, &len);
	int rc = crl_parse_verify(der, len, max, root.cert, now, out, why, 256);

	OPENSSL_free(der);
	return rc;
}

static void
test_verified_crl_lists_its_serials(void **state)
{
	static const long serials[] = { 0x7001, 0x42, 0x10000001, 0x80 };
	struct crl_opts o = good_opts(serials, 4);
	struct crl_list l;
	struct stapler_key k;
	char why[256];

	(void)state;
	assert_int_equal(verify(&o, 1 << 20, NOW, &l, why), 0);
	assert_int_equal(l.this_update, NOW - 600);
	assert_int_equal(l.next_update, NOW + 3600);
	assert_int_equal(l.n, 4);
	for (int i = 0; i < 4; i++) {
		k = key_of(serials[i]);
		assert_true(crl_listed(&l, &k));
	}
	k = key_of(0x7002);
	assert_false(crl_listed(&l, &k));
	/* 0x80 is stored with a leading zero octet in DER: the magnitude is what counts. */
	k = key_of(0x80);
	assert_int_equal(k.serial_len, 1);
	assert_true(crl_listed(&l, &k));
	crl_list_clear(&l);
	/* An empty CRL is a CRL. */
	o = good_opts(NULL, 0);
	assert_int_equal(verify(&o, 1 << 20, NOW, &l, why), 0);
	k = key_of(0x42);
	assert_false(crl_listed(&l, &k));
	crl_list_clear(&l);
}

static void
expect_refused(const struct crl_opts *o, size_t max, time_t now, const char *reason)
{
	struct crl_list l;
	char why[256];

	assert_int_equal(verify(o, max, now, &l, why), -1);
	if (strstr(why, reason) == NULL)
		fail_msg("wanted \"%s\" in \"%s\"", reason, why);
	assert_int_equal(l.n, 0);
	assert_null(l.serials);
}

static void
test_bad_crls_are_refused(void **state)
{
	static const long serials[] = { 0x42 };
	struct crl_opts o;
	struct crl_list l;
	unsigned char *der, *junk;
	size_t len;
	char why[256];

	(void)state;
	o = good_opts(serials, 1);
	o.key = other.key;
	expect_refused(&o, 1 << 20, NOW, "bad signature");
	o = good_opts(serials, 1);
	o.issuer = &other;
	expect_refused(&o, 1 << 20, NOW, "another CA");
	/* The clock decides: valid at NOW, expired an hour later. */
	o = good_opts(serials, 1);
	expect_refused(&o, 1 << 20, NOW + 3601, "expired");
	o.this_update = NOW + CRL_SKEW + 10;
	o.next_update = NOW + 7200;
	expect_refused(&o, 1 << 20, NOW, "in the future");
	o = good_opts(serials, 1);
	o.no_next_update = 1;
	expect_refused(&o, 1 << 20, NOW, "no nextUpdate");
	o = good_opts(serials, 1);
	o.delta = 1;
	expect_refused(&o, 1 << 20, NOW, "delta CRL");
	o = good_opts(serials, 1);
	expect_refused(&o, 64, NOW, "max_size");
	/* Trailing bytes: not one CertificateList. */
	der = make_crl(&o, &len);
	junk = malloc(len + 1);
	memcpy(junk, der, len);
	junk[len] = 0;
	assert_int_equal(crl_parse_verify(junk, len + 1, 1 << 20, root.cert, NOW, &l, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "not one DER"));
	assert_int_equal(crl_parse_verify((const unsigned char *)"junk", 4, 1 << 20, root.cert, NOW,
	    &l, why, sizeof(why)), -1);
	free(junk);
	OPENSSL_free(der);
}

static void
test_decision(void **state)
{
	(void)state;
	/* Not listed, or already revoked: nothing to do. */
	assert_int_equal(crl_decide(0, STAPLER_GOOD, 100, 200), CRL_KEEP);
	assert_int_equal(crl_decide(1, STAPLER_REVOKED, 100, 200), CRL_KEEP);
	/* Good or unknown from before the CRL: withdrawn (unknown is never good). */
	assert_int_equal(crl_decide(1, STAPLER_GOOD, 100, 200), CRL_WITHDRAW);
	assert_int_equal(crl_decide(1, STAPLER_UNKNOWN, 199, 200), CRL_WITHDRAW);
	/* From the CRL's time or after: OCSP is the newer word, served, but told. */
	assert_int_equal(crl_decide(1, STAPLER_GOOD, 200, 200), CRL_DISAGREE);
	assert_int_equal(crl_decide(1, STAPLER_GOOD, 300, 200), CRL_DISAGREE);
}

static int
group_setup(void **state)
{
	(void)state;
	root = testpki_root("crl root", NOW);
	other = testpki_root("crl other", NOW);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	testpki_ent_free(&root);
	testpki_ent_free(&other);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified_crl_lists_its_serials),
		cmocka_unit_test(test_bad_crls_are_refused),
		cmocka_unit_test(test_decision),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
