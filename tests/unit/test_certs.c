/* Unit tests for certs.c: serial hex, CertID, AIA URLs, body parsing, trust bundle and chain check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs.h"
#include "stapler/types.h"
#include "util.h"
#include "testpki.h"

#define DAY 86400L

/* now is a month ahead of the real clock: a check that read the clock instead of the
 * injected time would see certificates that expired "at now" as still valid. */
static time_t now_t;

static int
setup_time(void **state)
{
	(void)state;
	now_t = time(NULL) + 30 * DAY;
	return 0;
}

/* --- serial formatting ------------------------------------------------------------------ */

/* What `openssl x509 -serial` prints after "serial=": i2a_ASN1_INTEGER of the serial. */
static void
openssl_serial(X509 *x, char *out, size_t cap)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int n;

	assert_non_null(bio);
	assert_true(i2a_ASN1_INTEGER(bio, X509_get0_serialNumber(x)) > 0);
	n = BIO_read(bio, out, (int)cap - 1);
	assert_true(n > 0);
	out[n] = '\0';
	BIO_free(bio);
}

static void
serial_hex_of(const unsigned char *serial, size_t len, char *hex, char *expect, size_t cap)
{
	struct testpki_ent ca = testpki_root("Serial CA", now_t);
	struct testpki_cert_opts o = {
		.cn = "Serial Leaf", .issuer = &ca, .serial = serial, .serial_len = len,
		.base = now_t, .not_before = -DAY, .not_after = DAY,
	};
	struct testpki_ent leaf = testpki_cert(&o);
	struct stapler_key key;
	OCSP_CERTID *id = certs_certid(leaf.cert, ca.cert, STAPLER_HASH_SHA1);

	assert_non_null(id);
	assert_int_equal(certs_certid_key(id, NULL, &key), 0);
	assert_int_equal(key.serial_negative, 0);
	stapler_key_serial_hex(&key, hex);
	openssl_serial(leaf.cert, expect, cap);
	OCSP_CERTID_free(id);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
}

static void
test_serial_hex_20_octets_high_bit(void **state)
{
	static const unsigned char serial[20] = {
		0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
		0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x10, 0x20, 0x30, 0xfe,
	};
	char hex[STAPLER_SERIAL_HEX_MAX], expect[128];

	(void)state;
	serial_hex_of(serial, sizeof(serial), hex, expect, sizeof(expect));
	/* DER adds a 0x00 octet to keep it positive; the serial shown has none. */
	assert_string_equal(hex, "800102030405060708090ABBCCDDEEFF102030FE");
	assert_int_equal(strlen(hex), 40);
	assert_string_equal(hex, expect);
}

static void
test_serial_hex_small(void **state)
{
	static const unsigned char one[1] = { 0x05 };
	static const unsigned char two[2] = { 0x12, 0xab };
	char hex[STAPLER_SERIAL_HEX_MAX], expect[128];

	(void)state;
	serial_hex_of(one, sizeof(one), hex, expect, sizeof(expect));
	assert_string_equal(hex, "05");
	assert_string_equal(hex, expect);
	serial_hex_of(two, sizeof(two), hex, expect, sizeof(expect));
	assert_string_equal(hex, "12AB");
	assert_string_equal(hex, expect);
}

static void
test_serial_hex_negative_and_empty(void **state)
{
	struct stapler_key key;
	char hex[STAPLER_SERIAL_HEX_MAX];

	(void)state;
	memset(&key, 0, sizeof(key));
	stapler_key_serial_hex(&key, hex);
	assert_string_equal(hex, "00");
	key.serial_len = 2;
	key.serial[0] = 0x01;
	key.serial[1] = 0xf0;
	key.serial_negative = 1;
	stapler_key_serial_hex(&key, hex);
	assert_string_equal(hex, "-01F0");
}

/* --- CertID ----------------------------------------------------------------------------- */

static void
sha1_hex(const unsigned char *data, size_t len, char out[STAPLER_SHA1_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	assert_true(EVP_Digest(data, len, md, &mdlen, EVP_sha1(), NULL));
	assert_int_equal(mdlen, STAPLER_SHA1_LEN);
	util_hex(md, mdlen, out);
}

static void
test_certid_hashes_and_serial(void **state)
{
	static const unsigned char serial[3] = { 0x01, 0x02, 0x03 };
	struct testpki_ent root = testpki_root("CertID Root", now_t);
	struct testpki_ent ca = testpki_ca("CertID CA", &root, now_t);
	struct testpki_cert_opts o = {
		.cn = "CertID Leaf", .issuer = &ca, .serial = serial, .serial_len = 3,
		.base = now_t, .not_before = -DAY, .not_after = DAY,
	};
	struct testpki_ent leaf = testpki_cert(&o);
	const ASN1_BIT_STRING *bits;
	unsigned char *name_der = NULL;
	char want_name[STAPLER_SHA1_HEX], want_key[STAPLER_SHA1_HEX], leaf_key[STAPLER_SHA1_HEX];
	char got_name[STAPLER_SHA1_HEX], got_key[STAPLER_SHA1_HEX], hex[STAPLER_SERIAL_HEX_MAX];
	struct stapler_key key;
	OCSP_CERTID *id;
	int n;

	(void)state;
	n = i2d_X509_NAME(X509_get_subject_name(ca.cert), &name_der);
	assert_true(n > 0);
	sha1_hex(name_der, (size_t)n, want_name);
	OPENSSL_free(name_der);
	bits = X509_get0_pubkey_bitstr(ca.cert);
	sha1_hex(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), want_key);
	bits = X509_get0_pubkey_bitstr(leaf.cert);
	sha1_hex(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), leaf_key);

	id = certs_certid(leaf.cert, ca.cert, STAPLER_HASH_SHA1);
	assert_non_null(id);
	certs_certid_name_hash_hex(id, got_name);
	assert_string_equal(got_name, want_name);
	assert_int_equal(certs_certid_key(id, NULL, &key), 0);
	util_hex(key.key_hash, STAPLER_SHA1_LEN, got_key);
	assert_string_equal(got_key, want_key);
	/* The issuer's key, not the subject's. */
	assert_string_not_equal(got_key, leaf_key);
	assert_int_equal(key.serial_len, 3);
	stapler_key_serial_hex(&key, hex);
	assert_string_equal(hex, "010203");

	OCSP_CERTID_free(id);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
	testpki_ent_free(&root);
}

