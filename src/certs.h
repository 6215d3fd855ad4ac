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
/* Returns the anchor whose public key hashes to key_hash (SHA-1, as in a CertID), or NULL.
 * The certificate is owned by the trust store. */
X509 *certs_trust_find_by_key_hash(const struct certs_trust *trust, const unsigned char *key_hash);

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

/* The AIA id-ad-ocsp URLs of cert, in certificate order, at most CERTS_MAX_URLS of them and
 * each shorter than CERTS_MAX_URL_LEN. urls[i] are new strings (certs_urls_free()). Returns the
 * count (0 when there is no AIA OCSP URL). */
struct certs_urls {
	int n;
	char *url[CERTS_MAX_URLS];
};
int certs_ocsp_urls(X509 *cert, struct certs_urls *out);
void certs_urls_free(struct certs_urls *urls);
/* Fills out from a '\n'-separated URL list (the cache's ocsp_urls): at most CERTS_MAX_URLS,
 * empty entries and entries of CERTS_MAX_URL_LEN bytes or more skipped; list may be NULL.
 * Returns the count (certs_urls_free() after), or -1 when memory ran out (out is emptied). */
int certs_urls_split(const char *list, struct certs_urls *out);

/* The SHA-1 CertID of subject under issuer. Returns a new OCSP_CERTID (OCSP_CERTID_free), or NULL. */
OCSP_CERTID *certs_certid(X509 *subject, X509 *issuer);
/* Fills key from a CertID (issuer key hash and serial). Returns 0, or -1 when the serial is
 * longer than STAPLER_SERIAL_MAX or the hash is not 20 bytes. */
int certs_certid_key(const OCSP_CERTID *id, struct stapler_key *key);
/* Uppercase hex of the CertID's issuer name hash into out (STAPLER_SHA1_HEX bytes). */
void certs_certid_name_hash_hex(const OCSP_CERTID *id, char out[STAPLER_SHA1_HEX]);

/* One-line RFC 2253 subject of cert into out (always terminated). */
void certs_subject(X509 *cert, char *out, size_t cap);
/* DER of cert; returns a new buffer (OPENSSL_free) and its length in *len, or NULL. */
unsigned char *certs_der(X509 *cert, size_t *len);

#endif
