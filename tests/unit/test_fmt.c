/* Unit tests for fmt.c: relative times, serial and hash normalisation, key=value lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fmt.h"

#define T0 1700000000LL

static void
test_reltime(void **state)
{
	static const struct { long long delta; const char *want; } cases[] = {
		{ 0, "now" },
		{ 1, "in 1s" },
		{ -180, "3m ago" },
		{ 6 * 86400 + 23 * 3600 + 59 * 60 + 59, "in 6d 23h" },
		{ -(2 * 3600 + 5 * 60 + 7), "2h 5m ago" },
		{ 86400 + 30, "in 1d" },
		{ 3600 + 59, "in 1h" },
		{ -59, "59s ago" },
		{ 400 * 86400LL, "in 400d" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fmt_reltime(T0 + cases[i].delta, T0, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
	/* Truncated but terminated. */
	fmt_reltime(T0 + 100000, T0, out, 4);
	assert_int_equal(strlen(out), 3);
}

static void
test_serial(void **state)
{
	static const struct { const char *in, *want; } ok[] = {
		{ "0a:ff", "0AFF" }, { "0AFF", "0AFF" }, { "aff", "0AFF" }, { "00ff", "FF" },
		{ "1001", "1001" }, { "-1f", "-1F" }, { "00", "00" }, { "0", "00" },
		{ "de:ad:be:ef", "DEADBEEF" },
	};
	static const char *const bad[] = { "", ":", "xyz", "12 34", "-",
		"0102030405060708091011121314151617181920212223242526272829303132FF" };
	char out[STAPLER_SERIAL_HEX_MAX];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(fmt_serial(ok[i].in, out), 0);
		assert_string_equal(out, ok[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fmt_serial(bad[i], out), -1);
}

static void
test_key_hash(void **state)
{
	char out[STAPLER_SHA1_HEX];

	assert_int_equal(fmt_key_hash("ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01",
	    out), 0);
	assert_string_equal(out, "ABCDEF0123456789ABCDEF0123456789ABCDEF01");
	assert_int_equal(fmt_key_hash("abcdef", out), -1);
	assert_int_equal(fmt_key_hash("ABCDEF0123456789ABCDEF0123456789ABCDEF0102", out), -1);
	assert_int_equal(fmt_key_hash("zz", out), -1);
}

static void
test_kv_roundtrip(void **state)
{
	char line[256] = "ok", v[64];
	size_t len = 2;

	assert_int_equal(fmt_kv_add(line, &len, sizeof(line), "id", "7"), 0);
	assert_int_equal(fmt_kv_add(line, &len, sizeof(line), "error", "say \"hi\"\\ now\nok"), 0);
	assert_int_equal(fmt_kv_add(line, &len, sizeof(line), "empty", ""), 0);
	assert_int_equal(fmt_kv_add(line, &len, sizeof(line), "serial", "0AFF"), 0);
	assert_string_equal(line, "ok id=7 error=\"say \\\"hi\\\"\\\\ now\\nok\" empty=\"\" serial=0AFF");
	assert_int_equal(fmt_kv_get(line, "id", v, sizeof(v)), 1);
	assert_string_equal(v, "7");
	assert_int_equal(fmt_kv_get(line, "error", v, sizeof(v)), 1);
	assert_string_equal(v, "say \"hi\"\\ now\nok");
	assert_int_equal(fmt_kv_get(line, "empty", v, sizeof(v)), 1);
	assert_string_equal(v, "");
	assert_int_equal(fmt_kv_get(line, "serial", v, sizeof(v)), 1);
	assert_string_equal(v, "0AFF");
	assert_int_equal(fmt_kv_get(line, "missing", v, sizeof(v)), 0);
	/* The verb is not a key. */
	assert_int_equal(fmt_kv_get("ok", "ok", v, sizeof(v)), 0);
	/* Too long for out, unterminated quote, a word without '='. */
	assert_int_equal(fmt_kv_get(line, "error", v, 4), -1);
	assert_int_equal(fmt_kv_get("ok a=\"open", "a", v, sizeof(v)), -1);
	assert_int_equal(fmt_kv_get("ok junk a=1", "a", v, sizeof(v)), -1);
	/* A full buffer leaves the line as it was. */
	len = strlen(line);
	assert_int_equal(fmt_kv_add(line, &len, len + 4, "long", "value"), -1);
	assert_int_equal(strlen(line), len);
}

/* One escape for JSON: quotes, backslashes and every control byte; truncation keeps whole
 * escapes and the terminator. */
static void
test_json_escape(void **state)
{
	char out[64], *mem = NULL;
	size_t len = 0, n;
	FILE *fp;

	(void)state;
	n = fmt_json_escape(out, 0, sizeof(out), "a\"b\\c\nd\te\x01\x7f");
	assert_string_equal(out, "a\\\"b\\\\c\\nd\\te\\u0001\\u007f");
	assert_int_equal(n, strlen(out));
	/* Appends after n bytes already there. */
	memcpy(out, "{\"e\":\"", 6);
	n = fmt_json_escape(out, 6, sizeof(out), "x\"");
	assert_string_equal(out, "{\"e\":\"x\\\"");
	/* 8 bytes: "ab" and the 2-byte escape of '"' fit with the NUL, the 6-byte \u0001 does not. */
	n = fmt_json_escape(out, 0, 8, "ab\"\x01zz");
	assert_string_equal(out, "ab\\\"");
	assert_int_equal(n, 4);
	assert_non_null(fp = open_memstream(&mem, &len));
	fmt_json_str(fp, "q\"\r");
	fmt_json_str(fp, NULL);
	assert_int_equal(fclose(fp), 0);
	assert_string_equal(mem, "\"q\\\"\\u000d\"\"\"");
	free(mem);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reltime),
		cmocka_unit_test(test_serial),
		cmocka_unit_test(test_key_hash),
		cmocka_unit_test(test_kv_roundtrip),
		cmocka_unit_test(test_json_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
