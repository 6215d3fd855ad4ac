/* Certificates: PEM/DER bodies, the trust bundle and chain check, AIA OCSP URLs, the CertID. */
#ifndef STAPLER_CERTS_H
#define STAPLER_CERTS_H

#include <time.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "stapler/types.h"

/* Bounds on what a submission may carry. */
#define CERTS_MAX_CHAIN 10   /* certificates in one body */
#define CERTS_MAX_URLS 4     /* AIA OCSP URLs tried per certificate */
#define CERTS_MAX_URL_LEN 1024

/* The trust anchors of [trust] ca_file: roots and intermediates, each trusted as an anchor. */
struct certs_trust;

/* Loads every certificate of a PEM bundle. Returns NULL with err set when the file cannot be
 * read, holds something that is not a certificate, or holds none. */
struct certs_trust *certs_trust_load(const char *path, char *err, size_t errlen);
void certs_trust_free(struct certs_trust **trust);
int certs_trust_count(const struct certs_trust *trust);
/* 1 when cert is a trust anchor or chains to one at now (a CA certificate learned earlier is
 * checked again after the anchors changed), else 0. When until is not NULL it receives the
 * earliest notAfter of the verified chain: the verdict holds until then (0 when refused). */
int certs_trust_accepts(const struct certs_trust *trust, X509 *cert, time_t now, time_t *until);
/* Returns the anchor whose subject name and public key hash to name_hash and key_hash under
 * alg (as in a CertID of that algorithm), or NULL. The certificate is owned by the trust store. */
X509 *certs_trust_find(const struct certs_trust *trust, enum stapler_hash_alg alg,
    const unsigned char *name_hash, const unsigned char *key_hash);

/* Calls cb for every anchor that is not a root and whose issuer (one that signed it, valid at
 * now) is in the bundle too, with that issuer. Both are owned by the trust store. */
void certs_trust_issued(const struct certs_trust *trust, time_t now,
    void (*cb)(X509 *cert, X509 *issuer, void *arg), void *arg);

/* Parses a request body: one or more PEM certificates (subject first, then its chain) or one
 * DER certificate. Returns a new stack (sk_X509_pop_free(…, X509_free)), or NULL with err set.
 * More than CERTS_MAX_CHAIN certificates, trailing junk, or anything not a certificate fails. */
STACK_OF(X509) *certs_parse(const unsigned char *body, size_t len, char *err, size_t errlen);

/* Checks that certs[0] chains to the trust anchors at time now, using certs[1..] as untrusted
 * intermediates. On success returns 0 and sets *issuer to certs[0]'s issuer (a new reference:
 * X509_free) and *not_after to the earliest notAfter along the chain; else -1 and err says why. */
int certs_verify_chain(const struct certs_trust *trust, STACK_OF(X509) *certs, time_t now,
    X509 **issuer, time_t *not_after, char *err, size_t errlen);

/* Like certs_verify_chain(), but hands back the verified chain: *chain is a new stack
 * (sk_X509_pop_free(…, X509_free)) of certs[0], then each issuer in turn up to the first
 * trust anchor, then on above it while an issuer is known: an intermediate that is itself an
 * anchor is followed by its issuer from the bundle or from certs[1..] (one that signed it),
 * up to a self-signed root or to an anchor whose issuer is unknown. So chain[i + 1] is always
 * the issuer of chain[i], and every certificate but the last can get a staple. A certs[0]
 * with no known issuer (a self-signed root, an anchor alone) is refused: the stack holds at
 * least two. *not_after is the earliest notAfter of the verified part (and of certs[0]'s
 * issuer). */
int certs_verify_chain_get(const struct certs_trust *trust, STACK_OF(X509) *certs, time_t now,
    STACK_OF(X509) **chain, time_t *not_after, char *err, size_t errlen);
/* notAfter of cert as Unix seconds into *out. Returns 0, or -1 when it does not parse. */
int certs_not_after(X509 *cert, time_t *out);
/* 1 when cert carries RFC 9608's noRevAvail extension (id-ce 56): its issuer will never
 * publish revocation information for it, so there is no staple to ask for; else 0. */
int certs_no_rev_avail(X509 *cert);

