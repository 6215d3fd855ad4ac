/* staplerctl's inspection commands: list, show, stats, export. They read the database
 * read-only (WAL: safe while the daemon writes, and working while it is down). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ocsp.h>

#include "ctl.h"
#include "cache.h"
#include "certs.h"
#include "cache_report.h"
#include "fmt.h"
#include "util.h"

/* Table cells are cut to this width; --json and show carry the whole value. */
#define CTL_CELL_MAX 48

static void
json_key(FILE *fp, const char *key, int *first)
{
	fprintf(fp, "%s\"%s\":", *first ? "" : ",", key);
	*first = 0;
}

static void
json_s(FILE *fp, const char *key, const char *v, int *first)
{
	json_key(fp, key, first);
	if (v == NULL)
		fputs("null", fp);
	else
		fmt_json_str(fp, v);
}

static void
json_n(FILE *fp, const char *key, long long v, int *first)
{
	json_key(fp, key, first);
	fprintf(fp, "%lld", v);
}

/* The fields list and show share (docs/staplerctl-json.md: entry). */
static void
json_entry(FILE *fp, const struct cache_report_entry *e, int *first)
{
	json_s(fp, "serial", e->serial, first);
	json_s(fp, "issuer", e->issuer_key_hash, first);
	json_s(fp, "hash_alg", stapler_hash_alg_name(e->hash_alg), first);
	json_s(fp, "hash_params", stapler_hash_params_name(e->hash_params), first);
	json_s(fp, "subject", e->subject, first);
	json_s(fp, "issuer_subject", e->issuer_subject, first);
	json_s(fp, "status", stapler_status_name(e->status), first);
	json_n(fp, "this_update", e->this_update, first);
	json_n(fp, "next_update", e->next_update, first);
	json_n(fp, "fetched_at", e->fetched_at, first);
	json_n(fp, "next_refresh_at", e->next_refresh_at, first);
	json_n(fp, "cert_not_after", e->cert_not_after, first);
	json_n(fp, "failures", e->failures, first);
	json_s(fp, "last_error", e->last_error, first);
	json_s(fp, "ocsp_url", e->ocsp_url, first);
}

static void
cut(const char *in, char *out, size_t width)
{
	if (in == NULL) {
		out[0] = '\0';
		return;
	}
	if (strlen(in) <= width) {
		memcpy(out, in, strlen(in) + 1);
		return;
	}
	memcpy(out, in, width - 3);
	memcpy(out + width - 3, "...", 4);
}

struct list_state {
	struct ctl *ctl;
	struct ctl_table t;
	int n, failed;
};

static int
list_cb(const struct cache_report_entry *e, void *arg)
{
	struct list_state *st = arg;
	char subject[CTL_CELL_MAX + 1], issuer[48], next[32], fetched[32], fails[16];
	char error[CTL_CELL_MAX + 1];
	const char *cells[8];
	int first = 1;

	if (st->ctl->json) {
		printf("%s{", st->n++ ? "," : "");
		json_entry(stdout, e, &first);
		printf("}");
		return 0;
	}
	cut(e->subject, subject, CTL_CELL_MAX);
	/* An entry of another CertID form than SHA-1 with NULL parameters (what OpenSSL builds)
	 * is marked: the same certificate may have entries of several forms. */
	snprintf(issuer, sizeof(issuer), "%.12s...%s%s%s%s", e->issuer_key_hash,
	    e->hash_alg == STAPLER_HASH_SHA1 && e->hash_params == STAPLER_PARAMS_NULL ? "" : " (",
	    e->hash_alg == STAPLER_HASH_SHA1 && e->hash_params == STAPLER_PARAMS_NULL ? "" :
	    stapler_hash_alg_name(e->hash_alg),
	    e->hash_params == STAPLER_PARAMS_NULL ? "" : ", absent params",
	    e->hash_alg == STAPLER_HASH_SHA1 && e->hash_params == STAPLER_PARAMS_NULL ? "" : ")");
	fmt_reltime(e->next_update, (long long)st->ctl->now, next, sizeof(next));
	fmt_reltime(e->fetched_at, (long long)st->ctl->now, fetched, sizeof(fetched));
	snprintf(fails, sizeof(fails), "%d", e->failures);
	cut(e->last_error, error, CTL_CELL_MAX);
	cells[0] = e->serial;
	cells[1] = subject;
	cells[2] = issuer;
	cells[3] = stapler_status_name(e->status);
	cells[4] = next;
	cells[5] = fetched;
	cells[6] = fails;
	cells[7] = error;
	if (ctl_table_add(&st->t, cells) < 0) {
		st->failed = 1;
		return 1;
	}
	return 0;
}

