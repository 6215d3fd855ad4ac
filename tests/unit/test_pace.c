/* The adaptive per-upstream limit (pace.c) over made-up clocks: it grows while answers come
 * at the limit and latency holds, not while unused; it is cut once per round trip by
 * overload, by a quarter when latency grows; it stays within [1, max]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pace.h"

static void
test_grows_at_the_limit_to_max(void **state)
{
	struct pace p;
	double now = 1000;

	pace_init(&p, 64);
	assert_int_equal(pace_limit(&p), PACE_START);
	for (int i = 0; i < 1000; i++) {
		now += 0.001;
		pace_answer(&p, 0.200, pace_limit(&p), now);
	}
	assert_int_equal(pace_limit(&p), 64);
}

static void
test_unused_headroom_does_not_grow(void **state)
{
	struct pace p;

	pace_init(&p, 64);
	for (int i = 0; i < 1000; i++)
		pace_answer(&p, 0.200, 1, 1000 + i * 0.2);
	assert_int_equal(pace_limit(&p), PACE_START);
}

static void
test_overload_halves_once_per_round_trip(void **state)
{
	struct pace p;

	pace_init(&p, 64);
	pace_answer(&p, 0.200, PACE_START, 1000);     /* grows to 9, latency 200 ms */
	assert_int_equal(pace_limit(&p), PACE_START + 1);
	for (int i = 0; i < 8; i++)
		pace_congested(&p, PACE_OVERLOAD, 1000.1 + i * 0.01);
	assert_int_equal(pace_limit(&p), (PACE_START + 1) / 2);
	/* A round trip later, the next one counts again. */
	pace_congested(&p, PACE_OVERLOAD, 1000.4);
	assert_int_equal(pace_limit(&p), 2);
	for (int i = 0; i < 10; i++)
		pace_congested(&p, PACE_OVERLOAD, 1001 + i);
	assert_int_equal(pace_limit(&p), 1);
	assert_int_equal(p.cuts, 12);
	/* After a cut, growth is additive: about one per limit's worth of answers. */
	for (int i = 0; i < 3; i++)
		pace_answer(&p, 0.200, 64, 1020 + i);
	assert_int_equal(pace_limit(&p), 2);
}

static void
test_growing_latency_cuts(void **state)
{
	struct pace p;
	double now = 1000;
	int before;

	pace_init(&p, 64);
	for (int i = 0; i < 40; i++) {
		now += 0.01;
		pace_answer(&p, 0.050, pace_limit(&p), now);
	}
	before = pace_limit(&p);
	assert_true(before > PACE_START);
	/* A queue forms at the upstream: 50 ms become 400 ms. */
	for (int i = 0; i < 40; i++) {
		now += 0.01;
		pace_answer(&p, 0.400, pace_limit(&p), now);
	}
	assert_true(pace_limit(&p) < before);
	assert_true(p.cuts >= 1);
}

static void
test_loopback_jitter_is_not_growth(void **state)
{
	struct pace p;
	double now = 1000;

	pace_init(&p, 64);
	for (int i = 0; i < 2000; i++) {
		now += 0.001;
		pace_answer(&p, i % 2 ? 0.0005 : 0.008, pace_limit(&p), now);
	}
	assert_int_equal(pace_limit(&p), 64);
	assert_int_equal(p.cuts, 0);
}

static void
test_max_bounds_and_lowers(void **state)
{
	struct pace p;

	pace_init(&p, 4);
	assert_int_equal(pace_limit(&p), 4);
	pace_init(&p, 64);
	for (int i = 0; i < 200; i++)
		pace_answer(&p, 0.01, 64, 1000 + i * 0.001);
	pace_set_max(&p, 16);
	assert_int_equal(pace_limit(&p), 16);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_at_the_limit_to_max),
		cmocka_unit_test(test_unused_headroom_does_not_grow),
		cmocka_unit_test(test_overload_halves_once_per_round_trip),
		cmocka_unit_test(test_growing_latency_cuts),
		cmocka_unit_test(test_loopback_jitter_is_not_growth),
		cmocka_unit_test(test_max_bounds_and_lowers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
