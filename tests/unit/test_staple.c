/* Component tests of the service layer's callback contract (staple.h), on the test's own event
 * base with the real staple service, SQLite cache, fetcher and chain staples, against an OCSP
 * upstream of the test (evhttp on 127.0.0.1): an answer known during a call (memory hit,
 * refusal, a fetch that cannot start) comes back as a value and its callback never runs; only
 * real waiting returns a handle, and its callback runs later, from the loop, exactly once.
 * And a refresh that learns nothing costs almost nothing: the very bytes held, or a 304 to
 * the upstream's own validators, leave the staple served with no signature check and no row
 * rewrite (until the trust anchors are reloaded), and the upstream's max-age postpones the
 * next refresh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ocsp.h>

#include "cache.h"
#include "certs.h"
#include "chain.h"
#include "config.h"
#include "daemon.h"
#include "fetch.h"
#include "staple.h"
#include "store.h"
#include "testpki.h"
#include "util.h"

struct world {
	struct event_base *base;
	struct evhttp *http;
	unsigned short port;
	char url[64];
	time_t now;
	struct testpki_ent root, ca, leaf, inter, chained, stranger_root, stranger;
	char *dir;
	struct stapler_config *cfg;   /* the service's */
	struct stapler_config *fcfg;  /* the fetcher's (a test may make it refuse every URL) */
	struct certs_trust *trust;
	struct cache *cache;
	struct store *store;
	struct fetcher *fetch;
	struct staple_service *svc;
	int upstream_requests;
	int in_call;                  /* set while a service call runs */
	/* Upstream behaviour: answer the bytes it sent last again (replay), with these headers,
	 * and 304 to an If-None-Match equal to etag. */
	int replay;
	unsigned char *last;
	size_t last_len;
	const char *etag;
	const char *cache_control;
	char if_none_match[64];       /* the last If-None-Match received */
};

/* What a callback saw. */
struct seen {
	struct world *w;
	int calls;
	int inside;                   /* a call came while the service call was still running */
	enum staple_outcome outcome;
	int status;
	int n;
};

/* The issuers the upstream signs for, matched by the CertID's issuer hashes. */
static const struct testpki_ent *
signer_for(struct world *w, const OCSP_CERTID *id)
{
	const struct testpki_ent *issuers[] = { &w->root, &w->ca, &w->inter };
	const struct testpki_ent *subjects[] = { &w->ca, &w->leaf, &w->chained };

	for (size_t i = 0; i < sizeof(issuers) / sizeof(issuers[0]); i++) {
		OCSP_CERTID *mine = OCSP_cert_to_id(EVP_sha1(), subjects[i]->cert, issuers[i]->cert);
		int same = mine != NULL && OCSP_id_issuer_cmp(mine, id) == 0;

		OCSP_CERTID_free(mine);
		if (same)
			return issuers[i];
	}
	return NULL;
}

