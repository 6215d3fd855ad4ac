/* The in-memory staple index: staples by (issuer key hash, serial) with headers prepared, and
 * the digests of request bodies already checked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ocsp.h"
#include "table.h"
#include "store.h"
#include "util.h"

struct seen {
	unsigned char digest[STORE_DIGEST_LEN];
	struct stapler_key key;
	time_t valid_until;
};

struct store {
	uint64_t seed;  /* keeps bucket placement unpredictable to submitters */
	struct table staples;
	struct table seen;
	size_t by_status[3];   /* staples per status, kept on put/remove: /healthz reads it */
	size_t bytes;          /* DER bytes of the staples: bounded by [cache] max_bytes */
};

static int
staple_match(const void *entry, const void *key)
{
	return stapler_key_equal(&((const struct staple *)entry)->key, key);
}

static const void *
staple_key_of(const void *entry)
{
	return &((const struct staple *)entry)->key;
}

static uint64_t
digest_hash(const void *k, uint64_t seed)
{
	return table_fnv(TABLE_FNV_BASIS ^ seed, k, STORE_DIGEST_LEN);
}

static int
seen_match(const void *entry, const void *key)
{
	return memcmp(((const struct seen *)entry)->digest, key, STORE_DIGEST_LEN) == 0;
}

static const void *
seen_key_of(const void *entry)
{
	return ((const struct seen *)entry)->digest;
}

struct store *
store_new(void)
{
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->seed = table_seed();
	s->staples.hash = table_key_hash;
	s->staples.match = staple_match;
	s->staples.key_of = staple_key_of;
	s->seen.hash = digest_hash;
	s->seen.match = seen_match;
	s->seen.key_of = seen_key_of;
	return s;
}

void
store_free(struct store **sp)
{
	struct store *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	table_clear(&s->staples, 1);
	table_clear(&s->seen, 1);
	free(s);
	*sp = NULL;
}

struct staple *
staple_new(const struct stapler_key *key, enum stapler_cert_status status, time_t this_update,
    time_t next_update, time_t produced_at, time_t fetched_at, const unsigned char *der,
    size_t der_len)
{
	struct staple *s;

	if (der_len > UINT32_MAX || (s = malloc(sizeof(*s) + der_len)) == NULL)
		return NULL;
	s->key = *key;
	s->status = (unsigned char)status;
	s->this_update = this_update;
	s->next_update = next_update;
	s->produced_at = produced_at;
	s->fetched_at = fetched_at;
	s->refresh_at = 0;
	s->used_at = fetched_at;
	s->der_len = (uint32_t)der_len;
	s->etag_set = 0;
	s->withdrawn = 0;
	memcpy(s->der, der, der_len);
	return s;
}

void
staple_etag(const struct staple *s, char out[STAPLE_ETAG_LEN + 1])
{
	if (!s->etag_set) {
		struct staple *w = (struct staple *)(uintptr_t)s;
		unsigned char md[32];

		/* A strong validator: the first 128 bits of SHA-256 over the exact bytes served.
		 * Should OpenSSL fail, the zero validator matches no client's. */
		if (util_sha256(s->der, s->der_len, md) < 0)
			memset(md, 0, sizeof(md));
		memcpy(w->etag, md, STAPLE_ETAG_BYTES);
		w->etag_set = 1;
	}
	out[0] = '"';
	util_hex(s->etag, STAPLE_ETAG_BYTES, out + 1);
	out[STAPLE_ETAG_LEN - 1] = '"';
	out[STAPLE_ETAG_LEN] = '\0';
}

int
staple_servable(const struct staple *s, time_t now)
{
	return now < s->next_update - STORE_EXPIRY_MARGIN && now >= s->this_update - OCSP_SKEW &&
	    !s->withdrawn;
}

long
staple_max_age(const struct staple *s, time_t now)
{
	time_t left = s->next_update - STORE_EXPIRY_MARGIN - now;

	if (s->refresh_at != 0) {
		time_t until = s->refresh_at > now ? s->refresh_at - now : STORE_MAX_AGE_OVERDUE;

		if (until < left)
			left = until;
	}
	return left > 0 ? (long)left : 0;
}

