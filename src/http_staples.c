/* POST /v1/staples: the chain staples of a submitted chain as one JSON document,
 * {"staples":[{"serial","issuer","status","this_update","next_update","response"}]}, leaf
 * first; times are Unix seconds, response is the base64 DER OCSPResponse. */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "chain.h"
#include "http_routes.h"
#include "config.h"
#include "util.h"

static void
send_staples(struct evhttp_request *req, const struct chain_staple *st, int n)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();
	char *b64;
	int i;

	if (out == NULL) {
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	evbuffer_add_printf(out, "{\"staples\":[");
	for (i = 0; i < n; i++) {
		if ((b64 = util_base64(st[i].der, st[i].der_len)) == NULL)
			break;
		/* Every field is hex, a status name, a number or base64: nothing to escape. */
		evbuffer_add_printf(out, "%s{\"serial\":\"%s\",\"issuer\":\"%s\",\"status\":\"%s\","
		    "\"this_update\":%lld,\"next_update\":%lld,\"response\":\"%s\"}", i ? "," : "",
		    st[i].serial, st[i].issuer, stapler_status_name(st[i].status),
		    (long long)st[i].this_update, (long long)st[i].next_update, b64);
		free(b64);
	}
	if (i < n) {
		evbuffer_free(out);
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	evbuffer_add_printf(out, "]}\n");
	evhttp_add_header(h, "Content-Type", "application/json");
	/* One answer for several staples: the client refreshes by its own clock. */
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
cancel_chain(void *handle)
{
	chain_wait_cancel(handle);
}

static void
on_chain(enum staple_outcome outcome, const struct chain_staple *st, int n, const char *error,
    void *arg)
{
	struct http_wait *w = arg;
	int started = http_wait_detach(w);

	if (outcome == STAPLE_OK)
		send_staples(w->req, st, n);
	else
		http_api_send_error(w->req, staple_outcome_http(outcome), error);
	if (started)
		free(w);
}

void
http_staples_handle(struct http_api *api, struct evhttp_request *req)
{
	unsigned char *body;
	struct http_wait *w;
	size_t len;

	if (http_api_body(api, req, &body, &len) < 0)
		return;
	if (len == 0) {
		http_api_send_error(req, 400, "empty body: send a PEM chain or a DER certificate");
		return;
	}
	if (body == NULL || (w = http_wait_new(api, req)) == NULL) {
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	http_wait_start(w, chain_submit(http_api_service(api), body, len, time(NULL), on_chain, w),
	    cancel_chain);
}
