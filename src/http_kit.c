/* The route kit (http_kit.h): the context every route shares, the reply helpers, and a service
 * call on a client's behalf (admission against its fetch rate, the wait for a callback). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_kit.h"
#include "http_server.h"
#include "config.h"
#include "fmt.h"
#include "ratelimit.h"
#include "util.h"

struct http_kit {
	const struct stapler_config *cfg;
	struct staple_service *svc;
	struct fetcher *fetch;
	const struct http_server *srv;
	const struct refresher *refresh;  /* NULL: no refresh timer (component tests) */
	struct ratelimit *limit;          /* fetches per client address */
	const unsigned char *admit_addr;  /* the client of the call in progress */
	long retry_after;                 /* of the last refusal */
	int shutting_down;
	size_t waiting;
};

struct http_wait {
	struct http_kit *kit;
	struct http_req *req;
	void *handle;                     /* the service's wait handle, once the wait started */
	void (*cancel)(void *handle);
};

#define LIT(s) s, sizeof(s) - 1

struct http_kit *
http_kit_new(const struct stapler_config *cfg, struct staple_service *svc, struct fetcher *fetch)
{
	struct http_kit *kit = calloc(1, sizeof(*kit));

	if (kit == NULL || (kit->limit = ratelimit_new()) == NULL) {
		free(kit);
		return NULL;
	}
	kit->cfg = cfg;
	kit->svc = svc;
	kit->fetch = fetch;
	return kit;
}

void
http_kit_free(struct http_kit **kitp)
{
	struct http_kit *kit;

	if (kitp == NULL || (kit = *kitp) == NULL)
		return;
	ratelimit_free(&kit->limit);
	free(kit);
	*kitp = NULL;
}

void
http_kit_set_config(struct http_kit *kit, const struct stapler_config *cfg)
{
	kit->cfg = cfg;
}

void
http_kit_set_server(struct http_kit *kit, const struct http_server *srv)
{
	kit->srv = srv;
}

void
http_kit_set_refresher(struct http_kit *kit, const struct refresher *r)
{
	kit->refresh = r;
}

void
http_kit_set_shutting_down(struct http_kit *kit)
{
	kit->shutting_down = 1;
}

struct staple_service *
http_kit_service(struct http_kit *kit)
{
	return kit->svc;
}

const struct stapler_config *
http_kit_config(const struct http_kit *kit)
{
	return kit->cfg;
}

struct fetcher *
http_kit_fetcher(struct http_kit *kit)
{
	return kit->fetch;
}

const struct refresher *
http_kit_refresher(const struct http_kit *kit)
{
	return kit->refresh;
}

const struct http_server *
http_kit_server(const struct http_kit *kit)
{
	return kit->srv;
}

int
http_kit_shutting_down(const struct http_kit *kit)
{
	return kit->shutting_down;
}

size_t
http_kit_waiting(const struct http_kit *kit)
{
	return kit->waiting;
}

/* ---- replies ---- */

static void
send_error_hdr(struct http_req *req, int code, const char *name, const char *value,
    const char *msg)
{
	char body[640];
	size_t n;

	memcpy(body, "{\"error\":\"", 10);
	n = fmt_json_escape(body, 10, sizeof(body) - 4, msg);
	memcpy(body + n, "\"}\n", 3);
	n += 3;
	http_reply_begin(req, code);
	http_reply_header(req, LIT("Cache-Control"), LIT("no-store"));
	if (name != NULL)
		http_reply_header(req, name, strlen(name), value, strlen(value));
	http_reply_end(req, "application/json", body, n);
}

void
http_kit_send_error(struct http_req *req, int code, const char *msg)
{
	send_error_hdr(req, code, NULL, NULL, msg);
}

void
http_kit_send_405(struct http_req *req, const char *allow, const char *msg)
{
	send_error_hdr(req, 405, "Allow", allow, msg);
}

void
http_kit_send_outcome(struct http_kit *kit, struct http_req *req, enum staple_outcome outcome,
    const char *error)
{
	char secs[24];

	if (outcome != STAPLE_LIMITED) {
		http_kit_send_error(req, staple_outcome_http(outcome), error);
		return;
	}
	secs[http_u64((unsigned long long)kit->retry_after, secs)] = '\0';
	send_error_hdr(req, 429, "Retry-After", secs, error);
}

long
http_kit_retry_after(const struct http_kit *kit)
{
	return kit->retry_after;
}

