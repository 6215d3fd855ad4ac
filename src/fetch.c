/* Upstream OCSP fetches on libcurl's multi_socket API, driven by the daemon's libevent loop
 * (the shape of curl's docs/examples/multi-event.c). Our own queues, one per upstream host and
 * priority, hold transfers until a global and a per-host slot are free, so the total timeout
 * counts from the real start; hosts that can take work sit on a ready list per priority, so
 * starting a transfer never scans the jobs that cannot start. */
#define _GNU_SOURCE /* strcasestr */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "fetch.h"
#include "url.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "ocsp.h"
#include "pace.h"
#include "util.h"

#define HOST_MAX URL_AUTHORITY_MAX   /* a host name and ":port" */

struct fetch_job;
TAILQ_HEAD(job_queue, fetch_job);

/* An upstream host: its transfers, and its health. Kept while it has work or a failure. */
struct host {
	char name[HOST_MAX];
	int active;          /* transfers running */
	int queued;          /* transfers waiting for a slot */
	int failures;        /* consecutive transport failures (network, timeout, HTTP 5xx) */
	time_t failing_since;  /* the first of those failures */
	time_t retry_at;     /* while failing: no new refresh work before this */
	time_t paused_until; /* Retry-After (429, 503): no transfer starts before this */
	time_t used_at;      /* a transfer started or ended last: what it learned is kept a while */
	struct pace pace;    /* the adaptive limit on transfers at once */
	struct job_queue queue[FETCH_PRIO_COUNT];
	/* On the fetcher's ready list of a priority while it has jobs of it and a free slot. */
	TAILQ_ENTRY(host) ready[FETCH_PRIO_COUNT];
	unsigned char is_ready[FETCH_PRIO_COUNT];
	LIST_ENTRY(host) link;
};

struct fetch_job {
	struct fetcher *f;
	enum fetch_priority prio;
	struct fetch_job **sweep;    /* its place in a fetch_cancel_if() pass, cleared when freed */
	struct timeval started;      /* when its transfer began (latency), or 0 */
	CURL *easy;
	struct curl_slist *headers;
	char *url;           /* responder URL */
	char *get_url;       /* RFC 5019 GET URL, or NULL for POST */
	struct host *host;   /* counted in host->queued, then host->active */
	unsigned char *req;
	size_t req_len;
	unsigned char *body;
	size_t len, cap;
	int too_big;
	char *if_none_match;     /* validators of a conditional request, or NULL */
	char *if_modified_since;
	long long max_age;       /* of the answer: fetch_result.max_age */
	char etag[FETCH_VALIDATOR_MAX], last_modified[FETCH_VALIDATOR_MAX];
	/* fetch_start_raw(): runs at once, outside the per-host queues and pacing, with its own
	 * method, headers, body cap and timeout; any 2xx ends it FETCH_OK. */
	int raw;
	struct curl_slist *raw_headers;
	size_t max_body;
	long timeout_ms;
	fetch_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	TAILQ_ENTRY(fetch_job) link;
};

/* libcurl's view of one socket: the event that watches it, kept for the socket's life and
 * re-assigned when libcurl changes what it waits for (no allocation per change). */
struct sock {
	struct event ev;
};

TAILQ_HEAD(host_list, host);

struct fetcher {
	long long cpu_ns;      /* the loop's CPU in libcurl's events and the answers' callbacks */
	/* The refresh's budget while clients are served ([refresh] max_cpu): a window of about
	 * a second over the answers given and cpu_ns, the last whole window's rates. */
	unsigned long long (*answered)(void *arg);
	void *answered_arg;
	unsigned long long win_answers;
	long long win_ns, win_work;
	double serving, work_share;
	struct event *budget;  /* looks again at held refreshes while over budget */
	unsigned long long budget_holds;   /* refresh starts held by the budget */
	struct event_base *base;
	const struct stapler_config *cfg;
	CURLM *multi;
	struct event *timer;   /* libcurl's timeout */
	struct event *kick;    /* starts queued jobs on the next loop turn */
	struct event *resume;  /* the end of the earliest Retry-After pause */
	void (*low_cb)(void *arg);   /* fetch_on_refresh_low(): the refresh queue runs low */
	void *low_arg;
	struct job_queue running;
	struct host_list ready[FETCH_PRIO_COUNT];
	LIST_HEAD(, host) hosts;
	size_t n_queued, n_running;
	size_t n_queued_prio[FETCH_PRIO_COUNT];
	unsigned long long n_cancelled;
	/* /metrics: outcomes and latency per upstream (host:port, a bounded label set). */
	struct metrics_labels m_hosts;
	unsigned long long m_outcome[METRICS_LABEL_MAX][FETCH_CANCELLED + 1];
	struct metrics_hist m_latency[METRICS_LABEL_MAX];
	unsigned long long m_retry_after[METRICS_LABEL_MAX];
};

