/* Webhook delivery: the outbox's events POSTed to each [events] webhooks URL as CloudEvents 1.0
 * (structured mode), one at a time in outbox order, signed with HMAC-SHA256, retried with
 * backoff until a 2xx, each webhook's progress kept in SQLite (at least once, across
 * restarts). Transfers go through the fetcher's libcurl multi on the daemon's loop. */
#ifndef STAPLER_WEBHOOK_H
#define STAPLER_WEBHOOK_H

#include <stddef.h>

struct event_base;
struct stapler_config;
struct cache;
struct fetcher;
struct events;

/* First retry delay (seconds); it doubles up to [events] retry_max. */
#define WEBHOOK_RETRY_FIRST 1
/* Bytes of a receiver's answer read at most (it is not used). */
#define WEBHOOK_MAX_ANSWER 4096
/* The signature header. */
#define WEBHOOK_SIG_HEADER "X-Staplerd-Signature"

struct webhook;

/* Returns a new deliverer, or NULL. Reads each webhook's cursor (a webhook seen for the first
 * time starts after the newest event held) and the outbox's size for hub's bound. */
struct webhook *webhook_new(struct event_base *base, const struct stapler_config *cfg,
    struct cache *cache, struct fetcher *fetch, struct events *hub);
/* Cancels deliveries in flight (they are sent again at the next start) and frees. */
void webhook_free(struct webhook **w);
/* A reloaded configuration: secret, source, timeout, retry_max, outbox_max (the URLs change
 * at a restart only). */
void webhook_set_config(struct webhook *w, const struct stapler_config *cfg);
/* Events reached the outbox: deliver them (on the next loop turn). A persist callback. */
void webhook_kick(void *w);

struct webhook_stats {
	unsigned long long delivered, attempts_failed;
	long long pending;       /* events the slowest webhook has still to take */
};
void webhook_stats(const struct webhook *w, struct webhook_stats *out);

#endif
