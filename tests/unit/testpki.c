/* Test PKI built in memory with OpenSSL: EC P-256 keys, certificates, OCSP responses, temp dirs. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "testpki.h"

#define TESTPKI_DAY 86400L

/* noreturn: clang then knows that what follows a failed CHECK() never runs. */
static void die(const char *what) __attribute__((noreturn));

static void
die(const char *what)
{
	fprintf(stderr, "testpki: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

#define CHECK(cond, what) do { if (!(cond)) die(what); } while (0)

EVP_PKEY *
testpki_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	CHECK(k != NULL, "EVP_EC_gen");
	return k;
}

EVP_PKEY *
testpki_key_seeded(const char *label)
{
	unsigned char d[SHA256_DIGEST_LENGTH], pub[65];
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt = NULL;
	BIGNUM *priv;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	size_t plen;

	CHECK(g != NULL && bld != NULL && ctx != NULL, "seeded key setup");
	SHA256((const unsigned char *)label, strlen(label), d);
	/* A SHA-256 at or above the P-256 order is a 2^-32 chance: not worth reducing. */
	CHECK((priv = BN_bin2bn(d, sizeof(d), NULL)) != NULL, "BN_bin2bn");
	CHECK((pt = EC_POINT_new(g)) != NULL && EC_POINT_mul(g, pt, priv, NULL, NULL, NULL),
	    "EC_POINT_mul");
	plen = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL);
	CHECK(plen == sizeof(pub), "EC_POINT_point2oct");
	CHECK(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, plen) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL, "OSSL_PARAM_BLD");
	CHECK(EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params) == 1, "EVP_PKEY_fromdata");
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	EC_POINT_free(pt);
	BN_clear_free(priv);
	EC_GROUP_free(g);
	return k;
}

static void
add_ext(X509 *x, int nid, void *value, int crit)
{
	CHECK(X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_DEFAULT) == 1, "X509_add1_ext_i2d");
}

static void
add_aia(X509 *x, const char *const *urls, int n)
{
	AUTHORITY_INFO_ACCESS *aia = sk_ACCESS_DESCRIPTION_new_null();
	ACCESS_DESCRIPTION *ad;
	ASN1_IA5STRING *uri;
	int i;

	CHECK(aia != NULL, "AIA");
	for (i = 0; i < n; i++) {
		CHECK((ad = ACCESS_DESCRIPTION_new()) != NULL, "ACCESS_DESCRIPTION_new");
		ASN1_OBJECT_free(ad->method);
		ad->method = OBJ_nid2obj(NID_ad_OCSP);
		CHECK((uri = ASN1_IA5STRING_new()) != NULL, "ASN1_IA5STRING_new");
		CHECK(ASN1_STRING_set(uri, urls[i], (int)strlen(urls[i])), "ASN1_STRING_set");
		GENERAL_NAME_set0_value(ad->location, GEN_URI, uri);
		CHECK(sk_ACCESS_DESCRIPTION_push(aia, ad), "push");
	}
	add_ext(x, NID_info_access, aia, 0);
	AUTHORITY_INFO_ACCESS_free(aia);
}

struct testpki_ent
testpki_cert(const struct testpki_cert_opts *o)
{
	static const unsigned char one = 1;
	struct testpki_ent e;
	const struct testpki_ent *signer;
	X509_NAME *name;
	ASN1_INTEGER *serial;
	BIGNUM *bn;
	time_t base = o->base;

	if (o->key != NULL) {
		CHECK(EVP_PKEY_up_ref(o->key), "EVP_PKEY_up_ref");
		e.key = o->key;
	} else {
		e.key = testpki_key();
	}
	CHECK((e.cert = X509_new()) != NULL, "X509_new");
	CHECK(X509_set_version(e.cert, X509_VERSION_3), "X509_set_version");

	CHECK((bn = BN_bin2bn(o->serial != NULL ? o->serial : &one,
	    o->serial != NULL ? (int)o->serial_len : 1, NULL)) != NULL, "BN_bin2bn");
	CHECK((serial = BN_to_ASN1_INTEGER(bn, NULL)) != NULL, "BN_to_ASN1_INTEGER");
	CHECK(X509_set_serialNumber(e.cert, serial), "X509_set_serialNumber");
	ASN1_INTEGER_free(serial);
	BN_free(bn);

	CHECK((name = X509_NAME_new()) != NULL, "X509_NAME_new");
	CHECK(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)o->cn, -1, -1, 0), "X509_NAME_add_entry_by_txt");
	CHECK(X509_set_subject_name(e.cert, name), "X509_set_subject_name");
	signer = o->issuer;
	CHECK(X509_set_issuer_name(e.cert,
	    signer != NULL ? X509_get_subject_name(signer->cert) : name), "X509_set_issuer_name");
	X509_NAME_free(name);

	CHECK(ASN1_TIME_adj(X509_getm_notBefore(e.cert), base, 0, o->not_before) != NULL,
	    "notBefore");
	CHECK(ASN1_TIME_adj(X509_getm_notAfter(e.cert), base, 0, o->not_after) != NULL,
	    "notAfter");
	CHECK(X509_set_pubkey(e.cert, e.key), "X509_set_pubkey");

	if (o->ca) {
		BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();

		CHECK(bc != NULL, "BASIC_CONSTRAINTS_new");
		bc->ca = 0xFF;
		add_ext(e.cert, NID_basic_constraints, bc, 1);
		BASIC_CONSTRAINTS_free(bc);
	}
	if (o->ocsp_signing) {
		EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();

		CHECK(eku != NULL, "EKU");
		CHECK(sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_OCSP_sign)), "EKU push");
		add_ext(e.cert, NID_ext_key_usage, eku, 0);
		sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	}
	if (o->n_ocsp_urls > 0)
		add_aia(e.cert, o->ocsp_urls, o->n_ocsp_urls);

	CHECK(X509_sign(e.cert, signer != NULL ? signer->key : e.key, EVP_sha256()) > 0,
	    "X509_sign");
	return e;
}