/* Seconds; an OCSP fetch over loopback takes a millisecond, a remote one tens to hundreds. */
static const double latency_le[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

static const char *const outcome_names[FETCH_CANCELLED + 1] = {
	[FETCH_OK] = "ok", [FETCH_NETWORK] = "network", [FETCH_TIMEOUT] = "timeout",
	[FETCH_HTTP] = "http_error", [FETCH_TOO_BIG] = "too_big",
	[FETCH_NOT_MODIFIED] = "not_modified", [FETCH_CANCELLED] = "cancelled",
};

/* Counts a finished transfer against its upstream. */
static void
record_outcome(struct fetcher *f, const struct fetch_job *j, enum fetch_status status)
{
	int i = j->host != NULL ? metrics_label_index(&f->m_hosts, j->host->name) : -1;
	struct timeval now, d;

	if (i < 0 || (unsigned)status > FETCH_CANCELLED)
		return;
	if (f->m_latency[i].le == NULL)
		metrics_hist_init(&f->m_latency[i], latency_le, UTIL_ARRAY_LEN(latency_le));
	f->m_outcome[i][status]++;
	if (j->started.tv_sec != 0 && status != FETCH_CANCELLED) {
		event_base_gettimeofday_cached(f->base, &now);
		timersub(&now, &j->started, &d);
		metrics_hist_observe(&f->m_latency[i], (double)d.tv_sec + (double)d.tv_usec / 1e6);
	}
}

static void check_done(struct fetcher *f);

int
fetch_url_allowed(const struct stapler_config *cfg, const char *url, char *host, size_t hostcap,
    char *err, size_t errlen)
{
	struct url_parts parts;
	char why[200];

	if (url_parse_fetchable(url, strlen(url), &parts, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %.200s", why, url);
		return -1;
	}
	if (!config_host_allowed(cfg, parts.host)) {
		snprintf(err, errlen, "host %.200s is not in [upstream] allow", parts.host);
		return -1;
	}
	if (host != NULL && url_authority(&parts, host, hostcap) < 0) {
		snprintf(err, errlen, "host name too long");
		return -1;
	}
	return 0;
}

static size_t
on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct fetch_job *j = userp;
	size_t n = size * nmemb;

	if (n > j->max_body - j->len) {
		j->too_big = 1;
		return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (j->len + n > j->cap) {
		size_t ncap = j->cap == 0 ? 4096 : j->cap;
		unsigned char *nb;

		while (ncap < j->len + n)
			ncap *= 2;
		if ((nb = realloc(j->body, ncap)) == NULL)
			return 0;
		j->body = nb;
		j->cap = ncap;
	}
	memcpy(j->body + j->len, data, n);
	j->len += n;
	return n;
}

static struct host *
host_find(const struct fetcher *f, const char *name)
{
	struct host *h;

	LIST_FOREACH(h, &f->hosts, link) {
		if (strcmp(h->name, name) == 0)
			return h;
	}
	return NULL;
}

/* Seconds since the epoch with the loop's cached clock, to the microsecond (pace.c). */
static double
loop_now(const struct fetcher *f)
{
	struct timeval tv;

	event_base_gettimeofday_cached(f->base, &tv);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int
host_idle(const struct host *h, time_t now)
{
	return h->active == 0 && h->queued == 0 && h->failures == 0 && h->paused_until <= now;
}

/* Forgets hosts idle for FETCH_HOST_KEEP: what a host taught the limit is kept between
 * bursts of work (a refresh round), not forever. */
static void
host_sweep(struct fetcher *f, time_t now)
{
	struct host *h, *next;

	for (h = LIST_FIRST(&f->hosts); h != NULL; h = next) {
		next = LIST_NEXT(h, link);
		if (host_idle(h, now) && now - h->used_at >= FETCH_HOST_KEEP) {
			LIST_REMOVE(h, link);
			free(h);
		}
	}
}

static struct host *
host_get(struct fetcher *f, const char *name)
{
	struct host *h;
	time_t now = time(NULL);

	if ((h = host_find(f, name)) != NULL)
		return h;
	host_sweep(f, now);
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	util_strlcpy(h->name, name, sizeof(h->name));
	pace_init(&h->pace, (int)f->cfg->max_per_host);
	h->used_at = now;
	for (int p = 0; p < FETCH_PRIO_COUNT; p++)
		TAILQ_INIT(&h->queue[p]);
	LIST_INSERT_HEAD(&f->hosts, h, link);
	return h;
}

/* Puts h on (at the tail) or takes it off each priority's ready list, as its queues and free
 * slots say. */
static void
host_ready_update(struct fetcher *f, struct host *h)
{
	time_t now = time(NULL);
	int open = h->active < pace_limit(&h->pace) && h->paused_until <= now;
	/* Refreshes already queued for a host in failure backoff wait it out too (the refresh
	 * timer gives it no new ones): a dead upstream gets one round, not the whole backlog. */
	int backoff = h->failures > 0 && h->retry_at > now;

	for (int p = 0; p < FETCH_PRIO_COUNT; p++) {
		int ready = open && !TAILQ_EMPTY(&h->queue[p]) && !(p == FETCH_PRIO_REFRESH && backoff);

		if (ready && !h->is_ready[p])
			TAILQ_INSERT_TAIL(&f->ready[p], h, ready[p]);
		else if (!ready && h->is_ready[p])
			TAILQ_REMOVE(&f->ready[p], h, ready[p]);
		h->is_ready[p] = (unsigned char)ready;
	}
}

/* Transport failures mark the host as failing, with a backoff that doubles up to
 * FETCH_HOST_BACKOFF_CAP; any answer at all (even one we reject) shows it is alive. The
 * backoff deepens once per round, not once per failed transfer: the transfers already in
 * flight when a host goes down all fail together, and counting each would push it to the cap
 * at once, so refreshes (a revocation among them) would wait ten minutes after it is back. */
static void
host_outcome(struct host *h, enum fetch_status status, long code)
{
	long long delay = FETCH_HOST_BACKOFF_BASE;
	time_t now = time(NULL);

	if (status == FETCH_CANCELLED)
		return;
	if (status == FETCH_HTTP && code == 429)
		return;    /* alive, and asking us to slow down: the pace handles it, not backoff */
	if (status == FETCH_NETWORK || status == FETCH_TIMEOUT ||
	    (status == FETCH_HTTP && code >= 500)) {
		if (h->failures > 0 && h->retry_at > now)
			return;
		if (h->failures++ == 0)
			h->failing_since = now;
		for (int i = 1; i < h->failures && delay < FETCH_HOST_BACKOFF_CAP; i++)
			delay *= 2;
		if (delay > FETCH_HOST_BACKOFF_CAP)
			delay = FETCH_HOST_BACKOFF_CAP;
		h->retry_at = now + (time_t)delay;
		return;
	}
	h->failures = 0;
	h->retry_at = 0;
}

static void
job_free(struct fetch_job *j)
{
	if (j == NULL)
		return;
	if (j->sweep != NULL)
		*j->sweep = NULL;
	if (j->easy != NULL)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	curl_slist_free_all(j->raw_headers);
	free(j->url);
	free(j->get_url);
	free(j->if_none_match);
	free(j->if_modified_since);
	free(j->req);
	free(j->body);
	free(j);
}

/* Takes a job off its host's queue (it is about to run or to end). */
static void
job_unqueue(struct fetch_job *j)
{
	struct fetcher *f = j->f;

	TAILQ_REMOVE(&j->host->queue[j->prio], j, link);
	f->n_queued--;
	f->n_queued_prio[j->prio]--;
	j->host->queued--;
}

/* The end of what holds h's queued refreshes: a Retry-After pause or a failure backoff. */
static time_t
host_held_until(const struct host *h)
{
	time_t t = h->paused_until;

	if (h->failures > 0 && h->retry_at > t)
		t = h->retry_at;
	return t;
}

/* Arms f->resume for the earliest end of a Retry-After pause or failure backoff to come. */
static void
resume_arm(struct fetcher *f, time_t now)
{
	const struct host *h;
	time_t soonest = 0;
	struct timeval tv;

	LIST_FOREACH(h, &f->hosts, link) {
		time_t t = h->paused_until > now ? h->paused_until : host_held_until(h);

		if (t > now && (soonest == 0 || t < soonest))
			soonest = t;
	}
	if (soonest == 0)
		return;
	tv.tv_sec = soonest - now;
	tv.tv_usec = 0;
	evtimer_add(f->resume, &tv);
}

/* A pause ended: its host can take work again. */
static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	struct host *h;
	time_t now = time(NULL);

	LIST_FOREACH(h, &f->hosts, link) {
		if (h->paused_until != 0 && h->paused_until <= now)
			h->paused_until = 0;
		host_ready_update(f, h);
	}
	resume_arm(f, now);
	event_active(f->kick, EV_TIMEOUT, 0);
}

/* Moves the host's adaptive limit after a transfer ended (pace.c): answers grow it while the
 * latency holds, timeouts, 5xx and 429 cut it; a Retry-After on 429 or 503 pauses the host. */
static void
host_pace(struct fetcher *f, const struct fetch_job *j, enum fetch_status status, long code,
    long long retry_after)
{
	struct host *h = j->host;
	double now = loop_now(f);
	time_t t = (time_t)now;

	h->used_at = t;
	if (status == FETCH_CANCELLED || j->started.tv_sec == 0)
		return;
	if (status == FETCH_TIMEOUT || status == FETCH_NETWORK ||
	    (status == FETCH_HTTP && (code >= 500 || code == 429)))
		pace_congested(&h->pace, PACE_OVERLOAD, now);
	else
		pace_answer(&h->pace, now - ((double)j->started.tv_sec +
		    (double)j->started.tv_usec / 1e6), h->active + 1, now);
	if (status == FETCH_HTTP && (code == 429 || code == 503) && retry_after > 0) {
		int i = metrics_label_index(&f->m_hosts, h->name);

		if (retry_after > FETCH_RETRY_AFTER_MAX)
			retry_after = FETCH_RETRY_AFTER_MAX;
		if (i >= 0)
			f->m_retry_after[i]++;
		/* The upstream's own word replaces our guess at a backoff. */
		if (h->failures > 0)
			h->retry_at = t + (time_t)retry_after;
		if (t + (time_t)retry_after > h->paused_until) {
			h->paused_until = t + (time_t)retry_after;
			log_info("upstream_paused", "upstream=%s http=%ld retry_after=%lld limit=%d",
			    h->name, code, retry_after, pace_limit(&h->pace));
			resume_arm(f, t);
		}
	}
}

/* Ends a job: unhooks it, reports (unless cancelled: cb is NULL then), frees. retry_after is
 * the upstream's Retry-After in seconds, or 0. */
static void
job_finish_ra(struct fetch_job *j, enum fetch_status status, long code, const char *error,
    long long retry_after)
{
	struct fetcher *f = j->f;
	enum fetch_priority prio = j->prio;
	struct fetch_result res = {
		.status = status, .url = j->url, .http_code = code,
		.body = j->body, .len = j->len, .error = error, .max_age = -1,
	};

	if (j->raw) {
		if (j->easy != NULL) {
			curl_multi_remove_handle(f->multi, j->easy);
			TAILQ_REMOVE(&f->running, j, link);
			f->n_running--;
		}
		goto report;
	}
	if (j->easy != NULL) {
		/* Closes the transfer's socket through on_curl_socket(CURL_POLL_REMOVE). */
		curl_multi_remove_handle(f->multi, j->easy);
		TAILQ_REMOVE(&f->running, j, link);
		f->n_running--;
		j->host->active--;
	} else {
		job_unqueue(j);
	}
	record_outcome(f, j, status);
	host_outcome(j->host, status, code);
	host_pace(f, j, status, code, retry_after);
	host_ready_update(f, j->host);
	if (j->host->failures > 0)
		resume_arm(f, time(NULL));
	j->host = NULL;
report:
	if (status != FETCH_OK) {
		res.body = NULL;
		res.len = 0;
	}
	if (status == FETCH_OK || status == FETCH_NOT_MODIFIED) {
		res.max_age = j->max_age;
		res.etag = j->etag[0] != '\0' ? j->etag : NULL;
		res.last_modified = j->last_modified[0] != '\0' ? j->last_modified : NULL;
	}
	if (j->cb != NULL)
		j->cb(&res, j->arg);
	job_free(j);
	event_active(f->kick, EV_TIMEOUT, 0);
	/* A refresh slot freed and fewer refreshes wait than one round of slots: time for the
	 * refresh timer to admit more, before the upstreams idle. */
	if (prio == FETCH_PRIO_REFRESH && f->low_cb != NULL &&
	    f->n_queued_prio[FETCH_PRIO_REFRESH] <= (size_t)f->cfg->max_parallel)
		f->low_cb(f->low_arg);
}

void
fetch_on_refresh_low(struct fetcher *f, void (*cb)(void *arg), void *arg)
{
	f->low_cb = cb;
	f->low_arg = arg;
}

static void
job_finish(struct fetch_job *j, enum fetch_status status, long code, const char *error)
{
	job_finish_ra(j, status, code, error, 0);
}

static int
validator_ok(const char *v)
{
	return v == NULL || (strlen(v) < FETCH_VALIDATOR_MAX && strpbrk(v, "\r\n") == NULL);
}

int
fetch_set_validators(struct fetch_job *j, const char *etag, const char *last_modified)
{
	if (!validator_ok(etag) || !validator_ok(last_modified))
		return -1;
	if ((etag != NULL && (j->if_none_match = strdup(etag)) == NULL) ||
	    (last_modified != NULL && (j->if_modified_since = strdup(last_modified)) == NULL))
		return -1;
	return 0;
}

void
fetch_cancel(struct fetcher *f, struct fetch_job *j)
{
	if (j == NULL)
		return;
	j->cb = NULL;
	f->n_cancelled++;
	/* Not an outcome of the host: its health stays as it was. */
	job_finish(j, FETCH_CANCELLED, 0, "cancelled");
}

/* Appends "name: value" to the job's request headers (nothing when value is NULL). */
static int
add_header(struct fetch_job *j, const char *name, const char *value)
{
	char line[FETCH_VALIDATOR_MAX + 32];
	struct curl_slist *h;

	if (value == NULL)
		return 0;
	snprintf(line, sizeof(line), "%s: %s", name, value);
	if ((h = curl_slist_append(j->headers, line)) == NULL)
		return -1;
	j->headers = h;
	return 0;
}

/* The value of response header name of e (the last one), or NULL. */
static const char *
header_of(CURL *e, const char *name)
{
	struct curl_header *h;

	if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	if (h->amount > 1 && curl_easy_header(e, name, h->amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return h->value;
}

/* Seconds the answer stays current by its headers (RFC 9111 §4.2.1): Cache-Control max-age
 * (no-cache, no-store: 0) less Age, else Expires less Date; -1 when they say nothing. */
static long long
answer_max_age(CURL *e)
{
	const char *cc = header_of(e, "Cache-Control"), *v;
	long long age = 0, ma = -1;

	if (cc != NULL) {
		if (strcasestr(cc, "no-cache") != NULL || strcasestr(cc, "no-store") != NULL)
			return 0;
		if ((v = strcasestr(cc, "max-age=")) != NULL) {
			char *end;
			long long n = strtoll(v + 8, &end, 10);

			if (end != v + 8 && n >= 0)
				ma = n;
		}
	}
	if (ma < 0 && (v = header_of(e, "Expires")) != NULL) {
		time_t exp = curl_getdate(v, NULL), date = -1;
		const char *d = header_of(e, "Date");

		if (d != NULL)
			date = curl_getdate(d, NULL);
		if (date < 0)
			date = time(NULL);
		/* An unreadable Expires means "already expired" (RFC 9111 §5.3). */
		ma = exp < 0 || exp <= date ? 0 : (long long)(exp - date);
	}
	if (ma > 0 && (v = header_of(e, "Age")) != NULL) {
		char *end;

		age = strtoll(v, &end, 10);
		if (end == v || age < 0)
			age = 0;
		ma = ma > age ? ma - age : 0;
	}
	return ma;
}

/* Keeps what the answer says of its freshness and validators, for the callback. */
static void
note_answer(struct fetch_job *j)
{
	const char *v;

	j->max_age = answer_max_age(j->easy);
	if ((v = header_of(j->easy, "ETag")) != NULL && strlen(v) < sizeof(j->etag))
		util_strlcpy(j->etag, v, sizeof(j->etag));
	if ((v = header_of(j->easy, "Last-Modified")) != NULL && strlen(v) < sizeof(j->last_modified))
		util_strlcpy(j->last_modified, v, sizeof(j->last_modified));
}

static int
job_begin(struct fetch_job *j)
{
	struct fetcher *f = j->f;
	long timeout_ms = j->raw ? j->timeout_ms : (long)f->cfg->upstream_timeout * 1000;
	CURL *e;

	if ((e = curl_easy_init()) == NULL)
		return -1;
	j->easy = e;
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* No redirects: a responder that moves must be configured, not followed to a host the
	 * certificate never named. */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)j->max_body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "staplerd/" STAPLER_VERSION);
	if (j->raw) {
		j->headers = j->raw_headers;
		j->raw_headers = NULL;
		curl_easy_setopt(e, CURLOPT_URL, j->url);
		if (j->req != NULL) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)j->req);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)j->req_len);
		}
	} else if ((j->headers = curl_slist_append(NULL, "Accept: application/ocsp-response")) == NULL)
		return -1;
	if (j->get_url != NULL) {
		curl_easy_setopt(e, CURLOPT_URL, j->get_url);
	} else if (!j->raw) {
		struct curl_slist *h = curl_slist_append(j->headers, "Content-Type: application/ocsp-request");

		if (h == NULL)
			return -1;
		j->headers = h;
		curl_easy_setopt(e, CURLOPT_URL, j->url);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)j->req);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)j->req_len);
	}
	if (add_header(j, "If-None-Match", j->if_none_match) < 0 ||
	    add_header(j, "If-Modified-Since", j->if_modified_since) < 0)
		return -1;
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
	if (curl_multi_add_handle(f->multi, e) != CURLM_OK)
		return -1;
	event_base_gettimeofday_cached(f->base, &j->started);
	return 0;
}

