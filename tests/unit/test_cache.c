/* Unit tests for cache.c: schema and migrations, the upsert key, NULL mapping, read-only use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cache.h"
#include "cache_report.h"
#include "certs.h"

#define KEY_A "0123456789ABCDEF0123456789ABCDEF01234567"
#define KEY_B "FEDCBA9876543210FEDCBA9876543210FEDCBA98"
#define NAME_HASH "00112233445566778899AABBCCDDEEFF00112233"

static char tmpdir[512];

/* The SHA-1 key of (KEY_x, serial) under NAME_HASH; a few in flight per expression. */
static const struct stapler_key *
K(const char *key_hash, const char *serial)
{
	static struct stapler_key ring[4];
	static int next;
	struct stapler_key *k = &ring[next++ % 4];

	assert_int_equal(stapler_key_from_hex(k, STAPLER_HASH_SHA1, NAME_HASH, key_hash, serial), 0);
	return k;
}
static int dbseq;

/* A fresh database path per test, so tests stay independent. */
static void
db_path(char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/cache%d.db", tmpdir, ++dbseq);

	assert_true(n > 0 && (size_t)n < cap);
}

static int
group_setup(void **state)
{
	const char *base = getenv("STAPLER_TEST_TMP");
	int n;

	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	n = snprintf(tmpdir, sizeof(tmpdir), "%s/test_cache.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(tmpdir) || mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	char path[1024];
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

static struct cache *
open_rw(const char *path)
{
	char err[512];
	struct cache *c = cache_open(path, 0, err, sizeof(err));

	if (c == NULL)
		fail_msg("cache_open(%s): %s", path, err);
	return c;
}

static unsigned char *
dup_bytes(const void *p, size_t len)
{
	unsigned char *out = malloc(len);

	assert_non_null(out);
	memcpy(out, p, len);
	return out;
}

static char *
dup_str(const char *s)
{
	return s != NULL ? (char *)dup_bytes(s, strlen(s) + 1) : NULL;
}

/* A row whose blobs hold NUL and high bytes, so a text round trip would show. */
static void
make_row(struct cache_row *row, const char *key_hash, const char *serial,
    enum stapler_cert_status status)
{
	static const unsigned char resp[] = { 0x30, 0x82, 0x00, 0x05, 0xff, 0x00, 0x7f, 0x80 };
	static const unsigned char req[] = { 0x30, 0x00, 0x01, 0x00 };

	memset(row, 0, sizeof(*row));
	snprintf(row->serial, sizeof(row->serial), "%s", serial);
	snprintf(row->issuer_key_hash, sizeof(row->issuer_key_hash), "%s", key_hash);
	snprintf(row->issuer_name_hash, sizeof(row->issuer_name_hash), "%s", NAME_HASH);
	row->subject = dup_str("CN=meter 0042,O=Utility \"Nord\"");
	row->ocsp_url = dup_str("http://ocsp.example.net/a");
	row->ocsp_urls = dup_str("25:http://ocsp.example.net/a,23:http://ocsp2.example.net/,");
	row->status = status;
	row->revoked_at = 0;
	row->revocation_reason = -1;
	row->this_update = 1700000000;
	row->next_update = 1700604800;
	row->produced_at = 1700000001;
	row->fetched_at = 1700000002;
	row->cert_not_after = 2000000000;
	row->response_der = dup_bytes(resp, sizeof(resp));
	row->response_len = sizeof(resp);
	row->request_der = dup_bytes(req, sizeof(req));
	row->request_len = sizeof(req);
	row->next_refresh_at = 1700100000;
	row->failures = 0;
	row->last_error = NULL;
	row->created_at = 1700000003;
}

static void
make_issuer(struct cache_issuer *iss, const char *key_hash, const char *subject)
{
	static const unsigned char der[] = { 0x30, 0x82, 0x01, 0x00, 0x00, 0xaa, 0x55 };

	memset(iss, 0, sizeof(*iss));
	snprintf(iss->key_hash, sizeof(iss->key_hash), "%s", key_hash);
	snprintf(iss->name_hash, sizeof(iss->name_hash), "%s", NAME_HASH);
	iss->subject = dup_str(subject);
	iss->cert_der = dup_bytes(der, sizeof(der));
	iss->cert_len = sizeof(der);
}

static void
store_one(struct cache *c, const char *key_hash, const char *serial,
    enum stapler_cert_status status)
{
	struct cache_issuer iss;
	struct cache_row row;

	make_issuer(&iss, key_hash, "CN=Test CA");
	make_row(&row, key_hash, serial, status);
	assert_int_equal(cache_store(c, &iss, &row), 0);
	cache_row_clear(&row);
	cache_issuer_clear(&iss);
}

static void
assert_opt_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_row_equal(const struct cache_row *a, const struct cache_row *b, int same_created)
{
	assert_string_equal(a->serial, b->serial);
	assert_string_equal(a->issuer_key_hash, b->issuer_key_hash);
	assert_string_equal(a->issuer_name_hash, b->issuer_name_hash);
	assert_string_equal(a->subject, b->subject);
	assert_string_equal(a->ocsp_url, b->ocsp_url);
	assert_string_equal(a->ocsp_urls, b->ocsp_urls);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->revoked_at, b->revoked_at);
	assert_int_equal(a->revocation_reason, b->revocation_reason);
	assert_int_equal(a->this_update, b->this_update);
	assert_int_equal(a->next_update, b->next_update);
	assert_int_equal(a->produced_at, b->produced_at);
	assert_int_equal(a->fetched_at, b->fetched_at);
	assert_int_equal(a->cert_not_after, b->cert_not_after);
	assert_int_equal(a->response_len, b->response_len);
	assert_memory_equal(a->response_der, b->response_der, a->response_len);
	assert_int_equal(a->request_len, b->request_len);
	assert_memory_equal(a->request_der, b->request_der, a->request_len);
	assert_int_equal(a->next_refresh_at, b->next_refresh_at);
	assert_int_equal(a->failures, b->failures);
	assert_opt_str_equal(a->last_error, b->last_error);
	if (same_created)
		assert_int_equal(a->created_at, b->created_at);
}

/* Runs one query returning one integer, straight through SQLite. */
static long long
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    NULL), SQLITE_OK);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static void
test_open_creates_schema(void **state)
{
	char path[600], mode[16] = "";
	struct cache *c;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	db_path(path, sizeof(path));
	c = open_rw(path);
	assert_int_equal(cache_schema_version(c), cache_schema_latest());
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_string_equal(mode, "wal");
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
	    "AND name IN ('issuer', 'ocsp_response')"), 2);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
	    "AND tbl_name = 'ocsp_response' AND sql LIKE '%next_refresh_at%'"), 1);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
	    "AND tbl_name = 'ocsp_response' AND sql LIKE '%cert_not_after%'"), 1);
	assert_true(cache_schema_latest() >= 2);
	cache_close(&c);
	assert_null(c);
}

