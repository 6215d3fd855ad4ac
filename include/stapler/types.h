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

/* Identifies one certificate: the CertID's issuer key hash and serial (PRODUCT.md §6: never
 * the serial alone). serial holds the magnitude octets, as `openssl x509 -serial` prints them. */
struct stapler_key {
	unsigned char key_hash[STAPLER_SHA1_LEN];
	unsigned char serial_len;
	unsigned char serial_negative;
	unsigned char serial[STAPLER_SERIAL_MAX];
};

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
/* Fills a key from its hex forms (any case, colons allowed). Returns 0 or -1. */
int stapler_key_from_hex(struct stapler_key *key, const char *key_hash_hex, const char *serial_hex);
int stapler_key_equal(const struct stapler_key *a, const struct stapler_key *b);

#endif
