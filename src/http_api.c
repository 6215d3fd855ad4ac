/* The HTTP API on evhttp: POST /v1/staple and GET /healthz, RFC 5019 caching headers, 304 on
 * If-None-Match, and JSON errors with the status codes of PRODUCT.md §5. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fetch.h"
#include "http_api.h"
#include "http_routes.h"
#include "staple.h"
#include "config.h"
#include "log.h"
#include "store.h"

struct http_api {
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	const struct stapler_config *cfg;
	struct staple_service *svc;
	struct store *store;
	struct fetcher *fetch;
	unsigned short port;
	int shutting_down;
	size_t waiting;
};


static void
json_string(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			evbuffer_add_printf(out, "\\u%04x", *p);
		else
			evbuffer_add(out, p, 1);
	}
	evbuffer_add(out, "\"", 1);
}

static const char *
reason_phrase(int code)
{
	switch (code) {
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static void
send_error(struct evhttp_request *req, int code, const char *msg)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (out != NULL) {
		evbuffer_add_printf(out, "{\"error\":");
		json_string(out, msg);
		evbuffer_add_printf(out, "}\n");
	}
	evhttp_send_reply(req, code, reason_phrase(code), out);
	if (out != NULL)
		evbuffer_free(out);
}

/* 1 when an If-None-Match list names etag (or is "*"); weak validators compare too. */
static int
etag_matches(const char *inm, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = inm;

	while (*p != '\0') {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		len = strcspn(p, ", \t");
		if ((len == 1 && *p == '*') || (len == elen && memcmp(p, etag, elen) == 0))
			return 1;
		p += len;
	}
	return 0;
}

static void
send_staple(struct evhttp_request *req, const struct staple *s, time_t now)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	char cc[96];
	struct evbuffer *out;

	snprintf(cc, sizeof(cc), "max-age=%ld, public, no-transform, must-revalidate",
	    staple_max_age(s, now));
	evhttp_add_header(h, "Cache-Control", cc);
	evhttp_add_header(h, "Last-Modified", s->last_modified);
	evhttp_add_header(h, "Expires", s->expires);
	evhttp_add_header(h, "ETag", s->etag);
	if (inm != NULL && etag_matches(inm, s->etag)) {
		evhttp_send_reply(req, 304, reason_phrase(304), NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", "application/ocsp-response");
	if ((out = evbuffer_new()) == NULL || evbuffer_add(out, s->der, s->der_len) < 0) {
		if (out != NULL)
			evbuffer_free(out);
		send_error(req, 503, "out of memory");
		return;
	}
	evhttp_send_reply(req, 200, reason_phrase(200), out);
	evbuffer_free(out);
}

struct http_wait *
http_wait_new(struct http_api *api, struct evhttp_request *req)
{
	struct http_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->api = api;
	w->req = req;
	return w;
}

static void
on_wait_client_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_wait *w = arg;

	/* The client left before its answer: drop its callback, keep the fetch. */
	w->cancel(w->handle);
	w->api->waiting--;
	free(w);
}

void
http_wait_start(struct http_wait *w, void *handle, void (*cancel)(void *handle))
{
	if (handle == NULL) {
		/* Answered already (memory hit or refusal). */
		free(w);
		return;
	}
	w->handle = handle;
	w->cancel = cancel;
	w->api->waiting++;
	evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), on_wait_client_close, w);
}

int
http_wait_detach(struct http_wait *w)
{
	if (w->handle == NULL)
		return 0;
	evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
	w->api->waiting--;
	return 1;
}

int
http_api_body(struct http_api *api, struct evhttp_request *req, unsigned char **body,
    size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	char msg[96];

	*body = NULL;
	if ((*len = evbuffer_get_length(in)) > api->cfg->max_request) {
		snprintf(msg, sizeof(msg), "request body larger than %zu bytes", api->cfg->max_request);
		send_error(req, 413, msg);
		return -1;
	}
	if (*len > 0)
		*body = evbuffer_pullup(in, -1);
	return 0;
}

static void
cancel_staple(void *handle)
{
	staple_wait_cancel(handle);
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_wait *w = arg;
	int started = http_wait_detach(w);

	if (outcome == STAPLE_OK)
		send_staple(w->req, s, time(NULL));
	else
		send_error(w->req, staple_outcome_http(outcome), error);
	if (started)
		free(w);
}

static void
handle_staple(struct http_api *api, struct evhttp_request *req)
{
	unsigned char *body;
	struct http_wait *w;
	size_t len;

	if (http_api_body(api, req, &body, &len) < 0)
		return;
	if (len == 0) {
		send_error(req, 400, "empty body: send a PEM chain or a DER certificate");
		return;
	}
	if (body == NULL || (w = http_wait_new(api, req)) == NULL) {
		send_error(req, 503, "out of memory");
		return;
	}
	http_wait_start(w, staple_submit(api->svc, body, len, time(NULL), on_staple, w),
	    cancel_staple);
}

