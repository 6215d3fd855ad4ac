/* The issuers the OCSP proxy serves, by the issuer part of a CertID of any algorithm
 * (name hash and key hash): CA certificates learned from stored staples with the responder
 * URLs their certificates named. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "issuers.h"
#include "table.h"

/* OpenSSL's getters take non-const pointers for what they only read. */
#define ISSUERS_UNCONST(type, p) ((type *)(uintptr_t)(p))

/* An issuer's identity as CertIDs of each algorithm carry it: name hash then key hash; the
 * SHA-2 ones zero-padded to the longest, so one hash and match function serves each table. */
#define ID_SHA1_LEN (2 * STAPLER_SHA1_LEN)
#define ID_SHA2_LEN (2 * STAPLER_HASH_MAX_LEN)
#define SHA2_ALGS (STAPLER_HASH_ALG_COUNT - 1)   /* SHA-256, SHA-384, SHA-512: alg - 1 */

struct issuer {
	unsigned char id_sha1[ID_SHA1_LEN];              /* the key's issuer part (types.h) */
	unsigned char id_sha2[SHA2_ALGS][ID_SHA2_LEN];   /* what a SHA-2 CertID carries */
	X509 *cert;
	struct certs_urls urls;
	int trusted;        /* chains to the trust anchors in force (issuers_retrust) */
	time_t until;       /* ...and that verdict holds until then; 0: check at next use */
};

/* One entry, found by the CertID of any algorithm: a table per algorithm over the same
 * entries. */
struct issuers {
	struct table by_sha1;                /* owns the entries */
	struct table by_sha2[SHA2_ALGS];
	uint64_t seed;                       /* of every table */
};

static uint64_t
id_sha1_hash(const void *key, uint64_t seed)
{
	return table_fnv(TABLE_FNV_BASIS ^ seed, key, ID_SHA1_LEN);
}

static int
id_sha1_match(const void *entry, const void *key)
{
	return memcmp(((const struct issuer *)entry)->id_sha1, key, ID_SHA1_LEN) == 0;
}

static const void *
id_sha1_of(const void *entry)
{
	return ((const struct issuer *)entry)->id_sha1;
}

static uint64_t
id_sha2_hash(const void *key, uint64_t seed)
{
	return table_fnv(TABLE_FNV_BASIS ^ seed, key, ID_SHA2_LEN);
}

/* The tables' match and key_of functions, one pair per SHA-2 algorithm. */
#define ID_SHA2_FNS(i) \
static int \
id_sha2_match_##i(const void *entry, const void *key) \
{ \
	return memcmp(((const struct issuer *)entry)->id_sha2[i], key, ID_SHA2_LEN) == 0; \
} \
static const void * \
id_sha2_of_##i(const void *entry) \
{ \
	return ((const struct issuer *)entry)->id_sha2[i]; \
}
ID_SHA2_FNS(0)
ID_SHA2_FNS(1)
ID_SHA2_FNS(2)

static int (*const id_sha2_match[SHA2_ALGS])(const void *, const void *) = {
	id_sha2_match_0, id_sha2_match_1, id_sha2_match_2,
};
static const void *(*const id_sha2_of[SHA2_ALGS])(const void *) = {
	id_sha2_of_0, id_sha2_of_1, id_sha2_of_2,
};

/* The table a CertID of alg is looked up in. */
static struct table *
table_for(const struct issuers *r, enum stapler_hash_alg alg)
{
	struct issuers *w = ISSUERS_UNCONST(struct issuers, r);

	return alg == STAPLER_HASH_SHA1 ? &w->by_sha1 : &w->by_sha2[alg - 1];
}

/* A CertID's name and key hashes (hash_len bytes each) as the table of their algorithm keys
 * them. */
static void
cid_of(const unsigned char *name_hash, const unsigned char *key_hash, size_t hash_len,
    unsigned char cid[ID_SHA2_LEN])
{
	memset(cid, 0, ID_SHA2_LEN);
	memcpy(cid, name_hash, hash_len);
	memcpy(cid + hash_len, key_hash, hash_len);
}