int
store_put(struct store *store, struct staple *s)
{
	void *old;

	if (table_put(&store->staples, s, store->seed, &old) < 0) {
		free(s);
		return -1;
	}
	if (old != NULL && (unsigned)((struct staple *)old)->status < 3)
		store->by_status[((struct staple *)old)->status]--;
	if (old != NULL)
		store->bytes -= ((struct staple *)old)->der_len;
	if ((unsigned)s->status < 3)
		store->by_status[s->status]++;
	store->bytes += s->der_len;
	free(old);
	return 0;
}

int
store_put_new(struct store *store, struct staple *s)
{
	int rc = table_put_new(&store->staples, s, store->seed);

	if (rc != 0) {
		free(s);
		return rc < 0 ? -1 : 0;
	}
	if ((unsigned)s->status < 3)
		store->by_status[s->status]++;
	store->bytes += s->der_len;
	return 1;
}

int
store_reserve(struct store *store, size_t n)
{
	return table_reserve(&store->staples, n, store->seed);
}

const struct staple *
store_get(const struct store *store, const struct stapler_key *key)
{
	return table_get(&store->staples, key, store->seed);
}

int
store_remove(struct store *store, const struct stapler_key *key)
{
	struct staple *old = table_remove(&store->staples, key, store->seed);

	if (old != NULL && (unsigned)old->status < 3)
		store->by_status[old->status]--;
	if (old != NULL)
		store->bytes -= old->der_len;
	free(old);
	return old != NULL;
}

size_t
store_bytes(const struct store *store)
{
	return store->bytes;
}

void
store_used(const struct staple *s, time_t now)
{
	if (now > s->used_at)
		((struct staple *)(uintptr_t)s)->used_at = now;
}

size_t
store_count(const struct store *store)
{
	return store->staples.count;
}

void
store_count_status(const struct store *store, size_t counts[3])
{
	memcpy(counts, store->by_status, sizeof(store->by_status));
}

void
store_foreach(const struct store *store, void (*cb)(const struct staple *s, void *arg), void *arg)
{
	for (size_t i = 0; i < store->staples.cap; i++) {
		if (store->staples.slot[i] != NULL)
			cb(store->staples.slot[i], arg);
	}
}

int
store_foreach_slice(const struct store *store, size_t *cursor, size_t max,
    void (*cb)(const struct staple *s, void *arg), void *arg)
{
	size_t cap = store->staples.cap, i = *cursor < cap ? *cursor : cap;
	size_t end = cap - i > max ? i + max : cap;

	for (; i < end; i++) {
		if (store->staples.slot[i] != NULL)
			cb(store->staples.slot[i], arg);
	}
	if (i >= cap) {
		*cursor = 0;
		return 1;
	}
	*cursor = i;
	return 0;
}

void
store_seen_put(struct store *store, const unsigned char digest[STORE_DIGEST_LEN],
    const struct stapler_key *key, time_t valid_until)
{
	struct seen *e;
	void *old;

	if (store->seen.count >= STORE_SEEN_MAX && table_get(&store->seen, digest, store->seed) == NULL)
		return;
	if ((e = malloc(sizeof(*e))) == NULL)
		return;
	memcpy(e->digest, digest, STORE_DIGEST_LEN);
	e->key = *key;
	e->valid_until = valid_until;
	if (table_put(&store->seen, e, store->seed, &old) < 0)
		free(e);
	free(old);
}

const struct stapler_key *
store_seen_get(struct store *store, const unsigned char digest[STORE_DIGEST_LEN], time_t now)
{
	struct seen *e = table_get(&store->seen, digest, store->seed);

	if (e == NULL)
		return NULL;
	if (now >= e->valid_until) {
		free(table_remove(&store->seen, digest, store->seed));
		return NULL;
	}
	return &e->key;
}

void
store_seen_clear(struct store *store)
{
	table_clear(&store->seen, 1);
}

void
store_set_refresh_at(struct store *store, const struct stapler_key *key, time_t at)
{
	struct staple *s = table_get(&store->staples, key, store->seed);

	if (s != NULL)
		s->refresh_at = at;
}
