/* The daemon: the one event_base, start order, signals, reload and shutdown. */
#ifndef STAPLER_DAEMON_H
#define STAPLER_DAEMON_H

struct stapler_config;

/* Runs until SIGTERM/SIGINT. Takes ownership of cfg. Returns the process exit code. */
int daemon_run(struct stapler_config *cfg);

/* The warm start's pause (microseconds) after a slice of the background load that took
 * busy_us, so that the load takes at most max_cpu % of the loop ([cache] load_max_cpu): 0 at
 * 100, at most one second. Pure. */
long long daemon_load_pause_us(long long busy_us, long max_cpu);

/* Applies [log] level; returns 0 or -1. */
int daemon_apply_log_level(const struct stapler_config *cfg);

#endif
