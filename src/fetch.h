/* Upstream OCSP fetches: libcurl's multi_socket interface driven by the daemon's libevent
 * loop, with URL policy, a total timeout, a response size cap and per-host concurrency caps. */
#ifndef STAPLER_FETCH_H
#define STAPLER_FETCH_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "url.h"

struct event_base;
struct stapler_config;

/* Largest upstream answer accepted; OCSP responses are a few KiB. */
#define FETCH_MAX_BODY (64 * 1024)
/* Transfers run at once against one upstream (host:port) are bounded by an adaptive limit
 * (pace.c) under [upstream] max_per_host; the rest wait in line. */
/* A Retry-After longer than this (seconds) is taken as this. */
#define FETCH_RETRY_AFTER_MAX 600
/* A host idle this long (seconds) is forgotten, with the limit it learned. */
#define FETCH_HOST_KEEP 600
/* After transport failures a host is left alone by refresh work for this long, doubling per
 * consecutive failure up to the cap (seconds). */
#define FETCH_HOST_BACKOFF_BASE 10
#define FETCH_HOST_BACKOFF_CAP 600
/* Refresh transfers held by the budget are looked at again this often. */
#define FETCH_BUDGET_MS 20
/* Longest ETag or Last-Modified kept from an upstream's answer (longer ones are ignored). */
#define FETCH_VALIDATOR_MAX 128
/* Fetches that may wait for a free slot before new ones are refused. */
#define FETCH_QUEUE_MAX 100000

enum fetch_status {
	FETCH_OK = 0,       /* HTTP 200 with a body */
	FETCH_NETWORK,      /* resolve/connect/transfer error */
	FETCH_TIMEOUT,      /* total timeout passed */
	FETCH_HTTP,         /* a status other than 200 (redirects included: none are followed) */
	FETCH_TOO_BIG,      /* body larger than FETCH_MAX_BODY */
	FETCH_NOT_MODIFIED, /* HTTP 304 to a conditional request (fetch_set_validators()) */
	FETCH_CANCELLED,    /* the fetcher was freed before the transfer ended */
};

struct fetch_result {
	enum fetch_status status;
	const char *url;               /* the responder URL asked (not the GET URL) */
	long http_code;
	const unsigned char *body;     /* valid during the callback only */
	size_t len;
	const char *error;             /* human text when status != FETCH_OK */
	/* FETCH_OK and FETCH_NOT_MODIFIED: seconds the upstream says the answer stays current
	 * (Cache-Control max-age less Age, else Expires less Date; 0 for no-cache), -1: none
	 * said; and its validators (NULL: none), valid during the callback only. */
	long long max_age;
	const char *etag;
	const char *last_modified;
};

typedef void (*fetch_cb)(const struct fetch_result *res, void *arg);

/* Who waits for a fetch, in the order free slots are given out: a client with a verified
 * certificate first, then an anonymous /ocsp miss, then the refresh scheduler. */
enum fetch_priority {
	FETCH_PRIO_CLIENT = 0,
	FETCH_PRIO_ANONYMOUS,
	FETCH_PRIO_REFRESH,
	FETCH_PRIO_COUNT,
};

struct fetcher;
struct fetch_job;

/* Returns a new fetcher on base, or NULL. It keeps a pointer to cfg (timeout, max_parallel,
 * allow): fetch_set_config() swaps it on reload. */
struct fetcher *fetch_new(struct event_base *base, const struct stapler_config *cfg);
/* Cancels every transfer (their callbacks run with FETCH_CANCELLED) and frees the fetcher. */
void fetch_free(struct fetcher **f);
void fetch_set_config(struct fetcher *f, const struct stapler_config *cfg);

/* Checks that url may be fetched: http or https, a host, no user information or fragment
 * (url_parse_fetchable), the [upstream] allow list. Returns 0, or -1 with err set. When host
 * is not NULL it receives the upstream the URL names, "host:port" (lowercase host, default
 * port filled in), as the per-host limits count it. */
int fetch_url_allowed(const struct stapler_config *cfg, const char *url, char *host, size_t hostcap,
    char *err, size_t errlen);

/* Queues the OCSP request der (copied) for url: GET when the RFC 5019 URL fits in 255 bytes,
 * POST otherwise. Each upstream host has its own queue per priority, and free slots go to the
 * highest priority first, round robin over the hosts that can take work. Returns 0 and later
 * calls cb exactly once, never from inside fetch_start, unless fetch_cancel() comes first;
 * *job (when job is not NULL) is the handle for that. Or returns -1 with err set (policy
 * refusal or queue full) and never calls cb. */
int fetch_start(struct fetcher *f, const char *url, const unsigned char *der, size_t len,
    enum fetch_priority prio, fetch_cb cb, void *arg, struct fetch_job **job, char *err,
    size_t errlen);
/* Makes job (just returned by fetch_start(), not yet called back) a conditional request:
 * If-None-Match etag and/or If-Modified-Since last_modified (either may be NULL), as the
 * upstream gave them with the answer held; a 304 then ends it with FETCH_NOT_MODIFIED.
 * Returns 0, or -1 (out of memory, or a value with a line break: the request stays plain). */
