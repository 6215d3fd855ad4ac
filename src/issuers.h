/* The issuers the OCSP proxy serves: CA certificates learned from stored staples (the SQLite
 * issuer table at warm start, every new staple after) with the responder URLs their
 * certificates named, and the lookup from a client's CertID to the issuer it names. */
#ifndef STAPLER_ISSUERS_H
#define STAPLER_ISSUERS_H

#include <stddef.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "certs.h"
#include "stapler/types.h"

/* Bound on learned issuers (CAs, not certificates): beyond it new ones are not learned. */
#define ISSUERS_MAX 65536

struct issuers;

struct issuers *issuers_new(void);
void issuers_free(struct issuers **r);
size_t issuers_count(const struct issuers *r);

/* Records issuer (a new reference is taken) as trusted (it issued a certificate whose chain
 * was verified) and appends the URLs of urls it does not hold
 * yet, up to CERTS_MAX_URLS. urls may be NULL. Returns 0 or -1 (out of memory, full). */
int issuers_learn(struct issuers *r, X509 *issuer, const struct certs_urls *urls);
/* The same from a cache row's parts: the issuer's DER and its encoded URL list. A new
 * issuer learned this way is not served until issuers_retrust() finds it trusted. */
int issuers_learn_der(struct issuers *r, const unsigned char *der, size_t len, const char *urls);
/* Appends an encoded URL list (certs_urls_encode()) to the learned issuer of key (its SHA-1
 * name and key hashes). Returns 0, or -1 when it is not known (or memory ran out). */
int issuers_add_urls(struct issuers *r, const struct stapler_key *key, const char *urls);
/* The learned issuer of key (its SHA-1 name and key hashes; owned by the registry), or NULL;
 * *trusted says
 * whether it chains to the anchors trust at now (a verdict kept until a certificate of its
 * chain expires, and renewed by issuers_retrust() when the anchors change). */
X509 *issuers_get(struct issuers *r, const struct stapler_key *key,
    const struct certs_trust *trust, time_t now, int *trusted);
/* 1 when the issuer of key has been learned, else 0. */
int issuers_known(const struct issuers *r, const struct stapler_key *key);

/* Checks every learned issuer against the trust anchors in force at now (warm start, reload):
 * one that no longer chains to them is not served, and no /ocsp miss for it reaches an
 * upstream. Returns the number of learned issuers not trusted. */
size_t issuers_retrust(struct issuers *r, const struct certs_trust *trust, time_t now);

/* The issuer part of the cache key for a CertID's hashes under alg (hash length of alg each):
 * a SHA-1 CertID's own hashes, a SHA-2 one's mapped to the SHA-1 ones of the learned issuer
 * they name. Sets key->hash_alg and the two hashes (not hash_params, which the caller knows);
 * returns 0, or -1 when a SHA-2 CertID
 * names no learned issuer. No allocation, no OpenSSL: the /ocsp hit path. */
int issuers_key(const struct issuers *r, enum stapler_hash_alg alg,
    const unsigned char *name_hash, const unsigned char *key_hash, struct stapler_key *key);

/* Why issuers_resolve() found no issuer (all are the OCSP `unauthorized` status). */
enum issuers_miss {
	ISSUERS_FOUND = 0,
	ISSUERS_HASH_ALG,       /* CertID hashed with another algorithm than SHA-1, SHA-256,
	                         * SHA-384 or SHA-512, or with parameters other than NULL or
	                         * absent */
	ISSUERS_UNKNOWN,        /* no learned issuer or trust anchor has this name and key hash */
	ISSUERS_BAD_SERIAL,     /* the serial is longer than STAPLER_SERIAL_MAX */
	ISSUERS_UNTRUSTED,      /* learned, but it no longer chains to the trust anchors */
};

/* Finds the issuer a client's CertID (SHA-1, SHA-256, SHA-384 or SHA-512) names: a learned
 * issuer still trusted at now, or else a trust anchor (trust may be NULL), whose subject name
 * and public key hash to the CertID's issuerNameHash and issuerKeyHash under its algorithm.
 * Returns the certificate (owned by the registry or the trust store: valid until the next
 * learn or reload), fills *key (the CertID's algorithm, its parameters' encoding and serial,
 * the issuer's SHA-1 hashes: the cache key of the answer) and points *urls at its learned
 * URLs (n == 0 for an anchor never seen in a staple); else NULL with *miss set. */
X509 *issuers_resolve(struct issuers *r, const struct certs_trust *trust, time_t now,
    const OCSP_CERTID *id, struct stapler_key *key, const struct certs_urls **urls,
    enum issuers_miss *miss);
/* "found", "hash_algorithm", "unknown_issuer", "serial_too_long", "issuer_no_longer_trusted". */
const char *issuers_miss_name(enum issuers_miss m);

#endif
