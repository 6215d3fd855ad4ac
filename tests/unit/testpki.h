/* Test PKI built in memory with OpenSSL: EC P-256 keys, certificates, OCSP responses, temp dirs. */
#ifndef STAPLER_TESTPKI_H
#define STAPLER_TESTPKI_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

/* Every helper aborts the test program (with a message on stderr) when OpenSSL fails: a test
 * PKI that cannot be built is a broken test, not a test result. */

/* A certificate with its private key. */
struct testpki_ent {
	X509 *cert;
	EVP_PKEY *key;
};

/* What testpki_cert() makes. Zero-initialise, then set what matters. */
struct testpki_cert_opts {
	const char *cn;                  /* subject CN (required) */
	EVP_PKEY *key;                   /* its key (a reference is taken); NULL: a new one */
	const struct testpki_ent *issuer; /* NULL: self-signed */
	const unsigned char *serial;     /* big-endian magnitude; NULL: serial 1 */
	size_t serial_len;
	int ca;                          /* basicConstraints CA:TRUE (critical) */
	time_t base;                     /* validity is relative to this time */
	long not_before;                 /* seconds from base (usually negative) */
	long not_after;                  /* seconds from base */
	int ocsp_signing;                /* extendedKeyUsage id-kp-OCSPSigning */
	const char *const *ocsp_urls;    /* AIA id-ad-ocsp URIs, in this order */
	int n_ocsp_urls;
};

/* A new EC P-256 key (EVP_PKEY_free). */
EVP_PKEY *testpki_key(void);
/* The same key every time for the same label (its SHA-256 is the private scalar), so that
 * fuzz seeds signed in one run still verify in the next. Never for anything but tests. */
EVP_PKEY *testpki_key_seeded(const char *label);

/* A new key and a certificate for it as described by o, signed by o->issuer's key (or its
 * own). Free with testpki_ent_free(). */
struct testpki_ent testpki_cert(const struct testpki_cert_opts *o);

/* Shortcuts over testpki_cert(): a self-signed root CA, a CA issued by issuer, and a leaf
 * issued by issuer with one-byte serial and at most one OCSP URL; all valid base-1d..base+1y. */
struct testpki_ent testpki_root(const char *cn, time_t base);
struct testpki_ent testpki_ca(const char *cn, const struct testpki_ent *issuer, time_t base);
struct testpki_ent testpki_leaf(const char *cn, const struct testpki_ent *issuer,
    unsigned char serial, const char *ocsp_url, time_t base);

/* Frees both halves and clears them; accepts an empty entry. */
void testpki_ent_free(struct testpki_ent *e);

/* What testpki_ocsp_response() builds. */
struct testpki_resp_opts {
	int response_status;        /* OCSP_RESPONSE_STATUS_*; anything but SUCCESSFUL: no body */
	X509 *subject;              /* the CertID is SHA-1(subject under issuer)... */
	X509 *issuer;
	const OCSP_CERTID *id;      /* ...unless id is set */
	int cert_status;            /* V_OCSP_CERTSTATUS_GOOD / _REVOKED / _UNKNOWN */
	time_t revoked_at;          /* for REVOKED */
	int reason;                 /* OCSP_REVOKED_STATUS_*, or -1 for none */
	time_t this_update;
	time_t next_update;
	int no_next_update;         /* leave nextUpdate out */
	const struct testpki_ent *signer; /* certificate and key that sign */
	int include_signer;         /* put the signer certificate in the response */
	int resp_id_by_key;         /* responderID byKey instead of byName */
};

/* Options for a successful good response for subject under issuer (which signs it), valid
 * from now - 1 h to now + 7 d. */
struct testpki_resp_opts testpki_resp_good(X509 *subject, const struct testpki_ent *issuer,
    time_t now);

/* DER OCSPResponse built from o (OPENSSL_free), its length in *len. */
unsigned char *testpki_ocsp_response(const struct testpki_resp_opts *o, size_t *len);

/* The CertID of subject under issuer hashed with md, its AlgorithmIdentifier's parameters
 * NULL (as OpenSSL builds it; absent_params 0) or absent (as Bouncy Castle sends SHA-2 ones;
 * absent_params 1). Returns a new OCSP_CERTID (OCSP_CERTID_free). */
OCSP_CERTID *testpki_certid(X509 *subject, X509 *issuer, const EVP_MD *md, int absent_params);

/* PEM of n certificates, in order, in a new NUL-terminated buffer (free()); *len excludes
 * the NUL. */
unsigned char *testpki_pem(X509 *const *certs, int n, size_t *len);
/* DER of one certificate (OPENSSL_free). */
unsigned char *testpki_der(X509 *cert, size_t *len);

/* A new empty directory under $STAPLER_TEST_TMP (or /tmp); free() the path after
 * testpki_tmpdir_remove(). */
char *testpki_tmpdir(void);
/* Writes buf to dir/name and returns the new path (free()). */
char *testpki_write_file(const char *dir, const char *name, const void *buf, size_t len);
/* Removes the files in dir, then dir itself (flat directories only). */
void testpki_tmpdir_remove(const char *dir);

#endif
