/* The HTTP/1.1 server: one listener, connections with one read buffer (the head and body are
 * parsed where they arrive) and one write buffer (answers are copied in and leave with one
 * write per loop turn), deadlines swept once per tick instead of a timer per connection, and
 * the bounds that hold against one client: connections in total and per address (the oldest
 * idle connection gives way to a new one), accept errors backed off, slow heads cut. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "http_server.h"
#include "log.h"
#include "table.h"
#include "util.h"

/* Bytes read per call, and the first size of a read buffer. */
#define READ_CHUNK 4096
/* Buffers larger than this are freed when empty; smaller ones are kept for the next request. */
#define BUF_KEEP (4 * READ_CHUNK)
/* Input is not parsed further while this much output waits for a slow reader. */
#define OUT_HIGH (256 * 1024)
/* How often deadlines are checked. */
#define SWEEP_MS 250
/* After an answer that closes, the rest of the request is read and dropped for this long, so
 * that the close does not turn into a reset that destroys the answer in flight. */
#define LINGER_MS 2000
#define LINGER_BYTES (1024 * 1024)
/* Accepting pauses this long after EMFILE and the like; such errors are logged once per
 * interval. */
#define ACCEPT_PAUSE_MS 250
#define LOG_INTERVAL 10
/* Connections accepted per wake-up, and old connections looked at for one to close. */
#define ACCEPT_BATCH 64
#define EVICT_SCAN 32

enum conn_state {
	S_IDLE,        /* no byte of the next request yet */
	S_HEAD,        /* reading a head */
	S_BODY,        /* reading a body */
	S_DISPATCHED,  /* the handler has the request */
	S_LINGER,      /* answered and closing: dropping input */
};

struct client {
	unsigned char addr[17];   /* family byte + up to 16 address bytes */
	size_t count;
	struct http_conn *head, *tail;   /* its connections, oldest first */
};

/* A request keeps offsets into its connection's read buffer, never pointers: the buffer
 * grows (and moves) while a body arrives. Pointers are made by the accessors, for the handler,
 * while the buffer cannot move (S_DISPATCHED: in_reserve() does not grow it). */
struct http_req {
	struct http_conn *conn;
	struct http_head head;
	size_t body_len;
	void (*abort)(void *arg);
	void *abort_arg;
	int status;
	int close;
	int route;                  /* set by the handler, for the answer counts; 0: none */
};

struct http_conn {
	struct http_server *srv;
	struct http_conn *prev, *next;     /* all connections, least recently active first */
	struct http_conn *cprev, *cnext;   /* its client's connections */
	struct client *client;
	int fd;
	struct event *rev, *wev;
	int reading;                       /* rev is added */
	enum conn_state state;
	int64_t since;                     /* ms: when the current state's deadline started */
	int64_t out_since;                 /* ms: when output began to wait, or 0 */
	char *ibuf;
	size_t ilen, icap, scan;
	char *obuf;
	size_t olen, ooff, ocap;
	size_t body_at, raw_at, lingered;  /* body start; next raw byte of a chunked body */
	struct http_chunked chunk;
	int close_after, eof, in_dispatch;
	struct http_req req;
};

struct http_server {
	struct event_base *base;
	struct http_limits lim;
	http_handler handler;
	void *arg;
	int fd;
	struct event *lev, *sweep, *resume;
	int listening, paused;
	unsigned short port;
	struct http_conn *head, *tail;
	size_t count;
	struct table clients;
	uint64_t seed;
	time_t date_t;
	char date[30];
	struct log_limit accept_log, limit_log;   /* one line per LOG_INTERVAL each */
	unsigned long long answers[HTTP_ROUTES_MAX][HTTP_STATUS_MAX];   /* since start */
	unsigned long long accepted;
	unsigned long long answered;   /* answers begun, every route and status */
};

static int conn_process(struct http_conn *c);
static int conn_flush(struct http_conn *c);

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- clients by address ---- */

static uint64_t
client_hash(const void *key, uint64_t seed)
{
	const unsigned char *a = key;

	return table_fnv(TABLE_FNV_BASIS ^ seed, a, sizeof(((struct client *)0)->addr));
}

