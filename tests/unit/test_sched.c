/* The refresh policy (stapler/sched.h) over a table of cases, with injected time and jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sched.h"

#define H 3600L
#define D 86400L
#define T0 1800000000L          /* thisUpdate of every case */

struct refresh_case {
	const char *name;
	long long window, min_interval;
	long validity;           /* nextUpdate - thisUpdate; 0: no nextUpdate */
	long fetched;            /* fetched_at - thisUpdate */
	long expect_lo, expect_hi; /* next refresh - thisUpdate, over r in [0, 1) */
};

static const struct refresh_case refresh_cases[] = {
	/* 30-day response, default rule: refetch 7 days before nextUpdate (jitter adds <= 15 min). */
	{ "30d default", 7 * D, H, 30 * D, 0, 23 * D, 23 * D + H / 4 },
	/* 7-day response: always within the window, so min_interval paces it. */
	{ "7d default", 7 * D, H, 7 * D, 0, H, H + H / 4 },
	/* 7-day response, the paper's daily job (min_interval 1d). */
	{ "7d daily", 7 * D, D, 7 * D, 0, D, D + D / 4 },
	/* 1-day response with a 2h window: 22h, but the retry reserve (6h) pulls it to 18h. */
	{ "1d window 2h", 2 * H, H, D, 0, 18 * H, 18 * H },
	/* 30-minute response: min_interval is capped at half the validity (15 min). */
	{ "30min", 7 * D, H, 30 * 60, 0, 15 * 60, 15 * 60 },
	/* 30-minute response fetched late in its life: still at the reserve point. */
	{ "30min fetched late", 7 * D, H, 30 * 60, 10 * 60, 25 * 60, 25 * 60 },
	/* A tiny window on a long response: the 6-hour retry reserve wins. */
	{ "30d window 0", 0, H, 30 * D, 0, 30 * D - 6 * H, 30 * D - 6 * H },
	/* No nextUpdate: treated as valid for SCHED_NO_NEXT_UPDATE_VALIDITY from fetched_at. */
	{ "no nextUpdate", 7 * D, H, 0, 100, 100 + SCHED_NO_NEXT_UPDATE_VALIDITY / 2,
	    100 + SCHED_NO_NEXT_UPDATE_VALIDITY / 2 },
};

static void
test_next_refresh_table(void **state)
{
	static const double rs[] = { 0.0, 0.25, 0.5, 0.999 };

	for (size_t i = 0; i < sizeof(refresh_cases) / sizeof(refresh_cases[0]); i++) {
		const struct refresh_case *c = &refresh_cases[i];
		struct sched_policy p = { .window = c->window, .min_interval = c->min_interval };
		time_t next_update = c->validity ? T0 + c->validity : 0;

		for (size_t j = 0; j < sizeof(rs) / sizeof(rs[0]); j++) {
			time_t at = sched_next_refresh(&p, T0, next_update, T0 + c->fetched, rs[j]);

			if (at - T0 < c->expect_lo || at - T0 > c->expect_hi)
				fail_msg("%s (r=%.3f): refresh at +%ld s, expected [%ld, %ld]", c->name,
				    rs[j], (long)(at - T0), c->expect_lo, c->expect_hi);
			/* Never sooner than min(min_interval, validity / 2) after the fetch. */
			if (c->validity && at < T0 + c->fetched +
			    (c->min_interval < c->validity / 2 ? c->min_interval : c->validity / 2))
				fail_msg("%s: refresh sooner than the minimum interval", c->name);
			/* Always before the response expires. */
			if (c->validity && at >= next_update)
				fail_msg("%s: refresh not before nextUpdate", c->name);
		}
	}
}

