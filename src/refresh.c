/* The refresh timer: applies the refresh policy (sched.c) to the cache on every tick, with
 * bounded batches, per-host limits and failure backoff, so that staples stay fresh without a
 * refetch storm against any upstream. */
#include <stdlib.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "fetch.h"
#include "refresh.h"
#include "staple.h"
#include "cache.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "stapler/types.h"

/* One refresh the timer started, until its answer: when it was due, to know how late it
 * ended. Detached (r NULL) when the timer stops first. */
struct started {
	struct refresher *r;
	time_t due_at;
	TAILQ_ENTRY(started) link;
};

struct refresher {
	long long spread;            /* rows the warm start moved (refresh_warm_start()) */
	struct event_base *base;
	const struct stapler_config *cfg;
	struct cache *cache;
	struct store *store;
	struct staple_service *svc;
	struct fetcher *fetch;
	struct event *timer;
	struct log_limit lease_log;   /* a failing lease write: one line a minute */
	time_t purged_at;          /* the last purge of expired rows (once a second at most) */
	int busy;                  /* the last tick left due work for a busy upstream */
	int catch_up;              /* the next tick comes after REFRESH_CATCHUP_MS */
	int more;                  /* the last tick left due work (batch full, or hosts busy) */
	int soon;                  /* a tick is set REFRESH_SLOT_MS ahead: no other is set */
	/* Whether the fleet fits: refreshes ended per minute over the last hour (a ring indexed
	 * by minute), in all, and the most overdue entry the last tick found due. */
	unsigned done_per_min[60];
	time_t done_min[60];       /* the minute (Unix seconds / 60) each slot counts */
	unsigned long long ok, failed;
	unsigned long long slot_ticks;   /* ticks brought forward by a freed slot */
	long long late_max[60];    /* per minute: the latest a refresh ended after its due time */
	time_t oldest_due;         /* the earliest due time of what the last tick left due, or 0 */
	TAILQ_HEAD(, started) started;
};

/* The keys of the entries one tick refreshes. */
struct batch {
	struct cache_refresh item[REFRESH_BATCH];   /* due, most urgent first */
	size_t n;
	/* The admitted ones: their rows, leases and due times; and the deferred past a backoff. */
	struct cache_row row[REFRESH_BATCH];
	struct cache_refresh lease[REFRESH_BATCH];
	long long due_at[REFRESH_BATCH];
	struct cache_refresh later[REFRESH_BATCH];
};

static void
on_purged(const struct stapler_key *key, void *arg)
{
	struct refresher *r = arg;
	char serial[STAPLER_SERIAL_HEX_MAX], issuer_key_hash[STAPLER_SHA1_HEX];

	store_remove(r->store, key);
	stapler_key_serial_hex(key, serial);
	stapler_key_hash_hex(key, issuer_key_hash);
	log_info("purged", "serial=%s issuer=%s hash=%s params=%s reason=\"certificate expired\"",
	    serial, issuer_key_hash, stapler_hash_alg_name((enum stapler_hash_alg)key->hash_alg),
	    stapler_hash_params_name((enum stapler_hash_params)key->hash_params));
}

/* An entry nobody asked for in [cache] unused_ttl is not refreshed but removed, when it
 * comes due (at most [refresh] max_interval later): what an outsider made us fetch once is
 * not fetched again forever. Returns 1 when it was removed. */
static int
drop_unused(struct refresher *r, const struct stapler_key *key, time_t now)
{
	const struct staple *s = store_get(r->store, key);
	char serial[STAPLER_SERIAL_HEX_MAX], issuer_key_hash[STAPLER_SHA1_HEX];
	long long idle;

	if (s == NULL || (idle = (long long)(now - s->used_at)) <= r->cfg->unused_ttl)
		return 0;
	stapler_key_serial_hex(key, serial);
	stapler_key_hash_hex(key, issuer_key_hash);
	if (staple_service_evict(r->svc, key) < 0)
		return 0;
	log_info("purged", "serial=%s issuer=%s hash=%s params=%s reason=\"not asked for in %lld "
	    "s (unused_ttl %lld s)\"", serial, issuer_key_hash,
	    stapler_hash_alg_name((enum stapler_hash_alg)key->hash_alg),
	    stapler_hash_params_name((enum stapler_hash_params)key->hash_params), idle,
	    r->cfg->unused_ttl);
	return 1;
}

