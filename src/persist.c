/* Write-behind for the cache: writes tried at once, kept per entry when the database refuses
 * them for now, retried with backoff from a timer, logged once per interval. */
#define _GNU_SOURCE     /* fallocate() */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache.h"
#include "log.h"
#include "persist.h"
#include "table.h"
#include "util.h"

enum op_kind { OP_STORE, OP_FAILURE, OP_DELETE };

/* The one pending operation of an entry. */
struct op {
	struct stapler_key key;
	char serial[STAPLER_SERIAL_HEX_MAX];          /* for logs */
	char issuer_key_hash[STAPLER_SHA1_HEX];
	enum op_kind kind;
	struct cache_row row;          /* OP_STORE: an owned copy */
	struct cache_issuer issuer;    /* OP_STORE: an owned copy, when has_issuer */
	int has_issuer;
	int failures;                  /* OP_FAILURE */
	char *last_error;
	long long next_refresh_at;
	int slot;                      /* revocation journal slot, or -1 */
	time_t queued_at;              /* when the entry's first pending write came */
	TAILQ_ENTRY(op) link;
};

/* A journal slot: header, then the DER response. Little-endian fields; checksum over the
 * header (checksum zeroed) and the DER, so a torn write reads as an empty slot. */
#define JOURNAL_MAGIC "STPLREV1"
#define JOURNAL_SLOTS_SIZE ((off_t)PERSIST_JOURNAL_SLOTS * PERSIST_JOURNAL_SLOT_SIZE)
struct journal_head {
	char magic[8];
	uint64_t checksum;
	struct stapler_key key;
	int64_t this_update, next_update, produced_at, fetched_at, revoked_at;
	int32_t revocation_reason;
	uint32_t der_len;
};

struct persist {
	struct event_base *base;
	struct cache *cache;
	struct event *timer;
	struct table ops;              /* by key */
	TAILQ_HEAD(, op) fifo;
	uint64_t seed;
	size_t n_revocations;
	long delay_ms;
	int failing;
	time_t failing_since;
	struct log_limit fault_log;    /* one line per PERSIST_LOG_INTERVAL */
	unsigned long long dropped;
	int journal_fd;                /* -1: no journal */
	int journal_ro;                /* opened read-only (a read-only mount): replayed, not written */
	char *journal_path;
	unsigned char slot_used[PERSIST_JOURNAL_SLOTS];
	int journal_full_logged;
	int ballast;                   /* PERSIST_BALLAST_SIZE is allocated after the slots */
	int adopt_slot;                /* persist_journal_replay(): the slot being replayed, or -1 */
};

static int
op_match(const void *entry, const void *key)
{
	return stapler_key_equal(&((const struct op *)entry)->key, key);
}