static int
client_match(const void *entry, const void *key)
{
	return memcmp(((const struct client *)entry)->addr, key,
	    sizeof(((struct client *)0)->addr)) == 0;
}

static const void *
client_key(const void *entry)
{
	return ((const struct client *)entry)->addr;
}

static void
client_addr(const struct sockaddr_storage *ss, unsigned char out[17])
{
	memset(out, 0, 17);
	out[0] = (unsigned char)ss->ss_family;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		/* An IPv4-mapped address counts as the IPv4 client it is. */
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			out[0] = AF_INET;
			memcpy(out + 1, a->s6_addr + 12, 4);
		} else {
			memcpy(out + 1, a->s6_addr, 16);
		}
	} else if (ss->ss_family == AF_INET) {
		memcpy(out + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

/* ---- connection lists ---- */

static void
list_unlink(struct http_conn *c)
{
	struct http_server *s = c->srv;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	c->prev = c->next = NULL;
}

static void
list_append(struct http_conn *c)
{
	struct http_server *s = c->srv;

	c->prev = s->tail;
	c->next = NULL;
	if (s->tail != NULL)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
}

static void
client_unlink(struct http_conn *c)
{
	struct client *cl = c->client;

	if (c->cprev != NULL)
		c->cprev->cnext = c->cnext;
	else
		cl->head = c->cnext;
	if (c->cnext != NULL)
		c->cnext->cprev = c->cprev;
	else
		cl->tail = c->cprev;
	c->cprev = c->cnext = NULL;
}

static void
client_append(struct http_conn *c)
{
	struct client *cl = c->client;

	c->cprev = cl->tail;
	c->cnext = NULL;
	if (cl->tail != NULL)
		cl->tail->cnext = c;
	else
		cl->head = c;
	cl->tail = c;
}

/* The connection was active: it goes to the end of the eviction order. */
static void
conn_touch(struct http_conn *c)
{
	list_unlink(c);
	list_append(c);
	client_unlink(c);
	client_append(c);
}

/* ---- closing ---- */

static void
conn_free(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct client *cl = c->client;

	if (c->state == S_DISPATCHED && c->req.abort != NULL) {
		void (*abort)(void *) = c->req.abort;

		c->req.abort = NULL;
		abort(c->req.abort_arg);
	}
	list_unlink(c);
	client_unlink(c);
	if (--cl->count == 0) {
		table_remove(&s->clients, cl->addr, s->seed);
		free(cl);
	}
	s->count--;
	event_free(c->rev);
	event_free(c->wev);
	close(c->fd);
	free(c->ibuf);
	free(c->obuf);
	free(c);
}

/* Whether the connection can give way to a new one: it holds no request that is being
 * answered (the handler has it, or its answer is still being written). */
static int
conn_evictable(const struct http_conn *c)
{
	return (c->state == S_IDLE || c->state == S_HEAD || c->state == S_LINGER) &&
	    c->olen == c->ooff;
}

static struct http_conn *
evict_candidate(struct http_conn *first, int per_client)
{
	struct http_conn *c = first;

	for (int i = 0; c != NULL && i < EVICT_SCAN; i++) {
		if (conn_evictable(c))
			return c;
		c = per_client ? c->cnext : c->next;
	}
	return NULL;
}

/* ---- writing ---- */

static int
out_reserve(struct http_conn *c, size_t n)
{
	size_t cap;
	char *p;

	if (c->ocap - c->olen >= n)
		return 0;
	if (c->ooff > 0) {
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
		if (c->ocap - c->olen >= n)
			return 0;
	}
	cap = c->ocap ? c->ocap : READ_CHUNK;
	while (cap - c->olen < n)
		cap *= 2;
	if ((p = realloc(c->obuf, cap)) == NULL)
		return -1;
	c->obuf = p;
	c->ocap = cap;
	return 0;
}

static void
out_add(struct http_conn *c, const void *p, size_t n)
{
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
}

#define OUT_LIT(c, s) out_add((c), (s), sizeof(s) - 1)

static void
conn_close_now(struct http_conn *c)
{
	conn_free(c);
}

/* The answer went out and the connection closes: stop writing, read and drop what the client
 * still sends until it closes too, so that our answer is not lost to a reset. Returns -1 (c
 * freed) or 0. */
static int
conn_linger(struct http_conn *c)
{
	if (c->eof || shutdown(c->fd, SHUT_WR) < 0) {
		conn_close_now(c);
		return -1;
	}
	c->state = S_LINGER;
	c->since = now_ms();
	c->ilen = 0;
	if (!c->reading) {
		event_add(c->rev, NULL);
		c->reading = 1;
	}
	return 0;
}

/* Writes what is buffered. Returns -1 when c was freed (error, or closed after its last
 * answer), else 0. */
static int
conn_flush(struct http_conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = write(c->fd, c->obuf + c->ooff, c->olen - c->ooff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (c->out_since == 0)
					c->out_since = now_ms();
				event_add(c->wev, NULL);
				return 0;
			}
			conn_close_now(c);
			return -1;
		}
		c->ooff += (size_t)n;
	}
	c->ooff = c->olen = 0;
	c->out_since = 0;
	if (c->ocap > BUF_KEEP) {
		free(c->obuf);
		c->obuf = NULL;
		c->ocap = 0;
	}
	if (c->state == S_DISPATCHED || c->state == S_LINGER)
		return 0;
	if (c->close_after)
		return conn_linger(c);
	return 0;
}

