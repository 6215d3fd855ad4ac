/* The staple service: turns a submitted certificate into a verified staple, from memory when
 * it can, else through one coalesced upstream fetch per certificate, verified and cached. */
#ifndef STAPLER_STAPLE_H
#define STAPLER_STAPLE_H

#include <stddef.h>
#include <time.h>

#include "stapler/store.h"

struct cache;
struct certs_trust;
struct fetcher;
struct stapler_config;

enum staple_outcome {
	STAPLE_OK = 0,
	STAPLE_BAD_INPUT,       /* 400: not a certificate */
	STAPLE_UNTRUSTED,       /* 403: does not chain to the trust anchors, or URL not allowed */
	STAPLE_NO_URL,          /* 422: no usable OCSP URL */
	STAPLE_UPSTREAM_FAILED, /* 502: every upstream failed and nothing valid is cached */
	STAPLE_UNAVAILABLE,     /* 503: shutting down or overloaded */
};

/* Called once with the outcome. On STAPLE_OK, s is the staple (valid during the call only);
 * otherwise error says why. */
typedef void (*staple_cb)(enum staple_outcome outcome, const struct staple *s, const char *error,
    void *arg);

struct staple_service;
struct staple_wait;

/* The service uses (does not own) every part passed in. */
struct staple_service *staple_service_new(const struct stapler_config *cfg,
    const struct certs_trust *trust, struct cache *cache, struct store *store, struct fetcher *fetch);
void staple_service_free(struct staple_service **svc);
/* Swaps configuration and trust anchors (SIGHUP); forgets which bodies were checked. */
void staple_service_reload(struct staple_service *svc, const struct stapler_config *cfg,
    const struct certs_trust *trust);

/* Loads every cached row into the memory index (warm start). Returns the count, or -1. */
long staple_service_load(struct staple_service *svc);

/* Resolves a request body (PEM chain or DER certificate). Calls cb at once when the answer is
 * known now (memory hit or bad input) and returns NULL; otherwise returns a wait handle and
 * calls cb when the fetch ends. staple_wait_cancel() drops the callback (client gone). */
struct staple_wait *staple_submit(struct staple_service *svc, const unsigned char *body, size_t len,
    time_t now, staple_cb cb, void *arg);
void staple_wait_cancel(struct staple_wait *w);

/* Certificates with a fetch in flight. */
size_t staple_service_pending(const struct staple_service *svc);

/* The HTTP status for an outcome. */
int staple_outcome_http(enum staple_outcome outcome);

#endif