static void
test_reopen_idempotent(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row row;
	long long total;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_one(c, KEY_A, "01AB", STAPLER_GOOD);
	cache_close(&c);
	/* A second migration run would fail on CREATE TABLE or lose the row. */
	c = open_rw(path);
	assert_int_equal(cache_schema_version(c), cache_schema_latest());
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 1);
	assert_int_equal(cache_get(c, K(KEY_A, "01AB"), &row), 1);
	cache_row_clear(&row);
	cache_close(&c);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), cache_schema_latest());
}

static void
test_close_null(void **state)
{
	struct cache *c = NULL;

	cache_close(NULL);
	cache_close(&c);
	assert_null(c);
	cache_row_clear(NULL);
	cache_issuer_clear(NULL);
}

/* A failure that leaves the connection inside a transaction (here one left open by hand)
 * is the connection's state, not the row's: the write is worth a retry, and after
 * cache_recover() it lands (issue 17: it was dropped as a bad row, and the next writes found
 * the transaction still open). */
static void
test_recover_after_a_transaction_left_open(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_row row, out;

	(void)state;
	db_path(path, sizeof(path));
	c = open_rw(path);
	assert_int_equal(sqlite3_exec(cache_db(c), "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&row, KEY_A, "1100", STAPLER_REVOKED);
	assert_int_equal(cache_store(c, &iss, &row), -1);
	assert_int_not_equal(cache_fault(c), CACHE_FAULT_OTHER);
	assert_int_equal(cache_recover(c), 0);
	assert_int_equal(cache_store(c, &iss, &row), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "1100"), &out), 1);
	assert_int_equal(out.status, STAPLER_REVOKED);
	cache_row_clear(&out);
	cache_row_clear(&row);
	cache_issuer_clear(&iss);
	cache_close(&c);
}

/* A row refused for itself stays a write that can never land. */
static void
test_bad_row_is_not_transient(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row row;

	(void)state;
	db_path(path, sizeof(path));
	c = open_rw(path);
	make_row(&row, KEY_A, "1101", STAPLER_GOOD);
	snprintf(row.serial, sizeof(row.serial), "%s", "lowercase");
	assert_int_equal(cache_store(c, NULL, &row), -1);
	assert_int_equal(cache_fault(c), CACHE_FAULT_OTHER);
	cache_row_clear(&row);
	cache_close(&c);
}

static void
test_roundtrip_good_nulls(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row in, out;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_one(c, KEY_A, "1000", STAPLER_GOOD);
	make_row(&in, KEY_A, "1000", STAPLER_GOOD);
	assert_int_equal(cache_get(c, K(KEY_A, "1000"), &out), 1);
	assert_row_equal(&in, &out, 1);
	assert_int_equal(out.revoked_at, 0);
	assert_int_equal(out.revocation_reason, -1);
	assert_null(out.last_error);
	cache_row_clear(&out);
	cache_row_clear(&in);
	cache_close(&c);
	assert_int_equal(raw_int(path, "SELECT revoked_at IS NULL AND revocation_reason IS NULL "
	    "AND last_error IS NULL AND typeof(response_der) = 'blob' FROM ocsp_response"), 1);
}

static void
test_roundtrip_revoked(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_row in, out;

	db_path(path, sizeof(path));
	c = open_rw(path);
	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&in, KEY_A, "-7F", STAPLER_REVOKED);
	in.revoked_at = 1699990000;
	in.revocation_reason = 0;   /* unspecified: a real value, not "none" */
	in.failures = 3;
	in.last_error = dup_str("upstream timeout after 10s");
	assert_int_equal(cache_store(c, &iss, &in), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "-7F"), &out), 1);
	assert_row_equal(&in, &out, 1);
	cache_row_clear(&out);
	cache_row_clear(&in);
	cache_issuer_clear(&iss);
	cache_close(&c);
	assert_int_equal(raw_int(path, "SELECT cert_status = 'revoked' AND revocation_reason = 0 "
	    "FROM ocsp_response"), 1);
}

static void
test_upsert_replaces_keeps_created(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_row in, out;
	long long total, counts[3];

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_one(c, KEY_A, "ABCD", STAPLER_GOOD);

	make_issuer(&iss, KEY_A, "CN=Other subject, ignored");
	make_row(&in, KEY_A, "ABCD", STAPLER_REVOKED);
	free(in.subject);
	in.subject = dup_str("CN=renamed");
	free(in.response_der);
	in.response_der = dup_bytes("\x30\x03\x0a\x01\x00", 5);
	in.response_len = 5;
	in.revoked_at = 1700050000;
	in.revocation_reason = 1;
	in.this_update += 3600;
	in.next_update += 3600;
	in.next_refresh_at = 0;
	in.failures = 2;
	in.last_error = dup_str("tryLater");
	in.created_at = 1800000000;
	assert_int_equal(cache_store(c, &iss, &in), 0);

	assert_int_equal(cache_get(c, K(KEY_A, "ABCD"), &out), 1);
	assert_row_equal(&in, &out, 0);
	assert_int_equal(out.created_at, 1700000003);
	cache_row_clear(&out);
	assert_int_equal(cache_count(c, &total, counts), 0);
	assert_int_equal(total, 1);
	assert_int_equal(counts[STAPLER_REVOKED], 1);
	assert_int_equal(counts[STAPLER_GOOD], 0);
	cache_issuer_clear(&iss);

	/* The issuer row stays the first one seen. */
	assert_int_equal(cache_get_issuer(c, K(KEY_A, "01"), &iss), 1);
	assert_string_equal(iss.subject, "CN=Test CA");
	cache_issuer_clear(&iss);
	cache_row_clear(&in);
	cache_close(&c);
}

