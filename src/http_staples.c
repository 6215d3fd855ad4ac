/* POST /v1/staples: the chain staples of a submitted chain as one JSON document,
 * {"staples":[{"serial","issuer","status","this_update","next_update","response"}]}, leaf
 * first; times are Unix seconds, response is the base64 DER OCSPResponse. A certificate whose
 * staple cannot be had now has {"serial","issuer","error"} instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "http_routes.h"
#include "http_server.h"
#include "config.h"
#include "fmt.h"
#include "util.h"

static void
send_staples(struct http_req *req, const struct chain_staple *st, int n)
{
	char *doc = NULL, *b64;
	size_t len = 0;
	int i, failed = 0;
	FILE *fp;

	if ((fp = open_memstream(&doc, &len)) == NULL) {
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	fputs("{\"staples\":[", fp);
	for (i = 0; i < n && !failed; i++) {
		/* Hex, a status name, numbers and base64 need no escaping; an error does. */
		fprintf(fp, "%s{\"serial\":\"%s\",\"issuer\":\"%s\",", i ? "," : "", st[i].serial,
		    st[i].issuer);
		if (st[i].outcome != STAPLE_OK) {
			fputs("\"error\":", fp);
			fmt_json_str(fp, st[i].error);
			fputc('}', fp);
			continue;
		}
		if ((b64 = util_base64(st[i].der, st[i].der_len)) == NULL) {
			failed = 1;
			break;
		}
		fprintf(fp, "\"status\":\"%s\",\"this_update\":%lld,\"next_update\":%lld,"
		    "\"response\":\"%s\"}", stapler_status_name(st[i].status),
		    (long long)st[i].this_update, (long long)st[i].next_update, b64);
		free(b64);
	}
	fputs("]}\n", fp);
	if (fclose(fp) != 0 || failed) {
		free(doc);
		http_api_send_error(req, 503, "out of memory");
		return;
	}
	/* One answer for several staples: the client refreshes by its own clock. */
	http_reply(req, 200, "Cache-Control: no-store\r\n", "application/json", doc, len);
	free(doc);
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
