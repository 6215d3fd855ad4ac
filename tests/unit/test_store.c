/* Unit tests for store.c (the in-memory staple index and the seen-digest map, at injected
 * times) and table.c (open addressing with backward-shift deletion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ocsp.h"
#include "store.h"
#include "table.h"
#include "util.h"

#define HASH_A "0123456789ABCDEF0123456789ABCDEF01234567"
#define HASH_B "FEDCBA9876543210FEDCBA9876543210FEDCBA98"

/* Times far from the real clock, so nothing here can pass by reading the clock. */
#define T0 ((time_t)2000000000)
#define DAY 86400

static struct stapler_key
key_of(const char *hash, const char *serial)
{
	struct stapler_key k;

	assert_int_equal(stapler_key_from_hex(&k, STAPLER_HASH_SHA1, hash, hash, serial), 0);
	return k;
}

static struct staple *
make(const struct stapler_key *k, enum stapler_cert_status st, time_t this_update,
    time_t next_update, const char *der)
{
	struct staple *s = staple_new(k, st, this_update, next_update, this_update + 1,
	    this_update + 2, (const unsigned char *)der, strlen(der));

	assert_non_null(s);
	return s;
}

static void
test_staple_new_headers(void **state)
{
	struct stapler_key k = key_of(HASH_A, "4D4554455231");
	struct staple *s = make(&k, STAPLER_REVOKED, 784111777, 784111777 + 7 * DAY, "DER bytes");
	char etag[STAPLE_ETAG_LEN + 1];

	assert_true(stapler_key_equal(&s->key, &k));
	assert_int_equal(s->status, STAPLER_REVOKED);
	assert_int_equal(s->this_update, 784111777);
	assert_int_equal(s->next_update, 784111777 + 7 * DAY);
	assert_int_equal(s->produced_at, 784111778);
	assert_int_equal(s->fetched_at, 784111779);
	assert_int_equal(s->der_len, 9);
	assert_memory_equal(s->der, "DER bytes", 9);
	/* A strong validator: a quoted 128-bit hex digest. */
	staple_etag(s, etag);
	assert_int_equal(strlen(etag), 34);
	assert_int_equal(etag[0], '"');
	assert_int_equal(etag[33], '"');
	assert_int_equal(strspn(etag + 1, "0123456789ABCDEF"), 32);
	/* What an answer needs first is at the front: the DER starts within 144 bytes. */
	assert_true(offsetof(struct staple, der) <= 144);
	free(s);
}

/* The key's form (hash algorithm and parameters' encoding) shares its first byte, so the key
 * stays 75 bytes, and a key stored before hash_params existed (the revocation journal keeps
 * struct stapler_key as it is; that byte was the algorithm, 0 or 1) reads as NULL parameters.
 * Keys differing only in the form are different keys, in the index too. */
static void
test_key_form_byte(void **state)
{
	struct stapler_key a, b;
	struct store *st = store_new();
	struct staple *sa, *sb;
	unsigned char raw[sizeof(struct stapler_key)];

	(void)state;
	assert_int_equal(sizeof(struct stapler_key), 75);
	memset(raw, 0, sizeof(raw));
	raw[0] = 1;
	memcpy(&a, raw, sizeof(a));
	assert_int_equal(a.hash_alg, STAPLER_HASH_SHA256);
	assert_int_equal(a.hash_params, STAPLER_PARAMS_NULL);
	a.hash_alg = STAPLER_HASH_SHA512;
	a.hash_params = STAPLER_PARAMS_ABSENT;
	assert_int_equal(a.hash_alg, STAPLER_HASH_SHA512);
	assert_int_equal(a.hash_params, STAPLER_PARAMS_ABSENT);
	/* two keys, one CertID apart in the parameters only */
	memset(&a, 0, sizeof(a));
	a.hash_alg = STAPLER_HASH_SHA256;
	a.serial_len = 1;
	a.serial[0] = 0x42;
	b = a;
	b.hash_params = STAPLER_PARAMS_ABSENT;
	assert_false(stapler_key_equal(&a, &b));
	assert_non_null(st);
	sa = staple_new(&a, STAPLER_GOOD, 1000, 2000, 1000, 1000, (const unsigned char *)"null", 4);
	sb = staple_new(&b, STAPLER_GOOD, 1000, 2000, 1000, 1000, (const unsigned char *)"absent",
	    6);
	assert_non_null(sa);
	assert_non_null(sb);
	assert_int_equal(store_put(st, sa), 0);
	assert_int_equal(store_put(st, sb), 0);
	assert_ptr_equal(store_get(st, &a), sa);
	assert_ptr_equal(store_get(st, &b), sb);
	store_free(&st);
}