/* ---- answers ---- */

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Internal Server Error";
	}
}

size_t
http_u64(unsigned long long v, char *out)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
	return n;
}

static const char *
server_date(struct http_server *s, time_t *now)
{
	time_t t = time(NULL);

	if (t != s->date_t) {
		util_http_date(t, s->date);
		s->date_t = t;
	}
	if (now != NULL)
		*now = t;
	return s->date;
}

/* Room for a status line, Date, Connection and the framing headers. */
#define HEAD_FIXED 256

void
http_reply_begin(struct http_req *req, int status)
{
	struct http_conn *c = req->conn;
	struct http_server *s = c->srv;
	const char *reason = http_reason(status);
	char code[4];

	req->status = status;
	if (status >= 0 && status < HTTP_STATUS_MAX && req->route >= 0 && req->route < HTTP_ROUTES_MAX)
		s->answers[req->route][status]++;
	s->answered++;
	if (!req->head.keep_alive || !s->listening)
		req->close = 1;
	if (out_reserve(c, HEAD_FIXED + strlen(reason)) < 0) {
		req->close = 1;
		return;
	}
	code[0] = (char)('0' + status / 100 % 10);
	code[1] = (char)('0' + status / 10 % 10);
	code[2] = (char)('0' + status % 10);
	code[3] = ' ';
	OUT_LIT(c, "HTTP/1.1 ");
	out_add(c, code, 4);
	out_add(c, reason, strlen(reason));
	OUT_LIT(c, "\r\nDate: ");
	out_add(c, server_date(s, NULL), 29);
	if (req->close)
		OUT_LIT(c, "\r\nConnection: close\r\n");
	else if (req->head.minor == 0)
		OUT_LIT(c, "\r\nConnection: keep-alive\r\n");
	else
		OUT_LIT(c, "\r\n");
}

void
http_reply_header(struct http_req *req, const char *name, size_t name_len, const char *value,
    size_t value_len)
{
	struct http_conn *c = req->conn;

	if (out_reserve(c, name_len + value_len + 4) < 0)
		return;
	out_add(c, name, name_len);
	OUT_LIT(c, ": ");
	out_add(c, value, value_len);
	OUT_LIT(c, "\r\n");
}

void
http_reply_close(struct http_req *req)
{
	req->close = 1;
}

static void
request_done(struct http_conn *c)
{
	size_t used = c->raw_at;

	if (c->req.close)
		c->close_after = 1;
	/* The next request's bytes move to the front of the buffer. */
	if (used < c->ilen)
		memmove(c->ibuf, c->ibuf + used, c->ilen - used);
	c->ilen -= used < c->ilen ? used : c->ilen;
	c->scan = 0;
	c->raw_at = c->body_at = 0;
	c->state = S_IDLE;
	c->since = now_ms();
	memset(&c->req, 0, sizeof(c->req));
	conn_touch(c);
}