int fetch_set_validators(struct fetch_job *job, const char *etag, const char *last_modified);
/* Drops a fetch nobody waits for any more: queued, it is forgotten; running, its transfer is
 * stopped and its socket closed. Its callback never runs. */
void fetch_cancel(struct fetcher *f, struct fetch_job *job);

/* A transfer other than an OCSP request: a webhook's POST, a CRL's GET. */
struct fetch_raw {
	const unsigned char *body;      /* POSTed when not NULL, else GET */
	size_t body_len;
	const char *const *headers;     /* "Name: value" lines, NULL-terminated; may be NULL */
	const char *etag, *last_modified;  /* a conditional GET's validators, or NULL */
	size_t max_body;                /* answer bytes at most (FETCH_TOO_BIG past it) */
	long long timeout;              /* seconds for the whole transfer */
	int policy;                     /* 1: the upstream rules apply (scheme, allow list) */
};
/* Starts a transfer of url at once, outside the per-host queues and pacing; no redirect is
 * followed. Any 2xx ends it FETCH_OK (the body may be empty), a 304 to a conditional GET
 * FETCH_NOT_MODIFIED. Returns 0 and calls cb exactly once later (not from inside this call)
 * unless fetch_cancel() comes first; or -1 with err set and never calls cb. */
int fetch_start_raw(struct fetcher *f, const char *url, const struct fetch_raw *opt, fetch_cb cb,
    void *arg, struct fetch_job **job, char *err, size_t errlen);

/* What the refresh scheduler needs to know of one upstream host. */
struct fetch_host_info {
	int load;          /* transfers running and waiting */
	int limit;         /* transfers it may run at once now (the adaptive limit) */
	time_t retry_at;   /* the end of its failure backoff or Retry-After pause, else 0 */
};

/* The health of url's host at now, into *info. Returns 0, or -1 when url may not be
 * fetched at all. */
int fetch_host_state(const struct fetcher *f, const char *url, time_t now,
    struct fetch_host_info *info);

/* One upstream host's limit in force, for the admin socket's `pace` (staplerctl stats). */
struct fetch_host_limit {
	char host[URL_AUTHORITY_MAX];
	int limit, active, queued;
	time_t paused_until;     /* Retry-After: no transfer before this, or 0 */
};
/* Fills out with up to cap hosts the fetcher knows; returns how many. */
size_t fetch_host_limits(const struct fetcher *f, struct fetch_host_limit *out, size_t cap);

/* cb(arg) runs when a refresh transfer ends and at most [upstream] max_parallel refreshes
 * wait: the refresh timer then admits more at once, instead of at its next tick (continuous
 * admission). From the loop; cb must only schedule work. NULL cb: none. */
void fetch_on_refresh_low(struct fetcher *f, void (*cb)(void *arg), void *arg);

/* Transfers running and waiting, and waiting with priority prio. */
size_t fetch_active(const struct fetcher *f);
size_t fetch_queued(const struct fetcher *f);
size_t fetch_queued_prio(const struct fetcher *f, enum fetch_priority prio);
/* Fetches cancelled by fetch_cancel() since the start. */
unsigned long long fetch_cancelled(const struct fetcher *f);
/* Upstreams failing (consecutive transport failures) for at least longer_than seconds at now;
 * their names, space separated, into names (as many as fit in cap). Returns the count. */
size_t fetch_upstreams_failing(const struct fetcher *f, time_t now, long long longer_than,
    char *names, size_t cap);
/* The fetcher's /metrics families (Prometheus text): outcomes and latency per upstream,
 * upstreams in backoff, transfers, queues by priority, cancellations. Counted since start. */
void fetch_metrics_write(const struct fetcher *f, FILE *fp);

/* Cancels every transfer, running or waiting, whose callback is cb and for whose arg match
 * returns 1: each callback runs with FETCH_CANCELLED before this returns (a stop that drops
 * work nobody waits for). Returns the number cancelled. */
size_t fetch_cancel_if(struct fetcher *f, fetch_cb cb, int (*match)(void *arg, void *ctx),
    void *ctx);
/* Upstreams (host:port) whose last transfer failed (network, timeout, HTTP 5xx). */
size_t fetch_hosts_failing(const struct fetcher *f);

/* The loop's CPU spent in libcurl's events and in the callbacks of the answers they end (the
 * verification, the row), since the start, in nanoseconds: the upstream work refresh.c keeps
 * within its budget on a saturated loop. */
long long fetch_cpu_ns(const struct fetcher *f);

/* How the fetcher tells that clients are being served: answered(arg) is a count that grows
 * with every answer given to clients. While it grows by at least FETCH_SERVING_MIN a second,
 * refresh transfers keep the upstream work within [refresh] max_cpu of a core, so cached
 * staples are served at their pace during a full refresh; with nobody to serve, refreshes run
 * at the upstreams' pace. Without a probe there is no budget. */
#define FETCH_SERVING_MIN 100
void fetch_set_serving_probe(struct fetcher *f, unsigned long long (*answered)(void *arg),
    void *arg);
/* Times refresh transfers waited for the budget, since the start. */
unsigned long long fetch_budget_holds(const struct fetcher *f);

#endif