/* Whether refresh transfers wait: while clients are being served, the upstream work
 * (transfers and their answers) takes at most [refresh] max_cpu of a core, so cached staples
 * keep being served at their pace during a full refresh; with nobody to serve, refreshes run
 * at the upstreams' pace. Judged over the window under way once it is 200 ms old, else over
 * the last whole one. Client fetches never wait for it. */
static int
refresh_over_budget(struct fetcher *f)
{
	struct timespec ts;
	unsigned long long answers;
	long long now, wall;
	double serving, share;

	if (f->answered == NULL)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	answers = f->answered(f->answered_arg);
	if (f->win_ns == 0 || now - f->win_ns >= 1000000000LL) {
		if (f->win_ns != 0 && (wall = now - f->win_ns) > 0) {
			f->serving = (double)(answers - f->win_answers) * 1e9 / (double)wall;
			f->work_share = (double)(f->cpu_ns - f->win_work) / (double)wall;
		}
		f->win_ns = now;
		f->win_answers = answers;
		f->win_work = f->cpu_ns;
	}
	serving = f->serving;
	share = f->work_share;
	if ((wall = now - f->win_ns) >= 200000000LL) {
		serving = (double)(answers - f->win_answers) * 1e9 / (double)wall;
		share = (double)(f->cpu_ns - f->win_work) / (double)wall;
	}
	return serving >= FETCH_SERVING_MIN && share >= (double)f->cfg->refresh_max_cpu / 100.0;
}

