/* The admin socket: a Unix stream socket on the daemon's loop through which staplerctl asks
 * for actions (submit, refresh, evict), so that the daemon stays the only writer of the cache.
 * One request per line, one key=value reply line per request (docs/admin-protocol.md). */
#ifndef STAPLER_ADMIN_H
#define STAPLER_ADMIN_H

#include <stddef.h>

struct event_base;
struct stapler_config;
struct cache;
struct staple_service;

/* A request line longer than this closes the connection (a submitted chain is base64). */
#define ADMIN_LINE_MAX (256 * 1024)
/* Connections at once; more are refused with one error line. */
#define ADMIN_MAX_CONNS 16
/* Requests one connection may have in flight; reading pauses beyond it. */
#define ADMIN_MAX_INFLIGHT 64
/* `refresh due=1` fetches at most this many due entries at once. */
#define ADMIN_REFRESH_DUE_MAX 256
/* A connection that sends nothing for this long while no request of it is in flight is
 * closed, so idle clients cannot hold the ADMIN_MAX_CONNS slots (seconds). */
#define ADMIN_IDLE_TIMEOUT 20
/* Events one `events` request returns at most, and the longest `event` line. */
#define ADMIN_EVENTS_MAX 1000
#define ADMIN_EVENT_LINE_MAX 16384
/* The request id a client may attach, echoed in the reply. */
#define ADMIN_ID_MAX 32

struct admin;

/* Creates the socket at cfg->admin_socket (mode 0660; a stale socket is replaced, a live one
 * is an error) and serves it on base. An empty admin_socket disables it (a valid, idle
 * struct). Returns NULL with err set on failure. The other parts are used, not owned. */
struct admin *admin_new(struct event_base *base, const struct stapler_config *cfg,
    struct cache *cache, struct staple_service *svc, char *err, size_t errlen);
/* Stops accepting and removes the socket file; connections already open carry on. */
void admin_shutdown(struct admin *a);
struct fetcher;
struct refresher;
/* The parts the `pace` request reports on (used, not owned; either may be NULL). */
void admin_set_pace(struct admin *a, const struct fetcher *f, const struct refresher *r);
/* Closes every connection (their waits cancelled, no more callbacks), then as admin_shutdown. */
void admin_free(struct admin **a);
/* Applies a reloaded configuration (max_request; the socket path changes only at restart). */
void admin_set_config(struct admin *a, const struct stapler_config *cfg);
/* Requests waiting for an upstream answer. */
size_t admin_waiting(const struct admin *a);

#endif
