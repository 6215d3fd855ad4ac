/* Unit tests for events.c: stable names, ids fixed by what an event is about, the outbox
 * (idempotent insert, order, cursors, delivered marks, pruning), the CloudEvents JSON, the
 * HMAC-SHA256 signature (RFC 4231 vector), the hub's repeat suppression and its bound. */
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

#include <jansson.h>
#include <sqlite3.h>

#include "cache.h"
#include "config.h"
#include "events.h"
#include "log.h"

#define KEY_HASH "0123456789ABCDEF0123456789ABCDEF01234567"
#define NAME_HASH "00112233445566778899AABBCCDDEEFF00112233"

static char tmpdir[512];
static int dbseq;

static struct cache *
fresh_db(void)
{
	char path[600], err[256];
	struct cache *c;

	snprintf(path, sizeof(path), "%s/ev%d.db", tmpdir, ++dbseq);
	c = cache_open(path, CACHE_OPEN_RW, err, sizeof(err));
	assert_non_null(c);
	return c;
}

static struct stapler_key
key_of(const char *serial)
{
	struct stapler_key k;

	memset(&k, 0, sizeof(k));
	assert_int_equal(stapler_key_from_hex(&k, STAPLER_HASH_SHA1, NAME_HASH, KEY_HASH, serial), 0);
	return k;
}

static void
test_names_are_stable(void **state)
{
	enum event_type t;

	(void)state;
	assert_string_equal(outbox_type_name(EV_CERT_REVOKED), "cert_revoked");
	assert_string_equal(outbox_type_name(EV_CERT_WITHDRAWN), "cert_withdrawn");
	assert_string_equal(outbox_type_name(EV_CRL_OCSP_DISAGREE), "crl_ocsp_disagree");
	assert_string_equal(outbox_type_name(EV_WRITES_RECOVERED), "writes_recovered");
	assert_null(outbox_type_name(EV_TYPES));
	for (int i = 0; i < EV_TYPES; i++) {
		assert_int_equal(outbox_type_parse(outbox_type_name((enum event_type)i), &t), 0);
		assert_int_equal((int)t, i);
	}
	assert_int_equal(outbox_type_parse("nope", &t), -1);
	assert_true(outbox_type_is_revocation(EV_CERT_REVOKED));
	assert_true(outbox_type_is_revocation(EV_CERT_WITHDRAWN));
	assert_false(outbox_type_is_revocation(EV_UPSTREAM_FAILING));
}

static void
test_cert_ids_are_fixed_by_what_they_are_about(void **state)
{
	struct stapler_key a = key_of("1001"), b = key_of("1002");
	struct event_rec *e1 = outbox_rec_cert(EV_CERT_REVOKED, &a, 1700000000, 1, NULL);
	struct event_rec *e2 = outbox_rec_cert(EV_CERT_REVOKED, &a, 1700000000, 99, "\"x\":1");
	struct event_rec *e3 = outbox_rec_cert(EV_CERT_REVOKED, &a, 1700000001, 1, NULL);
	struct event_rec *e4 = outbox_rec_cert(EV_CERT_REVOKED, &b, 1700000000, 1, NULL);
	struct event_rec *e5 = outbox_rec_cert(EV_CERT_WITHDRAWN, &a, 1700000000, 1, NULL);
	struct event_rec *o1 = outbox_rec_other(EV_UPSTREAM_FAILING, "h:80", 5, NULL);
	struct event_rec *o2 = outbox_rec_other(EV_UPSTREAM_FAILING, "h:80", 5, NULL);
	json_t *j;

	(void)state;
	/* Raised again (a replay after a crash, a later time): the same id. */
	assert_string_equal(e1->id, e2->id);
	assert_int_equal(strlen(e1->id), EVENT_ID_HEX);
	assert_string_not_equal(e1->id, e3->id);
	assert_string_not_equal(e1->id, e4->id);
	assert_string_not_equal(e1->id, e5->id);
	/* Events about anything else are unique. */
	assert_string_not_equal(o1->id, o2->id);
	assert_string_equal(e1->subject, KEY_HASH "/1001");
	j = json_loads(e2->data, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "serial")), "1001");
	assert_string_equal(json_string_value(json_object_get(j, "issuer_key_hash")), KEY_HASH);
	assert_string_equal(json_string_value(json_object_get(j, "hash_alg")), "sha1");
	assert_int_equal(json_integer_value(json_object_get(j, "x")), 1);
	json_decref(j);
	j = json_loads(o1->data, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	outbox_rec_free(&e1);
	outbox_rec_free(&e2);
	outbox_rec_free(&e3);
	outbox_rec_free(&e4);
	outbox_rec_free(&e5);
	outbox_rec_free(&o1);
	outbox_rec_free(&o2);
	assert_null(o2);
}