static void
handle_healthz(struct http_api *api, struct evhttp_request *req)
{
	struct evbuffer *out = evbuffer_new();
	int code = api->shutting_down ? 503 : 200;
	size_t by[3];

	if (out == NULL) {
		send_error(req, 503, "out of memory");
		return;
	}
	store_count_status(api->store, by);
	evbuffer_add_printf(out,
	    "{\"status\":\"%s\",\"staples\":%zu,\"good\":%zu,\"revoked\":%zu,\"unknown\":%zu,"
	    "\"fetching\":%zu,\"fetch_queue\":%zu,\"waiting_clients\":%zu}\n",
	    api->shutting_down ? "shutting_down" : "ok", store_count(api->store), by[STAPLER_GOOD],
	    by[STAPLER_REVOKED], by[STAPLER_UNKNOWN], fetch_active(api->fetch), fetch_queued(api->fetch),
	    api->waiting);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason_phrase(code), out);
	evbuffer_free(out);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct http_api *api = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (path == NULL) {
		send_error(req, 400, "bad request URI");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
			send_error(req, 405, "use GET");
		else
			handle_healthz(api, req);
		return;
	}
	if (api->shutting_down) {
		send_error(req, 503, "shutting down");
		return;
	}
	if (strcmp(path, "/v1/staples") == 0) {
		if (cmd != EVHTTP_REQ_POST) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
			send_error(req, 405, "use POST");
		} else {
			http_staples_handle(api, req);
		}
		return;
	}
	if (strcmp(path, "/ocsp") == 0 || strncmp(path, "/ocsp/", 6) == 0) {
		http_ocsp_handle(api, req, path);
		return;
	}
	if (strcmp(path, "/v1/staple") == 0) {
		if (cmd != EVHTTP_REQ_POST) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
			send_error(req, 405, "use POST");
		} else {
			handle_staple(api, req);
		}
		return;
	}
	send_error(req, 404, "no such resource");
}

struct http_api *
http_api_new(struct event_base *base, const struct stapler_config *cfg, struct staple_service *svc,
    struct store *store, struct fetcher *fetch, char *err, size_t errlen)
{
	struct http_api *api = calloc(1, sizeof(*api));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256];
	unsigned short port;

	if (api == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	api->cfg = cfg;
	api->svc = svc;
	api->store = store;
	api->fetch = fetch;
	if (config_split_listen(cfg->listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "listen: not host:port: %s", cfg->listen);
		goto fail;
	}
	if ((api->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		goto fail;
	}
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	http_api_set_config(api, cfg);
	evhttp_set_max_headers_size(api->http, 16 * 1024);
	evhttp_set_timeout(api->http, HTTP_TIMEOUT_SECONDS);
	evhttp_set_gencb(api->http, on_request, api);
	if ((api->sock = evhttp_bind_socket_with_handle(api->http, host, port)) == NULL) {
		snprintf(err, errlen, "cannot listen on %s", cfg->listen);
		goto fail;
	}
	if (getsockname(evhttp_bound_socket_get_fd(api->sock), (struct sockaddr *)&ss, &sl) == 0)
		api->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	log_info("listening", "addr=%s port=%u", host, api->port);
	return api;
fail:
	http_api_free(&api);
	return NULL;
}

void
http_api_set_config(struct http_api *api, const struct stapler_config *cfg)
{
	size_t hard = cfg->max_request * HTTP_BODY_HARD_FACTOR;

	api->cfg = cfg;
	/* Bodies up to the hard cap are read and answered with our JSON 413; beyond it evhttp
	 * refuses them itself without buffering. */
	evhttp_set_max_body_size(api->http, (ev_ssize_t)(hard < 1024 * 1024 ? 1024 * 1024 : hard));
}

void
http_api_send_staple(struct evhttp_request *req, const struct staple *s, time_t now)
{
	send_staple(req, s, now);
}

void
http_api_send_error(struct evhttp_request *req, int code, const char *msg)
{
	send_error(req, code, msg);
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
	return api->port;
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
	if (api->sock != NULL) {
		evhttp_del_accept_socket(api->http, api->sock);
		api->sock = NULL;
	}
}

void
http_api_free(struct http_api **apip)
{
	struct http_api *api;

	if (apip == NULL || (api = *apip) == NULL)
		return;
	if (api->http != NULL)
		evhttp_free(api->http);
	free(api);
	*apip = NULL;
}
