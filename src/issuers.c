/* The issuers the OCSP proxy serves, by CertID issuer key hash: CA certificates learned from
 * stored staples with the responder URLs their certificates named. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "issuers.h"
#include "table.h"

/* OpenSSL's getters take non-const pointers for what they only read. */
#define ISSUERS_UNCONST(type, p) ((type *)(uintptr_t)(p))

struct issuer {
	unsigned char key_hash[STAPLER_SHA1_LEN];
	X509 *cert;
	struct certs_urls urls;
	int trusted;        /* chains to the trust anchors in force (issuers_retrust) */
	time_t until;       /* ...and that verdict holds until then; 0: check at next use */
};

struct issuers {
	struct table by_key;
};

static uint64_t
key_hash_hash(const void *key, uint64_t seed)
{
	return table_fnv(TABLE_FNV_BASIS ^ seed, key, STAPLER_SHA1_LEN);
}

static int
issuer_match(const void *entry, const void *key)
{
	return memcmp(((const struct issuer *)entry)->key_hash, key, STAPLER_SHA1_LEN) == 0;
}

static const void *
issuer_key_of(const void *entry)
{
	return ((const struct issuer *)entry)->key_hash;
}

static void
issuer_free(struct issuer *e)
{
	if (e == NULL)
		return;
	X509_free(e->cert);
	certs_urls_free(&e->urls);
	free(e);
}

struct issuers *
issuers_new(void)
{
	struct issuers *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->by_key.hash = key_hash_hash;
	r->by_key.match = issuer_match;
	r->by_key.key_of = issuer_key_of;
	return r;
}

void
issuers_free(struct issuers **rp)
{
	struct issuers *r;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	for (size_t i = 0; i < r->by_key.cap; i++)
		issuer_free(r->by_key.slot[i]);
	table_clear(&r->by_key, 0);
	free(r);
	*rp = NULL;
}

size_t
issuers_count(const struct issuers *r)
{
	return r->by_key.count;
}

/* Whether e chains to the anchors at now: the verdict of the last check while it holds (no
 * chain building on the way of every refresh and /ocsp request), else a new check. Learned
 * from a verified chain or re-checked by issuers_retrust() against new anchors; a certificate
 * of its chain expiring ends it. */
static int
entry_trusted(struct issuer *e, const struct certs_trust *trust, time_t now)
{
	if (e->trusted && now >= e->until)
		e->trusted = certs_trust_accepts(trust, e->cert, now, &e->until);
	return e->trusted;
}

X509 *
issuers_get(struct issuers *r, const unsigned char key_hash[STAPLER_SHA1_LEN],
    const struct certs_trust *trust, time_t now, int *trusted)
{
	struct issuer *e = table_get(&r->by_key, key_hash, 0);

	if (e == NULL)
		return NULL;
	*trusted = entry_trusted(e, trust, now);
	return e->cert;
}

int
issuers_known(const struct issuers *r, const unsigned char key_hash[STAPLER_SHA1_LEN])
{
	return table_get(&r->by_key, key_hash, 0) != NULL;
}

/* Appends url unless it is there already or the list is full. Returns 0 or -1. */
static int
urls_add(struct certs_urls *urls, const char *url, size_t len)
{
	if (len == 0 || len >= CERTS_MAX_URL_LEN)
		return 0;
	for (int i = 0; i < urls->n; i++) {
		if (strlen(urls->url[i]) == len && memcmp(urls->url[i], url, len) == 0)
			return 0;
	}
	if (urls->n == CERTS_MAX_URLS)
		return 0;
	if ((urls->url[urls->n] = strndup(url, len)) == NULL)
		return -1;
	urls->n++;
	return 0;
}

/* The entry for issuer, made when new. */
static struct issuer *
entry_for(struct issuers *r, X509 *issuer)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct issuer *e;
	void *replaced;

	if (!X509_pubkey_digest(issuer, EVP_sha1(), md, &mdlen) || mdlen != STAPLER_SHA1_LEN) {
		ERR_clear_error();
		return NULL;
	}
	if ((e = table_get(&r->by_key, md, 0)) != NULL)
		return e;
	if (r->by_key.count >= ISSUERS_MAX || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	/* Not served until issuers_learn() (a verified chain) or issuers_retrust() says so. */
	e->trusted = 0;
	memcpy(e->key_hash, md, STAPLER_SHA1_LEN);
	if (!X509_up_ref(issuer)) {
		free(e);
		return NULL;
	}
	e->cert = issuer;
	if (table_put(&r->by_key, e, 0, &replaced) < 0) {
		issuer_free(e);
		return NULL;
	}
	return e;
}