struct testpki_ent
testpki_root(const char *cn, time_t base)
{
	struct testpki_cert_opts o = {
		.cn = cn, .ca = 1, .base = base,
		.not_before = -TESTPKI_DAY, .not_after = 365 * TESTPKI_DAY,
	};

	return testpki_cert(&o);
}

struct testpki_ent
testpki_ca(const char *cn, const struct testpki_ent *issuer, time_t base)
{
	static const unsigned char serial = 0x42;
	struct testpki_cert_opts o = {
		.cn = cn, .issuer = issuer, .serial = &serial, .serial_len = 1, .ca = 1,
		.base = base, .not_before = -TESTPKI_DAY, .not_after = 365 * TESTPKI_DAY,
	};

	return testpki_cert(&o);
}

struct testpki_ent
testpki_leaf(const char *cn, const struct testpki_ent *issuer, unsigned char serial,
    const char *ocsp_url, time_t base)
{
	struct testpki_cert_opts o = {
		.cn = cn, .issuer = issuer, .serial = &serial, .serial_len = 1,
		.base = base, .not_before = -TESTPKI_DAY, .not_after = 365 * TESTPKI_DAY,
		.ocsp_urls = &ocsp_url, .n_ocsp_urls = ocsp_url != NULL ? 1 : 0,
	};

	return testpki_cert(&o);
}

void
testpki_ent_free(struct testpki_ent *e)
{
	if (e == NULL)
		return;
	X509_free(e->cert);
	EVP_PKEY_free(e->key);
	e->cert = NULL;
	e->key = NULL;
}

struct testpki_resp_opts
testpki_resp_good(X509 *subject, const struct testpki_ent *issuer, time_t now)
{
	struct testpki_resp_opts o = {
		.response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL,
		.subject = subject, .issuer = issuer->cert,
		.cert_status = V_OCSP_CERTSTATUS_GOOD, .reason = -1,
		.this_update = now - 3600, .next_update = now + 7 * 86400,
		.signer = issuer,
	};

	return o;
}

unsigned char *
testpki_ocsp_response(const struct testpki_resp_opts *o, size_t *len)
{
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id;
	ASN1_TIME *thisupd = NULL, *nextupd = NULL, *rev = NULL;
	unsigned char *der = NULL;
	unsigned long flags = 0;
	int n;

	if (o->response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		CHECK((resp = OCSP_response_create(o->response_status, NULL)) != NULL,
		    "OCSP_response_create");
		goto encode;
	}
	CHECK((bs = OCSP_BASICRESP_new()) != NULL, "OCSP_BASICRESP_new");
	if (o->id != NULL)
		id = OCSP_CERTID_dup(o->id);
	else
		id = OCSP_cert_to_id(EVP_sha1(), o->subject, o->issuer);
	CHECK(id != NULL, "CertID");
	CHECK((thisupd = ASN1_GENERALIZEDTIME_set(NULL, o->this_update)) != NULL, "thisUpdate");
	if (!o->no_next_update)
		CHECK((nextupd = ASN1_GENERALIZEDTIME_set(NULL, o->next_update)) != NULL,
		    "nextUpdate");
	if (o->cert_status == V_OCSP_CERTSTATUS_REVOKED)
		CHECK((rev = ASN1_GENERALIZEDTIME_set(NULL, o->revoked_at)) != NULL,
		    "revocationTime");
	CHECK(OCSP_basic_add1_status(bs, id, o->cert_status, o->reason, rev, thisupd,
	    nextupd) != NULL, "OCSP_basic_add1_status");
	if (!o->include_signer)
		flags |= OCSP_NOCERTS;
	if (o->resp_id_by_key)
		flags |= OCSP_RESPID_KEY;
	CHECK(OCSP_basic_sign(bs, o->signer->cert, o->signer->key, EVP_sha256(), NULL, flags),
	    "OCSP_basic_sign");
	CHECK((resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs)) != NULL,
	    "OCSP_response_create");
	OCSP_CERTID_free(id);
	ASN1_TIME_free(thisupd);
	ASN1_TIME_free(nextupd);
	ASN1_TIME_free(rev);
	OCSP_BASICRESP_free(bs);

