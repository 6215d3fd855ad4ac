/* Prometheus text exposition: HELP/TYPE lines, escaped labels, cumulative histograms. */
#include <math.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

void
metrics_hist_init(struct metrics_hist *h, const double *le, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->le = le;
	h->n = n > METRICS_HIST_MAX ? METRICS_HIST_MAX : n;
}

void
metrics_hist_observe(struct metrics_hist *h, double v)
{
	size_t i = 0;

	while (i < h->n && v > h->le[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += v;
}

int
metrics_label_find(const struct metrics_labels *l, const char *value)
{
	if (value == NULL)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->value[i], value) == 0)
			return (int)i;
	}
	return -1;
}

int
metrics_label_index(struct metrics_labels *l, const char *value)
{
	int i;

	if (value == NULL)
		return -1;
	if ((i = metrics_label_find(l, value)) >= 0)
		return i;
	/* The last slot is kept for "other", so a full table never loses a count. */
	if (l->n < METRICS_LABEL_MAX - 1) {
		util_strlcpy(l->value[l->n], value, METRICS_LABEL_LEN);
		return (int)l->n++;
	}
	if (l->n == METRICS_LABEL_MAX - 1)
		util_strlcpy(l->value[l->n++], "other", METRICS_LABEL_LEN);
	return (int)l->n - 1;
}

void
metrics_family(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
write_label_value(FILE *fp, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(fp, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", fp);
		else
			fputc(*v, fp);
	}
}

/* {k="v",…,extra_k="extra_v"}; nothing when there is no label at all. */
static void
write_labels(FILE *fp, const char *const *labels, const char *extra_k, const char *extra_v)
{
	int first = 1;

	for (size_t i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
		fprintf(fp, "%s%s=\"", first ? "{" : ",", labels[i]);
		write_label_value(fp, labels[i + 1]);
		fputc('"', fp);
		first = 0;
	}
	if (extra_k != NULL) {
		fprintf(fp, "%s%s=\"", first ? "{" : ",", extra_k);
		write_label_value(fp, extra_v);
		fputc('"', fp);
		first = 0;
	}
	if (!first)
		fputc('}', fp);
}

static void
write_value(FILE *fp, double v)
{
	if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", fp);
	else if (isnan(v))
		fputs("NaN", fp);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(fp, "%.0f", v);
	else
		fprintf(fp, "%.9g", v);
}

void
metrics_sample(FILE *fp, const char *name, const char *const *labels, double value)
{
	fputs(name, fp);
	write_labels(fp, labels, NULL, NULL);
	fputc(' ', fp);
	write_value(fp, value);
	fputc('\n', fp);
}

void
metrics_hist_write(FILE *fp, const char *name, const char *const *labels,
    const struct metrics_hist *h)
{
	unsigned long long cum = 0;
	char le[32];

	for (size_t i = 0; i <= h->n; i++) {
		cum += h->bucket[i];
		if (i < h->n)
			snprintf(le, sizeof(le), "%.9g", h->le[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		fprintf(fp, "%s_bucket", name);
		write_labels(fp, labels, "le", le);
		fprintf(fp, " %llu\n", cum);
	}
	fprintf(fp, "%s_sum", name);
	write_labels(fp, labels, NULL, NULL);
	fputc(' ', fp);
	write_value(fp, h->sum);
	fprintf(fp, "\n%s_count", name);
	write_labels(fp, labels, NULL, NULL);
	fprintf(fp, " %llu\n", h->count);
}

void
metrics_single(FILE *fp, const char *name, const char *type, const char *help, double value)
{
	metrics_family(fp, name, type, help);
	metrics_sample(fp, name, NULL, value);
}