unsigned long long
fetch_budget_holds(const struct fetcher *f)
{
	return f->budget_holds;
}

void
fetch_set_serving_probe(struct fetcher *f, unsigned long long (*answered)(void *arg), void *arg)
{
	f->answered = answered;
	f->answered_arg = arg;
}

static void
on_budget(evutil_socket_t fd, short what, void *arg)
{
	event_active(((struct fetcher *)arg)->kick, 0, 1);
}

/* Starts queued jobs while global slots are free: the highest priority first, and within
 * one the hosts in turn (a host that started a job goes to the back of the ready list). */
static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;

	for (int p = 0; p < FETCH_PRIO_COUNT; p++) {
		struct host *h;

		if (p == FETCH_PRIO_REFRESH && !TAILQ_EMPTY(&f->ready[p]) &&
		    f->n_running < (size_t)f->cfg->max_parallel && refresh_over_budget(f)) {
			struct timeval tv = { 0, FETCH_BUDGET_MS * 1000 };

			f->budget_holds++;
			evtimer_add(f->budget, &tv);
			continue;
		}

		while (f->n_running < (size_t)f->cfg->max_parallel &&
		    (h = TAILQ_FIRST(&f->ready[p])) != NULL) {
			struct fetch_job *j = TAILQ_FIRST(&h->queue[p]);

			job_unqueue(j);
			TAILQ_INSERT_TAIL(&f->running, j, link);
			f->n_running++;
			h->active++;
			h->used_at = time(NULL);
			TAILQ_REMOVE(&f->ready[p], h, ready[p]);
			h->is_ready[p] = 0;
			host_ready_update(f, h);
			if (job_begin(j) < 0) {
				if (j->easy != NULL) {
					curl_multi_remove_handle(f->multi, j->easy);
					curl_easy_cleanup(j->easy);
					j->easy = NULL;
				}
				TAILQ_REMOVE(&f->running, j, link);
				f->n_running--;
				h->active--;
				/* Back on its queue for job_finish() to take off again. */
				TAILQ_INSERT_HEAD(&h->queue[p], j, link);
				f->n_queued++;
				f->n_queued_prio[p]++;
				h->queued++;
				job_finish(j, FETCH_NETWORK, 0, "cannot start transfer");
			}
		}
	}
}

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;
	long long t0 = util_cpu_ns();

	curl_multi_socket_action(f->multi, fd, action, &running);
	check_done(f);
	f->cpu_ns += util_cpu_ns() - t0;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int running;
	long long t0 = util_cpu_ns();

	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
	f->cpu_ns += util_cpu_ns() - t0;
}

