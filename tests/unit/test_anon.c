/* Unit tests for anon.c: the bounded map of answers to anonymous /ocsp misses, at injected
 * times: TTL against validity, the count and byte bounds, oldest first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "anon.h"

#define HASH "0123456789ABCDEF0123456789ABCDEF01234567"
/* Far from the real clock, so nothing here can pass by reading the clock. */
#define T0 ((time_t)2000000000)
#define DAY 86400

static struct stapler_key
key_n(int n)
{
	struct stapler_key k;
	char serial[16];

	snprintf(serial, sizeof(serial), "%04X", n);
	assert_int_equal(stapler_key_from_hex(&k, STAPLER_HASH_SHA1, HASH, HASH, serial), 0);
	return k;
}

static struct staple *
make(int n, time_t next_update, size_t len)
{
	static const unsigned char der[256];
	struct stapler_key k = key_n(n);
	struct staple *s = staple_new(&k, STAPLER_UNKNOWN, T0 - 60, next_update, T0 - 60, T0, der,
	    len);

	assert_non_null(s);
	return s;
}

static void
test_ttl_is_the_shorter_of_config_and_validity(void **state)
{
	struct anon_map *m = anon_map_new();
	struct stapler_key k1 = key_n(1), k2 = key_n(2);

	(void)state;
	/* Valid a day, TTL an hour: gone after the hour. */
	assert_int_equal(anon_map_put(m, make(1, T0 + DAY, 10), T0, 3600, 100, 1 << 20), 0);
	assert_non_null(anon_map_get(m, &k1, T0 + 3599));
	assert_null(anon_map_get(m, &k1, T0 + 3600));
	assert_int_equal(anon_map_count(m), 0);
	/* Valid ten minutes, TTL an hour: gone at the serving margin before nextUpdate. */
	assert_int_equal(anon_map_put(m, make(2, T0 + 600, 10), T0, 3600, 100, 1 << 20), 0);
	assert_non_null(anon_map_get(m, &k2, T0 + 600 - STORE_EXPIRY_MARGIN - 1));
	assert_null(anon_map_get(m, &k2, T0 + 600 - STORE_EXPIRY_MARGIN));
	assert_int_equal(anon_map_bytes(m), 0);
	anon_map_free(&m);
	assert_null(m);
	anon_map_free(&m);
}

static void
test_count_bound_drops_oldest(void **state)
{
	struct anon_map *m = anon_map_new();

	(void)state;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(anon_map_put(m, make(i, T0 + DAY, 10), T0, 3600, 8, 1 << 20), 0);
		assert_true(anon_map_count(m) <= 8);
	}
	assert_int_equal(anon_map_count(m), 8);
	assert_int_equal(anon_map_bytes(m), 80);
	for (int i = 0; i < 100; i++) {
		struct stapler_key k = key_n(i);

		if (i < 92)
			assert_null(anon_map_get(m, &k, T0));
		else
			assert_non_null(anon_map_get(m, &k, T0));
	}
	anon_map_free(&m);
}

static void
test_byte_bound_and_replacement(void **state)
{
	struct anon_map *m = anon_map_new();
	struct stapler_key k1 = key_n(1), k3 = key_n(3);
	const struct staple *s;

	(void)state;
	assert_int_equal(anon_map_put(m, make(1, T0 + DAY, 100), T0, 3600, 100, 250), 0);
	assert_int_equal(anon_map_put(m, make(2, T0 + DAY, 100), T0, 3600, 100, 250), 0);
	/* A third would pass 250 bytes: the oldest goes. */
	assert_int_equal(anon_map_put(m, make(3, T0 + DAY, 100), T0, 3600, 100, 250), 0);
	assert_int_equal(anon_map_count(m), 2);
	assert_int_equal(anon_map_bytes(m), 200);
	assert_null(anon_map_get(m, &k1, T0));
	/* A new answer for a key replaces the old one, bytes counted once. */
	assert_int_equal(anon_map_put(m, make(3, T0 + DAY, 50), T0, 3600, 100, 250), 0);
	assert_int_equal(anon_map_count(m), 2);
	assert_int_equal(anon_map_bytes(m), 150);
	assert_non_null(s = anon_map_get(m, &k3, T0));
	assert_int_equal(s->der_len, 50);
	/* One larger than the whole bound is not held; nothing else is lost for it. */
	assert_int_equal(anon_map_put(m, make(4, T0 + DAY, 251), T0, 3600, 100, 250), -1);
	assert_int_equal(anon_map_count(m), 2);
	assert_int_equal(anon_map_remove(m, &k3), 1);
	assert_int_equal(anon_map_remove(m, &k3), 0);
	assert_int_equal(anon_map_bytes(m), 100);
	anon_map_free(&m);
}

static void
test_zero_entries_holds_nothing(void **state)
{
	struct anon_map *m = anon_map_new();
	struct stapler_key k1 = key_n(1);

	(void)state;
	assert_int_equal(anon_map_put(m, make(1, T0 + DAY, 10), T0, 3600, 0, 1 << 20), -1);
	assert_null(anon_map_get(m, &k1, T0));
	anon_map_free(&m);
}

static void
test_expired_are_dropped_on_put(void **state)
{
	struct anon_map *m = anon_map_new();

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(anon_map_put(m, make(i, T0 + DAY, 10), T0, 60, 100, 1 << 20), 0);
	/* Their TTL passed: the next put clears them without a get. */
	assert_int_equal(anon_map_put(m, make(9, T0 + DAY, 10), T0 + 61, 60, 100, 1 << 20), 0);
	assert_int_equal(anon_map_count(m), 1);
	anon_map_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ttl_is_the_shorter_of_config_and_validity),
		cmocka_unit_test(test_count_bound_drops_oldest),
		cmocka_unit_test(test_byte_bound_and_replacement),
		cmocka_unit_test(test_zero_entries_holds_nothing),
		cmocka_unit_test(test_expired_are_dropped_on_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
