/* Refresh policy: when each cached staple is fetched again, and which of two answers is kept
 * (pure; see sched.h). */
#include "sched.h"

static double
clamp01(double r)
{
	return r < 0 ? 0 : (r >= 1 ? 0.999999 : r);
}

time_t
sched_next_refresh(const struct sched_policy *p, time_t this_update, time_t next_update,
    time_t fetched_at, double r)
{
	long long validity, min_gap, reserve, at, lo, hi;

	if (next_update == 0 || next_update <= this_update) {
		this_update = fetched_at;
		next_update = fetched_at + SCHED_NO_NEXT_UPDATE_VALIDITY;
	}
	validity = (long long)(next_update - this_update);
	min_gap = p->min_interval < validity / 2 ? p->min_interval : validity / 2;
	if (min_gap < 1)
		min_gap = 1;
	reserve = validity / 2 < SCHED_RETRY_RESERVE ? validity / 2 : SCHED_RETRY_RESERVE;

	at = (long long)next_update - p->window;
	lo = (long long)fetched_at + min_gap;
	hi = (long long)next_update - reserve;
	if (at > hi)
		at = hi;
	if (at < lo)
		at = lo;
	/* Jitter only ever delays, and never past the latest point (or past lo when a late
	 * fetch left no room at all). */
	if (hi < lo)
		hi = lo;
	at += (long long)(clamp01(r) * (double)(min_gap / 4));
	if (at > hi)
		at = hi;
	/* The cap on the wait: only a revocation nobody asks about stays unseen. Jitter moves
	 * capped entries earlier, so a fleet fetched together does not come due together. */
	if (p->max_interval > 0) {
		long long max_gap = p->max_interval > min_gap ? p->max_interval : min_gap;
		long long cap = (long long)fetched_at + max_gap;

		if (at > cap) {
			at = cap - (long long)(clamp01(r) * (double)(max_gap / 8));
			if (at < lo)
				at = lo;
		}
	}
	return (time_t)at;
}

time_t
sched_after_max_age(const struct sched_policy *p, time_t at, time_t this_update,
    time_t next_update, time_t fetched_at, long long max_age)
{
	long long validity, reserve, hi, not_before;

	if (max_age <= 0 || p->max_age_cap <= 0)
		return at;
	if (max_age > p->max_age_cap)
		max_age = p->max_age_cap;
	not_before = (long long)fetched_at + max_age;
	if ((long long)at >= not_before)
		return at;
	validity = (long long)(next_update - this_update);
	reserve = validity / 2 < SCHED_RETRY_RESERVE ? validity / 2 : SCHED_RETRY_RESERVE;
	hi = (long long)next_update - reserve;
	if (not_before > hi)
		not_before = hi;
	return (time_t)(not_before > (long long)at ? not_before : (long long)at);
}

time_t
sched_retry_at(int failures, time_t now, time_t next_update, double r)
{
	long long delay = SCHED_BACKOFF_BASE;

	for (int i = 1; i < failures && delay < SCHED_BACKOFF_CAP; i++)
		delay *= 2;
	if (delay > SCHED_BACKOFF_CAP)
		delay = SCHED_BACKOFF_CAP;
	if (next_update > now && delay > (long long)(next_update - now) / 4)
		delay = (long long)(next_update - now) / 4;
	if (delay < SCHED_RETRY_MIN)
		delay = SCHED_RETRY_MIN;
	/* "Equal jitter": between half and all of the delay. */
	delay = delay / 2 + (long long)(clamp01(r) * (double)(delay - delay / 2));
	return now + (time_t)delay;
}

enum sched_keep
sched_keep(const struct sched_answer *held, const struct sched_answer *fresh, time_t now,
    long margin)
{
	int first_revocation = fresh->revoked && (held == NULL || !held->revoked);

	if (held != NULL && held->revoked && !fresh->revoked)
		return SCHED_KEEP_ROLLBACK;
	/* Served only before nextUpdate - margin: one that ends sooner could serve nobody. A
	 * revocation still says the good answer held is wrong. */
	if ((long long)fresh->next_update - (long long)now <= margin)
		return first_revocation ? SCHED_KEEP_REVOKED_EXPIRING : SCHED_KEEP_EXPIRING;
	if (held == NULL || first_revocation)
		return SCHED_KEEP_FRESH;
	if (fresh->this_update != held->this_update)
		return fresh->this_update > held->this_update ? SCHED_KEEP_FRESH : SCHED_KEEP_OLDER;
	return fresh->produced_at >= held->produced_at ? SCHED_KEEP_FRESH : SCHED_KEEP_OLDER;
}

const char *
sched_keep_name(enum sched_keep k)
{
	switch (k) {
	case SCHED_KEEP_FRESH:
		return "fresh";
	case SCHED_KEEP_EXPIRING:
		return "expiring";
	case SCHED_KEEP_ROLLBACK:
		return "rollback";
	case SCHED_KEEP_OLDER:
		return "older";
	case SCHED_KEEP_REVOKED_EXPIRING:
		return "revoked_expiring";
	}
	return "invalid";
}

time_t
sched_after_older(const struct sched_policy *p, const struct sched_answer *held, time_t now,
    double r)
{
	time_t at = sched_next_refresh(p, held->this_update, held->next_update, now, r);
	long long cap = held->next_update > now ? (long long)(held->next_update - now) / 4 : 0;

	if (cap < SCHED_RETRY_MIN)
		cap = SCHED_RETRY_MIN;
	if ((long long)at > (long long)now + cap)
		at = now + (time_t)cap;
	return at;
}