/* Answers every OCSP request (GET or POST) with good, signed by the CertID's issuer. */
static void
on_upstream(struct evhttp_request *req, void *arg)
{
	struct world *w = arg;
	struct evbuffer *out = evbuffer_new(), *in = evhttp_request_get_input_buffer(req);
	unsigned char *der = NULL, *resp = NULL;
	const unsigned char *p;
	size_t der_len = 0, resp_len = 0;
	OCSP_REQUEST *oreq = NULL;
	const struct testpki_ent *signer;
	OCSP_CERTID *id;

	w->upstream_requests++;
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		der_len = evbuffer_get_length(in);
		der = malloc(der_len);
		evbuffer_remove(in, der, der_len);
	} else {
		size_t n;
		char *b64 = evhttp_uridecode(evhttp_request_get_uri(req) + 1, 0, &n);

		der = util_unbase64(b64, n, &der_len);
		free(b64);
	}
	p = der;
	if (der == NULL || (oreq = d2i_OCSP_REQUEST(NULL, &p, (long)der_len)) == NULL ||
	    OCSP_request_onereq_count(oreq) != 1)
		goto bad;
	id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(oreq, 0));
	if ((signer = signer_for(w, id)) == NULL)
		goto bad;
	{
		const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "If-None-Match");

		snprintf(w->if_none_match, sizeof(w->if_none_match), "%s", inm != NULL ? inm : "");
		if (w->etag != NULL)
			evhttp_add_header(evhttp_request_get_output_headers(req), "ETag", w->etag);
		if (w->etag != NULL && inm != NULL && strcmp(inm, w->etag) == 0) {
			evhttp_send_reply(req, 304, "Not Modified", NULL);
			goto out;
		}
	}
	if (w->cache_control != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
		    w->cache_control);
	if (w->replay && w->last != NULL) {
		evbuffer_add(out, w->last, w->last_len);
	} else {
		struct testpki_resp_opts o = testpki_resp_good(NULL, signer, w->now);

		o.id = id;
		resp = testpki_ocsp_response(&o, &resp_len);
		evbuffer_add(out, resp, resp_len);
		free(w->last);
		w->last = malloc(resp_len);
		memcpy(w->last, resp, resp_len);
		w->last_len = resp_len;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/ocsp-response");
	evhttp_send_reply(req, 200, "OK", out);
	goto out;
bad:
	evhttp_send_reply(req, 400, "Bad Request", out);
out:
	OPENSSL_free(resp);
	OCSP_REQUEST_free(oreq);
	free(der);
	evbuffer_free(out);
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	const char *urls[1];
	char err[256], *path;
	unsigned char *pem, serial[] = { 0x42 };
	size_t len;

	assert_non_null(w);
	w->now = time(NULL);
	w->base = event_base_new();
	w->http = evhttp_new(w->base);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(w->http, on_upstream, w);
	assert_non_null(bs = evhttp_bind_socket_with_handle(w->http, "127.0.0.1", 0));
	assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &slen),
	    0);
	w->port = ntohs(sin.sin_port);
	snprintf(w->url, sizeof(w->url), "http://127.0.0.1:%u/", w->port);
	urls[0] = w->url;

	w->root = testpki_root("Contract Root", w->now);
	w->ca = testpki_ca("Contract CA", &w->root, w->now);
	w->leaf = testpki_leaf("meter-1", &w->ca, 1, w->url, w->now);
	/* A chain whose intermediate has its own OCSP URL: two staples per chain. */
	w->inter = testpki_cert(&(struct testpki_cert_opts){ .cn = "Contract Inter",
	    .issuer = &w->root, .ca = 1, .base = w->now, .not_before = -86400,
	    .not_after = 365 * 86400, .ocsp_urls = urls, .n_ocsp_urls = 1, .serial = serial,
	    .serial_len = sizeof(serial) });
	w->chained = testpki_leaf("meter-2", &w->inter, 2, w->url, w->now);
	w->stranger_root = testpki_root("Stranger Root", w->now);
	w->stranger = testpki_leaf("stranger", &w->stranger_root, 3, w->url, w->now);

	w->dir = testpki_tmpdir();
	pem = testpki_pem(&w->root.cert, 1, &len);
	path = testpki_write_file(w->dir, "trust.pem", pem, len);
	free(pem);
	w->trust = certs_trust_load(path, err, sizeof(err));
	assert_non_null(w->trust);
	free(path);
	path = testpki_write_file(w->dir, "cache.db", "", 0);
	assert_int_equal(unlink(path), 0);
	w->cache = cache_open(path, 0, err, sizeof(err));
	assert_non_null(w->cache);
	free(path);

	w->cfg = config_default();
	w->fcfg = config_default();
	w->cfg->upstream_timeout = w->fcfg->upstream_timeout = 10;
	w->store = store_new();
	w->fetch = fetch_new(w->base, w->fcfg);
	w->svc = staple_service_new(w->cfg, w->trust, w->cache, w->store, w->fetch);
	assert_non_null(w->store);
	assert_non_null(w->fetch);
	assert_non_null(w->svc);
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	staple_service_free(&w->svc);
	fetch_free(&w->fetch);
	store_free(&w->store);
	cache_close(&w->cache);
	certs_trust_free(&w->trust);
	config_free(&w->cfg);
	config_free(&w->fcfg);
	evhttp_free(w->http);
	event_base_free(w->base);
	testpki_ent_free(&w->root);
	testpki_ent_free(&w->ca);
	testpki_ent_free(&w->leaf);
	testpki_ent_free(&w->inter);
	testpki_ent_free(&w->chained);
	testpki_ent_free(&w->stranger_root);
	testpki_ent_free(&w->stranger);
	testpki_tmpdir_remove(w->dir);
	free(w->dir);
	free(w->last);
	free(w);
	return 0;
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct seen *c = arg;

	if (c->w->in_call)
		c->inside = 1;
	c->calls++;
	c->outcome = outcome;
	if (outcome == STAPLE_OK)
		c->status = s->status;
}

static void
on_chain(enum staple_outcome outcome, const struct chain_staple *st, int n, const char *error,
    void *arg)
{
	struct seen *c = arg;

	if (c->w->in_call)
		c->inside = 1;
	c->calls++;
	c->outcome = outcome;
	c->n = n;
	for (int i = 0; i < n; i++)
		assert_true(st[i].der != NULL && st[i].der_len > 0);
}

/* Runs the loop for ticks rounds of 10 ms. */
static void
run_for(struct world *w, int ticks)
{
	struct timeval tick = { 0, 10 * 1000 };

	for (int i = 0; i < ticks; i++) {
		event_base_loopexit(w->base, &tick);
		event_base_dispatch(w->base);
	}
}

/* Runs the loop until *calls is at least want, or a few seconds passed; then a little longer,
 * so that a second (wrong) call would be seen. */
