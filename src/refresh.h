/* The refresh timer: every check_interval it purges expired certificates' rows and starts a
 * bounded batch of due refreshes through the staple service, host by host within limits. */
#ifndef STAPLER_REFRESH_H
#define STAPLER_REFRESH_H

#include <time.h>

struct event_base;
struct stapler_config;
struct cache;
struct store;
struct staple_service;
struct fetcher;

/* Refreshes started per tick at most: bounds the work one tick does on the loop. */
#define REFRESH_BATCH 512
/* New refresh work is not given to a host that has this many times its limit in force
 * (fetch.c's adaptive limit: 8 at first contact, so 32) running or waiting. */
#define REFRESH_HOST_BACKLOG 4
/* While more is due than a tick takes (or an upstream is only busy), the next tick comes
 * after this many milliseconds instead of check_interval. */
#define REFRESH_CATCHUP_MS 200
/* When a refresh slot frees and due work was left, the next tick comes after this many
 * milliseconds (a few completions gather into one tick, which is one query and one write). */
#define REFRESH_SLOT_MS 5
/* A tick stops reading its batch after this many rows in a row whose upstream was busy: the
 * rest stays due (untouched) for the next tick. */
#define REFRESH_BUSY_STOP 64
/* Rows of certificates expired longer ago than this are deleted, at most REFRESH_PURGE_BATCH
 * per tick. */
#define REFRESH_RETENTION (30 * 86400)
#define REFRESH_PURGE_BATCH 256
/* A warm start spreads entries already due over this many check intervals (at most
 * REFRESH_WARM_SPREAD_MAX seconds), so a restart does not refetch everything in one burst. */
#define REFRESH_WARM_SPREAD_TICKS 5
#define REFRESH_WARM_SPREAD_MAX 300

struct refresher;

/* Whether the refresh keeps up with what the policy asks. */
struct refresh_pace {
	unsigned long long done_last_hour;  /* refreshes that ended well in the last 60 minutes */
	unsigned long long ok, failed;      /* scheduler refreshes ended, since the start */
	unsigned long long slot_ticks;      /* ticks brought forward by a freed slot */
	long long behind;   /* seconds the most overdue entry is past its refresh time, as the
	                     * last tick found it (0: nothing was overdue) */
};

/* Starts the timer. Returns NULL on failure. The parts are used, not owned. */
struct refresher *refresh_new(struct event_base *base, const struct stapler_config *cfg,
    struct cache *cache, struct store *store, struct staple_service *svc, struct fetcher *fetch);
void refresh_free(struct refresher **r);
/* Applies a reloaded configuration (check_interval takes effect at the next tick). */
void refresh_set_config(struct refresher *r, const struct stapler_config *cfg);
/* The refresh's pace at now, into *out. */
void refresh_pace(const struct refresher *r, time_t now, struct refresh_pace *out);
/* Warm start, from the loop after the listener opened: spreads at most limit entries due at
 * now (the start) over the first minutes. Returns 1 while more may be due, 0 when done (then
 * logged once), -1 when the cache refused the update. */
int refresh_warm_start(struct refresher *r, long long now, int limit);

#endif
