/* The submission routes: POST /v1/staple (one staple, the DER response with RFC 9919 caching
 * headers) and POST /v1/staples, the chain staples of a submitted chain as one JSON document,
 * {"staples":[{"serial","issuer","status","this_update","next_update","response"}]}, leaf
 * first; times are Unix seconds, response is the base64 DER OCSPResponse. A certificate whose
 * staple cannot be had now has {"serial","issuer","error"} instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "http_kit.h"
#include "http_staples.h"
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
		http_kit_send_error(req, 503, "out of memory");
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
		http_kit_send_error(req, 503, "out of memory");
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
reply_chain(struct http_kit *kit, struct http_req *req, enum staple_outcome outcome,
    const struct chain_staple *st, int n, const char *error)
{
	if (outcome == STAPLE_OK)
		send_staples(req, st, n);
	else
		http_kit_send_outcome(kit, req, outcome, error);
}

static void
on_chain(enum staple_outcome outcome, const struct chain_staple *st, int n, const char *error,
    void *arg)
{
	struct http_kit *kit;
	struct http_req *req = http_kit_end(arg, &kit);

	reply_chain(kit, req, outcome, st, n, error);
}

/* The start of a submission's service call: its body, checked (413, 400 when empty), and the
 * kit's begin; NULL after answering. */
static struct http_wait *
submission_begin(struct http_kit *kit, struct http_req *req, const unsigned char **body,
    size_t *len)
{
	struct http_wait *w;

	if (http_kit_body(kit, req, body, len) < 0)
		return NULL;
	if (*len == 0) {
		http_kit_send_error(req, 400, "empty body: send a PEM chain or a DER certificate");
		return NULL;
	}
	if ((w = http_kit_begin(kit, req)) == NULL)
		http_kit_send_error(req, 503, "out of memory");
	return w;
}

void
http_staples_handle(struct http_kit *kit, struct http_req *req, void *state)
{
	const unsigned char *body;
	struct chain_answer ans;
	struct http_wait *w;
	size_t len;

	(void)state;
	if ((w = submission_begin(kit, req, &body, &len)) == NULL)
		return;
	if (!http_kit_wait(w, chain_submit(http_kit_service(kit), body, len, time(NULL), &ans,
	    on_chain, w), cancel_chain))
		reply_chain(kit, req, ans.outcome, ans.staples, ans.n, ans.error);
}

/* ---- POST /v1/staple ---- */

static void
reply_staple(struct http_kit *kit, struct http_req *req, enum staple_outcome outcome,
    const struct staple *s, const char *error)
{
	if (outcome == STAPLE_OK)
		http_kit_send_staple(req, s);
	else
		http_kit_send_outcome(kit, req, outcome, error);
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_kit *kit;
	struct http_req *req = http_kit_end(arg, &kit);

	reply_staple(kit, req, outcome, s, error);
}

void
http_staple_handle(struct http_kit *kit, struct http_req *req, void *state)
{
	const unsigned char *body;
	struct staple_answer ans;
	struct http_wait *w;
	size_t len;

	(void)state;
	if ((w = submission_begin(kit, req, &body, &len)) == NULL)
		return;
	if (!http_kit_wait(w, staple_submit(http_kit_service(kit), body, len, time(NULL), &ans,
	    on_staple, w), http_kit_cancel_staple))
		reply_staple(kit, req, ans.outcome, ans.staple, ans.error);
}
