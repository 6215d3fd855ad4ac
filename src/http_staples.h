/* The submission routes: a client submits a certificate (or a chain) and gets its staple. */
#ifndef STAPLER_HTTP_STAPLES_H
#define STAPLER_HTTP_STAPLES_H

struct http_kit;
struct http_req;

/* POST /v1/staple: the DER staple of the body's subject certificate (PEM chain or DER). */
void http_staple_handle(struct http_kit *kit, struct http_req *req, void *state);
/* POST /v1/staples: one staple per certificate of the chain, as JSON. */
void http_staples_handle(struct http_kit *kit, struct http_req *req, void *state);

#endif
