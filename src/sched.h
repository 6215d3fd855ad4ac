/* Refresh policy: when a cached staple is fetched again, after a success or a failure. Pure
 * functions of their inputs (time and randomness are passed in), so the rules are unit-tested
 * over a table of cases; the timer that applies them lives in the daemon (refresh.c). */
#ifndef STAPLER_SCHED_H
#define STAPLER_SCHED_H

#include <time.h>

/* First retry after a failure waits about this long; each further failure doubles it. */
#define SCHED_BACKOFF_BASE 60
/* Retries never come sooner than this (before jitter), even just before expiry. */
#define SCHED_RETRY_MIN 10
/* Retries never wait longer than this. */
#define SCHED_BACKOFF_CAP 3600
/* The latest refresh leaves this much of a response's life (at most half of it) for retries. */
#define SCHED_RETRY_RESERVE (6 * 3600)
/* A response without nextUpdate is never cached (PRODUCT.md §8.1); should one be stored
 * all the same, it is treated as valid for this long. */
#define SCHED_NO_NEXT_UPDATE_VALIDITY 3600

struct sched_policy {
	long long window;        /* [refresh] window: refetch when nextUpdate is this close */
	long long min_interval;  /* [refresh] min_interval: never refetch sooner after a fetch */
	long long max_interval;  /* [refresh] max_interval: never wait longer (0: no cap) */
};

/* When to fetch a response again that was fetched at fetched_at and is valid from this_update
 * to next_update (0: absent). The window rule (next_update - window), never sooner than
 * fetched_at + min(min_interval, validity / 2), never later than next_update minus a retry
 * reserve of min(validity / 2, SCHED_RETRY_RESERVE), plus jitter of up to a quarter of that
 * minimum interval (r in [0, 1) picks where). And never later than fetched_at + max_interval
 * (when set; never below that minimum interval), less a jitter of up to an eighth of it, so a
 * response valid for a century is still asked about again: a later revocation is seen. */
time_t sched_next_refresh(const struct sched_policy *p, time_t this_update, time_t next_update,
    time_t fetched_at, double r);

/* When to try again after `failures` consecutive failures (>= 1) at now: exponential backoff
 * from SCHED_BACKOFF_BASE, capped at SCHED_BACKOFF_CAP, with jitter in [50 %, 100 %] (r in
 * [0, 1)); while a valid response is still held (next_update > now, 0: none) the wait is also
 * capped at a quarter of its remaining life (but not below SCHED_RETRY_MIN), so several
 * retries fit before it expires. */
time_t sched_retry_at(int failures, time_t now, time_t next_update, double r);

#endif