static void
test_certid_serial_too_long(void **state)
{
	unsigned char serial[STAPLER_SERIAL_MAX + 1];
	struct testpki_ent ca = testpki_root("Long CA", now_t);
	struct testpki_cert_opts o = {
		.cn = "Long Leaf", .issuer = &ca, .serial = serial, .serial_len = sizeof(serial),
		.base = now_t, .not_before = -DAY, .not_after = DAY,
	};
	struct testpki_ent leaf, ok;
	struct stapler_key key;
	OCSP_CERTID *id;

	(void)state;
	memset(serial, 0x11, sizeof(serial));
	leaf = testpki_cert(&o);
	id = certs_certid(leaf.cert, ca.cert, STAPLER_HASH_SHA1);
	assert_non_null(id);
	assert_int_equal(certs_certid_key(id, NULL, &key), -1);
	OCSP_CERTID_free(id);

	o.serial_len = STAPLER_SERIAL_MAX;
	ok = testpki_cert(&o);
	id = certs_certid(ok.cert, ca.cert, STAPLER_HASH_SHA1);
	assert_int_equal(certs_certid_key(id, NULL, &key), 0);
	assert_int_equal(key.serial_len, STAPLER_SERIAL_MAX);
	OCSP_CERTID_free(id);

	testpki_ent_free(&ok);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
}

/* --- AIA -------------------------------------------------------------------------------- */

static struct testpki_ent
leaf_with_urls(const struct testpki_ent *ca, const char *const *urls, int n)
{
	struct testpki_cert_opts o = {
		.cn = "AIA Leaf", .issuer = ca, .base = now_t, .not_before = -DAY, .not_after = DAY,
		.ocsp_urls = urls, .n_ocsp_urls = n,
	};

	return testpki_cert(&o);
}

static void
test_aia_urls(void **state)
{
	/* Not in alphabetical order: the certificate's order must survive. */
	static const char *const urls[] = {
		"http://ocsp-z.example/", "https://ocsp-b.example:8443/x", "http://ocsp-a.example/",
		"http://ocsp-y.example/", "http://ocsp-c.example/",
	};
	struct testpki_ent ca = testpki_root("AIA CA", now_t);
	struct testpki_ent leaf;
	struct certs_urls u;

	(void)state;
	leaf = leaf_with_urls(&ca, urls, 0);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, NULL, 0), 0);
	assert_int_equal(u.n, 0);
	certs_urls_free(&u);
	testpki_ent_free(&leaf);

	leaf = leaf_with_urls(&ca, urls, 1);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, NULL, 0), 1);
	assert_string_equal(u.url[0], urls[0]);
	certs_urls_free(&u);
	assert_int_equal(u.n, 0);
	testpki_ent_free(&leaf);

	leaf = leaf_with_urls(&ca, urls, 3);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, NULL, 0), 3);
	assert_string_equal(u.url[0], urls[0]);
	assert_string_equal(u.url[1], urls[1]);
	assert_string_equal(u.url[2], urls[2]);
	certs_urls_free(&u);
	testpki_ent_free(&leaf);

	/* More than CERTS_MAX_URLS: the first ones are kept. */
	leaf = leaf_with_urls(&ca, urls, 5);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, NULL, 0), CERTS_MAX_URLS);
	for (int i = 0; i < CERTS_MAX_URLS; i++)
		assert_string_equal(u.url[i], urls[i]);
	certs_urls_free(&u);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
}

static void
test_aia_url_too_long_skipped(void **state)
{
	char *longurl = malloc(CERTS_MAX_URL_LEN + 1);
	const char *urls[2];
	struct testpki_ent ca = testpki_root("AIA CA", now_t);
	struct testpki_ent leaf;
	struct certs_urls u;

	(void)state;
	assert_non_null(longurl);
	memcpy(longurl, "http://", 7);
	memset(longurl + 7, 'a', CERTS_MAX_URL_LEN - 7);
	longurl[CERTS_MAX_URL_LEN] = '\0';
	urls[0] = longurl;
	urls[1] = "http://short.example/";
	leaf = leaf_with_urls(&ca, urls, 2);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, NULL, 0), 1);
	assert_string_equal(u.url[0], "http://short.example/");
	certs_urls_free(&u);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
	free(longurl);
}

/* --- certs_parse ------------------------------------------------------------------------ */

struct pki {
	struct testpki_ent root, ca, leaf, other_root;
};

static struct pki *
pki_new(long leaf_not_after)
{
	struct pki *p = calloc(1, sizeof(*p));
	struct testpki_cert_opts o = {
		.cn = "Meter 0001", .base = now_t, .not_before = -7 * DAY,
		.not_after = leaf_not_after,
	};

	assert_non_null(p);
	p->root = testpki_root("Test Root", now_t);
	p->ca = testpki_ca("Test Intermediate", &p->root, now_t);
	o.issuer = &p->ca;
	p->leaf = testpki_cert(&o);
	p->other_root = testpki_root("Other Root", now_t);
	return p;
}

static void
pki_free(struct pki *p)
{
	testpki_ent_free(&p->root);
	testpki_ent_free(&p->ca);
	testpki_ent_free(&p->leaf);
	testpki_ent_free(&p->other_root);
	free(p);
}

