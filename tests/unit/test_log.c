/* Unit tests for log.c: fields formatted as printf would, a value the format quotes (key="%s")
 * escaped so it cannot end its quotes and forge a field, control bytes escaped, one event per
 * line. stderr goes to a file for the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static FILE *capture;

static int
setup(void **state)
{
	assert_non_null(capture = tmpfile());
	assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
	log_set_level(LOG_LVL_DEBUG);
	return 0;
}

/* The fields of the last line written (after "event=NAME "), without its newline. */
static const char *
last_fields(void)
{
	static char buf[8192];
	char *line, *nl, *ev;
	size_t n;

	fflush(stderr);
	assert_int_equal(fseek(capture, 0, SEEK_SET), 0);
	n = fread(buf, 1, sizeof(buf) - 1, capture);
	buf[n] = '\0';
	assert_true(n > 0 && buf[n - 1] == '\n');
	buf[n - 1] = '\0';
	line = (nl = strrchr(buf, '\n')) != NULL ? nl + 1 : buf;
	assert_non_null(ev = strstr(line, "event=t "));
	assert_int_equal(ftruncate(fileno(capture), 0), 0);
	assert_int_equal(fseek(capture, 0, SEEK_SET), 0);
	return ev + strlen("event=t ");
}

static void
test_conversions_as_printf(void **state)
{
	char want[512];

	log_info("t", "a=%d b=%zu c=%lld d=%lu e=%u f=%.*s g=%s%% h=%ld i=%llu j=%5.1f k=%x",
	    -42, (size_t)7, -9000000000LL, 99UL, 3U, 3, "abcdef", "x", -5L, 18446744073709551615ULL,
	    2.25, 255U);
	snprintf(want, sizeof(want), "a=%d b=%zu c=%lld d=%lu e=%u f=%.*s g=%s%% h=%ld i=%llu "
	    "j=%5.1f k=%x", -42, (size_t)7, -9000000000LL, 99UL, 3U, 3, "abcdef", "x", -5L,
	    18446744073709551615ULL, 2.25, 255U);
	assert_string_equal(last_fields(), want);
}

static void
test_quoted_values_cannot_forge_fields(void **state)
{
	/* A certificate subject that tries to close its quotes and add a field. */
	log_warn("t", "subject=\"%s\" n=%d", "CN=x\" status=\"good", 3);
	assert_string_equal(last_fields(), "subject=\"CN=x\\\" status=\\\"good\" n=3");
	log_warn("t", "path=\"%s\"", "C:\\dir\\");
	assert_string_equal(last_fields(), "path=\"C:\\\\dir\\\\\"");
	/* A bare %s is the caller's own text (a fields list it built): left as it is. */
	log_info("t", "%s k=\"%s\"", "a=\"1\"", "q\"");
	assert_string_equal(last_fields(), "a=\"1\" k=\"q\\\"\"");
	/* Control bytes: one event stays one line. */
	log_info("t", "url=\"%s\"", "http://x/\nevent=forged");
	assert_string_equal(last_fields(), "url=\"http://x/\\x0aevent=forged\"");
}

static void
test_levels(void **state)
{
	log_set_level(LOG_LVL_WARN);
	log_warn("t", "kept=1");
	log_info("t", "dropped=1");
	assert_string_equal(last_fields(), "kept=1");
	log_set_level(LOG_LVL_DEBUG);
}

/* The one limiter: a zeroed one allows LOG_LIMIT_LINES per LOG_LIMIT_SECONDS; a one-per-s
 * one writes the first line at once, then one per s seconds, each saying how many it left
 * out; a reset makes the next line news again. */
static void
test_limit(void **state)
{
	struct log_limit dflt = { 0 }, once = LOG_LIMIT_ONCE_PER(60);
	unsigned long left = 99;

	(void)state;
	for (int i = 0; i < LOG_LIMIT_LINES; i++)
		assert_int_equal(log_limit_allow(&dflt, 1000, &left), 1);
	assert_int_equal(left, 0);
	assert_int_equal(log_limit_allow(&dflt, 1000 + LOG_LIMIT_SECONDS - 1, &left), 0);
	assert_int_equal(log_limit_allow(&dflt, 1000 + LOG_LIMIT_SECONDS, &left), 1);
	assert_int_equal(left, 1);

	assert_int_equal(log_limit_allow(&once, 5000, &left), 1);
	assert_int_equal(left, 0);
	assert_int_equal(log_limit_allow(&once, 5001, &left), 0);
	assert_int_equal(log_limit_allow(&once, 5059, NULL), 0);
	assert_int_equal(log_limit_allow(&once, 5060, &left), 1);
	assert_int_equal(left, 2);
	assert_int_equal(log_limit_allow(&once, 5061, &left), 0);
	log_limit_reset(&once);
	assert_int_equal(log_limit_allow(&once, 5062, &left), 1);
	assert_int_equal(left, 0);
	/* The clock going back starts a new window rather than silencing the log. */
	assert_int_equal(log_limit_allow(&once, 100, &left), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversions_as_printf),
		cmocka_unit_test(test_quoted_values_cannot_forge_fields),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_limit),
	};

	/* cmocka reports on stdout; stderr is the log under test. */
	return cmocka_run_group_tests(tests, setup, NULL);
}
