/* Unit tests for ratelimit.c: the token bucket per address at injected times, and the bounded
 * table of addresses (least recently seen forgotten first). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "ratelimit.h"

static void
addr(unsigned char out[RATELIMIT_ADDR_LEN], unsigned char last)
{
	memset(out, 0, RATELIMIT_ADDR_LEN);
	out[0] = 4;
	out[1] = 192;
	out[4] = last;
}

static void
test_burst_then_rate(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	unsigned char a[RATELIMIT_ADDR_LEN];
	long retry;

	(void)state;
	addr(a, 1);
	/* A new address starts with a full bucket: burst requests pass at once. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 1000, &retry), 0);
	assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 1000, &retry), -1);
	assert_int_equal(retry, 1);             /* 2 per second: a token in half a second */
	/* 499 ms later: not yet a whole token. */
	assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 1499, &retry), -1);
	assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 1500, &retry), 0);
	assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 1500, &retry), -1);
	/* A long pause refills up to the burst, not beyond. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 100000, &retry), 0);
	assert_int_equal(ratelimit_take(rl, a, 2, 5, 16, 100000, &retry), -1);
	ratelimit_free(&rl);
	assert_null(rl);
	ratelimit_free(&rl);
}

static void
test_retry_after_rounds_up(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	unsigned char a[RATELIMIT_ADDR_LEN];
	long retry = 0;

	(void)state;
	addr(a, 2);
	/* One per second, the bucket just emptied: a token is 1 s away. */
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), 0);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), -1);
	assert_int_equal(retry, 1);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 300, &retry), -1);
	assert_int_equal(retry, 1);             /* 0.7 s rounds up to 1 */
	ratelimit_free(&rl);
}

static void
test_clock_going_back_refills_nothing(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	unsigned char a[RATELIMIT_ADDR_LEN];
	long retry;

	(void)state;
	addr(a, 3);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 10000, &retry), 0);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 5000, &retry), -1);
	/* Time counts from the earlier reading now: a second after it, a token. */
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 6000, &retry), 0);
	ratelimit_free(&rl);
}

static void
test_addresses_are_separate_and_bounded(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	unsigned char a[RATELIMIT_ADDR_LEN], b[RATELIMIT_ADDR_LEN];
	long retry;

	(void)state;
	addr(a, 10);
	addr(b, 11);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), 0);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), -1);
	/* Another address has its own bucket. */
	assert_int_equal(ratelimit_take(rl, b, 1, 1, 16, 0, &retry), 0);
	assert_int_equal(ratelimit_clients(rl), 2);
	/* 100 more addresses: the table stays at 16, the least recently seen go first. */
	for (int i = 0; i < 100; i++) {
		unsigned char c[RATELIMIT_ADDR_LEN];

		addr(c, (unsigned char)(100 + i));
		c[3] = (unsigned char)i;
		/* a is seen again along the way, so it stays tracked (and empty). */
		if (i % 8 == 0)
			assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), -1);
		assert_int_equal(ratelimit_take(rl, c, 1, 1, 16, 0, &retry), 0);
		assert_true(ratelimit_clients(rl) <= 16);
	}
	assert_int_equal(ratelimit_clients(rl), 16);
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), -1);
	/* b was forgotten: it starts with a full bucket again. */
	assert_int_equal(ratelimit_take(rl, b, 1, 1, 16, 0, &retry), 0);
	ratelimit_free(&rl);
}

static void
test_ipv6_counts_by_its_64(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	unsigned char a[RATELIMIT_ADDR_LEN] = { AF_INET6, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1 };
	unsigned char b[RATELIMIT_ADDR_LEN], c[RATELIMIT_ADDR_LEN];
	long retry;

	(void)state;
	memcpy(b, a, sizeof(b));
	b[16] = 0x99;                           /* the same /64, another interface id */
	memcpy(c, a, sizeof(c));
	c[8] = 2;                               /* the next /64 */
	assert_int_equal(ratelimit_take(rl, a, 1, 1, 16, 0, &retry), 0);
	assert_int_equal(ratelimit_take(rl, b, 1, 1, 16, 0, &retry), -1);
	assert_int_equal(ratelimit_take(rl, c, 1, 1, 16, 0, &retry), 0);
	assert_int_equal(ratelimit_clients(rl), 2);
	ratelimit_free(&rl);
}

static void
test_rate_zero_is_no_limit(void **state)
{
	struct ratelimit *rl = ratelimit_new();
	unsigned char a[RATELIMIT_ADDR_LEN];
	long retry;

	(void)state;
	addr(a, 20);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take(rl, a, 0, 1, 16, 0, &retry), 0);
	assert_int_equal(ratelimit_clients(rl), 0);
	ratelimit_free(&rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_retry_after_rounds_up),
		cmocka_unit_test(test_clock_going_back_refills_nothing),
		cmocka_unit_test(test_addresses_are_separate_and_bounded),
		cmocka_unit_test(test_ipv6_counts_by_its_64),
		cmocka_unit_test(test_rate_zero_is_no_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
