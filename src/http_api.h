/* The HTTP API (PRODUCT.md §5) on evhttp: routes, RFC 5019 caching headers, JSON errors. */
#ifndef STAPLER_HTTP_API_H
#define STAPLER_HTTP_API_H

#include <stddef.h>

struct event_base;
struct stapler_config;
struct staple_service;
struct store;
struct fetcher;

/* Bodies beyond this multiple of max_request are cut off by evhttp itself, before buffering. */
#define HTTP_BODY_HARD_FACTOR 4
#define HTTP_TIMEOUT_SECONDS 30

struct http_api;

/* Binds cfg->listen and serves svc. Returns NULL with err set when it cannot listen. */
struct http_api *http_api_new(struct event_base *base, const struct stapler_config *cfg,
    struct staple_service *svc, struct store *store, struct fetcher *fetch, char *err, size_t errlen);
void http_api_free(struct http_api **api);
/* The port actually bound (listen may say port 0). */
unsigned short http_api_port(const struct http_api *api);
/* Stops accepting connections; requests still arriving get 503. */
void http_api_shutdown(struct http_api *api);
/* Requests waiting for an upstream answer. */
size_t http_api_waiting(const struct http_api *api);
void http_api_set_config(struct http_api *api, const struct stapler_config *cfg);

#endif
