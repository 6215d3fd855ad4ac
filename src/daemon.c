/* The daemon: builds every part on one event_base, warm-starts the memory index from SQLite,
 * and turns signals into events: HUP reloads, the first TERM/INT drains, the second exits. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "admin.h"
#include "daemon.h"
#include "fetch.h"
#include "http_api.h"
#include "refresh.h"
#include "staple.h"
#include "cache.h"
#include "certs.h"
#include "config.h"
#include "log.h"
#include "store.h"

/* How often a draining daemon checks whether in-flight work is done. */
#define DRAIN_TICK_MS 100

struct daemon {
	struct event_base *base;
	struct stapler_config *cfg;
	struct certs_trust *trust;
	struct cache *cache;
	struct store *store;
	struct fetcher *fetch;
	struct staple_service *svc;
	struct http_api *api;
	struct refresher *refresh;
	struct admin *admin;
	struct event *sig_term, *sig_int, *sig_hup, *drain;
	int stopping;
	int idle_ticks;
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

static void
on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	/* Wait until no client waits for an upstream answer, then one more tick so the last
	 * replies leave the socket buffers. */
	if (http_api_waiting(d->api) == 0 && admin_waiting(d->admin) == 0 &&
	    staple_service_pending(d->svc) == 0)
		d->idle_ticks++;
	if (d->idle_ticks >= 2)
		event_base_loopexit(d->base, NULL);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };

	if (d->stopping) {
		log_warn("stopping_now", "signal=%d", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_info("stopping", "signal=%d waiting=%zu", (int)sig, http_api_waiting(d->api));
	http_api_shutdown(d->api);
	admin_shutdown(d->admin);
	if ((d->drain = event_new(d->base, -1, EV_PERSIST, on_drain, d)) == NULL ||
	    event_add(d->drain, &tick) < 0)
		event_base_loopbreak(d->base);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct stapler_config *ncfg;
	struct certs_trust *ntrust;
	char err[512];

	if ((ncfg = config_load(d->cfg->path, err, sizeof(err))) == NULL) {
		log_error("reload_failed", "error=\"%s\"", err);
		return;
	}
	if ((ntrust = certs_trust_load(ncfg->ca_file, err, sizeof(err))) == NULL) {
		log_error("reload_failed", "error=\"%s\"", err);
		config_free(&ncfg);
		return;
	}
	if (strcmp(ncfg->listen, d->cfg->listen) != 0 || strcmp(ncfg->database, d->cfg->database) != 0 ||
	    strcmp(ncfg->admin_socket, d->cfg->admin_socket) != 0)
		log_warn("reload_partial", "reason=\"listen, database and admin_socket change only at restart\"");
	daemon_apply_log_level(ncfg);
	staple_service_reload(d->svc, ncfg, ntrust);
	fetch_set_config(d->fetch, ncfg);
	http_api_set_config(d->api, ncfg);
	refresh_set_config(d->refresh, ncfg);
	admin_set_config(d->admin, ncfg);
	certs_trust_free(&d->trust);
	config_free(&d->cfg);
	d->trust = ntrust;
	d->cfg = ncfg;
	log_info("reloaded", "config=\"%s\" anchors=%d", d->cfg->path, certs_trust_count(d->trust));
}

static void
daemon_free(struct daemon *d)
{
	/* Order matters: the HTTP side first (no more callbacks into the service), then the
	 * fetcher (its cancelled callbacks still reach the service), then the rest. */
	admin_free(&d->admin);
	http_api_free(&d->api);
	refresh_free(&d->refresh);
	fetch_free(&d->fetch);
	staple_service_free(&d->svc);
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
	char err[512];
	long loaded;
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("startup_failed", "error=\"curl_global_init failed\"");
		goto out;
	}
	if ((d.trust = certs_trust_load(cfg->ca_file, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	if ((d.cache = cache_open(cfg->database, 0, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	if ((d.base = base_new()) == NULL || (d.store = store_new()) == NULL ||
	    (d.fetch = fetch_new(d.base, d.cfg)) == NULL ||
	    (d.svc = staple_service_new(d.cfg, d.trust, d.cache, d.store, d.fetch)) == NULL) {
		log_error("startup_failed", "error=\"out of memory\"");
		goto out;
	}
	/* Warm start before listening: every valid cached staple is served from the first request. */
	if ((loaded = staple_service_load(d.svc)) < 0) {
		log_error("startup_failed", "error=\"cannot load the cache\"");
		goto out;
	}
	if ((d.refresh = refresh_new(d.base, d.cfg, d.cache, d.store, d.svc, d.fetch)) == NULL ||
	    refresh_warm_start(d.refresh, (long long)time(NULL)) < 0) {
		log_error("startup_failed", "error=\"cannot start the refresh timer\"");
		goto out;
	}
	if ((d.api = http_api_new(d.base, d.cfg, d.svc, d.store, d.fetch, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	if ((d.admin = admin_new(d.base, d.cfg, d.cache, d.svc, err, sizeof(err))) == NULL) {
		log_error("startup_failed", "error=\"%s\"", err);
		goto out;
	}
	if ((d.sig_term = evsignal_new(d.base, SIGTERM, on_stop, &d)) == NULL ||
	    (d.sig_int = evsignal_new(d.base, SIGINT, on_stop, &d)) == NULL ||
	    (d.sig_hup = evsignal_new(d.base, SIGHUP, on_hup, &d)) == NULL ||
	    evsignal_add(d.sig_term, NULL) < 0 || evsignal_add(d.sig_int, NULL) < 0 ||
	    evsignal_add(d.sig_hup, NULL) < 0) {
		log_error("startup_failed", "error=\"cannot install signal handlers\"");
		goto out;
	}
	log_info("started", "version=%s config=\"%s\" anchors=%d cached=%ld",
	    STAPLER_VERSION, cfg->path != NULL ? cfg->path : "", certs_trust_count(d.trust), loaded);
	if (event_base_dispatch(d.base) < 0) {
		log_error("loop_failed", "error=\"event_base_dispatch\"");
		goto out;
	}
	log_info("stopped", "cached=%zu", store_count(d.store));
	rc = 0;
out:
	daemon_free(&d);
	curl_global_cleanup();
	return rc;
}
