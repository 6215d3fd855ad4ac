/* Types shared by every module: the cache key of a staple and certificate status. */
#ifndef STAPLER_TYPES_H
#define STAPLER_TYPES_H

#include <stddef.h>
#include <time.h>

/* RFC 5280 caps serials at 20 octets; real CAs have issued a few more. */
#define STAPLER_SERIAL_MAX 32
/* Uppercase hex of a serial, with room for a '-' sign and the NUL. */
#define STAPLER_SERIAL_HEX_MAX (2 * STAPLER_SERIAL_MAX + 2)
#define STAPLER_SHA1_LEN 20
#define STAPLER_SHA1_HEX (2 * STAPLER_SHA1_LEN + 1)

/* The hash algorithm of an OCSP CertID (RFC 6960 §4.1.1; RFC 9919 recommends SHA-256). */
enum stapler_hash_alg {
	STAPLER_HASH_SHA1 = 0,
	STAPLER_HASH_SHA256 = 1,
	STAPLER_HASH_SHA384 = 2,
	STAPLER_HASH_SHA512 = 3,
};
#define STAPLER_HASH_ALG_COUNT 4
#define STAPLER_SHA256_LEN 32
#define STAPLER_SHA384_LEN 48
#define STAPLER_SHA512_LEN 64
/* The longest CertID hash (SHA-512). */
#define STAPLER_HASH_MAX_LEN STAPLER_SHA512_LEN

/* How the CertID's hashAlgorithm AlgorithmIdentifier encodes its parameters. Both forms are
 * in use for every algorithm (`openssl ocsp` writes NULL; RFC 5754 and Bouncy Castle leave
 * SHA-2 parameters absent), and a CA signs the CertID it was sent byte for byte, so the two
 * are two different CertIDs. */
enum stapler_hash_params {
	STAPLER_PARAMS_NULL = 0,    /* parameters NULL (05 00): what OpenSSL builds */
	STAPLER_PARAMS_ABSENT = 1,  /* parameters absent */
};

/* Identifies one cached response: the whole CertID it answers, as encoded. A CertID is (hash
 * algorithm with its parameters' encoding, issuer name hash, issuer key hash, serial); the
 * issuer's part is kept as the SHA-1 hashes of the issuer's subject name and public key
 * whatever the algorithm (for one issuer they determine the SHA-2 ones), so one identity
 * names the issuer in every row and the key needs no wider fields. With the algorithm and
 * its parameters' encoding the key determines the CertID's DER byte for byte (a serial is
 * kept only when in its shortest form). Never the serial alone (docs/contract.md §6), never
 * the key hash alone: two CAs may share a key under different names. serial holds the
 * magnitude octets, as `openssl x509 -serial` prints them. Zero-initialise before filling (it is hashed bytewise). */
struct stapler_key {
	/* One byte for both, so that the key stays 75 bytes (ten million of them are held) and
	 * the revocation journal, which stores this struct as it is, reads a key written before
	 * hash_params existed as NULL parameters (its high bits were zero). */
	unsigned char hash_alg : 4;                 /* enum stapler_hash_alg */
	unsigned char hash_params : 4;              /* enum stapler_hash_params */
	unsigned char name_hash[STAPLER_SHA1_LEN];  /* SHA-1 of the issuer's subject name */
	unsigned char key_hash[STAPLER_SHA1_LEN];   /* SHA-1 of the issuer's public key */
	unsigned char serial_len;
	unsigned char serial_negative;
	unsigned char serial[STAPLER_SERIAL_MAX];
};

/* "sha1", "sha256", "sha384", "sha512". */
const char *stapler_hash_alg_name(enum stapler_hash_alg alg);
/* Parses "sha1", "sha256", "sha384" or "sha512" (any case). Returns 0 or -1. */
int stapler_hash_alg_parse(const char *name, enum stapler_hash_alg *out);
/* The digest length of alg in bytes (20, 32, 48, 64), or 0 out of range. */
size_t stapler_hash_alg_len(enum stapler_hash_alg alg);
/* "null", "absent". */
const char *stapler_hash_params_name(enum stapler_hash_params params);
/* Parses "null" or "absent" (any case). Returns 0 or -1. */
int stapler_hash_params_parse(const char *name, enum stapler_hash_params *out);

enum stapler_cert_status {
	STAPLER_GOOD = 0,
	STAPLER_REVOKED = 1,
	STAPLER_UNKNOWN = 2,
};

/* "good", "revoked", "unknown". */
const char *stapler_status_name(enum stapler_cert_status status);
/* Parses a status name; returns 0 or -1. */
int stapler_status_parse(const char *name, enum stapler_cert_status *out);

/* Writes the serial as uppercase hex ("-" first when negative, "00" when empty). */
void stapler_key_serial_hex(const struct stapler_key *key, char out[STAPLER_SERIAL_HEX_MAX]);
/* Writes the issuer key hash as uppercase hex. */
void stapler_key_hash_hex(const struct stapler_key *key, char out[STAPLER_SHA1_HEX]);
/* Writes the issuer name hash as uppercase hex. */
void stapler_key_name_hash_hex(const struct stapler_key *key, char out[STAPLER_SHA1_HEX]);
/* Fills a key from its stored forms: the algorithm, the SHA-1 issuer name and key hashes and
 * the serial in hex (any case, colons allowed). hash_params is left STAPLER_PARAMS_NULL (set
 * it after for the other encoding). Returns 0 or -1. */
int stapler_key_from_hex(struct stapler_key *key, enum stapler_hash_alg alg,
    const char *name_hash_hex, const char *key_hash_hex, const char *serial_hex);
/* 1 when a and b name the same CertID, else 0. */
int stapler_key_equal(const struct stapler_key *a, const struct stapler_key *b);

#endif
