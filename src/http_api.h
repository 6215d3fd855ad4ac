/* The HTTP API (docs/contract.md §5) on our HTTP/1.1 server (http_server.c): routes, RFC 5019
 * caching headers, JSON errors. */
#ifndef STAPLER_HTTP_API_H
#define STAPLER_HTTP_API_H

#include <stddef.h>

struct event_base;
struct stapler_config;
struct staple_service;
struct store;
struct fetcher;

/* Descriptors kept free of HTTP connections when their cap is sized from RLIMIT_NOFILE:
 * SQLite, the admin socket and its clients, the log, libevent; upstream fetches come on top
 * (two per [upstream] max_parallel: the socket and libcurl's resolver). */
#define HTTP_FD_RESERVE 64

struct http_api;

/* Binds cfg->listen and serves svc. Returns NULL with err set when it cannot listen. */
struct http_api *http_api_new(struct event_base *base, const struct stapler_config *cfg,
    struct staple_service *svc, struct fetcher *fetch, char *err, size_t errlen);
void http_api_free(struct http_api **api);
/* The port actually bound (listen may say port 0). */
unsigned short http_api_port(const struct http_api *api);
/* Stops accepting connections; requests still arriving get 503. */
void http_api_shutdown(struct http_api *api);
/* The connection cap that applies: [server] max_connections, or sized from the soft
 * RLIMIT_NOFILE when it is 0. */
size_t http_api_max_connections(const struct stapler_config *cfg);
/* Requests waiting for an upstream answer. */
size_t http_api_waiting(const struct http_api *api);
void http_api_set_config(struct http_api *api, const struct stapler_config *cfg);
struct refresher;
/* The refresh timer whose pace /healthz and /metrics report (used, not owned). */
void http_api_set_refresher(struct http_api *api, const struct refresher *r);

/* Answers given to clients since the start (every route and status): the fetcher's probe of
 * whether clients are being served (fetch_set_serving_probe()); arg is the http_api. */
unsigned long long http_api_answered(void *arg);

#endif