/* The ETag depends on the bytes served and on nothing else. */
static void
test_etag_per_bytes(void **state)
{
	struct stapler_key a = key_of(HASH_A, "01"), b = key_of(HASH_B, "02");
	struct staple *s1 = make(&a, STAPLER_GOOD, T0, T0 + DAY, "response one");
	struct staple *s2 = make(&b, STAPLER_REVOKED, T0 + 50, T0 + 9 * DAY, "response one");
	struct staple *s3 = make(&a, STAPLER_GOOD, T0, T0 + DAY, "response two");
	struct staple *s4 = make(&a, STAPLER_GOOD, T0, T0 + DAY, "response onf");

	char e1[STAPLE_ETAG_LEN + 1], e2[STAPLE_ETAG_LEN + 1], e3[STAPLE_ETAG_LEN + 1],
	    e4[STAPLE_ETAG_LEN + 1], again[STAPLE_ETAG_LEN + 1];

	assert_false(s1->etag_set);
	staple_etag(s1, e1);
	staple_etag(s2, e2);
	staple_etag(s3, e3);
	staple_etag(s4, e4);
	assert_true(s1->etag_set);
	staple_etag(s1, again);
	assert_string_equal(e1, again);
	assert_string_equal(e1, e2);
	assert_string_not_equal(e1, e3);
	assert_string_not_equal(e1, e4);
	free(s1);
	free(s2);
	free(s3);
	free(s4);
}

static void
test_servable(void **state)
{
	struct stapler_key k = key_of(HASH_A, "01");
	time_t tu = T0, nu = T0 + 7 * DAY;
	struct staple *s = make(&k, STAPLER_GOOD, tu, nu, "x");

	assert_true(staple_servable(s, tu));
	assert_true(staple_servable(s, tu + DAY));
	/* Stops STORE_EXPIRY_MARGIN before nextUpdate, not at it. */
	assert_true(staple_servable(s, nu - STORE_EXPIRY_MARGIN - 1));
	assert_false(staple_servable(s, nu - STORE_EXPIRY_MARGIN));
	assert_false(staple_servable(s, nu - 1));
	assert_false(staple_servable(s, nu));
	assert_false(staple_servable(s, nu + DAY));
	/* thisUpdate slightly ahead of our clock is tolerated up to OCSP_SKEW. */
	assert_true(staple_servable(s, tu - OCSP_SKEW));
	assert_false(staple_servable(s, tu - OCSP_SKEW - 1));
	free(s);

	/* A validity shorter than the margin is never servable. */
	s = make(&k, STAPLER_GOOD, tu, tu + STORE_EXPIRY_MARGIN, "x");
	assert_false(staple_servable(s, tu));
	free(s);
}

static void
test_max_age(void **state)
{
	struct stapler_key k = key_of(HASH_A, "01");
	time_t nu = T0 + 7 * DAY;
	struct staple *s = make(&k, STAPLER_GOOD, T0, nu, "x");

	/* Bounded by nextUpdate minus the margin: a cache never holds it past our own cutoff. */
	assert_int_equal(staple_max_age(s, T0), 7 * DAY - STORE_EXPIRY_MARGIN);
	assert_int_equal(staple_max_age(s, nu - STORE_EXPIRY_MARGIN - 100), 100);
	assert_int_equal(staple_max_age(s, nu - STORE_EXPIRY_MARGIN - 1), 1);
	assert_int_equal(staple_max_age(s, nu - STORE_EXPIRY_MARGIN), 0);
	assert_int_equal(staple_max_age(s, nu), 0);
	assert_int_equal(staple_max_age(s, nu + 365 * DAY), 0);
	free(s);
}

