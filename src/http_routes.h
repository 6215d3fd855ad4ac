/* Routes that live in their own files (the OCSP responder interface, chain staples) and what
 * http_api.c lends them: its reply helpers and its count of waiting clients. */
#ifndef STAPLER_HTTP_ROUTES_H
#define STAPLER_HTTP_ROUTES_H

#include <stddef.h>
#include <time.h>

#include <openssl/ocsp.h>

#include "staple.h"

struct http_req;
struct http_api;
struct http_health;
struct http_server;
struct fetcher;
struct staple;
struct staple_service;
struct stapler_config;

/* POST /ocsp, GET|HEAD /ocsp/{request}: a standard OCSP responder answering from the cache. */
void http_ocsp_handle(struct http_api *api, struct http_req *req, const char *path, size_t len);
/* POST /v1/ocpp/certificate-status: OCPP 2.0.1 GetCertificateStatus as JSON. */
void http_ocpp_handle(struct http_api *api, struct http_req *req);

/* How the answer for a client's CertID is given: the OCSP interface sends the DER or an
 * unsigned OCSP status, the OCPP route JSON. outcome is STAPLE_OK with s, or why not: why is
 * a stable token ("unknown_issuer", "hash_algorithm", "serial_too_long", "no_upstream") for
 * the refusals decided here, the service's error text otherwise, or NULL. */
typedef void (*http_certid_reply)(struct http_api *api, struct http_req *req,
    enum staple_outcome outcome, const struct staple *s, const char *why);
/* Answers the staple for a client's CertID (id is taken) through reply: from memory when it is
 * there and servable (or held for another anonymous client), else fetched from the upstream
 * known for its issuer, counted against the client's [limits] unless the client is trusted
 * (then stored like a submission; otherwise held apart). A wait ends in cb (staple.h's
 * callback, its argument the http_wait), which calls http_wait_end() and reply. */
void http_ocsp_answer(struct http_api *api, struct http_req *req, OCSP_CERTID *id,
    http_certid_reply reply, staple_cb cb);

/* POST /v1/staples: one staple per certificate of the chain, as JSON. */
void http_staples_handle(struct http_api *api, struct http_req *req);

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

/* GET|HEAD /healthz: ok, or degraded with reasons (staples near expiry that could not be
 * refreshed, an upstream failing longer than [health] upstream_failing, a database that refuses
 * writes), as JSON; 200, [health] degraded_code when degraded, 503 when shutting down. */
void http_health_handle(struct http_api *api, struct http_req *req);
/* GET|HEAD /metrics: Prometheus text format. */
void http_metrics_handle(struct http_api *api, struct http_req *req);
struct http_health *http_health_new(void);
void http_health_free(struct http_health **h);

struct http_health *http_api_health(struct http_api *api);
struct fetcher *http_api_fetcher(struct http_api *api);
/* The refresh timer, or NULL (http_api_set_refresher()). */
const struct refresher *http_api_refresher(const struct http_api *api);
const struct http_server *http_api_server(const struct http_api *api);
int http_api_shutting_down(const struct http_api *api);

/* The staple with RFC 5019 caching headers, or 304 when If-None-Match names it. */
void http_api_send_staple(struct http_req *req, const struct staple *s);
/* A JSON error {"error": msg} with status code; allow, when not NULL, becomes the Allow field. */
void http_api_send_error(struct http_req *req, int code, const char *msg);
void http_api_send_405(struct http_req *req, const char *allow, const char *msg);
/* The answer for an outcome other than STAPLE_OK: a JSON error, with Retry-After on 429. */
void http_api_send_outcome(struct http_api *api, struct http_req *req, int outcome,
    const char *error);
/* Seconds a client refused by its fetch rate should wait (the last refusal's). */
long http_api_retry_after(const struct http_api *api);
/* Around a call into the staple service on behalf of req: new upstream fetches it would
 * start count against its address's token bucket ([limits] fetches_per_client), unless the
 * address is one of [limits] trusted_clients (the operator's own hosts). */
void http_api_admit_begin(struct http_api *api, struct http_req *req);
void http_api_admit_end(struct http_api *api);
struct staple_service *http_api_service(struct http_api *api);
const struct stapler_config *http_api_config(const struct http_api *api);
/* The request body, at most max_request bytes. Returns -1 after answering 413; else 0
 * with *len and *body (valid until the answer; NULL when *len is 0). */
int http_api_body(struct http_api *api, struct http_req *req, const unsigned char **body,
    size_t *len);

/* A client whose answer comes later, from a callback of the staple service: while it waits,
 * the drain on shutdown counts it, and a client that leaves cancels its wait handle. */
struct http_wait {
	struct http_api *api;
	struct http_req *req;
	void *handle;                  /* the service's wait handle, once the wait started */
	void (*cancel)(void *handle);
};

/* A new wait for req, or NULL (out of memory; the caller answers). */
struct http_wait *http_wait_new(struct http_api *api, struct http_req *req);
/* After the service call that took w as its callback argument (staple.h's contract): with a
 * wait handle the client waits, cancel(handle) runs if it leaves, and 1 is returned; with
 * NULL (the answer came back as a value, and the callback never runs) w is freed and 0 is
 * returned: the caller replies. */
int http_wait_start(struct http_wait *w, void *handle, void (*cancel)(void *handle));
/* In the answer callback, before replying: the client waits no more, and w is freed. Returns
 * its request, with its api in *api. */
struct http_req *http_wait_end(struct http_wait *w, struct http_api **api);

#endif