void
http_reply_end(struct http_req *req, const char *content_type, const void *body, size_t len)
{
	struct http_conn *c = req->conn;
	char num[24];
	size_t nlen = http_u64(len, num);
	int with_body = req->head.method != HTTP_HEAD && req->status != 304;

	if (out_reserve(c, HEAD_FIXED + (content_type ? strlen(content_type) : 0) +
	    (with_body ? len : 0)) < 0) {
		/* Out of memory mid-answer: the connection cannot continue. */
		c->olen = c->ooff = 0;
		c->req.close = 1;
	} else {
		if (content_type != NULL) {
			OUT_LIT(c, "Content-Type: ");
			out_add(c, content_type, strlen(content_type));
			OUT_LIT(c, "\r\n");
		}
		/* A 304 names no length: it would be the length of the representation. */
		if (req->status != 304) {
			OUT_LIT(c, "Content-Length: ");
			out_add(c, num, nlen);
			OUT_LIT(c, "\r\n");
		}
		OUT_LIT(c, "\r\n");
		if (with_body && len > 0)
			out_add(c, body, len);
	}
	request_done(c);
	/* Answered later than the call that dispatched it: write and go on from the loop. */
	if (!c->in_dispatch)
		event_active(c->wev, EV_WRITE, 1);
}

void
http_reply(struct http_req *req, int status, const char *headers, const char *content_type,
    const void *body, size_t len)
{
	struct http_conn *c = req->conn;

	http_reply_begin(req, status);
	if (headers != NULL && out_reserve(c, strlen(headers)) == 0)
		out_add(c, headers, strlen(headers));
	http_reply_end(req, content_type, body, len);
}

/* An error found by the server itself; the connection closes after it when it cannot
 * continue (the request's framing is unknown). */
static void
conn_error(struct http_conn *c, int status, const char *why, int close)
{
	char body[192];
	int n;

	n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
	if (n < 0 || (size_t)n >= sizeof(body))
		n = 0;
	c->req.conn = c;
	c->req.head.keep_alive = c->req.head.keep_alive && !close;
	if (close) {
		c->req.head.keep_alive = 0;
		c->raw_at = c->ilen;
	}
	c->in_dispatch = 1;
	http_reply(&c->req, status, "Cache-Control: no-store\r\n", "application/json", body,
	    (size_t)n);
	c->in_dispatch = 0;
}

/* ---- requests ---- */

enum http_method
http_req_method(const struct http_req *req)
{
	return req->head.method;
}

const unsigned char *
http_req_client(const struct http_req *req)
{
	return req->conn->client->addr;
}

const char *
http_req_path(const struct http_req *req, size_t *len)
{
	return http_head_path(&req->head, req->conn->ibuf, len);
}

const unsigned char *
http_req_body(const struct http_req *req, size_t *len)
{
	*len = req->body_len;
	return req->body_len > 0 ? (const unsigned char *)req->conn->ibuf + req->conn->body_at :
	    NULL;
}

const char *
http_req_if_none_match(const struct http_req *req, size_t *len)
{
	return http_head_if_none_match(&req->head, req->conn->ibuf, len);
}

const char *
http_req_date(struct http_req *req, time_t *now)
{
	return server_date(req->conn->srv, now);
}

void
http_req_on_abort(struct http_req *req, void (*abort)(void *arg), void *arg)
{
	req->abort = abort;
	req->abort_arg = arg;
}

static void
dispatch(struct http_conn *c)
{
	struct http_server *s = c->srv;

	c->state = S_DISPATCHED;
	/* Busy connections go to the end, so the oldest ones, looked at for eviction, are idle. */
	conn_touch(c);
	c->req.conn = c;
	c->in_dispatch = 1;
	s->handler(&c->req, s->arg);
	c->in_dispatch = 0;
}

