/* Upstream OCSP fetches on libcurl's multi_socket API, driven by the daemon's libevent loop
 * (the shape of curl's docs/examples/multi-event.c). Our own queue holds transfers until a
 * global and a per-host slot are free, so the total timeout counts from the real start. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "fetch.h"
#include "url.h"
#include "config.h"
#include "log.h"
#include "ocsp.h"
#include "util.h"

#define HOST_MAX URL_AUTHORITY_MAX   /* a host name and ":port" */

/* An upstream host: its transfers, and its health. Kept while it has work or a failure. */
struct host {
	char name[HOST_MAX];
	int active;          /* transfers running */
	int queued;          /* transfers waiting for a slot */
	int failures;        /* consecutive transport failures (network, timeout, HTTP 5xx) */
	time_t retry_at;     /* while failing: no new refresh work before this */
	LIST_ENTRY(host) link;
};

struct job {
	struct fetcher *f;
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
	fetch_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	TAILQ_ENTRY(job) link;
};

/* libcurl's view of one socket: the event that watches it. */
struct sock {
	struct event *ev;
	struct fetcher *f;
};

struct fetcher {
	struct event_base *base;
	const struct stapler_config *cfg;
	CURLM *multi;
	struct event *timer;   /* libcurl's timeout */
	struct event *kick;    /* starts queued jobs on the next loop turn */
	TAILQ_HEAD(, job) queue;
	TAILQ_HEAD(, job) running;
	LIST_HEAD(, host) hosts;
	size_t n_queued, n_running;
};

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
	struct job *j = userp;
	size_t n = size * nmemb;

	if (n > FETCH_MAX_BODY - j->len) {
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

static struct host *
host_get(struct fetcher *f, const char *name)
{
	struct host *h;

	if ((h = host_find(f, name)) != NULL)
		return h;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	util_strlcpy(h->name, name, sizeof(h->name));
	LIST_INSERT_HEAD(&f->hosts, h, link);
	return h;
}

static void
host_gc(struct host *h)
{
	if (h->active == 0 && h->queued == 0 && h->failures == 0) {
		LIST_REMOVE(h, link);
		free(h);
	}
}

/* Transport failures mark the host as failing, with a backoff that doubles up to
 * FETCH_HOST_BACKOFF_CAP; any answer at all (even one we reject) shows it is alive. */
static void
host_outcome(struct host *h, enum fetch_status status, long code)
{
	long long delay = FETCH_HOST_BACKOFF_BASE;

	if (status == FETCH_CANCELLED)
		return;
	if (status == FETCH_NETWORK || status == FETCH_TIMEOUT ||
	    (status == FETCH_HTTP && code >= 500)) {
		h->failures++;
		for (int i = 1; i < h->failures && delay < FETCH_HOST_BACKOFF_CAP; i++)
			delay *= 2;
		if (delay > FETCH_HOST_BACKOFF_CAP)
			delay = FETCH_HOST_BACKOFF_CAP;
		h->retry_at = time(NULL) + (time_t)delay;
		return;
	}
	h->failures = 0;
	h->retry_at = 0;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	if (j->easy != NULL)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	free(j->url);
	free(j->get_url);
	free(j->req);
	free(j->body);
	free(j);
}

/* Ends a job: unhooks it, reports, frees. */
static void
job_finish(struct job *j, enum fetch_status status, long code, const char *error)
{
	struct fetcher *f = j->f;
	struct fetch_result res = {
		.status = status, .url = j->url, .http_code = code,
		.body = j->body, .len = j->len, .error = error,
	};

	if (j->easy != NULL) {
		curl_multi_remove_handle(f->multi, j->easy);
		TAILQ_REMOVE(&f->running, j, link);
		f->n_running--;
		j->host->active--;
	} else {
		TAILQ_REMOVE(&f->queue, j, link);
		f->n_queued--;
		j->host->queued--;
	}
	host_outcome(j->host, status, code);
	host_gc(j->host);
	j->host = NULL;
	if (status != FETCH_OK) {
		res.body = NULL;
		res.len = 0;
	}
	j->cb(&res, j->arg);
	job_free(j);
	event_active(f->kick, EV_TIMEOUT, 0);
}

static int
job_begin(struct job *j)
{
	struct fetcher *f = j->f;
	long timeout_ms = (long)f->cfg->upstream_timeout * 1000;
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
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)FETCH_MAX_BODY);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "staplerd/" STAPLER_VERSION);
	if ((j->headers = curl_slist_append(NULL, "Accept: application/ocsp-response")) == NULL)
		return -1;
	if (j->get_url != NULL) {
		curl_easy_setopt(e, CURLOPT_URL, j->get_url);
	} else {
		struct curl_slist *h = curl_slist_append(j->headers, "Content-Type: application/ocsp-request");

		if (h == NULL)
			return -1;
		j->headers = h;
		curl_easy_setopt(e, CURLOPT_URL, j->url);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)j->req);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)j->req_len);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
	if (curl_multi_add_handle(f->multi, e) != CURLM_OK)
		return -1;
	return 0;
}