static void
on_refreshed(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct started *st = arg;
	struct refresher *r = st->r;
	time_t now = time(NULL), min = now / 60;
	size_t i = (size_t)(min % 60);
	long long late = (long long)(now - st->due_at);

	if (r != NULL)
		TAILQ_REMOVE(&r->started, st, link);
	free(st);
	/* The service logs the outcome and records it in the cache; here it is only counted. */
	if (r == NULL)
		return;
	if (r->done_min[i] != min) {
		r->done_min[i] = min;
		r->done_per_min[i] = 0;
		r->late_max[i] = 0;
	}
	if (late > r->late_max[i])
		r->late_max[i] = late;
	if (outcome != STAPLE_OK) {
		r->failed++;
		return;
	}
	r->ok++;
	r->done_per_min[i]++;
}

void
refresh_pace(const struct refresher *r, time_t now, struct refresh_pace *out)
{
	time_t min = now / 60;

	out->done_last_hour = 0;
	for (size_t i = 0; i < 60; i++) {
		if (r->done_min[i] > min - 60 && r->done_min[i] <= min)
			out->done_last_hour += r->done_per_min[i];
	}
	out->ok = r->ok;
	out->failed = r->failed;
	out->slot_ticks = r->slot_ticks;
	/* The most overdue entry: the earliest one the last tick left due, or one that waited
	 * in an upstream's queue and ended late within the last two minutes (queued entries
	 * carry a lease, so the tick no longer sees them as due). */
	out->behind = r->oldest_due != 0 && r->oldest_due < now ? (long long)(now - r->oldest_due) : 0;
	for (time_t m = min - 1; m <= min; m++) {
		size_t i = (size_t)(m % 60);

		if (r->done_min[i] == m && r->late_max[i] > out->behind)
			out->behind = r->late_max[i];
	}
}

/* Folds one URL into admission: 1 when its upstream can take work now; else updates *soonest
 * with when to look again. */
static int
admit_url(struct refresher *r, const char *url, time_t now, time_t *soonest)
{
	struct fetch_host_info info;
	time_t retry;

	if (fetch_host_state(r->fetch, url, now, &info) < 0)
		return 0;
	retry = info.retry_at;
	/* A backlog of REFRESH_HOST_BACKLOG times what the host may run at once: enough to keep
	 * its slots busy until the next catch-up tick, and it follows the adaptive limit. */
	if (retry == 0 && info.load < REFRESH_HOST_BACKLOG * info.limit)
		return 1;
	/* Busy, not failing: its backlog drains at its own pace, so look again at the next
	 * catch-up tick rather than a whole check_interval later. */
	if (retry == 0) {
		retry = now + 1;
		r->busy = 1;
	}
	if (*soonest == 0 || retry < *soonest)
		*soonest = retry;
	return 0;
}

/* Whether the entry's upstreams can take more work now: any of the URLs a fetch would try
 * (staple_fetch_urls(): the [responders] override, else the row's) on an upstream that is
 * neither failing nor backed up. When none can, *later says when to look again. */
static int
admit(struct refresher *r, const struct cache_row *row, time_t now, time_t *later)
{
	struct certs_urls own;
	struct stapler_key key;
	char *const *urls;
	time_t soonest = 0;
	int n, ok = 0;

	if (cache_row_key(row, &key) < 0 || certs_urls_decode(row->ocsp_urls, &own) < 0)
		return 1;       /* the service reports what is wrong with the entry */
	n = staple_fetch_urls(r->svc, key.key_hash, &own, &urls);
	for (int i = 0; i < n && !ok; i++)
		ok = admit_url(r, urls[i], now, &soonest);
	certs_urls_free(&own);
	/* Admitted, or no URL may be fetched at all (policy changed): the service reports why. */
	if (ok || soonest == 0)
		return 1;
	*later = soonest;
	return 0;
}

/* 1 when the staple in memory is due at now (its refresh time, not its row's). */
static int
memory_due(const struct refresher *r, const struct stapler_key *key, time_t now)
{
	const struct staple *s = store_get(r->store, key);

	return s != NULL && s->refresh_at != 0 && s->refresh_at <= now;
}