static int
setup_pki(void **state)
{
	setup_time(state);
	*state = pki_new(30 * DAY);
	return 0;
}

static int
teardown_pki(void **state)
{
	pki_free(*state);
	return 0;
}

static void
test_parse_pem_chain_in_order(void **state)
{
	struct pki *p = *state;
	X509 *chain[2] = { p->leaf.cert, p->ca.cert };
	STACK_OF(X509) *sk;
	unsigned char *pem;
	char err[256] = "";
	size_t len;

	pem = testpki_pem(chain, 2, &len);
	sk = certs_parse(pem, len, err, sizeof(err));
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), p->leaf.cert), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), p->ca.cert), 0);
	sk_X509_pop_free(sk, X509_free);
	free(pem);

	/* Reversed body, reversed stack: the order is the body's. */
	chain[0] = p->ca.cert;
	chain[1] = p->leaf.cert;
	pem = testpki_pem(chain, 2, &len);
	sk = certs_parse(pem, len, err, sizeof(err));
	assert_non_null(sk);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), p->ca.cert), 0);
	sk_X509_pop_free(sk, X509_free);
	free(pem);
}

static void
test_parse_pem_whitespace_and_crlf(void **state)
{
	struct pki *p = *state;
	X509 *one[1];
	unsigned char *a, *b, *body, *q;
	STACK_OF(X509) *sk;
	char err[256] = "";
	size_t alen, blen, i, n = 0;

	one[0] = p->leaf.cert;
	a = testpki_pem(one, 1, &alen);
	one[0] = p->ca.cert;
	b = testpki_pem(one, 1, &blen);
	body = malloc(2 * (alen + blen) + 16);
	assert_non_null(body);
	q = body;
	memcpy(q, "\n  \r\n", 5);
	q += 5;
	for (i = 0; i < alen; i++) {   /* the first block with CRLF line ends */
		if (a[i] == '\n')
			*q++ = '\r';
		*q++ = a[i];
	}
	memcpy(q, "\r\n\t\n", 4);
	q += 4;
	memcpy(q, b, blen - 1);        /* the last block without its final newline */
	q += blen - 1;
	n = (size_t)(q - body);
	sk = certs_parse(body, n, err, sizeof(err));
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 2);
	sk_X509_pop_free(sk, X509_free);
	free(body);
	free(a);
	free(b);
}

static void
test_parse_der(void **state)
{
	struct pki *p = *state;
	STACK_OF(X509) *sk;
	unsigned char *der, *longer;
	char err[256] = "";
	size_t len;

	der = testpki_der(p->leaf.cert, &len);
	sk = certs_parse(der, len, err, sizeof(err));
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), 1);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), p->leaf.cert), 0);
	sk_X509_pop_free(sk, X509_free);

	err[0] = '\0';
	assert_null(certs_parse(der, len - 1, err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(certs_parse(der, len / 2, err, sizeof(err)));

	longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, der, len);
	longer[len] = 0;
	err[0] = '\0';
	assert_null(certs_parse(longer, len + 1, err, sizeof(err)));
	assert_non_null(strstr(err, "trailing"));
	free(longer);
	OPENSSL_free(der);
}

