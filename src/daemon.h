/* The daemon: the one event_base, start order, signals, reload and shutdown. */
#ifndef STAPLER_DAEMON_H
#define STAPLER_DAEMON_H

struct stapler_config;

/* Runs until SIGTERM/SIGINT. Takes ownership of cfg. Returns the process exit code. */
int daemon_run(struct stapler_config *cfg);

/* Applies [log] level; returns 0 or -1. */
int daemon_apply_log_level(const struct stapler_config *cfg);

#endif