static void
tick(struct refresher *r)
{
	struct batch *b;
	time_t now = time(NULL);
	long long lease;
	size_t started = 0, deferred = 0, unused = 0, go = 0, later_n = 0, busy_run = 0;
	int purged = 0, n;

	r->busy = 0;
	r->catch_up = 0;
	/* At most once a second: ticks brought forward by freed slots come every few ms. */
	if (now != r->purged_at) {
		r->purged_at = now;
		purged = cache_purge_expired(r->cache, (long long)now - REFRESH_RETENTION,
		    REFRESH_PURGE_BATCH, on_purged, r);
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		log_error("refresh_tick_failed", "error=\"out of memory\"");
		return;
	}
	if ((n = cache_due(r->cache, (long long)now, REFRESH_BATCH, b->item)) < 0)
		goto out;
	b->n = (size_t)n;
	/* What stays due after this tick: the rows beyond a full batch (due no earlier than the
	 * latest due in it), and below, those left because their upstream was busy. */
	r->oldest_due = 0;
	for (size_t i = 0; b->n == REFRESH_BATCH && i < b->n; i++)
		if ((time_t)b->item[i].next_refresh_at > r->oldest_due)
			r->oldest_due = (time_t)b->item[i].next_refresh_at;
	/* Decide first, write after: rows whose fetch starts are leased in one transaction,
	 * rows of a failing upstream are moved past its backoff in another, and a row whose
	 * upstream is only busy is not written at all: it stays due, with its place (earliest
	 * first) and its age. */
	for (size_t i = 0; i < b->n; i++) {
		struct cache_row *row = &b->row[go];
		time_t later;

		/* In flight, or refreshed already with its new row still waiting to be written: the
		 * row's time is stale, the staple's in memory says when (a database that stays
		 * unwritable must not stop the refreshes, a revocation among them). */
		if (staple_service_is_pending(r->svc, &b->item[i].key) ||
		    (staple_service_write_pending(r->svc, &b->item[i].key) &&
		    !memory_due(r, &b->item[i].key, now)))
			continue;
		/* Busy upstreams all round: the rest stays due for the next tick (a freed slot
		 * brings it), instead of reading every row of the batch for nothing. */
		if (busy_run >= REFRESH_BUSY_STOP) {
			r->busy = 1;
			break;
		}
		if (drop_unused(r, &b->item[i].key, now)) {
			unused++;
			continue;
		}
		if (cache_get(r->cache, &b->item[i].key, row) != 1) {
			cache_row_clear(row);
			continue;
		}
		if (admit(r, row, now, &later)) {
			b->due_at[go] = b->item[i].next_refresh_at;
			b->lease[go].key = b->item[i].key;
			go++;
			busy_run = 0;
		} else if (later <= now + 1) {
			if (r->oldest_due == 0 || (time_t)b->item[i].next_refresh_at < r->oldest_due)
				r->oldest_due = (time_t)b->item[i].next_refresh_at;
			busy_run++;
			deferred++;
			cache_row_clear(row);
		} else {
			/* The upstream is failing: after its backoff, spread over a check_interval. */
			b->later[later_n].key = b->item[i].key;
			b->later[later_n++].next_refresh_at = (long long)later + (long long)(
			    staple_service_random(r->svc) * (double)r->cfg->refresh_check_interval);
			deferred++;
			cache_row_clear(row);
		}
	}
	/* The lease: an entry whose fetch is under way (or lost in a crash) is not picked again
	 * before every URL had its chance to time out. */
	lease = (long long)now + r->cfg->upstream_timeout * (CERTS_MAX_URLS + 1) + 30;
	for (size_t i = 0; i < go; i++)
		b->lease[i].next_refresh_at = lease;
	if (cache_set_refresh(r->cache, b->lease, go) < 0 &&
	    log_limit_allow(&r->lease_log, (long long)now, NULL)) {
		/* Refreshes go on without the lease (it only guards against a crash): a revocation
		 * must be seen even while another process holds the database. */
		log_warn("refresh_lease_failed", "fault=%s due=%zu reason=\"%s\"",
		    cache_fault_name(cache_fault(r->cache)), go, cache_errmsg(r->cache));
	}
	(void)cache_set_refresh(r->cache, b->later, later_n);
	for (size_t i = 0; i < go; i++) {
		struct staple_answer ans;
		struct started *st;

		if ((st = calloc(1, sizeof(*st))) != NULL) {
			st->r = r;
			st->due_at = (time_t)b->due_at[i];
			/* NULL: nothing started (the service logged and recorded why). */
			if (staple_refresh_row(r->svc, &b->row[i], now, &ans, on_refreshed, st) != NULL) {
				TAILQ_INSERT_TAIL(&r->started, st, link);
				started++;
			} else {
				free(st);
			}
		}
		cache_row_clear(&b->row[i]);
	}
	/* More is due than one tick takes, or an upstream was only busy, and the tick got work
	 * started: the next tick comes soon, so refreshing runs at the upstreams' pace, not at
	 * 32 per host per check_interval. Each tick stays bounded (REFRESH_BATCH rows,
	 * REFRESH_HOST_BACKLOG times the limit per host); a tick that started nothing waits the
	 * full interval, unless a freed slot brings the next one (on_refresh_low()). */
	r->catch_up = started > 0 && (b->n == REFRESH_BATCH || r->busy);
	r->more = b->n == REFRESH_BATCH || r->busy;
out:
	if (b->n > 0 || purged > 0)
		log_info("refresh_tick", "due=%zu started=%zu deferred=%zu purged=%d unused=%zu", b->n,
		    started, deferred, purged, unused);
	free(b);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct refresher *r = arg;
	struct timeval tv = { (time_t)r->cfg->refresh_check_interval, 0 };
	struct timeval soon = { 0, REFRESH_CATCHUP_MS * 1000 };

	r->soon = 0;
	tick(r);
	evtimer_add(r->timer, r->catch_up && r->cfg->refresh_check_interval > 0 ? &soon : &tv);
}

