/* The HTTP API: routing, POST /v1/staple and GET /healthz, RFC 5019 caching headers, 304 on
 * If-None-Match, and JSON errors with the status codes of PRODUCT.md §5. The connections, the
 * parser and the limits are http_server.c's. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "fetch.h"
#include "http_api.h"
#include "http_routes.h"
#include "http_server.h"
#include "staple.h"
#include "config.h"
#include "fmt.h"
#include "log.h"
#include "ratelimit.h"
#include "store.h"
#include "util.h"

struct http_api {
	struct http_server *srv;
	const struct stapler_config *cfg;
	struct staple_service *svc;
	struct store *store;
	struct fetcher *fetch;
	const struct refresher *refresh;  /* NULL: no refresh timer (component tests) */
	struct http_health *health;
	struct ratelimit *limit;          /* fetches per client address */
	const unsigned char *admit_addr;  /* the client of the call in progress */
	long retry_after;                 /* of the last refusal */
	int shutting_down;
	size_t waiting;
};

#define LIT(s) s, sizeof(s) - 1

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
http_api_send_error(struct http_req *req, int code, const char *msg)
{
	send_error_hdr(req, code, NULL, NULL, msg);
}

void
http_api_send_405(struct http_req *req, const char *allow, const char *msg)
{
	send_error_hdr(req, 405, "Allow", allow, msg);
}

void
http_api_send_outcome(struct http_api *api, struct http_req *req, int outcome,
    const char *error)
{
	char secs[24];

	if (outcome != STAPLE_LIMITED) {
		http_api_send_error(req, staple_outcome_http(outcome), error);
		return;
	}
	secs[http_u64((unsigned long long)api->retry_after, secs)] = '\0';
	send_error_hdr(req, 429, "Retry-After", secs, error);
}

long
http_api_retry_after(const struct http_api *api)
{
	return api->retry_after;
}

static int
admit(void *ctx)
{
	struct http_api *api = ctx;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ratelimit_take(api->limit, api->admit_addr, api->cfg->fetches_per_client,
	    api->cfg->fetch_burst, (size_t)api->cfg->limit_clients,
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &api->retry_after);
}

void
http_api_admit_begin(struct http_api *api, struct http_req *req)
{
	api->admit_addr = http_req_client(req);
	/* The operator's own hosts ([limits] trusted_clients: a head-end gateway submitting for
	 * its fleet, an edge staplerd) fetch without the per-client limit. */
	if (config_client_trusted(api->cfg, api->admit_addr))
		return;
	staple_service_admit(api->svc, admit, api);
}