/* The AIA id-ad-ocsp URLs of cert, in certificate order, at most CERTS_MAX_URLS of them,
 * each taken exactly as written or refused: one that url_parse_fetchable() refuses (control
 * characters such as a newline, user information, a #fragment, a scheme other than http or
 * https, CERTS_MAX_URL_LEN bytes or more) is skipped, and the first refusal is described in
 * why ("AIA OCSP URL 1 refused: ..."; "" when none was). urls[i] are new strings
 * (certs_urls_free()). Returns the count of accepted URLs (0 when there is none). */
struct certs_urls {
	int n;
	char *url[CERTS_MAX_URLS];
};
int certs_ocsp_urls(X509 *cert, struct certs_urls *out, char *why, size_t whylen);
void certs_urls_free(struct certs_urls *urls);

/* Room for an encoded URL list. */
#define CERTS_URLS_ENCODED_MAX (CERTS_MAX_URLS * (CERTS_MAX_URL_LEN + 8))
/* Encodes urls as the cache stores them (the ocsp_urls column): one netstring per URL,
 * "LEN:URL," with LEN the decimal byte count, in order; "" for none. A length-prefixed list
 * cannot be split or joined by what a URL holds. Returns 0, or -1 when out is too small. */
int certs_urls_encode(const struct certs_urls *urls, char *out, size_t cap);
/* Fills out from an encoded list (list may be NULL or ""). Returns the count
 * (certs_urls_free() after), or -1 (out emptied) when the list is malformed, holds more than
 * CERTS_MAX_URLS or an entry of CERTS_MAX_URL_LEN bytes or more, or memory ran out. */
int certs_urls_decode(const char *list, struct certs_urls *out);

/* The CertID of subject under issuer hashed with alg. Returns a new OCSP_CERTID
 * (OCSP_CERTID_free), or NULL. */
OCSP_CERTID *certs_certid(X509 *subject, X509 *issuer, enum stapler_hash_alg alg);
/* The algorithm a CertID is hashed with. Returns 0, or -1 when it is not SHA-1, SHA-256,
 * SHA-384 or SHA-512, its parameters are neither NULL nor absent, or its hashes do not have
 * that algorithm's length. */
int certs_certid_hash_alg(const OCSP_CERTID *id, enum stapler_hash_alg *alg);
/* The same, with how the algorithm's parameters are encoded (read from the CertID's DER:
 * OpenSSL re-encodes a decoded CertID as it came). */
int certs_certid_alg(const OCSP_CERTID *id, enum stapler_hash_alg *alg,
    enum stapler_hash_params *params);
/* The SHA-1 hashes of issuer's subject name and public key (the issuer's identity in a key).
 * Returns 0 or -1. */
int certs_issuer_hashes(X509 *issuer, unsigned char name_hash[STAPLER_SHA1_LEN],
    unsigned char key_hash[STAPLER_SHA1_LEN]);
/* Fills key from a CertID of issuer: its algorithm, its parameters' encoding and serial, and
 * the issuer's SHA-1 name and key hashes (read from a SHA-1 CertID; computed from issuer for
 * a SHA-2 one, which then must not be NULL). Returns 0, or -1 when the serial is longer than
 * STAPLER_SERIAL_MAX, certs_certid_alg() refuses the algorithm, or the hashes cannot be had. */
int certs_certid_key(const OCSP_CERTID *id, X509 *issuer, struct stapler_key *key);
/* The same, with the issuer's SHA-1 hashes given (from the issuer registry). */
int certs_certid_key_with(const OCSP_CERTID *id, const unsigned char name_hash[STAPLER_SHA1_LEN],
    const unsigned char key_hash[STAPLER_SHA1_LEN], struct stapler_key *key);

/* Uppercase hex of a SHA-1 CertID's issuer name hash into out ("" for another algorithm). */
void certs_certid_name_hash_hex(const OCSP_CERTID *id, char out[STAPLER_SHA1_HEX]);

/* One-line RFC 2253 subject of cert into out (always terminated). */
void certs_subject(X509 *cert, char *out, size_t cap);
/* DER of cert; returns a new buffer (OPENSSL_free) and its length in *len, or NULL. */
unsigned char *certs_der(X509 *cert, size_t *len);

#endif