static const void *
op_key_of(const void *entry)
{
	return &((const struct op *)entry)->key;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static unsigned char *
dup_blob(const unsigned char *b, size_t len)
{
	unsigned char *c = malloc(len > 0 ? len : 1);

	if (c != NULL && len > 0)
		memcpy(c, b, len);
	return c;
}

/* A deep copy of row into dst (cache_row_clear() frees it). Returns 0 or -1. */
static int
row_copy(struct cache_row *dst, const struct cache_row *src)
{
	*dst = *src;
	dst->subject = dup_or_null(src->subject);
	dst->ocsp_url = dup_or_null(src->ocsp_url);
	dst->ocsp_urls = dup_or_null(src->ocsp_urls);
	dst->last_error = dup_or_null(src->last_error);
	dst->upstream_etag = dup_or_null(src->upstream_etag);
	dst->upstream_last_modified = dup_or_null(src->upstream_last_modified);
	dst->response_der = dup_blob(src->response_der, src->response_len);
	dst->request_der = dup_blob(src->request_der, src->request_len);
	if ((src->subject != NULL && dst->subject == NULL) ||
	    (src->ocsp_url != NULL && dst->ocsp_url == NULL) ||
	    (src->ocsp_urls != NULL && dst->ocsp_urls == NULL) ||
	    (src->last_error != NULL && dst->last_error == NULL) ||
	    (src->upstream_etag != NULL && dst->upstream_etag == NULL) ||
	    (src->upstream_last_modified != NULL && dst->upstream_last_modified == NULL) ||
	    dst->response_der == NULL || dst->request_der == NULL) {
		cache_row_clear(dst);
		return -1;
	}
	return 0;
}

static int
issuer_copy(struct cache_issuer *dst, const struct cache_issuer *src)
{
	*dst = *src;
	dst->subject = dup_or_null(src->subject);
	dst->cert_der = dup_blob(src->cert_der, src->cert_len);
	if ((src->subject != NULL && dst->subject == NULL) || dst->cert_der == NULL) {
		cache_issuer_clear(dst);
		return -1;
	}
	return 0;
}

static void
op_clear_payload(struct persist *p, struct op *o)
{
	if (o->kind == OP_STORE && o->row.status == STAPLER_REVOKED)
		p->n_revocations--;
	cache_row_clear(&o->row);
	if (o->has_issuer)
		cache_issuer_clear(&o->issuer);
	o->has_issuer = 0;
	free(o->last_error);
	o->last_error = NULL;
}

static uint64_t
journal_sum(const struct journal_head *h, const unsigned char *der)
{
	struct journal_head copy = *h;

	copy.checksum = 0;
	return table_fnv(table_fnv(TABLE_FNV_BASIS, (const unsigned char *)&copy, sizeof(copy)), der,
	    h->der_len);
}

static void
journal_clear(struct persist *p, int slot)
{
	static const char zero[sizeof(JOURNAL_MAGIC)];

	if (slot < 0 || p->journal_fd < 0 || p->journal_ro)
		return;
	/* Not synced: a slot that survives a crash is replayed and found to be in the database. */
	if (pwrite(p->journal_fd, zero, sizeof(zero), (off_t)slot * PERSIST_JOURNAL_SLOT_SIZE) < 0)
		log_warn("journal_error", "op=clear slot=%d error=\"%s\"", slot, strerror(errno));
	p->slot_used[slot] = 0;
}

/* Writes o's revocation to a journal slot (its own, or a free one) and syncs it, so a start
 * before the database takes it still knows. A blocking write, but a rare one: only a
 * revocation the database refused. */
static void
journal_write(struct persist *p, struct op *o)
{
	unsigned char buf[PERSIST_JOURNAL_SLOT_SIZE];
	struct journal_head h;
	int slot = o->slot;

	if (p->journal_fd < 0 || p->journal_ro)
		return;
	if (sizeof(h) + o->row.response_len > sizeof(buf)) {
		log_error("journal_error", "serial=%s issuer=%s error=\"response too large for a slot\"",
		    o->serial, o->issuer_key_hash);
		return;
	}
	for (int i = 0; slot < 0 && i < PERSIST_JOURNAL_SLOTS; i++) {
		if (!p->slot_used[i])
			slot = i;
	}
	if (slot < 0) {
		if (!p->journal_full_logged)
			log_error("journal_full", "slots=%d reason=\"more revocations waiting for the "
			    "database than the journal holds: these survive only while staplerd runs\"",
			    PERSIST_JOURNAL_SLOTS);
		p->journal_full_logged = 1;
		return;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, JOURNAL_MAGIC, sizeof(h.magic));
	h.key = o->key;
	h.this_update = o->row.this_update;
	h.next_update = o->row.next_update;
	h.produced_at = o->row.produced_at;
	h.fetched_at = o->row.fetched_at;
	h.revoked_at = o->row.revoked_at;
	h.revocation_reason = o->row.revocation_reason;
	h.der_len = (uint32_t)o->row.response_len;
	h.checksum = journal_sum(&h, o->row.response_der);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), o->row.response_der, o->row.response_len);
	if (pwrite(p->journal_fd, buf, sizeof(buf), (off_t)slot * PERSIST_JOURNAL_SLOT_SIZE) !=
	    (ssize_t)sizeof(buf) || fdatasync(p->journal_fd) < 0) {
		log_error("journal_error", "op=write serial=%s issuer=%s error=\"%s\"", o->serial,
		    o->issuer_key_hash, strerror(errno));
		return;
	}
	o->slot = slot;
	p->slot_used[slot] = 1;
}

