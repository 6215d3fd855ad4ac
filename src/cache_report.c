/* Read-only reports over the cache for operators: filtered listings, counts and upstream
 * health, lookups by serial across issuers. Its own statements on the cache's connection;
 * nothing here writes. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cache_report.h"
#include "url.h"
#include "log.h"
#include "util.h"

static const char list_sql[] =
    "SELECT r.serial, r.issuer_key_hash, r.subject, coalesce(i.subject, ''), r.ocsp_url, "
    "r.last_error, r.cert_status, r.this_update, r.next_update, r.fetched_at, "
    "r.next_refresh_at, r.cert_not_after, r.failures, r.hash_alg, r.issuer_name_hash, "
    "r.hash_params "
    "FROM ocsp_response r LEFT JOIN issuer i "
    "ON i.name_hash = r.issuer_name_hash AND i.key_hash = r.issuer_key_hash "
    "WHERE (?1 IS NULL OR r.cert_status = ?1) "
    /* Due as the scheduler sees it: a certificate past its notAfter is never refetched. */
    "AND (?2 = 0 OR (r.next_refresh_at <= ?4 AND r.cert_not_after > ?4)) "
    "AND (?3 = 0 OR r.next_update <= ?4) "
    "AND (?5 IS NULL OR r.issuer_key_hash = ?5 OR r.issuer_name_hash = ?5) "
    "AND (?6 IS NULL OR r.serial = ?6) AND (?8 IS NULL OR r.issuer_name_hash = ?8) "
    "AND (?9 IS NULL OR r.hash_alg = ?9) AND (?10 IS NULL OR r.hash_params = ?10) "
    "ORDER BY r.next_refresh_at, r.serial, r.issuer_key_hash, r.issuer_name_hash, r.hash_alg, "
    "r.hash_params "
    "LIMIT ?7";

static const char totals_sql[] =
    "SELECT count(*), sum(cert_status = 'good'), sum(cert_status = 'revoked'), "
    "sum(cert_status = 'unknown'), sum(next_update <= ?1), "
    "sum(next_update > ?1 AND next_update <= ?1 + 86400), "
    "sum(next_refresh_at <= ?1 AND cert_not_after > ?1), "
    "sum(failures > 0), count(DISTINCT issuer_name_hash || issuer_key_hash), "
    "sum(next_refresh_at <= ?1 + 3600 AND cert_not_after > ?1), "
    "min(CASE WHEN next_refresh_at <= ?1 AND cert_not_after > ?1 THEN next_refresh_at END) "
    "FROM ocsp_response";

static const char hosts_sql[] =
    "SELECT ocsp_url, count(*), sum(failures = 0), sum(failures > 0), sum(failures) "
    "FROM ocsp_response GROUP BY ocsp_url";

static void
report_fail(sqlite3 *db, const char *op)
{
	log_error("cache_error", "op=%s err=\"%s\"", op, sqlite3_errmsg(db));
}

static const char *
col_text(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return s != NULL ? s : "";
}

static int
bind_opt_text(sqlite3_stmt *st, int param, const char *s)
{
	return s != NULL ? sqlite3_bind_text(st, param, s, -1, SQLITE_STATIC) :
	    sqlite3_bind_null(st, param);
}

