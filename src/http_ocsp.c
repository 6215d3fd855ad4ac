/* The OCSP responder interface (RFC 6960 over HTTP, RFC 5019 profile): POST /ocsp and
 * GET /ocsp/{base64 request}. A CertID of an issuer staplerd serves is answered from the
 * memory index, or on a miss through staple_ensure() (fetch, verify, cache) from the URLs
 * learned for that issuer or configured in [responders]; anything else gets an unsigned
 * status: malformedRequest, unauthorized, or tryLater when the upstream failed. A request
 * answered once is remembered by its bytes, so that its repeats skip the OpenSSL decoding. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "http_routes.h"
#include "http_server.h"
#include "staple.h"
#include "certs.h"
#include "config.h"
#include "issuers.h"
#include "log.h"
#include "ocsp.h"
#include "store.h"
#include "table.h"

/* Bounds on the map of answered requests: entries (then it starts over) and bytes of one
 * request (a longer one is answered, not remembered). */
#define OCSP_MAP_MAX 65536
#define OCSP_MAP_BYTES 1024

struct map_entry {
	struct stapler_key key;
	unsigned char kind;        /* 'G' a GET path, 'P' a POST body */
	size_t len;
	unsigned char bytes[];
};

struct map_probe {
	unsigned char kind;
	size_t len;
	const unsigned char *bytes;
};

struct http_ocsp_map {
	struct table t;
	uint64_t seed;
};

static uint64_t
map_hash(const void *k, uint64_t seed)
{
	const struct map_probe *p = k;

	return table_fnv(TABLE_FNV_BASIS ^ seed ^ p->kind, p->bytes, p->len);
}

static int
map_match(const void *entry, const void *k)
{
	const struct map_entry *e = entry;
	const struct map_probe *p = k;

	return e->kind == p->kind && e->len == p->len && memcmp(e->bytes, p->bytes, p->len) == 0;
}

/* The table asks for an entry's key to rehash it and uses it at once: one static probe
 * is enough (the daemon is single-threaded). */
static const void *
map_key_of(const void *entry)
{
	static struct map_probe scratch;
	const struct map_entry *e = entry;

	scratch.kind = e->kind;
	scratch.len = e->len;
	scratch.bytes = e->bytes;
	return &scratch;
}

struct http_ocsp_map *
http_ocsp_map_new(void)
{
	struct http_ocsp_map *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->t.hash = map_hash;
	m->t.match = map_match;
	m->t.key_of = map_key_of;
	if (RAND_bytes((unsigned char *)&m->seed, sizeof(m->seed)) != 1)
		m->seed = (uint64_t)time(NULL);
	return m;
}

void
http_ocsp_map_clear(struct http_ocsp_map *m)
{
	table_clear(&m->t, 1);
}

void
http_ocsp_map_free(struct http_ocsp_map **mp)
{
	if (mp == NULL || *mp == NULL)
		return;
	http_ocsp_map_clear(*mp);
	free(*mp);
	*mp = NULL;
}

static void
map_put(struct http_ocsp_map *m, const struct map_probe *p, const struct stapler_key *key)
{
	struct map_entry *e, *old = NULL;
	void *replaced;

	if (p->len == 0 || p->len > OCSP_MAP_BYTES)
		return;
	/* Full: start over rather than track ages; every entry can be rebuilt by one decode. */
	if (m->t.count >= OCSP_MAP_MAX)
		http_ocsp_map_clear(m);
	if ((e = malloc(sizeof(*e) + p->len)) == NULL)
		return;
	e->key = *key;
	e->kind = p->kind;
	e->len = p->len;
	memcpy(e->bytes, p->bytes, p->len);
	if (table_put(&m->t, e, m->seed, &replaced) < 0) {
		free(e);
		return;
	}
	old = replaced;
	free(old);
}

/* The staple a remembered request names, while it is servable and its issuer still trusted;
 * else NULL (the request is then decoded as if new). */
static const struct staple *
map_hit(struct http_api *api, const struct map_probe *p, time_t now)
{
	struct staple_service *svc = http_api_service(api);
	const struct map_entry *e;
	const struct staple *s;
	int trusted = 0;

	if (p->len == 0 || p->len > OCSP_MAP_BYTES ||
	    (e = table_get(&http_api_ocsp_map(api)->t, p, http_api_ocsp_map(api)->seed)) == NULL)
		return NULL;
	if ((s = store_get(staple_service_store(svc), &e->key)) == NULL || !staple_servable(s, now))
		return NULL;
	if (issuers_get(staple_service_issuers(svc), &e->key, staple_service_trust(svc), now,
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

static void
reply_staple(struct http_api *api, struct http_req *req, enum staple_outcome outcome,
    const struct staple *s)
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

	reply_staple(api, req, outcome, s);
}

/* Answers one decoded OCSPRequest (id is taken); probe names its bytes for the map. */
static void
answer(struct http_api *api, struct http_req *req, OCSP_CERTID *id, const struct map_probe *probe)
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
		send_status(req, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
		goto out;
	}
	if ((s = store_get(staple_service_store(svc), &key)) != NULL && staple_servable(s, now)) {
		store_used(s, now);
		map_put(http_api_ocsp_map(api), probe, &key);
		http_api_send_staple(req, s);
		goto out;
	}
	/* Answered already for another anonymous client: a hit, not counted against a rate. */
	if (s == NULL && (s = staple_service_anonymous(svc, &key, now)) != NULL) {
		http_api_send_staple(req, s);
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
	/* An edge staplerd of the operator's (trusted_clients) asks for certificates it verified
	 * itself: its misses are stored and refreshed here like submissions, and not rate
	 * limited, so N edges cost the upstream one fetch per certificate. */
	trusted = config_client_trusted(http_api_config(api), http_req_client(req));
	t->anonymous = !trusted;
	http_api_admit_begin(api, req);
	waiting = http_wait_start(w, staple_ensure(svc, t, NULL, now, &ans, on_staple, w),
	    cancel_staple);
	http_api_admit_end(api);
	if (!waiting)
		reply_staple(api, req, ans.outcome, ans.staple);
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
	struct map_probe probe;
	const struct staple *s;
	const unsigned char *der;
	OCSP_CERTID *id;
	char b64[HTTP_PARSE_MAX_LINE + 1];
	size_t len;

	if (m == HTTP_POST) {
		if (http_api_body(api, req, &der, &len) < 0)
			return;
		probe = (struct map_probe){ 'P', len, der };
		if ((s = map_hit(api, &probe, time(NULL))) != NULL) {
			http_api_send_staple(req, s);
			return;
		}
		if (der == NULL || (id = decode(der, len)) == NULL) {
			send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
			return;
		}
		answer(api, req, id, &probe);
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
	probe = (struct map_probe){ 'G', plen - 6, (const unsigned char *)path + 6 };
	if ((s = map_hit(api, &probe, time(NULL))) != NULL) {
		http_api_send_staple(req, s);
		return;
	}
	memcpy(b64, path + 6, plen - 6);
	b64[plen - 6] = '\0';
	/* A trailing '/' after the base64 is allowed (RFC 6960 §4.1.2 clients add one); base64
	 * itself may end in '/', so the path is tried as it came first. */
	if ((id = decode_get(b64, cfg->max_request)) == NULL && plen > 7 && b64[plen - 7] == '/') {
		b64[plen - 7] = '\0';
		id = decode_get(b64, cfg->max_request);
	}
	if (id == NULL) {
		send_status(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		return;
	}
	answer(api, req, id, &probe);
}