static void
test_jitter_spreads_a_batch(void **state)
{
	struct sched_policy p = { .window = 7 * D, .min_interval = H };
	time_t lo = 0, hi = 0;

	/* A fleet fetched in the same second does not come back in the same second. */
	for (int i = 0; i < 100; i++) {
		time_t at = sched_next_refresh(&p, T0, T0 + 7 * D, T0, i / 100.0);

		if (lo == 0 || at < lo)
			lo = at;
		if (at > hi)
			hi = at;
	}
	assert_true(hi - lo >= H / 5);
}

/* max_interval caps the wait whatever the validity: a 100-year response is asked about
 * again within a day, spread by jitter, and never sooner than min_interval. */
static void
test_max_interval_caps_the_wait(void **state)
{
	const long long century = 36500LL * D;
	struct sched_policy p = { .window = 7 * D, .min_interval = H, .max_interval = D };
	struct sched_policy uncapped = { .window = 7 * D, .min_interval = H };
	struct sched_policy tight = { .window = 7 * D, .min_interval = 2 * H, .max_interval = 60 };
	time_t lo = 0, hi = 0;

	assert_true(sched_next_refresh(&uncapped, T0, T0 + century, T0, 0.5) - T0 >
	    century - 8 * D);
	for (int i = 0; i < 100; i++) {
		time_t at = sched_next_refresh(&p, T0, T0 + century, T0, i / 100.0);

		assert_in_range(at - T0, D - D / 8, D);
		if (lo == 0 || at < lo)
			lo = at;
		if (at > hi)
			hi = at;
	}
	assert_true(hi - lo >= D / 10);
	/* A cap shorter than the response's own schedule wins; a longer one changes nothing. */
	assert_in_range(sched_next_refresh(&p, T0, T0 + 30 * D, T0, 0.0) - T0, D - D / 8, D);
	assert_in_range(sched_next_refresh(&p, T0, T0 + 7 * D, T0, 0.0) - T0, H, H + H / 4);
	/* min_interval (docs/contract.md §8.6) still bounds it from below. */
	assert_in_range(sched_next_refresh(&tight, T0, T0 + century, T0, 0.999) - T0, 2 * H - 2 * H / 8,
	    2 * H);
}

struct retry_case {
	const char *name;
	int failures;
	long left;               /* next_update - now; 0: nothing valid held */
	long expect_lo, expect_hi; /* retry - now, over r in [0, 1) */
};

static const struct retry_case retry_cases[] = {
	{ "1 failure", 1, 0, SCHED_BACKOFF_BASE / 2, SCHED_BACKOFF_BASE },
	{ "2 failures", 2, 0, SCHED_BACKOFF_BASE, 2 * SCHED_BACKOFF_BASE },
	{ "5 failures", 5, 0, 8 * SCHED_BACKOFF_BASE, 16 * SCHED_BACKOFF_BASE },
	{ "50 failures: capped", 50, 0, SCHED_BACKOFF_CAP / 2, SCHED_BACKOFF_CAP },
	/* Near expiry, retries come at a quarter of the remaining life... */
	{ "5 failures, 20 min left", 5, 20 * 60, 150, 300 },
	/* ...but never below SCHED_RETRY_MIN (before jitter). */
	{ "near expiry", 3, 20, SCHED_RETRY_MIN / 2, SCHED_RETRY_MIN },
	/* A long-valid response does not shorten the backoff. */
	{ "5 failures, 7d left", 5, 7 * D, 8 * SCHED_BACKOFF_BASE, 16 * SCHED_BACKOFF_BASE },
};

static void
test_retry_table(void **state)
{
	static const double rs[] = { 0.0, 0.5, 0.999 };
	const time_t now = T0 + 1000;

	for (size_t i = 0; i < sizeof(retry_cases) / sizeof(retry_cases[0]); i++) {
		const struct retry_case *c = &retry_cases[i];

		for (size_t j = 0; j < sizeof(rs) / sizeof(rs[0]); j++) {
			time_t at = sched_retry_at(c->failures, now, c->left ? now + c->left : 0, rs[j]);

			if (at - now < c->expect_lo || at - now > c->expect_hi)
				fail_msg("%s (r=%.3f): retry at +%ld s, expected [%ld, %ld]", c->name,
				    rs[j], (long)(at - now), c->expect_lo, c->expect_hi);
		}
	}
}

