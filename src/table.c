/* A hash table of entry pointers: open addressing with linear probing and backward-shift
 * deletion, so probe runs stay unbroken without tombstones. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "table.h"
#include "stapler/types.h"

uint64_t
table_seed(void)
{
	static int fallback;
	uint64_t seed;

	if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) == 1)
		return seed;
	return (uint64_t)(uintptr_t)&fallback ^ (uint64_t)time(NULL) ^
	    ((uint64_t)++fallback << 32);
}

uint64_t
table_fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

uint64_t
table_key_hash(const void *k, uint64_t seed)
{
	const struct stapler_key *key = k;
	unsigned char form = (unsigned char)(key->hash_alg | key->hash_params << 4);
	uint64_t h = table_fnv(TABLE_FNV_BASIS ^ seed, key->key_hash, sizeof(key->key_hash));

	h = table_fnv(h, key->name_hash, sizeof(key->name_hash));
	h = table_fnv(h, &form, 1);
	h = table_fnv(h, &key->serial_negative, 1);
	return table_fnv(h, key->serial, key->serial_len);
}

/* Returns the slot index holding key, or the empty slot where it would go. */
static size_t
find(const struct table *t, const void *key, uint64_t seed)
{
	size_t mask = t->cap - 1, i = (size_t)t->hash(key, seed) & mask;

	while (t->slot[i] != NULL && !t->match(t->slot[i], key))
		i = (i + 1) & mask;
	return i;
}

static int
resize(struct table *t, size_t ncap, uint64_t seed)
{
	size_t ocap = t->cap;
	void **old = t->slot;

	if ((t->slot = calloc(ncap, sizeof(*t->slot))) == NULL) {
		t->slot = old;
		return -1;
	}
	t->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i] != NULL)
			t->slot[find(t, t->key_of(old[i]), seed)] = old[i];
	}
	free(old);
	return 0;
}

static int
grow(struct table *t, uint64_t seed)
{
	return resize(t, t->cap == 0 ? 64 : t->cap * 2, seed);
}

int
table_reserve(struct table *t, size_t n, uint64_t seed)
{
	size_t cap = t->cap == 0 ? 64 : t->cap;

	while (n * 4 > cap * 3) {
		if (cap > SIZE_MAX / 2 / sizeof(*t->slot))
			return -1;
		cap *= 2;
	}
	return cap == t->cap ? 0 : resize(t, cap, seed);
}

void *
table_get(const struct table *t, const void *key, uint64_t seed)
{
	if (t->cap == 0)
		return NULL;
	return t->slot[find(t, key, seed)];
}

int
table_put(struct table *t, void *entry, uint64_t seed, void **replaced)
{
	size_t i;

	*replaced = NULL;
	/* Keep the load factor under 3/4 so probe runs stay short. */
	if ((t->count + 1) * 4 > t->cap * 3 && grow(t, seed) < 0)
		return -1;
	i = find(t, t->key_of(entry), seed);
	*replaced = t->slot[i];
	t->slot[i] = entry;
	if (*replaced == NULL)
		t->count++;
	return 0;
}

int
table_put_new(struct table *t, void *entry, uint64_t seed)
{
	size_t i;

	if ((t->count + 1) * 4 > t->cap * 3 && grow(t, seed) < 0)
		return -1;
	i = find(t, t->key_of(entry), seed);
	if (t->slot[i] != NULL)
		return 1;
	t->slot[i] = entry;
	t->count++;
	return 0;
}

void *
table_remove(struct table *t, const void *key, uint64_t seed)
{
	size_t mask, i, j;
	void *entry;

	if (t->cap == 0)
		return NULL;
	mask = t->cap - 1;
	i = find(t, key, seed);
	if ((entry = t->slot[i]) == NULL)
		return NULL;
	t->slot[i] = NULL;
	t->count--;
	for (j = (i + 1) & mask; t->slot[j] != NULL; j = (j + 1) & mask) {
		size_t home = (size_t)t->hash(t->key_of(t->slot[j]), seed) & mask;

		/* Move slot j back to the hole at i unless its home lies cyclically in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			t->slot[i] = t->slot[j];
			t->slot[j] = NULL;
			i = j;
		}
	}
	return entry;
}

void
table_clear(struct table *t, int free_entries)
{
	for (size_t i = 0; free_entries && i < t->cap; i++)
		free(t->slot[i]);
	free(t->slot);
	t->slot = NULL;
	t->cap = t->count = 0;
}