/* Opens the journal at p->journal_path, allocated in full; on a read-only file system, read-only
 * (replayed at start, written once it can be: journal_reopen()). */
static void
journal_open(struct persist *p)
{
	off_t size = JOURNAL_SLOTS_SIZE;
	const char *path = p->journal_path;
	int fd, rc;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 && errno == EROFS &&
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		p->journal_fd = fd;
		p->journal_ro = 1;
		return;
	}
	if (fd < 0) {
		log_warn("journal_unavailable", "path=\"%s\" error=\"%s\" reason=\"a revocation the "
		    "database refuses survives only while staplerd runs\"", path, strerror(errno));
		return;
	}
	/* Every block now, while there is room: a full disk later cannot refuse a slot. */
	if ((rc = posix_fallocate(fd, 0, size)) != 0) {
		log_warn("journal_unavailable", "path=\"%s\" error=\"%s\" reason=\"cannot allocate "
		    "it; a revocation the database refuses survives only while staplerd runs\"", path,
		    strerror(rc));
		close(fd);
		return;
	}
	p->journal_fd = fd;
	p->journal_ro = 0;
}

/* After the database became writable: a journal that could not be opened for writing at
 * start (the same read-only mount) is opened again, and the revocations waiting for the
 * database go into it. */
static void
journal_reopen(struct persist *p)
{
	struct op *o;

	if ((p->journal_fd >= 0 && !p->journal_ro) || p->journal_path == NULL)
		return;
	if (p->journal_fd >= 0)
		close(p->journal_fd);
	p->journal_fd = -1;
	journal_open(p);
	if (p->journal_fd < 0 || p->journal_ro)
		return;
	TAILQ_FOREACH(o, &p->fifo, link) {
		if (o->kind == OP_STORE && o->row.status == STAPLER_REVOKED)
			journal_write(p, o);
	}
}

static void
op_free(struct persist *p, struct op *o)
{
	op_clear_payload(p, o);
	free(o);
}

/* o is done with (it landed, or can never land): it leaves the queue and the journal. */
static void
op_remove(struct persist *p, struct op *o)
{
	journal_clear(p, o->slot);
	table_remove(&p->ops, &o->key, p->seed);
	TAILQ_REMOVE(&p->fifo, o, link);
	op_free(p, o);
}

/* Runs o against the database. Returns 0 when it landed, 1 when the fault is transient and o
 * must be kept, -1 when it can never land (a bad row, logged by the cache). A journaled
 * revocation is committed with the WAL synced: its slot is let go once it returns 0. */
static int
op_try(struct persist *p, const struct op *o)
{
	int rc, durable = o->kind == OP_STORE && o->slot >= 0;

	if (durable && cache_set_durable(p->cache, 1) < 0)
		return 1;
	switch (o->kind) {
	case OP_STORE:
		rc = cache_store(p->cache, o->has_issuer ? &o->issuer : NULL, &o->row);
		break;
	case OP_FAILURE:
		rc = cache_set_failure(p->cache, &o->key, o->failures, o->last_error,
		    o->next_refresh_at);
		break;
	case OP_DELETE:
	default:
		rc = cache_delete(p->cache, &o->key) < 0 ? -1 : 0;
		break;
	}
	if (durable)
		(void)cache_set_durable(p->cache, 0);
	if (rc == 0)
		return 0;
	return cache_fault(p->cache) == CACHE_FAULT_OTHER ? -1 : 1;
}

