/* Per-upstream concurrency limit (see pace.h): additive increase, multiplicative decrease,
 * with latency growth as an early sign of a queue forming at the upstream. */
#include "pace.h"

void
pace_init(struct pace *p, int max)
{
	p->max = max < 1 ? 1 : (double)max;
	p->limit = PACE_START < p->max ? PACE_START : p->max;
	p->ssthresh = p->max;
	p->lat = 0;
	p->base = 0;
	p->cut_at = -1e18;
	p->cuts = 0;
}

void
pace_set_max(struct pace *p, int max)
{
	p->max = max < 1 ? 1 : (double)max;
	if (p->limit > p->max)
		p->limit = p->max;
	if (p->ssthresh > p->max)
		p->ssthresh = p->max;
}

static double
round_trip(const struct pace *p)
{
	return p->lat > PACE_MIN_ROUND ? p->lat : PACE_MIN_ROUND;
}

void
pace_congested(struct pace *p, enum pace_signal why, double now)
{
	/* The transfers in flight when the upstream slowed down all tell of the same moment:
	 * one cut per round trip, not one per transfer. */
	if (now - p->cut_at < round_trip(p))
		return;
	p->limit *= why == PACE_OVERLOAD ? 0.5 : 0.75;
	if (p->limit < 1)
		p->limit = 1;
	p->ssthresh = p->limit;
	p->cut_at = now;
	p->cuts++;
}

void
pace_answer(struct pace *p, double latency, int in_flight, double now)
{
	if (latency < 0)
		latency = 0;
	p->lat = p->lat == 0 ? latency : p->lat + (latency - p->lat) / 8;
	/* The baseline follows the lowest latency, and drifts up slowly, so a path that became
	 * longer for good (a new route) gets a new baseline instead of a limit cut forever. */
	if (p->base == 0 || p->lat < p->base)
		p->base = p->lat;
	else
		p->base += (p->lat - p->base) / 256;
	if (p->lat > p->base * PACE_LAT_GROWTH + PACE_LAT_SLACK) {
		pace_congested(p, PACE_SLOWER, now);
		return;
	}
	/* Unused headroom proves nothing about the upstream: grow only at the limit. */
	if ((double)in_flight + 1 <= p->limit)
		return;
	p->limit += p->limit < p->ssthresh ? 1 : 1 / p->limit;
	if (p->limit > p->max)
		p->limit = p->max;
}

int
pace_limit(const struct pace *p)
{
	int n = (int)p->limit;

	if (n < 1)
		n = 1;
	if ((double)n > p->max)
		n = (int)p->max;
	return n;
}