static void
test_put_get_replace_remove(void **state)
{
	struct store *st = store_new();
	struct stapler_key a = key_of(HASH_A, "4D45544552000001");
	struct stapler_key a_other_issuer = key_of(HASH_B, "4D45544552000001");
	struct stapler_key a_negative = key_of(HASH_A, "-4D45544552000001");
	struct stapler_key a_leading_zero = key_of(HASH_A, "004D45544552000001");
	const struct staple *got;
	size_t counts[3];

	assert_non_null(st);
	assert_null(store_get(st, &a));
	assert_int_equal(store_remove(st, &a), 0);
	assert_int_equal(store_count(st), 0);

	assert_int_equal(store_put(st, make(&a, STAPLER_GOOD, T0, T0 + DAY, "first")), 0);
	got = store_get(st, &a);
	assert_non_null(got);
	assert_memory_equal(got->der, "first", 5);
	/* The same magnitude with a leading zero octet is the same certificate... */
	assert_ptr_equal(store_get(st, &a_leading_zero), got);
	/* ...but the same serial from another issuer, or negative, is not (docs/contract.md §6). */
	assert_null(store_get(st, &a_other_issuer));
	assert_null(store_get(st, &a_negative));

	assert_int_equal(store_put(st, make(&a_other_issuer, STAPLER_UNKNOWN, T0, T0 + DAY, "other")), 0);
	assert_int_equal(store_count(st), 2);

	/* Replacing keeps one entry per key and frees the old one (ASan checks). */
	assert_int_equal(store_put(st, make(&a, STAPLER_REVOKED, T0 + 10, T0 + 2 * DAY, "second")), 0);
	assert_int_equal(store_count(st), 2);
	got = store_get(st, &a);
	assert_non_null(got);
	assert_int_equal(got->status, STAPLER_REVOKED);
	assert_int_equal(got->der_len, 6);
	assert_memory_equal(got->der, "second", 6);
	assert_memory_equal(store_get(st, &a_other_issuer)->der, "other", 5);

	store_count_status(st, counts);
	assert_int_equal(counts[STAPLER_GOOD], 0);
	assert_int_equal(counts[STAPLER_REVOKED], 1);
	assert_int_equal(counts[STAPLER_UNKNOWN], 1);

	assert_int_equal(store_remove(st, &a), 1);
	assert_null(store_get(st, &a));
	assert_int_equal(store_remove(st, &a), 0);
	assert_int_equal(store_count(st), 1);
	assert_non_null(store_get(st, &a_other_issuer));
	store_free(&st);
	assert_null(st);
	store_free(&st);
	store_free(NULL);
}

/* The warm start's put: what is held stays (newer than a row), a new key is put, the counts
 * follow only what was put (the staple not put is freed: ASan checks). */
static void
test_put_new_keeps_what_is_held(void **state)
{
	struct store *st = store_new();
	struct stapler_key a = key_of(HASH_A, "4D45544552000001");
	struct stapler_key b = key_of(HASH_A, "4D45544552000002");
	size_t counts[3];

	assert_non_null(st);
	assert_int_equal(store_put(st, make(&a, STAPLER_REVOKED, T0 + 10, T0 + DAY, "revoked")), 0);
	assert_int_equal(store_put_new(st, make(&a, STAPLER_GOOD, T0, T0 + DAY, "good row")), 0);
	assert_int_equal(store_get(st, &a)->status, STAPLER_REVOKED);
	assert_memory_equal(store_get(st, &a)->der, "revoked", 7);
	assert_int_equal(store_count(st), 1);
	assert_int_equal(store_bytes(st), 7);
	assert_int_equal(store_put_new(st, make(&b, STAPLER_GOOD, T0, T0 + DAY, "good")), 1);
	assert_int_equal(store_count(st), 2);
	assert_int_equal(store_bytes(st), 11);
	store_count_status(st, counts);
	assert_int_equal(counts[STAPLER_GOOD], 1);
	assert_int_equal(counts[STAPLER_REVOKED], 1);
	store_free(&st);
}

