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
/* Counts clients waiting for an upstream answer (the drain on shutdown waits for them). */
void http_api_wait_begin(struct http_api *api);
void http_api_wait_end(struct http_api *api);

#endif
