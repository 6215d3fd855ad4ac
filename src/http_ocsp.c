/* The OCSP responder interface (RFC 6960 over HTTP, RFC 5019 profile): POST /ocsp and
 * GET /ocsp/{base64 request}. A CertID of an issuer staplerd serves is answered from the
 * memory index, or on a miss through staple_ensure() (fetch, verify, cache) from the URLs
 * learned for that issuer or configured in [responders]; anything else gets an unsigned
 * status: malformedRequest, unauthorized, or tryLater when the upstream failed. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "http_routes.h"
#include "staple.h"
#include "stapler/certs.h"
#include "stapler/config.h"
#include "stapler/issuers.h"
#include "stapler/log.h"
#include "stapler/ocsp.h"
#include "stapler/store.h"

/* One client waiting for a forwarded miss. */
struct ocsp_waiter {
	struct http_api *api;
	struct evhttp_request *req;
	struct staple_wait *wait;
};

/* An unsigned OCSPResponse with only a status; never cached by HTTP caches. */
static void
send_status(struct evhttp_request *req, int status)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	unsigned char *der = NULL;
	struct evbuffer *out;
	size_t len;

	if (ocsp_response_status_build(status, &der, &len) < 0 || (out = evbuffer_new()) == NULL) {
		OPENSSL_free(der);
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	evbuffer_add(out, der, len);
	OPENSSL_free(der);
	evhttp_add_header(h, "Content-Type", "application/ocsp-response");
	evhttp_add_header(h, "Cache-Control", "max-age=0, no-cache");
	/* OCSP clients read the status from the body; HTTP says the exchange worked. */
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* The OCSP status for a staple outcome other than STAPLE_OK. */
static int
outcome_status(enum staple_outcome outcome)
{
	switch (outcome) {
	case STAPLE_BAD_INPUT:
		return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
	case STAPLE_UNTRUSTED:
	case STAPLE_NO_URL:
		return OCSP_RESPONSE_STATUS_UNAUTHORIZED;
	case STAPLE_OK:
	case STAPLE_UPSTREAM_FAILED:
	case STAPLE_UNAVAILABLE:
		break;
	}
	return OCSP_RESPONSE_STATUS_TRYLATER;
}

static void
on_client_close(struct evhttp_connection *evcon, void *arg)
{
	struct ocsp_waiter *w = arg;

	staple_wait_cancel(w->wait);
	http_api_wait_end(w->api);
	free(w);
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct ocsp_waiter *w = arg;

	if (w->wait != NULL) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
		http_api_wait_end(w->api);
	}
	if (outcome == STAPLE_OK)
		http_api_send_staple(w->req, s, time(NULL));
	else
		send_status(w->req, outcome_status(outcome));
	/* Called before staple_ensure() returned: the caller frees w. */
	if (w->wait != NULL)
		free(w);
}

/* Answers one DER OCSPRequest. */
static void
answer(struct http_api *api, struct evhttp_request *req, const unsigned char *der, size_t len)
{
	struct staple_service *svc = http_api_service(api);
	const struct certs_urls *urls;
	const struct staple *s;
	struct staple_target *t;
	struct ocsp_waiter *w;
	struct stapler_key key;
	enum ocsp_request_error e;
	enum issuers_miss miss;
	OCSP_CERTID *id = NULL;
	time_t now = time(NULL), not_after;
	char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];
	X509 *issuer;

	/* A nonce is ignored: a cached response cannot echo it (RFC 5019 §2.1.1). */
	if ((e = ocsp_request_decode(der, len, &id, NULL)) != OCSP_REQ_OK) {
		log_debug("ocsp_refused", "status=malformedRequest reason=%s", ocsp_request_error_name(e));
		send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		goto out;
	}
	issuer = issuers_resolve(staple_service_issuers(svc), staple_service_trust(svc), id, &urls,
	    &miss);
	if (issuer == NULL || certs_certid_key(id, &key) < 0) {
		log_debug("ocsp_refused", "status=unauthorized reason=%s",
		    issuer == NULL ? issuers_miss_name(miss) : "serial_too_long");
		send_status(req, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
		goto out;
	}
	if ((s = store_get(staple_service_store(svc), &key)) != NULL && staple_servable(s, now)) {
		http_api_send_staple(req, s, now);
		goto out;
	}
	if (urls->n == 0 && config_responder_find(http_api_config(api), key.key_hash) == NULL) {
		stapler_key_serial_hex(&key, serial);
		stapler_key_hash_hex(&key, hash);
		log_debug("ocsp_refused", "status=unauthorized reason=no_upstream serial=%s issuer=%s",
		    serial, hash);
		send_status(req, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
		goto out;
	}
	/* The certificate itself is unknown here: the issuer's validity bounds the target's. */
	if (certs_not_after(issuer, &not_after) < 0)
		not_after = now;
	if ((t = staple_target_from_certid(id, issuer, urls, "", not_after)) == NULL ||
	    (w = calloc(1, sizeof(*w))) == NULL) {
		staple_target_free(&t);
		send_status(req, OCSP_RESPONSE_STATUS_INTERNALERROR);
		goto out;
	}
	w->api = api;
	w->req = req;
	if ((w->wait = staple_ensure(svc, t, NULL, now, on_staple, w)) == NULL) {
		free(w);
		goto out;
	}
	http_api_wait_begin(api);
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_client_close, w);
out:
	OCSP_CERTID_free(id);
}

void
http_ocsp_handle(struct http_api *api, struct evhttp_request *req, const char *path)
{
	const struct stapler_config *cfg = http_api_config(api);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *in;
	unsigned char *der;
	size_t len;
	char msg[96];

	if (cmd == EVHTTP_REQ_POST) {
		in = evhttp_request_get_input_buffer(req);
		if ((len = evbuffer_get_length(in)) > cfg->max_request) {
			snprintf(msg, sizeof(msg), "request body larger than %zu bytes", cfg->max_request);
			http_api_send_error(req, 413, msg);
			return;
		}
		if (len == 0 || (der = evbuffer_pullup(in, -1)) == NULL) {
			send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
			return;
		}
		answer(api, req, der, len);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, POST");
		http_api_send_error(req, 405, "use GET /ocsp/{request} or POST /ocsp");
		return;
	}
	/* The path is still URL-encoded: ocsp_get_decode() undoes it, quirks included. */
	if (strncmp(path, "/ocsp/", 6) != 0 ||
	    (der = ocsp_get_decode(path + 6, cfg->max_request, &len)) == NULL) {
		send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		return;
	}
	answer(api, req, der, len);
	free(der);
}