/* Makes room to read: the buffer grows up to what one head and one body need. */
static int
in_reserve(struct http_conn *c)
{
	const struct http_limits *l = &c->srv->lim;
	size_t want, cap;
	char *p;

	if (c->icap - c->ilen >= READ_CHUNK / 4)
		return 1;
	/* While the handler holds the request, pointers into the buffer must stay valid. */
	if (c->state == S_DISPATCHED)
		return c->icap > c->ilen;
	want = c->ilen + READ_CHUNK;
	if (want > l->max_head + l->max_body + 2 * READ_CHUNK)
		return c->icap > c->ilen;
	cap = c->icap ? c->icap : READ_CHUNK;
	while (cap < want)
		cap *= 2;
	if ((p = realloc(c->ibuf, cap)) == NULL)
		return c->icap > c->ilen;
	c->ibuf = p;
	c->icap = cap;
	return 1;
}

/* Finds the blank line ending the head; returns its end offset or 0. */
static size_t
head_end(struct http_conn *c)
{
	size_t i = c->scan > 3 ? c->scan - 3 : 0;

	for (; i + 3 < c->ilen; i++) {
		if (c->ibuf[i] == '\r' && c->ibuf[i + 1] == '\n' && c->ibuf[i + 2] == '\r' &&
		    c->ibuf[i + 3] == '\n')
			return i + 4;
	}
	c->scan = c->ilen;
	return 0;
}

/* Parses and dispatches what the buffer holds, then writes. Returns -1 when c was freed. */
static int
conn_process(struct http_conn *c)
{
	struct http_server *s = c->srv;
	const struct http_limits *l = &s->lim;

	while (c->state != S_DISPATCHED && c->state != S_LINGER && !c->close_after) {
		/* Many answers queued: write them before parsing more; if the client does not
		 * take them, go on when it does (on_write). */
		if (c->olen - c->ooff >= OUT_HIGH) {
			if (conn_flush(c) < 0)
				return -1;
			if (c->olen - c->ooff >= OUT_HIGH)
				break;
		}
		if (c->state == S_IDLE) {
			if (c->ilen == 0) {
				/* A large body grew the buffer: give it back while the connection idles. */
				if (c->icap > BUF_KEEP) {
					free(c->ibuf);
					c->ibuf = NULL;
					c->icap = 0;
				}
				break;
			}
			c->state = S_HEAD;
			c->since = now_ms();
		}
		if (c->state == S_HEAD) {
			size_t end = head_end(c), view;
			enum http_parse_result r;
			const char *why;
			int status, cut;

			if (end == 0 && c->ilen <= l->max_head)
				break;
			/* A head over the bound is judged by its first max_head + 1 bytes alone, so
			 * the verdict does not depend on how many bytes one read brought. */
			view = end != 0 ? end : c->ilen;
			if ((cut = view > l->max_head))
				view = l->max_head + 1;
			r = http_parse_head(c->ibuf, view, l->max_head, &c->req.head, &status, &why);
			if (r == HTTP_PARSE_INCOMPLETE && end != 0 && !cut) {
				/* Only empty lines so far: drop them. */
				memmove(c->ibuf, c->ibuf + end, c->ilen - end);
				c->ilen -= end;
				c->scan = 0;
				continue;
			}
			if (r == HTTP_PARSE_INCOMPLETE)
				r = HTTP_PARSE_ERROR, status = 431, why = "request header too large";
			if (r == HTTP_PARSE_ERROR) {
				conn_error(c, status, why, 1);
				break;
			}
			if (c->req.head.content_length > l->max_body) {
				conn_error(c, 413, "request body too large", 1);
				break;
			}
			c->body_at = c->raw_at = c->req.head.head_len;
			c->req.body_len = 0;
			memset(&c->chunk, 0, sizeof(c->chunk));
			c->state = S_BODY;
			if (c->req.head.expect_continue && (c->req.head.chunked ||
			    c->ilen < c->body_at + c->req.head.content_length) &&
			    out_reserve(c, 32) == 0)
				OUT_LIT(c, "HTTP/1.1 100 Continue\r\n\r\n");
		}
		if (c->req.head.chunked) {
			size_t used, rest;
			int status;
			enum http_parse_result r = http_chunked_decode(&c->chunk, c->ibuf + c->raw_at,
			    c->ilen - c->raw_at, c->ibuf + c->body_at, &c->req.body_len, l->max_body,
			    &used, &status);

			/* Keep the raw remainder right behind the decoded body. */
			rest = c->ilen - c->raw_at - used;
			memmove(c->ibuf + c->body_at + c->req.body_len, c->ibuf + c->raw_at + used, rest);
			c->raw_at = c->body_at + c->req.body_len;
			c->ilen = c->raw_at + rest;
			if (r == HTTP_PARSE_ERROR) {
				conn_error(c, status, status == 413 ? "request body too large" :
				    "malformed chunked body", 1);
				break;
			}
			if (r == HTTP_PARSE_INCOMPLETE)
				break;
		} else {
			if (c->ilen - c->body_at < c->req.head.content_length)
				break;
			c->req.body_len = (size_t)c->req.head.content_length;
			c->raw_at = c->body_at + c->req.body_len;
		}
		dispatch(c);
	}
	if (c->eof && c->state == S_DISPATCHED) {
		/* The client half-closed before this request's answer: it is gone. */
		conn_close_now(c);
		return -1;
	}
	if (conn_flush(c) < 0)
		return -1;
	/* Half-closed and every complete request answered: nothing more can come. */
	if (c->eof && c->olen == c->ooff && c->state != S_LINGER) {
		conn_close_now(c);
		return -1;
	}
	return 0;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	ssize_t n;

	if (c->state == S_LINGER) {
		char drop[READ_CHUNK];

		n = read(fd, drop, sizeof(drop));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
		    (c->lingered += n > 0 ? (size_t)n : 0) > LINGER_BYTES)
			conn_close_now(c);
		return;
	}
	if (!in_reserve(c)) {
		/* Full while the handler works: read again once it answered. */
		event_del(c->rev);
		c->reading = 0;
		return;
	}
	n = read(fd, c->ibuf + c->ilen, c->icap - c->ilen);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close_now(c);
		return;
	}
	if (n == 0) {
		event_del(c->rev);
		c->reading = 0;
		c->eof = 1;
		/* A client that left while its request waits: the wait is cancelled now. */
		if (c->state == S_DISPATCHED) {
			conn_close_now(c);
			return;
		}
		(void)conn_process(c);
		return;
	}
	c->ilen += (size_t)n;
	if (c->state != S_DISPATCHED)
		(void)conn_process(c);
}