static void
test_used_at_written_with_the_row(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_row in, out;

	(void)state;
	db_path(path, sizeof(path));
	c = open_rw(path);
	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&in, KEY_A, "0AB1", STAPLER_GOOD);
	/* Not known (a tool's row): as asked for when fetched. */
	in.used_at = 0;
	assert_int_equal(cache_store(c, &iss, &in), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "0AB1"), &out), 1);
	assert_int_equal(out.used_at, in.fetched_at);
	cache_row_clear(&out);
	in.used_at = in.fetched_at + 500;
	assert_int_equal(cache_store(c, &iss, &in), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "0AB1"), &out), 1);
	assert_int_equal(out.used_at, in.fetched_at + 500);
	cache_row_clear(&out);
	/* A write with an older time never moves it back. */
	in.used_at = in.fetched_at + 100;
	assert_int_equal(cache_store(c, &iss, &in), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "0AB1"), &out), 1);
	assert_int_equal(out.used_at, in.fetched_at + 500);
	cache_row_clear(&out);
	cache_issuer_clear(&iss);
	cache_row_clear(&in);
	cache_close(&c);
}

static void
test_same_serial_two_issuers(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row a, b;
	long long total;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_one(c, KEY_A, "05", STAPLER_GOOD);
	store_one(c, KEY_B, "05", STAPLER_REVOKED);
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 2);
	assert_int_equal(cache_get(c, K(KEY_A, "05"), &a), 1);
	assert_int_equal(cache_get(c, K(KEY_B, "05"), &b), 1);
	assert_string_equal(a.issuer_key_hash, KEY_A);
	assert_int_equal(a.status, STAPLER_GOOD);
	assert_string_equal(b.issuer_key_hash, KEY_B);
	assert_int_equal(b.status, STAPLER_REVOKED);
	cache_row_clear(&a);
	cache_row_clear(&b);
	cache_close(&c);
}

static void
test_get_absent(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row row;
	struct cache_issuer iss;

	db_path(path, sizeof(path));
	c = open_rw(path);
	assert_int_equal(cache_get(c, K(KEY_A, "01"), &row), 0);
	store_one(c, KEY_A, "01", STAPLER_GOOD);
	assert_int_equal(cache_get(c, K(KEY_A, "02"), &row), 0);
	assert_int_equal(cache_get(c, K(KEY_B, "01"), &row), 0);
	cache_row_clear(&row);
	assert_int_equal(cache_get_issuer(c, K(KEY_B, "01"), &iss), 0);
	cache_issuer_clear(&iss);
	cache_close(&c);
}

static void
test_get_issuer(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_issuer in, out;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_one(c, KEY_B, "77", STAPLER_UNKNOWN);
	make_issuer(&in, KEY_B, "CN=Test CA");
	assert_int_equal(cache_get_issuer(c, K(KEY_B, "01"), &out), 1);
	assert_string_equal(out.key_hash, KEY_B);
	assert_string_equal(out.subject, in.subject);
	assert_int_equal(out.cert_len, in.cert_len);
	assert_memory_equal(out.cert_der, in.cert_der, in.cert_len);
	cache_issuer_clear(&out);
	cache_issuer_clear(&in);
	cache_close(&c);
}

struct visit {
	int seen;
	int stop_after;
	char serials[8][STAPLER_SERIAL_HEX_MAX];
};

static int
visit_cb(const struct cache_row *row, void *arg)
{
	struct visit *v = arg;

	assert_non_null(row->response_der);
	if (v->seen < 8)
		snprintf(v->serials[v->seen], sizeof(v->serials[0]), "%s", row->serial);
	v->seen++;
	return v->stop_after != 0 && v->seen >= v->stop_after ? 42 : 0;
}

static void
test_foreach(void **state)
{
	char path[600];
	struct cache *c;
	struct visit v;

	db_path(path, sizeof(path));
	c = open_rw(path);
	memset(&v, 0, sizeof(v));
	assert_int_equal(cache_foreach(c, visit_cb, &v), 0);
	assert_int_equal(v.seen, 0);

	store_one(c, KEY_A, "03", STAPLER_GOOD);
	store_one(c, KEY_A, "01", STAPLER_GOOD);
	store_one(c, KEY_B, "02", STAPLER_REVOKED);
	memset(&v, 0, sizeof(v));
	assert_int_equal(cache_foreach(c, visit_cb, &v), 0);
	assert_int_equal(v.seen, 3);
	/* rowid order, i.e. insertion order. */
	assert_string_equal(v.serials[0], "03");
	assert_string_equal(v.serials[1], "01");
	assert_string_equal(v.serials[2], "02");

	memset(&v, 0, sizeof(v));
	v.stop_after = 2;
	assert_int_equal(cache_foreach(c, visit_cb, &v), 42);
	assert_int_equal(v.seen, 2);

	/* The statement was reset: a full pass works again. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(cache_foreach(c, visit_cb, &v), 0);
	assert_int_equal(v.seen, 3);
	cache_close(&c);
}

static struct cache *reentry_cache;

/* Warm start may write back (e.g. reschedule) while iterating; nesting foreach is refused. */
static int
reentry_cb(const struct cache_row *row, void *arg)
{
	struct visit v;
	struct cache_row copy = *row;

	memset(&v, 0, sizeof(v));
	assert_int_equal(cache_foreach(reentry_cache, visit_cb, &v), -1);
	assert_int_equal(v.seen, 0);
	copy.failures = row->failures + 1;
	assert_int_equal(cache_store(reentry_cache, NULL, &copy), 0);
	(*(int *)arg)++;
	return 0;
}

static void
test_foreach_reentry(void **state)
{
	char path[600];
	struct cache_row row;
	int calls = 0;

	db_path(path, sizeof(path));
	reentry_cache = open_rw(path);
	store_one(reentry_cache, KEY_A, "01", STAPLER_GOOD);
	store_one(reentry_cache, KEY_A, "02", STAPLER_GOOD);
	assert_int_equal(cache_foreach(reentry_cache, reentry_cb, &calls), 0);
	assert_int_equal(calls, 2);
	assert_int_equal(cache_get(reentry_cache, K(KEY_A, "02"), &row), 1);
	assert_int_equal(row.failures, 1);
	cache_row_clear(&row);
	cache_close(&reentry_cache);
}

static void
test_count(void **state)
{
	char path[600];
	struct cache *c;
	long long total = -1, counts[3] = { -1, -1, -1 };

	db_path(path, sizeof(path));
	c = open_rw(path);
	assert_int_equal(cache_count(c, &total, counts), 0);
	assert_int_equal(total, 0);
	assert_int_equal(counts[0] + counts[1] + counts[2], 0);
	store_one(c, KEY_A, "01", STAPLER_GOOD);
	store_one(c, KEY_A, "02", STAPLER_GOOD);
	store_one(c, KEY_A, "03", STAPLER_REVOKED);
	store_one(c, KEY_B, "01", STAPLER_UNKNOWN);
	store_one(c, KEY_B, "02", STAPLER_GOOD);
	assert_int_equal(cache_count(c, &total, counts), 0);
	assert_int_equal(total, 5);
	assert_int_equal(counts[STAPLER_GOOD], 3);
	assert_int_equal(counts[STAPLER_REVOKED], 1);
	assert_int_equal(counts[STAPLER_UNKNOWN], 1);
	cache_close(&c);
}

static void
test_store_rolls_back(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_row row;
	long long total;

	db_path(path, sizeof(path));
	c = open_rw(path);
	/* The issuer insert succeeds, the row violates NOT NULL: nothing may remain. */
	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&row, KEY_A, "10", STAPLER_GOOD);
	free(row.subject);
	row.subject = NULL;
	assert_int_equal(cache_store(c, &iss, &row), -1);
	cache_issuer_clear(&iss);
	assert_int_equal(cache_get_issuer(c, K(KEY_A, "01"), &iss), 0);
	cache_row_clear(&row);

	/* Without an issuer, the row needs one already known (foreign key). */
	make_row(&row, KEY_B, "10", STAPLER_GOOD);
	assert_int_equal(cache_store(c, NULL, &row), -1);
	cache_row_clear(&row);

	/* Keys must be uppercase hex, or one certificate could get two rows. */
	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&row, KEY_A, "0a", STAPLER_GOOD);
	assert_int_equal(cache_store(c, &iss, &row), -1);
	cache_row_clear(&row);
	/* The row's issuer must be the issuer given. */
	make_row(&row, KEY_B, "0A", STAPLER_GOOD);
	assert_int_equal(cache_store(c, &iss, &row), -1);
	cache_row_clear(&row);
	cache_issuer_clear(&iss);

	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 0);

	/* And the connection is still usable, with no transaction left open. */
	store_one(c, KEY_A, "10", STAPLER_GOOD);
	make_row(&row, KEY_A, "11", STAPLER_GOOD);
	assert_int_equal(cache_store(c, NULL, &row), 0);
	cache_row_clear(&row);
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 2);
	cache_close(&c);
}

