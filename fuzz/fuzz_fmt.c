/* Fuzz harness: the text helpers that take what operators and admin clients type: serials and
 * issuer hashes (fmt.c, types.c), hex, base64, durations, sizes and key=value lines (util.c).
 * The input is one string; for stapler_key_from_hex() its first line is the hash and the rest
 * the serial. Also checks that canonical forms are stable and that encodings round-trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzpki.h"
#include "fmt.h"
#include "stapler/types.h"
#include "util.h"

#define FUZZ_TEXT_MAX 4096

static void
canonical(const char *s)
{
	char a[STAPLER_SERIAL_HEX_MAX], b[STAPLER_SERIAL_HEX_MAX];
	char h[STAPLER_SHA1_HEX], h2[STAPLER_SHA1_HEX];

	if (fmt_serial(s, a) == 0) {
		fuzz_check(fmt_serial(a, b) == 0 && strcmp(a, b) == 0,
		    "fmt_serial is not idempotent");
	}
	if (fmt_key_hash(s, h) == 0) {
		fuzz_check(fmt_key_hash(h, h2) == 0 && strcmp(h, h2) == 0,
		    "fmt_key_hash is not idempotent");
	}
}

static void
hex_and_numbers(const char *s)
{
	unsigned char bin[256], bin2[256];
	char hex[2 * sizeof(bin) + 1];
	enum stapler_cert_status st;
	long long ll;
	size_t sz;
	long l;
	int n;

	if ((n = util_unhex(s, bin, sizeof(bin))) >= 0) {
		util_hex(bin, (size_t)n, hex);
		fuzz_check(util_unhex(hex, bin2, sizeof(bin2)) == n &&
		    memcmp(bin, bin2, (size_t)n) == 0, "util_hex does not round-trip");
	}
	(void)util_parse_duration(s, &ll);
	(void)util_parse_size(s, &sz);
	(void)util_parse_long(s, -1000, 1000000, &l);
	(void)stapler_status_parse(s, &st);
}

static void
key_from_hex(const char *s)
{
	struct stapler_key key;
	char hash[FUZZ_TEXT_MAX], serial[STAPLER_SERIAL_HEX_MAX], h[STAPLER_SHA1_HEX];
	const char *nl = strchr(s, '\n');

	if (nl == NULL || (size_t)(nl - s) >= sizeof(hash))
		return;
	memcpy(hash, s, (size_t)(nl - s));
	hash[nl - s] = '\0';
	if (stapler_key_from_hex(&key, STAPLER_HASH_SHA1, hash, hash, nl + 1) == 0) {
		stapler_key_serial_hex(&key, serial);
		stapler_key_hash_hex(&key, h);
	}
}

/* A value written by fmt_kv_add() reads back the same, when it has no control characters
 * other than '\n' (the others become spaces by design). */
static void
kv(const char *s)
{
	char line[2 * FUZZ_TEXT_MAX + 16], out[FUZZ_TEXT_MAX + 1];
	size_t len = strlen("ok");
	int lossless = 1;

	for (const char *p = s; *p != '\0'; p++)
		lossless &= (unsigned char)*p >= 0x20 || *p == '\n';
	(void)fmt_kv_get(s, "serial", out, sizeof(out));
	(void)fmt_kv_get(s, "body", out, 8);
	memcpy(line, "ok", len + 1);
	if (fmt_kv_add(line, &len, sizeof(line), "k", s) == 0 &&
	    fmt_kv_add(line, &len, sizeof(line), "next", "1") == 0 && lossless) {
		fuzz_check(fmt_kv_get(line, "k", out, sizeof(out)) == 1 && strcmp(out, s) == 0,
		    "fmt_kv_add value does not read back");
		fuzz_check(fmt_kv_get(line, "next", out, sizeof(out)) == 1 && strcmp(out, "1") == 0,
		    "fmt_kv_add breaks the next key");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *back;
	char *s, *b64;
	size_t blen;

	if (size > FUZZ_TEXT_MAX)
		return 0;
	if (size > 0 && (b64 = util_base64(data, size)) != NULL) {
		back = util_unbase64(b64, strlen(b64), &blen);
		fuzz_check(back != NULL && blen == size && memcmp(back, data, size) == 0,
		    "util_base64 does not round-trip");
		free(back);
		free(b64);
	}
	free(util_unbase64((const char *)data, size, &blen));
	/* Everything else takes a C string: the bytes up to the first NUL. */
	fuzz_check((s = malloc(size + 1)) != NULL, "malloc");
	memcpy(s, data, size);
	s[size] = '\0';
	canonical(s);
	hex_and_numbers(s);
	key_from_hex(s);
	kv(s);
	free(s);
	return 0;
}
