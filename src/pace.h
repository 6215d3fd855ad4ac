/* Per-upstream concurrency that follows the upstream (AIMD, like TCP's congestion window):
 * pure arithmetic on answers, latencies and errors, with time passed in, so the fetcher
 * (fetch.c) applies it and unit tests drive it over made-up clocks. */
#ifndef STAPLER_PACE_H
#define STAPLER_PACE_H

/* Transfers a host may run at once when it is first contacted (the former fixed cap). */
#define PACE_START 8
/* Latency "grows" when the smoothed latency passes PACE_LAT_GROWTH times the baseline plus
 * PACE_LAT_SLACK seconds (the slack keeps loopback's millisecond jitter from counting). */
#define PACE_LAT_GROWTH 2.0
#define PACE_LAT_SLACK 0.020
/* One cut per round trip at most, and a round trip is taken as at least this (seconds). */
#define PACE_MIN_ROUND 0.050

struct pace {
	double limit;        /* transfers allowed at once, in [1, max] */
	double ssthresh;     /* below it the limit grows by one per answer, above by 1/limit */
	double max;          /* [upstream] max_per_host */
	double lat;          /* smoothed latency of answers (seconds), 0: none yet */
	double base;         /* the lowest smoothed latency seen lately: the uncongested baseline */
	double cut_at;       /* when the limit was cut last (seconds, caller's clock) */
	unsigned long long cuts; /* times the limit was cut */
};

enum pace_signal {
	PACE_OVERLOAD = 0,   /* a timeout, an HTTP 5xx or 429: halve */
	PACE_SLOWER,         /* latency grew past the baseline: cut by a quarter */
};

/* Starts at min(PACE_START, max); max >= 1. */
void pace_init(struct pace *p, int max);
/* Applies a new [upstream] max_per_host: the limit is clamped to it. */
void pace_set_max(struct pace *p, int max);
/* An answer (any HTTP answer but 5xx and 429) after latency seconds, with in_flight transfers
 * running when it came (itself included), at now. The limit grows only while it is in use
 * (in_flight reaches it) and latency holds; a latency grown past the baseline cuts it. */
void pace_answer(struct pace *p, double latency, int in_flight, double now);
/* A sign of overload at now: the limit is cut, once per round trip at most. */
void pace_congested(struct pace *p, enum pace_signal why, double now);
/* The limit in force: an integer in [1, max]. */
int pace_limit(const struct pace *p);

#endif