static void
test_readonly_missing(void **state)
{
	char path[600], err[512] = "x";
	struct cache *c;

	db_path(path, sizeof(path));
	c = cache_open(path, 1, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, path));
	assert_true(strlen(err) > strlen(path) + 2);
	/* Read-only never creates the file. */
	assert_int_equal(access(path, F_OK), -1);
}

static void
test_readonly_old_schema(void **state)
{
	char path[600], err[512] = "";
	struct cache *c;

	db_path(path, sizeof(path));
	/* A database some other tool made: no migrations applied. */
	assert_int_equal(raw_exec(path, "CREATE TABLE t(x)"), SQLITE_OK);
	c = cache_open(path, 1, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "schema version 0"));
	/* Nor does a read-write open adopt it (a wrong path in the config). */
	err[0] = '\0';
	c = cache_open(path, 0, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "not a staplerd database"));
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master"), 1);
	assert_int_equal(raw_int(path, "SELECT journal_mode = 'delete' FROM pragma_journal_mode"),
	    1);
}

/* Schema version 2, written out here as that release created it (sql/001 and sql/002), with
 * rows as it stored them: a database of the previous release. */
static const char v2_schema[] =
    "CREATE TABLE issuer (key_hash TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " cert_der BLOB NOT NULL, added_at INTEGER NOT NULL);"
    "CREATE TABLE ocsp_response (id INTEGER PRIMARY KEY, serial TEXT NOT NULL,"
    " issuer_key_hash TEXT NOT NULL REFERENCES issuer(key_hash), issuer_name_hash TEXT NOT NULL,"
    " subject TEXT NOT NULL, ocsp_url TEXT NOT NULL, ocsp_urls TEXT NOT NULL,"
    " cert_status TEXT NOT NULL CHECK (cert_status IN ('good', 'revoked', 'unknown')),"
    " revoked_at INTEGER, revocation_reason INTEGER, this_update INTEGER NOT NULL,"
    " next_update INTEGER NOT NULL, produced_at INTEGER NOT NULL, fetched_at INTEGER NOT NULL,"
    " cert_not_after INTEGER NOT NULL, response_der BLOB NOT NULL, request_der BLOB NOT NULL,"
    " next_refresh_at INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT, created_at INTEGER NOT NULL, UNIQUE (issuer_key_hash, serial));"
    "CREATE INDEX ocsp_response_next_refresh_at ON ocsp_response (next_refresh_at);"
    "CREATE INDEX ocsp_response_cert_not_after ON ocsp_response (cert_not_after);"
    "INSERT INTO issuer VALUES ('" KEY_A "', 'CN=Old CA', x'3003020101', 1600000000);"
    "INSERT INTO issuer VALUES ('" KEY_B "', 'CN=Unused CA', x'3003020102', 1600000000);"
    "INSERT INTO ocsp_response (serial, issuer_key_hash, issuer_name_hash, subject, ocsp_url,"
    " ocsp_urls, cert_status, revoked_at, revocation_reason, this_update, next_update,"
    " produced_at, fetched_at, cert_not_after, response_der, request_der, next_refresh_at,"
    " failures, last_error, created_at) VALUES"
    " ('01AB', '" KEY_A "', '" NAME_HASH "', 'CN=meter 1', 'http://ocsp.example/',"
    " 'http://ocsp.example/' || char(10) || 'http://backup.example/ocsp', 'good', NULL, NULL,"
    " 1700000000, 1700604800, 1700000001, 1700000002, 2000000000, x'3082000500', x'300001',"
    " 1700300000, 2, 'http://ocsp.example/: timed out', 1690000000),"
    " ('02', '" KEY_A "', '" NAME_HASH "', 'CN=meter 2', '', '', 'revoked', 1699999999, 1,"
    " 1700000000, 1700604800, 1700000001, 1700000002, 2000000000, x'30820006', x'300002',"
    " 0, 0, NULL, 1690000001);"
    "PRAGMA user_version = 2;";

/* A version-2 database is migrated on a read-write open: every row survives as a SHA-1
 * CertID under its (name hash, key hash) issuer, its URL list split where it was, its
 * scheduler state and blobs unchanged; the new key tells the algorithms apart. */
