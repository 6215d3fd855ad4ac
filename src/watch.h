/* The watch: raises the events of the daemon's own state (an upstream failing and recovered,
 * the refresh falling behind and catching up) from a timer, on the transitions /healthz
 * reports as degraded. */
#ifndef STAPLER_WATCH_H
#define STAPLER_WATCH_H

struct event_base;
struct stapler_config;
struct fetcher;
struct refresher;
struct events;

/* How often the state is looked at (seconds). */
#define WATCH_INTERVAL_S 5
/* Upstreams remembered as failing at most. */
#define WATCH_UPSTREAMS_MAX 64

struct watch;

/* Returns a new watch ticking on base, or NULL. The parts are used, not owned; cfg is read
 * at each tick ([health] upstream_failing and refresh_behind), watch_set_config() on reload. */
struct watch *watch_new(struct event_base *base, const struct stapler_config *cfg,
    const struct fetcher *fetch, const struct refresher *refresh, struct events *hub);
void watch_set_config(struct watch *w, const struct stapler_config *cfg);
/* The refresher is gone (a stop): its pace is no longer looked at. */
void watch_set_refresher(struct watch *w, const struct refresher *refresh);
void watch_free(struct watch **w);

#endif
