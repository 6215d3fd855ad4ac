/* Routes that live in their own files (the OCSP responder interface, chain staples) and what
 * http_api.c lends them: its reply helpers and its count of waiting clients. */
#ifndef STAPLER_HTTP_ROUTES_H
#define STAPLER_HTTP_ROUTES_H

#include <time.h>

struct evhttp_request;
struct http_api;
struct staple;
struct staple_service;
struct stapler_config;

/* POST /ocsp, GET /ocsp/{request}: a standard OCSP responder answering from the cache. */
void http_ocsp_handle(struct http_api *api, struct evhttp_request *req, const char *path);
/* POST /v1/staples: one staple per certificate of the chain, as JSON. */
void http_staples_handle(struct http_api *api, struct evhttp_request *req);

/* The staple with RFC 5019 caching headers, or 304 when If-None-Match names it. */
void http_api_send_staple(struct evhttp_request *req, const struct staple *s, time_t now);
/* A JSON error {"error": msg} with status code. */
void http_api_send_error(struct evhttp_request *req, int code, const char *msg);
struct staple_service *http_api_service(struct http_api *api);
const struct stapler_config *http_api_config(const struct http_api *api);
/* Reads the request body, at most max_request bytes. Returns -1 after answering 413; else 0
 * with *len and *body (valid during the request; NULL when *len is 0 or memory ran out). */
int http_api_body(struct http_api *api, struct evhttp_request *req, unsigned char **body,
    size_t *len);

/* A client whose answer comes later, from a callback of the staple service: while it waits,
 * the drain on shutdown counts it, and a client that leaves cancels its wait handle. */
struct http_wait {
	struct http_api *api;
	struct evhttp_request *req;
	void *handle;                  /* the service's wait handle, once the wait started */
	void (*cancel)(void *handle);
};

/* A new wait for req, or NULL (out of memory; the caller answers). */
struct http_wait *http_wait_new(struct http_api *api, struct evhttp_request *req);
/* After the call that takes w as its callback argument: handle NULL means the callback ran
 * already (w is freed here); else the client waits, and cancel(handle) runs if it leaves. */
void http_wait_start(struct http_wait *w, void *handle, void (*cancel)(void *handle));
/* In the answer callback, before replying: the client waits no more. Returns 1 when the
 * callback frees w after replying, 0 when http_wait_start() will (an answer given at once). */
int http_wait_detach(struct http_wait *w);

#endif
