/* What an operator and a load balancer watch: GET /healthz (ok, or degraded with reasons) and
 * GET /metrics (Prometheus text). Both read counters the parts keep anyway; the one full pass
 * over the staples (ages, expiry, danger) is cached for HEALTH_SCAN_EVERY seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "crl.h"
#include "events.h"
#include "fetch.h"
#include "fmt.h"
#include "http_health.h"
#include "http_kit.h"
#include "http_server.h"
#include "metrics.h"
#include "persist.h"
#include "refresh.h"
#include "staple.h"
#include "store.h"

/* A scrape or a health probe never costs more than one pass over the staples per this. */
#define HEALTH_SCAN_EVERY 5
/* A pass over more staples than this runs from the loop in slices of this many slots, while
 * the answers use the last complete pass: at ten million a whole pass held the loop 0.5-0.7 s. */
#define HEALTH_SCAN_SLICE 65536

static const double age_le[] = { 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
    2 * 86400, 4 * 86400, 7 * 86400, 14 * 86400, 30 * 86400 };

/* What one pass over the staples found. */
struct health_scan {
	time_t at;
	size_t servable, expired, expiring_24h, danger;
	size_t due_next_hour;    /* servable staples due for a refresh within the next hour */
	struct metrics_hist age;
};

struct http_health {
	time_t started;
	struct health_scan scan;     /* the last complete pass */
	struct health_scan next;     /* the sliced pass under way, when running */
	size_t cursor;
	int running;
	long long danger_window;     /* of the pass under way */
	struct store *store;
	struct event *slice;
};

/* The route names of http_req_set_route(), by number. */
static const char *const route_names[HTTP_ROUTES_MAX] = {
	[HTTP_ROUTE_NONE] = "none", [HTTP_ROUTE_STAPLE] = "/v1/staple",
	[HTTP_ROUTE_STAPLES] = "/v1/staples", [HTTP_ROUTE_OCSP_POST] = "POST /ocsp",
	[HTTP_ROUTE_OCSP_GET] = "GET /ocsp/", [HTTP_ROUTE_HEALTHZ] = "/healthz",
	[HTTP_ROUTE_METRICS] = "/metrics", [HTTP_ROUTE_OTHER] = "other",
	[HTTP_ROUTE_OCPP] = "/v1/ocpp/certificate-status",
};

static void on_slice(evutil_socket_t fd, short what, void *arg);

static void *
health_new(struct event_base *base)
{
	struct http_health *h = calloc(1, sizeof(*h));

	if (h == NULL || (h->slice = evtimer_new(base, on_slice, h)) == NULL) {
		free(h);
		return NULL;
	}
	h->started = time(NULL);
	return h;
}

static void
health_free(void *arg)
{
	struct http_health *h = arg;

	if (h != NULL)
		event_free(h->slice);
	free(h);
}

const struct http_route_state http_health_state = { health_new, health_free };

struct scan_ctx {
	struct health_scan *sc;
	time_t now;
	long long danger_window;
};

/* A staple is in danger when what is left of it is less than the danger window, or than a
 * quarter of its validity for short-lived ones: a healthy entry is refreshed long before. */
static void
scan_one(const struct staple *s, void *arg)
{
	struct scan_ctx *x = arg;
	long long left = (long long)(s->next_update - x->now);
	long long validity = (long long)(s->next_update - s->this_update);
	long long window = x->danger_window < validity / 4 ? x->danger_window : validity / 4;

	if (!staple_servable(s, x->now)) {
		x->sc->expired++;
		return;
	}
	x->sc->servable++;
	metrics_hist_observe(&x->sc->age, (double)(x->now - s->this_update));
	if (left <= 86400)
		x->sc->expiring_24h++;
	if (s->refresh_at != 0 && s->refresh_at <= x->now + 3600)
		x->sc->due_next_hour++;
	if (left < window)
		x->sc->danger++;
}