/* Output drained, or an answer given later: write, then go on with the next request. */
static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	if (c->ooff < c->olen && (conn_flush(c) < 0 || c->ooff < c->olen))
		return;
	if (c->state == S_LINGER)
		return;
	if (!c->reading && !c->eof) {
		event_add(c->rev, NULL);
		c->reading = 1;
	}
	(void)conn_process(c);
}

/* ---- deadlines ---- */

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	const struct http_limits *l = &s->lim;
	int64_t now = now_ms();
	struct http_conn *c = s->head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (c->out_since != 0 && now - c->out_since > l->request_timeout * 1000) {
			conn_close_now(c);   /* the client does not read its answers */
			continue;
		}
		switch (c->state) {
		case S_IDLE:
			if (now - c->since > l->idle_timeout * 1000 || (c->eof && c->olen == c->ooff))
				conn_close_now(c);
			break;
		case S_HEAD:
			if (c->eof) {
				conn_close_now(c);
			} else if (now - c->since > l->header_timeout * 1000) {
				conn_error(c, 408, "request header not received in time", 1);
				(void)conn_flush(c);
			}
			break;
		case S_BODY:
			if (c->eof) {
				conn_close_now(c);
			} else if (now - c->since > l->request_timeout * 1000) {
				conn_error(c, 408, "request not received in time", 1);
				(void)conn_flush(c);
			}
			break;
		case S_LINGER:
			if (now - c->since > LINGER_MS)
				conn_close_now(c);
			break;
		case S_DISPATCHED:
			break;
		}
	}
}

/* ---- accepting ---- */

