/* The daemon: builds every part on one event_base, warm-starts the memory index from SQLite,
 * and turns signals into events: HUP reloads, the first TERM/INT drains (bounded by
 * drain_timeout), the second exits. Tells systemd (notify.c) when it is ready, reloading or
 * stopping, and what it is doing. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "admin.h"
#include "crl.h"
#include "daemon.h"
#include "events.h"
#include "fetch.h"
#include "http_api.h"
#include "persist.h"
#include "refresh.h"
#include "staple.h"
#include "cache.h"
#include "certs.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "store.h"
#include "watch.h"
#include "webhook.h"

/* How often a draining daemon checks whether in-flight work is done. */
#define DRAIN_TICK_MS 100
/* After drain_timeout the waiters left are answered 503; their replies get this long to
 * leave before the loop ends regardless (milliseconds). */
#define DRAIN_GRACE_MS 1000
/* How often the STATUS= line for systemd is refreshed (only when it changed). */
#define STATUS_INTERVAL_S 5
/* The background load: the longest pause between slices ([cache] load_max_cpu), and the
 * pause after a slice the database failed (the load is tried again, the log says so at most
 * once a minute). */
#define LOAD_PAUSE_MAX_US 1000000
#define LOAD_RETRY_US 1000000
/* Due entries the warm start spreads per turn, once the rows are loaded: each is a row
 * rewritten (about 14 us), so a few milliseconds of writes a turn. */
#define SPREAD_BATCH 256

struct daemon {
	struct event_base *base;
	struct stapler_config *cfg;
	struct certs_trust *trust;
	struct cache *cache;
	struct store *store;
	struct fetcher *fetch;
	struct persist *persist;
	struct staple_service *svc;
	struct http_api *api;
	struct refresher *refresh;
	struct admin *admin;
	struct events *events;
	struct webhook *webhook;
	struct watch *watch;
	struct crl *crl;
	struct event *sig_term, *sig_int, *sig_hup, *drain;
	/* the warm start's slices, and when the daemon started (for the log line at the end) */
	struct event *load;
	struct timespec started;
	time_t load_failed_logged;
	long long spread_now;   /* the start: entries due then are spread, after the load */
	int spreading;
	int stopping;
	int idle_ticks;
	/* systemd notification (NULL without NOTIFY_SOCKET) and the STATUS= text sent last */
	struct notify *notify;
	struct event *status_tick;
	char status[NOTIFY_MSG_MAX];
	char note[640];        /* leads every STATUS= until cleared: the last reload failed */
	/* the drain: when it started, and whether drain_timeout has passed */
	struct timespec drain_start;
	int drain_expired;
};

int
daemon_apply_log_level(const struct stapler_config *cfg)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(cfg->log_level, levels[i]) == 0) {
			log_set_level((enum log_level)i);
			return 0;
		}
	}
	return -1;
}

/* What systemctl status shows: the load while it runs, the cache, the fetches, the
 * upstreams in trouble. */
/* The write-behind queue reports to the event hub through these (persist.c knows no hub). */
static void
hub_raise(void *arg, struct event_rec *rec)
{
	events_raise(arg, rec);
}

static void
hub_written(void *arg, size_t n)
{
	events_written(arg, n);
}

static void
status_text(const struct daemon *d, const char *prefix, char *buf, size_t cap)
{
	struct staple_load_progress lp;
	char loading[128] = "";
	size_t by[3];

	if (prefix == NULL && d->note[0] != '\0')
		prefix = d->note;
	store_count_status(d->store, by);
	staple_service_load_progress(d->svc, &lp);
	if (lp.phase == STAPLE_LOADING)
		snprintf(loading, sizeof(loading), "loading the cache: %zu of at most %lld rows "
		    "(the rest answered from the database); ", lp.rows, lp.bound);
	snprintf(buf, cap, "%s%s%sserving %zu staples (%zu good, %zu revoked, %zu unknown); "
	    "%zu fetches running, %zu queued; %zu upstreams failing", prefix != NULL ? prefix : "",
	    prefix != NULL ? "; " : "", loading, store_count(d->store), by[STAPLER_GOOD],
	    by[STAPLER_REVOKED], by[STAPLER_UNKNOWN], fetch_active(d->fetch), fetch_queued(d->fetch),
	    fetch_hosts_failing(d->fetch));
}

/* Sends head (READY=1, STOPPING=1, or NULL for a status update) with the current status. */
static void
notify_state(struct daemon *d, const char *head, const char *prefix)
{
	if (d->notify == NULL)
		return;
	status_text(d, prefix, d->status, sizeof(d->status));
	if (notify_send(d->notify, head, d->status) < 0)
		log_debug("notify_failed", "message=\"%s\"", head != NULL ? head : "STATUS");
}