int
ctl_cmd_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "due", no_argument, NULL, 'd' },
		{ "expired", no_argument, NULL, 'e' },
		{ "issuer", required_argument, NULL, 'i' },
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	static const char *const head[] = { "SERIAL", "SUBJECT", "ISSUER", "STATUS",
		"NEXT UPDATE", "LAST FETCH", "FAILURES", "LAST ERROR" };
	struct cache_report_filter f = { .now = (long long)ctl->now };
	struct list_state st = { .ctl = ctl };
	enum stapler_cert_status status;
	char issuer[STAPLER_SHA1_HEX];
	struct cache *cache;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, ":hj", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (stapler_status_parse(optarg, &status) < 0)
				return ctl_usage_error("list", "--status takes good, revoked or unknown");
			f.status = 1 + (int)status;
			break;
		case 'd':
			f.due = 1;
			break;
		case 'e':
			f.expired = 1;
			break;
		case 'i':
			if (fmt_key_hash(optarg, issuer) < 0)
				return ctl_usage_error("list", "%s: not an issuer key hash", optarg);
			f.issuer = issuer;
			break;
		default:
			if ((rc = ctl_common_opt(ctl, "list", ch, argv)) >= 0)
				return rc;
		}
	}
	if (optind != argc)
		return ctl_usage_error("list", "unexpected argument %s", argv[optind]);
	if ((cache = ctl_open_db(ctl)) == NULL)
		return CTL_USAGE;
	ctl_table_init(&st.t, 8, head);
	if (ctl->json)
		printf("{\"now\":%lld,\"entries\":[", (long long)ctl->now);
	rc = cache_report_list(cache, &f, list_cb, &st);
	if (rc < 0 || st.failed) {
		if (ctl->json)
			printf("]}\n");
		ctl_err("cannot read the database");
		rc = CTL_USAGE;
	} else {
		if (ctl->json)
			printf("]}\n");
		else
			ctl_table_print(&st.t, stdout);
		rc = CTL_OK;
	}
	ctl_table_free(&st.t);
	cache_close(&cache);
	return rc;
}

