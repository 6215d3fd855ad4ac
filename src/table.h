/* A hash table of pointers to entries that carry their own key: open addressing, linear
 * probing, backward-shift deletion. Used by the staple index and the fetch coalescer. */
#ifndef STAPLER_TABLE_H
#define STAPLER_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define TABLE_FNV_BASIS 0xcbf29ce484222325ULL

struct table {
	void **slot;
	size_t cap;       /* a power of two, or 0 before the first put */
	size_t count;
	uint64_t (*hash)(const void *key, uint64_t seed);
	int (*match)(const void *entry, const void *key);
	const void *(*key_of)(const void *entry);
};

/* A new seed for a table's hash: random (OpenSSL's RAND_bytes), so that whoever chooses the
 * keys (a client submitting certificates, an address opening connections) cannot aim them at
 * one probe run; the clock and an address when the generator fails. The one way every table
 * here is seeded. */
uint64_t table_seed(void);
/* FNV-1a over n bytes, continuing from h. */
uint64_t table_fnv(uint64_t h, const unsigned char *p, size_t n);
/* Hash of a struct stapler_key (for tables keyed by one). */
uint64_t table_key_hash(const void *key, uint64_t seed);

/* Returns the entry for key, or NULL. */
void *table_get(const struct table *t, const void *key, uint64_t seed);
/* Stores entry (not owned by the table). Returns 0 and sets *replaced to the entry it
 * displaced (or NULL), or -1 when memory ran out. */
int table_put(struct table *t, void *entry, uint64_t seed, void **replaced);
/* Stores entry unless the table holds one with its key: one probe (a warm start's rows, most
 * of them new). Returns 0 when stored, 1 when one was there (entry not stored), -1 when memory
 * ran out. */
int table_put_new(struct table *t, void *entry, uint64_t seed);
/* Sizes the table for n entries at once (a warm start knows how many come), so that putting
 * them rehashes nothing. Returns 0 or -1 (memory). */
int table_reserve(struct table *t, size_t n, uint64_t seed);
/* Removes key; returns its entry, or NULL. */
void *table_remove(struct table *t, const void *key, uint64_t seed);
/* Frees the slots; with free_entries, free()s every entry too. */
void table_clear(struct table *t, int free_entries);

#endif