encode:
	CHECK((n = i2d_OCSP_RESPONSE(resp, &der)) > 0, "i2d_OCSP_RESPONSE");
	OCSP_RESPONSE_free(resp);
	*len = (size_t)n;
	return der;
}

unsigned char *
testpki_pem(X509 *const *certs, int n, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *out;
	char *data;
	long dlen;
	int i;

	CHECK(bio != NULL, "BIO_new");
	for (i = 0; i < n; i++)
		CHECK(PEM_write_bio_X509(bio, certs[i]), "PEM_write_bio_X509");
	dlen = BIO_get_mem_data(bio, &data);
	CHECK(dlen >= 0 && (out = malloc((size_t)dlen + 1)) != NULL, "malloc");
	memcpy(out, data, (size_t)dlen);
	out[dlen] = '\0';
	*len = (size_t)dlen;
	BIO_free(bio);
	return out;
}

unsigned char *
testpki_der(X509 *cert, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(cert, &der);

	CHECK(n > 0, "i2d_X509");
	*len = (size_t)n;
	return der;
}

char *
testpki_tmpdir(void)
{
	const char *base = getenv("STAPLER_TEST_TMP");
	char *path;
	size_t cap;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	cap = strlen(base) + sizeof("/testpki.XXXXXX");
	CHECK((path = malloc(cap)) != NULL, "malloc");
	snprintf(path, cap, "%s/testpki.XXXXXX", base);
	CHECK(mkdtemp(path) != NULL, "mkdtemp");
	return path;
}

char *
testpki_write_file(const char *dir, const char *name, const void *buf, size_t len)
{
	size_t cap = strlen(dir) + strlen(name) + 2;
	char *path;
	FILE *f;

	CHECK((path = malloc(cap)) != NULL, "malloc");
	snprintf(path, cap, "%s/%s", dir, name);
	CHECK((f = fopen(path, "wb")) != NULL, "fopen");
	CHECK(len == 0 || fwrite(buf, 1, len, f) == len, "fwrite");
	CHECK(fclose(f) == 0, "fclose");
	return path;
}

void
testpki_tmpdir_remove(const char *dir)
{
	struct dirent *de;
	char path[4096];
	DIR *d;

	if (dir == NULL || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* DER length bytes of n (below 0x10000) into out; returns their count. */
static size_t
der_len_put(unsigned char *out, size_t n)
{
	if (n < 0x80) {
		out[0] = (unsigned char)n;
		return 1;
	}
	if (n <= 0xff) {
		out[0] = 0x81;
		out[1] = (unsigned char)n;
		return 2;
	}
	out[0] = 0x82;
	out[1] = (unsigned char)(n >> 8);
	out[2] = (unsigned char)n;
	return 3;
}

/* One DER TLV's header at p: its contents' offset and length. */
static void
der_head(const unsigned char *p, size_t *hdr, size_t *len)
{
	if (p[1] < 0x80) {
		*hdr = 2;
		*len = p[1];
	} else if (p[1] == 0x81) {
		*hdr = 3;
		*len = p[2];
	} else {
		CHECK(p[1] == 0x82, "testpki_certid: length");
		*hdr = 4;
		*len = (size_t)p[2] << 8 | p[3];
	}
}

OCSP_CERTID *
testpki_certid(X509 *subject, X509 *issuer, const EVP_MD *md, int absent_params)
{
	OCSP_CERTID *id = OCSP_cert_to_id(md, subject, issuer);
	unsigned char *der = NULL, body[512], out[520];
	const unsigned char *p;
	size_t hdr, len, ahdr, alen, blen = 0, olen = 0;
	int n;

	CHECK(id != NULL, "OCSP_cert_to_id");
	if (!absent_params)
		return id;
	n = i2d_OCSP_CERTID(id, &der);
	CHECK(n > 0, "i2d_OCSP_CERTID");
	OCSP_CERTID_free(id);
	/* SEQUENCE { SEQUENCE { OID, NULL }, ... }: the AlgorithmIdentifier without its last two
	 * bytes (05 00), the rest as it was. */
	der_head(der, &hdr, &len);
	der_head(der + hdr, &ahdr, &alen);
	CHECK(alen >= 2 && der[hdr + ahdr + alen - 2] == 0x05 && der[hdr + ahdr + alen - 1] == 0,
	    "testpki_certid: NULL parameters expected");
	body[blen++] = 0x30;
	blen += der_len_put(body + blen, alen - 2);
	memcpy(body + blen, der + hdr + ahdr, alen - 2);
	blen += alen - 2;
	memcpy(body + blen, der + hdr + ahdr + alen, len - ahdr - alen);
	blen += len - ahdr - alen;
	out[olen++] = 0x30;
	olen += der_len_put(out + olen, blen);
	memcpy(out + olen, body, blen);
	olen += blen;
	OPENSSL_free(der);
	p = out;
	id = d2i_OCSP_CERTID(NULL, &p, (long)olen);
	CHECK(id != NULL && p == out + olen, "d2i_OCSP_CERTID");
	return id;
}