static void
test_migrate_from_v2(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row row, sha256;
	struct cache_issuer iss;
	struct certs_urls urls;
	struct stapler_key k256;
	long long total;

	db_path(path, sizeof(path));
	assert_int_equal(raw_exec(path, v2_schema), SQLITE_OK);
	c = open_rw(path);
	assert_int_equal(cache_schema_version(c), cache_schema_latest());
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 2);
	assert_int_equal(cache_get(c, K(KEY_A, "01AB"), &row), 1);
	assert_int_equal(row.hash_alg, STAPLER_HASH_SHA1);
	assert_string_equal(row.issuer_name_hash, NAME_HASH);
	assert_string_equal(row.subject, "CN=meter 1");
	assert_int_equal(certs_urls_decode(row.ocsp_urls, &urls), 2);
	assert_string_equal(urls.url[0], "http://ocsp.example/");
	assert_string_equal(urls.url[1], "http://backup.example/ocsp");
	certs_urls_free(&urls);
	assert_int_equal(row.response_len, 5);
	assert_memory_equal(row.response_der, "\x30\x82\x00\x05\x00", 5);
	assert_int_equal(row.next_refresh_at, 1700300000);
	assert_int_equal(row.failures, 2);
	assert_string_equal(row.last_error, "http://ocsp.example/: timed out");
	assert_int_equal(row.created_at, 1690000000);
	/* Migration 4: a row from before counts as asked for when it was last fetched. */
	assert_int_equal(row.used_at, row.fetched_at);
	cache_row_clear(&row);
	assert_int_equal(cache_get(c, K(KEY_A, "02"), &row), 1);
	assert_int_equal(row.status, STAPLER_REVOKED);
	assert_int_equal(row.revoked_at, 1699999999);
	assert_string_equal(row.ocsp_urls, "");
	/* The issuer is known by both hashes now; one no row used is gone. */
	assert_int_equal(cache_get_issuer(c, K(KEY_A, "01"), &iss), 1);
	assert_string_equal(iss.subject, "CN=Old CA");
	assert_string_equal(iss.name_hash, NAME_HASH);
	cache_issuer_clear(&iss);
	assert_int_equal(cache_get_issuer(c, K(KEY_B, "01"), &iss), 0);
	cache_issuer_clear(&iss);
	/* The same certificate under a SHA-256 CertID is a row of its own. */
	k256 = *K(KEY_A, "02");
	k256.hash_alg = STAPLER_HASH_SHA256;
	assert_int_equal(cache_get(c, &k256, &sha256), 0);
	row.hash_alg = STAPLER_HASH_SHA256;
	assert_int_equal(cache_store(c, NULL, &row), 0);
	assert_int_equal(cache_get(c, &k256, &sha256), 1);
	assert_int_equal(sha256.hash_alg, STAPLER_HASH_SHA256);
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 3);
	cache_row_clear(&sha256);
	cache_row_clear(&row);
	cache_close(&c);
	/* Opening again changes nothing. */
	c = open_rw(path);
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 3);
	cache_close(&c);
}

/* The migrations as the build embeds them (cmake/embed_sql.cmake). */
extern const char *const cache_migrations[];

/* A version-5 row's request (its CertID's algorithm and parameters as the client or OpenSSL
 * wrote them; the hashes and serial do not matter to the migration). */
#define REQ_HEAD "3000300030003000"
#define SHA1_NULL "3009" "06052B0E03021A" "0500"
#define SHA1_ABSENT "3007" "06052B0E03021A"
#define SHA256_NULL "300D" "0609608648016503040201" "0500"
#define SHA256_ABSENT "300B" "0609608648016503040201"

/* Schema version 6 (sql/006_certid_forms.sql): a version-5 database's rows keep everything,
 * and gain the parameters' encoding their stored request was sent with; the key then tells
 * the two encodings of one CertID apart, and SHA-384 and SHA-512 rows can be stored. */
static void
test_migrate_v5_certid_forms(void **state)
{
	static const struct {
		const char *alg, *serial, *req;
		enum stapler_hash_params want;
	} rows[] = {
		{ "sha1", "01", REQ_HEAD SHA1_NULL "0414", STAPLER_PARAMS_NULL },
		{ "sha1", "02", REQ_HEAD SHA1_ABSENT "0414", STAPLER_PARAMS_ABSENT },
		{ "sha256", "03", REQ_HEAD SHA256_NULL "0420", STAPLER_PARAMS_NULL },
		{ "sha256", "04", REQ_HEAD SHA256_ABSENT "0420", STAPLER_PARAMS_ABSENT },
	};
	char path[600], sql[2048];
	struct cache *c;
	struct cache_row row, other;
	struct stapler_key k;
	long long total;

	db_path(path, sizeof(path));
	assert_int_equal(raw_exec(path, v2_schema), SQLITE_OK);
	for (int v = 2; v < 5; v++) {
		assert_int_equal(raw_exec(path, cache_migrations[v]), SQLITE_OK);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		assert_int_equal(raw_exec(path, sql), SQLITE_OK);
	}
	assert_int_equal(raw_exec(path, "DELETE FROM ocsp_response"), SQLITE_OK);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO ocsp_response (hash_alg, serial, "
		    "issuer_name_hash, issuer_key_hash, subject, ocsp_url, ocsp_urls, cert_status, "
		    "this_update, next_update, produced_at, fetched_at, cert_not_after, "
		    "response_der, request_der, next_refresh_at, created_at, used_at, upstream_etag) "
		    "VALUES ('%s', '%s', '" NAME_HASH "', '" KEY_A "', 'CN=m', 'http://o/', '', "
		    "'good', 1700000000, 1700604800, 1700000001, 1700000002, 2000000000, x'3003', "
		    "x'%s', 1700300000, 1690000000, 1700000009, '\"e%zu\"')", rows[i].alg,
		    rows[i].serial, rows[i].req, i);
		assert_int_equal(raw_exec(path, sql), SQLITE_OK);
	}
	c = open_rw(path);
	assert_true(cache_schema_version(c) >= 6);
	assert_int_equal(cache_schema_version(c), cache_schema_latest());
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 4);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum stapler_hash_alg alg;
		char etag[8];

		assert_int_equal(stapler_hash_alg_parse(rows[i].alg, &alg), 0);
		k = *K(KEY_A, rows[i].serial);
		k.hash_alg = alg;
		k.hash_params = rows[i].want;
		if (cache_get(c, &k, &row) != 1)
			fail_msg("row %zu (%s) not found as %s", i, rows[i].alg,
			    stapler_hash_params_name(rows[i].want));
		assert_int_equal(row.hash_params, rows[i].want);
		assert_int_equal(row.used_at, 1700000009);
		assert_int_equal(row.next_refresh_at, 1700300000);
		snprintf(etag, sizeof(etag), "\"e%zu\"", i);
		assert_string_equal(row.upstream_etag, etag);
		/* Not under the other encoding. */
		k.hash_params = !rows[i].want;
		assert_int_equal(cache_get(c, &k, &other), 0);
		/* Which a row of its own can take now, beside it. */
		row.hash_params = (enum stapler_hash_params)k.hash_params;
		assert_int_equal(cache_store(c, NULL, &row), 0);
		assert_int_equal(cache_get(c, &k, &other), 1);
		assert_int_equal(other.hash_params, k.hash_params);
		assert_int_equal(cache_row_key(&other, &k), 0);
		assert_int_equal(k.hash_params, other.hash_params);
		cache_row_clear(&other);
		cache_row_clear(&row);
	}
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 8);
	/* SHA-384 and SHA-512 rows, each in both encodings. */
	for (int alg = STAPLER_HASH_SHA384; alg <= STAPLER_HASH_SHA512; alg++) {
		for (int pa = STAPLER_PARAMS_NULL; pa <= STAPLER_PARAMS_ABSENT; pa++) {
			make_row(&row, KEY_A, "05", STAPLER_GOOD);
			row.hash_alg = (enum stapler_hash_alg)alg;
			row.hash_params = (enum stapler_hash_params)pa;
			assert_int_equal(cache_store(c, NULL, &row), 0);
			k = *K(KEY_A, "05");
			k.hash_alg = (unsigned char)alg;
			k.hash_params = (unsigned char)pa;
			assert_int_equal(cache_get(c, &k, &other), 1);
			assert_int_equal(other.hash_alg, alg);
			assert_int_equal(other.hash_params, pa);
			cache_row_clear(&other);
			cache_row_clear(&row);
		}
	}
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 12);
	cache_close(&c);
	/* The constraints hold what the key can say, and nothing else. */
	assert_int_not_equal(raw_exec(path, "UPDATE ocsp_response SET hash_alg = 'md5' "
	    "WHERE serial = '05'"), SQLITE_OK);
	assert_int_not_equal(raw_exec(path, "UPDATE ocsp_response SET hash_params = 'odd' "
	    "WHERE serial = '05'"), SQLITE_OK);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
	    "AND name LIKE 'ocsp_response_%'"), 3);
}

