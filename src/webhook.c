/* Webhook delivery: one event in flight per webhook, in outbox (seq) order, so each receiver
 * sees a certificate's events in the order they happened; a failure holds that webhook back
 * (backoff) and never skips an event. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "cache.h"
#include "config.h"
#include "events.h"
#include "fetch.h"
#include "log.h"
#include "webhook.h"

struct hook {
	struct webhook *w;
	char url[CONFIG_MAX_URL_LEN];
	long long cursor;        /* the last seq the receiver acknowledged */
	int cursor_saved;        /* cursor is in the database */
	struct fetch_job *job;   /* the delivery in flight, or NULL */
	long long seq;           /* its event */
	char id[EVENT_ID_HEX + 1];
	int failures;
	time_t retry_at;
};

struct webhook {
	const struct stapler_config *cfg;
	struct cache *cache;
	struct fetcher *fetch;
	struct events *hub;
	struct event *timer;
	size_t n;
	struct hook hooks[CONFIG_MAX_WEBHOOKS];
	long long max_seq;          /* the newest event seen in the outbox */
	long long marked;           /* rows up to this are marked delivered */
	unsigned long long delivered, attempts_failed;
};

static void pump(struct webhook *w);

static void
arm(struct webhook *w, long long seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(w->timer, &tv);
}

