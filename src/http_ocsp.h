/* The OCSP responder interface over HTTP (RFC 6960 appendix A, RFC 9919): POST /ocsp and
 * GET|HEAD /ocsp/{request}. */
#ifndef STAPLER_HTTP_OCSP_H
#define STAPLER_HTTP_OCSP_H

#include <openssl/ocsp.h>

#include "staple.h"

struct http_kit;
struct http_req;

/* POST /ocsp, GET|HEAD /ocsp/{request}: a standard OCSP responder answering from the cache. */
void http_ocsp_handle(struct http_kit *kit, struct http_req *req, void *state);

/* How the answer for a client's CertID is given: the OCSP interface sends the DER or an
 * unsigned OCSP status, the OCPP route JSON. outcome is STAPLE_OK with s, or why not: why is
 * staple_ocsp()'s stable token for its refusals, the service's error text otherwise, or NULL. */
typedef void (*http_certid_reply)(struct http_kit *kit, struct http_req *req,
    enum staple_outcome outcome, const struct staple *s, const char *why);
/* Answers the staple for a client's CertID (id is taken) through reply, from staple_ocsp()
 * on the client's behalf (its fetch rate, and trusted when it is one of [limits]
 * trusted_clients). A wait ends in cb (staple.h's callback, its argument the http_wait),
 * which calls http_kit_end() and reply. */
void http_ocsp_answer(struct http_kit *kit, struct http_req *req, OCSP_CERTID *id,
    http_certid_reply reply, staple_cb cb);

#endif
