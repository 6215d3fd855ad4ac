/* POST /v1/staples: the chain staples of a submitted chain as one JSON document,
 * {"staples":[{"serial","issuer","status","this_update","next_update","response"}]}, leaf
 * first; times are Unix seconds, response is the base64 DER OCSPResponse. */
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "http_routes.h"
#include "http_server.h"
#include "config.h"
#include "util.h"

/* A growing text buffer for the document. */
struct doc {
	char *p;
	size_t len, cap;
	int failed;
};

static void
doc_add(struct doc *d, const char *s, size_t n)
{
	if (d->failed)
		return;
	if (d->cap - d->len < n + 1) {
		size_t cap = d->cap ? d->cap : 4096;
		char *p;

		while (cap - d->len < n + 1)
			cap *= 2;
		if ((p = realloc(d->p, cap)) == NULL) {
			d->failed = 1;
			return;
		}
		d->p = p;
		d->cap = cap;
	}
	memcpy(d->p + d->len, s, n);
	d->len += n;
}

static void
send_staples(struct http_req *req, const struct chain_staple *st, int n)
{
	struct doc d = { 0 };
	char item[512], *b64;
	int i, k;

	doc_add(&d, "{\"staples\":[", 12);
	for (i = 0; i < n; i++) {
		if ((b64 = util_base64(st[i].der, st[i].der_len)) == NULL)
			break;
		/* Every field is hex, a status name, a number or base64: nothing to escape. */
		k = snprintf(item, sizeof(item), "%s{\"serial\":\"%s\",\"issuer\":\"%s\","
		    "\"status\":\"%s\",\"this_update\":%lld,\"next_update\":%lld,\"response\":\"",
		    i ? "," : "", st[i].serial, st[i].issuer, stapler_status_name(st[i].status),
		    (long long)st[i].this_update, (long long)st[i].next_update);
		if (k > 0 && (size_t)k < sizeof(item))
			doc_add(&d, item, (size_t)k);
		else
			d.failed = 1;
		doc_add(&d, b64, strlen(b64));
		doc_add(&d, "\"}", 2);
		free(b64);
	}
	doc_add(&d, "]}\n", 3);
	if (i < n || d.failed) {
		free(d.p);
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	/* One answer for several staples: the client refreshes by its own clock. */
	http_reply(req, 200, "Cache-Control: no-store\r\n", "application/json", d.p, d.len);
	free(d.p);
}

static void
cancel_chain(void *handle)
{
	chain_wait_cancel(handle);
}

static void
reply_chain(struct http_api *api, struct http_req *req, enum staple_outcome outcome,
    const struct chain_staple *st, int n, const char *error)
{
	if (outcome == STAPLE_OK)
		send_staples(req, st, n);
	else
		http_api_send_outcome(api, req, outcome, error);
}

static void
on_chain(enum staple_outcome outcome, const struct chain_staple *st, int n, const char *error,
    void *arg)
{
	struct http_api *api;
	struct http_req *req = http_wait_end(arg, &api);

	reply_chain(api, req, outcome, st, n, error);
}

void
http_staples_handle(struct http_api *api, struct http_req *req)
{
	const unsigned char *body;
	struct chain_answer ans;
	struct http_wait *w;
	size_t len;
	int waiting;

	if (http_api_body(api, req, &body, &len) < 0)
		return;
	if (len == 0) {
		http_api_send_error(req, 400, "empty body: send a PEM chain or a DER certificate");
		return;
	}
	if ((w = http_wait_new(api, req)) == NULL) {
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	http_api_admit_begin(api, req);
	waiting = http_wait_start(w, chain_submit(http_api_service(api), body, len, time(NULL), &ans,
	    on_chain, w), cancel_chain);
	http_api_admit_end(api);
	if (!waiting)
		reply_chain(api, req, ans.outcome, ans.staples, ans.n, ans.error);
}