static void
run_until(struct world *w, const int *calls, int want)
{
	for (int i = 0; i < 500 && *calls < want; i++)
		run_for(w, 1);
	run_for(w, 5);
}

/* Gives a callback that should never come the time to come wrongly: the upstream here answers
 * in a few milliseconds. */
static void
run_idle(struct world *w)
{
	run_for(w, 30);
}

/* The leaf (and its CA), as a client submits them. */
static unsigned char *
body_of(const struct testpki_ent *leaf, const struct testpki_ent *ca, size_t *len)
{
	X509 *certs[] = { leaf->cert, ca->cert };

	return testpki_pem(certs, 2, len);
}

/* Before a service call: its answer is filled with junk (a value must set every field read)
 * and callbacks during the call are caught. */
static void
call_begin(struct world *w, struct seen *c, void *ans, size_t ans_size)
{
	c->w = w;
	memset(ans, 0xa5, ans_size);
	w->in_call = 1;
}

static struct staple_wait *
submit(struct world *w, const unsigned char *body, size_t len, struct staple_answer *ans,
    struct seen *c)
{
	struct staple_wait *sw;

	call_begin(w, c, ans, sizeof(*ans));
	sw = staple_submit(w->svc, body, len, w->now, ans, on_staple, c);
	w->in_call = 0;
	return sw;
}

/* A miss waits: a handle, no call during staple_submit(), one call from the loop. A second
 * client joins the same fetch. The next submission is a hit, returned as a value. */
static void
test_miss_waits_hit_is_a_value(void **state)
{
	struct world *w = *state;
	struct seen first = { 0 }, second = { 0 }, third = { 0 };
	struct staple_answer ans;
	size_t len;
	unsigned char *body = body_of(&w->leaf, &w->ca, &len);

	assert_non_null(submit(w, body, len, &ans, &first));
	assert_non_null(submit(w, body, len, &ans, &second));
	assert_int_equal(first.calls + second.calls, 0);
	assert_int_equal(staple_service_pending(w->svc), 1);

	run_until(w, &second.calls, 1);
	assert_int_equal(first.calls, 1);
	assert_int_equal(second.calls, 1);
	assert_false(first.inside || second.inside);
	assert_int_equal(first.outcome, STAPLE_OK);
	assert_int_equal(first.status, STAPLER_GOOD);
	assert_int_equal(w->upstream_requests, 1);

	assert_null(submit(w, body, len, &ans, &third));
	assert_int_equal(ans.outcome, STAPLE_OK);
	assert_non_null(ans.staple);
	assert_int_equal(ans.staple->status, STAPLER_GOOD);
	assert_true(ans.staple->der_len > 0);
	assert_string_equal(ans.error, "");
	/* Another body naming the same certificate (the chain up to its root): a hit by key,
	 * also a value. */
	free(body);
	body = testpki_pem((X509 *[]){ w->leaf.cert, w->ca.cert, w->root.cert }, 3, &len);
	assert_null(submit(w, body, len, &ans, &third));
	assert_int_equal(ans.outcome, STAPLE_OK);
	assert_int_equal(ans.staple->status, STAPLER_GOOD);
	run_idle(w);
	assert_int_equal(third.calls, 0);
	assert_int_equal(w->upstream_requests, 1);
	free(body);
}

/* Every refusal is a value: junk, an untrusted chain, a client over its rate, a stop. */
static int
deny(void *ctx)
{
	(*(int *)ctx)++;
	return -1;
}