static void
test_readonly_cannot_write(void **state)
{
	char path[600], err[512];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_row row;
	long long total;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_one(c, KEY_A, "01", STAPLER_GOOD);
	cache_close(&c);

	c = cache_open(path, 1, err, sizeof(err));
	if (c == NULL)
		fail_msg("read-only open: %s", err);
	assert_int_equal(cache_schema_version(c), cache_schema_latest());
	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&row, KEY_A, "02", STAPLER_GOOD);
	assert_int_equal(cache_store(c, &iss, &row), -1);
	cache_row_clear(&row);
	cache_issuer_clear(&iss);
	assert_int_equal(cache_get(c, K(KEY_A, "01"), &row), 1);
	cache_row_clear(&row);
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 1);
	cache_close(&c);
}

/* staplerctl reads while the daemon writes (WAL). */
static void
test_readonly_beside_writer(void **state)
{
	char path[600], err[512];
	struct cache *rw, *ro;
	long long total;

	db_path(path, sizeof(path));
	rw = open_rw(path);
	store_one(rw, KEY_A, "01", STAPLER_GOOD);
	ro = cache_open(path, 1, err, sizeof(err));
	if (ro == NULL)
		fail_msg("read-only open: %s", err);
	assert_int_equal(cache_count(ro, &total, NULL), 0);
	assert_int_equal(total, 1);
	store_one(rw, KEY_A, "02", STAPLER_REVOKED);
	assert_int_equal(cache_count(ro, &total, NULL), 0);
	assert_int_equal(total, 2);
	cache_close(&ro);
	cache_close(&rw);
}

static void
test_newer_schema_refused(void **state)
{
	char path[600], err[512] = "";
	struct cache *c;

	db_path(path, sizeof(path));
	c = open_rw(path);
	cache_close(&c);
	assert_int_equal(raw_exec(path, "PRAGMA user_version = 99"), SQLITE_OK);
	c = cache_open(path, 0, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "99"));
	assert_non_null(strstr(err, "newer"));
	err[0] = '\0';
	c = cache_open(path, 1, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "newer"));
	/* Refusing must not have touched the version. */
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 99);
}

static void
test_status_check_constraint(void **state)
{
	char path[600];
	struct cache *c;
#define INSERT_WITH_STATUS(s) \
	"INSERT INTO ocsp_response (serial, issuer_key_hash, issuer_name_hash, subject, " \
	"ocsp_url, ocsp_urls, cert_status, this_update, next_update, produced_at, fetched_at, " \
	"cert_not_after, response_der, request_der, created_at) VALUES ('01', '" KEY_A "', " \
	"'" NAME_HASH "', 'CN=x', 'http://a/', 'http://a/', '" s "', 1, 2, 1, 1, 3, x'30', " \
	"x'30', 1)"

	db_path(path, sizeof(path));
	c = open_rw(path);
	cache_close(&c);
	assert_int_equal(raw_exec(path, INSERT_WITH_STATUS("valid")), SQLITE_CONSTRAINT);
	assert_int_equal(raw_exec(path, INSERT_WITH_STATUS("GOOD")), SQLITE_CONSTRAINT);
	assert_int_equal(raw_exec(path, INSERT_WITH_STATUS("")), SQLITE_CONSTRAINT);
	/* The same statement with a listed status goes in (no foreign-key check on a raw
	 * connection), so the CHECK alone refused the others. */
	assert_int_equal(raw_exec(path, INSERT_WITH_STATUS("good")), SQLITE_OK);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM ocsp_response"), 1);
#undef INSERT_WITH_STATUS
}

/* Stores a row with the given refresh time and certificate expiry. */
static void
store_sched(struct cache *c, const char *serial, long long next_refresh_at, long long not_after)
{
	struct cache_issuer iss;
	struct cache_row row;

	make_issuer(&iss, KEY_A, "CN=Test CA");
	make_row(&row, KEY_A, serial, STAPLER_GOOD);
	row.next_refresh_at = next_refresh_at;
	row.cert_not_after = not_after;
	assert_int_equal(cache_store(c, &iss, &row), 0);
	cache_row_clear(&row);
	cache_issuer_clear(&iss);
}