/* Starts queued jobs while global and per-host slots are free. */
static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	struct job *j, *next;

	for (j = TAILQ_FIRST(&f->queue); j != NULL && f->n_running < (size_t)f->cfg->max_parallel; j = next) {
		struct host *h = j->host;

		next = TAILQ_NEXT(j, link);
		if (h->active >= FETCH_PER_HOST_MAX)
			continue;
		TAILQ_REMOVE(&f->queue, j, link);
		f->n_queued--;
		h->queued--;
		TAILQ_INSERT_TAIL(&f->running, j, link);
		f->n_running++;
		h->active++;
		if (job_begin(j) < 0) {
			if (j->easy != NULL) {
				curl_easy_cleanup(j->easy);
				j->easy = NULL;
			}
			TAILQ_REMOVE(&f->running, j, link);
			f->n_running--;
			h->active--;
			TAILQ_INSERT_HEAD(&f->queue, j, link);
			f->n_queued++;
			h->queued++;
			job_finish(j, FETCH_NETWORK, 0, "cannot start transfer");
		}
	}
}

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(f->multi, fd, action, &running);
	check_done(f);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int running;

	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
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
			event_free(sk->ev);
			free(sk);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (sk == NULL) {
		if ((sk = calloc(1, sizeof(*sk))) == NULL)
			return -1;
		sk->f = f;
		curl_multi_assign(f->multi, s, sk);
	} else {
		event_free(sk->ev);
	}
	if ((sk->ev = event_new(f->base, s, kind, on_socket_event, f)) == NULL ||
	    event_add(sk->ev, NULL) < 0)
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
		struct job *j = NULL;
		long code = 0;
		char err[CURL_ERROR_SIZE + 64];
		CURLcode rc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (j->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			snprintf(err, sizeof(err), "response larger than %d bytes", FETCH_MAX_BODY);
			job_finish(j, FETCH_TOO_BIG, code, err);
		} else if (rc == CURLE_OPERATION_TIMEDOUT) {
			snprintf(err, sizeof(err), "timed out after %llds", f->cfg->upstream_timeout);
			job_finish(j, FETCH_TIMEOUT, code, err);
		} else if (rc != CURLE_OK) {
			snprintf(err, sizeof(err), "%s", j->errbuf[0] != '\0' ? j->errbuf : curl_easy_strerror(rc));
			job_finish(j, FETCH_NETWORK, code, err);
		} else if (code != 200) {
			snprintf(err, sizeof(err), "HTTP status %ld", code);
			job_finish(j, FETCH_HTTP, code, err);
		} else if (j->len == 0) {
			job_finish(j, FETCH_HTTP, code, "empty response body");
		} else {
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
	TAILQ_INIT(&f->queue);
	TAILQ_INIT(&f->running);
	LIST_INIT(&f->hosts);
	if ((f->multi = curl_multi_init()) == NULL ||
	    (f->timer = evtimer_new(base, on_timer, f)) == NULL ||
	    (f->kick = event_new(base, -1, 0, on_kick, f)) == NULL) {
		fetch_free(&f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)FETCH_PER_HOST_MAX);
	return f;
}

void
fetch_free(struct fetcher **fp)
{
	struct fetcher *f;
	struct host *h;
	struct job *j;

	if (fp == NULL || (f = *fp) == NULL)
		return;
	while ((j = TAILQ_FIRST(&f->running)) != NULL)
		job_finish(j, FETCH_CANCELLED, 0, "shutting down");
	while ((j = TAILQ_FIRST(&f->queue)) != NULL)
		job_finish(j, FETCH_CANCELLED, 0, "shutting down");
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
	free(f);
	*fp = NULL;
}

void
fetch_set_config(struct fetcher *f, const struct stapler_config *cfg)
{
	f->cfg = cfg;
}

int
fetch_start(struct fetcher *f, const char *url, const unsigned char *der, size_t len,
    fetch_cb cb, void *arg, char *err, size_t errlen)
{
	struct job *j;
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
	j->cb = cb;
	j->arg = arg;
	if (fetch_url_allowed(f->cfg, url, host, sizeof(host), err, errlen) < 0)
		goto fail;
	if ((j->url = strdup(url)) == NULL || (j->req = malloc(len)) == NULL ||
	    (j->host = host_get(f, host)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(j->req, der, len);
	j->req_len = len;
	j->get_url = ocsp_get_url(url, der, len);   /* NULL: too long for GET, use POST */
	TAILQ_INSERT_TAIL(&f->queue, j, link);
	f->n_queued++;
	j->host->queued++;
	event_active(f->kick, EV_TIMEOUT, 0);
	return 0;
fail:
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

int
fetch_host_state(const struct fetcher *f, const char *url, time_t now, int *load, time_t *retry_at)
{
	char host[HOST_MAX], err[256];
	const struct host *h;

	*load = 0;
	*retry_at = 0;
	if (fetch_url_allowed(f->cfg, url, host, sizeof(host), err, sizeof(err)) < 0)
		return -1;
	if ((h = host_find(f, host)) == NULL)
		return 0;
	*load = h->active + h->queued;
	if (h->failures > 0 && h->retry_at > now)
		*retry_at = h->retry_at;
	return 0;
}