/* Thousands of staples stay findable through growth, replacement and removal. */
static void
test_many_staples(void **state)
{
	enum { N = 5000 };
	struct store *st = store_new();
	char serial[16], der[32];
	size_t counts[3];

	assert_non_null(st);
	for (int i = 0; i < N; i++) {
		struct stapler_key k;

		snprintf(serial, sizeof(serial), "%06X", i + 1);
		snprintf(der, sizeof(der), "der-%d", i);
		k = key_of(i % 2 ? HASH_A : HASH_B, serial);
		assert_int_equal(store_put(st, make(&k, (enum stapler_cert_status)(i % 3), T0,
		    T0 + DAY, der)), 0);
	}
	assert_int_equal(store_count(st), N);
	store_count_status(st, counts);
	assert_int_equal(counts[0] + counts[1] + counts[2], N);
	assert_int_equal(counts[STAPLER_GOOD], (N + 2) / 3);
	for (int i = 0; i < N; i += 3) {
		struct stapler_key k;

		snprintf(serial, sizeof(serial), "%06X", i + 1);
		k = key_of(i % 2 ? HASH_A : HASH_B, serial);
		assert_int_equal(store_remove(st, &k), 1);
	}
	for (int i = 0; i < N; i++) {
		const struct staple *s;
		struct stapler_key k;

		snprintf(serial, sizeof(serial), "%06X", i + 1);
		snprintf(der, sizeof(der), "der-%d", i);
		k = key_of(i % 2 ? HASH_A : HASH_B, serial);
		s = store_get(st, &k);
		if (i % 3 == 0) {
			assert_null(s);
		} else {
			assert_non_null(s);
			assert_int_equal(s->der_len, strlen(der));
			assert_memory_equal(s->der, der, s->der_len);
		}
	}
	store_free(&st);
}

static void
digest_of(unsigned char d[STORE_DIGEST_LEN], unsigned int n)
{
	memset(d, 0, STORE_DIGEST_LEN);
	memcpy(d, &n, sizeof(n));
	d[STORE_DIGEST_LEN - 1] = 0x5a;
}

static void
test_seen(void **state)
{
	struct store *st = store_new();
	struct stapler_key a = key_of(HASH_A, "01"), b = key_of(HASH_B, "02");
	unsigned char d1[STORE_DIGEST_LEN], d2[STORE_DIGEST_LEN];
	const struct stapler_key *got;

	assert_non_null(st);
	digest_of(d1, 1);
	digest_of(d2, 2);
	assert_null(store_seen_get(st, d1, T0));

	store_seen_put(st, d1, &a, T0 + 100);
	got = store_seen_get(st, d1, T0);
	assert_non_null(got);
	assert_true(stapler_key_equal(got, &a));
	assert_null(store_seen_get(st, d2, T0));
	assert_non_null(store_seen_get(st, d1, T0 + 99));

	/* Putting the same digest again replaces its key and lifetime. */
	store_seen_put(st, d1, &b, T0 + 200);
	got = store_seen_get(st, d1, T0 + 150);
	assert_non_null(got);
	assert_true(stapler_key_equal(got, &b));

	/* At valid_until the memory is gone, and stays gone (it was dropped, not skipped). */
	assert_null(store_seen_get(st, d1, T0 + 200));
	assert_null(store_seen_get(st, d1, T0));

	store_seen_put(st, d1, &a, T0 + 100);
	store_seen_put(st, d2, &b, T0 + 100);
	store_seen_clear(st);
	assert_null(store_seen_get(st, d1, T0));
	assert_null(store_seen_get(st, d2, T0));
	/* Usable after a clear. */
	store_seen_put(st, d2, &b, T0 + 100);
	assert_non_null(store_seen_get(st, d2, T0));

	/* The seen map is separate from the staples. */
	assert_int_equal(store_count(st), 0);
	store_free(&st);
}