static void
scan_begin(struct health_scan *sc, time_t now)
{
	memset(sc, 0, sizeof(*sc));
	metrics_hist_init(&sc->age, age_le, sizeof(age_le) / sizeof(age_le[0]));
	sc->at = now;
}

/* One slice of the pass under way; the next comes on the next loop turn, until the end. */
static void
on_slice(evutil_socket_t fd, short what, void *arg)
{
	struct http_health *h = arg;
	struct scan_ctx x = { &h->next, h->next.at, h->danger_window };
	struct timeval now = { 0, 0 };

	(void)fd;
	(void)what;
	if (!store_foreach_slice(h->store, &h->cursor, HEALTH_SCAN_SLICE, scan_one, &x)) {
		evtimer_add(h->slice, &now);
		return;
	}
	h->scan = h->next;
	h->running = 0;
}

/* What the staples look like: a pass at most HEALTH_SCAN_EVERY old. A small store is passed
 * over now; a large one gets a sliced pass started, and the last complete pass meanwhile (the
 * first pass of all is done now, whatever the size: there is nothing else to answer with). */
static const struct health_scan *
scan(struct http_health *h, struct http_kit *kit, time_t now)
{
	struct store *store = staple_service_store(http_kit_service(kit));
	struct scan_ctx x = { &h->scan, now, http_kit_config(kit)->health_danger_window };
	struct timeval soon = { 0, 0 };

	if (h->scan.at != 0 && now - h->scan.at < HEALTH_SCAN_EVERY && now >= h->scan.at)
		return &h->scan;
	if (h->scan.at == 0 || store_count(store) <= HEALTH_SCAN_SLICE) {
		scan_begin(&h->scan, now);
		store_foreach(store, scan_one, &x);
		return &h->scan;
	}
	if (!h->running) {
		scan_begin(&h->next, now);
		h->danger_window = x.danger_window;
		h->store = store;
		h->cursor = 0;
		h->running = 1;
		evtimer_add(h->slice, &soon);
	}
	return &h->scan;
}

/* Seconds the oldest write has waited for the database (0: none waits). */
static long long
backlog_age(const struct persist *p, time_t now)
{
	time_t oldest = p != NULL ? persist_oldest(p) : 0;

	return oldest != 0 && now > oldest ? (long long)(now - oldest) : 0;
}