static void
refuse(struct http_server *s, int fd, const char *why)
{
	static const char body[] = "{\"error\":\"too many open connections\"}\n";
	char out[320];
	unsigned long left_out;
	int n;

	n = snprintf(out, sizeof(out), "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\n"
	    "Content-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n"
	    "Content-Length: %zu\r\n\r\n%s", server_date(s, NULL), sizeof(body) - 1, body);
	/* A best effort: one write into a fresh socket buffer, then the close. */
	if (n > 0 && (size_t)n < sizeof(out) && write(fd, out, (size_t)n) < 0)
		n = 0;
	close(fd);
	if (log_limit_allow(&s->limit_log, (long long)time(NULL), &left_out))
		log_warn("connection_refused", "reason=%s suppressed=%lu", why, left_out);
}

static void
pause_accepting(struct http_server *s, int err)
{
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	unsigned long left_out;

	if (log_limit_allow(&s->accept_log, (long long)time(NULL), &left_out))
		log_warn("accept_failed", "error=\"%s\" pause_ms=%d suppressed=%lu", strerror(err),
		    ACCEPT_PAUSE_MS, left_out);
	event_del(s->lev);
	s->paused = 1;
	evtimer_add(s->resume, &tv);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	s->paused = 0;
	if (s->listening)
		event_add(s->lev, NULL);
}

static struct client *
client_get(struct http_server *s, const struct sockaddr_storage *ss)
{
	unsigned char addr[17];
	struct client *cl;
	void *old;

	client_addr(ss, addr);
	if ((cl = table_get(&s->clients, addr, s->seed)) != NULL)
		return cl;
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	memcpy(cl->addr, addr, sizeof(addr));
	if (table_put(&s->clients, cl, s->seed, &old) < 0) {
		free(cl);
		return NULL;
	}
	return cl;
}

static int
accept_one(struct http_server *s, int fd, const struct sockaddr_storage *ss)
{
	struct http_conn *c, *victim;
	struct client *cl;
	int one = 1;

	if ((cl = client_get(s, ss)) == NULL) {
		close(fd);
		return -1;
	}
	/* At a bound, the oldest idle connection (of this client, or of anyone) gives way; when
	 * none can, the new one is refused. */
	if (cl->count >= s->lim.max_per_client) {
		if ((victim = evict_candidate(cl->head, 1)) == NULL) {
			if (cl->count == 0) {
				table_remove(&s->clients, cl->addr, s->seed);
				free(cl);
			}
			refuse(s, fd, "per_client_limit");
			return -1;
		}
		conn_close_now(victim);
		/* The client record may have gone with its last connection. */
		if ((cl = client_get(s, ss)) == NULL) {
			close(fd);
			return -1;
		}
	}
	if (s->count >= s->lim.max_connections) {
		if ((victim = evict_candidate(s->head, 0)) == NULL) {
			if (cl->count == 0) {
				table_remove(&s->clients, cl->addr, s->seed);
				free(cl);
			}
			refuse(s, fd, "connection_limit");
			return -1;
		}
		conn_close_now(victim);
		if ((cl = client_get(s, ss)) == NULL) {
			close(fd);
			return -1;
		}
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->srv = s;
	c->fd = fd;
	c->client = cl;
	c->state = S_IDLE;
	c->since = now_ms();
	if ((c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c)) == NULL ||
	    (c->wev = event_new(s->base, fd, EV_WRITE, on_write, c)) == NULL ||
	    event_add(c->rev, NULL) < 0) {
		if (c->rev != NULL)
			event_free(c->rev);
		if (c->wev != NULL)
			event_free(c->wev);
		free(c);
		goto fail;
	}
	c->reading = 1;
	/* Answers are written whole; do not hold the last segment back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	cl->count++;
	s->count++;
	list_append(c);
	client_append(c);
	return 0;
fail:
	if (cl->count == 0) {
		table_remove(&s->clients, cl->addr, s->seed);
		free(cl);
	}
	close(fd);
	return -1;
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct http_server *s = arg;

	for (int i = 0; i < ACCEPT_BATCH && s->listening && !s->paused; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener stays readable, so pause it
			 * instead of spinning on it. */
			pause_accepting(s, errno);
			return;
		}
		s->accepted++;
		(void)accept_one(s, fd, &ss);
	}
}

