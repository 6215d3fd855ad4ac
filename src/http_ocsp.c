/* The OCSP responder interface (RFC 6960 over HTTP, RFC 9919 profile): POST /ocsp and
 * GET /ocsp/{base64 request}. This file decodes and replies; what is answered is the staple
 * service's (staple_ocsp.c): a hit of RFC 9919's lightweight shape through staple_ocsp_hit()
 * (no OpenSSL, no allocation), anything else decoded by OpenSSL and asked of staple_ocsp().
 * Refusals are unsigned statuses: malformedRequest, unauthorized, or tryLater when the
 * upstream failed. */
#include <stdlib.h>
#include <string.h>

#include "http_kit.h"
#include "http_ocsp.h"
#include "http_server.h"
#include "staple.h"
#include "config.h"
#include "log.h"
#include "ocsp.h"

/* An unsigned OCSPResponse with only a status; never cached by HTTP caches. */
static void
send_status(struct http_req *req, int status)
{
	unsigned char *der = NULL;
	size_t len;

	if (ocsp_response_status_build(status, &der, &len) < 0) {
		OPENSSL_free(der);
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	/* OCSP clients read the status from the body; HTTP says the exchange worked. */
	http_reply(req, 200, "Cache-Control: max-age=0, no-cache\r\n", "application/ocsp-response",
	    der, len);
	OPENSSL_free(der);
}

/* A client over its fetch rate: HTTP 429 with Retry-After, and tryLater in the body. An OCSP
 * client fails on either (it reads no staple), but 429 also tells HTTP-aware clients and
 * proxies when to come back, which tryLater alone cannot (docs/design.md "Limits"). */
static void
send_limited(struct http_kit *kit, struct http_req *req)
{
	unsigned char *der = NULL;
	char secs[24];
	size_t len;

	if (ocsp_response_status_build(OCSP_RESPONSE_STATUS_TRYLATER, &der, &len) < 0) {
		OPENSSL_free(der);
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	secs[http_u64((unsigned long long)http_kit_retry_after(kit), secs)] = '\0';
	http_reply_begin(req, 429);
	http_reply_header(req, "Cache-Control", 13, "no-store", 8);
	http_reply_header(req, "Retry-After", 11, secs, strlen(secs));
	http_reply_end(req, "application/ocsp-response", der, len);
	OPENSSL_free(der);
}

/* The OCSP interface's answers: the DER, 429 with tryLater, or an unsigned status. */
static void
reply_staple(struct http_kit *kit, struct http_req *req, enum staple_outcome outcome,
    const struct staple *s, const char *why)
{
	if (outcome == STAPLE_OK)
		http_kit_send_staple(req, s);
	else if (outcome == STAPLE_LIMITED)
		send_limited(kit, req);
	else
		send_status(req, staple_outcome_ocsp(outcome));
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_kit *kit;
	struct http_req *req = http_kit_end(arg, &kit);

	reply_staple(kit, req, outcome, s, error);
}

void
http_ocsp_answer(struct http_kit *kit, struct http_req *req, OCSP_CERTID *id,
    http_certid_reply reply, staple_cb cb)
{
	struct staple_answer ans;
	struct http_wait *w;
	int trusted;

	if ((w = http_kit_begin(kit, req)) == NULL) {
		OCSP_CERTID_free(id);
		reply(kit, req, STAPLE_UNAVAILABLE, NULL, "out_of_memory");
		return;
	}
	trusted = config_client_trusted(http_kit_config(kit), http_req_client(req));
	if (!http_kit_wait(w, staple_ocsp(http_kit_service(kit), id, trusted, time(NULL), &ans, cb,
	    w), http_kit_cancel_staple))
		reply(kit, req, ans.outcome, ans.staple, ans.error);
}

/* Decodes a DER OCSPRequest; a nonce is ignored: a cached response cannot echo it (RFC 5019
 * §2.1.1). Returns the CertID or NULL. */
static OCSP_CERTID *
decode(const unsigned char *der, size_t len)
{
	OCSP_CERTID *id = NULL;
	enum ocsp_request_error e;

	if ((e = ocsp_request_decode(der, len, &id, NULL)) != OCSP_REQ_OK) {
		log_debug("ocsp_refused", "status=malformedRequest reason=%s", ocsp_request_error_name(e));
		return NULL;
	}
	return id;
}

/* The CertID of a GET path's base64 (still URL-encoded: ocsp_get_decode() undoes it, quirks
 * included), or NULL. */
static OCSP_CERTID *
decode_get(const char *b64, size_t max)
{
	unsigned char *der;
	OCSP_CERTID *id;
	size_t len;

	if ((der = ocsp_get_decode(b64, max, &len)) == NULL)
		return NULL;
	id = decode(der, len);
	free(der);
	return id;
}

void
http_ocsp_handle(struct http_kit *kit, struct http_req *req, void *state)
{
	struct staple_service *svc = http_kit_service(kit);
	const struct stapler_config *cfg = http_kit_config(kit);
	size_t plen;
	const char *path = http_req_path(req, &plen);
	enum http_method m = http_req_method(req);
	const struct staple *s;
	const unsigned char *der;
	unsigned char fast[OCSP_GET_DECODE_INTO_MAX];
	OCSP_CERTID *id;
	char b64[HTTP_PARSE_MAX_LINE + 1];
	size_t len, blen;
	time_t now = time(NULL);

	(void)state;
	http_req_set_route(req, m == HTTP_POST ? HTTP_ROUTE_OCSP_POST : HTTP_ROUTE_OCSP_GET);
	if (m == HTTP_POST) {
		if (http_kit_body(kit, req, &der, &len) < 0)
			return;
		if (der != NULL && (s = staple_ocsp_hit(svc, der, len, now)) != NULL) {
			http_kit_send_staple(req, s);
			return;
		}
		if (der == NULL || (id = decode(der, len)) == NULL) {
			send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
			return;
		}
		http_ocsp_answer(kit, req, id, reply_staple, on_staple);
		return;
	}
	if (plen < 6 || memcmp(path, "/ocsp/", 6) != 0 || plen - 6 >= sizeof(b64)) {
		send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		return;
	}
	blen = plen - 6;
	memcpy(b64, path + 6, blen);
	b64[blen] = '\0';
	/* A trailing '/' after the base64 is allowed (RFC 6960 §4.1.2 clients add one); base64
	 * itself may end in '/', so the path is tried as it came first. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (blen < 2 || b64[blen - 1] != '/')
				break;
			b64[--blen] = '\0';
		}
		if (ocsp_get_decode_into(b64, fast, sizeof(fast), &len) == 0 &&
		    (s = staple_ocsp_hit(svc, fast, len, now)) != NULL) {
			http_kit_send_staple(req, s);
			return;
		}
	}
	/* The full path: OpenSSL decodes what the reader did not take, or a miss. */
	blen = plen - 6;
	memcpy(b64, path + 6, blen);
	b64[blen] = '\0';
	if ((id = decode_get(b64, cfg->max_request)) == NULL && blen > 1 && b64[blen - 1] == '/') {
		b64[blen - 1] = '\0';
		id = decode_get(b64, cfg->max_request);
	}
	if (id == NULL) {
		send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		return;
	}
	http_ocsp_answer(kit, req, id, reply_staple, on_staple);
}
