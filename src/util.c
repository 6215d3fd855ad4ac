/* Small helpers shared by all modules: hex, durations and sizes, base64, dates, strings. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>

#include "util.h"

void
util_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

int
util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
util_unhex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (const char *p = hex; *p != '\0'; p++) {
		int v;

		if (*p == ':')
			continue;
		if ((v = util_hexval((unsigned char)*p)) < 0)
			return -1;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n >= cap)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | v);
		hi = -1;
	}
	if (hi >= 0 || n > INT_MAX)
		return -1;
	return (int)n;
}

/* Parses a non-negative integer with an optional one-letter suffix from units. */
static int
parse_scaled(const char *s, const char *units, const long long *scale, long long *out)
{
	char *end;
	long long v, mult = 1;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return -1;
	if (*end != '\0') {
		const char *u = strchr(units, tolower((unsigned char)*end));

		if (u == NULL || end[1] != '\0')
			return -1;
		mult = scale[u - units];
	}
	if (v > LLONG_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

int
util_parse_duration(const char *s, long long *seconds)
{
	static const long long scale[] = { 1, 60, 3600, 86400 };

	return parse_scaled(s, "smhd", scale, seconds);
}

int
util_parse_size(const char *s, size_t *bytes)
{
	static const long long scale[] = { 1, 1024, 1024 * 1024 };
	long long v;

	if (parse_scaled(s, "bkm", scale, &v) < 0 || (unsigned long long)v > SIZE_MAX)
		return -1;
	*bytes = (size_t)v;
	return 0;
}

int
util_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

char *
util_base64(const unsigned char *in, size_t len)
{
	char *out;

	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	if ((out = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

unsigned char *
util_unbase64(const char *in, size_t inlen, size_t *outlen)
{
	unsigned char *out;
	int n;
	size_t pad = 0;

	if (inlen == 0 || inlen % 4 != 0 || inlen > INT_MAX)
		return NULL;
	if ((out = malloc(inlen / 4 * 3 + 1)) == NULL)
		return NULL;
	/* EVP_DecodeBlock keeps the padding bytes as zeros; count them off. */
	if ((n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen)) < 0) {
		free(out);
		return NULL;
	}
	if (in[inlen - 1] == '=')
		pad++;
	if (in[inlen - 2] == '=')
		pad++;
	*outlen = (size_t)n - pad;
	return out;
}

void
util_http_date(time_t t, char out[30])
{
	static const char wday[7][3] = { { 'T', 'h', 'u' }, { 'F', 'r', 'i' }, { 'S', 'a', 't' },
	    { 'S', 'u', 'n' }, { 'M', 'o', 'n' }, { 'T', 'u', 'e' }, { 'W', 'e', 'd' } };
	static const char month[12][3] = { { 'J', 'a', 'n' }, { 'F', 'e', 'b' },
	    { 'M', 'a', 'r' }, { 'A', 'p', 'r' }, { 'M', 'a', 'y' }, { 'J', 'u', 'n' },
	    { 'J', 'u', 'l' }, { 'A', 'u', 'g' }, { 'S', 'e', 'p' }, { 'O', 'c', 't' },
	    { 'N', 'o', 'v' }, { 'D', 'e', 'c' } };
	long long days, secs, z, era, doe, yoe, y, doy, mp, d, m;
	char *o = out;

	/* Clamped to what four digits of year can say: 0000-01-01 to 9999-12-31 23:59:59
	 * (RFC 5280's "no well-defined expiration" date). */
	if (t < -62167219200LL)
		t = -62167219200LL;
	if (t > 253402300799LL)
		t = 253402300799LL;
	days = (long long)t / 86400;
	secs = (long long)t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* Days to the civil date (H. Hinnant's days_from_civil, inverted). */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	memcpy(o, wday[((days % 7) + 7) % 7], 3);
	o += 3;
	*o++ = ',';
	*o++ = ' ';
	*o++ = (char)('0' + d / 10);
	*o++ = (char)('0' + d % 10);
	*o++ = ' ';
	memcpy(o, month[m - 1], 3);
	o += 3;
	*o++ = ' ';
	*o++ = (char)('0' + y / 1000 % 10);
	*o++ = (char)('0' + y / 100 % 10);
	*o++ = (char)('0' + y / 10 % 10);
	*o++ = (char)('0' + y % 10);
	*o++ = ' ';
	*o++ = (char)('0' + secs / 36000);
	*o++ = (char)('0' + secs / 3600 % 10);
	*o++ = ':';
	*o++ = (char)('0' + secs % 3600 / 600);
	*o++ = (char)('0' + secs % 3600 / 60 % 10);
	*o++ = ':';
	*o++ = (char)('0' + secs % 60 / 10);
	*o++ = (char)('0' + secs % 10);
	memcpy(o, " GMT", 5);
}

void
util_iso_time(time_t t, char out[21])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
util_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t n = strlen(src);

	if (cap == 0)
		return -1;
	if (n >= cap) {
		memcpy(dst, src, cap - 1);
		dst[cap - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int
util_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	*out = timegm(&tm);
	return 0;
}

int
util_sha256(const void *p, size_t n, unsigned char out[32])
{
	/* Fetched once: OpenSSL 3.0 looks an implicit EVP_sha256() up again on every call, which
	 * cost more than the hash of a staple (a warm start hashes a million). */
	static EVP_MD *md;

	if (md == NULL && (md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return -1;
	return EVP_Digest(p, n, out, NULL, md, NULL) == 1 ? 0 : -1;
}

long long
util_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
