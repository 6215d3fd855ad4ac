/* Certificates: PEM/DER request bodies, the trust bundle and chain check, AIA OCSP URLs, the CertID. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "der.h"
#include "url.h"
#include "util.h"

struct certs_trust {
	X509_STORE *store;
	STACK_OF(X509) *certs;
};

/* OpenSSL's getters take non-const pointers for what they only read. */
#define CERTS_UNCONST(type, p) ((type *)(uintptr_t)(p))

static int
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
only_space(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!is_space(p[i]))
			return 0;
	return 1;
}

static void *
memmem_bounded(const unsigned char *hay, size_t hlen, const char *needle)
{
	size_t nlen = strlen(needle);
	size_t i;

	if (nlen == 0 || hlen < nlen)
		return NULL;
	for (i = 0; i + nlen <= hlen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return CERTS_UNCONST(unsigned char, hay + i);
	return NULL;
}

/* Reads the next PEM block of bio as one certificate. Returns 1 with *out set, 0 at the end
 * of the input, -1 when the block is not a certificate or does not parse. Text outside
 * blocks is skipped, as in every CA bundle with comments. */
static int
read_pem_cert(BIO *bio, X509 **out)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	long len = 0;
	unsigned long e;
	int rc = -1;

	*out = NULL;
	if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
			rc = 0;
		goto done;
	}
	if (strcmp(name, PEM_STRING_X509) != 0 && strcmp(name, PEM_STRING_X509_OLD) != 0)
		goto done;
	p = data;
	if ((*out = d2i_X509(NULL, &p, len)) == NULL)
		goto done;
	if (p != data + len) {
		X509_free(*out);
		*out = NULL;
		goto done;
	}
	rc = 1;

done:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	ERR_clear_error();
	return rc;
}

