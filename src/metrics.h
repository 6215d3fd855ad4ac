/* Prometheus text exposition (format 0.0.4) for /metrics: families with HELP and TYPE, samples
 * with escaped label values, histograms with cumulative buckets. Pure: writes to a FILE * (an
 * open_memstream() buffer), no libevent, so unit tests check its output line by line. */
#ifndef STAPLER_METRICS_H
#define STAPLER_METRICS_H

#include <stddef.h>
#include <stdio.h>

/* Buckets of one histogram at most (+Inf comes on top). */
#define METRICS_HIST_MAX 16
/* Distinct values one bounded label takes at most; the rest fold into "other". */
#define METRICS_LABEL_MAX 64
#define METRICS_LABEL_LEN 128

/* A histogram over fixed upper bounds (le, ascending). Counts are per bucket here and made
 * cumulative when written. */
struct metrics_hist {
	const double *le;
	size_t n;
	unsigned long long bucket[METRICS_HIST_MAX + 1];   /* [n]: above the last bound */
	unsigned long long count;
	double sum;
};

/* Sets the bounds (at most METRICS_HIST_MAX, kept by pointer) and zeroes the counts. */
void metrics_hist_init(struct metrics_hist *h, const double *le, size_t n);
void metrics_hist_observe(struct metrics_hist *h, double v);

/* A bounded label: the index of value among the values seen so far, adding it while there is
 * room; past METRICS_LABEL_MAX distinct values, the index of "other" (always the last slot
 * used). Returns -1 only when value is NULL. */
struct metrics_labels {
	size_t n;
	char value[METRICS_LABEL_MAX][METRICS_LABEL_LEN];
};
int metrics_label_index(struct metrics_labels *l, const char *value);
/* The index of value when it has one of its own, else -1 (nothing is added). */
int metrics_label_find(const struct metrics_labels *l, const char *value);

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, histogram). */
void metrics_family(FILE *fp, const char *name, const char *type, const char *help);
/* One sample: name{k1="v1",k2="v2"} value. labels is NULL or a NULL-terminated list of
 * key, value pairs; values are escaped (\\, \", \n). */
void metrics_sample(FILE *fp, const char *name, const char *const *labels, double value);
/* A family of one unlabelled sample: HELP, TYPE, then name value. */
void metrics_single(FILE *fp, const char *name, const char *type, const char *help, double value);
/* name_bucket{…,le="…"} (cumulative, +Inf last), name_sum{…}, name_count{…}. */
void metrics_hist_write(FILE *fp, const char *name, const char *const *labels,
    const struct metrics_hist *h);

#endif
