/* Write-behind for the cache: every write the daemon makes to an entry goes through here. A
 * write the database refuses now (another process holds the lock, the disk is full, an I/O
 * error) is kept in memory, one coalesced operation per entry, and tried again from a timer on
 * the event loop with backoff until it lands; the loop itself never waits on a lock. */
#ifndef STAPLER_PERSIST_H
#define STAPLER_PERSIST_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct stapler_key;
struct cache;
struct cache_issuer;
struct cache_row;
struct event_rec;

/* Operations kept at most; past it new ones are refused (counted and logged), except
 * revocations, which are always kept: losing one would serve `good` again after a restart. */
#define PERSIST_MAX_PENDING 100000
/* Pending operations tried per retry pass (the next pass follows at once while more wait). */
#define PERSIST_RETRY_BATCH 256
/* Retry delays: from the first to the last, doubling (milliseconds). */
#define PERSIST_RETRY_FIRST_MS 100
#define PERSIST_RETRY_MAX_MS 5000
/* A persisting fault is logged at most once per this many seconds. */
#define PERSIST_LOG_INTERVAL 60
/* The revocation journal: revocations that could not be written yet, in slots of a file
 * allocated in full at start, so that writing one never needs disk space the database lacks. */
#define PERSIST_JOURNAL_SLOTS 128
#define PERSIST_JOURNAL_SLOT_SIZE 8192
/* Allocated after the slots and given back while the disk is full: the room a checkpoint
 * needs to fold the WAL in and truncate it, when the WAL's own growth filled the disk. */
#define PERSIST_BALLAST_SIZE (256 * 1024)

struct persist;

/* A revocation read back from the journal at start: the entry and its verified response. */
struct persist_revocation {
	const struct stapler_key *key;
	long long this_update, next_update, produced_at, fetched_at, revoked_at;
	int revocation_reason;
	const unsigned char *der;
	size_t der_len;
};

/* Returns a new write-behind queue for cache on base (cache is put in no-wait mode), or NULL.
 * journal (may be NULL: none) is the path of the revocation journal, created and allocated in
 * full when missing; a journal that cannot be allocated is logged and left out. */
struct persist *persist_new(struct event_base *base, struct cache *cache, const char *journal);
/* Calls cb for every revocation the journal holds (a start after a revocation could not be
 * written); the caller puts it back in force and stores it again with persist_store(), which
 * takes the journal slot over. Returns the count, or -1. */
int persist_journal_replay(struct persist *p,
    void (*cb)(const struct persist_revocation *r, void *arg), void *arg);
/* Tries once more to write what is pending, logs what is lost, frees. */
void persist_free(struct persist **p);

/* Inserts or replaces an entry's row (with its issuer; may be NULL), as cache_store() does.
 * Returns 0 when written or kept for a retry, -1 when refused (a bad row, or the queue full). */
int persist_store(struct persist *p, const struct cache_issuer *issuer, const struct cache_row *row);
/* persist_store() for a revocation that replaces a staple not held revoked (docs/contract.md
 * §8.11): written to the journal and synced before the database is tried, and its row
 * committed with the WAL synced; the slot is let go only once that commit returned. Served
 * after this returns, the revocation is on disk whatever the database does. */
int persist_store_revocation(struct persist *p, const struct cache_issuer *issuer,
    const struct cache_row *row);
/* persist_store() (or, with first_revocation, persist_store_revocation()) with an event about
 * the change (may be NULL), written in the same transaction as the row and taken over (freed
 * on failure too). A revocation's event is never dropped: when the row cannot be written now,
 * the journal keeps the revocation and its replay raises the event again under its id. */
int persist_store_event(struct persist *p, const struct cache_issuer *issuer,
    const struct cache_row *row, int first_revocation, struct event_rec *ev);
/* Writes an event no row change carries, on its own, in the queue's order. Takes ev over when
 * it returns 0; -1: refused (queue full), the caller still owns it. */
int persist_event(struct persist *p, struct event_rec *ev);
/* Who hears of events (the daemon wires the hub and the deliverer; the queue knows neither):
 * raise(arg, rec) takes a transition of the queue's own (writes_failing, writes_recovered),
 * written(arg, n) counts n events that reached the outbox, landed(landed_arg) starts their
 * delivery. Any member may be NULL; ev NULL clears them all. */
struct persist_events {
	void (*raise)(void *arg, struct event_rec *rec);
	void (*written)(void *arg, size_t n);
	void *arg;
	void (*landed)(void *arg);
	void *landed_arg;
};
void persist_set_events(struct persist *p, const struct persist_events *ev);
/* Records a failed refresh, as cache_set_failure(); folded into a pending store of the entry. */
int persist_failure(struct persist *p, const struct stapler_key *key, int failures,
    const char *last_error, long long next_refresh_at);
/* Deletes an entry, as cache_delete(); drops what was pending for it. Returns 1 when a row or a
 * pending write was there, 0 when not, -1 on a hard error. A delete the database refuses now
 * is kept and retried like the others. */
int persist_delete(struct persist *p, const struct stapler_key *key);

/* 1 when a write for the entry is pending (its row in the database is not the latest). */
int persist_has(const struct persist *p, const struct stapler_key *key);
/* What is pending, and of that how many are revocations. */
size_t persist_pending(const struct persist *p);
size_t persist_pending_revocations(const struct persist *p);
/* When the oldest pending write came (0: none pending). */
time_t persist_oldest(const struct persist *p);
/* 1 while the last write attempt failed (the database is not writable now). */
int persist_failing(const struct persist *p);
/* Writes refused because the queue was full, since the start. */
unsigned long long persist_dropped(const struct persist *p);

#endif