static void
test_due_order_limit_and_expired_certs(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_refresh d[8];

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_sched(c, "03", 300, 5000);
	store_sched(c, "01", 100, 5000);
	store_sched(c, "02", 200, 5000);
	store_sched(c, "04", 400, 5000);     /* not due at 350 */
	store_sched(c, "05", 50, 340);       /* due, but the certificate expired */
	assert_int_equal(cache_due(c, 350, 2, d), 2);
	assert_true(stapler_key_equal(&d[0].key, K(KEY_A, "01")));
	assert_true(stapler_key_equal(&d[1].key, K(KEY_A, "02")));
	memset(d, 0, sizeof(d));
	assert_int_equal(cache_due(c, 350, 8, d), 3);
	assert_true(stapler_key_equal(&d[2].key, K(KEY_A, "03")));
	cache_close(&c);
}

/* Among the longest due, the closest to nextUpdate first, then the longest since fetched;
 * what is due later is not read ahead of what is due earlier. */
static void
test_due_most_urgent_first(void **state)
{
	static const struct {
		const char *serial;
		long long due, next_update, fetched_at;
	} rows[] = {
		{ "01", 100, 9000, 5 },      /* longest due, but its response lasts */
		{ "02", 200, 1000, 20 },
		{ "03", 300, 1000, 10 },     /* as urgent as 02, fetched longer ago */
		{ "04", 310, 500, 1 },       /* the most urgent, but due last */
	};
	char path[600];
	struct cache *c;
	struct cache_issuer iss;
	struct cache_refresh d[8];

	db_path(path, sizeof(path));
	c = open_rw(path);
	make_issuer(&iss, KEY_A, "CN=Test CA");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct cache_row row;

		make_row(&row, KEY_A, rows[i].serial, STAPLER_GOOD);
		row.next_refresh_at = rows[i].due;
		row.next_update = rows[i].next_update;
		row.fetched_at = rows[i].fetched_at;
		row.this_update = 0;
		row.produced_at = 0;
		row.cert_not_after = 50000;
		assert_int_equal(cache_store(c, &iss, &row), 0);
		cache_row_clear(&row);
	}
	cache_issuer_clear(&iss);
	assert_int_equal(cache_due(c, 400, 8, d), 4);
	assert_true(stapler_key_equal(&d[0].key, K(KEY_A, "04")));
	assert_true(stapler_key_equal(&d[1].key, K(KEY_A, "03")));
	assert_true(stapler_key_equal(&d[2].key, K(KEY_A, "02")));
	assert_true(stapler_key_equal(&d[3].key, K(KEY_A, "01")));
	assert_int_equal(d[0].next_refresh_at, 310);
	/* Three read: 04, due last, waits for the next read. */
	memset(d, 0, sizeof(d));
	assert_int_equal(cache_due(c, 400, 3, d), 3);
	assert_true(stapler_key_equal(&d[0].key, K(KEY_A, "03")));
	assert_true(stapler_key_equal(&d[1].key, K(KEY_A, "02")));
	assert_true(stapler_key_equal(&d[2].key, K(KEY_A, "01")));
	cache_close(&c);
}

static void
test_set_refresh_and_failure_keep_response(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row before, after;
	struct cache_refresh items[2];

	items[0].key = *K(KEY_A, "01");
	items[0].next_refresh_at = 9000;
	items[1].key = *K(KEY_A, "02");
	items[1].next_refresh_at = 9100;
	db_path(path, sizeof(path));
	c = open_rw(path);
	store_sched(c, "01", 100, 50000);
	store_sched(c, "02", 100, 50000);
	assert_int_equal(cache_get(c, K(KEY_A, "01"), &before), 1);
	assert_int_equal(cache_set_refresh(c, items, 2), 0);
	assert_int_equal(cache_set_failure(c, K(KEY_A, "01"), 3, "http://x/: timed out", 7777), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "01"), &after), 1);
	assert_int_equal(after.failures, 3);
	assert_string_equal(after.last_error, "http://x/: timed out");
	assert_int_equal(after.next_refresh_at, 7777);
	/* The response and its times are untouched, byte for byte. */
	assert_int_equal(after.response_len, before.response_len);
	assert_memory_equal(after.response_der, before.response_der, before.response_len);
	assert_int_equal(after.next_update, before.next_update);
	assert_int_equal(after.fetched_at, before.fetched_at);
	cache_row_clear(&after);
	assert_int_equal(cache_get(c, K(KEY_A, "02"), &after), 1);
	assert_int_equal(after.next_refresh_at, 9100);
	assert_int_equal(after.failures, 0);
	cache_row_clear(&after);
	cache_row_clear(&before);
	/* A successful store clears the failure state again. */
	store_sched(c, "01", 8000, 50000);
	assert_int_equal(cache_get(c, K(KEY_A, "01"), &after), 1);
	assert_int_equal(after.failures, 0);
	assert_null(after.last_error);
	cache_row_clear(&after);
	cache_close(&c);
}

static int purged_n;

static void
purged_cb(const struct stapler_key *key, void *arg)
{
	char key_hash[STAPLER_SHA1_HEX];

	stapler_key_hash_hex(key, key_hash);
	assert_string_equal(key_hash, KEY_A);
	purged_n++;
}

static void
test_delete_and_purge(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row row;
	long long total;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_sched(c, "01", 100, 1000);
	store_sched(c, "02", 100, 2000);
	store_sched(c, "03", 100, 3000);
	store_sched(c, "04", 100, 900);
	assert_int_equal(cache_delete(c, K(KEY_A, "03")), 1);
	assert_int_equal(cache_delete(c, K(KEY_A, "03")), 0);
	assert_int_equal(cache_get(c, K(KEY_A, "03"), &row), 0);
	purged_n = 0;
	/* Expired before 1500: 04 and 01, and at most one per call. */
	assert_int_equal(cache_purge_expired(c, 1500, 1, purged_cb, NULL), 1);
	assert_int_equal(cache_purge_expired(c, 1500, 10, purged_cb, NULL), 1);
	assert_int_equal(cache_purge_expired(c, 1500, 10, purged_cb, NULL), 0);
	assert_int_equal(purged_n, 2);
	assert_int_equal(cache_count(c, &total, NULL), 0);
	assert_int_equal(total, 1);
	assert_int_equal(cache_get(c, K(KEY_A, "02"), &row), 1);
	cache_row_clear(&row);
	cache_close(&c);
}

