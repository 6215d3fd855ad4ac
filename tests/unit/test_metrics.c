/* The Prometheus text writer (metrics.h): exact lines, escaping, cumulative buckets, bounded
 * label sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

/* Runs fn into a memory stream and returns what it wrote (free()). */
static char *
capture(void (*fn)(FILE *fp, void *arg), void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	fn(fp, arg);
	fclose(fp);
	return buf;
}

static void
write_family_and_samples(FILE *fp, void *arg)
{
	static const char *const labels[] = { "route", "/ocsp", "code", "200", NULL };
	static const char *const hostile[] = { "host", "a\"b\\c\nd", NULL };

	metrics_family(fp, "staplerd_http_requests_total", "counter", "HTTP requests answered.");
	metrics_sample(fp, "staplerd_http_requests_total", labels, 12);
	metrics_sample(fp, "staplerd_up", NULL, 1);
	metrics_sample(fp, "staplerd_x", hostile, 0.25);
}

static void
test_family_and_samples(void **state)
{
	char *out = capture(write_family_and_samples, NULL);

	assert_string_equal(out,
	    "# HELP staplerd_http_requests_total HTTP requests answered.\n"
	    "# TYPE staplerd_http_requests_total counter\n"
	    "staplerd_http_requests_total{route=\"/ocsp\",code=\"200\"} 12\n"
	    "staplerd_up 1\n"
	    "staplerd_x{host=\"a\\\"b\\\\c\\nd\"} 0.25\n");
	free(out);
}

static const double bounds[] = { 0.01, 0.1, 1 };

static void
write_hist(FILE *fp, void *arg)
{
	static const char *const labels[] = { "host", "ocsp.example:80", NULL };

	metrics_hist_write(fp, "staplerd_fetch_seconds", labels, arg);
}

static void
test_histogram_is_cumulative(void **state)
{
	struct metrics_hist h;
	char *out;

	metrics_hist_init(&h, bounds, 3);
	metrics_hist_observe(&h, 0.005);
	metrics_hist_observe(&h, 0.01);    /* le is inclusive */
	metrics_hist_observe(&h, 0.5);
	metrics_hist_observe(&h, 7);
	out = capture(write_hist, &h);
	assert_string_equal(out,
	    "staplerd_fetch_seconds_bucket{host=\"ocsp.example:80\",le=\"0.01\"} 2\n"
	    "staplerd_fetch_seconds_bucket{host=\"ocsp.example:80\",le=\"0.1\"} 2\n"
	    "staplerd_fetch_seconds_bucket{host=\"ocsp.example:80\",le=\"1\"} 3\n"
	    "staplerd_fetch_seconds_bucket{host=\"ocsp.example:80\",le=\"+Inf\"} 4\n"
	    "staplerd_fetch_seconds_sum{host=\"ocsp.example:80\"} 7.515\n"
	    "staplerd_fetch_seconds_count{host=\"ocsp.example:80\"} 4\n");
	free(out);
}

static void
test_labels_are_bounded(void **state)
{
	static struct metrics_labels l;
	char v[32];
	int other;

	assert_int_equal(metrics_label_index(&l, "a"), 0);
	assert_int_equal(metrics_label_index(&l, "b"), 1);
	assert_int_equal(metrics_label_index(&l, "a"), 0);
	assert_int_equal(metrics_label_index(&l, NULL), -1);
	for (int i = 0; i < 500; i++) {
		snprintf(v, sizeof(v), "host%d", i);
		assert_in_range(metrics_label_index(&l, v), 0, METRICS_LABEL_MAX - 1);
	}
	assert_int_equal(l.n, METRICS_LABEL_MAX);
	other = metrics_label_index(&l, "never-seen");
	assert_string_equal(l.value[other], "other");
	assert_int_equal(metrics_label_index(&l, "b"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_histogram_is_cumulative),
		cmocka_unit_test(test_labels_are_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