static void
test_refusals_are_values(void **state)
{
	struct world *w = *state;
	struct seen c = { 0 };
	struct staple_answer ans;
	size_t len;
	unsigned char *body;
	int asked = 0;

	assert_null(submit(w, (const unsigned char *)"junk", 4, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_BAD_INPUT);
	assert_null(ans.staple);
	assert_true(ans.error[0] != '\0');

	body = body_of(&w->stranger, &w->stranger_root, &len);
	assert_null(submit(w, body, len, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_UNTRUSTED);
	assert_non_null(strstr(ans.error, "not trusted"));
	free(body);

	body = body_of(&w->leaf, &w->ca, &len);
	staple_service_admit(w->svc, deny, &asked);
	assert_null(submit(w, body, len, &ans, &c));
	staple_service_admit(w->svc, NULL, NULL);
	assert_int_equal(asked, 1);
	assert_int_equal(ans.outcome, STAPLE_LIMITED);

	staple_service_drain(w->svc);
	assert_null(submit(w, body, len, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_UNAVAILABLE);
	assert_non_null(strstr(ans.error, "shutting down"));
	free(body);

	run_idle(w);
	assert_int_equal(c.calls, 0);
	assert_int_equal(w->upstream_requests, 0);
	assert_int_equal(staple_service_pending(w->svc), 0);
}

/* A fetch no URL of which can start (here: the fetcher refuses the host) is answered as a
 * value, leaves nothing in flight, and a cached entry still gets its failure recorded. */
static void
test_fetch_that_cannot_start_is_a_value(void **state)
{
	struct world *w = *state;
	struct seen c = { 0 };
	struct staple_answer ans;
	struct stapler_key key;
	struct cache_row row;
	size_t len;
	unsigned char *body = body_of(&w->leaf, &w->ca, &len);

	/* Cache the staple first, while the fetcher still may reach the upstream. */
	assert_non_null(submit(w, body, len, &ans, &c));
	run_until(w, &c.calls, 1);
	assert_int_equal(c.outcome, STAPLE_OK);
	assert_null(submit(w, body, len, &ans, &c));
	key = ans.staple->key;

	w->fcfg->allow[0] = strdup("elsewhere.example");
	w->fcfg->n_allow = 1;
	assert_int_equal(cache_get(w->cache, &key, &row), 1);
	assert_int_equal(row.failures, 0);
	c.calls = 0;
	w->in_call = 1;
	assert_null(staple_refresh_row(w->svc, &row, w->now, &ans, on_staple, &c));
	w->in_call = 0;
	cache_row_clear(&row);
	assert_int_equal(ans.outcome, STAPLE_UPSTREAM_FAILED);
	assert_non_null(strstr(ans.error, "allow"));
	assert_int_equal(staple_service_pending(w->svc), 0);
	assert_int_equal(cache_get(w->cache, &key, &row), 1);
	assert_int_equal(row.failures, 1);
	cache_row_clear(&row);

	/* A new certificate the same way: a value, nothing pending, nothing stored. */
	free(body);
	body = body_of(&w->chained, &w->inter, &len);
	assert_null(submit(w, body, len, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_UPSTREAM_FAILED);
	assert_int_equal(staple_service_pending(w->svc), 0);
	run_idle(w);
	assert_int_equal(c.calls, 0);
	assert_int_equal(w->upstream_requests, 1);
	free(body);
}

/* A refresh of a servable entry waits (a handle) and is answered from the loop. */
static void
test_refresh_waits(void **state)
{
	struct world *w = *state;
	struct seen c = { 0 }, r = { 0 };
	struct staple_answer ans;
	struct cache_row row;
	size_t len;
	unsigned char *body = body_of(&w->leaf, &w->ca, &len);

	assert_non_null(submit(w, body, len, &ans, &c));
	run_until(w, &c.calls, 1);
	assert_null(submit(w, body, len, &ans, &c));
	assert_int_equal(cache_get(w->cache, &ans.staple->key, &row), 1);
	r.w = w;
	w->in_call = 1;
	assert_non_null(staple_refresh_row(w->svc, &row, w->now, &ans, on_staple, &r));
	w->in_call = 0;
	cache_row_clear(&row);
	assert_int_equal(r.calls, 0);
	run_until(w, &r.calls, 1);
	assert_int_equal(r.calls, 1);
	assert_false(r.inside);
	assert_int_equal(r.outcome, STAPLE_OK);
	assert_int_equal(w->upstream_requests, 2);
	free(body);
}

/* A cancelled wait is never called, and its fetch is dropped. */
static void
test_cancel_never_calls_back(void **state)
{
	struct world *w = *state;
	struct seen c = { 0 };
	struct staple_answer ans;
	struct staple_wait *sw;
	size_t len;
	unsigned char *body = body_of(&w->leaf, &w->ca, &len);

	assert_non_null(sw = submit(w, body, len, &ans, &c));
	staple_wait_cancel(sw);
	assert_int_equal(staple_service_pending(w->svc), 0);
	run_idle(w);
	assert_int_equal(c.calls, 0);
	free(body);
}

static struct chain_wait *
chain(struct world *w, const unsigned char *body, size_t len, struct chain_answer *ans,
    struct seen *c)
{
	struct chain_wait *cw;

	call_begin(w, c, ans, sizeof(*ans));
	cw = chain_submit(w->svc, body, len, w->now, ans, on_chain, c);
	w->in_call = 0;
	return cw;
}

/* Chain staples keep the contract: a chain with a staple to fetch waits (here the leaf is a
 * hit already and the intermediate a miss), a chain of hits and a refused chain are values. */
static void
test_chain_contract(void **state)
{
	struct world *w = *state;
	struct seen c = { 0 }, one = { 0 };
	struct staple_answer sans;
	struct chain_answer ans;
	size_t len;
	unsigned char *body = body_of(&w->chained, &w->inter, &len);

	/* The leaf's staple first, alone. */
	assert_non_null(submit(w, body, len, &sans, &one));
	run_until(w, &one.calls, 1);
	assert_int_equal(one.outcome, STAPLE_OK);

	assert_non_null(chain(w, body, len, &ans, &c));
	assert_int_equal(c.calls, 0);
	run_until(w, &c.calls, 1);
	assert_int_equal(c.calls, 1);
	assert_false(c.inside);
	assert_int_equal(c.outcome, STAPLE_OK);
	assert_int_equal(c.n, 2);
	assert_int_equal(w->upstream_requests, 2);

	c.calls = 0;
	assert_null(chain(w, body, len, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_OK);
	assert_int_equal(ans.n, 2);
	for (int i = 0; i < ans.n; i++) {
		assert_non_null(ans.staples[i].der);
		assert_int_equal(ans.staples[i].status, STAPLER_GOOD);
	}
	assert_string_equal(ans.staples[0].serial, "02");
	assert_string_equal(ans.staples[1].serial, "42");

	assert_null(chain(w, (const unsigned char *)"junk", 4, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_BAD_INPUT);
	assert_int_equal(ans.n, 0);
	run_idle(w);
	assert_int_equal(c.calls, 0);
	assert_int_equal(w->upstream_requests, 2);
	free(body);
}

/* The service's clock is in whole seconds: a staple verified in the second its trust
 * anchors were loaded counts as verified before them. */
static void
next_second(void)
{
	time_t t0 = time(NULL);

	while (time(NULL) == t0)
		usleep(20 * 1000);
}

/* Submits w->leaf and waits for its staple; returns its row (cache_row_clear()). */
static void
fetch_leaf(struct world *w, struct cache_row *row)
{
	struct seen c = { 0 };
	struct staple_answer ans;
	size_t len;
	unsigned char *body = body_of(&w->leaf, &w->ca, &len);

	assert_non_null(submit(w, body, len, &ans, &c));
	run_until(w, &c.calls, 1);
	assert_int_equal(c.outcome, STAPLE_OK);
	assert_null(submit(w, body, len, &ans, &c));
	assert_int_equal(cache_get(w->cache, &ans.staple->key, row), 1);
	free(body);
}

/* Refreshes the entry of row and waits for the answer. */
static void
refresh(struct world *w, const struct cache_row *row)
{
	struct seen r = { 0 };
	struct staple_answer ans;

	r.w = w;
	assert_non_null(staple_refresh_row(w->svc, row, time(NULL), &ans, on_staple, &r));
	run_until(w, &r.calls, 1);
	assert_int_equal(r.outcome, STAPLE_OK);
}

/* Reloads the trust anchors (in a second of its own), refreshes row, reads the counters. */
static void
refresh_after_reload(struct world *w, const struct cache_row *row, struct staple_stats *st)
{
	next_second();
	staple_service_reload(w->svc, w->cfg, w->trust);
	next_second();
	refresh(w, row);
	staple_service_stats(w->svc, st);
}

static void
test_identical_body_costs_no_check_no_row(void **state)
{
	struct world *w = *state;
	struct cache_row row, after;
	struct staple_stats st;
	struct stapler_key key;

	next_second();
	fetch_leaf(w, &row);
	assert_int_equal(cache_row_key(&row, &key), 0);
	staple_service_stats(w->svc, &st);
	assert_int_equal(st.verified, 1);
	assert_int_equal(st.rows_written, 1);
	/* The upstream answers the very bytes again. */
	w->replay = 1;
	refresh(w, &row);
	staple_service_stats(w->svc, &st);
	assert_int_equal(w->upstream_requests, 2);
	assert_int_equal(st.unchanged, 1);
	assert_int_equal(st.verified, 1);
	assert_int_equal(st.rows_written, 1);
	/* The row is the one written at the fetch (only its schedule moved), and the staple
	 * is still served from memory. */
	assert_int_equal(cache_get(w->cache, &key, &after), 1);
	assert_int_equal(after.fetched_at, row.fetched_at);
	assert_memory_equal(after.response_der, row.response_der, row.response_len);
	assert_true(after.next_refresh_at > (long long)time(NULL));
	assert_non_null(store_get(w->store, &key));
	cache_row_clear(&after);
	/* After a reload of the trust anchors the same bytes are verified in full. */
	refresh_after_reload(w, &row, &st);
	assert_int_equal(st.unchanged, 1);
	assert_int_equal(st.verified, 2);
	assert_int_equal(st.rows_written, 2);
	cache_row_clear(&row);
}

static void
test_not_modified_costs_no_check_no_row(void **state)
{
	struct world *w = *state;
	struct cache_row row;
	struct staple_stats st;

	w->etag = "\"v1\"";
	next_second();
	fetch_leaf(w, &row);
	assert_string_equal(row.upstream_etag, "\"v1\"");
	assert_string_equal(w->if_none_match, "");
	refresh(w, &row);
	assert_string_equal(w->if_none_match, "\"v1\"");
	staple_service_stats(w->svc, &st);
	assert_int_equal(st.not_modified, 1);
	assert_int_equal(st.verified, 1);
	assert_int_equal(st.rows_written, 1);
	/* After a reload, a 304 has the held bytes verified in full. */
	refresh_after_reload(w, &row, &st);
	assert_int_equal(st.not_modified, 1);
	assert_int_equal(st.verified, 2);
	cache_row_clear(&row);
}

static void
test_upstream_max_age_postpones_refresh(void **state)
{
	struct world *w = *state;
	struct cache_row row, after;
	struct stapler_key key;
	time_t t0;

	/* A 7-day answer is inside the 7-day window: min_interval (1 h) paces it... */
	fetch_leaf(w, &row);
	assert_true(row.next_refresh_at < row.fetched_at + 2 * 3600);
	/* ...unless the upstream says it stays current for 4 hours (new bytes or the same). */
	w->cache_control = "max-age=14400, public, no-transform, must-revalidate";
	t0 = time(NULL);
	refresh(w, &row);
	assert_int_equal(cache_row_key(&row, &key), 0);
	assert_int_equal(cache_get(w->cache, &key, &after), 1);
	assert_true(after.next_refresh_at >= (long long)t0 + 14400);
	assert_true(store_get(w->store, &key)->refresh_at >= t0 + 14400);
	cache_row_clear(&after);
	/* [refresh] upstream_max_age = 0: the upstream's word is not taken. */
	w->cfg->refresh_upstream_max_age = 0;
	t0 = time(NULL);
	refresh(w, &row);
	assert_int_equal(cache_get(w->cache, &key, &after), 1);
	assert_true(after.next_refresh_at < (long long)t0 + 2 * 3600);
	cache_row_clear(&after);
	cache_row_clear(&row);
}

/* A CertID for serial under the issuer ca, as an OCSP client sends it. */
static OCSP_CERTID *
certid_under(const struct testpki_ent *ca, long serial)
{
	ASN1_INTEGER *sn = ASN1_INTEGER_new();
	OCSP_CERTID *id;

	assert_non_null(sn);
	assert_int_equal(ASN1_INTEGER_set(sn, serial), 1);
	id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(ca->cert),
	    X509_get0_pubkey_bitstr(ca->cert), sn);
	ASN1_INTEGER_free(sn);
	assert_non_null(id);
	return id;
}

/* What staple_ocsp()'s callback saw, with the key of the staple it got. */
struct seen_key {
	struct seen c;
	struct stapler_key key;
};

static void
on_staple_key(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct seen_key *k = arg;

	on_staple(outcome, s, error, &k->c);
	if (outcome == STAPLE_OK)
		k->key = s->key;
}

static struct staple_wait *
ocsp_ask(struct world *w, long serial, int trusted, struct staple_answer *ans,
    struct seen_key *k)
{
	struct staple_wait *sw;

	call_begin(w, &k->c, ans, sizeof(*ans));
	sw = staple_ocsp(w->svc, certid_under(&w->ca, serial), trusted, w->now, ans, on_staple_key, k);
	w->in_call = 0;
	return sw;
}

/* The OCSP responder's rule, without HTTP: a miss from anyone but the operator's own hosts is
 * answered, held apart and never stored (nobody proved that the certificate exists), and a
 * second anonymous client gets the held answer without a fetch; a trusted client's miss is
 * stored like a submission; an issuer staplerd does not know is refused with its token and no
 * upstream contact. */
static void
test_ocsp_anonymous_rule(void **state)
{
	struct world *w = *state;
	struct seen_key anon = { 0 }, again = { 0 }, edge = { 0 };
	struct staple_answer ans;
	struct cache_row row;
	size_t len;
	unsigned char *body = body_of(&w->leaf, &w->ca, &len);
	struct seen first = { 0 };
	OCSP_CERTID *stranger;

	/* A submission teaches the issuer and its URL. */
	assert_non_null(submit(w, body, len, &ans, &first));
	run_until(w, &first.calls, 1);
	assert_int_equal(first.outcome, STAPLE_OK);
	free(body);
	assert_int_equal(w->upstream_requests, 1);

	assert_non_null(ocsp_ask(w, 0x7001, 0, &ans, &anon));
	run_until(w, &anon.c.calls, 1);
	assert_false(anon.c.inside);
	assert_int_equal(anon.c.outcome, STAPLE_OK);
	assert_int_equal(anon.c.status, STAPLER_GOOD);
	assert_int_equal(w->upstream_requests, 2);
	assert_null(store_get(w->store, &anon.key));
	assert_int_equal(cache_get(w->cache, &anon.key, &row), 0);
	cache_row_clear(&row);
	assert_non_null(staple_service_anonymous(w->svc, &anon.key, w->now));
	/* Another anonymous client: the held answer, a value, no fetch. */
	assert_null(ocsp_ask(w, 0x7001, 0, &ans, &again));
	assert_int_equal(ans.outcome, STAPLE_OK);
	assert_true(stapler_key_equal(&ans.staple->key, &anon.key));
	run_idle(w);
	assert_int_equal(again.c.calls, 0);
	assert_int_equal(w->upstream_requests, 2);
	assert_int_equal(cache_get(w->cache, &anon.key, &row), 0);
	cache_row_clear(&row);

	/* The operator's edge (trusted): stored and served from memory like a submission. */
	assert_non_null(ocsp_ask(w, 0x7002, 1, &ans, &edge));
	run_until(w, &edge.c.calls, 1);
	assert_int_equal(edge.c.outcome, STAPLE_OK);
	assert_non_null(store_get(w->store, &edge.key));
	assert_int_equal(cache_get(w->cache, &edge.key, &row), 1);
	cache_row_clear(&row);
	assert_null(staple_service_anonymous(w->svc, &edge.key, w->now));

	/* An issuer nobody submitted: unauthorized's token, nothing fetched. */
	call_begin(w, &again.c, &ans, sizeof(ans));
	stranger = certid_under(&w->stranger_root, 0x7003);
	assert_null(staple_ocsp(w->svc, stranger, 0, w->now, &ans, on_staple_key, &again));
	w->in_call = 0;
	assert_int_equal(ans.outcome, STAPLE_UNTRUSTED);
	assert_string_equal(ans.error, "unknown_issuer");
	run_idle(w);
	assert_int_equal(w->upstream_requests, 3);
}

/* Every outcome has a name, an HTTP status, an OCSP status and (but OK) an OCPP reason, from
 * one table: the admin socket once had no name for STAPLE_LIMITED. */
static void
test_outcome_table(void **state)
{
	static const struct {
		enum staple_outcome o;
		const char *name;
		int http, ocsp;
	} want[] = {
		{ STAPLE_OK, "ok", 200, OCSP_RESPONSE_STATUS_SUCCESSFUL },
		{ STAPLE_BAD_INPUT, "bad_input", 400, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST },
		{ STAPLE_UNTRUSTED, "untrusted", 403, OCSP_RESPONSE_STATUS_UNAUTHORIZED },
		{ STAPLE_NO_URL, "no_url", 422, OCSP_RESPONSE_STATUS_UNAUTHORIZED },
		{ STAPLE_UPSTREAM_FAILED, "upstream_failed", 502, OCSP_RESPONSE_STATUS_TRYLATER },
		{ STAPLE_UNAVAILABLE, "unavailable", 503, OCSP_RESPONSE_STATUS_TRYLATER },
		{ STAPLE_LIMITED, "limited", 429, OCSP_RESPONSE_STATUS_TRYLATER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_string_equal(staple_outcome_name(want[i].o), want[i].name);
		assert_int_equal(staple_outcome_http(want[i].o), want[i].http);
		assert_int_equal(staple_outcome_ocsp(want[i].o), want[i].ocsp);
		if (want[i].o == STAPLE_OK)
			assert_null(staple_outcome_ocpp(want[i].o));
		else
			assert_non_null(staple_outcome_ocpp(want[i].o));
	}
	/* A value outside the enum (a corrupt admin record) still has safe answers. */
	assert_string_equal(staple_outcome_name((enum staple_outcome)99), "error");
	assert_int_equal(staple_outcome_http((enum staple_outcome)99), 500);
}

/* A restart on the same database: a new store and service, the warm start begun (the index
 * sized, the issuers learned), no row loaded yet. */
static void
restart_loading(struct world *w)
{
	struct staple_load_progress lp;

	staple_service_free(&w->svc);
	store_free(&w->store);
	assert_non_null(w->store = store_new());
	assert_non_null(w->svc = staple_service_new(w->cfg, w->trust, w->cache, w->store,
	    w->fetch));
	assert_int_equal(staple_service_load_begin(w->svc), 0);
	staple_service_load_progress(w->svc, &lp);
	assert_int_equal(lp.phase, STAPLE_LOADING);
	assert_int_equal(store_count(w->store), 0);
}

/* Runs the load's slices to the end; returns the rows they read. */
static size_t
load_rest(struct world *w)
{
	struct staple_load_progress lp;
	int rc, slices = 0;

	while ((rc = staple_service_load_step(w->svc, 1)) == 1)
		assert_true(++slices < 100);
	assert_int_equal(rc, 0);
	staple_service_load_progress(w->svc, &lp);
	assert_int_equal(lp.phase, STAPLE_LOADED);
	return lp.rows;
}

/* While the warm start loads, an entry not loaded yet is answered from its row, as a value,
 * with no upstream contact; the slices then pass it over and load the rest. */
static void
test_load_answers_by_key(void **state)
{
	struct world *w = *state;
	struct cache_row row;
	struct seen c = { 0 };
	struct staple_answer ans;
	struct staple_load_progress lp;
	struct stapler_key key;
	size_t len;
	unsigned char *body;

	fetch_leaf(w, &row);
	assert_int_equal(cache_row_key(&row, &key), 0);
	assert_int_equal(w->upstream_requests, 1);
	restart_loading(w);

	body = body_of(&w->leaf, &w->ca, &len);
	assert_null(submit(w, body, len, &ans, &c));
	assert_int_equal(ans.outcome, STAPLE_OK);
	assert_int_equal(ans.staple->status, STAPLER_GOOD);
	assert_int_equal(ans.staple->der_len, row.response_len);
	assert_memory_equal(ans.staple->der, row.response_der, row.response_len);
	run_idle(w);
	assert_int_equal(c.calls, 0);
	assert_int_equal(w->upstream_requests, 1);
	staple_service_load_progress(w->svc, &lp);
	assert_int_equal(lp.by_key, 1);
	assert_int_equal(lp.rows, 0);
	/* A key with no row: nothing to read, nothing made. */
	key.serial[0] ^= 0x55;
	assert_null(staple_service_get(w->svc, &key));
	assert_int_equal(store_count(w->store), 1);

	assert_int_equal(load_rest(w), 1);
	assert_int_equal(store_count(w->store), 1);
	free(body);
	cache_row_clear(&row);
}

/* The race of a refresh with the load: the row holds a revocation, the upstream now says
 * good. The entry is read by key before the fetch, so the good answer is a rollback, refused;
 * the slice that reaches the row later keeps what memory holds. */
static void
test_load_revocation_wins(void **state)
{
	struct world *w = *state;
	struct cache_row row, after;
	struct stapler_key key;
	const struct staple *s;
	struct seen r = { 0 };
	struct staple_answer ans;

	fetch_leaf(w, &row);
	assert_int_equal(cache_row_key(&row, &key), 0);
	row.status = STAPLER_REVOKED;
	row.revoked_at = (long long)w->now - 3600;
	row.revocation_reason = 1;
	assert_int_equal(cache_store(w->cache, NULL, &row), 0);
	restart_loading(w);

	r.w = w;
	assert_non_null(staple_refresh_row(w->svc, &row, time(NULL), &ans, on_staple, &r));
	run_until(w, &r.calls, 1);
	/* "says good for a revoked certificate": refused as a rollback. */
	assert_int_equal(r.outcome, STAPLE_UPSTREAM_FAILED);
	assert_int_equal(w->upstream_requests, 2);
	assert_non_null(s = store_get(w->store, &key));
	assert_int_equal(s->status, STAPLER_REVOKED);
	assert_int_equal(load_rest(w), 1);
	assert_non_null(s = store_get(w->store, &key));
	assert_int_equal(s->status, STAPLER_REVOKED);
	assert_int_equal(cache_get(w->cache, &key, &after), 1);
	assert_int_equal(after.status, STAPLER_REVOKED);
	cache_row_clear(&after);
	cache_row_clear(&row);
}

/* What memory holds when a slice reaches a row is newer than the row (a revocation put back
 * from the journal, a new answer), and an entry evicted during the load stays evicted. */
static void
test_load_keeps_what_memory_holds(void **state)
{
	struct world *w = *state;
	struct cache_row row;
	struct stapler_key key;
	struct staple *revoked;
	const struct staple *s;

	fetch_leaf(w, &row);
	assert_int_equal(cache_row_key(&row, &key), 0);
	restart_loading(w);
	assert_non_null(revoked = staple_new(&key, STAPLER_REVOKED, (time_t)row.this_update + 1,
	    (time_t)row.next_update, (time_t)row.produced_at, (time_t)row.fetched_at,
	    row.response_der, row.response_len));
	assert_int_equal(store_put(w->store, revoked), 0);
	assert_int_equal(load_rest(w), 1);
	assert_non_null(s = store_get(w->store, &key));
	assert_int_equal(s->status, STAPLER_REVOKED);

	restart_loading(w);
	assert_int_equal(staple_service_evict(w->svc, &key), 1);
	assert_int_equal(load_rest(w), 0);
	assert_null(store_get(w->store, &key));
	assert_null(staple_service_get(w->svc, &key));
	cache_row_clear(&row);
}

/* [cache] load_max_cpu: the pause after a slice keeps the load to its share of the loop. */
static void
test_load_pause(void **state)
{
	(void)state;
	assert_int_equal(daemon_load_pause_us(3000, 100), 0);
	assert_int_equal(daemon_load_pause_us(3000, 50), 3000);
	assert_int_equal(daemon_load_pause_us(3000, 25), 9000);
	assert_int_equal(daemon_load_pause_us(3000, 1), 297000);
	assert_int_equal(daemon_load_pause_us(30000, 1), 1000000);
	assert_int_equal(daemon_load_pause_us(0, 10), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcome_table),
		cmocka_unit_test_setup_teardown(test_ocsp_anonymous_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_miss_waits_hit_is_a_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_are_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_that_cannot_start_is_a_value, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refresh_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_never_calls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_contract, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identical_body_costs_no_check_no_row, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_modified_costs_no_check_no_row, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_upstream_max_age_postpones_refresh, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load_answers_by_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_revocation_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_keeps_what_memory_holds, setup, teardown),
		cmocka_unit_test(test_load_pause),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