/* The decoded response, as `openssl ocsp -resp_text` shows it. Returns a new string (free()). */
static char *
response_text(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (resp != NULL && bio != NULL && OCSP_RESPONSE_print(bio, resp, 0) == 1 &&
	    (n = BIO_get_mem_data(bio, &data)) >= 0 && (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	if (out == NULL)
		out = strdup("(the stored response does not decode)\n");
	OCSP_RESPONSE_free(resp);
	BIO_free(bio);
	return out;
}

/* The entry behind ctl_lookup(), for the fields only cache_report_list() joins. */
static int
entry_cb(const struct cache_report_entry *e, void *arg)
{
	struct cache_report_entry *out = arg;

	*out = *e;
	out->subject = strdup(e->subject);
	out->issuer_subject = strdup(e->issuer_subject);
	out->ocsp_url = strdup(e->ocsp_url);
	out->last_error = e->last_error ? strdup(e->last_error) : NULL;
	return 1;
}

static void
entry_clear(struct cache_report_entry *e)
{
	free((char *)(uintptr_t)e->subject);
	free((char *)(uintptr_t)e->issuer_subject);
	free((char *)(uintptr_t)e->ocsp_url);
	free((char *)(uintptr_t)e->last_error);
}

static void
field(const char *name, const char *value)
{
	printf("%-18s %s\n", name, value);
}

static void
show_text(struct ctl *ctl, const struct cache_report_entry *e, const struct cache_row *row,
    const char *text)
{
	struct certs_urls urls;
	char t[64], n[32];

	field("serial", e->serial);
	field("hash algorithm", stapler_hash_alg_name(row->hash_alg));
	field("hash parameters", stapler_hash_params_name(row->hash_params));
	field("issuer key hash", e->issuer_key_hash);
	field("issuer name hash", row->issuer_name_hash);
	field("subject", e->subject);
	field("issuer", e->issuer_subject);
	field("status", stapler_status_name(row->status));
	if (row->status == STAPLER_REVOKED) {
		ctl_time(row->revoked_at, ctl->now, t, sizeof(t));
		field("revoked at", t);
		snprintf(n, sizeof(n), "%d", row->revocation_reason);
		field("revocation reason", row->revocation_reason >= 0 ? n : "-");
	}
	ctl_time(row->this_update, ctl->now, t, sizeof(t));
	field("this update", t);
	ctl_time(row->next_update, ctl->now, t, sizeof(t));
	field("next update", t);
	ctl_time(row->produced_at, ctl->now, t, sizeof(t));
	field("produced at", t);
	ctl_time(row->fetched_at, ctl->now, t, sizeof(t));
	field("last fetch", t);
	ctl_time(row->next_refresh_at, ctl->now, t, sizeof(t));
	field("next refresh", t);
	ctl_time(row->cert_not_after, ctl->now, t, sizeof(t));
	field("cert not after", t);
	ctl_time(row->created_at, ctl->now, t, sizeof(t));
	field("first stored", t);
	snprintf(n, sizeof(n), "%d", row->failures);
	field("failures", n);
	field("last error", row->last_error ? row->last_error : "-");
	field("ocsp url", row->ocsp_url);
	if (certs_urls_decode(row->ocsp_urls, &urls) < 0)
		field("aia url", "(stored list is malformed)");
	for (int i = 0; i < urls.n; i++)
		field("aia url", urls.url[i]);
	certs_urls_free(&urls);
	snprintf(n, sizeof(n), "%zu bytes", row->response_len);
	field("response", n);
	printf("\n%s", text);
}

static void
show_json(const struct cache_report_entry *e, const struct cache_row *row, const char *text)
{
	char *b64 = util_base64(row->response_der, row->response_len);
	struct certs_urls urls;
	int first = 1;

	printf("{");
	json_entry(stdout, e, &first);
	json_s(stdout, "issuer_name_hash", row->issuer_name_hash, &first);
	json_n(stdout, "produced_at", row->produced_at, &first);
	json_n(stdout, "revoked_at", row->revoked_at, &first);
	json_n(stdout, "revocation_reason", row->revocation_reason, &first);
	json_n(stdout, "created_at", row->created_at, &first);
	json_key(stdout, "ocsp_urls", &first);
	printf("[");
	(void)certs_urls_decode(row->ocsp_urls, &urls);
	for (int i = 0; i < urls.n; i++) {
		printf("%s", i == 0 ? "" : ",");
		fmt_json_str(stdout, urls.url[i]);
	}
	certs_urls_free(&urls);
	printf("]");
	json_s(stdout, "response", b64 != NULL ? b64 : "", &first);
	json_s(stdout, "response_text", text, &first);
	printf("}\n");
	free(b64);
}

/* Parses SERIAL [--issuer HASH] [--hash ALG] [--params P] and, for export, -o FILE. Returns -1 to go on,
 * else the exit code. */
static int
parse_key_args(struct ctl *ctl, const char *name, int argc, char **argv, const char **serial,
    const char **issuer, const char **hash, const char **params, const char **out)
{
	static const struct option longopts[] = {
		{ "issuer", required_argument, NULL, 'i' },
		{ "hash", required_argument, NULL, 'H' },
		{ "params", required_argument, NULL, 'P' },
		{ "output", required_argument, NULL, 'o' },
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int ch, rc;

	*issuer = NULL;
	*hash = NULL;
	*params = NULL;
	while ((ch = getopt_long(argc, argv, out != NULL ? ":hjo:" : ":hj", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			*issuer = optarg;
			break;
		case 'H':
			*hash = optarg;
			break;
		case 'P':
			*params = optarg;
			break;
		case 'o':
			if (out == NULL)
				return ctl_usage_error(name, "unknown option -o");
			*out = optarg;
			break;
		default:
			if ((rc = ctl_common_opt(ctl, name, ch, argv)) >= 0)
				return rc;
		}
	}
	if (optind + 1 != argc)
		return ctl_usage_error(name, optind == argc ? "SERIAL missing" : "one SERIAL only");
	*serial = argv[optind];
	return -1;
}

/* Opens the database and reads the full row for SERIAL [--issuer]. Returns CTL_OK or an exit
 * code; on CTL_OK the caller closes *cache and clears *row and *e. */
static int
load_entry(struct ctl *ctl, const char *serial_arg, const char *issuer_arg,
    const char *hash_arg, const char *params_arg, struct cache **cache, struct cache_row *row,
    struct cache_report_entry *e)
{
	char serial[STAPLER_SERIAL_HEX_MAX], issuer[STAPLER_SHA1_HEX], name[STAPLER_SHA1_HEX];
	struct cache_report_filter f = { .now = (long long)ctl->now, .limit = 1 };
	struct stapler_key key;
	int rc;

	memset(row, 0, sizeof(*row));
	memset(e, 0, sizeof(*e));
	if ((*cache = ctl_open_db(ctl)) == NULL)
		return CTL_USAGE;
	if ((rc = ctl_lookup(*cache, serial_arg, issuer_arg, hash_arg, params_arg, ctl->now,
	    &key)) != CTL_OK)
		goto fail;
	stapler_key_serial_hex(&key, serial);
	stapler_key_hash_hex(&key, issuer);
	stapler_key_name_hash_hex(&key, name);
	f.serial = serial;
	f.issuer = issuer;
	f.name_hash = name;
	f.hash_alg = 1 + key.hash_alg;
	f.hash_params = 1 + key.hash_params;
	if (cache_report_list(*cache, &f, entry_cb, e) != 1 || cache_get(*cache, &key, row) != 1) {
		ctl_err("cannot read the entry for serial %s (removed meanwhile?)", serial);
		entry_clear(e);
		cache_row_clear(row);
		rc = CTL_BAD;
		goto fail;
	}
	return CTL_OK;
fail:
	cache_close(cache);
	return rc;
}

int
ctl_cmd_show(struct ctl *ctl, int argc, char **argv)
{
	const char *serial = NULL, *issuer = NULL, *hash = NULL, *params = NULL;
	struct cache_report_entry e;
	struct cache_row row;
	struct cache *cache;
	char *text;
	int rc;

	if ((rc = parse_key_args(ctl, "show", argc, argv, &serial, &issuer, &hash, &params, NULL)) >= 0)
		return rc;
	if ((rc = load_entry(ctl, serial, issuer, hash, params, &cache, &row, &e)) != CTL_OK)
		return rc;
	text = response_text(row.response_der, row.response_len);
	if (ctl->json)
		show_json(&e, &row, text);
	else
		show_text(ctl, &e, &row, text);
	/* A revoked certificate is the bad news show was asked about (docs/contract.md §7). */
	rc = row.status == STAPLER_REVOKED ? CTL_BAD : CTL_OK;
	free(text);
	entry_clear(&e);
	cache_row_clear(&row);
	cache_close(&cache);
	return rc;
}

/* The i-th "host limit active queued paused_until" of a pace reply's upstreams list. */
struct pace_host {
	char host[300];
	long long limit, active, queued, paused_until;
};

static int
pace_host(const char *list, int i, struct pace_host *h)
{
	const char *p = list;

	for (; i > 0 && p != NULL; i--)
		p = (p = strchr(p, ',')) != NULL ? p + 1 : NULL;
	if (p == NULL || *p == '\0')
		return -1;
	return sscanf(p, "%299s %lld %lld %lld %lld", h->host, &h->limit, &h->active, &h->queued,
	    &h->paused_until) == 5 ? 0 : -1;
}

static long long
pace_n(const char *reply, const char *key)
{
	char v[32];
	char *end;
	long long n;

	if (fmt_kv_get(reply, key, v, sizeof(v)) != 1)
		return 0;
	n = strtoll(v, &end, 10);
	return *end == '\0' ? n : 0;
}

static void
pace_json(const char *reply)
{
	char list[2048];
	struct pace_host h;
	int first = 1;

	if (reply == NULL) {
		printf("null");
		return;
	}
	printf("{");
	json_n(stdout, "behind", pace_n(reply, "behind"), &first);
	json_n(stdout, "refreshed_last_hour", pace_n(reply, "refreshed_last_hour"), &first);
	json_n(stdout, "refreshes_ok", pace_n(reply, "refreshes_ok"), &first);
	json_n(stdout, "refreshes_failed", pace_n(reply, "refreshes_failed"), &first);
	printf(",\"upstreams\":[");
	if (fmt_kv_get(reply, "upstreams", list, sizeof(list)) != 1)
		list[0] = '\0';
	for (int i = 0; pace_host(list, i, &h) == 0; i++) {
		int f2 = 1;

		printf("%s{", i ? "," : "");
		json_s(stdout, "host", h.host, &f2);
		json_n(stdout, "limit", h.limit, &f2);
		json_n(stdout, "active", h.active, &f2);
		json_n(stdout, "queued", h.queued, &f2);
		json_n(stdout, "paused_until", h.paused_until, &f2);
		printf("}");
	}
	printf("]}");
}

static void
pace_print(const char *reply)
{
	static const char *const head[] = { "UPSTREAM", "LIMIT", "ACTIVE", "QUEUED", "PAUSED UNTIL" };
	struct ctl_table t;
	struct pace_host h;
	char list[2048];

	printf("daemon: refreshed in the last hour %lld, most overdue refresh %lld s late\n",
	    pace_n(reply, "refreshed_last_hour"), pace_n(reply, "behind"));
	if (fmt_kv_get(reply, "upstreams", list, sizeof(list)) != 1)
		list[0] = '\0';
	ctl_table_init(&t, 5, head);
	for (int i = 0; pace_host(list, i, &h) == 0; i++) {
		char n[4][24];
		const char *cells[5] = { h.host, n[0], n[1], n[2], h.paused_until ? n[3] : "-" };

		snprintf(n[0], sizeof(n[0]), "%lld", h.limit);
		snprintf(n[1], sizeof(n[1]), "%lld", h.active);
		snprintf(n[2], sizeof(n[2]), "%lld", h.queued);
		snprintf(n[3], sizeof(n[3]), "%lld", h.paused_until);
		ctl_table_add(&t, cells);
	}
	if (t.nrows > 0) {
		printf("\n");
		ctl_table_print(&t, stdout);
	}
	ctl_table_free(&t);
}

int
ctl_cmd_stats(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = { CTL_COMMON_LONGOPTS, { NULL, 0, NULL, 0 } };
	static const char *const head[] = { "UPSTREAM", "ENTRIES", "OK", "FAILING", "FAILED TRIES" };
	struct cache_report_stats *s;
	struct cache *cache;
	char pace[2048];
	int ch, rc, have_pace, first = 1;

	while ((ch = getopt_long(argc, argv, ":hj", longopts, NULL)) != -1) {
		if ((rc = ctl_common_opt(ctl, "stats", ch, argv)) >= 0)
			return rc;
	}
	if (optind != argc)
		return ctl_usage_error("stats", "unexpected argument %s", argv[optind]);
	if ((cache = ctl_open_db(ctl)) == NULL)
		return CTL_USAGE;
	if ((s = calloc(1, sizeof(*s))) == NULL || cache_report_stats(cache, (long long)ctl->now, s) < 0) {
		ctl_err("cannot read the database");
		free(s);
		cache_close(&cache);
		return CTL_USAGE;
	}
	/* The running daemon's view, when it answers: the refresh's pace and each upstream's
	 * limit in force (not in the database). */
	have_pace = ctl_daemon_ask(ctl, "pace\n", pace, sizeof(pace)) == 0;
	if (ctl->json) {
		printf("{");
		json_n(stdout, "now", (long long)ctl->now, &first);
		json_n(stdout, "total", s->total, &first);
		printf(",\"status\":{\"good\":%lld,\"revoked\":%lld,\"unknown\":%lld}",
		    s->by_status[STAPLER_GOOD], s->by_status[STAPLER_REVOKED],
		    s->by_status[STAPLER_UNKNOWN]);
		json_n(stdout, "expired", s->expired, &first);
		json_n(stdout, "expiring_24h", s->expiring_24h, &first);
		json_n(stdout, "due", s->due, &first);
		json_n(stdout, "failing", s->failing, &first);
		json_n(stdout, "issuers", s->issuers, &first);
		json_n(stdout, "due_next_hour", s->due_next_hour, &first);
		json_n(stdout, "oldest_due", s->oldest_due, &first);
		printf(",\"daemon\":");
		pace_json(have_pace ? pace : NULL);
		printf(",\"upstreams\":[");
		for (int i = 0; i < s->n_hosts; i++) {
			int f2 = 1;

			printf("%s{", i ? "," : "");
			json_s(stdout, "host", s->host[i].host, &f2);
			json_n(stdout, "entries", s->host[i].entries, &f2);
			json_n(stdout, "ok", s->host[i].ok, &f2);
			json_n(stdout, "failing", s->host[i].failing, &f2);
			json_n(stdout, "failures", s->host[i].failures, &f2);
			printf("}");
		}
		printf("],\"other_upstream_entries\":%lld}\n", s->other_hosts);
	} else {
		struct ctl_table t;

		printf("entries            %lld\n", s->total);
		printf("  good             %lld\n", s->by_status[STAPLER_GOOD]);
		printf("  revoked          %lld\n", s->by_status[STAPLER_REVOKED]);
		printf("  unknown          %lld\n", s->by_status[STAPLER_UNKNOWN]);
		printf("expired            %lld\n", s->expired);
		printf("expiring in 24h    %lld\n", s->expiring_24h);
		printf("due now            %lld\n", s->due);
		printf("failing            %lld\n", s->failing);
		printf("issuers            %lld\n", s->issuers);
		printf("due within 1h      %lld (the refresh demand per hour)\n", s->due_next_hour);
		printf("most overdue       %lld s\n", s->oldest_due != 0 ?
		    (long long)ctl->now - s->oldest_due : 0);
		if (have_pace)
			pace_print(pace);
		ctl_table_init(&t, 5, head);
		for (int i = 0; i < s->n_hosts; i++) {
			char n[4][24];
			const char *cells[5] = { s->host[i].host, n[0], n[1], n[2], n[3] };

			snprintf(n[0], sizeof(n[0]), "%lld", s->host[i].entries);
			snprintf(n[1], sizeof(n[1]), "%lld", s->host[i].ok);
			snprintf(n[2], sizeof(n[2]), "%lld", s->host[i].failing);
			snprintf(n[3], sizeof(n[3]), "%lld", s->host[i].failures);
			ctl_table_add(&t, cells);
		}
		if (t.nrows > 0) {
			printf("\n");
			ctl_table_print(&t, stdout);
		}
		if (s->other_hosts > 0)
			printf("(%lld entries of further upstreams not shown)\n", s->other_hosts);
		ctl_table_free(&t);
	}
	free(s);
	cache_close(&cache);
	return CTL_OK;
}

/* Writes buf to path atomically: a temporary file in the same directory, fsync, rename. */
static int
write_atomic(const char *path, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	char dir[4096], tmp[4200];
	int fd = -1;
	size_t off = 0;

	if (util_strlcpy(dir, path, sizeof(dir)) < 0) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s/.staplerctl-export.XXXXXX", dirname(dir));
	if ((fd = mkstemp(tmp)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

int
ctl_cmd_export(struct ctl *ctl, int argc, char **argv)
{
	const char *serial = NULL, *issuer = NULL, *hash = NULL, *params = NULL, *out = NULL;
	struct cache_report_entry e;
	struct cache_row row;
	struct cache *cache;
	char err[512];
	int rc;

	if ((rc = parse_key_args(ctl, "export", argc, argv, &serial, &issuer, &hash, &params, &out)) >= 0)
		return rc;
	if (out == NULL)
		return ctl_usage_error("export", "-o FILE (or -o - for standard output) missing");
	if (strcmp(out, "-") == 0 && (ctl->json || isatty(STDOUT_FILENO)))
		return ctl_usage_error("export", ctl->json ? "--json needs -o FILE" :
		    "refusing to write DER to a terminal");
	if ((rc = load_entry(ctl, serial, issuer, hash, params, &cache, &row, &e)) != CTL_OK)
		return rc;
	if (strcmp(out, "-") == 0) {
		if (fwrite(row.response_der, 1, row.response_len, stdout) != row.response_len ||
		    fflush(stdout) != 0) {
			ctl_err("standard output: %s", strerror(errno));
			rc = CTL_USAGE;
		}
	} else if (write_atomic(out, row.response_der, row.response_len, err, sizeof(err)) < 0) {
		ctl_err("%s", err);
		rc = CTL_USAGE;
	} else if (ctl->json) {
		int first = 1;

		printf("{");
		json_s(stdout, "serial", e.serial, &first);
		json_s(stdout, "issuer", e.issuer_key_hash, &first);
		json_s(stdout, "status", stapler_status_name(row.status), &first);
		json_s(stdout, "file", out, &first);
		json_n(stdout, "bytes", (long long)row.response_len, &first);
		printf("}\n");
	} else {
		printf("wrote %zu bytes (serial %s, issuer %s, %s) to %s\n", row.response_len,
		    e.serial, e.issuer_key_hash, stapler_status_name(row.status), out);
	}
	entry_clear(&e);
	cache_row_clear(&row);
	cache_close(&cache);
	return rc;
}