static void
test_parse_junk(void **state)
{
	static const unsigned char junk[] = "this is not a certificate";
	static const unsigned char nul[4] = { 0, 0, 0, 0 };
	static const unsigned char seq[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	char err[256] = "";

	(void)state;
	assert_null(certs_parse(junk, sizeof(junk) - 1, err, sizeof(err)));
	assert_string_equal(err, "body is not a PEM or DER certificate");
	assert_null(certs_parse(nul, sizeof(nul), err, sizeof(err)));
	assert_null(certs_parse(seq, sizeof(seq), err, sizeof(err)));
	err[0] = '\0';
	assert_null(certs_parse(junk, 0, err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(certs_parse((const unsigned char *)" \n", 2, err, sizeof(err)));
	assert_null(certs_parse(NULL, 0, err, sizeof(err)));
}

static void
test_parse_pem_junk_around(void **state)
{
	struct pki *p = *state;
	X509 *one[1] = { p->leaf.cert };
	unsigned char *pem, *body;
	char err[256] = "";
	size_t len;

	pem = testpki_pem(one, 1, &len);
	body = malloc(len + 32);
	assert_non_null(body);

	/* Trailing junk. */
	memcpy(body, pem, len);
	memcpy(body + len, "garbage\n", 8);
	assert_null(certs_parse(body, len + 8, err, sizeof(err)));
	assert_non_null(strstr(err, "junk"));
	/* Leading junk. */
	memcpy(body, "hello\n", 6);
	memcpy(body + 6, pem, len);
	assert_null(certs_parse(body, len + 6, err, sizeof(err)));
	/* A truncated block. */
	assert_null(certs_parse(pem, len - 30, err, sizeof(err)));
	/* Corrupt base64 inside the block. */
	memcpy(body, pem, len);
	body[40] = '!';
	assert_null(certs_parse(body, len, err, sizeof(err)));
	/* Control: the same bytes untouched parse. */
	memcpy(body, pem, len);
	assert_non_null(body);
	{
		STACK_OF(X509) *sk = certs_parse(body, len, err, sizeof(err));

		assert_non_null(sk);
		sk_X509_pop_free(sk, X509_free);
	}
	free(body);
	free(pem);
}

static void
test_parse_pem_not_a_certificate(void **state)
{
	struct pki *p = *state;
	X509 *one[1] = { p->leaf.cert };
	unsigned char *pem, *body;
	BIO *bio = BIO_new(BIO_s_mem());
	char err[256] = "", *key;
	size_t len;
	long klen;

	(void)state;
	assert_non_null(bio);
	assert_true(PEM_write_bio_PrivateKey(bio, p->leaf.key, NULL, NULL, 0, NULL, NULL));
	klen = BIO_get_mem_data(bio, &key);
	pem = testpki_pem(one, 1, &len);
	body = malloc(len + (size_t)klen);
	assert_non_null(body);
	memcpy(body, pem, len);
	memcpy(body + len, key, (size_t)klen);
	assert_null(certs_parse(body, len + (size_t)klen, err, sizeof(err)));
	assert_non_null(strstr(err, "not a certificate"));
	/* A key alone. */
	assert_null(certs_parse((unsigned char *)key, (size_t)klen, err, sizeof(err)));
	free(body);
	free(pem);
	BIO_free(bio);
}

static void
test_parse_too_many(void **state)
{
	struct pki *p = *state;
	X509 *many[CERTS_MAX_CHAIN + 1];
	STACK_OF(X509) *sk;
	unsigned char *pem;
	char err[256] = "";
	size_t len;
	int i;

	for (i = 0; i < CERTS_MAX_CHAIN + 1; i++)
		many[i] = p->leaf.cert;
	pem = testpki_pem(many, CERTS_MAX_CHAIN, &len);
	sk = certs_parse(pem, len, err, sizeof(err));
	assert_non_null(sk);
	assert_int_equal(sk_X509_num(sk), CERTS_MAX_CHAIN);
	sk_X509_pop_free(sk, X509_free);
	free(pem);

	pem = testpki_pem(many, CERTS_MAX_CHAIN + 1, &len);
	assert_null(certs_parse(pem, len, err, sizeof(err)));
	assert_non_null(strstr(err, "more than"));
	free(pem);
}

/* --- trust bundle and chain ------------------------------------------------------------- */

struct bundle {
	char *dir;
	char *path;
	struct certs_trust *trust;
};

static void
bundle_load(struct bundle *b, X509 *const *certs, int n)
{
	unsigned char *pem;
	char err[256] = "";
	size_t len;

	b->dir = testpki_tmpdir();
	pem = testpki_pem(certs, n, &len);
	b->path = testpki_write_file(b->dir, "bundle.pem", pem, len);
	free(pem);
	b->trust = certs_trust_load(b->path, err, sizeof(err));
	if (b->trust == NULL)
		fail_msg("certs_trust_load: %s", err);
	assert_int_equal(certs_trust_count(b->trust), n);
}

static void
bundle_free(struct bundle *b)
{
	certs_trust_free(&b->trust);
	assert_null(b->trust);
	testpki_tmpdir_remove(b->dir);
	free(b->path);
	free(b->dir);
}

static STACK_OF(X509) *
chain_of(X509 *const *certs, int n)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	int i;

	assert_non_null(sk);
	for (i = 0; i < n; i++) {
		assert_true(X509_up_ref(certs[i]));
		assert_true(sk_X509_push(sk, certs[i]));
	}
	return sk;
}

static int
verify(const struct bundle *b, X509 *const *certs, int n, time_t at, X509 **issuer,
    time_t *not_after, char *err, size_t errlen)
{
	STACK_OF(X509) *sk = chain_of(certs, n);
	int rc;

	*issuer = NULL;
	*not_after = 0;
	err[0] = '\0';
	rc = certs_verify_chain(b->trust, sk, at, issuer, not_after, err, errlen);
	sk_X509_pop_free(sk, X509_free);
	if (rc != 0)
		assert_true(err[0] != '\0');
	return rc;
}

static void
test_chain_trusted_root_in_bundle(void **state)
{
	struct pki *p = *state;
	X509 *anchors[1] = { p->root.cert };
	X509 *body[2] = { p->leaf.cert, p->ca.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	bundle_load(&b, anchors, 1);
	if (verify(&b, body, 2, now_t, &issuer, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_non_null(issuer);
	assert_int_equal(X509_cmp(issuer, p->ca.cert), 0);
	/* The leaf expires first: now + 30d, to the second. */
	assert_int_equal((long long)not_after, (long long)(now_t + 30 * DAY));
	X509_free(issuer);

	/* Without its intermediate the leaf does not chain. */
	assert_int_equal(verify(&b, body, 1, now_t, &issuer, &not_after, err, sizeof(err)), -1);
	assert_null(issuer);
	bundle_free(&b);
}

static void
test_chain_intermediate_only_in_bundle(void **state)
{
	struct pki *p = *state;
	X509 *anchors[1] = { p->ca.cert };
	X509 *body[1] = { p->leaf.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	bundle_load(&b, anchors, 1);
	if (verify(&b, body, 1, now_t, &issuer, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_int_equal(X509_cmp(issuer, p->ca.cert), 0);
	assert_int_equal((long long)not_after, (long long)(now_t + 30 * DAY));
	X509_free(issuer);
	bundle_free(&b);
}

static void
test_chain_no_tls_purpose_needed(void **state)
{
	/* A DLMS leaf whose only EKU is not a TLS one still chains: no purpose is imposed. */
	struct pki *p = *state;
	struct testpki_cert_opts o = {
		.cn = "Meter EKU", .issuer = &p->ca, .base = now_t, .not_before = -DAY,
		.not_after = DAY, .ocsp_signing = 1,
	};
	struct testpki_ent leaf = testpki_cert(&o);
	X509 *anchors[1] = { p->root.cert };
	X509 *body[2] = { leaf.cert, p->ca.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	bundle_load(&b, anchors, 1);
	if (verify(&b, body, 2, now_t, &issuer, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	X509_free(issuer);
	bundle_free(&b);
	testpki_ent_free(&leaf);
}

static void
test_chain_untrusted_root(void **state)
{
	struct pki *p = *state;
	X509 *anchors[1] = { p->other_root.cert };
	X509 *body[3] = { p->leaf.cert, p->ca.cert, p->root.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	bundle_load(&b, anchors, 1);
	assert_int_equal(verify(&b, body, 2, now_t, &issuer, &not_after, err, sizeof(err)), -1);
	assert_null(issuer);
	assert_non_null(strstr(err, "Meter 0001"));
	/* Even with the real root in the body: a submitted root is not an anchor. */
	assert_int_equal(verify(&b, body, 3, now_t, &issuer, &not_after, err, sizeof(err)), -1);
	assert_null(issuer);
	bundle_free(&b);
}

static void
test_chain_missing_issuer(void **state)
{
	struct pki *p = *state;
	X509 *anchors[2] = { p->root.cert, p->other_root.cert };
	X509 *body[1] = { p->leaf.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	bundle_load(&b, anchors, 2);
	assert_int_equal(verify(&b, body, 1, now_t, &issuer, &not_after, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "issuer"));
	bundle_free(&b);
}

static void
test_chain_expired_leaf_at_injected_now(void **state)
{
	/* Valid by the real clock, expired an hour before the injected now. */
	struct pki *p = pki_new(-3600);
	X509 *anchors[1] = { p->root.cert };
	X509 *body[2] = { p->leaf.cert, p->ca.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	(void)state;
	bundle_load(&b, anchors, 1);
	assert_int_equal(verify(&b, body, 2, now_t, &issuer, &not_after, err, sizeof(err)), -1);
	assert_null(issuer);
	assert_non_null(strstr(err, "expired"));
	/* Two hours earlier the same chain is fine. */
	if (verify(&b, body, 2, now_t - 7200, &issuer, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_int_equal((long long)not_after, (long long)(now_t - 3600));
	X509_free(issuer);
	bundle_free(&b);
	pki_free(p);
}

static void
test_chain_not_after_is_earliest(void **state)
{
	/* The intermediate expires before the leaf: it bounds the chain. */
	struct testpki_ent root = testpki_root("NA Root", now_t);
	struct testpki_cert_opts co = {
		.cn = "NA CA", .issuer = &root, .ca = 1, .base = now_t,
		.not_before = -DAY, .not_after = 10 * DAY,
	};
	struct testpki_ent ca = testpki_cert(&co);
	struct testpki_cert_opts lo = {
		.cn = "NA Leaf", .issuer = &ca, .base = now_t, .not_before = -DAY,
		.not_after = 100 * DAY,
	};
	struct testpki_ent leaf = testpki_cert(&lo);
	X509 *anchors[1] = { root.cert };
	X509 *body[2] = { leaf.cert, ca.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	(void)state;
	bundle_load(&b, anchors, 1);
	if (verify(&b, body, 2, now_t, &issuer, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_int_equal((long long)not_after, (long long)(now_t + 10 * DAY));
	X509_free(issuer);
	bundle_free(&b);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
	testpki_ent_free(&root);
}

static void
test_chain_subject_is_anchor(void **state)
{
	struct pki *p = *state;
	X509 *both[2] = { p->root.cert, p->ca.cert };
	X509 *ca_only[1] = { p->ca.cert };
	X509 *body_ca[1] = { p->ca.cert };
	X509 *body_root[1] = { p->root.cert };
	struct bundle b;
	X509 *issuer;
	time_t not_after;
	char err[256];

	/* An intermediate anchor whose root is in the bundle: its issuer is the root. */
	bundle_load(&b, both, 2);
	if (verify(&b, body_ca, 1, now_t, &issuer, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_int_equal(X509_cmp(issuer, p->root.cert), 0);
	X509_free(issuer);
	/* A root has no issuer to ask. */
	assert_int_equal(verify(&b, body_root, 1, now_t, &issuer, &not_after, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "trust anchor and its issuer is not in the bundle"));
	assert_null(issuer);
	bundle_free(&b);

	/* An intermediate anchor without its root. */
	bundle_load(&b, ca_only, 1);
	assert_int_equal(verify(&b, body_ca, 1, now_t, &issuer, &not_after, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "trust anchor and its issuer is not in the bundle"));
	bundle_free(&b);
}

/* The chain handed back, as the chain staples see it: the length and whether chain[i] is
 * certs[want[i]] of the pki (0 leaf, 1 ca, 2 root). */
static void
assert_chain(const struct bundle *b, X509 *const *body, int n, const struct pki *p,
    const int *want, int nwant)
{
	X509 *const all[3] = { p->leaf.cert, p->ca.cert, p->root.cert };
	STACK_OF(X509) *sk = chain_of(body, n), *chain = NULL;
	time_t not_after = 0;
	char err[256] = "";

	if (certs_verify_chain_get(b->trust, sk, now_t, &chain, &not_after, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_int_equal(sk_X509_num(chain), nwant);
	for (int i = 0; i < nwant; i++)
		assert_int_equal(X509_cmp(sk_X509_value(chain, i), all[want[i]]), 0);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(sk, X509_free);
}

static void
test_chain_goes_on_above_an_anchor(void **state)
{
	struct pki *p = *state;
	X509 *mkpki[3] = { p->root.cert, p->ca.cert, p->other_root.cert };
	X509 *ca_only[1] = { p->ca.cert };
	X509 *leaf_ca[2] = { p->leaf.cert, p->ca.cert };
	X509 *leaf_ca_root[3] = { p->leaf.cert, p->ca.cert, p->root.cert };
	X509 *leaf_ca_fake[3] = { p->leaf.cert, p->ca.cert, NULL };
	static const int full[3] = { 0, 1, 2 }, short_[2] = { 0, 1 };
	struct testpki_cert_opts fo = {
		/* The root's name, another key: it did not sign the intermediate. */
		.cn = "Test Root", .ca = 1, .base = now_t, .not_before = -DAY, .not_after = DAY,
	};
	struct testpki_ent fake = testpki_cert(&fo);
	struct bundle b;

	/* Root + intermediate + another root: the partial chain stops at the intermediate, and
	 * the root from the bundle follows it, so the intermediate gets a staple too. */
	bundle_load(&b, mkpki, 3);
	assert_chain(&b, leaf_ca, 2, p, full, 3);
	assert_chain(&b, leaf_ca, 1, p, full, 3);
	bundle_free(&b);

	/* The intermediate alone is trusted: its issuer may come from the request... */
	bundle_load(&b, ca_only, 1);
	assert_chain(&b, leaf_ca_root, 3, p, full, 3);
	/* ...not without it... */
	assert_chain(&b, leaf_ca, 2, p, short_, 2);
	/* ...and only one that signed it. */
	leaf_ca_fake[2] = fake.cert;
	assert_chain(&b, leaf_ca_fake, 3, p, short_, 2);
	bundle_free(&b);
	testpki_ent_free(&fake);
}

static void
test_trust_find_by_key_hash(void **state)
{
	struct pki *p = *state;
	X509 *anchors[2] = { p->root.cert, p->ca.cert };
	ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
	struct stapler_key key;
	struct bundle b;
	OCSP_CERTID *id;
	X509 *found;

	bundle_load(&b, anchors, 2);
	id = certs_certid(p->leaf.cert, p->ca.cert, STAPLER_HASH_SHA1);
	assert_int_equal(certs_certid_key(id, NULL, &key), 0);
	found = certs_trust_find(b.trust, STAPLER_HASH_SHA1, key.name_hash, key.key_hash);
	assert_non_null(found);
	assert_int_equal(X509_cmp(found, p->ca.cert), 0);
	OCSP_CERTID_free(id);
	/* By the hashes of a SHA-256 CertID too. */
	id = certs_certid(p->leaf.cert, p->ca.cert, STAPLER_HASH_SHA256);
	assert_true(OCSP_id_get0_info(&nh, NULL, &kh, NULL, id));
	found = certs_trust_find(b.trust, STAPLER_HASH_SHA256, ASN1_STRING_get0_data(nh),
	    ASN1_STRING_get0_data(kh));
	assert_non_null(found);
	assert_int_equal(X509_cmp(found, p->ca.cert), 0);
	assert_null(certs_trust_find(b.trust, STAPLER_HASH_SHA1, ASN1_STRING_get0_data(nh),
	    ASN1_STRING_get0_data(kh)));
	OCSP_CERTID_free(id);
	id = certs_certid(p->other_root.cert, p->other_root.cert, STAPLER_HASH_SHA1);
	assert_int_equal(certs_certid_key(id, NULL, &key), 0);
	assert_null(certs_trust_find(b.trust, STAPLER_HASH_SHA1, key.name_hash, key.key_hash));
	OCSP_CERTID_free(id);
	bundle_free(&b);
}

static void
expect_load_error(const char *dir, const char *name, const void *buf, size_t len,
    const char *want)
{
	char err[256] = "";
	char *path = testpki_write_file(dir, name, buf, len);
	struct certs_trust *t = certs_trust_load(path, err, sizeof(err));

	assert_null(t);
	assert_non_null(strstr(err, path));
	if (want != NULL && strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, want);
	free(path);
}

static void
test_trust_load_errors(void **state)
{
	struct pki *p = *state;
	X509 *two[2] = { p->root.cert, p->ca.cert };
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *pem, *buf;
	char *dir = testpki_tmpdir(), *key, *path, err[256];
	struct certs_trust *t;
	size_t len;
	long klen;

	assert_non_null(bio);
	pem = testpki_pem(two, 2, &len);
	buf = malloc(2 * len + 4096);
	assert_non_null(buf);

	expect_load_error(dir, "empty.pem", "", 0, "no certificate");
	expect_load_error(dir, "junk.pem", "just some words\n", 16, "no certificate");
	/* A certificate block whose base64 is broken. */
	memcpy(buf, pem, len);
	buf[len / 2 + 100] = '*';
	expect_load_error(dir, "broken.pem", buf, len, "not a valid certificate");
	/* A private key among the certificates. */
	assert_true(PEM_write_bio_PrivateKey(bio, p->root.key, NULL, NULL, 0, NULL, NULL));
	klen = BIO_get_mem_data(bio, &key);
	memcpy(buf, pem, len);
	memcpy(buf + len, key, (size_t)klen);
	expect_load_error(dir, "key.pem", buf, len + (size_t)klen, "not a valid certificate");
	/* Certificate bytes under another label. */
	{
		unsigned char *der;
		size_t dlen;
		BIO *mis = BIO_new(BIO_s_mem());
		char *data;
		long mlen;

		assert_non_null(mis);
		der = testpki_der(p->root.cert, &dlen);
		assert_true(PEM_write_bio(mis, "PKCS7", "", der, (long)dlen) > 0);
		mlen = BIO_get_mem_data(mis, &data);
		memcpy(buf, pem, len);
		memcpy(buf + len, data, (size_t)mlen);
		expect_load_error(dir, "label.pem", buf, len + (size_t)mlen, "not a valid certificate");
		OPENSSL_free(der);
		BIO_free(mis);
	}
	/* A file that is not there. */
	err[0] = '\0';
	assert_null(certs_trust_load("/nonexistent/bundle.pem", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/bundle.pem"));

	/* Control: comments around the blocks are fine, as in every CA bundle. */
	memcpy(buf, "# Test Root\n", 12);
	memcpy(buf + 12, pem, len);
	memcpy(buf + 12 + len, "# end\n", 6);
	path = testpki_write_file(dir, "ok.pem", buf, len + 18);
	t = certs_trust_load(path, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(certs_trust_count(t), 2);
	certs_trust_free(&t);
	certs_trust_free(&t);
	free(path);

	BIO_free(bio);
	free(buf);
	free(pem);
	testpki_tmpdir_remove(dir);
	free(dir);
}

static void
test_subject_and_der(void **state)
{
	struct pki *p = *state;
	char subj[64], tiny[5];
	unsigned char *der;
	size_t len;
	const unsigned char *q;
	X509 *back;

	certs_subject(p->leaf.cert, subj, sizeof(subj));
	assert_string_equal(subj, "CN=Meter 0001");
	certs_subject(p->leaf.cert, tiny, sizeof(tiny));
	assert_string_equal(tiny, "CN=M");
	der = certs_der(p->leaf.cert, &len);
	assert_non_null(der);
	q = der;
	back = d2i_X509(NULL, &q, (long)len);
	assert_non_null(back);
	assert_ptr_equal(q, der + len);
	assert_int_equal(X509_cmp(back, p->leaf.cert), 0);
	X509_free(back);
	OPENSSL_free(der);
}

/* The cache's URL list (netstrings), as refreshes and the OCSP proxy read it back: what goes
 * in comes out, a newline inside a URL included, and nothing else parses. */
static void
test_urls_encode_decode(void **state)
{
	struct certs_urls in = { .n = 3, .url = { "http://a/", "http://b/x\nhttp://evil/", "http://c/" } };
	struct certs_urls u;
	char list[CERTS_URLS_ENCODED_MAX];

	(void)state;
	assert_int_equal(certs_urls_decode(NULL, &u), 0);
	assert_int_equal(certs_urls_decode("", &u), 0);
	assert_int_equal(certs_urls_encode(&in, list, sizeof(list)), 0);
	assert_string_equal(list, "9:http://a/,23:http://b/x\nhttp://evil/,9:http://c/,");
	assert_int_equal(certs_urls_decode(list, &u), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(u.url[i], in.url[i]);
	certs_urls_free(&u);
	/* Too small a buffer fails rather than cutting a URL. */
	assert_int_equal(certs_urls_encode(&in, list, 20), -1);
	assert_string_equal(list, "");
	/* Malformed: the old '\n' form, a wrong length, a missing comma, no digits, too many. */
	assert_int_equal(certs_urls_decode("http://a/\nhttp://b/", &u), -1);
	assert_int_equal(certs_urls_decode("10:http://a/,", &u), -1);
	assert_int_equal(certs_urls_decode("9:http://a/", &u), -1);
	assert_int_equal(certs_urls_decode(":http://a/,", &u), -1);
	assert_int_equal(certs_urls_decode("0:,", &u), -1);
	assert_int_equal(certs_urls_decode("99999:x,", &u), -1);
	assert_int_equal(certs_urls_decode("3:a/1,3:a/2,3:a/3,3:a/4,3:a/5,", &u), -1);
	assert_int_equal(u.n, 0);
}

/* AIA URLs are taken exactly as written or refused, with the reason: a newline (it once split
 * into two stored URLs), user information (sent as credentials), a fragment (it swallows a
 * GET's request), another scheme. The good ones stay, in order. */
static void
test_aia_urls_refused(void **state)
{
	static const char *const bad[] = {
		"http://a.example/ocsp\nhttp://evil.example/",
		"http://user:pass@b.example/ocsp",
		"http://c.example/ocsp#frag",
		"ldap://d.example/",
		"http://e.example/\t",
	};
	static const char *const why[] = { "control character", "user information", "#fragment",
		"http://", "control character" };
	const char *mixed[] = { bad[1], "http://ok.example/", bad[0] };
	struct testpki_ent ca = testpki_root("AIA CA", now_t);
	struct testpki_ent leaf;
	struct certs_urls u;
	char reason[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		leaf = leaf_with_urls(&ca, &bad[i], 1);
		assert_int_equal(certs_ocsp_urls(leaf.cert, &u, reason, sizeof(reason)), 0);
		if (strstr(reason, "AIA OCSP URL 1 refused: ") != reason || strstr(reason, why[i]) == NULL)
			fail_msg("URL %zu: reason \"%s\" lacks \"%s\"", i, reason, why[i]);
		testpki_ent_free(&leaf);
	}
	leaf = leaf_with_urls(&ca, mixed, 3);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, reason, sizeof(reason)), 1);
	assert_string_equal(u.url[0], "http://ok.example/");
	assert_non_null(strstr(reason, "URL 1 refused"));
	certs_urls_free(&u);
	testpki_ent_free(&leaf);
	leaf = leaf_with_urls(&ca, &mixed[1], 1);
	assert_int_equal(certs_ocsp_urls(leaf.cert, &u, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "");
	certs_urls_free(&u);
	testpki_ent_free(&leaf);
	testpki_ent_free(&ca);
}

/* The key is the whole CertID: a SHA-256 CertID gets its own key (same issuer identity, the
 * issuer's SHA-1 hashes, another algorithm), and two CAs sharing a key under different names
 * get different keys for the same serial. */
static void
test_certid_key_per_hash_alg(void **state)
{
	struct testpki_ent ca = testpki_root("Key CA One", now_t);
	struct testpki_cert_opts twin_o = {
		.cn = "Key CA Two", .key = ca.key, .ca = 1, .base = now_t, .not_before = -DAY,
		.not_after = 365 * DAY,
	};
	struct testpki_ent twin = testpki_cert(&twin_o);
	struct testpki_ent leaf = testpki_leaf("Key Leaf", &ca, 7, NULL, now_t);
	struct testpki_ent leaf2 = testpki_leaf("Key Leaf", &twin, 7, NULL, now_t);
	struct stapler_key k1, k256, k256b, ktwin;
	unsigned char nh[STAPLER_SHA1_LEN], kh[STAPLER_SHA1_LEN];
	enum stapler_hash_alg alg;
	OCSP_CERTID *id1 = certs_certid(leaf.cert, ca.cert, STAPLER_HASH_SHA1);
	OCSP_CERTID *id256 = certs_certid(leaf.cert, ca.cert, STAPLER_HASH_SHA256);
	OCSP_CERTID *idtwin = certs_certid(leaf2.cert, twin.cert, STAPLER_HASH_SHA1);

	(void)state;
	assert_non_null(id1);
	assert_non_null(id256);
	assert_int_equal(certs_certid_hash_alg(id1, &alg), 0);
	assert_int_equal(alg, STAPLER_HASH_SHA1);
	assert_int_equal(certs_certid_hash_alg(id256, &alg), 0);
	assert_int_equal(alg, STAPLER_HASH_SHA256);
	assert_int_equal(certs_certid_key(id1, NULL, &k1), 0);
	assert_int_equal(k1.hash_alg, STAPLER_HASH_SHA1);
	/* A SHA-256 CertID does not carry the SHA-1 identity: the issuer gives it. */
	assert_int_equal(certs_certid_key(id256, NULL, &k256), -1);
	assert_int_equal(certs_certid_key(id256, ca.cert, &k256), 0);
	assert_int_equal(k256.hash_alg, STAPLER_HASH_SHA256);
	assert_memory_equal(k256.name_hash, k1.name_hash, STAPLER_SHA1_LEN);
	assert_memory_equal(k256.key_hash, k1.key_hash, STAPLER_SHA1_LEN);
	assert_false(stapler_key_equal(&k1, &k256));
	assert_int_equal(certs_issuer_hashes(ca.cert, nh, kh), 0);
	assert_int_equal(certs_certid_key_with(id256, nh, kh, &k256b), 0);
	assert_true(stapler_key_equal(&k256, &k256b));
	/* The anchor is found by the hashes of either algorithm. */
	/* Same key, same serial, another name: another key. */
	assert_int_equal(certs_certid_key(idtwin, NULL, &ktwin), 0);
	assert_memory_equal(ktwin.key_hash, k1.key_hash, STAPLER_SHA1_LEN);
	assert_memory_not_equal(ktwin.name_hash, k1.name_hash, STAPLER_SHA1_LEN);
	assert_false(stapler_key_equal(&k1, &ktwin));
	{
		char nhex[STAPLER_SHA1_HEX], khex[STAPLER_SHA1_HEX], shex[STAPLER_SERIAL_HEX_MAX];
		struct stapler_key back;

		stapler_key_name_hash_hex(&k256, nhex);
		stapler_key_hash_hex(&k256, khex);
		stapler_key_serial_hex(&k256, shex);
		assert_int_equal(stapler_key_from_hex(&back, STAPLER_HASH_SHA256, nhex, khex, shex), 0);
		assert_true(stapler_key_equal(&back, &k256));
		assert_string_equal(stapler_hash_alg_name(STAPLER_HASH_SHA256), "sha256");
		assert_int_equal(stapler_hash_alg_parse("SHA1", &alg), 0);
		assert_int_equal(alg, STAPLER_HASH_SHA1);
		assert_int_equal(stapler_hash_alg_parse("md5", &alg), -1);
	}
	OCSP_CERTID_free(id1);
	OCSP_CERTID_free(id256);
	OCSP_CERTID_free(idtwin);
	testpki_ent_free(&leaf);
	testpki_ent_free(&leaf2);
	testpki_ent_free(&twin);
	testpki_ent_free(&ca);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_serial_hex_20_octets_high_bit, setup_time),
		cmocka_unit_test_setup(test_serial_hex_small, setup_time),
		cmocka_unit_test_setup(test_serial_hex_negative_and_empty, setup_time),
		cmocka_unit_test_setup(test_certid_hashes_and_serial, setup_time),
		cmocka_unit_test_setup(test_certid_serial_too_long, setup_time),
		cmocka_unit_test_setup(test_aia_urls, setup_time),
		cmocka_unit_test_setup(test_aia_url_too_long_skipped, setup_time),
		cmocka_unit_test(test_urls_encode_decode),
		cmocka_unit_test(test_aia_urls_refused),
		cmocka_unit_test(test_certid_key_per_hash_alg),
		cmocka_unit_test_setup_teardown(test_parse_pem_chain_in_order, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_parse_pem_whitespace_and_crlf, setup_pki,
		    teardown_pki),
		cmocka_unit_test_setup_teardown(test_parse_der, setup_pki, teardown_pki),
		cmocka_unit_test_setup(test_parse_junk, setup_time),
		cmocka_unit_test_setup_teardown(test_parse_pem_junk_around, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_parse_pem_not_a_certificate, setup_pki,
		    teardown_pki),
		cmocka_unit_test_setup_teardown(test_parse_too_many, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_chain_trusted_root_in_bundle, setup_pki,
		    teardown_pki),
		cmocka_unit_test_setup_teardown(test_chain_intermediate_only_in_bundle, setup_pki,
		    teardown_pki),
		cmocka_unit_test_setup_teardown(test_chain_no_tls_purpose_needed, setup_pki,
		    teardown_pki),
		cmocka_unit_test_setup_teardown(test_chain_untrusted_root, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_chain_missing_issuer, setup_pki, teardown_pki),
		cmocka_unit_test_setup(test_chain_expired_leaf_at_injected_now, setup_time),
		cmocka_unit_test_setup(test_chain_not_after_is_earliest, setup_time),
		cmocka_unit_test_setup_teardown(test_chain_subject_is_anchor, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_chain_goes_on_above_an_anchor, setup_pki,
		    teardown_pki),
		cmocka_unit_test_setup_teardown(test_trust_find_by_key_hash, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_trust_load_errors, setup_pki, teardown_pki),
		cmocka_unit_test_setup_teardown(test_subject_and_der, setup_pki, teardown_pki),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