static void
on_status_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char now[sizeof(d->status)];

	if (d->stopping)
		return;
	status_text(d, NULL, now, sizeof(now));
	if (strcmp(now, d->status) != 0)
		notify_state(d, NULL, NULL);
}

/* Runs on the first loop turn: the cache is loaded and every listener accepts. */
static void
on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	if (!d->stopping)
		notify_state(d, "READY=1", NULL);
}

static long long
elapsed_us(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - since->tv_sec) * 1000000 +
	    (now.tv_nsec - since->tv_nsec) / 1000;
}

static long long
drain_elapsed_ms(const struct daemon *d)
{
	return elapsed_us(&d->drain_start) / 1000;
}

/* The warm start's pause after a slice that took busy_us: none at [cache] load_max_cpu =
 * 100 (the loop still serves what is waiting between slices), else so that the load keeps
 * to that share of the loop; at most LOAD_PAUSE_MAX_US. */
long long
daemon_load_pause_us(long long busy_us, long max_cpu)
{
	long long pause;

	if (max_cpu >= 100 || max_cpu <= 0 || busy_us <= 0)
		return 0;
	pause = busy_us * (100 - max_cpu) / max_cpu;
	return pause < LOAD_PAUSE_MAX_US ? pause : LOAD_PAUSE_MAX_US;
}

/* The refresh's start spread, SPREAD_BATCH rows a turn; a database that refuses it is not
 * fatal (due entries are then refreshed as they come). */
static void
spread_step(struct daemon *d)
{
	int rc = refresh_warm_start(d->refresh, d->spread_now, SPREAD_BATCH);

	if (rc < 0)
		log_warn("warm_start_spread_failed", "reason=\"the cache refused the update; due "
		    "entries are refreshed as they come\"");
	if (rc <= 0)
		d->spreading = 0;
}

/* One turn of the warm start's background work: a slice of [cache] load_batch rows, or once
 * every row is loaded, a slice of the spread of the entries due at the start; then back to
 * the loop. */
static void
on_load(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct staple_load_progress lp;
	struct timespec t0;
	struct timeval pause = { 0, 0 };
	long long us;
	int rc = 1;

	if (d->stopping)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	staple_service_load_progress(d->svc, &lp);
	if (lp.phase == STAPLE_LOADING && (rc = staple_service_load_step(d->svc,
	    d->cfg->load_batch)) == 0) {
		staple_service_load_progress(d->svc, &lp);
		log_info("cache_loaded", "rows=%zu cached=%zu seconds=%.2f read_by_key=%zu",
		    lp.rows, store_count(d->store), (double)elapsed_us(&d->started) / 1e6,
		    lp.by_key);
		notify_state(d, NULL, NULL);
	} else if (lp.phase != STAPLE_LOADING && d->spreading) {
		spread_step(d);
	}
	us = elapsed_us(&t0);
	staple_service_load_progress(d->svc, &lp);
	if (lp.phase != STAPLE_LOADING && !d->spreading)
		return;
	if (rc < 0) {
		us = LOAD_RETRY_US;
		if (time(NULL) - d->load_failed_logged >= 60) {
			d->load_failed_logged = time(NULL);
			log_error("cache_load_failed", "reason=\"the database could not be read; "
			    "tried again every second, and entries are read by key meanwhile\"");
		}
	} else {
		us = daemon_load_pause_us(us, d->cfg->load_max_cpu);
	}
	pause.tv_sec = (time_t)(us / 1000000);
	pause.tv_usec = (suseconds_t)(us % 1000000);
	if (event_add(d->load, &pause) < 0)
		log_error("cache_load_failed", "reason=\"cannot schedule the next slice\"");
}