/* The fetcher's refresh queue runs low: when due work was left, the next tick comes in
 * REFRESH_SLOT_MS (once: completions in between do not push it back). */
static void
on_refresh_low(void *arg)
{
	struct refresher *r = arg;
	struct timeval tv = { 0, REFRESH_SLOT_MS * 1000 };

	if (!r->more || r->soon)
		return;
	r->soon = 1;
	r->slot_ticks++;
	evtimer_add(r->timer, &tv);
}

struct refresher *
refresh_new(struct event_base *base, const struct stapler_config *cfg, struct cache *cache,
    struct store *store, struct staple_service *svc, struct fetcher *fetch)
{
	struct refresher *r = calloc(1, sizeof(*r));
	struct timeval tv = { (time_t)cfg->refresh_check_interval, 0 };

	if (r == NULL)
		return NULL;
	r->base = base;
	r->cfg = cfg;
	r->cache = cache;
	r->lease_log = LOG_LIMIT_ONCE_PER(60);
	r->store = store;
	r->svc = svc;
	r->fetch = fetch;
	TAILQ_INIT(&r->started);
	if ((r->timer = evtimer_new(base, on_timer, r)) == NULL || evtimer_add(r->timer, &tv) < 0) {
		refresh_free(&r);
		return NULL;
	}
	fetch_on_refresh_low(fetch, on_refresh_low, r);
	return r;
}

void
refresh_free(struct refresher **rp)
{
	struct refresher *r;
	struct started *st;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	/* Refreshes still running end later (or when the service drops them): they must not
	 * reach a freed timer. */
	while ((st = TAILQ_FIRST(&r->started)) != NULL) {
		TAILQ_REMOVE(&r->started, st, link);
		st->r = NULL;
	}
	if (r->fetch != NULL)
		fetch_on_refresh_low(r->fetch, NULL, NULL);
	if (r->timer != NULL)
		event_free(r->timer);
	free(r);
	*rp = NULL;
}

void
refresh_set_config(struct refresher *r, const struct stapler_config *cfg)
{
	r->cfg = cfg;
}

int
refresh_warm_start(struct refresher *r, long long now, int limit)
{
	long long spread = r->cfg->refresh_check_interval * REFRESH_WARM_SPREAD_TICKS;
	int n;

	if (spread > REFRESH_WARM_SPREAD_MAX)
		spread = REFRESH_WARM_SPREAD_MAX;
	if ((n = cache_spread_due(r->cache, now, spread, limit)) < 0)
		return -1;
	r->spread += (long long)n;
	if (n >= limit)
		return 1;
	if (r->spread > 0)
		log_info("warm_start_spread", "due=%lld over_seconds=%lld", r->spread, spread);
	return 0;
}
