/* Unit tests for issuers.c: learning issuers and resolving a client's CertID to one. */
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

#include "certs.h"
#include "issuers.h"
#include "testpki.h"

struct fx {
	struct testpki_ent root, ca, leaf, root_leaf, impostor;
	struct issuers *r;
	struct certs_trust *trust;
	char *dir;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	time_t now = time(NULL);
	unsigned char *pem;
	size_t len;
	char *path, err[256];

	assert_non_null(f);
	f->root = testpki_root("Issuers Root", now);
	f->ca = testpki_ca("Issuers CA", &f->root, now);
	f->leaf = testpki_leaf("Leaf", &f->ca, 7, "http://ocsp.ca/", now);
	f->root_leaf = testpki_leaf("Root leaf", &f->root, 8, NULL, now);
	/* Another key under the CA's name. */
	f->impostor = testpki_root("Issuers CA", now);
	f->r = issuers_new();
	assert_non_null(f->r);
	f->dir = testpki_tmpdir();
	pem = testpki_pem(&f->root.cert, 1, &len);
	path = testpki_write_file(f->dir, "bundle.pem", pem, len);
	f->trust = certs_trust_load(path, err, sizeof(err));
	assert_non_null(f->trust);
	free(path);
	free(pem);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	issuers_free(&f->r);
	assert_null(f->r);
	issuers_free(NULL);
	certs_trust_free(&f->trust);
	testpki_tmpdir_remove(f->dir);
	free(f->dir);
	testpki_ent_free(&f->root);
	testpki_ent_free(&f->ca);
	testpki_ent_free(&f->leaf);
	testpki_ent_free(&f->root_leaf);
	testpki_ent_free(&f->impostor);
	free(f);
	return 0;
}

static void
test_learn_and_resolve(void **state)
{
	struct fx *f = *state;
	struct certs_urls urls = { 0 };
	const struct certs_urls *got;
	enum issuers_miss miss;
	struct stapler_key key;
	OCSP_CERTID *id = certs_certid(f->leaf.cert, f->ca.cert, STAPLER_HASH_SHA1);

	/* Not learned yet, and not an anchor. */
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_UNKNOWN);
	assert_int_equal(got->n, 0);

	certs_ocsp_urls(f->leaf.cert, &urls, NULL, 0);
	assert_int_equal(issuers_learn(f->r, f->ca.cert, &urls), 0);
	/* Twice, and the same URL again from a cache row: no duplicates. */
	assert_int_equal(issuers_learn(f->r, f->ca.cert, &urls), 0);
	assert_int_equal(issuers_count(f->r), 1);
	{
		unsigned char *der;
		size_t len;

		der = testpki_der(f->ca.cert, &len);
		assert_int_equal(issuers_learn_der(f->r, der, len,
		    "15:http://ocsp.ca/,17:http://backup.ca/,"), 0);
		assert_int_equal(issuers_learn_der(f->r, der, 10, NULL), -1);
		OPENSSL_free(der);
	}
	assert_int_equal(issuers_count(f->r), 1);
	assert_ptr_equal(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss), f->ca.cert);
	assert_int_equal(miss, ISSUERS_FOUND);
	assert_int_equal(got->n, 2);
	assert_string_equal(got->url[0], "http://ocsp.ca/");
	assert_string_equal(got->url[1], "http://backup.ca/");
	certs_urls_free(&urls);
	OCSP_CERTID_free(id);
}

static void
test_anchor_without_urls(void **state)
{
	struct fx *f = *state;
	const struct certs_urls *got;
	enum issuers_miss miss;
	struct stapler_key key;
	OCSP_CERTID *id = certs_certid(f->root_leaf.cert, f->root.cert, STAPLER_HASH_SHA1);
	X509 *x;

	x = issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, f->root.cert), 0);   /* the bundle's own copy */
	assert_int_equal(miss, ISSUERS_FOUND);
	assert_int_equal(got->n, 0);
	assert_null(issuers_resolve(f->r, NULL, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_UNKNOWN);
	OCSP_CERTID_free(id);
}

static void
test_name_hash_and_algorithm(void **state)
{
	struct fx *f = *state;
	const struct certs_urls *got;
	enum issuers_miss miss;
	struct stapler_key key;
	OCSP_CERTID *id;

	assert_int_equal(issuers_learn(f->r, f->ca.cert, NULL), 0);
	/* The impostor's name hash is the CA's (same name), its key hash is not: unknown. */
	id = certs_certid(f->leaf.cert, f->impostor.cert, STAPLER_HASH_SHA1);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_UNKNOWN);
	OCSP_CERTID_free(id);
	/* The CA's key hash with the root's name hash: another issuer (two CAs may share a key
	 * under different names), unknown here. */
	id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(f->root.cert),
	    X509_get0_pubkey_bitstr(f->ca.cert), X509_get_serialNumber(f->leaf.cert));
	assert_non_null(id);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_UNKNOWN);
	OCSP_CERTID_free(id);
	/* A SHA-256 CertID resolves to the same issuer; its key is the issuer's SHA-1 identity
	 * with the SHA-256 algorithm. */
	{
		struct stapler_key k1;
		OCSP_CERTID *id1 = certs_certid(f->leaf.cert, f->ca.cert, STAPLER_HASH_SHA1);

		id = OCSP_cert_to_id(EVP_sha256(), f->leaf.cert, f->ca.cert);
		assert_ptr_equal(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss),
		    f->ca.cert);
		assert_int_equal(miss, ISSUERS_FOUND);
		assert_int_equal(key.hash_alg, STAPLER_HASH_SHA256);
		assert_int_equal(certs_certid_key(id1, NULL, &k1), 0);
		assert_memory_equal(key.key_hash, k1.key_hash, STAPLER_SHA1_LEN);
		assert_memory_equal(key.name_hash, k1.name_hash, STAPLER_SHA1_LEN);
		assert_false(stapler_key_equal(&key, &k1));
		OCSP_CERTID_free(id);
		OCSP_CERTID_free(id1);
		/* ...and a SHA-256 CertID of an anchor never learned. */
		id = OCSP_cert_to_id(EVP_sha256(), f->root_leaf.cert, f->root.cert);
		assert_non_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
		assert_int_equal(key.hash_alg, STAPLER_HASH_SHA256);
		OCSP_CERTID_free(id);
	}
	/* Other algorithms are not served. */
	id = OCSP_cert_to_id(EVP_sha384(), f->leaf.cert, f->ca.cert);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_HASH_ALG);
	OCSP_CERTID_free(id);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), NULL, &key, &got, &miss));
}