/* At STORE_SEEN_MAX digests, new ones are not remembered; known ones still update. */
static void
test_seen_bound(void **state)
{
	struct store *st = store_new();
	struct stapler_key a = key_of(HASH_A, "01"), b = key_of(HASH_B, "02");
	unsigned char d[STORE_DIGEST_LEN];
	const struct stapler_key *got;

	assert_non_null(st);
	for (unsigned int i = 0; i < STORE_SEEN_MAX; i++) {
		digest_of(d, i);
		store_seen_put(st, d, &a, T0 + 100);
	}
	digest_of(d, STORE_SEEN_MAX);
	store_seen_put(st, d, &a, T0 + 100);
	assert_null(store_seen_get(st, d, T0));

	digest_of(d, 7);
	store_seen_put(st, d, &b, T0 + 100);
	got = store_seen_get(st, d, T0);
	assert_non_null(got);
	assert_true(stapler_key_equal(got, &b));

	/* An expired digest leaves on lookup, which makes room again. */
	digest_of(d, 8);
	store_seen_put(st, d, &a, T0 + 10);
	assert_null(store_seen_get(st, d, T0 + 10));
	digest_of(d, STORE_SEEN_MAX + 1);
	store_seen_put(st, d, &a, T0 + 100);
	assert_non_null(store_seen_get(st, d, T0));
	store_free(&st);
}

/* table.c with entries that are plain ints and hash functions chosen to collide. */
struct ent {
	int k;
};

static int
ent_match(const void *entry, const void *key)
{
	return ((const struct ent *)entry)->k == *(const int *)key;
}

static const void *
ent_key(const void *entry)
{
	return &((const struct ent *)entry)->k;
}

/* Every key in one probe run. */
static uint64_t
hash_same(const void *key, uint64_t seed)
{
	return 5;
}

/* Runs that start at the last slots and wrap around to slot 0. */
static uint64_t
hash_wrap(const void *key, uint64_t seed)
{
	return UINT64_MAX - (uint64_t)(*(const int *)key % 5);
}

/* Short clusters next to each other, so runs of different homes interleave. */
static uint64_t
hash_cluster(const void *key, uint64_t seed)
{
	return (uint64_t)(*(const int *)key / 3) * 2;
}

static uint64_t
hash_fnv(const void *key, uint64_t seed)
{
	return table_fnv(TABLE_FNV_BASIS ^ seed, key, sizeof(int));
}

/* Checks that exactly the keys marked present are found, with their own entries. */
static void
check_table(const struct table *t, struct ent *ents, const char *present, int n)
{
	size_t count = 0;

	for (int i = 0; i < n; i++) {
		void *e = table_get(t, &ents[i].k, 42);

		if (present[i]) {
			if (e != &ents[i])
				fail_msg("key %d lost", ents[i].k);
			count++;
		} else if (e != NULL) {
			fail_msg("key %d found after removal", ents[i].k);
		}
	}
	assert_int_equal(t->count, count);
}

static void
table_churn(uint64_t (*hash)(const void *, uint64_t), int n)
{
	struct table t = { .hash = hash, .match = ent_match, .key_of = ent_key };
	struct ent *ents = calloc((size_t)n, sizeof(*ents));
	char *present = calloc((size_t)n, 1);
	unsigned int rnd = 12345;
	void *old;

	assert_non_null(ents);
	assert_non_null(present);
	for (int i = 0; i < n; i++) {
		ents[i].k = i * 7 + 1;
		assert_int_equal(table_put(&t, &ents[i], 42, &old), 0);
		assert_null(old);
		present[i] = 1;
	}
	check_table(&t, ents, present, n);
	/* Remove in a scrambled order, checking everything after each removal. */
	for (int round = 0; round < n; round++) {
		int i;

		rnd = rnd * 1103515245u + 12345u;
		i = (int)((rnd >> 8) % (unsigned int)n);
		if (present[i]) {
			assert_ptr_equal(table_remove(&t, &ents[i].k, 42), &ents[i]);
			present[i] = 0;
		} else {
			assert_null(table_remove(&t, &ents[i].k, 42));
			assert_int_equal(table_put(&t, &ents[i], 42, &old), 0);
			assert_null(old);
			present[i] = 1;
		}
		check_table(&t, ents, present, n);
	}
	/* Then empty it. */
	for (int i = 0; i < n; i++) {
		if (present[i]) {
			assert_ptr_equal(table_remove(&t, &ents[i].k, 42), &ents[i]);
			present[i] = 0;
		}
	}
	check_table(&t, ents, present, n);
	assert_int_equal(t.count, 0);
	table_clear(&t, 0);
	assert_null(t.slot);
	free(present);
	free(ents);
}