/* o will not land: it leaves the queue, but a revocation keeps its journal slot, so the next
 * start still serves it, never the older good. */
static void
op_abandon(struct persist *p, struct op *o)
{
	o->slot = -1;
	op_remove(p, o);
}

/* A fault that lasts is logged when it starts, then at most once per PERSIST_LOG_INTERVAL. */
static void
note_fault(struct persist *p)
{
	time_t now = time(NULL);
	unsigned long left_out;

	if (!p->failing) {
		p->failing = 1;
		p->failing_since = now;
	}
	if (!log_limit_allow(&p->fault_log, (long long)now, &left_out))
		return;
	log_error("cache_write_failed", "fault=%s pending=%u revocations_pending=%zu since=%lld "
	    "suppressed=%lu error=\"%s\" action=\"kept in memory and retried; staples are served "
	    "meanwhile; free disk space or stop the process holding the database lock\"",
	    cache_fault_name(cache_fault(p->cache)), (unsigned)p->ops.count, p->n_revocations,
	    (long long)p->failing_since, left_out, cache_errmsg(p->cache));
}

/* The disk is full and the WAL cannot be folded in: the ballast's blocks go back to the file
 * system, and the checkpoint is tried again with them. */
static void
release_ballast(struct persist *p)
{
	if (!p->ballast)
		return;
	if (fallocate(p->journal_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, JOURNAL_SLOTS_SIZE,
	    PERSIST_BALLAST_SIZE) < 0) {
		log_warn("journal_error", "op=release_ballast error=\"%s\"", strerror(errno));
		return;
	}
	p->ballast = 0;
	log_warn("ballast_released", "bytes=%d reason=\"the disk is full and the WAL cannot be "
	    "checkpointed: its room is given back so that it can\"", PERSIST_BALLAST_SIZE);
	(void)cache_recover(p->cache);
}

/* Allocates the ballast when it is not (the start, or after a full disk). */
static void
reserve_ballast(struct persist *p)
{
	if (p->ballast || p->journal_fd < 0 || p->journal_ro)
		return;
	p->ballast = posix_fallocate(p->journal_fd, JOURNAL_SLOTS_SIZE, PERSIST_BALLAST_SIZE) == 0;
}

static void
note_recovered(struct persist *p)
{
	if (!p->failing)
		return;
	journal_reopen(p);
	reserve_ballast(p);
	log_info("cache_write_recovered", "failed_for=%llds", (long long)(time(NULL) - p->failing_since));
	p->failing = 0;
	log_limit_reset(&p->fault_log);
	p->delay_ms = PERSIST_RETRY_FIRST_MS;
}

static void
schedule(struct persist *p, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(p->timer, &tv);
}

/* The next pass after the current delay, which doubles up to its cap. */
static void
retry_later(struct persist *p)
{
	schedule(p, p->delay_ms);
	if (p->delay_ms < PERSIST_RETRY_MAX_MS)
		p->delay_ms = p->delay_ms * 2 > PERSIST_RETRY_MAX_MS ? PERSIST_RETRY_MAX_MS :
		    p->delay_ms * 2;
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct persist *p = arg;
	struct op *o;
	int rc;

	/* Each pass starts clean, whatever the last failure left in the connection. */
	if (p->failing && cache_recover(p->cache) < 0 && cache_fault(p->cache) == CACHE_FAULT_FULL)
		release_ballast(p);
	/* Read-only since the start and still: nothing to try, look again later. */
	if (!cache_writable(p->cache)) {
		note_fault(p);
		retry_later(p);
		return;
	}
	for (int i = 0; i < PERSIST_RETRY_BATCH && (o = TAILQ_FIRST(&p->fifo)) != NULL; i++) {
		if ((rc = op_try(p, o)) > 0) {
			note_fault(p);
			retry_later(p);
			return;
		}
		if (rc < 0)
			op_abandon(p, o);
		else
			op_remove(p, o);
	}
	if (!TAILQ_EMPTY(&p->fifo)) {
		schedule(p, 0);
		return;
	}
	note_recovered(p);
}

