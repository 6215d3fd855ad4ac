/* Answers to anonymous /ocsp misses, kept apart from the staple index: a table by key and a
 * list in insertion order, the oldest dropped first when full or out of time. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/queue.h>


#include "anon.h"
#include "table.h"

struct anon_entry {
	struct staple *s;
	time_t until;                 /* not served from this time on */
	TAILQ_ENTRY(anon_entry) link;
};

struct anon_map {
	struct table t;
	uint64_t seed;
	size_t bytes;
	TAILQ_HEAD(, anon_entry) order;  /* oldest first */
};

static int
entry_match(const void *entry, const void *key)
{
	return stapler_key_equal(&((const struct anon_entry *)entry)->s->key, key);
}

static const void *
entry_key_of(const void *entry)
{
	return &((const struct anon_entry *)entry)->s->key;
}

struct anon_map *
anon_map_new(void)
{
	struct anon_map *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->t.hash = table_key_hash;
	m->t.match = entry_match;
	m->t.key_of = entry_key_of;
	m->seed = table_seed();
	TAILQ_INIT(&m->order);
	return m;
}

static void
entry_drop(struct anon_map *m, struct anon_entry *e)
{
	table_remove(&m->t, &e->s->key, m->seed);
	TAILQ_REMOVE(&m->order, e, link);
	m->bytes -= e->s->der_len;
	free(e->s);
	free(e);
}

void
anon_map_free(struct anon_map **mp)
{
	struct anon_map *m;
	struct anon_entry *e;

	if (mp == NULL || (m = *mp) == NULL)
		return;
	while ((e = TAILQ_FIRST(&m->order)) != NULL)
		entry_drop(m, e);
	table_clear(&m->t, 0);
	free(m);
	*mp = NULL;
}

int
anon_map_remove(struct anon_map *m, const struct stapler_key *key)
{
	struct anon_entry *e = table_get(&m->t, key, m->seed);

	if (e == NULL)
		return 0;
	entry_drop(m, e);
	return 1;
}

int
anon_map_put(struct anon_map *m, struct staple *s, time_t now, long long ttl,
    size_t max_entries, size_t max_bytes)
{
	struct anon_entry *e, *first;
	time_t until = s->next_update - STORE_EXPIRY_MARGIN;
	void *replaced;

	if (max_entries == 0 || s->der_len > max_bytes || (e = malloc(sizeof(*e))) == NULL) {
		free(s);
		return -1;
	}
	(void)anon_map_remove(m, &s->key);
	while ((first = TAILQ_FIRST(&m->order)) != NULL && (m->t.count >= max_entries ||
	    m->bytes + s->der_len > max_bytes || first->until <= now))
		entry_drop(m, first);
	e->s = s;
	e->until = now + ttl < until ? now + ttl : until;
	if (table_put(&m->t, e, m->seed, &replaced) < 0) {
		free(s);
		free(e);
		return -1;
	}
	TAILQ_INSERT_TAIL(&m->order, e, link);
	m->bytes += s->der_len;
	return 0;
}

const struct staple *
anon_map_get(struct anon_map *m, const struct stapler_key *key, time_t now)
{
	struct anon_entry *e = table_get(&m->t, key, m->seed);

	if (e == NULL)
		return NULL;
	if (now >= e->until || !staple_servable(e->s, now)) {
		entry_drop(m, e);
		return NULL;
	}
	return e->s;
}

size_t
anon_map_count(const struct anon_map *m)
{
	return m->t.count;
}

size_t
anon_map_bytes(const struct anon_map *m)
{
	return m->bytes;
}
