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
#include "certs.h"
#include "config.h"
#include "issuers.h"
#include "log.h"
#include "ocsp.h"
#include "store.h"

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
cancel_staple(void *handle)
{
	staple_wait_cancel(handle);
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_wait *w = arg;
	int started = http_wait_detach(w);

	if (outcome == STAPLE_OK)
		http_api_send_staple(w->req, s, time(NULL));
	else
		send_status(w->req, outcome_status(outcome));
	if (started)
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
	struct http_wait *w;
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
	/* The key is the client's whole CertID: a SHA-256 request is answered from (or fetched
	 * into) a SHA-256 entry, since the response must echo the CertID asked for. */
	issuer = issuers_resolve(staple_service_issuers(svc), staple_service_trust(svc), now, id,
	    &key, &urls, &miss);
	if (issuer == NULL) {
		log_debug("ocsp_refused", "status=unauthorized reason=%s", issuers_miss_name(miss));
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
	    (w = http_wait_new(api, req)) == NULL) {
		staple_target_free(&t);
		send_status(req, OCSP_RESPONSE_STATUS_INTERNALERROR);
		goto out;
	}
	t->anonymous = 1;
	http_wait_start(w, staple_ensure(svc, t, NULL, now, on_staple, w), cancel_staple);
out:
	OCSP_CERTID_free(id);
}

void
http_ocsp_handle(struct http_api *api, struct evhttp_request *req, const char *path)
{
	const struct stapler_config *cfg = http_api_config(api);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	unsigned char *der;
	size_t len;

	if (cmd == EVHTTP_REQ_POST) {
		if (http_api_body(api, req, &der, &len) < 0)
			return;
		if (der == NULL) {
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