struct persist *
persist_new(struct event_base *base, struct cache *cache, const char *journal)
{
	struct persist *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->journal_fd = -1;
	if (journal != NULL && (p->journal_path = strdup(journal)) == NULL) {
		free(p);
		return NULL;
	}
	if (p->journal_path != NULL)
		journal_open(p);
	p->base = base;
	p->cache = cache;
	p->ops.hash = table_key_hash;
	p->ops.match = op_match;
	p->ops.key_of = op_key_of;
	p->seed = table_seed();
	p->delay_ms = PERSIST_RETRY_FIRST_MS;
	p->fault_log = LOG_LIMIT_ONCE_PER(PERSIST_LOG_INTERVAL);
	p->adopt_slot = -1;
	TAILQ_INIT(&p->fifo);
	if ((p->timer = evtimer_new(base, on_retry, p)) == NULL) {
		if (p->journal_fd >= 0)
			close(p->journal_fd);
		free(p->journal_path);
		free(p);
		return NULL;
	}
	reserve_ballast(p);
	cache_set_nowait(cache);
	/* A database served read-only from the start: reported as failing writes, and looked at
	 * again from the retry timer until it can be written. */
	if (!cache_writable(cache)) {
		note_fault(p);
		retry_later(p);
	}
	return p;
}

int
persist_journal_replay(struct persist *p,
    void (*cb)(const struct persist_revocation *r, void *arg), void *arg)
{
	unsigned char buf[PERSIST_JOURNAL_SLOT_SIZE];
	struct journal_head h;
	int n = 0;

	if (p->journal_fd < 0)
		return 0;
	for (int slot = 0; slot < PERSIST_JOURNAL_SLOTS; slot++) {
		struct persist_revocation r;

		if (pread(p->journal_fd, buf, sizeof(buf), (off_t)slot * PERSIST_JOURNAL_SLOT_SIZE) !=
		    (ssize_t)sizeof(buf))
			return -1;
		memcpy(&h, buf, sizeof(h));
		if (memcmp(h.magic, JOURNAL_MAGIC, sizeof(h.magic)) != 0)
			continue;
		if (h.der_len > sizeof(buf) - sizeof(h) || journal_sum(&h, buf + sizeof(h)) != h.checksum ||
		    h.key.serial_len > STAPLER_SERIAL_MAX) {
			log_warn("journal_slot_skipped", "slot=%d reason=\"torn or corrupt\"", slot);
			journal_clear(p, slot);
			continue;
		}
		r.key = &h.key;
		r.this_update = h.this_update;
		r.next_update = h.next_update;
		r.produced_at = h.produced_at;
		r.fetched_at = h.fetched_at;
		r.revoked_at = h.revoked_at;
		r.revocation_reason = h.revocation_reason;
		r.der = buf + sizeof(h);
		r.der_len = h.der_len;
		/* The slot stays taken until the store the callback makes lands: it becomes that
		 * write's slot (or is let go when the write has one of its own, or landed). */
		p->slot_used[slot] = 1;
		p->adopt_slot = slot;
		cb(&r, arg);
		p->adopt_slot = -1;
		{
			struct op *o = table_get(&p->ops, &h.key, p->seed);

			if (o != NULL && o->kind == OP_STORE && o->slot < 0)
				o->slot = slot;
			else if (o == NULL || o->slot != slot)
				journal_clear(p, slot);
		}
		n++;
	}
	return n;
}