long long
fetch_cpu_ns(const struct fetcher *f)
{
	return f->cpu_ns;
}

/* CURLMOPT_SOCKETFUNCTION: watch or forget a socket for libcurl. */
static int
on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct fetcher *f = userp;
	struct sock *sk = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL) {
			event_del(&sk->ev);
			free(sk);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (sk == NULL) {
		if ((sk = calloc(1, sizeof(*sk))) == NULL)
			return -1;
		curl_multi_assign(f->multi, s, sk);
	} else {
		event_del(&sk->ev);
	}
	if (event_assign(&sk->ev, f->base, s, kind, on_socket_event, f) < 0 ||
	    event_add(&sk->ev, NULL) < 0)
		return -1;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants on_timer after timeout_ms (-1: never). */
static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct fetcher *f = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(f->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(f->timer, &tv);
}

static void
check_done(struct fetcher *f)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
		struct fetch_job *j = NULL;
		long code = 0;
		char err[CURL_ERROR_SIZE + 64];
		CURLcode rc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (j->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			snprintf(err, sizeof(err), "response larger than %zu bytes", j->max_body);
			job_finish(j, FETCH_TOO_BIG, code, err);
		} else if (rc == CURLE_OPERATION_TIMEDOUT) {
			snprintf(err, sizeof(err), "timed out after %llds", f->cfg->upstream_timeout);
			job_finish(j, FETCH_TIMEOUT, code, err);
		} else if (rc != CURLE_OK) {
			snprintf(err, sizeof(err), "%s", j->errbuf[0] != '\0' ? j->errbuf : curl_easy_strerror(rc));
			job_finish(j, FETCH_NETWORK, code, err);
		} else if (j->raw && code >= 200 && code < 300) {
			note_answer(j);
			job_finish(j, FETCH_OK, code, NULL);
		} else if (code == 304 && (j->if_none_match != NULL || j->if_modified_since != NULL)) {
			note_answer(j);
			job_finish(j, FETCH_NOT_MODIFIED, code, "not modified");
		} else if (code != 200) {
			curl_off_t ra = 0;

			if (curl_easy_getinfo(msg->easy_handle, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK)
				ra = 0;
			snprintf(err, sizeof(err), "HTTP status %ld", code);
			job_finish_ra(j, FETCH_HTTP, code, err, (long long)ra);
		} else if (j->len == 0) {
			job_finish(j, FETCH_HTTP, code, "empty response body");
		} else {
			note_answer(j);
			job_finish(j, FETCH_OK, code, NULL);
		}
	}
}

