/* OCPP 2.0.1 / 2.1 certificate-status lookups for EV charging central systems. */
#ifndef STAPLER_HTTP_OCPP_H
#define STAPLER_HTTP_OCPP_H

struct http_kit;
struct http_req;

/* POST /v1/ocpp/certificate-status: GetCertificateStatusRequest JSON in,
 * GetCertificateStatusResponse JSON out, from the same cache as /ocsp. */
void http_ocpp_handle(struct http_kit *kit, struct http_req *req, void *state);

#endif