static int
listen_on(const char *host, unsigned short port, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char ports[8];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(ports, sizeof(ports), "%u", port);
	if ((rc = getaddrinfo(host[0] != '\0' ? host : NULL, ports, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol)) < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		snprintf(err, errlen, "cannot listen on %s:%u: %s", host, port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

struct http_server *
http_server_new(struct event_base *base, const char *host, unsigned short port,
    const struct http_limits *lim, http_handler handler, void *arg, char *err, size_t errlen)
{
	struct http_server *s = calloc(1, sizeof(*s));
	struct timeval tick = { 0, SWEEP_MS * 1000 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->handler = handler;
	s->arg = arg;
	s->fd = -1;
	s->accept_log = LOG_LIMIT_ONCE_PER(LOG_INTERVAL);
	s->limit_log = LOG_LIMIT_ONCE_PER(LOG_INTERVAL);
	s->clients.hash = client_hash;
	s->clients.match = client_match;
	s->clients.key_of = client_key;
	s->seed = table_seed();
	http_server_set_limits(s, lim);
	if ((s->fd = listen_on(host, port, err, errlen)) < 0)
		goto fail;
	if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	if ((s->lev = event_new(base, s->fd, EV_READ | EV_PERSIST, on_accept, s)) == NULL ||
	    (s->sweep = event_new(base, -1, EV_PERSIST, on_sweep, s)) == NULL ||
	    (s->resume = evtimer_new(base, on_resume, s)) == NULL ||
	    event_add(s->lev, NULL) < 0 || event_add(s->sweep, &tick) < 0) {
		snprintf(err, errlen, "cannot add the listener to the event loop");
		goto fail;
	}
	s->listening = 1;
	return s;
fail:
	http_server_free(&s);
	return NULL;
}

int
http_server_adopt(struct http_server *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fl;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNIX;
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	s->accepted++;
	return accept_one(s, fd, &ss);
}

void
http_server_set_limits(struct http_server *s, const struct http_limits *lim)
{
	s->lim = *lim;
	if (s->lim.max_connections == 0)
		s->lim.max_connections = 1;
	if (s->lim.max_per_client == 0)
		s->lim.max_per_client = 1;
}

unsigned short
http_server_port(const struct http_server *s)
{
	return s->port;
}

size_t
http_server_connections(const struct http_server *s)
{
	return s->count;
}

void
http_server_stop_listening(struct http_server *s)
{
	struct http_conn *c, *next;

	s->listening = 0;
	if (s->lev != NULL)
		event_del(s->lev);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	/* Idle connections close now; the others after their answer (Connection: close). */
	for (c = s->head; c != NULL; c = next) {
		next = c->next;
		if (c->state == S_IDLE && c->ilen == 0 && c->olen == c->ooff)
			conn_close_now(c);
		else
			c->req.close = c->state == S_DISPATCHED ? 1 : c->req.close;
	}
}

void
http_server_free(struct http_server **sp)
{
	struct http_server *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	s->listening = 0;
	while (s->head != NULL)
		conn_free(s->head);
	if (s->lev != NULL)
		event_free(s->lev);
	if (s->sweep != NULL)
		event_free(s->sweep);
	if (s->resume != NULL)
		event_free(s->resume);
	if (s->fd >= 0)
		close(s->fd);
	table_clear(&s->clients, 1);
	free(s);
	*sp = NULL;
}

void
http_req_set_route(struct http_req *req, int route)
{
	req->route = route >= 0 && route < HTTP_ROUTES_MAX ? route : 0;
}

unsigned long long
http_server_answers(const struct http_server *srv, int route, int status)
{
	if (route < 0 || route >= HTTP_ROUTES_MAX || status < 0 || status >= HTTP_STATUS_MAX)
		return 0;
	return srv->answers[route][status];
}

unsigned long long
http_server_accepted(const struct http_server *srv)
{
	return srv->accepted;
}

unsigned long long
http_server_answered(const struct http_server *srv)
{
	return srv->answered;
}
