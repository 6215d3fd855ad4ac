/* Unit tests for util.c: durations, sizes and numbers at their edges, hex, base64, dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util.h"

/* Sentinel left in an output that a failed parse must not touch. */
#define UNTOUCHED 12345

static void
duration_ok(const char *s, long long want)
{
	long long v = UNTOUCHED;

	if (util_parse_duration(s, &v) != 0)
		fail_msg("duration \"%s\" refused", s);
	if (v != want)
		fail_msg("duration \"%s\" = %lld, want %lld", s, v, want);
}

static void
duration_bad(const char *s)
{
	long long v = UNTOUCHED;

	if (util_parse_duration(s, &v) != -1)
		fail_msg("duration \"%s\" accepted as %lld", s != NULL ? s : "(null)", v);
	assert_int_equal(v, UNTOUCHED);
}

static void
test_duration(void **state)
{
	duration_ok("0", 0);
	duration_ok("90", 90);
	duration_ok("30s", 30);
	duration_ok("15m", 15 * 60);
	duration_ok("1h", 3600);
	duration_ok("7d", 7 * 86400);
	duration_ok("7D", 7 * 86400);
	duration_ok("007s", 7);
	/* The largest values that fit, per unit. */
	duration_ok("9223372036854775807", 9223372036854775807LL);
	duration_ok("106751991167300d", 106751991167300LL * 86400);
	duration_ok("153722867280912930m", 153722867280912930LL * 60);

	duration_bad(NULL);
	duration_bad("");
	duration_bad("s");
	duration_bad("-1");
	duration_bad("-1s");
	duration_bad("+5");
	duration_bad(" 5");
	duration_bad("5 ");
	duration_bad("5 s");
	duration_bad("5x");
	duration_bad("5ms");
	duration_bad("5sd");
	duration_bad("1.5h");
	duration_bad("1w");
	duration_bad("0x10");
	duration_bad("ten");
	/* Overflow: in the number itself, and by the unit. */
	duration_bad("9223372036854775808");
	duration_bad("99999999999999999999s");
	duration_bad("106751991167301d");
	duration_bad("153722867280912931m");
	duration_bad("9223372036854775807h");
}

static void
size_ok(const char *s, size_t want)
{
	size_t v = UNTOUCHED;

	if (util_parse_size(s, &v) != 0)
		fail_msg("size \"%s\" refused", s);
	if (v != want)
		fail_msg("size \"%s\" = %zu, want %zu", s, v, want);
}

static void
size_bad(const char *s)
{
	size_t v = UNTOUCHED;

	if (util_parse_size(s, &v) != -1)
		fail_msg("size \"%s\" accepted as %zu", s != NULL ? s : "(null)", v);
	assert_int_equal(v, UNTOUCHED);
}

static void
test_size(void **state)
{
	size_ok("0", 0);
	size_ok("512", 512);
	size_ok("512b", 512);
	size_ok("64k", 64 * 1024);
	size_ok("64K", 64 * 1024);
	size_ok("1m", 1024 * 1024);
	size_ok("16M", 16 * 1024 * 1024);
	size_ok("8796093022207m", (size_t)8796093022207ULL * 1024 * 1024);

	size_bad(NULL);
	size_bad("");
	size_bad("k");
	size_bad("-1");
	size_bad("-1k");
	size_bad("1g");
	size_bad("1t");
	size_bad("64kb");
	size_bad("64 k");
	size_bad("1.5m");
	size_bad("lots");
	size_bad("8796093022208m");
	size_bad("99999999999999999999");
}