void
persist_free(struct persist **pp)
{
	struct persist *p;
	struct op *o;
	size_t lost = 0, lost_revoked;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	if (p->failing)
		(void)cache_recover(p->cache);
	while ((o = TAILQ_FIRST(&p->fifo)) != NULL && op_try(p, o) == 0)
		op_remove(p, o);
	lost_revoked = p->n_revocations;
	/* What did not land is lost to the database, but not a revocation: its journal slot
	 * stays and the next start puts it back in force. */
	while ((o = TAILQ_FIRST(&p->fifo)) != NULL) {
		lost++;
		op_abandon(p, o);
	}
	if (lost > 0)
		log_error("cache_writes_lost", "count=%zu revocations=%zu fault=%s error=\"%s\" "
		    "revocations_kept=\"in the journal, served again from the next start\"", lost,
		    lost_revoked, cache_fault_name(cache_fault(p->cache)), cache_errmsg(p->cache));
	table_clear(&p->ops, 0);
	event_free(p->timer);
	if (p->journal_fd >= 0)
		close(p->journal_fd);
	free(p->journal_path);
	free(p);
	*pp = NULL;
}

/* The op pending for the entry, or a new one (kind unset, queued at the tail); NULL when the
 * key is malformed or memory ran out. *fresh says which. */
