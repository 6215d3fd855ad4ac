/* Small helpers shared by all modules: hex, durations and sizes, base64, HTTP dates. */
#ifndef STAPLER_UTIL_H
#define STAPLER_UTIL_H

#include <stddef.h>
#include <time.h>

#include <openssl/asn1.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Uppercase hex of len bytes into out, which holds 2 * len + 1 bytes. */
void util_hex(const unsigned char *in, size_t len, char *out);
/* The value of one hex digit (any case), or -1. */
int util_hexval(int c);
/* Decodes hex (any case; ':' separators skipped). Returns the byte count, or -1 when the
 * input is not hex or does not fit in cap. */
int util_unhex(const char *hex, unsigned char *out, size_t cap);

/* "90", "30s", "15m", "1h", "7d" to seconds. Returns 0, or -1 on junk, negatives, overflow. */
int util_parse_duration(const char *s, long long *seconds);
/* "512", "64k", "1m" to bytes. Returns 0 or -1. */
int util_parse_size(const char *s, size_t *bytes);
/* strtol with full checks over the whole string; returns 0 or -1. */
int util_parse_long(const char *s, long min, long max, long *out);

/* Standard base64 of len bytes; returns a new NUL-terminated string (free()), or NULL. */
char *util_base64(const unsigned char *in, size_t len);
/* Decodes standard base64 (no whitespace); returns a new buffer (free()) or NULL. */
unsigned char *util_unbase64(const char *in, size_t inlen, size_t *outlen);

/* The CPU time the process has used, in nanoseconds (0 when the clock fails). */
long long util_cpu_ns(void);

/* SHA-256 of n bytes at p into out. Returns 0, or -1 when OpenSSL cannot. */
int util_sha256(const void *p, size_t n, unsigned char out[32]);

/* RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); out holds 30 bytes. Integer
 * arithmetic only (no gmtime, no locale): staple answers format their Last-Modified and
 * Expires with it per request. Times outside years 0000-9999 are clamped to them. */
void util_http_date(time_t t, char out[30]);
/* ISO 8601 UTC ("2026-11-21T14:00:00Z"); out holds 21 bytes. */
void util_iso_time(time_t t, char out[21]);

/* An ASN.1 UTCTime/GeneralizedTime as Unix seconds UTC. Returns 0, or -1 when t is NULL or
 * does not parse. */
int util_asn1_time(const ASN1_TIME *t, time_t *out);

/* Copies at most cap - 1 bytes and always terminates; returns -1 when src was cut. */
int util_strlcpy(char *dst, const char *src, size_t cap);

#endif