struct fetcher *
fetch_new(struct event_base *base, const struct stapler_config *cfg)
{
	struct fetcher *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->base = base;
	f->cfg = cfg;
	TAILQ_INIT(&f->running);
	for (int p = 0; p < FETCH_PRIO_COUNT; p++)
		TAILQ_INIT(&f->ready[p]);
	LIST_INIT(&f->hosts);
	if ((f->multi = curl_multi_init()) == NULL ||
	    (f->timer = evtimer_new(base, on_timer, f)) == NULL ||
	    (f->kick = event_new(base, -1, 0, on_kick, f)) == NULL ||
	    (f->resume = evtimer_new(base, on_resume, f)) == NULL ||
	    (f->budget = evtimer_new(base, on_budget, f)) == NULL) {
		fetch_free(&f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	fetch_set_config(f, cfg);
	return f;
}

void
fetch_free(struct fetcher **fp)
{
	struct fetcher *f;
	struct host *h;
	struct fetch_job *j;

	if (fp == NULL || (f = *fp) == NULL)
		return;
	while ((j = TAILQ_FIRST(&f->running)) != NULL)
		job_finish(j, FETCH_CANCELLED, 0, "shutting down");
	/* A callback may queue no new work (fetch_start refuses nothing here, but the service
	 * is stopping), so each queue empties. */
	LIST_FOREACH(h, &f->hosts, link) {
		for (int p = 0; p < FETCH_PRIO_COUNT; p++) {
			while ((j = TAILQ_FIRST(&h->queue[p])) != NULL)
				job_finish(j, FETCH_CANCELLED, 0, "shutting down");
		}
	}
	while ((h = LIST_FIRST(&f->hosts)) != NULL) {
		LIST_REMOVE(h, link);
		free(h);
	}
	if (f->multi != NULL)
		curl_multi_cleanup(f->multi);
	if (f->timer != NULL)
		event_free(f->timer);
	if (f->kick != NULL)
		event_free(f->kick);
	if (f->resume != NULL)
		event_free(f->resume);
	if (f->budget != NULL)
		event_free(f->budget);
	free(f);
	*fp = NULL;
}

void
fetch_set_config(struct fetcher *f, const struct stapler_config *cfg)
{
	struct host *h;

	f->cfg = cfg;
	/* libcurl's own cap matches ours, so it never queues a transfer we counted as running;
	 * its connection cache keeps as many idle connections as may run, for reuse where the
	 * upstream keeps them alive. */
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, cfg->max_per_host);
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, cfg->max_parallel);
	LIST_FOREACH(h, &f->hosts, link) {
		pace_set_max(&h->pace, (int)cfg->max_per_host);
		host_ready_update(f, h);
	}
}

