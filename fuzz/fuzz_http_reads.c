/* Fuzz harness: the real HTTP server's read path (http_server.c on_read, buffer growth, the
 * parser and the chunked decoder in place), with the fuzzer choosing where the bytes are cut
 * into reads. The input is a cut script then the stream:
 *   byte 0: n, the number of piece lengths that follow (n % 16);
 *   bytes 1..n: piece lengths (1 + byte * 4 bytes each), used in turn, round and round;
 *   the rest: the bytes a client sends (one request or several pipelined).
 * The stream goes into a socketpair that the server adopts, once whole and once in the pieces,
 * with the event loop run after each piece so that each is a read of its own. The handler
 * echoes what it was handed (path, If-None-Match, body), answering paths that start with
 * "/later" from a later loop turn. The two transcripts must be equal: a request is read the
 * same however the network splits it (docs/contract.md §8.10). */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "fuzzpki.h"
#include "http_server.h"

#define FUZZ_STREAM_MAX 32768
#define FUZZ_OUT_MAX (1024 * 1024)
#define FUZZ_TURNS 64

static struct event_base *base;
static struct http_server *srv;
static char echo_buf[FUZZ_STREAM_MAX + 256];

struct later {
	struct event *ev;
	struct http_req *req;
};

static void
echo(struct http_req *req)
{
	const char *path, *inm;
	const unsigned char *body;
	size_t plen, ilen, blen;
	int n;

	path = http_req_path(req, &plen);
	inm = http_req_if_none_match(req, &ilen);
	body = http_req_body(req, &blen);
	n = snprintf(echo_buf, sizeof(echo_buf), "%d %.*s|%.*s|%zu\n", (int)http_req_method(req),
	    (int)plen, path, inm != NULL ? (int)ilen : 1, inm != NULL ? inm : "-", blen);
	fuzz_check(n > 0 && (size_t)n + blen <= sizeof(echo_buf), "echo bounds");
	if (blen > 0)
		memcpy(echo_buf + n, body, blen);
	http_reply(req, 200, NULL, "text/plain", echo_buf, (size_t)n + blen);
}

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	struct http_req *req = l->req;

	http_req_on_abort(req, NULL, NULL);
	event_free(l->ev);
	free(l);
	echo(req);
}

/* The client left before the later answer: the request is gone, so is the answer. */
static void
on_abort(void *arg)
{
	struct later *l = arg;

	event_free(l->ev);
	free(l);
}

static void
handler(struct http_req *req, void *arg)
{
	struct timeval zero = { 0, 0 };
	struct later *l;
	size_t plen;
	const char *path = http_req_path(req, &plen);

	if (plen >= 6 && memcmp(path, "/later", 6) == 0 && (l = calloc(1, sizeof(*l))) != NULL) {
		l->req = req;
		if ((l->ev = evtimer_new(base, on_later, l)) != NULL && evtimer_add(l->ev, &zero) == 0) {
			http_req_on_abort(req, on_abort, l);
			return;
		}
		if (l->ev != NULL)
			event_free(l->ev);
		free(l);
	}
	echo(req);
}

static void
init(void)
{
	struct http_limits lim = {
		.max_connections = 8, .max_per_client = 8, .max_head = 4096, .max_body = 12288,
		.header_timeout = 3600, .request_timeout = 3600, .idle_timeout = 3600,
	};
	char err[256];

	if (base != NULL)
		return;
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	srv = http_server_new(base, "127.0.0.1", 0, &lim, handler, NULL, err, sizeof(err));
	fuzz_check(base != NULL && srv != NULL, "server start");
}

struct transcript {
	char *p;
	size_t len;
	int closed;
};

/* Runs the loop and takes what the server wrote, until a few turns bring nothing new. */
static void
settle(int fd, struct transcript *t)
{
	int quiet = 0;

	for (int i = 0; i < FUZZ_TURNS && quiet < 3 && !t->closed; i++) {
		char buf[16384];
		ssize_t n;
		int got = 0;

		event_base_loop(base, EVLOOP_NONBLOCK);
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			size_t take = (size_t)n;

			if (take > FUZZ_OUT_MAX - t->len)
				take = FUZZ_OUT_MAX - t->len;
			memcpy(t->p + t->len, buf, take);
			t->len += take;
			got = 1;
		}
		if (n == 0)
			t->closed = 1;
		quiet = got ? 0 : quiet + 1;
	}
}

