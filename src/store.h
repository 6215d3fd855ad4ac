/* The in-memory staple index: every servable staple by (issuer key hash, serial), with its
 * response headers prepared once, and the digests of request bodies already checked. A cache
 * hit is answered from here: no SQLite, no chain check, no signature work. */
#ifndef STAPLER_STORE_H
#define STAPLER_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "stapler/types.h"

/* Staples stop being served this long before their nextUpdate (docs/contract.md §8.2). */
#define STORE_EXPIRY_MARGIN 60
#define STORE_MAX_AGE_OVERDUE 60
/* Bound on remembered request-body digests. */
#define STORE_SEEN_MAX (1u << 20)
#define STORE_DIGEST_LEN 32

struct store;

/* One servable staple. Owned by the store once put; read-only for callers. What an answer
 * needs first comes first (the key, the status, the length, the validator, the times of
 * max-age), and nothing that can be derived at answer time is kept: Last-Modified and Expires
 * are formatted from the times (util_http_date(), integer arithmetic), the ETag from its 16
 * bytes (staple_etag()). 144 bytes before the DER on LP64. */
#define STAPLE_ETAG_BYTES 16
#define STAPLE_ETAG_LEN (2 * STAPLE_ETAG_BYTES + 2)   /* quoted hex */
struct staple {
	struct stapler_key key;
	unsigned char status : 6;   /* enum stapler_cert_status */
	unsigned char withdrawn : 1; /* a CRL contradicts it (crl.c): held, not served */
	unsigned char etag_set : 1; /* etag computed (at the first answer: a load hashes nothing) */
	uint32_t der_len;
	unsigned char etag[STAPLE_ETAG_BYTES];   /* SHA-256 of der, its first 128 bits */
	time_t this_update, next_update;
	time_t refresh_at;       /* when it is fetched again (0: not known); bounds max-age */
	time_t used_at;          /* last asked for (store_used()); fetched_at when new */
	time_t produced_at, fetched_at;
	unsigned char der[];     /* exactly the bytes served */
};

/* The staple's ETag: a strong validator, the quoted uppercase hex of the first 16 bytes of
 * the SHA-256 of its DER, NUL terminated (out holds STAPLE_ETAG_LEN + 1 bytes). Computed at
 * the first call and kept (the one other field, with used_at, that changes after
 * store_put(); the daemon is single-threaded). */
void staple_etag(const struct staple *s, char out[STAPLE_ETAG_LEN + 1]);

struct store *store_new(void);
void store_free(struct store **store);

/* Makes a staple. Returns a new staple (free()) or NULL (out of memory, or der longer than
 * 4 GiB). */
struct staple *staple_new(const struct stapler_key *key, enum stapler_cert_status status,
    time_t this_update, time_t next_update, time_t produced_at, time_t fetched_at,
    const unsigned char *der, size_t der_len);

/* 1 while the staple may be served at now: before next_update - STORE_EXPIRY_MARGIN, not
 * before this_update - OCSP skew, and not withdrawn. */
int staple_servable(const struct staple *s, time_t now);
/* Seconds an HTTP cache may keep it at now (RFC 5019 max-age), never negative: until
 * nextUpdate less the margin, and no later than its next refresh, so a cache in front never
 * serves it after staplerd could have learned better (a revocation); a refresh overdue (the
 * upstream failing) gives STORE_MAX_AGE_OVERDUE, so caches ask again soon. */
long staple_max_age(const struct staple *s, time_t now);

/* Takes ownership of s, replacing any staple with the same key. Returns 0 or -1 (s freed). */
int store_put(struct store *store, struct staple *s);
/* Takes ownership of s unless a staple with its key is held (the held one stays: a warm start
 * never replaces what is newer than its row). Returns 1 when put, 0 when one was held, -1
 * when memory ran out; s is freed unless put. */
int store_put_new(struct store *store, struct staple *s);
/* Sizes the index for n staples at once (warm start). Returns 0 or -1. */
int store_reserve(struct store *store, size_t n);
/* Returns the staple for key, or NULL. Valid until the next store_put/store_remove of that key. */
const struct staple *store_get(const struct store *store, const struct stapler_key *key);
/* Records when the staple for key is fetched again (a retry after a failure moves it). */
void store_set_refresh_at(struct store *store, const struct stapler_key *key, time_t at);
/* Removes and frees the staple for key; returns 1 if there was one. */
int store_remove(struct store *store, const struct stapler_key *key);
size_t store_count(const struct store *store);
/* DER bytes of the staples held (kept on put/remove). */
size_t store_bytes(const struct store *store);
/* Notes that s was asked for at now: the one field that changes after store_put() (the
 * daemon is single-threaded). Entries nobody asks for stop being refreshed ([cache]
 * unused_ttl). */
void store_used(const struct staple *s, time_t now);
/* Staples by status into counts[3] (kept as they change: no scan). */
void store_count_status(const struct store *store, size_t counts[3]);
/* Calls cb for every staple, in no particular order (cb must not change the store). A full
 * pass over the table: callers bound how often (/metrics and /healthz cache what it finds). */
void store_foreach(const struct store *store, void (*cb)(const struct staple *s, void *arg), void *arg);
/* The same pass in slices, for a loop that must not stall on ten million entries: calls cb for
 * the staples of at most max slots from *cursor on (start at 0) and moves *cursor on. Returns 1
 * when the pass reached the end (then *cursor is 0 again), 0 when more is left. A table that
 * grew between slices may have some staples visited twice or not at all in that pass (a count,
 * not an inventory). */
int store_foreach_slice(const struct store *store, size_t *cursor, size_t max,
    void (*cb)(const struct staple *s, void *arg), void *arg);

/* Remembers that a request body with this digest named key and was checked; the memory holds
 * until valid_until (the chain's earliest notAfter). Bounded by STORE_SEEN_MAX. */
void store_seen_put(struct store *store, const unsigned char digest[STORE_DIGEST_LEN],
    const struct stapler_key *key, time_t valid_until);
/* Returns the key remembered for digest if still valid at now, else NULL. */
const struct stapler_key *store_seen_get(struct store *store,
    const unsigned char digest[STORE_DIGEST_LEN], time_t now);
/* Forgets every digest (trust anchors changed). */
void store_seen_clear(struct store *store);

#endif