static void
on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	long long elapsed = drain_elapsed_ms(d);

	/* Past drain_timeout, every fetch left is cancelled: its waiting clients get 503 now,
	 * so the stop fits systemd's TimeoutStopSec whatever the upstreams do. */
	if (!d->drain_expired && elapsed >= d->cfg->drain_timeout * 1000) {
		size_t waiting = http_api_waiting(d->api) + admin_waiting(d->admin);
		size_t cancelled = staple_service_drop_pending(d->svc, 1);

		d->drain_expired = 1;
		log_warn("drain_timeout", "seconds=%lld fetches_cancelled=%zu waiting=%zu",
		    d->cfg->drain_timeout, cancelled, waiting);
	}
	/* Wait until no client waits for an upstream answer, then one more tick so the last
	 * replies leave the socket buffers. */
	if (http_api_waiting(d->api) == 0 && admin_waiting(d->admin) == 0 &&
	    staple_service_pending(d->svc) == 0)
		d->idle_ticks++;
	if (d->idle_ticks >= 2 || (d->drain_expired &&
	    elapsed >= d->cfg->drain_timeout * 1000 + DRAIN_GRACE_MS))
		event_base_loopexit(d->base, NULL);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };
	size_t dropped;

	if (d->stopping) {
		log_warn("stopping_now", "signal=%d", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	notify_state(d, "STOPPING=1", "stopping");
	http_api_shutdown(d->api);
	staple_service_drain(d->svc);
	admin_shutdown(d->admin);
	/* No new refresh work, and the refreshes in flight end now: nobody waits for them, and
	 * each could take timeout x URLs. Their entries keep their responses and leases. */
	http_api_set_refresher(d->api, NULL);
	admin_set_pace(d->admin, d->fetch, NULL);
	watch_set_refresher(d->watch, NULL);
	refresh_free(&d->refresh);
	dropped = staple_service_drop_pending(d->svc, 0);
	log_info("stopping", "signal=%d waiting=%zu refreshes_dropped=%zu drain_timeout=%lld",
	    (int)sig, http_api_waiting(d->api) + admin_waiting(d->admin), dropped,
	    d->cfg->drain_timeout);
	clock_gettime(CLOCK_MONOTONIC, &d->drain_start);
	if ((d->drain = event_new(d->base, -1, EV_PERSIST, on_drain, d)) == NULL ||
	    event_add(d->drain, &tick) < 0)
		event_base_loopbreak(d->base);
}

/* Loads the file and the trust bundle and swaps them in; returns 0, or -1 with err set when
 * either does not load (the old ones stay). */
static int
reload(struct daemon *d, char *err, size_t errlen)
{
	struct stapler_config *ncfg;
	struct certs_trust *ntrust;
	char names[256];
	int kept;

	if ((ncfg = config_load(d->cfg->path, err, errlen)) == NULL) {
		log_error("reload_failed", "error=\"%s\"", err);
		return -1;
	}
	if ((ntrust = certs_trust_load(ncfg->ca_file, err, errlen)) == NULL) {
		log_error("reload_failed", "error=\"%s\"", err);
		config_free(&ncfg);
		return -1;
	}
	if ((kept = config_keep_restart_only(d->cfg, ncfg, names, sizeof(names))) < 0) {
		snprintf(err, errlen, "out of memory");
		log_error("reload_failed", "error=\"%s\"", err);
		certs_trust_free(&ntrust);
		config_free(&ncfg);
		return -1;
	}
	if (kept > 0)
		log_warn("reload_partial", "keys=\"%s\" reason=\"these change only at restart; the "
		    "running values stay until then\"", names);
	daemon_apply_log_level(ncfg);
	staple_service_reload(d->svc, ncfg, ntrust);
	fetch_set_config(d->fetch, ncfg);
	http_api_set_config(d->api, ncfg);
	refresh_set_config(d->refresh, ncfg);
	admin_set_config(d->admin, ncfg);
	events_set_config(d->events, ncfg);
	watch_set_config(d->watch, ncfg);
	webhook_set_config(d->webhook, ncfg);
	crl_set_config(d->crl, ncfg);
	certs_trust_free(&d->trust);
	config_free(&d->cfg);
	d->trust = ntrust;
	d->cfg = ncfg;
	log_info("reloaded", "config=\"%s\" anchors=%d", d->cfg->path, certs_trust_count(d->trust));
	return 0;
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	char err[512];

	if (d->stopping) {
		log_info("reload_ignored", "reason=\"stopping\"");
		return;
	}
	/* systemd shows "reloading" until READY=1 comes back, whatever the outcome. */
	if (notify_reloading(d->notify, "reloading the configuration") < 0)
		log_debug("notify_failed", "message=RELOADING");
	if (reload(d, err, sizeof(err)) == 0) {
		d->note[0] = '\0';
		notify_state(d, "READY=1", "reloaded");
		return;
	}
	/* Still serving with the old configuration; the status says so until a reload works. */
	snprintf(d->note, sizeof(d->note), "last reload failed, previous configuration kept: %s", err);
	notify_state(d, "READY=1", NULL);
}

static void
daemon_free(struct daemon *d)
{
	/* Order matters: the HTTP side first (no more callbacks into the service), then the
	 * fetcher (its cancelled callbacks still reach the service), then the rest. */
	admin_free(&d->admin);
	if (d->fetch != NULL)
		fetch_set_serving_probe(d->fetch, NULL, NULL);
	http_api_free(&d->api);
	watch_free(&d->watch);
	refresh_free(&d->refresh);
	/* Deliveries in flight end before the fetcher (their callbacks reach the deliverer);
	 * events the last writes carry are delivered at the next start. */
	if (d->persist != NULL)
		persist_set_events(d->persist, &(struct persist_events){ hub_raise, hub_written,
		    d->events, NULL, NULL });
	webhook_free(&d->webhook);
	if (d->svc != NULL)
		staple_service_set_crl(d->svc, NULL, NULL);
	crl_free(&d->crl);
	fetch_free(&d->fetch);
	staple_service_free(&d->svc);
	persist_free(&d->persist);
	events_free(&d->events);
	store_free(&d->store);
	cache_close(&d->cache);
	certs_trust_free(&d->trust);
	if (d->sig_term != NULL)
		event_free(d->sig_term);
	if (d->sig_int != NULL)
		event_free(d->sig_int);
	if (d->sig_hup != NULL)
		event_free(d->sig_hup);
	if (d->drain != NULL)
		event_free(d->drain);
	if (d->load != NULL)
		event_free(d->load);
	if (d->status_tick != NULL)
		event_free(d->status_tick);
	notify_close(&d->notify);
	if (d->base != NULL)
		event_base_free(d->base);
	config_free(&d->cfg);
}

/* The one event_base. Single-threaded, so no locks; with the epoll changelist, an event that
 * is added and removed within one loop turn (a response written at once) costs no epoll_ctl. */
static struct event_base *
base_new(void)
{
	struct event_config *ec;
	struct event_base *base;

	if ((ec = event_config_new()) == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

/* The soft descriptor limit goes up to the hard one (systemd's default soft 1024 would cap
 * the connections well below what the unit allows); the HTTP connection cap is sized from it. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("rlimit_not_raised", "resource=nofile");
}

int
daemon_run(struct stapler_config *cfg)
{
	struct daemon d = { .cfg = cfg };
	struct timeval now = { 0, 0 }, status_every = { STATUS_INTERVAL_S, 0 };
	char err[512], journal[4096];
	struct staple_load_progress lp;
	int rc = 1;

	clock_gettime(CLOCK_MONOTONIC, &d.started);
	signal(SIGPIPE, SIG_IGN);
	if (notify_open(getenv("NOTIFY_SOCKET"), &d.notify, err, sizeof(err)) < 0)
		log_warn("notify_unavailable", "error=\"%s\"", err);
	raise_nofile();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("startup_failed", "error=\"curl_global_init failed\"");
		goto out;
	}
	if ((d.trust = certs_trust_load(cfg->ca_file, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	/* A database that can be read but not written is served from (docs/contract.md §8.11):
	 * reported degraded, new staples kept in memory and written once it can be. */
	if ((d.cache = cache_open(cfg->database, CACHE_OPEN_FALLBACK, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	if (!cache_writable(d.cache))
		log_warn("database_not_writable", "path=\"%s\" reason=\"%s\" action=\"serving what "
		    "it holds; new staples are kept in memory and written once it can be (a remount "
		    "or a chmod is noticed without a restart)\"", cfg->database, err);
	if ((d.base = base_new()) == NULL || (d.store = store_new()) == NULL ||
	    (d.fetch = fetch_new(d.base, d.cfg)) == NULL ||
	    (d.svc = staple_service_new(d.cfg, d.trust, d.cache, d.store, d.fetch)) == NULL) {
		log_error("startup_failed", "error=\"out of memory\"");
		goto out;
	}
	/* Warm start: the issuers and the index now, the rows in slices once the listener
	 * answers; every valid cached staple is served from the first request (from its row
	 * until its slice comes). */
	if (d.notify != NULL && notify_send(d.notify, NULL, "loading the cache") < 0)
		log_debug("notify_failed", "message=STATUS");
	if (staple_service_load_begin(d.svc) < 0) {
		log_error("startup_failed", "error=\"cannot read the cache\"");
		goto out;
	}
	if ((d.refresh = refresh_new(d.base, d.cfg, d.cache, d.store, d.svc, d.fetch)) == NULL) {
		log_error("startup_failed", "error=\"cannot start the refresh timer\"");
		goto out;
	}
	/* Entries due now are spread over the first minutes once the rows are loaded (on_load(),
	 * in slices: after a long stop that is a write to every row). Not fatal: a full disk
	 * must not stop the cached staples from being served. */
	d.spread_now = (long long)time(NULL);
	d.spreading = cache_writable(d.cache);
	/* From here on the loop never waits on the database lock: writes the database refuses
	 * now are kept and retried, revocations among them also in the journal beside it. */
	snprintf(journal, sizeof(journal), "%s-revocations", cfg->database);
	if ((d.persist = persist_new(d.base, d.cache, journal)) == NULL) {
		log_error("startup_failed", "error=\"out of memory\"");
		goto out;
	}
	staple_service_set_persist(d.svc, d.persist);
	/* Events ride in the writes of the changes that cause them; the deliverer is told when
	 * they land. Before the journal's replay, which raises its revocations' events again. */
	if ((d.events = events_new(d.cfg)) == NULL ||
	    (d.webhook = webhook_new(d.base, d.cfg, d.cache, d.fetch, d.events)) == NULL) {
		log_error("startup_failed", "error=\"cannot start event delivery\"");
		goto out;
	}
	events_set_persist(d.events, d.persist);
	events_set_kick(d.events, webhook_kick, d.webhook);
	persist_set_events(d.persist, &(struct persist_events){ hub_raise, hub_written, d.events,
	    webhook_kick, d.webhook });
	staple_service_set_events(d.svc, d.events);
	if (staple_service_replay_journal(d.svc) < 0)
		log_warn("journal_unreadable", "path=\"%s\"", journal);
	/* The CRLs held are applied to the staples loaded, before the first request. */
	if ((d.crl = crl_new(d.base, d.cfg, d.cache, d.fetch, d.svc, d.events)) == NULL) {
		log_error("startup_failed", "error=\"cannot start the CRL poller\"");
		goto out;
	}
	staple_service_set_crl(d.svc, d.crl, &(struct staple_crl_ops){ crl_check, crl_learn });
	if ((d.watch = watch_new(d.base, d.cfg, d.fetch, d.refresh, d.events)) == NULL) {
		log_error("startup_failed", "error=\"cannot start the watch\"");
		goto out;
	}
	if ((d.api = http_api_new(d.base, d.cfg, d.svc, d.fetch, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	http_api_set_refresher(d.api, d.refresh);
	/* While clients are served, refreshing keeps to [refresh] max_cpu of the loop. */
	fetch_set_serving_probe(d.fetch, http_api_answered, d.api);
	if ((d.admin = admin_new(d.base, d.cfg, d.cache, d.svc, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	admin_set_pace(d.admin, d.fetch, d.refresh);
	if ((d.sig_term = evsignal_new(d.base, SIGTERM, on_stop, &d)) == NULL ||
	    (d.sig_int = evsignal_new(d.base, SIGINT, on_stop, &d)) == NULL ||
	    (d.sig_hup = evsignal_new(d.base, SIGHUP, on_hup, &d)) == NULL ||
	    evsignal_add(d.sig_term, NULL) < 0 || evsignal_add(d.sig_int, NULL) < 0 ||
	    evsignal_add(d.sig_hup, NULL) < 0) {
		log_error("startup_failed", "error=\"cannot install signal handlers\"");
		goto out;
	}
	if (d.notify != NULL && (event_base_once(d.base, -1, EV_TIMEOUT, on_ready, &d, &now) < 0 ||
	    (d.status_tick = event_new(d.base, -1, EV_PERSIST, on_status_tick, &d)) == NULL ||
	    event_add(d.status_tick, &status_every) < 0)) {
		log_error("startup_failed", "error=\"cannot schedule the readiness notification\"");
		goto out;
	}
	/* The revocation journal is replayed above, before the first slice: an entry it put
	 * back is in memory, and the slices never replace an entry held. */
	if ((d.load = event_new(d.base, -1, 0, on_load, &d)) == NULL || event_add(d.load, &now) < 0) {
		log_error("startup_failed", "error=\"cannot schedule the cache load\"");
		goto out;
	}
	staple_service_load_progress(d.svc, &lp);
	log_info("started", "version=%s config=\"%s\" anchors=%d cached=%zu phase=%s "
	    "rows_to_load=%lld seconds=%.3f", STAPLER_VERSION, cfg->path != NULL ? cfg->path : "",
	    certs_trust_count(d.trust), store_count(d.store), staple_load_phase_name(lp.phase),
	    lp.bound, (double)elapsed_us(&d.started) / 1e6);
	if (event_base_dispatch(d.base) < 0) {
		log_error("loop_failed", "error=\"event_base_dispatch\"");
		goto out;
	}
	/* One self-contained file left behind: the WAL folded in and truncated. */
	if (cache_checkpoint(d.cache) == 0)
		log_info("checkpointed", "database=\"%s\"", d.cfg->database);
	log_info("stopped", "cached=%zu", store_count(d.store));
	rc = 0;
out:
	daemon_free(&d);
	curl_global_cleanup();
	return rc;
}