/* What may differ with the timing of the reads and is not part of an answer: the interim
 * "100 Continue" (sent only while the body has not arrived) and the Date value. The answers
 * are walked by their Content-Length (none after a HEAD's head); what does not parse is kept
 * as it is. */
static void
normalize(struct transcript *t)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t in = 0, out = 0;

	while (in < t->len) {
		char *h = t->p + in, *end, *cl, *d;
		size_t rest = t->len - in, hl, n, blen = 0;

		if (rest >= sizeof(cont) - 1 && memcmp(h, cont, sizeof(cont) - 1) == 0) {
			in += sizeof(cont) - 1;
			continue;
		}
		if ((end = memmem(h, rest, "\r\n\r\n", 4)) == NULL)
			break;
		hl = (size_t)(end - h) + 4;
		if ((cl = memmem(h, hl, "\r\nContent-Length: ", 18)) != NULL)
			blen = strtoul(cl + 18, NULL, 10);
		/* An answer to HEAD has none of the body its Content-Length gives: the next
		 * answer follows its head (no echo and no error body starts like a status line). */
		if (rest - hl >= 9 && memcmp(h + hl, "HTTP/1.1 ", 9) == 0)
			blen = 0;
		n = hl + blen < rest ? hl + blen : rest;
		if ((d = memmem(h, hl, "\r\nDate: ", 8)) != NULL && (size_t)(d - h) + 8 + 29 <= hl)
			memset(d + 8, '-', 29);
		memmove(t->p + out, h, n);
		out += n;
		in += n;
	}
	memmove(t->p + out, t->p + in, t->len - in);
	t->len = out + (t->len - in);
}

static void
drive(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts, struct transcript *t)
{
	size_t at = 0, k = 0;
	int sv[2];

	t->len = 0;
	t->closed = 0;
	fuzz_check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	fuzz_check(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0, "nonblock");
	fuzz_check(http_server_adopt(srv, sv[0]) == 0, "adopt");
	while (at < size && !t->closed) {
		size_t piece = ncuts == 0 ? size : 1 + (size_t)cuts[k++ % ncuts] * 4;
		size_t end = size - at < piece ? size : at + piece;

		while (at < end && !t->closed) {
			ssize_t n = write(sv[1], data + at, end - at);

			if (n < 0 && errno == EPIPE)
				t->closed = 1;
			else if (n < 0)
				settle(sv[1], t);
			else
				at += (size_t)n;
		}
		settle(sv[1], t);
	}
	settle(sv[1], t);
	/* Our side leaves; the server notices and frees the connection (a later answer of a
	 * request that is still held is dropped through the abort callback). */
	close(sv[1]);
	for (int i = 0; i < FUZZ_TURNS && http_server_connections(srv) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	normalize(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct transcript whole, split;
	size_t ncuts;

	if (size < 1 || size > FUZZ_STREAM_MAX)
		return 0;
	init();
	if (whole.p == NULL) {
		whole.p = malloc(FUZZ_OUT_MAX);
		split.p = malloc(FUZZ_OUT_MAX);
		fuzz_check(whole.p != NULL && split.p != NULL, "out of memory");
	}
	ncuts = data[0] % 16;
	if (size < 1 + ncuts)
		return 0;
	drive(data + 1 + ncuts, size - 1 - ncuts, NULL, 0, &whole);
	drive(data + 1 + ncuts, size - 1 - ncuts, data + 1, ncuts, &split);
	if (getenv("FUZZ_DEBUG") != NULL)
		fprintf(stderr, "whole:\n%.*s\n----\nsplit:\n%.*s\n", (int)whole.len, whole.p,
		    (int)split.len, split.p);
	fuzz_check(http_server_connections(srv) == 0, "connection left open");
	fuzz_check(whole.len == split.len && memcmp(whole.p, split.p, whole.len) == 0,
	    "answers differ when the request arrives in pieces");
	return 0;
}