struct collected {
	int n;
	long long seq[16];
	char id[16][EVENT_ID_HEX + 1];
	long long delivered[16];
};

static void
collect(const struct event_row *r, void *arg)
{
	struct collected *c = arg;

	c->seq[c->n] = r->seq;
	c->delivered[c->n] = r->delivered_at;
	snprintf(c->id[c->n], sizeof(c->id[0]), "%s", r->id);
	c->n++;
}

static int
insert(struct sqlite3 *db, void *arg)
{
	return outbox_insert(db, arg);
}

static void
test_outbox_insert_read_cursor_prune(void **state)
{
	struct cache *c = fresh_db();
	struct stapler_key k = key_of("AB");
	struct event_rec *ev[4];
	struct collected got = { 0 };
	long long max_seq, rows, cur;

	(void)state;
	for (int i = 0; i < 4; i++) {
		ev[i] = outbox_rec_cert(EV_CERT_REVOKED, &k, i, 10 + i, NULL);
		assert_int_equal(cache_tx(c, insert, ev[i]), 0);
	}
	/* The same event again changes nothing. */
	assert_int_equal(cache_tx(c, insert, ev[1]), 0);
	assert_int_equal(outbox_stats(cache_db(c), &max_seq, &rows), 0);
	assert_int_equal(rows, 4);
	assert_int_equal(max_seq, 4);
	assert_int_equal(outbox_read(cache_db(c), 0, 10, collect, &got), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(got.seq[i], i + 1);
		assert_string_equal(got.id[i], ev[i]->id);
		assert_int_equal(got.delivered[i], 0);
	}
	memset(&got, 0, sizeof(got));
	assert_int_equal(outbox_read(cache_db(c), 2, 1, collect, &got), 1);
	assert_int_equal(got.seq[0], 3);
	/* Cursors: absent is 0; they only move forward. */
	assert_int_equal(outbox_cursor_get(cache_db(c), "http://a/", &cur), 0);
	assert_int_equal(cur, 0);
	assert_int_equal(outbox_cursor_set(cache_db(c), "http://a/", 3), 0);
	assert_int_equal(outbox_cursor_set(cache_db(c), "http://a/", 2), 0);
	assert_int_equal(outbox_cursor_get(cache_db(c), "http://a/", &cur), 0);
	assert_int_equal(cur, 3);
	assert_int_equal(outbox_mark_delivered(cache_db(c), 0, 3, 777), 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(outbox_read(cache_db(c), 0, 10, collect, &got), 4);
	assert_int_equal(got.delivered[2], 777);
	assert_int_equal(got.delivered[3], 0);
	/* Pruning keeps undelivered rows whatever the bound. */
	assert_int_equal(outbox_prune(cache_db(c), 1), 3);
	memset(&got, 0, sizeof(got));
	assert_int_equal(outbox_read(cache_db(c), 0, 10, collect, &got), 1);
	assert_int_equal(got.seq[0], 4);
	for (int i = 0; i < 4; i++)
		outbox_rec_free(&ev[i]);
	cache_close(&c);
}

static void
test_cloudevent_json(void **state)
{
	struct event_row r = { 0 };
	char *s;
	json_t *j;

	(void)state;
	r.seq = 42;
	r.id = "0123456789abcdef0123456789abcdef";
	r.type = "cert_revoked";
	r.subject = KEY_HASH "/1001";
	r.time = 1767225600;     /* 2026-01-01T00:00:00Z */
	r.data = "{\"serial\":\"1001\",\"note\":\"a \\\"quote\\\"\"}";
	s = outbox_cloudevent(&r, "urn:staplerd:test");
	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "specversion")), "1.0");
	assert_string_equal(json_string_value(json_object_get(j, "id")), r.id);
	assert_string_equal(json_string_value(json_object_get(j, "source")), "urn:staplerd:test");
	assert_string_equal(json_string_value(json_object_get(j, "type")), "io.staplerd.cert_revoked");
	assert_string_equal(json_string_value(json_object_get(j, "subject")), r.subject);
	assert_string_equal(json_string_value(json_object_get(j, "time")), "2026-01-01T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(j, "datacontenttype")),
	    "application/json");
	assert_string_equal(json_string_value(json_object_get(j, "sequence")),
	    "00000000000000000042");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "note")),
	    "a \"quote\"");
	json_decref(j);
	free(s);
}