struct certs_trust *
certs_trust_load(const char *path, char *err, size_t errlen)
{
	struct certs_trust *trust = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	unsigned long e;
	int i, r;

	ERR_clear_error();
	if ((trust = calloc(1, sizeof(*trust))) == NULL ||
	    (trust->certs = sk_X509_new_null()) == NULL ||
	    (trust->store = X509_STORE_new()) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if ((bio = BIO_new_file(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open trust bundle", path);
		goto fail;
	}
	while ((r = read_pem_cert(bio, &x)) == 1) {
		if (!sk_X509_push(trust->certs, x)) {
			snprintf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		x = NULL;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: PEM block %d is not a valid certificate", path,
		    sk_X509_num(trust->certs) + 1);
		goto fail;
	}
	if (sk_X509_num(trust->certs) == 0) {
		snprintf(err, errlen, "%s: no certificate in trust bundle", path);
		goto fail;
	}
	for (i = 0; i < sk_X509_num(trust->certs); i++) {
		if (!X509_STORE_add_cert(trust->store, sk_X509_value(trust->certs, i))) {
			e = ERR_peek_last_error();
			/* A certificate listed twice is harmless. */
			if (ERR_GET_REASON(e) == X509_R_CERT_ALREADY_IN_HASH_TABLE)
				continue;
			snprintf(err, errlen, "%s: cannot add certificate %d to the store", path, i + 1);
			goto fail;
		}
	}
	/* Intermediates in the bundle are anchors too. */
	X509_STORE_set_flags(trust->store, X509_V_FLAG_PARTIAL_CHAIN);
	BIO_free(bio);
	ERR_clear_error();
	return trust;

fail:
	X509_free(x);
	BIO_free(bio);
	certs_trust_free(&trust);
	ERR_clear_error();
	return NULL;
}

void
certs_trust_free(struct certs_trust **trust)
{
	if (trust == NULL || *trust == NULL)
		return;
	X509_STORE_free((*trust)->store);
	sk_X509_pop_free((*trust)->certs, X509_free);
	free(*trust);
	*trust = NULL;
}

int
certs_trust_count(const struct certs_trust *trust)
{
	return trust == NULL ? 0 : sk_X509_num(trust->certs);
}

int
certs_trust_accepts(const struct certs_trust *trust, X509 *cert, time_t now, time_t *until)
{
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *chain;
	time_t t;
	int ok = 0;

	if (until != NULL)
		*until = 0;
	if (trust == NULL || cert == NULL)
		return 0;
	if ((ctx = X509_STORE_CTX_new()) != NULL &&
	    X509_STORE_CTX_init(ctx, trust->store, cert, NULL)) {
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
		/* The store takes partial chains: an anchor itself is accepted. */
		ok = X509_verify_cert(ctx) == 1;
	}
	/* The verdict holds until the first certificate of the chain expires. */
	if (ok && until != NULL && (chain = X509_STORE_CTX_get0_chain(ctx)) != NULL) {
		for (int i = 0; i < sk_X509_num(chain); i++) {
			if (util_asn1_time(X509_get0_notAfter(sk_X509_value(chain, i)), &t) == 0 &&
			    (*until == 0 || t < *until))
				*until = t;
		}
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static const EVP_MD *
hash_md(enum stapler_hash_alg alg)
{
	switch (alg) {
	case STAPLER_HASH_SHA256: return EVP_sha256();
	case STAPLER_HASH_SHA384: return EVP_sha384();
	case STAPLER_HASH_SHA512: return EVP_sha512();
	case STAPLER_HASH_SHA1: break;
	}
	return EVP_sha1();
}

static size_t
hash_len(enum stapler_hash_alg alg)
{
	return stapler_hash_alg_len(alg);
}

/* 1 when cert's subject name and public key hash to name_hash and key_hash under alg. */
static int
issuer_hashes_match(X509 *cert, enum stapler_hash_alg alg, const unsigned char *name_hash,
    const unsigned char *key_hash)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t want = hash_len(alg);

	if (!X509_pubkey_digest(cert, hash_md(alg), md, &mdlen) || mdlen != want ||
	    memcmp(md, key_hash, want) != 0)
		return 0;
	mdlen = 0;
	return X509_NAME_digest(X509_get_subject_name(cert), hash_md(alg), md, &mdlen) &&
	    mdlen == want && memcmp(md, name_hash, want) == 0;
}

X509 *
certs_trust_find(const struct certs_trust *trust, enum stapler_hash_alg alg,
    const unsigned char *name_hash, const unsigned char *key_hash)
{
	X509 *x;
	int i;

	if (trust == NULL || name_hash == NULL || key_hash == NULL)
		return NULL;
	for (i = 0; i < sk_X509_num(trust->certs); i++) {
		x = sk_X509_value(trust->certs, i);
		if (issuer_hashes_match(x, alg, name_hash, key_hash)) {
			ERR_clear_error();
			return x;
		}
	}
	ERR_clear_error();
	return NULL;
}

static STACK_OF(X509) *
parse_pem(const unsigned char *body, size_t len, char *err, size_t errlen)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	STACK_OF(X509) *certs = NULL;
	const unsigned char *p = body, *stop = body + len;
	const unsigned char *b, *e;
	BIO *bio = NULL;
	X509 *x = NULL;

	if ((certs = sk_X509_new_null()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (;;) {
		while (p < stop && is_space(*p))
			p++;
		if (p == stop)
			break;
		/* Each block must start right here: anything else is junk. */
		if ((size_t)(stop - p) < sizeof(begin) - 1 ||
		    memcmp(p, begin, sizeof(begin) - 1) != 0) {
			if ((size_t)(stop - p) >= 11 && memcmp(p, "-----BEGIN ", 11) == 0)
				snprintf(err, errlen, "PEM block %d is not a certificate",
				    sk_X509_num(certs) + 1);
			else
				snprintf(err, errlen, "junk in PEM body after certificate %d",
				    sk_X509_num(certs));
			goto fail;
		}
		if (sk_X509_num(certs) >= CERTS_MAX_CHAIN) {
			snprintf(err, errlen, "more than %d certificates", CERTS_MAX_CHAIN);
			goto fail;
		}
		b = p;
		if ((e = memmem_bounded(b, (size_t)(stop - b), end)) == NULL) {
			snprintf(err, errlen, "PEM certificate %d has no END line",
			    sk_X509_num(certs) + 1);
			goto fail;
		}
		e += sizeof(end) - 1;
		if (e - b > INT_MAX || (bio = BIO_new_mem_buf(b, (int)(e - b))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (read_pem_cert(bio, &x) != 1) {
			snprintf(err, errlen, "PEM certificate %d does not parse",
			    sk_X509_num(certs) + 1);
			goto fail;
		}
		BIO_free(bio);
		bio = NULL;
		if (!sk_X509_push(certs, x)) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		x = NULL;
		p = e;
	}
	if (sk_X509_num(certs) == 0) {
		snprintf(err, errlen, "body holds no certificate");
		goto fail;
	}
	return certs;

fail:
	X509_free(x);
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	return NULL;
}

static STACK_OF(X509) *
parse_der(const unsigned char *body, size_t len, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = NULL;
	const unsigned char *p = body;
	X509 *x = NULL;

	if (len > LONG_MAX || (x = d2i_X509(NULL, &p, (long)len)) == NULL) {
		snprintf(err, errlen, "body is not a PEM or DER certificate");
		goto fail;
	}
	if (p != body + len) {
		snprintf(err, errlen, "DER certificate followed by %zu trailing bytes",
		    (size_t)(body + len - p));
		goto fail;
	}
	if ((certs = sk_X509_new_null()) == NULL || !sk_X509_push(certs, x)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return certs;

fail:
	X509_free(x);
	sk_X509_free(certs);
	return NULL;
}

STACK_OF(X509) *
certs_parse(const unsigned char *body, size_t len, char *err, size_t errlen)
{
	STACK_OF(X509) *certs;

	ERR_clear_error();
	if (body == NULL || len == 0 || only_space(body, len)) {
		snprintf(err, errlen, "empty body");
		return NULL;
	}
	if (memmem_bounded(body, len, "-----BEGIN") != NULL)
		certs = parse_pem(body, len, err, errlen);
	else
		certs = parse_der(body, len, err, errlen);
	ERR_clear_error();
	return certs;
}

int
certs_not_after(X509 *cert, time_t *out)
{
	return cert == NULL ? -1 : util_asn1_time(X509_get0_notAfter(cert), out);
}

/* 1 when iss issued cert: names and key identifiers match (X509_check_issued) and iss's
 * key verifies cert's signature, with iss valid at now. */
static int
issued_by(X509 *cert, X509 *iss, time_t now)
{
	EVP_PKEY *key;

	if (X509_check_issued(iss, cert) != X509_V_OK ||
	    X509_cmp_time(X509_get0_notAfter(iss), &now) <= 0 ||
	    X509_cmp_time(X509_get0_notBefore(iss), &now) > 0)
		return 0;
	return (key = X509_get0_pubkey(iss)) != NULL && X509_verify(cert, key) == 1;
}

/* 1 when cert is self-issued and self-signed: a root, above which nothing can sign. */
static int
is_root(X509 *cert)
{
	return (X509_get_extension_flags(cert) & EXFLAG_SS) != 0;
}

/* Extends a verified chain above its last certificate while that one is not a root and its
 * issuer is known: a trust anchor of ctx's store, or a certificate of the request
 * (untrusted), either of which must have signed it. Every certificate of the chain but a
 * root then has its issuer next to it. Returns 0, or -1 when memory ran out. */
static int
extend_chain(X509_STORE_CTX *ctx, STACK_OF(X509) *chain, STACK_OF(X509) *untrusted, time_t now)
{
	X509 *top, *iss;
	int i, j, bound = CERTS_MAX_CHAIN + sk_X509_num(untrusted) + 1;

	while (sk_X509_num(chain) < bound) {
		top = sk_X509_value(chain, sk_X509_num(chain) - 1);
		if (is_root(top))
			return 0;
		iss = NULL;
		if (X509_STORE_CTX_get1_issuer(&iss, ctx, top) != 1 || !issued_by(top, iss, now)) {
			X509_free(iss);
			iss = NULL;
			for (i = 0; i < sk_X509_num(untrusted) && iss == NULL; i++) {
				if (issued_by(top, sk_X509_value(untrusted, i), now))
					iss = sk_X509_value(untrusted, i);
			}
			if (iss == NULL || !X509_up_ref(iss))
				return iss == NULL ? 0 : -1;
		}
		/* A certificate already in the chain would make a loop (cross-signed CAs). */
		for (j = 0; j < sk_X509_num(chain); j++) {
			if (X509_cmp(sk_X509_value(chain, j), iss) == 0) {
				X509_free(iss);
				return 0;
			}
		}
		if (!sk_X509_push(chain, iss)) {
			X509_free(iss);
			return -1;
		}
	}
	return 0;
}

void
certs_trust_issued(const struct certs_trust *trust, time_t now,
    void (*cb)(X509 *cert, X509 *issuer, void *arg), void *arg)
{
	X509 *cert, *iss;

	for (int i = 0; trust != NULL && i < sk_X509_num(trust->certs); i++) {
		cert = sk_X509_value(trust->certs, i);
		if (is_root(cert))
			continue;
		for (int j = 0; j < sk_X509_num(trust->certs); j++) {
			iss = sk_X509_value(trust->certs, j);
			if (j != i && issued_by(cert, iss, now)) {
				cb(cert, iss, arg);
				break;
			}
		}
	}
	ERR_clear_error();
}

int
certs_verify_chain_get(const struct certs_trust *trust, STACK_OF(X509) *certs, time_t now,
    STACK_OF(X509) **chain_out, time_t *not_after, char *err, size_t errlen)
{
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL, *chain = NULL;
	X509 *subject;
	char name[256];
	time_t t, earliest = 0;
	int i, rc = -1, verr, verified;

	*chain_out = NULL;
	ERR_clear_error();
	if (trust == NULL || certs == NULL || sk_X509_num(certs) < 1) {
		snprintf(err, errlen, "no certificate to verify");
		goto done;
	}
	subject = sk_X509_value(certs, 0);
	certs_subject(subject, name, sizeof(name));
	if ((untrusted = sk_X509_new_null()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	for (i = 1; i < sk_X509_num(certs); i++) {
		if (!sk_X509_push(untrusted, sk_X509_value(certs, i))) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, trust->store, subject, untrusted)) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	/* DLMS/IoT certificates carry no TLS purpose; only the chain matters. */
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
	if (X509_verify_cert(ctx) != 1) {
		verr = X509_STORE_CTX_get_error(ctx);
		snprintf(err, errlen, "%s (depth %d): %s", X509_verify_cert_error_string(verr),
		    X509_STORE_CTX_get_error_depth(ctx), name);
		goto done;
	}
	if ((chain = X509_chain_up_ref(X509_STORE_CTX_get0_chain(ctx))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	/* The partial chain stops at the first trusted certificate; an anchor that is not a
	 * root still needs its issuer for its own staple. */
	verified = sk_X509_num(chain);
	if (extend_chain(ctx, chain, untrusted, now) < 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (sk_X509_num(chain) < 2) {
		snprintf(err, errlen, "certificate is a trust anchor and its issuer is not in the "
		    "bundle or the request: %s", name);
		goto done;
	}
	/* The subject's validity ends with the verified chain's; the issuer found above an
	 * anchor subject bounds it too (its staple is signed by that issuer). */
	if (verified < 2)
		verified = 2;
	for (i = 0; i < verified; i++) {
		if (certs_not_after(sk_X509_value(chain, i), &t) != 0) {
			snprintf(err, errlen, "notAfter does not parse (depth %d): %s", i, name);
			goto done;
		}
		if (earliest == 0 || t < earliest)
			earliest = t;
	}
	*chain_out = chain;
	chain = NULL;
	*not_after = earliest;
	rc = 0;

done:
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	ERR_clear_error();
	return rc;
}

int
certs_verify_chain(const struct certs_trust *trust, STACK_OF(X509) *certs, time_t now,
    X509 **issuer, time_t *not_after, char *err, size_t errlen)
{
	STACK_OF(X509) *chain;

	*issuer = NULL;
	if (certs_verify_chain_get(trust, certs, now, &chain, not_after, err, errlen) < 0)
		return -1;
	*issuer = sk_X509_value(chain, 1);
	if (!X509_up_ref(*issuer)) {
		*issuer = NULL;
		snprintf(err, errlen, "out of memory");
		sk_X509_pop_free(chain, X509_free);
		return -1;
	}
	sk_X509_pop_free(chain, X509_free);
	return 0;
}

/* X509_get1_ocsp() is not used: it de-duplicates through a sorted stack, which loses the
 * certificate's order of preference. A URL is taken exactly as written or refused: nothing is
 * trimmed, decoded or re-encoded, so the URL fetched is the URL the CA signed. */
int
certs_ocsp_urls(X509 *cert, struct certs_urls *out, char *why, size_t whylen)
{
	AUTHORITY_INFO_ACCESS *aia = NULL;
	ACCESS_DESCRIPTION *ad;
	struct url_parts parts;
	const unsigned char *data;
	char reason[256];
	int i, j, len, dup, nth = 0;

	memset(out, 0, sizeof(*out));
	if (whylen > 0)
		why[0] = '\0';
	if (cert == NULL ||
	    (aia = X509_get_ext_d2i(cert, NID_info_access, NULL, NULL)) == NULL)
		goto done;
	for (i = 0; i < sk_ACCESS_DESCRIPTION_num(aia) && out->n < CERTS_MAX_URLS; i++) {
		ad = sk_ACCESS_DESCRIPTION_value(aia, i);
		if (OBJ_obj2nid(ad->method) != NID_ad_OCSP || ad->location == NULL ||
		    ad->location->type != GEN_URI)
			continue;
		nth++;
		data = ASN1_STRING_get0_data(ad->location->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(ad->location->d.uniformResourceIdentifier);
		if (data == NULL || len <= 0)
			snprintf(reason, sizeof(reason), "empty URL");
		else if (len >= CERTS_MAX_URL_LEN)
			snprintf(reason, sizeof(reason), "URL longer than %d bytes", CERTS_MAX_URL_LEN - 1);
		else if (url_parse_fetchable((const char *)data, (size_t)len, &parts, reason,
		    sizeof(reason)) == 0)
			reason[0] = '\0';
		if (reason[0] != '\0') {
			if (whylen > 0 && why[0] == '\0')
				snprintf(why, whylen, "AIA OCSP URL %d refused: %s", nth, reason);
			continue;
		}
		for (dup = 0, j = 0; j < out->n; j++)
			if (strlen(out->url[j]) == (size_t)len && memcmp(out->url[j], data, (size_t)len) == 0)
				dup = 1;
		if (dup)
			continue;
		if ((out->url[out->n] = strndup((const char *)data, (size_t)len)) == NULL)
			break;
		out->n++;
	}

done:
	AUTHORITY_INFO_ACCESS_free(aia);
	ERR_clear_error();
	return out->n;
}

void
certs_urls_free(struct certs_urls *urls)
{
	int i;

	if (urls == NULL)
		return;
	for (i = 0; i < urls->n && i < CERTS_MAX_URLS; i++) {
		free(urls->url[i]);
		urls->url[i] = NULL;
	}
	urls->n = 0;
}

int
certs_urls_encode(const struct certs_urls *urls, char *out, size_t cap)
{
	size_t off = 0;

	if (cap == 0)
		return -1;
	out[0] = '\0';
	for (int i = 0; urls != NULL && i < urls->n; i++) {
		size_t len = strlen(urls->url[i]);
		int n = snprintf(out + off, cap - off, "%zu:%s,", len, urls->url[i]);

		if (n < 0 || (size_t)n >= cap - off) {
			out[0] = '\0';
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

int
certs_urls_decode(const char *list, struct certs_urls *out)
{
	const char *p = list;

	memset(out, 0, sizeof(*out));
	while (p != NULL && *p != '\0') {
		size_t len = 0;

		/* At most 4 digits: an entry is shorter than CERTS_MAX_URL_LEN. */
		for (int d = 0; *p >= '0' && *p <= '9'; p++, d++) {
			if (d == 4)
				goto bad;
			len = len * 10 + (size_t)(*p - '0');
		}
		if (*p != ':' || len == 0 || len >= CERTS_MAX_URL_LEN || out->n == CERTS_MAX_URLS ||
		    strnlen(p + 1, len) != len || p[1 + len] != ',')
			goto bad;
		if ((out->url[out->n] = strndup(p + 1, len)) == NULL)
			goto bad;
		out->n++;
		p += 1 + len + 1;
	}
	return out->n;
bad:
	certs_urls_free(out);
	return -1;
}

OCSP_CERTID *
certs_certid(X509 *subject, X509 *issuer, enum stapler_hash_alg alg)
{
	OCSP_CERTID *id;

	if (subject == NULL || issuer == NULL)
		return NULL;
	id = OCSP_cert_to_id(hash_md(alg), subject, issuer);
	ERR_clear_error();
	return id;
}

int
certs_certid_hash_alg(const OCSP_CERTID *id, enum stapler_hash_alg *alg)
{
	enum stapler_hash_params params;

	return certs_certid_alg(id, alg, &params);
}

int
certs_certid_alg(const OCSP_CERTID *id, enum stapler_hash_alg *alg,
    enum stapler_hash_params *params)
{
	ASN1_OCTET_STRING *nhash = NULL, *khash = NULL;
	unsigned char *der = NULL;
	int n, rc = -1;

	if (id == NULL ||
	    !OCSP_id_get0_info(&nhash, NULL, &khash, NULL, CERTS_UNCONST(OCSP_CERTID, id)) ||
	    nhash == NULL || khash == NULL)
		goto out;
	/* The parameters' encoding is part of the key, and only the DER shows it: OpenSSL
	 * keeps what was decoded (absent or NULL) and encodes it back as it came. */
	if ((n = i2d_OCSP_CERTID(CERTS_UNCONST(OCSP_CERTID, id), &der)) <= 0 ||
	    der_certid_alg(der, (size_t)n, alg, params) < 0)
		goto out;
	if ((size_t)ASN1_STRING_length(nhash) == hash_len(*alg) &&
	    (size_t)ASN1_STRING_length(khash) == hash_len(*alg))
		rc = 0;
out:
	OPENSSL_free(der);
	ERR_clear_error();
	return rc;
}

int
certs_issuer_hashes(X509 *issuer, unsigned char name_hash[STAPLER_SHA1_LEN],
    unsigned char key_hash[STAPLER_SHA1_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok = 0;

	if (issuer != NULL && X509_pubkey_digest(issuer, EVP_sha1(), md, &mdlen) &&
	    mdlen == STAPLER_SHA1_LEN) {
		memcpy(key_hash, md, STAPLER_SHA1_LEN);
		mdlen = 0;
		if (X509_NAME_digest(X509_get_subject_name(issuer), EVP_sha1(), md, &mdlen) &&
		    mdlen == STAPLER_SHA1_LEN) {
			memcpy(name_hash, md, STAPLER_SHA1_LEN);
			ok = 1;
		}
	}
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* Algorithm and serial of id into key (zeroed first). Returns 0 or -1. */
static int
certid_alg_serial(const OCSP_CERTID *id, struct stapler_key *key)
{
	ASN1_INTEGER *serial = NULL;
	enum stapler_hash_params params;
	enum stapler_hash_alg alg;
	int slen;

	memset(key, 0, sizeof(*key));
	if (certs_certid_alg(id, &alg, &params) < 0 ||
	    !OCSP_id_get0_info(NULL, NULL, NULL, &serial, CERTS_UNCONST(OCSP_CERTID, id)) ||
	    serial == NULL)
		return -1;
	slen = ASN1_STRING_length(serial);
	if (slen < 0 || slen > STAPLER_SERIAL_MAX)
		return -1;
	key->hash_alg = (unsigned char)alg;
	key->hash_params = (unsigned char)params;
	if (slen > 0)
		memcpy(key->serial, ASN1_STRING_get0_data(serial), (size_t)slen);
	key->serial_len = (unsigned char)slen;
	key->serial_negative = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
	return 0;
}

int
certs_certid_key_with(const OCSP_CERTID *id, const unsigned char name_hash[STAPLER_SHA1_LEN],
    const unsigned char key_hash[STAPLER_SHA1_LEN], struct stapler_key *key)
{
	if (certid_alg_serial(id, key) < 0) {
		memset(key, 0, sizeof(*key));
		return -1;
	}
	memcpy(key->name_hash, name_hash, STAPLER_SHA1_LEN);
	memcpy(key->key_hash, key_hash, STAPLER_SHA1_LEN);
	return 0;
}

int
certs_certid_key(const OCSP_CERTID *id, X509 *issuer, struct stapler_key *key)
{
	ASN1_OCTET_STRING *nhash = NULL, *khash = NULL;

	if (certid_alg_serial(id, key) < 0)
		goto fail;
	if (key->hash_alg == STAPLER_HASH_SHA1) {
		/* A SHA-1 CertID carries the issuer's identity itself. */
		if (!OCSP_id_get0_info(&nhash, NULL, &khash, NULL, CERTS_UNCONST(OCSP_CERTID, id)))
			goto fail;
		memcpy(key->name_hash, ASN1_STRING_get0_data(nhash), STAPLER_SHA1_LEN);
		memcpy(key->key_hash, ASN1_STRING_get0_data(khash), STAPLER_SHA1_LEN);
		return 0;
	}
	if (certs_issuer_hashes(issuer, key->name_hash, key->key_hash) == 0)
		return 0;
fail:
	memset(key, 0, sizeof(*key));
	return -1;
}

void
certs_certid_name_hash_hex(const OCSP_CERTID *id, char out[STAPLER_SHA1_HEX])
{
	ASN1_OCTET_STRING *nhash = NULL;

	out[0] = '\0';
	if (id == NULL ||
	    !OCSP_id_get0_info(&nhash, NULL, NULL, NULL, CERTS_UNCONST(OCSP_CERTID, id)) ||
	    nhash == NULL || ASN1_STRING_length(nhash) != STAPLER_SHA1_LEN)
		return;
	util_hex(ASN1_STRING_get0_data(nhash), STAPLER_SHA1_LEN, out);
}

void
certs_subject(X509 *cert, char *out, size_t cap)
{
	BIO *bio = NULL;
	int n;

	if (cap == 0)
		return;
	out[0] = '\0';
	if (cert == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		goto done;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
		goto done;
	n = BIO_read(bio, out, cap - 1 > INT_MAX ? INT_MAX : (int)(cap - 1));
	out[n > 0 ? n : 0] = '\0';

done:
	BIO_free(bio);
	ERR_clear_error();
}

unsigned char *
certs_der(X509 *cert, size_t *len)
{
	unsigned char *der = NULL;
	int n;

	*len = 0;
	if (cert == NULL || (n = i2d_X509(cert, &der)) <= 0) {
		ERR_clear_error();
		return NULL;
	}
	*len = (size_t)n;
	return der;
}

int
certs_no_rev_avail(X509 *cert)
{
	/* id-ce-noRevAvail, 2.5.29.56: OpenSSL 3.0 has no NID for it. */
	static const unsigned char oid[] = { 0x06, 0x03, 0x55, 0x1d, 0x38 };
	const unsigned char *p = oid;
	ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &p, (long)sizeof(oid));
	int found;

	if (obj == NULL)
		return 0;
	found = cert != NULL && X509_get_ext_by_OBJ(cert, obj, -1) >= 0;
	ASN1_OBJECT_free(obj);
	return found;
}
