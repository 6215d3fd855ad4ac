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
/* A response without nextUpdate is never cached (docs/contract.md §8.1); should one be stored
 * all the same, it is treated as valid for this long. */
#define SCHED_NO_NEXT_UPDATE_VALIDITY 3600

struct sched_policy {
	long long window;        /* [refresh] window: refetch when nextUpdate is this close */
	long long min_interval;  /* [refresh] min_interval: never refetch sooner after a fetch */
	long long max_interval;  /* [refresh] max_interval: never wait longer (0: no cap) */
	long long max_age_cap;   /* [refresh] upstream_max_age: an upstream's max-age postpones a
	                          * refresh at most this long (0: ignored) */
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

/* A refresh planned at `at` for an answer fetched at fetched_at, whose upstream said it stays
 * current for max_age seconds (Cache-Control max-age or Expires; < 0: said nothing): no
 * sooner than fetched_at + min(max_age, max_age_cap) (RFC 9919 §6: a newer response cannot
 * exist before), but never past the latest point of sched_next_refresh() (nextUpdate less the
 * retry reserve), so the held answer is renewed in time whatever the upstream says. */
time_t sched_after_max_age(const struct sched_policy *p, time_t at, time_t this_update,
    time_t next_update, time_t fetched_at, long long max_age);

/* When to try again after `failures` consecutive failures (>= 1) at now: exponential backoff
 * from SCHED_BACKOFF_BASE, capped at SCHED_BACKOFF_CAP, with jitter in [50 %, 100 %] (r in
 * [0, 1)); while a valid response is still held (next_update > now, 0: none) the wait is also
 * capped at a quarter of its remaining life (but not below SCHED_RETRY_MIN), so several
 * retries fit before it expires. */
time_t sched_retry_at(int failures, time_t now, time_t next_update, double r);

/* Which answer is kept: a verified fresh answer against the one held for the same
 * certificate. Only what the rule needs of each. */
struct sched_answer {
	int revoked;             /* status revoked (a signed revocation is final) */
	time_t this_update, next_update, produced_at;
};

enum sched_keep {
	SCHED_KEEP_FRESH = 0,    /* store and serve the fresh answer */
	SCHED_KEEP_EXPIRING,     /* it ends within the safety margin: unusable, a failure */
	SCHED_KEEP_ROLLBACK,     /* good/unknown for a certificate held revoked: a failure */
	SCHED_KEEP_OLDER,        /* older than the held one, which stays: not a failure */
	SCHED_KEEP_REVOKED_EXPIRING, /* a first revocation within the margin: it replaces what is
	                              * held (final) but is served to nobody, a failure */
};

/* The choice, at now, between held (NULL: nothing held) and fresh. In this order: a revocation
 * held is never rolled back; a fresh answer whose nextUpdate is at most margin seconds away
 * can be served to nobody, and is not kept (unless it is the first revocation: that one ends
 * the good answer held all the same); a fresh revocation replaces what is held whatever its
 * age; otherwise the answer with the later thisUpdate wins, the later producedAt when they
 * are equal, and the fresh one when both are equal. */
enum sched_keep sched_keep(const struct sched_answer *held, const struct sched_answer *fresh,
    time_t now, long margin);
/* "fresh", "expiring", "rollback", "older", "revoked_expiring". */
const char *sched_keep_name(enum sched_keep k);

/* When to fetch again after an upstream answered older than the held answer: as if the held
 * answer had just been fetched again (sched_next_refresh() with fetched_at = now), but never
 * later than a quarter of its remaining life from now (at least SCHED_RETRY_MIN), so a
 * lagging upstream is asked again before the held answer runs out. */
time_t sched_after_older(const struct sched_policy *p, const struct sched_answer *held,
    time_t now, double r);

#endif