static void
test_long(void **state)
{
	long v = UNTOUCHED;

	assert_int_equal(util_parse_long("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(util_parse_long("-10", -10, 10, &v), 0);
	assert_int_equal(v, -10);
	assert_int_equal(util_parse_long("100", 0, 100, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(util_parse_long("9223372036854775807", 0, 9223372036854775807L, &v), 0);
	assert_int_equal(v, 9223372036854775807L);

	v = UNTOUCHED;
	assert_int_equal(util_parse_long(NULL, 0, 100, &v), -1);
	assert_int_equal(util_parse_long("", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("101", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("-1", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("-11", -10, 10, &v), -1);
	assert_int_equal(util_parse_long("12a", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("1 ", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("1.0", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("abc", 0, 100, &v), -1);
	assert_int_equal(util_parse_long("9223372036854775808", 0, 9223372036854775807L, &v), -1);
	assert_int_equal(util_parse_long("-9223372036854775809", -9223372036854775807L - 1, 0, &v), -1);
	assert_int_equal(v, UNTOUCHED);
}

static void
test_hex(void **state)
{
	const unsigned char in[] = { 0x00, 0x01, 0xab, 0xcd, 0xef, 0xff };
	unsigned char out[8];
	char hex[2 * sizeof(in) + 1];

	util_hex(in, sizeof(in), hex);
	assert_string_equal(hex, "0001ABCDEFFF");
	memset(hex, 'x', sizeof(hex));
	util_hex(in, 0, hex);
	assert_string_equal(hex, "");

	/* Any case, with or without colons (openssl's serial and fingerprint forms). */
	memset(out, 0, sizeof(out));
	assert_int_equal(util_unhex("0001abCDefFF", out, sizeof(out)), 6);
	assert_memory_equal(out, in, sizeof(in));
	memset(out, 0, sizeof(out));
	assert_int_equal(util_unhex("00:01:AB:CD:EF:FF", out, sizeof(out)), 6);
	assert_memory_equal(out, in, sizeof(in));
	assert_int_equal(util_unhex("", out, sizeof(out)), 0);

	/* Odd length, non-hex, a sign or spaces: refused. */
	assert_int_equal(util_unhex("abc", out, sizeof(out)), -1);
	assert_int_equal(util_unhex("0:1:2", out, sizeof(out)), -1);
	assert_int_equal(util_unhex("zz", out, sizeof(out)), -1);
	assert_int_equal(util_unhex("0x10", out, sizeof(out)), -1);
	assert_int_equal(util_unhex("-10", out, sizeof(out)), -1);
	assert_int_equal(util_unhex("10 20", out, sizeof(out)), -1);

	/* Exactly cap bytes fit; one more does not. */
	assert_int_equal(util_unhex("0102", out, 2), 2);
	assert_int_equal(util_unhex("010203", out, 2), -1);
	assert_int_equal(util_unhex("01", out, 0), -1);
}

static void
test_base64_vectors(void **state)
{
	/* RFC 4648 §10. */
	static const char *const plain[] = { "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const coded[] = { "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
		"Zm9vYmFy" };

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char *b = util_base64((const unsigned char *)plain[i], strlen(plain[i]));
		unsigned char *d;
		size_t n = 0;

		assert_non_null(b);
		assert_string_equal(b, coded[i]);
		free(b);
		d = util_unbase64(coded[i], strlen(coded[i]), &n);
		assert_non_null(d);
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(d, plain[i], n);
		free(d);
	}
	{
		char *b = util_base64((const unsigned char *)"", 0);

		assert_non_null(b);
		assert_string_equal(b, "");
		free(b);
	}
}

static void
test_base64_roundtrip(void **state)
{
	unsigned char in[300];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 151 + 7);
	/* Every length mod 3, binary bytes including 0x00, 0xff, '+' and '/' producers. */
	for (size_t len = 1; len <= sizeof(in); len++) {
		char *b = util_base64(in, len);
		unsigned char *d;
		size_t n = 0;

		assert_non_null(b);
		assert_int_equal(strlen(b), 4 * ((len + 2) / 3));
		d = util_unbase64(b, strlen(b), &n);
		assert_non_null(d);
		assert_int_equal(n, len);
		assert_memory_equal(d, in, len);
		free(d);
		free(b);
	}
}

static void
test_base64_bad(void **state)
{
	size_t n = UNTOUCHED;

	assert_null(util_unbase64("", 0, &n));
	assert_null(util_unbase64("Zm9", 3, &n));         /* not a multiple of 4 */
	assert_null(util_unbase64("Zm9vY", 5, &n));
	assert_null(util_unbase64("Zm9!", 4, &n));        /* not base64 */
	assert_null(util_unbase64("Zm9v\x01mFy", 8, &n));
	assert_int_equal(n, UNTOUCHED);
}

static void
test_http_date(void **state)
{
	char out[30];
	char iso[21];

	/* RFC 7231 §7.1.1.1's example. */
	util_http_date(784111777, out);
	assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
	util_http_date(0, out);
	assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
	/* Past 2038 and a leap day. */
	util_http_date(3981398399LL, out);
	assert_string_equal(out, "Wed, 29 Feb 2096 23:59:59 GMT");
	util_http_date(2592000000LL, out);
	assert_string_equal(out, "Tue, 20 Feb 2052 00:00:00 GMT");
	assert_int_equal(strlen(out), 29);

	/* The end of RFC 5280's time (certificates that never expire), and past it: clamped. */
	util_http_date(253402300799LL, out);
	assert_string_equal(out, "Fri, 31 Dec 9999 23:59:59 GMT");
	util_http_date(253402300800LL + 86400 * 400LL, out);
	assert_string_equal(out, "Fri, 31 Dec 9999 23:59:59 GMT");
	/* The same as gmtime_r() and strftime() over leap years, centuries and random times. */
	{
		static const long long edges[] = { 951782400LL, 951868800LL, 4107456000LL,
		    4107542400LL, 4102444799LL, 946684799LL, 68256000LL, -1LL, -86401LL,
		    253402214400LL };
		unsigned long long x = 0x9e3779b97f4a7c15ULL;

		for (int i = 0; i < 100000 + (int)(sizeof(edges) / sizeof(edges[0])); i++) {
			char want[30];
			struct tm tm;
			time_t t;

			if (i < (int)(sizeof(edges) / sizeof(edges[0]))) {
				t = (time_t)edges[i];
			} else {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				t = (time_t)(x % 253402300800ULL);
			}
			gmtime_r(&t, &tm);
			strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
			util_http_date(t, out);
			if (strcmp(out, want) != 0)
				fail_msg("%lld: %s, want %s", (long long)t, out, want);
		}
	}

	util_iso_time(784111777, iso);
	assert_string_equal(iso, "1994-11-06T08:49:37Z");
	util_iso_time(2592000000LL, iso);
	assert_string_equal(iso, "2052-02-20T00:00:00Z");
}

static void
test_strlcpy(void **state)
{
	char buf[6];

	assert_int_equal(util_strlcpy(buf, "hello", sizeof(buf)), 0);
	assert_string_equal(buf, "hello");
	assert_int_equal(util_strlcpy(buf, "hello!", sizeof(buf)), -1);
	assert_string_equal(buf, "hello");
	assert_int_equal(util_strlcpy(buf, "", sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(util_strlcpy(buf, "x", 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_long),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_roundtrip),
		cmocka_unit_test(test_base64_bad),
		cmocka_unit_test(test_http_date),
		cmocka_unit_test(test_strlcpy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
