/* The HTTP API: the route table (path, methods, handler, the route file's state) and the
 * life of the whole (listen, reload, stop). What the routes share is the route kit's
 * (http_kit.c); each route lives in its own file; connections, parsing and limits are
 * http_server.c's. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "http_api.h"
#include "http_health.h"
#include "http_kit.h"
#include "http_ocpp.h"
#include "http_ocsp.h"
#include "http_server.h"
#include "http_staples.h"
#include "config.h"
#include "log.h"

/* One route: a path (whole, or a prefix ending in '/'), the methods it takes (others get 405
 * with allow), its number for /metrics, its handler and its file's state. */
struct route {
	const char *path;
	int prefix;
	unsigned methods;                      /* 1 << enum http_method */
	const char *allow, *use;               /* the Allow field and the 405's message */
	enum http_route id;
	int probe;                             /* a health probe: keeps its connection while
	                                        * stopping (load balancers ask on) */
	http_route_fn handle;
	const struct http_route_state *state;  /* NULL: none */
};

#define M(m) (1u << (m))
#define GET_HEAD (M(HTTP_GET) | M(HTTP_HEAD))

static const struct route routes[] = {
	{ "/healthz", 0, GET_HEAD, "GET, HEAD", "use GET", HTTP_ROUTE_HEALTHZ, 1,
	    http_health_handle, &http_health_state },
	{ "/metrics", 0, GET_HEAD, "GET, HEAD", "use GET", HTTP_ROUTE_METRICS, 1,
	    http_metrics_handle, &http_health_state },
	{ "/v1/staple", 0, M(HTTP_POST), "POST", "use POST", HTTP_ROUTE_STAPLE, 0,
	    http_staple_handle, NULL },
	{ "/v1/staples", 0, M(HTTP_POST), "POST", "use POST", HTTP_ROUTE_STAPLES, 0,
	    http_staples_handle, NULL },
	/* The OCSP handler numbers its answers by method (POST /ocsp, GET /ocsp/). */
	{ "/ocsp", 0, GET_HEAD | M(HTTP_POST), "GET, HEAD, POST",
	    "use GET /ocsp/{request} or POST /ocsp", HTTP_ROUTE_OCSP_GET, 0, http_ocsp_handle, NULL },
	{ "/ocsp/", 1, GET_HEAD | M(HTTP_POST), "GET, HEAD, POST",
	    "use GET /ocsp/{request} or POST /ocsp", HTTP_ROUTE_OCSP_GET, 0, http_ocsp_handle, NULL },
	{ "/v1/ocpp/certificate-status", 0, M(HTTP_POST), "POST", "use POST", HTTP_ROUTE_OCPP, 0,
	    http_ocpp_handle, NULL },
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

struct http_api {
	struct http_server *srv;
	struct http_kit *kit;
	void *state[N_ROUTES];   /* per route; routes naming one state share the first's */
};

static int
route_matches(const struct route *r, const char *path, size_t len)
{
	size_t n = strlen(r->path);

	return r->prefix ? len >= n && memcmp(path, r->path, n) == 0 :
	    len == n && memcmp(path, r->path, n) == 0;
}

static void
on_request(struct http_req *req, void *arg)
{
	struct http_api *api = arg;
	enum http_method m = http_req_method(req);
	size_t len;
	const char *path = http_req_path(req, &len);

	for (size_t i = 0; i < N_ROUTES; i++) {
		const struct route *r = &routes[i];

		if (!route_matches(r, path, len))
			continue;
		http_req_set_route(req, r->id);
		/* Stopping: answers from memory go on (a load balancer moving traffic away in the
		 * meantime loses no request), each closing its connection; whatever would need an
		 * upstream gets 503 from the staple service. */
		if (http_kit_shutting_down(api->kit) && !r->probe)
			http_reply_close(req);
		if (!(r->methods & M(m)))
			http_kit_send_405(req, r->allow, r->use);
		else
			r->handle(api->kit, req, api->state[i]);
		return;
	}
	if (http_kit_shutting_down(api->kit))
		http_reply_close(req);
	http_req_set_route(req, HTTP_ROUTE_OTHER);
	http_kit_send_error(req, 404, "no such resource");
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
    struct fetcher *fetch, char *err, size_t errlen)
{
	struct http_api *api = calloc(1, sizeof(*api));
	struct http_limits lim;
	char host[256];
	unsigned short port;

	if (api == NULL || (api->kit = http_kit_new(cfg, svc, fetch)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Each route file's state, once per state (two routes may share one). */
	for (size_t i = 0; i < N_ROUTES; i++) {
		if (routes[i].state == NULL)
			continue;
		for (size_t j = 0; j < i && api->state[i] == NULL; j++)
			if (routes[j].state == routes[i].state)
				api->state[i] = api->state[j];
		if (api->state[i] == NULL && (api->state[i] = routes[i].state->state_new(base)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (config_split_listen(cfg->listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "listen: not host:port: %s", cfg->listen);
		goto fail;
	}
	limits_from(cfg, &lim);
	if ((api->srv = http_server_new(base, host, port, &lim, on_request, api, err, errlen)) == NULL)
		goto fail;
	http_kit_set_server(api->kit, api->srv);
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

	http_kit_set_config(api->kit, cfg);
	limits_from(cfg, &lim);
	http_server_set_limits(api->srv, &lim);
}

void
http_api_set_refresher(struct http_api *api, const struct refresher *r)
{
	http_kit_set_refresher(api->kit, r);
}

unsigned short
http_api_port(const struct http_api *api)
{
	return http_server_port(api->srv);
}

size_t
http_api_waiting(const struct http_api *api)
{
	return http_kit_waiting(api->kit);
}

void
http_api_shutdown(struct http_api *api)
{
	http_kit_set_shutting_down(api->kit);
	http_server_stop_listening(api->srv);
}

void
http_api_free(struct http_api **apip)
{
	struct http_api *api;

	if (apip == NULL || (api = *apip) == NULL)
		return;
	http_server_free(&api->srv);
	for (size_t i = 0; i < N_ROUTES; i++) {
		int shared = 0;

		for (size_t j = 0; j < i; j++)
			shared |= api->state[j] == api->state[i];
		if (api->state[i] != NULL && !shared)
			routes[i].state->state_free(api->state[i]);
	}
	http_kit_free(&api->kit);
	free(api);
	*apip = NULL;
}

unsigned long long
http_api_answered(void *arg)
{
	const struct http_api *api = arg;

	return api->srv != NULL ? http_server_answered(api->srv) : 0;
}