static void
test_spread_due(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_row row;
	char serial[8];

	db_path(path, sizeof(path));
	c = open_rw(path);
	for (int i = 0; i < 20; i++) {
		snprintf(serial, sizeof(serial), "%02X", i + 1);
		store_sched(c, serial, i < 10 ? 10 : 5000, 50000);
	}
	/* In slices: at most limit rows a call, each moved past now (not picked again). */
	assert_int_equal(cache_spread_due(c, 1000, 60, 4), 4);
	assert_int_equal(cache_spread_due(c, 1000, 60, 4), 4);
	assert_int_equal(cache_spread_due(c, 1000, 60, 4), 2);
	assert_int_equal(cache_spread_due(c, 1000, 60, 4), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(serial, sizeof(serial), "%02X", i + 1);
		assert_int_equal(cache_get(c, K(KEY_A, serial), &row), 1);
		if (i < 10) {
			assert_in_range(row.next_refresh_at, 1001, 1060);
		} else {
			assert_int_equal(row.next_refresh_at, 5000);
		}
		cache_row_clear(&row);
	}
	cache_close(&c);
}

static int
report_cb(const struct cache_report_entry *e, void *arg)
{
	char *seen = arg;

	snprintf(seen, STAPLER_SERIAL_HEX_MAX, "%s", e->serial);
	return 0;
}

/* staplerctl's "due" is the scheduler's: not the entries of expired certificates. */
static void
test_report_due_matches_scheduler(void **state)
{
	char path[600];
	struct cache *c;
	struct cache_refresh due[4];
	char listed[STAPLER_SERIAL_HEX_MAX] = "", due_serial[STAPLER_SERIAL_HEX_MAX];
	struct cache_report_filter f = { .due = 1, .now = 350 };
	struct cache_report_stats st;

	db_path(path, sizeof(path));
	c = open_rw(path);
	store_sched(c, "01", 100, 5000);
	store_sched(c, "02", 50, 340);       /* due, but the certificate expired */
	store_sched(c, "03", 400, 5000);     /* not due */
	assert_int_equal(cache_report_list(c, &f, report_cb, listed), 1);
	assert_string_equal(listed, "01");
	assert_int_equal(cache_due(c, 350, 4, due), 1);
	stapler_key_serial_hex(&due[0].key, due_serial);
	assert_string_equal(due_serial, listed);
	assert_int_equal(cache_report_stats(c, 350, &st), 0);
	assert_int_equal(st.due, 1);
	cache_close(&c);
}

/* What the warm start reads per row (cache_load_slice()) carries the whole key, the
 * parameters' encoding included: one certificate's NULL and absent rows load as two entries;
 * and the issuer's URLs are found under either encoding. */
static int
collect_loaded(const struct cache_load_row *r, void *arg)
{
	struct stapler_key *keys = arg;
	size_t i = 0;

	while (keys[i].serial_len != 0)
		i++;
	assert_true(i < 4);
	assert_int_equal(cache_row_key(&r->row, &keys[i]), 0);
	assert_true(r->der_len > 0);
	return 0;
}

static void
test_load_slice_keeps_key_forms(void **state)
{
	char path[600], *urls = NULL;
	struct cache *c;
	struct cache_issuer iss;
	struct stapler_key keys[4];
	long long after = 0;

	(void)state;
	db_path(path, sizeof(path));
	c = open_rw(path);
	make_issuer(&iss, KEY_A, "CN=Test CA");
	for (int pa = STAPLER_PARAMS_NULL; pa <= STAPLER_PARAMS_ABSENT; pa++) {
		struct cache_row row;

		make_row(&row, KEY_A, "7A", STAPLER_GOOD);
		row.hash_alg = STAPLER_HASH_SHA256;
		row.hash_params = (enum stapler_hash_params)pa;
		assert_int_equal(cache_store(c, &iss, &row), 0);
		cache_row_clear(&row);
	}
	memset(keys, 0, sizeof(keys));
	assert_int_equal(cache_load_slice(c, &after, 10, collect_loaded, keys), 2);
	assert_int_equal(keys[0].hash_alg, STAPLER_HASH_SHA256);
	assert_int_equal(keys[0].hash_params + keys[1].hash_params,
	    STAPLER_PARAMS_NULL + STAPLER_PARAMS_ABSENT);
	assert_false(stapler_key_equal(&keys[0], &keys[1]));
	assert_int_equal(cache_load_slice(c, &after, 10, collect_loaded, keys), 0);
	assert_int_equal(cache_issuer_urls(c, STAPLER_HASH_SHA256, iss.name_hash, iss.key_hash,
	    &urls), 1);
	free(urls);
	assert_int_equal(cache_issuer_urls(c, STAPLER_HASH_SHA1, iss.name_hash, iss.key_hash,
	    &urls), 0);
	cache_issuer_clear(&iss);
	cache_close(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_creates_schema),
		cmocka_unit_test(test_reopen_idempotent),
		cmocka_unit_test(test_close_null),
		cmocka_unit_test(test_roundtrip_good_nulls),
		cmocka_unit_test(test_roundtrip_revoked),
		cmocka_unit_test(test_upsert_replaces_keeps_created),
		cmocka_unit_test(test_used_at_written_with_the_row),
		cmocka_unit_test(test_same_serial_two_issuers),
		cmocka_unit_test(test_get_absent),
		cmocka_unit_test(test_get_issuer),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_foreach_reentry),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_due_order_limit_and_expired_certs),
		cmocka_unit_test(test_due_most_urgent_first),
		cmocka_unit_test(test_load_slice_keeps_key_forms),
		cmocka_unit_test(test_set_refresh_and_failure_keep_response),
		cmocka_unit_test(test_delete_and_purge),
		cmocka_unit_test(test_spread_due),
		cmocka_unit_test(test_report_due_matches_scheduler),
		cmocka_unit_test(test_store_rolls_back),
		cmocka_unit_test(test_readonly_missing),
		cmocka_unit_test(test_readonly_old_schema),
		cmocka_unit_test(test_migrate_from_v2),
		cmocka_unit_test(test_migrate_v5_certid_forms),
		cmocka_unit_test(test_recover_after_a_transaction_left_open),
		cmocka_unit_test(test_bad_row_is_not_transient),
		cmocka_unit_test(test_readonly_cannot_write),
		cmocka_unit_test(test_readonly_beside_writer),
		cmocka_unit_test(test_newer_schema_refused),
		cmocka_unit_test(test_status_check_constraint),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