void
http_api_admit_end(struct http_api *api)
{
	staple_service_admit(api->svc, NULL, NULL);
	api->admit_addr = NULL;
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
http_api_send_staple(struct http_req *req, const struct staple *s)
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

static void
on_wait_abort(void *arg)
{
	struct http_wait *w = arg;

	/* The client left before its answer: drop its callback, keep the fetch. */
	w->cancel(w->handle);
	w->api->waiting--;
	free(w);
}

struct http_wait *
http_wait_new(struct http_api *api, struct http_req *req)
{
	struct http_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->api = api;
	w->req = req;
	return w;
}

int
http_wait_start(struct http_wait *w, void *handle, void (*cancel)(void *handle))
{
	if (handle == NULL) {
		free(w);
		return 0;
	}
	w->handle = handle;
	w->cancel = cancel;
	w->api->waiting++;
	http_req_on_abort(w->req, on_wait_abort, w);
	return 1;
}

struct http_req *
http_wait_end(struct http_wait *w, struct http_api **api)
{
	struct http_req *req = w->req;

	*api = w->api;
	http_req_on_abort(req, NULL, NULL);
	w->api->waiting--;
	free(w);
	return req;
}

int
http_api_body(struct http_api *api, struct http_req *req, const unsigned char **body,
    size_t *len)
{
	char msg[96];

	*body = http_req_body(req, len);
	if (*len > api->cfg->max_request) {
		snprintf(msg, sizeof(msg), "request body larger than %zu bytes", api->cfg->max_request);
		http_reply_close(req);
		http_api_send_error(req, 413, msg);
		return -1;
	}
	return 0;
}

static void
cancel_staple(void *handle)
{
	staple_wait_cancel(handle);
}

static void
reply_staple(struct http_api *api, struct http_req *req, enum staple_outcome outcome,
    const struct staple *s, const char *error)
{
	if (outcome == STAPLE_OK)
		http_api_send_staple(req, s);
	else
		http_api_send_outcome(api, req, outcome, error);
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_api *api;
	struct http_req *req = http_wait_end(arg, &api);

	reply_staple(api, req, outcome, s, error);
}

static void
handle_staple(struct http_api *api, struct http_req *req)
{
	const unsigned char *body;
	struct staple_answer ans;
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
	waiting = http_wait_start(w, staple_submit(api->svc, body, len, time(NULL), &ans, on_staple,
	    w), cancel_staple);
	http_api_admit_end(api);
	if (!waiting)
		reply_staple(api, req, ans.outcome, ans.staple, ans.error);
}

static int
path_is(const char *p, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(p, want, n) == 0;
}

static void
on_request(struct http_req *req, void *arg)
{
	struct http_api *api = arg;
	enum http_method m = http_req_method(req);
	size_t len;
	const char *path = http_req_path(req, &len);

	if (path_is(path, len, "/healthz") || path_is(path, len, "/metrics")) {
		int metrics = path[1] == 'm';

		http_req_set_route(req, metrics ? HTTP_ROUTE_METRICS : HTTP_ROUTE_HEALTHZ);
		if (m != HTTP_GET && m != HTTP_HEAD)
			http_api_send_405(req, "GET, HEAD", "use GET");
		else if (metrics)
			http_metrics_handle(api, req);
		else
			http_health_handle(api, req);
		return;
	}
	/* Stopping: answers from memory go on (a load balancer moving traffic away in the
	 * meantime loses no request), each closing its connection; whatever would need an
	 * upstream gets 503 from the staple service. */
	if (api->shutting_down)
		http_reply_close(req);
	if (path_is(path, len, "/v1/staples")) {
		http_req_set_route(req, HTTP_ROUTE_STAPLES);
		if (m != HTTP_POST)
			http_api_send_405(req, "POST", "use POST");
		else
			http_staples_handle(api, req);
		return;
	}
	if (path_is(path, len, "/ocsp") || (len >= 6 && memcmp(path, "/ocsp/", 6) == 0)) {
		http_req_set_route(req, m == HTTP_POST ? HTTP_ROUTE_OCSP_POST : HTTP_ROUTE_OCSP_GET);
		http_ocsp_handle(api, req, path, len);
		return;
	}
	if (path_is(path, len, "/v1/ocpp/certificate-status")) {
		http_req_set_route(req, HTTP_ROUTE_OCPP);
		if (m != HTTP_POST)
			http_api_send_405(req, "POST", "use POST");
		else
			http_ocpp_handle(api, req);
		return;
	}
	if (path_is(path, len, "/v1/staple")) {
		http_req_set_route(req, HTTP_ROUTE_STAPLE);
		if (m != HTTP_POST)
			http_api_send_405(req, "POST", "use POST");
		else
			handle_staple(api, req);
		return;
	}
	http_req_set_route(req, HTTP_ROUTE_OTHER);
	http_api_send_error(req, 404, "no such resource");
}

size_t
http_api_max_connections(const struct stapler_config *cfg)
{
	struct rlimit rl;
	rlim_t reserve = HTTP_FD_RESERVE + 2 * (rlim_t)cfg->max_parallel;

	if (cfg->max_connections > 0)
		return (size_t)cfg->max_connections;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 4096;
	if (rl.rlim_cur < reserve + 16)
		return 16;
	return (size_t)(rl.rlim_cur - reserve);
}

static void
limits_from(const struct stapler_config *cfg, struct http_limits *l)
{
	l->max_connections = http_api_max_connections(cfg);
	l->max_per_client = cfg->max_connections_per_client > 0 ?
	    (size_t)cfg->max_connections_per_client : l->max_connections / 4;
	if (l->max_per_client < 16)
		l->max_per_client = 16;
	l->max_head = cfg->max_header;
	l->max_body = cfg->max_request;
	l->header_timeout = cfg->header_timeout;
	l->request_timeout = cfg->request_timeout;
	l->idle_timeout = cfg->idle_timeout;
}

struct http_api *
http_api_new(struct event_base *base, const struct stapler_config *cfg, struct staple_service *svc,
    struct store *store, struct fetcher *fetch, char *err, size_t errlen)
{
	struct http_api *api = calloc(1, sizeof(*api));
	struct http_limits lim;
	char host[256];
	unsigned short port;

	if (api == NULL || (api->health = http_health_new()) == NULL || (api->limit = ratelimit_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	api->cfg = cfg;
	api->svc = svc;
	api->store = store;
	api->fetch = fetch;
	if (config_split_listen(cfg->listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "listen: not host:port: %s", cfg->listen);
		goto fail;
	}
	limits_from(cfg, &lim);
	if ((api->srv = http_server_new(base, host, port, &lim, on_request, api, err, errlen)) == NULL)
		goto fail;
	log_info("listening", "addr=%s port=%u max_connections=%zu max_connections_per_client=%zu",
	    host, http_server_port(api->srv), lim.max_connections, lim.max_per_client);
	return api;
fail:
	http_api_free(&api);
	return NULL;
}

void
http_api_set_config(struct http_api *api, const struct stapler_config *cfg)
{
	struct http_limits lim;

	api->cfg = cfg;
	limits_from(cfg, &lim);
	http_server_set_limits(api->srv, &lim);
}

struct http_health *
http_api_health(struct http_api *api)
{
	return api->health;
}

struct fetcher *
http_api_fetcher(struct http_api *api)
{
	return api->fetch;
}

void
http_api_set_refresher(struct http_api *api, const struct refresher *r)
{
	api->refresh = r;
}

const struct refresher *
http_api_refresher(const struct http_api *api)
{
	return api->refresh;
}

const struct http_server *
http_api_server(const struct http_api *api)
{
	return api->srv;
}

int
http_api_shutting_down(const struct http_api *api)
{
	return api->shutting_down;
}

struct staple_service *
http_api_service(struct http_api *api)
{
	return api->svc;
}

const struct stapler_config *
http_api_config(const struct http_api *api)
{
	return api->cfg;
}

unsigned short
http_api_port(const struct http_api *api)
{
	return http_server_port(api->srv);
}

size_t
http_api_waiting(const struct http_api *api)
{
	return api->waiting;
}

void
http_api_shutdown(struct http_api *api)
{
	api->shutting_down = 1;
	http_server_stop_listening(api->srv);
}

void
http_api_free(struct http_api **apip)
{
	struct http_api *api;

	if (apip == NULL || (api = *apip) == NULL)
		return;
	http_server_free(&api->srv);
	http_health_free(&api->health);
	ratelimit_free(&api->limit);
	free(api);
	*apip = NULL;
}

unsigned long long
http_api_answered(void *arg)
{
	const struct http_api *api = arg;

	return api->srv != NULL ? http_server_answered(api->srv) : 0;
}