static void
test_retry_grows_monotonically(void **state)
{
	const time_t now = T0;
	time_t prev = 0;

	for (int f = 1; f <= 12; f++) {
		time_t at = sched_retry_at(f, now, 0, 0.999);

		assert_true(at >= prev);
		prev = at;
	}
	assert_in_range(prev - now, SCHED_BACKOFF_CAP * 99 / 100, SCHED_BACKOFF_CAP);
}

/* --- which answer is kept ------------------------------------------------------------------ */

#define NOW (T0 + 600)
#define MARGIN 60

struct keep_case {
	const char *name;
	int held;                 /* 0: nothing held */
	struct sched_answer h, f; /* times relative to T0 */
	enum sched_keep want;
};

static const struct keep_case keep_cases[] = {
	{ "nothing held", 0, { 0 }, { 0, 0, 7 * D, 0 }, SCHED_KEEP_FRESH },
	{ "newer thisUpdate", 1, { 0, 0, 7 * D, 0 }, { 0, H, 7 * D + H, H }, SCHED_KEEP_FRESH },
	{ "older thisUpdate", 1, { 0, H, 7 * D + H, H }, { 0, 0, 8 * D, 2 * H }, SCHED_KEEP_OLDER },
	{ "older by one second", 1, { 0, 1, 7 * D, 1 }, { 0, 0, 7 * D, 5 }, SCHED_KEEP_OLDER },
	{ "equal thisUpdate, later producedAt", 1, { 0, 0, 7 * D, 10 }, { 0, 0, 7 * D, 20 },
	    SCHED_KEEP_FRESH },
	{ "equal thisUpdate, earlier producedAt", 1, { 0, 0, 7 * D, 20 }, { 0, 0, 7 * D, 10 },
	    SCHED_KEEP_OLDER },
	{ "the same answer again", 1, { 0, 0, 7 * D, 10 }, { 0, 0, 7 * D, 10 }, SCHED_KEEP_FRESH },
	{ "revoked replaces good whatever its age", 1, { 0, H, 7 * D, H }, { 1, -D, 7 * D, -D },
	    SCHED_KEEP_FRESH },
	{ "good never replaces revoked", 1, { 1, 0, 7 * D, 0 }, { 0, H, 7 * D, H },
	    SCHED_KEEP_ROLLBACK },
	{ "older revoked after revoked", 1, { 1, H, 7 * D, H }, { 1, 0, 7 * D, 0 },
	    SCHED_KEEP_OLDER },
	{ "newer revoked after revoked", 1, { 1, 0, 7 * D, 0 }, { 1, H, 7 * D, H },
	    SCHED_KEEP_FRESH },
	/* NOW is T0 + 600: a nextUpdate at T0 + 660 is exactly the margin away. */
	{ "30 s left", 0, { 0 }, { 0, 0, 630, 0 }, SCHED_KEEP_EXPIRING },
	{ "exactly the margin left", 1, { 0, -H, 7 * D, -H }, { 0, 0, 660, 0 },
	    SCHED_KEEP_EXPIRING },
	{ "one second more than the margin", 1, { 0, -H, 7 * D, -H }, { 0, 0, 661, 0 },
	    SCHED_KEEP_FRESH },
	/* A first revocation inside the margin ends the good answer, and is served to nobody. */
	{ "a revocation inside the margin", 1, { 0, -H, 7 * D, -H }, { 1, 0, 630, 0 },
	    SCHED_KEEP_REVOKED_EXPIRING },
	{ "a revocation inside the margin, nothing held", 0, { 0 }, { 1, 0, 630, 0 },
	    SCHED_KEEP_REVOKED_EXPIRING },
	{ "a revocation inside the margin, revoked held", 1, { 1, -H, 7 * D, -H },
	    { 1, 0, 630, 0 }, SCHED_KEEP_EXPIRING },
	{ "good inside the margin, revoked held", 1, { 1, -H, 7 * D, -H }, { 0, 0, 630, 0 },
	    SCHED_KEEP_ROLLBACK },
};