int
cache_report_list(struct cache *cache, const struct cache_report_filter *f,
    int (*cb)(const struct cache_report_entry *e, void *arg), void *arg)
{
	sqlite3 *db = cache_db(cache);
	sqlite3_stmt *st = NULL;
	struct cache_report_entry e;
	int rc, n = 0, ret = -1;

	if (sqlite3_prepare_v2(db, list_sql, -1, &st, NULL) != SQLITE_OK ||
	    bind_opt_text(st, 1, f->status > 0 ?
	    stapler_status_name((enum stapler_cert_status)(f->status - 1)) : NULL) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, f->due) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, f->expired) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, f->now) != SQLITE_OK ||
	    bind_opt_text(st, 5, f->issuer) != SQLITE_OK ||
	    bind_opt_text(st, 6, f->serial) != SQLITE_OK ||
	    sqlite3_bind_int(st, 7, f->limit > 0 ? f->limit : -1) != SQLITE_OK ||
	    bind_opt_text(st, 8, f->name_hash) != SQLITE_OK ||
	    bind_opt_text(st, 9, f->hash_alg > 0 ?
	    stapler_hash_alg_name((enum stapler_hash_alg)(f->hash_alg - 1)) : NULL) != SQLITE_OK ||
	    bind_opt_text(st, 10, f->hash_params > 0 ? stapler_hash_params_name(
	    (enum stapler_hash_params)(f->hash_params - 1)) : NULL) != SQLITE_OK) {
		report_fail(db, "report_list");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		util_strlcpy(e.serial, col_text(st, 0), sizeof(e.serial));
		util_strlcpy(e.issuer_key_hash, col_text(st, 1), sizeof(e.issuer_key_hash));
		e.subject = col_text(st, 2);
		e.issuer_subject = col_text(st, 3);
		e.ocsp_url = col_text(st, 4);
		e.last_error = (const char *)sqlite3_column_text(st, 5);
		if (stapler_status_parse(col_text(st, 6), &e.status) != 0)
			e.status = STAPLER_UNKNOWN;
		e.this_update = sqlite3_column_int64(st, 7);
		e.next_update = sqlite3_column_int64(st, 8);
		e.fetched_at = sqlite3_column_int64(st, 9);
		e.next_refresh_at = sqlite3_column_int64(st, 10);
		e.cert_not_after = sqlite3_column_int64(st, 11);
		e.failures = sqlite3_column_int(st, 12);
		if (stapler_hash_alg_parse(col_text(st, 13), &e.hash_alg) != 0)
			e.hash_alg = STAPLER_HASH_SHA1;
		util_strlcpy(e.issuer_name_hash, col_text(st, 14), sizeof(e.issuer_name_hash));
		if (stapler_hash_params_parse(col_text(st, 15), &e.hash_params) != 0)
			e.hash_params = STAPLER_PARAMS_NULL;
		n++;
		if (cb(&e, arg) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		report_fail(db, "report_list");
		goto out;
	}
	ret = n;
out:
	sqlite3_finalize(st);
	return ret;
}

/* What a lookup collects: every match's key, up to the bound. */
struct lookup {
	struct stapler_key key[CACHE_REPORT_LOOKUP_MAX];
	int n;
};

static int
lookup_cb(const struct cache_report_entry *e, void *arg)
{
	struct lookup *l = arg;

	if (stapler_key_from_hex(&l->key[l->n], e->hash_alg, e->issuer_name_hash,
	    e->issuer_key_hash, e->serial) == 0) {
		l->key[l->n].hash_params = (unsigned char)e->hash_params;
		l->n++;
	}
	return l->n == CACHE_REPORT_LOOKUP_MAX;
}

/* Appends token to a comma-separated list unless it is there. */
static void
choice_add(char *list, size_t cap, const char *token)
{
	size_t off = strlen(list), len = strlen(token);

	for (const char *p = list; *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] != '\0')) {
		if (strncmp(p, token, len) == 0 && (p[len] == ',' || p[len] == '\0'))
			return;
	}
	snprintf(list + off, cap - off, "%s%s", off ? "," : "", token);
}

int
cache_report_lookup(struct cache *cache, const struct cache_report_filter *f,
    struct cache_report_match *m)
{
	struct cache_report_filter q = *f;
	struct lookup l = { .n = 0 };
	char hex[STAPLER_SHA1_HEX];
	int same_key = 1;

