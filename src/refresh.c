/* The refresh timer: applies the refresh policy (sched.c) to the cache on every tick, with
 * bounded batches, per-host limits and failure backoff, so that staples stay fresh without a
 * refetch storm against any upstream. */
#include <stdlib.h>
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

struct refresher {
	struct event_base *base;
	const struct stapler_config *cfg;
	struct cache *cache;
	struct store *store;
	struct staple_service *svc;
	struct fetcher *fetch;
	struct event *timer;
	time_t lease_logged;       /* a failing lease write is logged once a minute */
	int busy;                  /* the last tick left due work for a busy upstream */
	int catch_up;              /* the next tick comes after REFRESH_CATCHUP_MS */
};

/* The keys of the entries one tick refreshes. */
struct batch {
	struct cache_refresh item[REFRESH_BATCH];
	size_t n;
};

static void
on_purged(const struct stapler_key *key, void *arg)
{
	struct refresher *r = arg;
	char serial[STAPLER_SERIAL_HEX_MAX], issuer_key_hash[STAPLER_SHA1_HEX];

	store_remove(r->store, key);
	stapler_key_serial_hex(key, serial);
	stapler_key_hash_hex(key, issuer_key_hash);
	log_info("purged", "serial=%s issuer=%s hash=%s reason=\"certificate expired\"", serial,
	    issuer_key_hash, stapler_hash_alg_name((enum stapler_hash_alg)key->hash_alg));
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
	log_info("purged", "serial=%s issuer=%s hash=%s reason=\"not asked for in %lld s "
	    "(unused_ttl %lld s)\"", serial, issuer_key_hash,
	    stapler_hash_alg_name((enum stapler_hash_alg)key->hash_alg), idle, r->cfg->unused_ttl);
	return 1;
}

static void
on_refreshed(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	/* The service logs the outcome and records it in the cache. */
}

/* Folds one URL into admission: 1 when its upstream can take work now; else updates *soonest
 * with when to look again. */
static int
admit_url(struct refresher *r, const char *url, time_t now, time_t *soonest)
{
	time_t retry;
	int load;

	if (fetch_host_state(r->fetch, url, now, &load, &retry) < 0)
		return 0;
	if (retry == 0 && load < REFRESH_HOST_BACKLOG)
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
	size_t started = 0, deferred = 0, unused = 0;
	int purged, n;

	r->busy = 0;
	r->catch_up = 0;
	purged = cache_purge_expired(r->cache, (long long)now - REFRESH_RETENTION, REFRESH_PURGE_BATCH,
	    on_purged, r);
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		log_error("refresh_tick_failed", "error=\"out of memory\"");
		return;
	}
	if ((n = cache_due(r->cache, (long long)now, REFRESH_BATCH, b->item)) < 0)
		goto out;
	b->n = (size_t)n;
	/* A lease first, in one transaction: an entry whose fetch is under way (or lost in a
	 * crash) is not picked again before every URL had its chance to time out. */
	lease = (long long)now + r->cfg->upstream_timeout * (CERTS_MAX_URLS + 1) + 30;
	for (size_t i = 0; i < b->n; i++)
		b->item[i].next_refresh_at = lease;
	if (cache_set_refresh(r->cache, b->item, b->n) < 0 && now - r->lease_logged >= 60) {
		/* Refreshes go on without the lease (it only guards against a crash): a revocation
		 * must be seen even while another process holds the database. */
		log_warn("refresh_lease_failed", "fault=%s due=%zu reason=\"%s\"",
		    cache_fault_name(cache_fault(r->cache)), b->n, cache_errmsg(r->cache));
		r->lease_logged = now;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct staple_answer ans;
		struct cache_row row;
		time_t later;

		/* In flight, or refreshed already with its new row still waiting to be written: the
		 * row's time is stale, the staple's in memory says when (a database that stays
		 * unwritable must not stop the refreshes, a revocation among them). */
		if (staple_service_is_pending(r->svc, &b->item[i].key) ||
		    (staple_service_write_pending(r->svc, &b->item[i].key) &&
		    !memory_due(r, &b->item[i].key, now)))
			continue;
		if (drop_unused(r, &b->item[i].key, now)) {
			unused++;
			continue;
		}
		if (cache_get(r->cache, &b->item[i].key, &row) != 1) {
			cache_row_clear(&row);
			continue;
		}
		if (!admit(r, &row, now, &later)) {
			/* The host is failing or busy: come back after its backoff, spread a little. */
			struct cache_refresh again = b->item[i];

			/* After a backoff: spread over a check_interval. A host that was only busy:
			 * due again at once, for the catch-up tick that follows this one. */
			again.next_refresh_at = later <= now + 1 ? (long long)now : (long long)later +
			    (long long)(staple_service_random(r->svc) * (double)r->cfg->refresh_check_interval);
			cache_set_refresh(r->cache, &again, 1);
			deferred++;
		} else {
			/* NULL: nothing started (the service logged and recorded why). */
			if (staple_refresh_row(r->svc, &row, now, &ans, on_refreshed, NULL) != NULL)
				started++;
		}
		cache_row_clear(&row);
	}
	/* More is due than one tick takes, or an upstream was only busy, and the tick got work
	 * started: the next tick comes soon, so refreshing runs at the upstreams' pace, not at
	 * 32 per host per check_interval. Each tick stays bounded (REFRESH_BATCH rows,
	 * REFRESH_HOST_BACKLOG per host); a tick that started nothing waits the full interval. */
	r->catch_up = started > 0 && (b->n == REFRESH_BATCH || r->busy);
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

	tick(r);
	evtimer_add(r->timer, r->catch_up && r->cfg->refresh_check_interval > 0 ? &soon : &tv);
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
	r->store = store;
	r->svc = svc;
	r->fetch = fetch;
	if ((r->timer = evtimer_new(base, on_timer, r)) == NULL || evtimer_add(r->timer, &tv) < 0) {
		refresh_free(&r);
		return NULL;
	}
	return r;
}

void
refresh_free(struct refresher **rp)
{
	struct refresher *r;

	if (rp == NULL || (r = *rp) == NULL)
		return;
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
refresh_warm_start(struct refresher *r, long long now)
{
	long long spread = r->cfg->refresh_check_interval * REFRESH_WARM_SPREAD_TICKS;
	int n;

	if (spread > REFRESH_WARM_SPREAD_MAX)
		spread = REFRESH_WARM_SPREAD_MAX;
	if ((n = cache_spread_due(r->cache, now, spread)) < 0)
		return -1;
	if (n > 0)
		log_info("warm_start_spread", "due=%d over_seconds=%lld", n, spread);
	return 0;
}
