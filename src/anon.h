/* Answers to anonymous /ocsp misses: verified responses for CertIDs nobody proved exist, held
 * apart from the staple index (never stored, never served to a submission), bounded in count
 * and bytes, each for at most a TTL. */
#ifndef STAPLER_ANON_H
#define STAPLER_ANON_H

#include <stddef.h>
#include <time.h>

#include "store.h"

struct anon_map;

struct anon_map *anon_map_new(void);
void anon_map_free(struct anon_map **m);

/* Takes s (freed on failure too) and holds it until the earlier of now + ttl and the end of
 * its servability, replacing any answer for its key. The oldest answers go first while more
 * than max_entries or max_bytes are held (max_entries 0 holds nothing). Returns 0 or -1. */
int anon_map_put(struct anon_map *m, struct staple *s, time_t now, long long ttl,
    size_t max_entries, size_t max_bytes);
/* The answer held for key while servable at now and inside its TTL, else NULL. Valid until
 * the next call that changes the map. */
const struct staple *anon_map_get(struct anon_map *m, const struct stapler_key *key, time_t now);
/* Forgets key's answer; returns 1 when there was one. */
int anon_map_remove(struct anon_map *m, const struct stapler_key *key);
size_t anon_map_count(const struct anon_map *m);
size_t anon_map_bytes(const struct anon_map *m);

#endif