void
webhook_kick(void *arg)
{
	struct webhook *w = arg;

	if (w != NULL)
		arm(w, 0);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static int
save_cursor(struct sqlite3 *db, void *arg)
{
	const struct hook *h = arg;

	return outbox_cursor_set(db, h->url, h->cursor);
}

struct mark {
	long long from, upto, now;
};

static int
mark_delivered(struct sqlite3 *db, void *arg)
{
	const struct mark *m = arg;

	return outbox_mark_delivered(db, m->from, m->upto, m->now);
}

static int
prune(struct sqlite3 *db, void *arg)
{
	long long *keep = arg, n = outbox_prune(db, *keep);

	if (n < 0)
		return -1;
	*keep = n;
	return 0;
}

/* What every webhook has taken is marked delivered, and the oldest delivered rows go while
 * the outbox holds more than its bound. Best effort: a refused write is tried again later. */
static void
settle(struct webhook *w)
{
	struct mark m = { w->marked, w->max_seq, (long long)time(NULL) };
	long long keep = w->cfg->events_outbox_max;
	struct events_stats st;

	for (size_t i = 0; i < w->n; i++) {
		if (w->hooks[i].cursor < m.upto)
			m.upto = w->hooks[i].cursor;
	}
	if (m.upto > w->marked && cache_tx(w->cache, mark_delivered, &m) == 0)
		w->marked = m.upto;
	events_stats(w->hub, &st);
	if (st.outbox_rows > keep && cache_tx(w->cache, prune, &keep) == 0)
		events_pruned(w->hub, keep);
}

static void
on_done(const struct fetch_result *res, void *arg)
{
	struct hook *h = arg;
	struct webhook *w = h->w;
	long long delay;

	h->job = NULL;
	if (res->status == FETCH_CANCELLED)
		return;
	if (res->status == FETCH_OK) {
		h->cursor = h->seq;
		h->failures = 0;
		h->retry_at = 0;
		w->delivered++;
		h->cursor_saved = cache_tx(w->cache, save_cursor, h) == 0;
		events_note_delivery(w->hub, 1, w->max_seq - h->cursor);
		log_info("event_delivered", "url=\"%s\" id=%s seq=%lld http=%ld", h->url, h->id,
		    h->seq, res->http_code);
		settle(w);
		arm(w, 0);
		return;
	}
	w->attempts_failed++;
	events_note_delivery(w->hub, 0, w->max_seq - h->cursor);
	h->failures++;
	delay = WEBHOOK_RETRY_FIRST;
	for (int i = 1; i < h->failures && delay < w->cfg->events_retry_max; i++)
		delay *= 2;
	if (delay > w->cfg->events_retry_max)
		delay = w->cfg->events_retry_max;
	h->retry_at = time(NULL) + (time_t)delay;
	log_warn("event_delivery_failed", "url=\"%s\" id=%s seq=%lld failures=%d retry_in=%llds "
	    "error=\"%s\"", h->url, h->id, h->seq, h->failures, delay,
	    res->error != NULL ? res->error : "");
	arm(w, delay);
}

struct next {
	struct hook *h;
	char *body;
};

static void
take_row(const struct event_row *r, void *arg)
{
	struct next *n = arg;

	n->h->seq = r->seq;
	snprintf(n->h->id, sizeof(n->h->id), "%s", r->id);
	n->body = outbox_cloudevent(r, n->h->w->cfg->events_source);
}

/* Starts the delivery of h's next event, if there is one and h may. */
static void
deliver_next(struct webhook *w, struct hook *h, time_t now)
{
	struct next n = { h, NULL };
	char sig[OUTBOX_SIG_LEN], sighdr[OUTBOX_SIG_LEN + 32], err[256];
	const char *headers[3] = { "Content-Type: application/cloudevents+json", NULL, NULL };
	struct fetch_raw opt = { 0 };
	int rc;

	if (h->job != NULL)
		return;
	if (h->retry_at > now) {
		arm(w, (long long)(h->retry_at - now));
		return;
	}
	if (!h->cursor_saved)
		h->cursor_saved = cache_tx(w->cache, save_cursor, h) == 0;
	if ((rc = outbox_read(cache_db(w->cache), h->cursor, 1, take_row, &n)) <= 0) {
		if (rc < 0)
			arm(w, 1);
		return;
	}
	if (n.body == NULL) {
		arm(w, 1);
		return;
	}
	if (h->seq > w->max_seq)
		w->max_seq = h->seq;
	if (w->cfg->events_secret != NULL && w->cfg->events_secret[0] != '\0' &&
	    outbox_sign(w->cfg->events_secret, (const unsigned char *)n.body, strlen(n.body),
	    sig) == 0) {
		snprintf(sighdr, sizeof(sighdr), WEBHOOK_SIG_HEADER ": %s", sig);
		headers[1] = sighdr;
	}
	opt.body = (const unsigned char *)n.body;
	opt.body_len = strlen(n.body);
	opt.headers = headers;
	opt.max_body = WEBHOOK_MAX_ANSWER;
	opt.timeout = w->cfg->events_timeout;
	if (fetch_start_raw(w->fetch, h->url, &opt, on_done, h, &h->job, err, sizeof(err)) < 0) {
		log_warn("event_delivery_failed", "url=\"%s\" id=%s seq=%lld error=\"%s\"", h->url,
		    h->id, h->seq, err);
		h->retry_at = now + WEBHOOK_RETRY_FIRST;
		arm(w, WEBHOOK_RETRY_FIRST);
	}
	free(n.body);
}

static void
pump(struct webhook *w)
{
	time_t now = time(NULL);
	long long rows;

	if (w->n == 0) {
		/* Nobody to deliver to: the log and staplerctl events had them. */
		if (outbox_stats(cache_db(w->cache), &w->max_seq, &rows) == 0)
			settle(w);
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		deliver_next(w, &w->hooks[i], now);
}

struct webhook *
webhook_new(struct event_base *base, const struct stapler_config *cfg, struct cache *cache,
    struct fetcher *fetch, struct events *hub)
{
	struct webhook *w = calloc(1, sizeof(*w));
	long long rows = 0;

	if (w == NULL)
		return NULL;
	w->cfg = cfg;
	w->cache = cache;
	w->fetch = fetch;
	w->hub = hub;
	if ((w->timer = evtimer_new(base, on_timer, w)) == NULL) {
		free(w);
		return NULL;
	}
	if (outbox_stats(cache_db(cache), &w->max_seq, &rows) < 0)
		log_warn("outbox_unreadable", "error=\"%s\"", sqlite3_errmsg(cache_db(cache)));
	events_set_outbox_rows(hub, rows);
	w->marked = 0;
	for (size_t i = 0; i < cfg->n_webhooks; i++) {
		struct hook *h = &w->hooks[w->n];
		int found;

		h->w = w;
		snprintf(h->url, sizeof(h->url), "%s", cfg->webhooks[i]);
		found = outbox_cursor_get(cache_db(cache), h->url, &h->cursor) == 0 && h->cursor > 0;
		/* A webhook new to this database gets what comes from now on, not the history;
		 * its cursor is written at once so a crash before its first delivery loses
		 * nothing raised after this start. */
		if (!found) {
			sqlite3_stmt *st;

			h->cursor = w->max_seq;
			if (sqlite3_prepare_v2(cache_db(cache), "SELECT 1 FROM event_cursor WHERE "
			    "name = ?1", -1, &st, NULL) == SQLITE_OK) {
				sqlite3_bind_text(st, 1, h->url, -1, SQLITE_STATIC);
				if (sqlite3_step(st) == SQLITE_ROW)
					h->cursor = 0;
				sqlite3_finalize(st);
			}
		}
		h->cursor_saved = cache_tx(cache, save_cursor, h) == 0;
		w->n++;
	}
	arm(w, 0);
	return w;
}

void
webhook_free(struct webhook **wp)
{
	struct webhook *w;

	if (wp == NULL || (w = *wp) == NULL)
		return;
	for (size_t i = 0; i < w->n; i++) {
		if (w->hooks[i].job != NULL)
			fetch_cancel(w->fetch, w->hooks[i].job);
		if (!w->hooks[i].cursor_saved)
			(void)cache_tx(w->cache, save_cursor, &w->hooks[i]);
	}
	event_free(w->timer);
	free(w);
	*wp = NULL;
}

void
webhook_set_config(struct webhook *w, const struct stapler_config *cfg)
{
	if (w != NULL)
		w->cfg = cfg;
}

void
webhook_stats(const struct webhook *w, struct webhook_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (w == NULL)
		return;
	out->delivered = w->delivered;
	out->attempts_failed = w->attempts_failed;
	for (size_t i = 0; i < w->n; i++) {
		if (w->max_seq - w->hooks[i].cursor > out->pending)
			out->pending = w->max_seq - w->hooks[i].cursor;
	}
}
