/* The OCSP responder interface (RFC 6960 over HTTP, RFC 5019 profile): POST /ocsp and
 * GET /ocsp/{base64 request}. A CertID of an issuer staplerd serves is answered from the
 * memory index, or on a miss through staple_ensure() (fetch, verify, cache) from the URLs
 * learned for that issuer or configured in [responders]; anything else gets an unsigned
 * status: malformedRequest, unauthorized, or tryLater when the upstream failed. A hit is
 * found without OpenSSL and without allocating: the request is read by ocsp_request_read()
 * when it has RFC 9919's lightweight shape, and decoded by OpenSSL only when it does not or
 * when it misses. */
#include <stdlib.h>
#include <string.h>

#include "http_routes.h"
#include "http_server.h"
#include "staple.h"
#include "certs.h"
#include "config.h"
#include "issuers.h"
#include "log.h"
#include "ocsp.h"
#include "store.h"

/* The staple a request of the lightweight shape names, while it is servable and its issuer
 * is a learned issuer trusted now; else NULL (the request is then decoded by OpenSSL, which
 * also judges what this reader does not take). */
static const struct staple *
fast_hit(struct http_api *api, const unsigned char *der, size_t len, time_t now)
{
	struct staple_service *svc = http_api_service(api);
	struct ocsp_certid_view v;
	struct stapler_key key;
	const struct staple *s;
	int trusted = 0;

	memset(&key, 0, sizeof(key));
	if (ocsp_request_read(der, len, &v) < 0 ||
	    issuers_key(staple_service_issuers(svc), v.alg, v.name_hash, v.key_hash, &key) < 0)
		return NULL;
	key.serial_len = (unsigned char)v.serial_len;
	memcpy(key.serial, v.serial, v.serial_len);
	if ((s = staple_service_get(svc, &key)) == NULL || !staple_servable(s, now))
		return NULL;
	if (issuers_get(staple_service_issuers(svc), &key, staple_service_trust(svc), now,
	    &trusted) == NULL || !trusted)
		return NULL;
	store_used(s, now);
	return s;
}