/* A learned issuer is served only while it chains to the anchors in force. */
static void
test_retrust(void **state)
{
	struct fx *f = *state;
	const struct certs_urls *got;
	enum issuers_miss miss;
	struct stapler_key key;
	OCSP_CERTID *id = certs_certid(f->leaf.cert, f->ca.cert, STAPLER_HASH_SHA1);
	struct certs_trust *other;
	unsigned char *der, *pem;
	size_t len;
	char *path, err[256];

	/* Learned from the cache (warm start): not served until checked against the anchors. */
	der = testpki_der(f->ca.cert, &len);
	assert_int_equal(issuers_learn_der(f->r, der, len, "15:http://ocsp.ca/,"), 0);
	OPENSSL_free(der);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_UNTRUSTED);
	assert_int_equal(issuers_retrust(f->r, f->trust, time(NULL)), 0);
	{
		X509 *x = issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss);

		assert_non_null(x);
		assert_int_equal(X509_cmp(x, f->ca.cert), 0);
	}
	assert_int_equal(got->n, 1);

	/* The anchors change to another root: the CA is no longer served. */
	pem = testpki_pem(&f->impostor.cert, 1, &len);
	path = testpki_write_file(f->dir, "other.pem", pem, len);
	assert_non_null(other = certs_trust_load(path, err, sizeof(err)));
	assert_int_equal(issuers_retrust(f->r, other, time(NULL)), 1);
	assert_null(issuers_resolve(f->r, other, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_UNTRUSTED);
	assert_int_equal(got->n, 0);
	/* Nor past the anchor's validity. */
	assert_int_equal(issuers_retrust(f->r, f->trust, time(NULL) + 20L * 365 * 86400), 1);
	assert_int_equal(issuers_retrust(f->r, f->trust, time(NULL)), 0);
	assert_false(certs_trust_accepts(other, f->ca.cert, time(NULL), NULL));
	assert_true(certs_trust_accepts(f->trust, f->ca.cert, time(NULL), NULL));
	assert_true(certs_trust_accepts(f->trust, f->root.cert, time(NULL), NULL));
	certs_trust_free(&other);
	free(pem);
	free(path);
	OCSP_CERTID_free(id);
}

/* A trust verdict holds until a certificate of the issuer's chain expires, then is redone. */
static void
test_trust_until_chain_expiry(void **state)
{
	struct fx *f = *state;
	struct stapler_key key;
	time_t now = time(NULL), until, ca_end, root_end;
	int trusted = -1;

	assert_int_equal(certs_not_after(f->ca.cert, &ca_end), 0);
	assert_int_equal(certs_not_after(f->root.cert, &root_end), 0);
	assert_true(certs_trust_accepts(f->trust, f->ca.cert, now, &until));
	assert_int_equal(until, ca_end < root_end ? ca_end : root_end);
	assert_false(certs_trust_accepts(f->trust, f->ca.cert, until + 1, &until));
	assert_int_equal(until, 0);

	assert_int_equal(issuers_learn(f->r, f->ca.cert, NULL), 0);
	memset(&key, 0, sizeof(key));
	assert_int_equal(certs_issuer_hashes(f->ca.cert, key.name_hash, key.key_hash), 0);
	assert_ptr_equal(issuers_get(f->r, &key, f->trust, now, &trusted), f->ca.cert);
	assert_int_equal(trusted, 1);
	/* Past the chain's first notAfter: no longer trusted, and it stays so. */
	assert_non_null(issuers_get(f->r, &key, f->trust, ca_end + 1, &trusted));
	assert_int_equal(trusted, 0);
	assert_non_null(issuers_get(f->r, &key, f->trust, now, &trusted));
	assert_int_equal(trusted, 0);
	/* A re-check against the anchors (reload) restores it. */
	assert_int_equal(issuers_retrust(f->r, f->trust, now), 0);
	assert_non_null(issuers_get(f->r, &key, f->trust, now, &trusted));
	assert_int_equal(trusted, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_learn_and_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retrust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_until_chain_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anchor_without_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_hash_and_algorithm, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