static void
reply_stream(struct http_req *req, int code, const char *type, char *buf, size_t len)
{
	if (buf == NULL) {
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	http_reply(req, code, "Cache-Control: no-store\r\n", type, buf, len);
	free(buf);
}

void
http_health_handle(struct http_kit *kit, struct http_req *req, void *state)
{
	struct http_health *h = state;
	const struct stapler_config *cfg = http_kit_config(kit);
	struct staple_service *svc = http_kit_service(kit);
	struct fetcher *f = http_kit_fetcher(kit);
	struct persist *p = staple_service_persist(svc);
	const struct health_scan *sc;
	struct refresh_pace pace = { 0 };
	struct staple_load_progress lp;
	time_t now;
	char failing[512], *buf = NULL;
	size_t len = 0, by[3], n_failing;
	int degraded, code, behind, first = 1;
	FILE *fp;

	http_req_date(req, &now);
	sc = scan(h, kit, now);
	n_failing = fetch_upstreams_failing(f, now, cfg->health_upstream_failing, failing,
	    sizeof(failing));
	if (http_kit_refresher(kit) != NULL)
		refresh_pace(http_kit_refresher(kit), now, &pace);
	behind = cfg->health_refresh_behind > 0 && pace.behind >= cfg->health_refresh_behind;
	degraded = sc->danger > 0 || n_failing > 0 || behind || (p != NULL && persist_failing(p));
	code = http_kit_shutting_down(kit) ? 503 : degraded ? (int)cfg->health_degraded_code : 200;
	store_count_status(staple_service_store(svc), by);
	if ((fp = open_memstream(&buf, &len)) == NULL) {
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	fprintf(fp, "{\"status\":\"%s\",\"reasons\":[", http_kit_shutting_down(kit) ?
	    "shutting_down" : degraded ? "degraded" : "ok");
	if (sc->danger > 0) {
		fprintf(fp, "{\"reason\":\"staples_near_expiry\",\"count\":%zu,\"detail\":\"staples "
		    "within the danger window before nextUpdate that could not be refreshed\"}",
		    sc->danger);
		first = 0;
	}
	if (n_failing > 0) {
		fprintf(fp, "%s{\"reason\":\"upstream_failing\",\"count\":%zu,\"upstreams\":",
		    first ? "" : ",", n_failing);
		fmt_json_str(fp, failing);
		fputc('}', fp);
		first = 0;
	}
	if (behind) {
		fprintf(fp, "%s{\"reason\":\"refresh_behind\",\"behind_seconds\":%lld,"
		    "\"due_next_hour\":%zu,\"refreshed_last_hour\":%llu,\"detail\":\"the most "
		    "overdue entry waits longer than [health] refresh_behind: the upstreams do not "
		    "keep up with what the refresh policy asks\"}", first ? "" : ",", pace.behind,
		    sc->due_next_hour, pace.done_last_hour);
		first = 0;
	}
	if (p != NULL && persist_failing(p))
		fprintf(fp, "%s{\"reason\":\"database_not_writable\",\"pending_writes\":%zu,"
		    "\"pending_revocations\":%zu,\"pending_writes_age_s\":%lld}", first ? "" : ",",
		    persist_pending(p), persist_pending_revocations(p), backlog_age(p, now));
	staple_service_load_progress(svc, &lp);
	fprintf(fp, "],\"phase\":\"%s\",\"rows_loaded\":%zu,\"rows_to_load\":%lld,"
	    "\"read_by_key\":%zu", staple_load_phase_name(lp.phase), lp.rows, lp.bound, lp.by_key);
	fprintf(fp, ",\"staples\":%zu,\"good\":%zu,\"revoked\":%zu,\"unknown\":%zu,"
	    "\"expired\":%zu,\"near_expiry\":%zu,\"fetching\":%zu,\"fetch_queue\":%zu,"
	    "\"waiting_clients\":%zu,\"connections\":%zu,\"pending_writes\":%zu,"
	    "\"pending_writes_age_s\":%lld}\n",
	    store_count(staple_service_store(svc)), by[STAPLER_GOOD], by[STAPLER_REVOKED],
	    by[STAPLER_UNKNOWN], sc->expired, sc->danger, fetch_active(f), fetch_queued(f),
	    http_kit_waiting(kit), http_server_connections(http_kit_server(kit)),
	    p != NULL ? persist_pending(p) : (size_t)0, backlog_age(p, now));
	if (fclose(fp) != 0) {
		free(buf);
		buf = NULL;
	}
	reply_stream(req, code, "application/json", buf, len);
}

static void
gauge(FILE *fp, const char *name, const char *help, double v)
{
	metrics_family(fp, name, "gauge", help);
	metrics_sample(fp, name, NULL, v);
}

static void
counter(FILE *fp, const char *name, const char *help, double v)
{
	metrics_family(fp, name, "counter", help);
	metrics_sample(fp, name, NULL, v);
}

/* A counter family with one label taking two values. */
static void
counter2(FILE *fp, const char *name, const char *help, const char *label, const char *a,
    double va, const char *b, double vb)
{
	const char *const la[] = { label, a, NULL };
	const char *const lb[] = { label, b, NULL };

	metrics_family(fp, name, "counter", help);
	metrics_sample(fp, name, la, va);
	metrics_sample(fp, name, lb, vb);
}

void
http_metrics_handle(struct http_kit *kit, struct http_req *req, void *state)
{
	struct http_health *h = state;
	static const char *const status_names[3] = { "good", "revoked", "unknown" };
	const char *const build[] = { "version", STAPLER_VERSION, NULL };
	struct staple_service *svc = http_kit_service(kit);
	const struct http_server *srv = http_kit_server(kit);
	struct persist *p = staple_service_persist(svc);
	const struct health_scan *sc;
	struct staple_stats st;
	char *buf = NULL, code[8];
	size_t len = 0, by[3];
	time_t now;
	FILE *fp;

	http_req_date(req, &now);
	sc = scan(h, kit, now);
	staple_service_stats(svc, &st);
	store_count_status(staple_service_store(svc), by);
	if ((fp = open_memstream(&buf, &len)) == NULL) {
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	metrics_family(fp, "staplerd_build_info", "gauge", "The running build.");
	metrics_sample(fp, "staplerd_build_info", build, 1);
	gauge(fp, "staplerd_process_start_time_seconds", "Start time of the process, Unix seconds.",
	    (double)h->started);
	metrics_family(fp, "staplerd_http_requests_total", "counter",
	    "HTTP answers by route and status code (route none: refused before routing).");
	for (int r = 0; r < HTTP_ROUTES_MAX; r++) {
		for (int c = 100; c < HTTP_STATUS_MAX; c++) {
			unsigned long long n = http_server_answers(srv, r, c);
			const char *const labels[] = { "route", route_names[r], "code", code, NULL };

			if (n == 0 || route_names[r] == NULL)
				continue;
			snprintf(code, sizeof(code), "%d", c);
			metrics_sample(fp, "staplerd_http_requests_total", labels, (double)n);
		}
	}
	gauge(fp, "staplerd_http_connections", "Open HTTP connections.",
	    (double)http_server_connections(srv));
	counter(fp, "staplerd_http_connections_accepted_total", "HTTP connections accepted.",
	    (double)http_server_accepted(srv));
	gauge(fp, "staplerd_http_waiting_clients", "Clients waiting for an upstream answer.",
	    (double)http_kit_waiting(kit));
	metrics_family(fp, "staplerd_cache_entries", "gauge", "Staples held in memory, by status.");
	for (int s = 0; s < 3; s++) {
		const char *const labels[] = { "status", status_names[s], NULL };

		metrics_sample(fp, "staplerd_cache_entries", labels, (double)by[s]);
	}
	gauge(fp, "staplerd_staples_expired", "Staples held but no longer served (past nextUpdate "
	    "minus the safety margin), waiting for a refresh.", (double)sc->expired);
	gauge(fp, "staplerd_staples_expiring_24h", "Servable staples whose nextUpdate is within "
	    "24 hours.", (double)sc->expiring_24h);
	gauge(fp, "staplerd_staples_near_expiry", "Servable staples inside the danger window "
	    "([health] danger_window) before nextUpdate.", (double)sc->danger);
	metrics_family(fp, "staplerd_staple_age_seconds", "histogram",
	    "Age (now - thisUpdate) of the servable staples, at the last scan.");
	metrics_hist_write(fp, "staplerd_staple_age_seconds", NULL, &sc->age);
	fetch_metrics_write(http_kit_fetcher(kit), fp);
	metrics_family(fp, "staplerd_answers_refused_total", "counter",
	    "Verified upstream answers not kept, by reason.");
	{
		const char *const older[] = { "reason", "older", NULL };
		const char *const expiring[] = { "reason", "expiring", NULL };

		metrics_sample(fp, "staplerd_answers_refused_total", older, (double)st.older_refused);
		metrics_sample(fp, "staplerd_answers_refused_total", expiring,
		    (double)st.expiring_refused);
	}
	counter(fp, "staplerd_revocations_seen_total", "Staples held good or unknown that turned "
	    "revoked (each is also logged at warning level).", (double)st.revocations_seen);
	counter(fp, "staplerd_fetches_discarded_evicted_total", "Fetches whose entry was evicted "
	    "while they ran (nothing stored).", (double)st.evicted_in_flight);
	{
		struct refresh_pace pace = { 0 };

		if (http_kit_refresher(kit) != NULL)
			refresh_pace(http_kit_refresher(kit), now, &pace);
		gauge(fp, "staplerd_refresh_demand_next_hour", "Servable staples due for a refresh "
		    "within the next hour, overdue ones included: the upstream fetches per hour the "
		    "refresh policy asks for now (at the last scan).", (double)sc->due_next_hour);
		gauge(fp, "staplerd_refresh_done_last_hour", "Scheduled refreshes that ended well in "
		    "the last 60 minutes: the achieved rate per hour.", (double)pace.done_last_hour);
		gauge(fp, "staplerd_refresh_behind_seconds", "How far the most overdue entry is past "
		    "its refresh time: the earliest the last refresh tick left due, or a refresh "
		    "that ended late in the last two minutes (0: none overdue).",
		    (double)pace.behind);
		counter2(fp, "staplerd_refreshes_total", "Scheduled refreshes ended, by outcome.",
		    "outcome", "ok", (double)pace.ok, "failed", (double)pace.failed);
		counter(fp, "staplerd_refresh_ticks_early_total", "Refresh ticks brought forward "
		    "because a refresh slot freed while due work was left (continuous admission).",
		    (double)pace.slot_ticks);
	}
	counter(fp, "staplerd_upstream_cpu_seconds_total", "The loop's CPU spent on upstream "
	    "transfers and their answers (verification, the row).",
	    (double)fetch_cpu_ns(http_kit_fetcher(kit)) / 1e9);
	counter(fp, "staplerd_responses_verified_total", "Upstream responses whose signature and "
	    "CertID were checked.", (double)st.verified);
	metrics_family(fp, "staplerd_responses_rejected_total", "counter", "Upstream responses "
	    "refused, by verdict (no_next_update: no nextUpdate, unless [upstream] "
	    "accept_no_next_update).");
	for (int v = OCSP_TRY_LATER; v < OCSP_VERDICTS; v++) {
		const char *const labels[] = { "verdict", ocsp_verdict_name((enum ocsp_verdict)v),
		    NULL };

		metrics_sample(fp, "staplerd_responses_rejected_total", labels, (double)st.rejected[v]);
	}
	counter(fp, "staplerd_responses_without_next_update_kept_total", "Responses without "
	    "nextUpdate kept for [upstream] accept_no_next_update from their thisUpdate.",
	    (double)st.no_next_update_kept);
	counter2(fp, "staplerd_refresh_unchanged_total", "Answers that told nothing new, kept "
	    "without a signature check or a row rewrite: the very bytes held (bytes) or an HTTP "
	    "304 (not_modified).", "how", "bytes", (double)st.unchanged, "not_modified",
	    (double)st.not_modified);
	counter(fp, "staplerd_cache_rows_written_total", "Whole rows written for a new answer "
	    "kept (an unchanged answer moves only the schedule).", (double)st.rows_written);
	gauge(fp, "staplerd_fetches_pending", "Certificates with a fetch in flight.",
	    (double)staple_service_pending(svc));
	gauge(fp, "staplerd_cache_writes_pending", "Writes the database refused for now, kept in "
	    "memory and retried.", p != NULL ? (double)persist_pending(p) : 0);
	gauge(fp, "staplerd_cache_writes_pending_age_seconds", "Age of the oldest write kept in "
	    "memory for the database (0: none pending).", (double)backlog_age(p, time(NULL)));
	gauge(fp, "staplerd_cache_revocations_pending", "Revocations among the pending writes.",
	    p != NULL ? (double)persist_pending_revocations(p) : 0);
	gauge(fp, "staplerd_cache_write_failing", "1 while the database refuses writes.",
	    p != NULL ? (double)persist_failing(p) : 0);
	counter(fp, "staplerd_cache_writes_dropped_total", "Writes refused because the pending "
	    "queue was full.", p != NULL ? (double)persist_dropped(p) : 0);
	events_metrics_write(staple_service_events(svc), fp);
	crl_metrics_write(staple_service_crl(svc), fp);
	if (fclose(fp) != 0) {
		free(buf);
		buf = NULL;
	}
	reply_stream(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}