static struct sched_answer
at_t0(struct sched_answer a)
{
	a.this_update += T0;
	a.next_update += T0;
	a.produced_at += T0;
	return a;
}

static void
test_keep_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(keep_cases) / sizeof(keep_cases[0]); i++) {
		const struct keep_case *c = &keep_cases[i];
		struct sched_answer h = at_t0(c->h), f = at_t0(c->f);
		enum sched_keep got = sched_keep(c->held ? &h : NULL, &f, NOW, MARGIN);

		if (got != c->want)
			fail_msg("%s: %s, expected %s", c->name, sched_keep_name(got),
			    sched_keep_name(c->want));
	}
	assert_string_equal(sched_keep_name(SCHED_KEEP_OLDER), "older");
}

static void
test_after_older(void **state)
{
	struct sched_policy p = { .window = 7 * D, .min_interval = H };
	struct sched_answer held = { 0, T0, T0 + 7 * D, T0 };
	time_t at;

	(void)state;
	/* Plenty of life left: paced like a refetch of the held answer (min_interval). */
	at = sched_after_older(&p, &held, NOW, 0.0);
	assert_int_equal((long long)(at - NOW), H);
	/* 20 minutes left: a quarter of it, not an hour. */
	held.next_update = NOW + 20 * 60;
	at = sched_after_older(&p, &held, NOW, 0.5);
	assert_int_equal((long long)(at - NOW), 5 * 60);
	/* Nothing left: still not sooner than SCHED_RETRY_MIN. */
	held.next_update = NOW - 1;
	at = sched_after_older(&p, &held, NOW, 0.5);
	assert_int_equal((long long)(at - NOW), SCHED_RETRY_MIN);
}

/* An upstream's max-age postpones a refresh, up to [refresh] upstream_max_age, and never past
 * the latest point before nextUpdate; 0 turns it off. */
static void
test_upstream_max_age(void **state)
{
	struct sched_policy p = { 7 * D, H, D, D };
	time_t at = T0 + H;      /* a 7-day response, fetched at T0: min_interval paces it */

	/* Said nothing, or less than planned: unchanged. */
	assert_int_equal(sched_after_max_age(&p, at, T0, T0 + 7 * D, T0, -1), at);
	assert_int_equal(sched_after_max_age(&p, at, T0, T0 + 7 * D, T0, 600), at);
	/* Four hours: not before T0 + 4h. */
	assert_int_equal(sched_after_max_age(&p, at, T0, T0 + 7 * D, T0, 4 * H), T0 + 4 * H);
	/* Seven days (until nextUpdate): capped at a day. */
	assert_int_equal(sched_after_max_age(&p, at, T0, T0 + 7 * D, T0, 7 * D), T0 + D);
	/* Off. */
	p.max_age_cap = 0;
	assert_int_equal(sched_after_max_age(&p, at, T0, T0 + 7 * D, T0, 4 * H), at);
	/* A 1-day response with a day of max-age: at the latest point, nextUpdate - 6h. */
	p.max_age_cap = 7 * D;
	assert_int_equal(sched_after_max_age(&p, T0 + H, T0, T0 + D, T0, D), T0 + 18 * H);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_refresh_table),
		cmocka_unit_test(test_jitter_spreads_a_batch),
		cmocka_unit_test(test_max_interval_caps_the_wait),
		cmocka_unit_test(test_retry_table),
		cmocka_unit_test(test_retry_grows_monotonically),
		cmocka_unit_test(test_keep_table),
		cmocka_unit_test(test_after_older),
		cmocka_unit_test(test_upstream_max_age),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