static void
test_table_one_run(void **state)
{
	table_churn(hash_same, 200);
}

static void
test_table_wraparound(void **state)
{
	table_churn(hash_wrap, 40);
	table_churn(hash_wrap, 300);
}

static void
test_table_clusters(void **state)
{
	table_churn(hash_cluster, 40);
	table_churn(hash_cluster, 1000);
}

static void
test_table_fnv(void **state)
{
	table_churn(hash_fnv, 3000);
}

static void
test_table_replace(void **state)
{
	struct table t = { .hash = hash_same, .match = ent_match, .key_of = ent_key };
	struct ent a = { 1 }, b = { 2 }, a2 = { 1 };
	void *old = &b;

	assert_null(table_get(&t, &a.k, 0));
	assert_null(table_remove(&t, &a.k, 0));
	assert_int_equal(table_put(&t, &a, 0, &old), 0);
	assert_null(old);
	assert_int_equal(table_put(&t, &b, 0, &old), 0);
	assert_int_equal(table_put(&t, &a2, 0, &old), 0);
	assert_ptr_equal(old, &a);
	assert_int_equal(t.count, 2);
	assert_ptr_equal(table_get(&t, &a.k, 0), &a2);
	assert_ptr_equal(table_get(&t, &b.k, 0), &b);
	table_clear(&t, 0);
	assert_int_equal(t.count, 0);
	assert_int_equal(t.cap, 0);
	assert_null(table_get(&t, &b.k, 0));
}

/* Every table's seed comes from table_seed(): random, so two differ (the clock alone, the old
 * fallback of some tables, would repeat within a second). */
static void
test_table_seed(void **state)
{
	uint64_t a = table_seed(), b = table_seed();

	(void)state;
	assert_true(a != b);
	assert_true(a != 0 || b != 0);
}

static void
count_one(const struct staple *s, void *arg)
{
	(void)s;
	(*(size_t *)arg)++;
}

/* A pass in slices visits every staple once when the table holds still, whatever the slice,
 * and says when it reached the end (the /healthz pass at ten million runs this way). */
static void
test_foreach_slice(void **state)
{
	struct store *st = store_new();
	size_t whole = 0;

	(void)state;
	assert_non_null(st);
	for (int i = 0; i < 1000; i++) {
		char serial[8];
		struct stapler_key k;

		snprintf(serial, sizeof(serial), "%04X", i + 1);
		k = key_of("00112233445566778899AABBCCDDEEFF00112233", serial);
		assert_int_equal(store_put(st, make(&k, STAPLER_GOOD, 1000, 2000, "der")), 0);
	}
	store_foreach(st, count_one, &whole);
	assert_int_equal(whole, 1000);
	for (size_t slice = 1; slice <= 4096; slice *= 4) {
		size_t cursor = 0, seen = 0, calls = 0;
		int done = 0;

		while (!done) {
			done = store_foreach_slice(st, &cursor, slice, count_one, &seen);
			calls++;
			assert_true(calls < 100000);
		}
		assert_int_equal(seen, 1000);
		assert_int_equal(cursor, 0);
		if (slice >= 4096)
			assert_int_equal(calls, 1);
	}
	store_free(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_seed),
		cmocka_unit_test(test_foreach_slice),
		cmocka_unit_test(test_staple_new_headers),
		cmocka_unit_test(test_key_form_byte),
		cmocka_unit_test(test_etag_per_bytes),
		cmocka_unit_test(test_servable),
		cmocka_unit_test(test_max_age),
		cmocka_unit_test(test_put_get_replace_remove),
		cmocka_unit_test(test_put_new_keeps_what_is_held),
		cmocka_unit_test(test_many_staples),
		cmocka_unit_test(test_seen),
		cmocka_unit_test(test_seen_bound),
		cmocka_unit_test(test_table_one_run),
		cmocka_unit_test(test_table_wraparound),
		cmocka_unit_test(test_table_clusters),
		cmocka_unit_test(test_table_fnv),
		cmocka_unit_test(test_table_replace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