/* An unsigned OCSPResponse with only a status; never cached by HTTP caches. */
static void
send_status(struct http_req *req, int status)
{
	unsigned char *der = NULL;
	size_t len;

	if (ocsp_response_status_build(status, &der, &len) < 0) {
		OPENSSL_free(der);
		http_api_send_error(req, 503, "out of memory");
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
send_limited(struct http_api *api, struct http_req *req)
{
	unsigned char *der = NULL;
	char secs[24];
	size_t len;

	if (ocsp_response_status_build(OCSP_RESPONSE_STATUS_TRYLATER, &der, &len) < 0) {
		OPENSSL_free(der);
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	secs[http_u64((unsigned long long)http_api_retry_after(api), secs)] = '\0';
	http_reply_begin(req, 429);
	http_reply_header(req, "Cache-Control", 13, "no-store", 8);
	http_reply_header(req, "Retry-After", 11, secs, strlen(secs));
	http_reply_end(req, "application/ocsp-response", der, len);
	OPENSSL_free(der);
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
	case STAPLE_LIMITED:
		break;
	}
	return OCSP_RESPONSE_STATUS_TRYLATER;
}

static void
cancel_staple(void *handle)
{
	staple_wait_cancel(handle);
}

/* The OCSP interface's answers: the DER, 429 with tryLater, or an unsigned status. */
static void
reply_staple(struct http_api *api, struct http_req *req, enum staple_outcome outcome,
    const struct staple *s, const char *why)
{
	if (outcome == STAPLE_OK)
		http_api_send_staple(req, s);
	else if (outcome == STAPLE_LIMITED)
		send_limited(api, req);
	else
		send_status(req, outcome_status(outcome));
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_api *api;
	struct http_req *req = http_wait_end(arg, &api);

	reply_staple(api, req, outcome, s, error);
}

void
http_ocsp_answer(struct http_api *api, struct http_req *req, OCSP_CERTID *id,
    http_certid_reply reply, staple_cb cb)
{
	struct staple_service *svc = http_api_service(api);
	const struct certs_urls *urls;
	const struct staple *s;
	struct staple_target *t;
	struct staple_answer ans;
	struct http_wait *w;
	struct stapler_key key;
	int trusted, waiting;
	enum issuers_miss miss;
	time_t now = time(NULL), not_after;
	char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];
	X509 *issuer;

	/* The key is the client's whole CertID: a SHA-256 request is answered from (or fetched
	 * into) a SHA-256 entry, since the response must echo the CertID asked for. */
	issuer = issuers_resolve(staple_service_issuers(svc), staple_service_trust(svc), now, id,
	    &key, &urls, &miss);
	if (issuer == NULL) {
		log_debug("ocsp_refused", "status=unauthorized reason=%s", issuers_miss_name(miss));
		reply(api, req, STAPLE_UNTRUSTED, NULL, miss == ISSUERS_HASH_ALG ? "hash_algorithm" :
		    miss == ISSUERS_BAD_SERIAL ? "serial_too_long" : "unknown_issuer");
		goto out;
	}
	if ((s = staple_service_get(svc, &key)) != NULL && staple_servable(s, now)) {
		store_used(s, now);
		reply(api, req, STAPLE_OK, s, NULL);
		goto out;
	}
	/* Answered already for another anonymous client: a hit, not counted against a rate. */
	if (s == NULL && (s = staple_service_anonymous(svc, &key, now)) != NULL) {
		reply(api, req, STAPLE_OK, s, NULL);
		goto out;
	}
	if (urls->n == 0 && config_responder_find(http_api_config(api), key.key_hash) == NULL) {
		stapler_key_serial_hex(&key, serial);
		stapler_key_hash_hex(&key, hash);
		log_debug("ocsp_refused", "status=unauthorized reason=no_upstream serial=%s issuer=%s",
		    serial, hash);
		reply(api, req, STAPLE_NO_URL, NULL, "no_upstream");
		goto out;
	}
	/* The certificate itself is unknown here: the issuer's validity bounds the target's. */
	if (certs_not_after(issuer, &not_after) < 0)
		not_after = now;
	if ((t = staple_target_from_certid(id, issuer, urls, "", not_after)) == NULL ||
	    (w = http_wait_new(api, req)) == NULL) {
		staple_target_free(&t);
		reply(api, req, STAPLE_UNAVAILABLE, NULL, "out_of_memory");
		goto out;
	}
	/* An edge staplerd of the operator's (trusted_clients) asks for certificates it verified
	 * itself: its misses are stored and refreshed here like submissions, and not rate
	 * limited, so N edges cost the upstream one fetch per certificate. */
	trusted = config_client_trusted(http_api_config(api), http_req_client(req));
	t->anonymous = !trusted;
	http_api_admit_begin(api, req);
	waiting = http_wait_start(w, staple_ensure(svc, t, NULL, now, &ans, cb, w),
	    cancel_staple);
	http_api_admit_end(api);
	if (!waiting)
		reply(api, req, ans.outcome, ans.staple, ans.error);
out:
	OCSP_CERTID_free(id);
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
http_ocsp_handle(struct http_api *api, struct http_req *req, const char *path, size_t plen)
{
	const struct stapler_config *cfg = http_api_config(api);
	enum http_method m = http_req_method(req);
	const struct staple *s;
	const unsigned char *der;
	unsigned char fast[OCSP_GET_DECODE_INTO_MAX];
	OCSP_CERTID *id;
	char b64[HTTP_PARSE_MAX_LINE + 1];
	size_t len, blen;
	time_t now = time(NULL);

	if (m == HTTP_POST) {
		if (http_api_body(api, req, &der, &len) < 0)
			return;
		if (der != NULL && (s = fast_hit(api, der, len, now)) != NULL) {
			http_api_send_staple(req, s);
			return;
		}
		if (der == NULL || (id = decode(der, len)) == NULL) {
			send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
			return;
		}
		http_ocsp_answer(api, req, id, reply_staple, on_staple);
		return;
	}
	if (m != HTTP_GET && m != HTTP_HEAD) {
		http_api_send_405(req, "GET, HEAD, POST", "use GET /ocsp/{request} or POST /ocsp");
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
		    (s = fast_hit(api, fast, len, now)) != NULL) {
			http_api_send_staple(req, s);
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
	http_ocsp_answer(api, req, id, reply_staple, on_staple);
}
