/* Shared types: certificate status names, CertID hash algorithms and the key of a cached
 * response (the whole CertID). */
#include <strings.h>
#include <string.h>

#include "stapler/types.h"
#include "util.h"

static const char *const status_names[] = { "good", "revoked", "unknown" };
static const char *const hash_alg_names[] = { "sha1", "sha256", "sha384", "sha512" };
static const size_t hash_alg_lens[] = { STAPLER_SHA1_LEN, STAPLER_SHA256_LEN, STAPLER_SHA384_LEN,
    STAPLER_SHA512_LEN };
static const char *const hash_params_names[] = { "null", "absent" };

/* names[v], or "invalid" out of range. */
static const char *
name_of(const char *const *names, size_t n, unsigned v)
{
	return v < n ? names[v] : "invalid";
}

/* The index of name among names (case-insensitive when icase), or -1. */
static int
index_of(const char *const *names, size_t n, const char *name, int icase)
{
	for (size_t i = 0; name != NULL && i < n; i++) {
		if ((icase ? strcasecmp(name, names[i]) : strcmp(name, names[i])) == 0)
			return (int)i;
	}
	return -1;
}

const char *
stapler_hash_alg_name(enum stapler_hash_alg alg)
{
	return name_of(hash_alg_names, UTIL_ARRAY_LEN(hash_alg_names), (unsigned)alg);
}

int
stapler_hash_alg_parse(const char *name, enum stapler_hash_alg *out)
{
	int i = index_of(hash_alg_names, UTIL_ARRAY_LEN(hash_alg_names), name, 1);

	if (i < 0)
		return -1;
	*out = (enum stapler_hash_alg)i;
	return 0;
}

size_t
stapler_hash_alg_len(enum stapler_hash_alg alg)
{
	return (unsigned)alg < UTIL_ARRAY_LEN(hash_alg_lens) ? hash_alg_lens[alg] : 0;
}

const char *
stapler_hash_params_name(enum stapler_hash_params params)
{
	return name_of(hash_params_names, UTIL_ARRAY_LEN(hash_params_names), (unsigned)params);
}

int
stapler_hash_params_parse(const char *name, enum stapler_hash_params *out)
{
	int i = index_of(hash_params_names, UTIL_ARRAY_LEN(hash_params_names), name, 1);

	if (i < 0)
		return -1;
	*out = (enum stapler_hash_params)i;
	return 0;
}

const char *
stapler_status_name(enum stapler_cert_status status)
{
	return name_of(status_names, UTIL_ARRAY_LEN(status_names), (unsigned)status);
}

int
stapler_status_parse(const char *name, enum stapler_cert_status *out)
{
	int i = index_of(status_names, UTIL_ARRAY_LEN(status_names), name, 0);

	if (i < 0)
		return -1;
	*out = (enum stapler_cert_status)i;
	return 0;
}

void
stapler_key_serial_hex(const struct stapler_key *key, char out[STAPLER_SERIAL_HEX_MAX])
{
	char *p = out;

	if (key->serial_negative)
		*p++ = '-';
	if (key->serial_len == 0) {
		memcpy(p, "00", 3);
		return;
	}
	util_hex(key->serial, key->serial_len, p);
}

void
stapler_key_hash_hex(const struct stapler_key *key, char out[STAPLER_SHA1_HEX])
{
	util_hex(key->key_hash, sizeof(key->key_hash), out);
}

void
stapler_key_name_hash_hex(const struct stapler_key *key, char out[STAPLER_SHA1_HEX])
{
	util_hex(key->name_hash, sizeof(key->name_hash), out);
}

int
stapler_key_from_hex(struct stapler_key *key, enum stapler_hash_alg alg,
    const char *name_hash_hex, const char *key_hash_hex, const char *serial_hex)
{
	unsigned char serial[STAPLER_SERIAL_MAX];
	int n;

	memset(key, 0, sizeof(*key));
	if ((unsigned)alg >= STAPLER_HASH_ALG_COUNT || name_hash_hex == NULL || key_hash_hex == NULL ||
	    serial_hex == NULL ||
	    util_unhex(name_hash_hex, key->name_hash, sizeof(key->name_hash)) != STAPLER_SHA1_LEN ||
	    util_unhex(key_hash_hex, key->key_hash, sizeof(key->key_hash)) != STAPLER_SHA1_LEN)
		return -1;
	key->hash_alg = (unsigned char)alg;
	if (serial_hex[0] == '-') {
		key->serial_negative = 1;
		serial_hex++;
	}
	n = util_unhex(serial_hex, serial, sizeof(serial));
	if (n < 0)
		return -1;
	/* "00" is how an empty (zero) serial prints; leading zero octets are not part of the
	 * magnitude OpenSSL keeps. */
	int skip = 0;
	while (skip < n && serial[skip] == 0)
		skip++;
	key->serial_len = (unsigned char)(n - skip);
	memcpy(key->serial, serial + skip, (size_t)(n - skip));
	return 0;
}

int
stapler_key_equal(const struct stapler_key *a, const struct stapler_key *b)
{
	return a->hash_alg == b->hash_alg && a->hash_params == b->hash_params &&
	    a->serial_len == b->serial_len &&
	    a->serial_negative == b->serial_negative &&
	    memcmp(a->key_hash, b->key_hash, sizeof(a->key_hash)) == 0 &&
	    memcmp(a->name_hash, b->name_hash, sizeof(a->name_hash)) == 0 &&
	    memcmp(a->serial, b->serial, a->serial_len) == 0;
}
