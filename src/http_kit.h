/* The route kit: what every HTTP route uses and nothing route-specific. The context routes
 * share (the staple service, the configuration, the per-client fetch limit, the count of
 * waiting clients), the reply helpers (staples with RFC 9919 caching headers, JSON errors),
 * and a service call on a client's behalf in two calls: http_kit_begin() and
 * http_kit_wait(). The route table and the route files sit above it (http_api.c); it knows
 * none of them. */
#ifndef STAPLER_HTTP_KIT_H
#define STAPLER_HTTP_KIT_H

#include <stddef.h>

#include "staple.h"

struct event_base;
struct http_kit;
struct http_req;
struct http_server;
struct fetcher;
struct ratelimit;
struct refresher;
struct stapler_config;
struct store;

/* The route numbers of http_req_set_route(), for the answer counts of /metrics. */
enum http_route {
	HTTP_ROUTE_NONE = 0,
	HTTP_ROUTE_STAPLE,
	HTTP_ROUTE_STAPLES,
	HTTP_ROUTE_OCSP_POST,
	HTTP_ROUTE_OCSP_GET,
	HTTP_ROUTE_HEALTHZ,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_OTHER,
	HTTP_ROUTE_OCPP,
};

/* A route's handler: answers req (now, or later from a service callback). state is what the
 * route's own file created for it (struct http_route_state), or NULL. */
typedef void (*http_route_fn)(struct http_kit *kit, struct http_req *req, void *state);
/* A route file's state: created when the API starts, freed when it stops, by the route file's
 * own functions (several routes of one file may share one). */
struct http_route_state {
	void *(*state_new)(struct event_base *base);   /* NULL when out of memory */
	void (*state_free)(void *state);
};

/* The service parts are used, not owned. Returns NULL when out of memory. */
struct http_kit *http_kit_new(const struct stapler_config *cfg, struct staple_service *svc,
    struct fetcher *fetch);
void http_kit_free(struct http_kit **kit);
void http_kit_set_config(struct http_kit *kit, const struct stapler_config *cfg);
/* The server whose counts /metrics reports, and the refresh timer whose pace /healthz and
 * /metrics report (NULL: none, in component tests); used, not owned. */
void http_kit_set_server(struct http_kit *kit, const struct http_server *srv);
void http_kit_set_refresher(struct http_kit *kit, const struct refresher *r);
/* From now on the API is stopping. */
void http_kit_set_shutting_down(struct http_kit *kit);

struct staple_service *http_kit_service(struct http_kit *kit);
const struct stapler_config *http_kit_config(const struct http_kit *kit);
struct fetcher *http_kit_fetcher(struct http_kit *kit);
const struct refresher *http_kit_refresher(const struct http_kit *kit);
const struct http_server *http_kit_server(const struct http_kit *kit);
int http_kit_shutting_down(const struct http_kit *kit);
/* Clients waiting for an answer from a service callback. */
size_t http_kit_waiting(const struct http_kit *kit);

/* The staple with RFC 9919 caching headers, or 304 when If-None-Match names it. */
void http_kit_send_staple(struct http_req *req, const struct staple *s);
/* A JSON error {"error": msg} with status code. */
void http_kit_send_error(struct http_req *req, int code, const char *msg);
/* 405 with allow as the Allow field. */
void http_kit_send_405(struct http_req *req, const char *allow, const char *msg);
/* The answer for an outcome other than STAPLE_OK: a JSON error with the outcome table's status
 * (staple_outcome_http()), and Retry-After on 429. */
void http_kit_send_outcome(struct http_kit *kit, struct http_req *req, enum staple_outcome outcome,
    const char *error);
/* Seconds a client refused by its fetch rate should wait (the last refusal's). */
long http_kit_retry_after(const struct http_kit *kit);
/* The request body, at most max_request bytes. Returns -1 after answering 413; else 0 with
 * *len and *body (valid until the answer; NULL when *len is 0). */
int http_kit_body(struct http_kit *kit, struct http_req *req, const unsigned char **body,
    size_t *len);

/* A client whose answer may come later, from a callback of the staple service. */
struct http_wait;
/* Begins a service call on behalf of req: new upstream fetches the call would start count
 * against its address's token bucket ([limits] fetches_per_client) unless the address is one
 * of [limits] trusted_clients, and a wait is ready for the answer. Pass the result as the
 * callback argument of the service call, and the call's handle to http_kit_wait(). Returns
 * NULL when out of memory: nothing began, the caller answers (503 its own way). */
struct http_wait *http_kit_begin(struct http_kit *kit, struct http_req *req);
/* Ends what http_kit_begin() began, with the service call's handle (staple.h's contract): with
 * a handle the client waits (the drain on shutdown counts it; a client that leaves runs
 * cancel(handle)) and 1 is returned; with NULL the answer came back as a value, w is freed and
 * 0 is returned: the caller replies now. */
int http_kit_wait(struct http_wait *w, void *handle, void (*cancel)(void *handle));
/* The cancel of http_kit_wait() for a staple_wait handle (staple_wait_cancel()). */
void http_kit_cancel_staple(void *handle);
/* In the service's callback, before replying: the client waits no more, and w is freed.
 * Returns its request, with the kit in *kit. */
struct http_req *http_kit_end(struct http_wait *w, struct http_kit **kit);

#endif
