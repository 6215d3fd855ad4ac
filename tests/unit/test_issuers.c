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
#include "ocsp.h"
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
	id = OCSP_cert_to_id(EVP_md5(), f->leaf.cert, f->ca.cert);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
	assert_int_equal(miss, ISSUERS_HASH_ALG);
	OCSP_CERTID_free(id);
	assert_null(issuers_resolve(f->r, f->trust, time(NULL), NULL, &key, &got, &miss));
}

/* The DER of testpki_certid()'s CertID into out (cap bytes); returns its length. */
static size_t
certid_der(X509 *subject, X509 *issuer, const EVP_MD *md, enum stapler_hash_params params,
    unsigned char *out, size_t cap)
{
	OCSP_CERTID *id = testpki_certid(subject, issuer, md, params == STAPLER_PARAMS_ABSENT);
	unsigned char *der = NULL;
	int n = i2d_OCSP_CERTID(id, &der);

	assert_true(n > 0 && (size_t)n <= cap);
	memcpy(out, der, (size_t)n);
	OPENSSL_free(der);
	OCSP_CERTID_free(id);
	return (size_t)n;
}

/* The key is the CertID as encoded: each of SHA-1, SHA-256, SHA-384 and SHA-512, with NULL or
 * absent parameters, is its own key; the request reader (the /ocsp hit path) and OpenSSL's
 * decoder (the miss path) make the same key of it; the request sent upstream carries the
 * CertID byte for byte. */
static void
test_certid_encodings(void **state)
{
	static const struct {
		enum stapler_hash_alg alg;
		const EVP_MD *(*md)(void);
	} algs[] = {
		{ STAPLER_HASH_SHA1, EVP_sha1 }, { STAPLER_HASH_SHA256, EVP_sha256 },
		{ STAPLER_HASH_SHA384, EVP_sha384 }, { STAPLER_HASH_SHA512, EVP_sha512 },
	};
	struct fx *f = *state;
	struct stapler_key keys[8];
	int nkeys = 0;

	assert_int_equal(issuers_learn(f->r, f->ca.cert, NULL), 0);
	for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
		for (int pa = STAPLER_PARAMS_NULL; pa <= STAPLER_PARAMS_ABSENT; pa++) {
			unsigned char cid[300], *req = NULL, *enc = NULL;
			const unsigned char *p = cid;
			const struct certs_urls *got;
			struct ocsp_certid_view v;
			struct stapler_key key, fast;
			enum stapler_hash_params params;
			enum stapler_hash_alg alg;
			enum issuers_miss miss;
			OCSP_CERTID *id;
			size_t n, req_len;
			int elen;

			n = certid_der(f->leaf.cert, f->ca.cert, algs[a].md(),
			    (enum stapler_hash_params)pa, cid, sizeof(cid));
			assert_non_null(id = d2i_OCSP_CERTID(NULL, &p, (long)n));
			/* OpenSSL keeps the encoding it decoded... */
			elen = i2d_OCSP_CERTID(id, &enc);
			assert_int_equal((size_t)elen, n);
			assert_memory_equal(enc, cid, n);
			OPENSSL_free(enc);
			assert_int_equal(certs_certid_alg(id, &alg, &params), 0);
			assert_int_equal(alg, algs[a].alg);
			assert_int_equal(params, pa);
			/* ...and the request staplerd sends upstream on a miss carries it. */
			assert_int_equal(ocsp_request_build(id, &req, &req_len), 0);
			assert_int_equal(ocsp_request_read(req, req_len, &v), 0);
			assert_int_equal(v.certid_len, n);
			assert_memory_equal(v.certid, cid, n);
			assert_int_equal(v.alg, algs[a].alg);
			assert_int_equal(v.params, pa);
			/* The miss path's key (OpenSSL) is the hit path's key (the reader). */
			assert_ptr_equal(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got,
			    &miss), f->ca.cert);
			assert_int_equal(key.hash_alg, algs[a].alg);
			assert_int_equal(key.hash_params, pa);
			memset(&fast, 0, sizeof(fast));
			assert_int_equal(issuers_key(f->r, v.alg, v.name_hash, v.key_hash, &fast), 0);
			fast.hash_params = (unsigned char)v.params;
			fast.serial_len = (unsigned char)v.serial_len;
			memcpy(fast.serial, v.serial, v.serial_len);
			assert_true(stapler_key_equal(&fast, &key));
			assert_memory_equal(&fast, &key, sizeof(key));
			/* One issuer identity and serial in every form; the form tells them apart. */
			for (int i = 0; i < nkeys; i++) {
				assert_memory_equal(keys[i].key_hash, key.key_hash, STAPLER_SHA1_LEN);
				assert_memory_equal(keys[i].name_hash, key.name_hash, STAPLER_SHA1_LEN);
				assert_false(stapler_key_equal(&keys[i], &key));
			}
			keys[nkeys++] = key;
			OPENSSL_free(req);
			OCSP_CERTID_free(id);
		}
	}
	/* Parameters other than NULL or absent are no hash algorithm staplerd knows. */
	{
		unsigned char cid[300], odd[310];
		const unsigned char *p = odd;
		const struct certs_urls *got;
		struct stapler_key key;
		enum issuers_miss miss;
		OCSP_CERTID *id;
		size_t n = certid_der(f->leaf.cert, f->ca.cert, EVP_sha256(), STAPLER_PARAMS_NULL, cid,
		    sizeof(cid));

		/* 05 00 becomes 04 00 (an empty OCTET STRING): same lengths */
		memcpy(odd, cid, n);
		for (size_t i = 0; i + 1 < n; i++) {
			if (odd[i] == 0x05 && odd[i + 1] == 0x00) {
				odd[i] = 0x04;
				break;
			}
		}
		assert_non_null(id = d2i_OCSP_CERTID(NULL, &p, (long)n));
		assert_null(issuers_resolve(f->r, f->trust, time(NULL), id, &key, &got, &miss));
		assert_int_equal(miss, ISSUERS_HASH_ALG);
		OCSP_CERTID_free(id);
	}
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
		cmocka_unit_test_setup_teardown(test_certid_encodings, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