	memset(m, 0, sizeof(*m));
	q.limit = CACHE_REPORT_LOOKUP_MAX;
	if (cache_report_list(cache, &q, lookup_cb, &l) < 0)
		return -1;
	m->n = l.n;
	if (l.n == 1)
		m->key = l.key[0];
	m->by_params = l.n > 1;
	for (int i = 1; i < l.n; i++) {
		if (l.key[i].hash_alg != l.key[0].hash_alg)
			m->by_params = 0;
		if (memcmp(l.key[i].name_hash, l.key[0].name_hash, STAPLER_SHA1_LEN) != 0 ||
		    memcmp(l.key[i].key_hash, l.key[0].key_hash, STAPLER_SHA1_LEN) != 0)
			m->by_issuer = 1;
		if (memcmp(l.key[i].key_hash, l.key[0].key_hash, STAPLER_SHA1_LEN) != 0)
			same_key = 0;
	}
	if (m->by_issuer)
		m->by_params = 0;
	for (int i = 0; l.n > 1 && i < l.n; i++) {
		if (m->by_params)
			util_strlcpy(hex, stapler_hash_params_name(
			    (enum stapler_hash_params)l.key[i].hash_params), sizeof(hex));
		else if (!m->by_issuer)
			util_strlcpy(hex, stapler_hash_alg_name((enum stapler_hash_alg)l.key[i].hash_alg),
			    sizeof(hex));
		else if (same_key)
			stapler_key_name_hash_hex(&l.key[i], hex);
		else
			stapler_key_hash_hex(&l.key[i], hex);
		choice_add(m->choices, sizeof(m->choices), hex);
	}
	return 0;
}

void
cache_report_url_host(const char *url, char *out, size_t cap)
{
	struct url_parts parts;
	char why[200];

	if (cap == 0)
		return;
	out[0] = '\0';
	/* The fetcher's per-host key (fetch_url_allowed), from the same parser. */
	if (url == NULL || url_parse(url, strlen(url), &parts, why, sizeof(why)) < 0 ||
	    url_authority(&parts, out, cap) < 0)
		out[0] = '\0';
}

static int
host_cmp(const void *a, const void *b)
{
	const struct cache_report_host *x = a, *y = b;

	if (x->entries != y->entries)
		return x->entries > y->entries ? -1 : 1;
	return strcmp(x->host, y->host);
}

/* Adds one GROUP BY ocsp_url result to its host. */
static void
add_host(struct cache_report_stats *s, sqlite3_stmt *st)
{
	char host[CACHE_REPORT_HOST_LEN];
	struct cache_report_host *h = NULL;

	cache_report_url_host(col_text(st, 0), host, sizeof(host));
	for (int i = 0; i < s->n_hosts && h == NULL; i++) {
		if (strcmp(s->host[i].host, host) == 0)
			h = &s->host[i];
	}
	if (h == NULL && s->n_hosts == CACHE_REPORT_MAX_HOSTS) {
		s->other_hosts += sqlite3_column_int64(st, 1);
		return;
	}
	if (h == NULL) {
		h = &s->host[s->n_hosts++];
		util_strlcpy(h->host, host, sizeof(h->host));
	}
	h->entries += sqlite3_column_int64(st, 1);
	h->ok += sqlite3_column_int64(st, 2);
	h->failing += sqlite3_column_int64(st, 3);
	h->failures += sqlite3_column_int64(st, 4);
}

int
cache_report_stats(struct cache *cache, long long now, struct cache_report_stats *s)
{
	sqlite3 *db = cache_db(cache);
	sqlite3_stmt *st = NULL;
	int rc, in_tx = 0, ret = -1;

	memset(s, 0, sizeof(*s));
	/* One read transaction: the counts and the hosts describe the same moment. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	in_tx = 1;
	if (sqlite3_prepare_v2(db, totals_sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, now) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	s->total = sqlite3_column_int64(st, 0);
	for (int i = 0; i < 3; i++)
		s->by_status[i] = sqlite3_column_int64(st, 1 + i);
	s->expired = sqlite3_column_int64(st, 4);
	s->expiring_24h = sqlite3_column_int64(st, 5);
	s->due = sqlite3_column_int64(st, 6);
	s->failing = sqlite3_column_int64(st, 7);
	s->issuers = sqlite3_column_int64(st, 8);
	s->due_next_hour = sqlite3_column_int64(st, 9);
	s->oldest_due = sqlite3_column_int64(st, 10);    /* NULL: 0 */
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, hosts_sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		add_host(s, st);
	if (rc != SQLITE_DONE)
		goto fail;
	qsort(s->host, (size_t)s->n_hosts, sizeof(s->host[0]), host_cmp);
	ret = 0;
	goto out;
fail:
	report_fail(db, "report_stats");
out:
	sqlite3_finalize(st);
	if (in_tx)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return ret;
}