int
fetch_start(struct fetcher *f, const char *url, const unsigned char *der, size_t len,
    enum fetch_priority prio, fetch_cb cb, void *arg, struct fetch_job **job, char *err,
    size_t errlen)
{
	struct fetch_job *j;
	char host[HOST_MAX];

	if (f->n_queued >= FETCH_QUEUE_MAX) {
		snprintf(err, errlen, "too many upstream fetches waiting");
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->f = f;
	j->max_age = -1;
	j->max_body = FETCH_MAX_BODY;
	j->prio = prio < 0 || prio >= FETCH_PRIO_COUNT ? FETCH_PRIO_REFRESH : prio;
	j->cb = cb;
	j->arg = arg;
	if (fetch_url_allowed(f->cfg, url, host, sizeof(host), err, errlen) < 0)
		goto fail;
	if ((j->url = strdup(url)) == NULL || (j->req = malloc(len)) == NULL ||
	    (j->host = host_get(f, host)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The upstream asked us to wait (Retry-After): refreshes wait in line for the pause to
	 * end; a client is told at once, so it can try another URL instead of hanging. */
	if (j->prio != FETCH_PRIO_REFRESH && j->host->paused_until > time(NULL)) {
		snprintf(err, errlen, "upstream %s asked to wait %lld s more (Retry-After)", host,
		    (long long)(j->host->paused_until - time(NULL)));
		j->host = NULL;
		goto fail;
	}
	memcpy(j->req, der, len);
	j->req_len = len;
	j->get_url = ocsp_get_url(url, der, len);   /* NULL: too long for GET, use POST */
	TAILQ_INSERT_TAIL(&j->host->queue[j->prio], j, link);
	f->n_queued++;
	f->n_queued_prio[j->prio]++;
	j->host->queued++;
	host_ready_update(f, j->host);
	event_active(f->kick, EV_TIMEOUT, 0);
	if (job != NULL)
		*job = j;
	return 0;
fail:
	job_free(j);
	return -1;
}

int
fetch_start_raw(struct fetcher *f, const char *url, const struct fetch_raw *opt, fetch_cb cb,
    void *arg, struct fetch_job **job, char *err, size_t errlen)
{
	struct fetch_job *j;
	struct url_parts parts;
	char why[200];

	if (opt->policy ? fetch_url_allowed(f->cfg, url, NULL, 0, err, errlen) < 0 :
	    url_parse_fetchable(url, strlen(url), &parts, why, sizeof(why)) < 0) {
		if (!opt->policy)
			snprintf(err, errlen, "%s", why);
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		goto oom;
	j->f = f;
	j->raw = 1;
	j->max_age = -1;
	j->max_body = opt->max_body;
	j->timeout_ms = (long)opt->timeout * 1000;
	j->prio = FETCH_PRIO_REFRESH;
	j->cb = cb;
	j->arg = arg;
	if ((j->url = strdup(url)) == NULL)
		goto oom;
	if (opt->body != NULL) {
		if ((j->req = malloc(opt->body_len > 0 ? opt->body_len : 1)) == NULL)
			goto oom;
		memcpy(j->req, opt->body, opt->body_len);
		j->req_len = opt->body_len;
	}
	for (size_t i = 0; opt->headers != NULL && opt->headers[i] != NULL; i++) {
		struct curl_slist *h = curl_slist_append(j->raw_headers, opt->headers[i]);

		if (h == NULL)
			goto oom;
		j->raw_headers = h;
	}
	if (fetch_set_validators(j, opt->etag, opt->last_modified) < 0)
		goto oom;
	if (job_begin(j) < 0)
		goto oom;
	TAILQ_INSERT_TAIL(&f->running, j, link);
	f->n_running++;
	if (job != NULL)
		*job = j;
	return 0;
oom:
	snprintf(err, errlen, "cannot start the transfer");
	job_free(j);
	return -1;
}

size_t
fetch_active(const struct fetcher *f)
{
	return f->n_running;
}

size_t
fetch_queued(const struct fetcher *f)
{
	return f->n_queued;
}

size_t
fetch_queued_prio(const struct fetcher *f, enum fetch_priority prio)
{
	return prio < FETCH_PRIO_COUNT ? f->n_queued_prio[prio] : 0;
}

unsigned long long
fetch_cancelled(const struct fetcher *f)
{
	return f->n_cancelled;
}

int
fetch_host_state(const struct fetcher *f, const char *url, time_t now, struct fetch_host_info *info)
{
	char host[HOST_MAX], err[256];
	const struct host *h;

	info->load = 0;
	info->limit = PACE_START < f->cfg->max_per_host ? PACE_START : (int)f->cfg->max_per_host;
	info->retry_at = 0;
	if (fetch_url_allowed(f->cfg, url, host, sizeof(host), err, sizeof(err)) < 0)
		return -1;
	if ((h = host_find(f, host)) == NULL)
		return 0;
	info->load = h->active + h->queued;
	info->limit = pace_limit(&h->pace);
	if (h->failures > 0 && h->retry_at > now)
		info->retry_at = h->retry_at;
	if (h->paused_until > now && h->paused_until > info->retry_at)
		info->retry_at = h->paused_until;
	return 0;
}

size_t
fetch_host_limits(const struct fetcher *f, struct fetch_host_limit *out, size_t cap)
{
	const struct host *h;
	size_t n = 0;

	LIST_FOREACH(h, &f->hosts, link) {
		if (n == cap)
			break;
		util_strlcpy(out[n].host, h->name, sizeof(out[n].host));
		out[n].limit = pace_limit(&h->pace);
		out[n].active = h->active;
		out[n].queued = h->queued;
		out[n].paused_until = h->paused_until;
		n++;
	}
	return n;
}

size_t
fetch_cancel_if(struct fetcher *f, fetch_cb cb, int (*match)(void *arg, void *ctx), void *ctx)
{
	struct fetch_job *j, **sweep;
	struct host *h;
	size_t n = 0, done = 0;

	/* The matching jobs first, then their ends: a callback may end other jobs of the list
	 * (a client of several waits leaving), which then clear their place in it (job_free). */
	if ((sweep = calloc(f->n_running + f->n_queued + 1, sizeof(*sweep))) == NULL)
		return 0;
	TAILQ_FOREACH(j, &f->running, link) {
		if (j->cb == cb && match(j->arg, ctx))
			sweep[n++] = j;
	}
	LIST_FOREACH(h, &f->hosts, link) {
		for (int p = 0; p < FETCH_PRIO_COUNT; p++) {
			TAILQ_FOREACH(j, &h->queue[p], link) {
				if (j->cb == cb && match(j->arg, ctx))
					sweep[n++] = j;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		sweep[i]->sweep = &sweep[i];
	for (size_t i = 0; i < n; i++) {
		if (sweep[i] != NULL) {
			job_finish(sweep[i], FETCH_CANCELLED, 0, "cancelled");
			done++;
		}
	}
	free(sweep);
	return done;
}

size_t
fetch_hosts_failing(const struct fetcher *f)
{
	const struct host *h;
	size_t n = 0;

	LIST_FOREACH(h, &f->hosts, link) {
		if (h->failures > 0)
			n++;
	}
	return n;
}

/* One sample per known host with a label of its own: its limit (cuts 0) or its cuts (1). */
static void
host_samples(const struct fetcher *f, FILE *fp, const char *name, int cuts)
{
	const struct host *h;

	LIST_FOREACH(h, &f->hosts, link) {
		const char *const labels[] = { "upstream", h->name, NULL };

		if (metrics_label_find(&f->m_hosts, h->name) >= 0)
			metrics_sample(fp, name, labels, cuts ? (double)h->pace.cuts :
			    (double)pace_limit(&h->pace));
	}
}

void
fetch_metrics_write(const struct fetcher *f, FILE *fp)
{
	const struct host *h;
	size_t backoff = 0;
	time_t now = time(NULL);

	metrics_family(fp, "staplerd_upstream_fetches_total", "counter",
	    "Upstream OCSP transfers by upstream (host:port) and outcome.");
	for (size_t i = 0; i < f->m_hosts.n; i++) {
		for (int s = 0; s <= FETCH_CANCELLED; s++) {
			const char *const labels[] = { "upstream", f->m_hosts.value[i], "outcome",
			    outcome_names[s], NULL };

			metrics_sample(fp, "staplerd_upstream_fetches_total", labels,
			    (double)f->m_outcome[i][s]);
		}
	}
	metrics_family(fp, "staplerd_upstream_fetch_duration_seconds", "histogram",
	    "Time from the start of an upstream transfer to its end.");
	for (size_t i = 0; i < f->m_hosts.n; i++) {
		const char *const labels[] = { "upstream", f->m_hosts.value[i], NULL };

		if (f->m_latency[i].le != NULL)
			metrics_hist_write(fp, "staplerd_upstream_fetch_duration_seconds", labels,
			    &f->m_latency[i]);
	}
	LIST_FOREACH(h, &f->hosts, link) {
		if (h->failures > 0 && h->retry_at > now)
			backoff++;
	}
	metrics_family(fp, "staplerd_refresh_budget_holds_total", "counter",
	    "Times refresh transfers waited because clients were being served and upstream work "
	    "had had its [refresh] max_cpu share of a core.");
	metrics_sample(fp, "staplerd_refresh_budget_holds_total", NULL, (double)f->budget_holds);
	metrics_family(fp, "staplerd_upstreams_in_backoff", "gauge",
	    "Upstreams left alone by refresh work after transport failures.");
	metrics_sample(fp, "staplerd_upstreams_in_backoff", NULL, (double)backoff);
	metrics_family(fp, "staplerd_upstream_concurrency_limit", "gauge",
	    "Transfers an upstream (host:port) may run at once now: the adaptive limit, at most "
	    "[upstream] max_per_host.");
	host_samples(f, fp, "staplerd_upstream_concurrency_limit", 0);
	metrics_family(fp, "staplerd_upstream_concurrency_cuts_total", "counter",
	    "Times an upstream's limit was cut (timeouts, 5xx, 429, growing latency), while it is "
	    "remembered.");
	host_samples(f, fp, "staplerd_upstream_concurrency_cuts_total", 1);
	metrics_family(fp, "staplerd_upstream_retry_after_total", "counter",
	    "429 and 503 answers with a Retry-After, which paused their upstream.");
	for (size_t i = 0; i < f->m_hosts.n; i++) {
		const char *const labels[] = { "upstream", f->m_hosts.value[i], NULL };

		metrics_sample(fp, "staplerd_upstream_retry_after_total", labels,
		    (double)f->m_retry_after[i]);
	}
	metrics_family(fp, "staplerd_upstream_transfers", "gauge", "Upstream transfers running.");
	metrics_sample(fp, "staplerd_upstream_transfers", NULL, (double)f->n_running);
	metrics_family(fp, "staplerd_fetch_queue", "gauge",
	    "Fetches waiting for a free upstream slot, by who waits (refresh: the refresh queue).");
	for (int p = 0; p < FETCH_PRIO_COUNT; p++) {
		static const char *const names[FETCH_PRIO_COUNT] = { "client", "anonymous", "refresh" };
		const char *const labels[] = { "priority", names[p], NULL };

		metrics_sample(fp, "staplerd_fetch_queue", labels, (double)f->n_queued_prio[p]);
	}
	metrics_family(fp, "staplerd_fetches_cancelled_total", "counter",
	    "Fetches dropped because no client waited for them any more.");
	metrics_sample(fp, "staplerd_fetches_cancelled_total", NULL, (double)f->n_cancelled);
}

size_t
fetch_upstreams_failing(const struct fetcher *f, time_t now, long long longer_than, char *names,
    size_t cap)
{
	const struct host *h;
	size_t n = 0, off = 0;

	if (cap > 0)
		names[0] = '\0';
	LIST_FOREACH(h, &f->hosts, link) {
		if (h->failures == 0 || (long long)(now - h->failing_since) < longer_than)
			continue;
		n++;
		if (cap > 0 && off + strlen(h->name) + 2 < cap) {
			off += (size_t)snprintf(names + off, cap - off, "%s%s", off ? " " : "", h->name);
		}
	}
	return n;
}