static void
test_hmac_rfc4231(void **state)
{
	char sig[OUTBOX_SIG_LEN];
	static const char msg[] = "what do ya want for nothing?";

	(void)state;
	assert_int_equal(outbox_sign("Jefe", (const unsigned char *)msg, strlen(msg), sig), 0);
	assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
	    "64ec3843");
}

static void
test_hub_repeats_and_bound(void **state)
{
	struct stapler_config *cfg = config_default();
	struct events *hub;
	struct stapler_key k = key_of("CD");
	struct event_rec *a, *b, *rev;
	struct events_stats st;

	(void)state;
	assert_non_null(cfg);
	cfg->events_outbox_max = 100;
	hub = events_new(cfg);
	a = outbox_rec_cert(EV_STAPLE_DANGER, &k, 5, 1, NULL);
	b = outbox_rec_cert(EV_STAPLE_DANGER, &k, 5, 2, NULL);
	assert_int_equal(events_admit(hub, a), 1);
	/* The same transition seen again (the next failed retry): not raised twice. */
	assert_int_equal(events_admit(hub, b), 0);
	outbox_rec_free(&a);
	outbox_rec_free(&b);
	/* A full outbox drops what is not a revocation, and counts it. */
	events_set_outbox_rows(hub, 100);
	a = outbox_rec_cert(EV_STAPLE_EXPIRED, &k, 6, 1, NULL);
	rev = outbox_rec_cert(EV_CERT_REVOKED, &k, 6, 1, NULL);
	assert_int_equal(events_admit(hub, a), 0);
	assert_int_equal(events_admit(hub, rev), 1);
	events_stats(hub, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.raised[EV_CERT_REVOKED], 1);
	assert_int_equal(st.raised[EV_STAPLE_DANGER], 1);
	assert_int_equal(st.raised[EV_STAPLE_EXPIRED], 0);
	outbox_rec_free(&a);
	outbox_rec_free(&rev);
	events_free(&hub);
	assert_null(hub);
	config_free(&cfg);
}

static int
group_setup(void **state)
{
	const char *base = getenv("STAPLER_TEST_TMP");
	int n;

	(void)state;
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	n = snprintf(tmpdir, sizeof(tmpdir), "%s/test_events.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(tmpdir) || mkdtemp(tmpdir) == NULL)
		return -1;
	log_set_level(LOG_LVL_ERROR);
	return 0;
}

static int
group_teardown(void **state)
{
	char path[1024];
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	(void)state;
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_are_stable),
		cmocka_unit_test(test_cert_ids_are_fixed_by_what_they_are_about),
		cmocka_unit_test(test_outbox_insert_read_cursor_prune),
		cmocka_unit_test(test_cloudevent_json),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_hub_repeats_and_bound),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