/* 1 when an If-None-Match list names etag (or is "*"); weak validators compare too. */
static int
etag_matches(const char *p, size_t n, const char *etag)
{
	size_t elen = strlen(etag), i = 0;

	while (i < n) {
		size_t start;

		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		if (n - i >= 2 && p[i] == 'W' && p[i + 1] == '/')
			i += 2;
		start = i;
		while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
			i++;
		if ((i - start == 1 && p[start] == '*') ||
		    (i - start == elen && memcmp(p + start, etag, elen) == 0))
			return 1;
	}
	return 0;
}

void
http_kit_send_staple(struct http_req *req, const struct staple *s)
{
	static const char cc_tail[] = ", public, no-transform, must-revalidate";
	size_t inm_len, n;
	const char *inm = http_req_if_none_match(req, &inm_len);
	time_t now;
	const char *date = http_req_date(req, &now);
	char cc[96], etag[STAPLE_ETAG_LEN + 1], last_modified[30], expires[30];
	int not_modified;

	/* The header values are derived from the entry's fields here (a few dozen ns of integer
	 * arithmetic) rather than kept formatted in every entry (96 bytes each; issue 19). */
	staple_etag(s, etag);
	not_modified = inm != NULL && etag_matches(inm, inm_len, etag);
	memcpy(cc, "max-age=", 8);
	n = 8 + http_u64((unsigned long long)staple_max_age(s, now), cc + 8);
	memcpy(cc + n, cc_tail, sizeof(cc_tail) - 1);
	n += sizeof(cc_tail) - 1;
	http_reply_begin(req, not_modified ? 304 : 200);
	http_reply_header(req, LIT("Cache-Control"), cc, n);
	/* Never later than Date: an upstream clock ahead (inside the accepted skew) would
	 * otherwise date the response in the future (RFC 9110 §8.8.2.1). */
	if (s->this_update > now)
		memcpy(last_modified, date, 30);
	else
		util_http_date(s->this_update, last_modified);
	util_http_date(s->next_update, expires);
	http_reply_header(req, LIT("Last-Modified"), last_modified, 29);
	http_reply_header(req, LIT("Expires"), expires, 29);
	http_reply_header(req, LIT("ETag"), etag, STAPLE_ETAG_LEN);
	if (not_modified)
		http_reply_end(req, NULL, NULL, 0);
	else
		http_reply_end(req, "application/ocsp-response", s->der, s->der_len);
}

int
http_kit_body(struct http_kit *kit, struct http_req *req, const unsigned char **body,
    size_t *len)
{
	char msg[96];

	*body = http_req_body(req, len);
	if (*len > kit->cfg->max_request) {
		snprintf(msg, sizeof(msg), "request body larger than %zu bytes", kit->cfg->max_request);
		http_reply_close(req);
		http_kit_send_error(req, 413, msg);
		return -1;
	}
	return 0;
}

/* ---- a service call on a client's behalf ---- */

static int
admit(void *ctx)
{
	struct http_kit *kit = ctx;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ratelimit_take(kit->limit, kit->admit_addr, kit->cfg->fetches_per_client,
	    kit->cfg->fetch_burst, (size_t)kit->cfg->limit_clients,
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &kit->retry_after);
}

struct http_wait *
http_kit_begin(struct http_kit *kit, struct http_req *req)
{
	struct http_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->kit = kit;
	w->req = req;
	kit->admit_addr = http_req_client(req);
	/* The operator's own hosts ([limits] trusted_clients: a head-end gateway submitting for
	 * its fleet, an edge staplerd) fetch without the per-client limit. */
	if (!config_client_trusted(kit->cfg, kit->admit_addr))
		staple_service_admit(kit->svc, admit, kit);
	return w;
}

static void
on_wait_abort(void *arg)
{
	struct http_wait *w = arg;

	/* The client left before its answer: drop its callback (a fetch nobody else waits for
	 * is cancelled by the service). */
	w->cancel(w->handle);
	w->kit->waiting--;
	free(w);
}

int
http_kit_wait(struct http_wait *w, void *handle, void (*cancel)(void *handle))
{
	struct http_kit *kit = w->kit;

	staple_service_admit(kit->svc, NULL, NULL);
	kit->admit_addr = NULL;
	if (handle == NULL) {
		free(w);
		return 0;
	}
	w->handle = handle;
	w->cancel = cancel;
	kit->waiting++;
	http_req_on_abort(w->req, on_wait_abort, w);
	return 1;
}

void
http_kit_cancel_staple(void *handle)
{
	staple_wait_cancel(handle);
}

struct http_req *
http_kit_end(struct http_wait *w, struct http_kit **kit)
{
	struct http_req *req = w->req;

	*kit = w->kit;
	http_req_on_abort(req, NULL, NULL);
	w->kit->waiting--;
	free(w);
	return req;
}