static struct op *
op_get(struct persist *p, const struct stapler_key *key, int *fresh)
{
	struct op *o;
	void *replaced;

	if ((o = table_get(&p->ops, key, p->seed)) != NULL) {
		*fresh = 0;
		return o;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->key = *key;
	o->slot = -1;
	o->queued_at = time(NULL);
	stapler_key_serial_hex(key, o->serial);
	stapler_key_hash_hex(key, o->issuer_key_hash);
	if (table_put(&p->ops, o, p->seed, &replaced) < 0) {
		free(o);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&p->fifo, o, link);
	*fresh = 1;
	return o;
}

/* After a new op was filled in: when nothing else is pending the write is tried at once, and
 * kept only when the database refuses it for now. */
static void
op_submit(struct persist *p, struct op *o)
{
	int rc;

	if (TAILQ_FIRST(&p->fifo) == o && TAILQ_NEXT(o, link) == NULL) {
		if ((rc = op_try(p, o)) <= 0) {
			if (rc < 0)
				op_abandon(p, o);
			else
				op_remove(p, o);
			note_recovered(p);
			return;
		}
		note_fault(p);
		schedule(p, p->delay_ms);
	}
	/* Otherwise a retry pass is scheduled already and takes it in turn. */
}

static int
full(struct persist *p, int revocation)
{
	if (revocation || p->ops.count < PERSIST_MAX_PENDING)
		return 0;
	p->dropped++;
	if (p->dropped == 1 || p->dropped % 10000 == 0)
		log_error("cache_write_dropped", "pending=%u dropped=%llu reason=\"write-behind queue "
		    "full: the database has not been writable for a long time\"", (unsigned)p->ops.count,
		    p->dropped);
	return 1;
}

/* persist_store(), and with first set a first revocation: journaled (synced) before anything
 * else, so it is on disk before it is served, whatever happens to the database write. */
static int
store(struct persist *p, const struct cache_issuer *issuer, const struct cache_row *row,
    int first)
{
	struct cache_row copy;
	struct cache_issuer icopy = { 0 };
	int fresh, revoked = row->status == STAPLER_REVOKED;
	struct stapler_key key;
	struct op *o;

	if (cache_row_key(row, &key) < 0) {
		log_error("cache_write_dropped", "serial=%s issuer=%s reason=\"malformed key\"",
		    row->serial, row->issuer_key_hash);
		return -1;
	}
	if (full(p, revoked))
		return -1;
	if (row_copy(&copy, row) < 0 || (issuer != NULL && issuer_copy(&icopy, issuer) < 0)) {
		cache_row_clear(&copy);
		log_error("cache_write_dropped", "serial=%s issuer=%s reason=\"out of memory\"",
		    row->serial, row->issuer_key_hash);
		return -1;
	}
	if ((o = op_get(p, &key, &fresh)) == NULL) {
		cache_row_clear(&copy);
		cache_issuer_clear(&icopy);
		return -1;
	}
	/* A store carries the whole row: it replaces whatever was pending for the entry, but an
	 * issuer already waiting to be written stays with it. */
	if (!fresh && o->has_issuer && issuer == NULL) {
		icopy = o->issuer;
		o->has_issuer = 0;
		memset(&o->issuer, 0, sizeof(o->issuer));
		issuer = &icopy;
	}
	op_clear_payload(p, o);
	o->kind = OP_STORE;
	o->row = copy;
	o->issuer = icopy;
	o->has_issuer = issuer != NULL;
	if (revoked)
		p->n_revocations++;
	/* A revocation replayed from the journal keeps its slot (and so is committed synced); one
	 * queued behind a fault is kept across a restart too. */
	if (revoked && fresh && p->adopt_slot >= 0) {
		o->slot = p->adopt_slot;
		p->adopt_slot = -1;
	} else if (revoked && (first || !fresh))
		journal_write(p, o);
	if (fresh)
		op_submit(p, o);
	return 0;
}

int
persist_store(struct persist *p, const struct cache_issuer *issuer, const struct cache_row *row)
{
	return store(p, issuer, row, 0);
}

int
persist_store_revocation(struct persist *p, const struct cache_issuer *issuer,
    const struct cache_row *row)
{
	return store(p, issuer, row, row->status == STAPLER_REVOKED);
}

int
persist_failure(struct persist *p, const struct stapler_key *key, int failures,
    const char *last_error, long long next_refresh_at)
{
	char *err = dup_or_null(last_error);
	struct op *o;
	int fresh;

	if ((last_error != NULL && err == NULL) || full(p, 0) ||
	    (o = op_get(p, key, &fresh)) == NULL) {
		free(err);
		return -1;
	}
	if (!fresh && o->kind == OP_DELETE) {
		free(err);      /* the row is going: nothing to record */
		return 0;
	}
	if (!fresh && o->kind == OP_STORE) {
		/* The pending row takes the failure record (its response stays as it was). */
		o->row.failures = failures;
		free(o->row.last_error);
		o->row.last_error = err;
		o->row.next_refresh_at = next_refresh_at;
		return 0;
	}
	free(o->last_error);
	o->kind = OP_FAILURE;
	o->failures = failures;
	o->last_error = err;
	o->next_refresh_at = next_refresh_at;
	if (fresh)
		op_submit(p, o);
	return 0;
}

int
persist_delete(struct persist *p, const struct stapler_key *key)
{
	struct op *o;
	int fresh, rc;

	if ((o = table_get(&p->ops, key, p->seed)) != NULL) {
		/* Whatever was pending for it (a row, a failure record) is the entry; an evicted
		 * entry's revocation is not brought back by a restart. */
		op_clear_payload(p, o);
		journal_clear(p, o->slot);
		o->slot = -1;
		o->kind = OP_DELETE;
		return 1;
	}
	if ((rc = cache_delete(p->cache, key)) >= 0)
		return rc;
	if (cache_fault(p->cache) == CACHE_FAULT_OTHER)
		return -1;
	/* Locked or full: the delete waits its turn like any write; the row counts as there. */
	if ((o = op_get(p, key, &fresh)) == NULL)
		return -1;
	o->kind = OP_DELETE;
	note_fault(p);
	schedule(p, p->delay_ms);
	return 1;
}

int
persist_has(const struct persist *p, const struct stapler_key *key)
{
	return p->ops.count > 0 && table_get(&p->ops, key, p->seed) != NULL;
}

size_t
persist_pending(const struct persist *p)
{
	return p->ops.count;
}

size_t
persist_pending_revocations(const struct persist *p)
{
	return p->n_revocations;
}

time_t
persist_oldest(const struct persist *p)
{
	const struct op *o = TAILQ_FIRST(&p->fifo);

	return o != NULL ? o->queued_at : 0;
}

int
persist_failing(const struct persist *p)
{
	return p->failing;
}

unsigned long long
persist_dropped(const struct persist *p)
{
	return p->dropped;
}