/* The issuer part of key as the SHA-1 table looks it up. */
static void
key_id(const struct stapler_key *key, unsigned char id[ID_SHA1_LEN])
{
	memcpy(id, key->name_hash, STAPLER_SHA1_LEN);
	memcpy(id + STAPLER_SHA1_LEN, key->key_hash, STAPLER_SHA1_LEN);
}

static struct issuer *
find(const struct issuers *r, const struct stapler_key *key)
{
	unsigned char id[ID_SHA1_LEN];

	key_id(key, id);
	return table_get(&r->by_sha1, id, r->seed);
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
	r->by_sha1.hash = id_sha1_hash;
	r->by_sha1.match = id_sha1_match;
	r->by_sha1.key_of = id_sha1_of;
	for (int i = 0; i < SHA2_ALGS; i++) {
		r->by_sha2[i].hash = id_sha2_hash;
		r->by_sha2[i].match = id_sha2_match[i];
		r->by_sha2[i].key_of = id_sha2_of[i];
	}
	r->seed = table_seed();
	return r;
}

void
issuers_free(struct issuers **rp)
{
	struct issuers *r;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	for (size_t i = 0; i < r->by_sha1.cap; i++)
		issuer_free(r->by_sha1.slot[i]);
	table_clear(&r->by_sha1, 0);
	for (int i = 0; i < SHA2_ALGS; i++)
		table_clear(&r->by_sha2[i], 0);
	free(r);
	*rp = NULL;
}