int
issuers_learn(struct issuers *r, X509 *issuer, const struct certs_urls *urls)
{
	struct issuer *e;

	if (issuer == NULL || (e = entry_for(r, issuer)) == NULL)
		return -1;
	/* It issued a certificate whose chain was just verified against the anchors; how long
	 * that holds is worked out at first use. */
	if (!e->trusted) {
		e->trusted = 1;
		e->until = 0;
	}
	for (int i = 0; urls != NULL && i < urls->n; i++) {
		if (urls_add(&e->urls, urls->url[i], strlen(urls->url[i])) < 0)
			return -1;
	}
	return 0;
}

/* Appends the URLs of a '\n'-separated list. Returns 0 or -1. */
static int
add_url_list(struct issuer *e, const char *urls)
{
	struct certs_urls list;
	int rc = 0;

	if (certs_urls_split(urls, &list) < 0)
		return -1;
	for (int i = 0; i < list.n && rc == 0; i++)
		rc = urls_add(&e->urls, list.url[i], strlen(list.url[i]));
	certs_urls_free(&list);
	return rc;
}

int
issuers_learn_der(struct issuers *r, const unsigned char *der, size_t len, const char *urls)
{
	const unsigned char *p = der;
	struct issuer *e;
	X509 *x;
	int rc;

	if (der == NULL || len == 0 || len > INT32_MAX ||
	    (x = d2i_X509(NULL, &p, (long)len)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	rc = (e = entry_for(r, x)) == NULL ? -1 : add_url_list(e, urls);
	X509_free(x);
	return rc;
}

int
issuers_add_urls(struct issuers *r, const unsigned char key_hash[STAPLER_SHA1_LEN],
    const char *urls)
{
	struct issuer *e = table_get(&r->by_key, key_hash, 0);

	return e == NULL ? -1 : add_url_list(e, urls);
}

/* 1 when name_hash is the SHA-1 of cert's subject name. */
static int
name_hash_matches(X509 *cert, const ASN1_OCTET_STRING *name_hash)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok;

	ok = X509_NAME_digest(X509_get_subject_name(cert), EVP_sha1(), md, &mdlen) &&
	    (int)mdlen == ASN1_STRING_length(name_hash) &&
	    memcmp(md, ASN1_STRING_get0_data(name_hash), mdlen) == 0;
	ERR_clear_error();
	return ok;
}

X509 *
issuers_resolve(struct issuers *r, const struct certs_trust *trust, time_t now,
    const OCSP_CERTID *id, const struct certs_urls **urls, enum issuers_miss *miss)
{
	static const struct certs_urls none;
	ASN1_OCTET_STRING *nhash = NULL, *khash = NULL;
	ASN1_OBJECT *alg = NULL;
	struct issuer *e;
	X509 *cert;

	*urls = &none;
	*miss = ISSUERS_UNKNOWN;
	if (id == NULL ||
	    !OCSP_id_get0_info(&nhash, &alg, &khash, NULL, ISSUERS_UNCONST(OCSP_CERTID, id)) ||
	    nhash == NULL || khash == NULL || alg == NULL)
		return NULL;
	/* The cache is keyed by SHA-1 CertIDs, and a response must repeat the client's CertID. */
	if (OBJ_obj2nid(alg) != NID_sha1 || ASN1_STRING_length(khash) != STAPLER_SHA1_LEN) {
		*miss = ISSUERS_HASH_ALG;
		return NULL;
	}
	if ((e = table_get(&r->by_key, ASN1_STRING_get0_data(khash), 0)) != NULL &&
	    entry_trusted(e, trust, now)) {
		cert = e->cert;
		*urls = &e->urls;
	} else if ((cert = certs_trust_find_by_key_hash(trust, ASN1_STRING_get0_data(khash))) == NULL) {
		/* Learned once, but its anchor is gone: it is served no more. */
		if (e != NULL)
			*miss = ISSUERS_UNTRUSTED;
		return NULL;
	}
	if (!name_hash_matches(cert, nhash)) {
		*urls = &none;
		*miss = ISSUERS_NAME_MISMATCH;
		return NULL;
	}
	*miss = ISSUERS_FOUND;
	return cert;
}

size_t
issuers_retrust(struct issuers *r, const struct certs_trust *trust, time_t now)
{
	size_t untrusted = 0;

	for (size_t i = 0; i < r->by_key.cap; i++) {
		struct issuer *e = r->by_key.slot[i];

		if (e == NULL)
			continue;
		e->trusted = certs_trust_accepts(trust, e->cert, now, &e->until);
		if (!e->trusted)
			untrusted++;
	}
	return untrusted;
}

const char *
issuers_miss_name(enum issuers_miss m)
{
	switch (m) {
	case ISSUERS_FOUND:
		return "found";
	case ISSUERS_HASH_ALG:
		return "hash_algorithm";
	case ISSUERS_UNKNOWN:
		return "unknown_issuer";
	case ISSUERS_NAME_MISMATCH:
		return "issuer_name_mismatch";
	case ISSUERS_UNTRUSTED:
		return "issuer_no_longer_trusted";
	}
	return "invalid";
}
