/* The HTTP/1.1 server on libevent: listener, connections with their read and write buffers,
 * keep-alive and pipelining (answers in order), deadlines, and the limits one client cannot
 * push past. Requests are parsed by http_parse.c; answers are written with one write each. */
#ifndef STAPLER_HTTP_SERVER_H
#define STAPLER_HTTP_SERVER_H

#include <stddef.h>
#include <time.h>

#include "http_parse.h"

struct event_base;
struct http_server;
struct http_req;

struct http_limits {
	size_t max_connections;      /* open connections in total */
	size_t max_per_client;       /* open connections per client address */
	size_t max_head;             /* bytes of a request head */
	size_t max_body;             /* bytes of a request body; more gets 413 */
	long long header_timeout;    /* seconds from a request's first byte to its head's end: 408 */
	long long request_timeout;   /* seconds from a request's first byte to its body's end: 408 */
	long long idle_timeout;      /* seconds without a request before the connection is closed */
};

/* Called once per request, in order per connection. The handler answers now or later with
 * http_reply_begin() … http_reply_end(); until then the connection reads no further request. */
typedef void (*http_handler)(struct http_req *req, void *arg);

/* Listens on host:port. Returns NULL with err set when it cannot. */
struct http_server *http_server_new(struct event_base *base, const char *host,
    unsigned short port, const struct http_limits *lim, http_handler handler, void *arg,
    char *err, size_t errlen);
/* Closes every connection (aborting unanswered requests) and the listener. */
void http_server_free(struct http_server **srv);
/* Serves a connected socket as if the listener had accepted it (a socketpair in the tests
 * and fuzz harnesses that drive the read path). The server owns fd from here, also on
 * failure (-1). */
int http_server_adopt(struct http_server *srv, int fd);
void http_server_set_limits(struct http_server *srv, const struct http_limits *lim);
unsigned short http_server_port(const struct http_server *srv);
/* Stops accepting; open connections close after their current answer. */
void http_server_stop_listening(struct http_server *srv);
size_t http_server_connections(const struct http_server *srv);

/* Answers are counted by route (a small number the handler sets with http_req_set_route();
 * 0 is the server's own, before any route) and status code, since the start. */
#define HTTP_ROUTES_MAX 10
#define HTTP_STATUS_MAX 600
void http_req_set_route(struct http_req *req, int route);
unsigned long long http_server_answers(const struct http_server *srv, int route, int status);
/* Connections accepted since the start. */
unsigned long long http_server_accepted(const struct http_server *srv);
/* Answers given since the start, every route and status. */
unsigned long long http_server_answered(const struct http_server *srv);

enum http_method http_req_method(const struct http_req *req);
/* The client's address: 17 bytes, a family byte then the address (an IPv4-mapped IPv6
 * address as the IPv4 one); valid until the answer is given. */
const unsigned char *http_req_client(const struct http_req *req);
/* The path (no query), not NUL-terminated; valid until the answer is given. */
const char *http_req_path(const struct http_req *req, size_t *len);
/* The body (NULL when empty); valid until the answer is given. */
const unsigned char *http_req_body(const struct http_req *req, size_t *len);
/* If-None-Match, or NULL; valid until the answer is given. */
const char *http_req_if_none_match(const struct http_req *req, size_t *len);
/* The current time and its IMF-fixdate (what Date says), formatted once per second. */
const char *http_req_date(struct http_req *req, time_t *now);
/* abort(arg) runs if the connection closes before the answer: the client left. */
void http_req_on_abort(struct http_req *req, void (*abort)(void *arg), void *arg);

/* An answer: status line, Date, Connection; then any headers; then http_reply_end() adds
 * Content-Type (when not NULL) and Content-Length, and the body unless the request was HEAD
 * or the status is 304. After http_reply_end() req must not be used. */
void http_reply_begin(struct http_req *req, int status);
void http_reply_header(struct http_req *req, const char *name, size_t name_len,
    const char *value, size_t value_len);
void http_reply_end(struct http_req *req, const char *content_type, const void *body,
    size_t len);
/* The connection closes after this answer. */
void http_reply_close(struct http_req *req);
/* An answer in one call; headers is preformatted ("Name: value\r\n"…) or NULL. */
void http_reply(struct http_req *req, int status, const char *headers, const char *content_type,
    const void *body, size_t len);

/* Helpers for the answer writers. */
const char *http_reason(int status);
/* Decimal digits of v into out (at least 21 bytes); returns the length. */
size_t http_u64(unsigned long long v, char *out);

#endif