size_t
issuers_count(const struct issuers *r)
{
	return r->by_sha1.count;
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
issuers_get(struct issuers *r, const struct stapler_key *key, const struct certs_trust *trust,
    time_t now, int *trusted)
{
	struct issuer *e = find(r, key);

	if (e == NULL)
		return NULL;
	*trusted = entry_trusted(e, trust, now);
	return e->cert;
}

int
issuers_known(const struct issuers *r, const struct stapler_key *key)
{
	return find(r, key) != NULL;
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
	unsigned char id[ID_SHA1_LEN], name_md[EVP_MAX_MD_SIZE], key_md[EVP_MAX_MD_SIZE];
	unsigned int name_len, key_len;
	struct issuer *e;
	void *replaced;
	int i;

	if (certs_issuer_hashes(issuer, id, id + STAPLER_SHA1_LEN) < 0)
		return NULL;
	if ((e = table_get(&r->by_sha1, id, r->seed)) != NULL)
		return e;
	if (r->by_sha1.count >= ISSUERS_MAX || (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	/* Not served until issuers_learn() (a verified chain) or issuers_retrust() says so. */
	e->trusted = 0;
	memcpy(e->id_sha1, id, ID_SHA1_LEN);
	for (i = 0; i < SHA2_ALGS; i++) {
		static const EVP_MD *(*const mds[SHA2_ALGS])(void) = { EVP_sha256, EVP_sha384,
		    EVP_sha512 };
		const EVP_MD *md = mds[i]();
		size_t want = stapler_hash_alg_len((enum stapler_hash_alg)(i + 1));

		name_len = key_len = 0;
		if (md == NULL ||
		    !X509_NAME_digest(X509_get_subject_name(issuer), md, name_md, &name_len) ||
		    !X509_pubkey_digest(issuer, md, key_md, &key_len) || name_len != want ||
		    key_len != want)
			goto fail;
		cid_of(name_md, key_md, want, e->id_sha2[i]);
	}
	if (!X509_up_ref(issuer))
		goto fail;
	e->cert = issuer;
	if (table_put(&r->by_sha1, e, r->seed, &replaced) < 0) {
		issuer_free(e);
		return NULL;
	}
	for (i = 0; i < SHA2_ALGS; i++) {
		if (table_put(&r->by_sha2[i], e, r->seed, &replaced) < 0) {
			while (--i >= 0)
				table_remove(&r->by_sha2[i], e->id_sha2[i], r->seed);
			table_remove(&r->by_sha1, e->id_sha1, r->seed);
			issuer_free(e);
			return NULL;
		}
	}
	return e;
fail:
	ERR_clear_error();
	free(e);
	return NULL;
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

/* Appends the URLs of an encoded list (certs_urls_encode()). Returns 0 or -1. */
static int
add_url_list(struct issuer *e, const char *urls)
{
	struct certs_urls list;
	int rc = 0;

	if (certs_urls_decode(urls, &list) < 0)
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
issuers_add_urls(struct issuers *r, const struct stapler_key *key, const char *urls)
{
	struct issuer *e = find(r, key);

	return e == NULL ? -1 : add_url_list(e, urls);
}

int
issuers_key(const struct issuers *r, enum stapler_hash_alg alg, const unsigned char *name_hash,
    const unsigned char *key_hash, struct stapler_key *key)
{
	unsigned char cid[ID_SHA2_LEN];
	const struct issuer *e;

	key->hash_alg = (unsigned char)alg;
	if (alg == STAPLER_HASH_SHA1) {
		memcpy(key->name_hash, name_hash, STAPLER_SHA1_LEN);
		memcpy(key->key_hash, key_hash, STAPLER_SHA1_LEN);
		return 0;
	}
	if ((unsigned)alg >= STAPLER_HASH_ALG_COUNT)
		return -1;
	cid_of(name_hash, key_hash, stapler_hash_alg_len(alg), cid);
	if ((e = table_get(table_for(r, alg), cid, r->seed)) == NULL)
		return -1;
	memcpy(key->name_hash, e->id_sha1, STAPLER_SHA1_LEN);
	memcpy(key->key_hash, e->id_sha1 + STAPLER_SHA1_LEN, STAPLER_SHA1_LEN);
	return 0;
}

X509 *
issuers_resolve(struct issuers *r, const struct certs_trust *trust, time_t now,
    const OCSP_CERTID *id, struct stapler_key *key, const struct certs_urls **urls,
    enum issuers_miss *miss)
{
	static const struct certs_urls none;
	ASN1_OCTET_STRING *nhash = NULL, *khash = NULL;
	unsigned char cid[ID_SHA2_LEN], name_hash[STAPLER_SHA1_LEN], key_hash[STAPLER_SHA1_LEN];
	enum stapler_hash_alg alg;
	struct issuer *e;
	X509 *cert;
	size_t n;

	*urls = &none;
	*miss = ISSUERS_UNKNOWN;
	memset(key, 0, sizeof(*key));
	if (id == NULL ||
	    !OCSP_id_get0_info(&nhash, NULL, &khash, NULL, ISSUERS_UNCONST(OCSP_CERTID, id)) ||
	    nhash == NULL || khash == NULL)
		return NULL;
	/* A response must repeat the client's CertID: the cache holds one per algorithm. */
	if (certs_certid_hash_alg(id, &alg) < 0) {
		*miss = ISSUERS_HASH_ALG;
		return NULL;
	}
	n = (size_t)ASN1_STRING_length(nhash);
	cid_of(ASN1_STRING_get0_data(nhash), ASN1_STRING_get0_data(khash), n, cid);
	e = table_get(table_for(r, alg), cid, r->seed);
	if (e != NULL && entry_trusted(e, trust, now)) {
		cert = e->cert;
		*urls = &e->urls;
		memcpy(name_hash, e->id_sha1, STAPLER_SHA1_LEN);
		memcpy(key_hash, e->id_sha1 + STAPLER_SHA1_LEN, STAPLER_SHA1_LEN);
	} else if ((cert = certs_trust_find(trust, alg, cid, cid + n)) == NULL ||
	    certs_issuer_hashes(cert, name_hash, key_hash) < 0) {
		/* Learned once, but its anchor is gone: it is served no more. */
		if (e != NULL)
			*miss = ISSUERS_UNTRUSTED;
		return NULL;
	}
	if (certs_certid_key_with(id, name_hash, key_hash, key) < 0) {
		*urls = &none;
		*miss = ISSUERS_BAD_SERIAL;
		return NULL;
	}
	*miss = ISSUERS_FOUND;
	return cert;
}

size_t
issuers_retrust(struct issuers *r, const struct certs_trust *trust, time_t now)
{
	size_t untrusted = 0;

	for (size_t i = 0; i < r->by_sha1.cap; i++) {
		struct issuer *e = r->by_sha1.slot[i];

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
	case ISSUERS_BAD_SERIAL:
		return "serial_too_long";
	case ISSUERS_UNTRUSTED:
		return "issuer_no_longer_trusted";
	}
	return "invalid";
}
