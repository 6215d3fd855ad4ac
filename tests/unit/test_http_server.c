/* Component test of the real http_server.c read path: requests written into a socketpair that
 * the server adopts, cut into pieces (at every byte of the head, at random points of bodies up
 * to the limit, pipelined or not, chunked or with Content-Length), with the event loop run
 * between the pieces so that each piece is a read of its own and the read buffer grows between
 * them. Every answer must equal the answer to the same bytes written whole. The handler echoes
 * what it was handed (method, path, If-None-Match, body), some answers only after a loop turn,
 * so a head kept across buffer growth that points at freed or moved bytes shows in the echo
 * (and under ASan as a use-after-free). */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "http_server.h"

#define MAX_BODY (64 * 1024)
#define MAX_HEAD 4096
#define OUT_MAX (4 * 1024 * 1024)

struct fixture {
	struct event_base *base;
	struct http_server *srv;
	unsigned answered;
};

static struct fixture fx;

/* ---- the handler: an echo, now or after a loop turn ---- */

static void
echo(struct http_req *req)
{
	static char out[MAX_BODY + MAX_HEAD + 64];
	const char *path, *inm;
	const unsigned char *body;
	size_t plen, ilen, blen, n = 0;

	path = http_req_path(req, &plen);
	inm = http_req_if_none_match(req, &ilen);
	body = http_req_body(req, &blen);
	n += (size_t)snprintf(out + n, sizeof(out) - n, "%d %.*s inm=%.*s len=%zu\n",
	    (int)http_req_method(req), (int)plen, path, inm ? (int)ilen : 4, inm ? inm : "none",
	    blen);
	assert_true(n + blen <= sizeof(out));
	if (blen > 0)
		memcpy(out + n, body, blen);
	fx.answered++;
	http_reply(req, 200, "Cache-Control: no-store\r\n", "text/plain", out, n + blen);
}

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	echo(arg);
}

static void
handler(struct http_req *req, void *arg)
{
	size_t plen;
	const char *path = http_req_path(req, &plen);

	/* "/later…" is answered from the loop: the connection holds the request meanwhile and
	 * reads what the client pipelines behind it into the same buffer. */
	if (plen >= 6 && memcmp(path, "/later", 6) == 0) {
		assert_int_equal(event_base_once(fx.base, -1, EV_TIMEOUT, on_later, req, NULL), 0);
		return;
	}
	echo(req);
}

static int
setup(void **state)
{
	struct http_limits lim = {
		.max_connections = 64, .max_per_client = 64, .max_head = MAX_HEAD,
		.max_body = MAX_BODY, .header_timeout = 30, .request_timeout = 60,
		.idle_timeout = 60,
	};
	char err[256];

	memset(&fx, 0, sizeof(fx));
	assert_non_null(fx.base = event_base_new());
	fx.srv = http_server_new(fx.base, "127.0.0.1", 0, &lim, handler, NULL, err, sizeof(err));
	if (fx.srv == NULL)
		fail_msg("http_server_new: %s", err);
	return 0;
}

static int
teardown(void **state)
{
	http_server_free(&fx.srv);
	event_base_free(fx.base);
	return 0;
}

/* ---- driving a connection ---- */

struct out {
	char *p;
	size_t len;
	int eof;
};

static void
turn(int fd, struct out *o)
{
	char buf[65536];
	ssize_t n;

	/* A few loop turns: the read, a deferred answer, the write. */
	for (int i = 0; i < 4; i++)
		event_base_loop(fx.base, EVLOOP_NONBLOCK);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		assert_true(o->len + (size_t)n <= OUT_MAX);
		memcpy(o->p + o->len, buf, (size_t)n);
		o->len += (size_t)n;
	}
	if (n == 0)
		o->eof = 1;
	else
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Writes req[0..len) cut before each offset in cuts (ascending), running the loop after each
 * piece, then waits for the server to close (the last request says Connection: close).
 * Returns what the server wrote, with each Date value blanked (it moves with the clock). */
static struct out
drive(const char *req, size_t len, const size_t *cuts, size_t ncuts)
{
	struct out o = { malloc(OUT_MAX), 0, 0 };
	size_t at = 0;
	int sv[2];

	assert_non_null(o.p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(http_server_adopt(fx.srv, sv[0]), 0);
	for (size_t i = 0; i <= ncuts && at < len; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		assert_true(end >= at && end <= len);
		while (at < end) {
			ssize_t n = write(sv[1], req + at, end - at);

			if (n < 0 && errno == EPIPE) {
				/* The server answered (413) and stopped reading: the rest is moot. */
				at = len;
				break;
			}
			if (n < 0) {
				assert_true(errno == EAGAIN);
				turn(sv[1], &o);
				continue;
			}
			at += (size_t)n;
		}
		turn(sv[1], &o);
	}
	for (int i = 0; i < 1000 && !o.eof; i++)
		turn(sv[1], &o);
	assert_true(o.eof);
	close(sv[1]);
	for (char *d = o.p; (d = memmem(d, o.len - (size_t)(d - o.p), "\r\nDate: ", 8)) != NULL;
	    d += 8) {
		assert_true((size_t)(d - o.p) + 8 + 29 <= o.len);
		memset(d + 8, '-', 29);
	}
	return o;
}

static void
expect_same(const char *req, size_t len, const size_t *cuts, size_t ncuts, const char *what)
{
	size_t none = 0;
	struct out whole = drive(req, len, &none, 0), split = drive(req, len, cuts, ncuts);

	if (whole.len != split.len || memcmp(whole.p, split.p, whole.len) != 0) {
		size_t i = 0;

		while (i < whole.len && i < split.len && whole.p[i] == split.p[i])
			i++;
		fail_msg("%s: %zu pieces: answers differ at byte %zu (whole %zu bytes, split %zu): "
		    "whole '%.60s' split '%.60s'", what, ncuts + 1, i, whole.len, split.len,
		    whole.p + (i > 20 ? i - 20 : 0), split.p + (i > 20 ? i - 20 : 0));
	}
	free(whole.p);
	free(split.p);
}

/* ---- requests ---- */

struct req {
	char *p;
	size_t len, head_len;
};

static void
fill_body(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('A' + (seed + i * 7) % 26);
}

/* A POST of n body bytes to path, framed by Content-Length or chunked (100-byte chunks with
 * a chunk extension and a trailer). */
static void
post(struct req *r, const char *path, size_t n, int chunked, int close)
{
	char head[512], framing[64], *body = malloc(n ? n : 1);
	size_t cap = n * 2 + 1024, at;

	assert_non_null(body);
	fill_body(body, n, (unsigned)n);
	assert_non_null(r->p = malloc(cap));
	if (chunked)
		snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked\r\n");
	else
		snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", n);
	r->head_len = (size_t)snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\n"
	    "If-None-Match: \"e%zu\"\r\nContent-Type: application/x-pem-file\r\n%s%s\r\n",
	    path, n, close ? "Connection: close\r\n" : "", framing);
	memcpy(r->p, head, r->head_len);
	at = r->head_len;
	if (!chunked) {
		memcpy(r->p + at, body, n);
		at += n;
	} else {
		for (size_t i = 0; i < n; i += 100) {
			size_t k = n - i < 100 ? n - i : 100;

			at += (size_t)snprintf(r->p + at, cap - at, "%zx;ext=1\r\n", k);
			memcpy(r->p + at, body + i, k);
			at += k;
			memcpy(r->p + at, "\r\n", 2);
			at += 2;
		}
		at += (size_t)snprintf(r->p + at, cap - at, "0\r\nX-Trailer: t\r\n\r\n");
	}
	assert_true(at <= cap);
	r->len = at;
	free(body);
}

static void
get(struct req *r, const char *path, int close)
{
	char head[512];

	r->len = r->head_len = (size_t)snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: x\r\n"
	    "If-None-Match: W/\"abc\"\r\n%s\r\n", path, close ? "Connection: close\r\n" : "");
	r->p = malloc(r->len);
	assert_non_null(r->p);
	memcpy(r->p, head, r->len);
}

/* Cuts before every byte of the head, one at a time; the body, if any, in 100-byte pieces. */
static void
split_every_head_byte(const struct req *r, const char *what)
{
	size_t nb = (r->len - r->head_len + 99) / 100;
	size_t *cuts = calloc(nb + 2, sizeof(*cuts));

	assert_non_null(cuts);
	for (size_t k = 1; k < r->head_len; k++) {
		size_t n = 0;

		cuts[n++] = k;
		for (size_t b = r->head_len; b < r->len; b += 100)
			if (b > k)
				cuts[n++] = b;
		expect_same(r->p, r->len, cuts, n, what);
	}
	free(cuts);
}

static size_t
random_cuts(size_t len, size_t *cuts, size_t max)
{
	size_t n = 0;
	size_t at = 0;

	while (n < max) {
		at += 1 + (size_t)rand() % (len / 8 + 2);
		if (at >= len)
			break;
		cuts[n++] = at;
	}
	return n;
}

static void
test_head_split_at_every_byte(void **state)
{
	struct req r;

	get(&r, "/healthz", 1);
	split_every_head_byte(&r, "GET");
	free(r.p);
	get(&r, "/later/ocsp/MEMwQTA%2FMD0wOzAJBgUrDgMCGgUABBQ", 1);
	split_every_head_byte(&r, "GET answered later");
	free(r.p);
	/* The body of the issue: a 5.8 KB chain in 100-byte pieces, the head cut anywhere. */
	post(&r, "/v1/staple", 5800, 0, 1);
	split_every_head_byte(&r, "POST Content-Length");
	free(r.p);
	post(&r, "/v1/staples", 5800, 1, 1);
	split_every_head_byte(&r, "POST chunked");
	free(r.p);
	post(&r, "/later/ocsp", 3000, 0, 1);
	split_every_head_byte(&r, "POST answered later");
	free(r.p);
}

static void
test_bodies_cut_at_random_points(void **state)
{
	static const size_t sizes[] = { 0, 1, 1023, 4095, 4096, 4097, 5800, 16384, 40000,
	    MAX_BODY - 1, MAX_BODY };
	unsigned seed = (unsigned)time(NULL);
	size_t cuts[512];

	srand(seed);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int chunked = 0; chunked <= 1; chunked++) {
			for (int rep = 0; rep < 4; rep++) {
				char what[96];
				struct req r;
				size_t n;

				post(&r, rep % 2 ? "/later/v1/staple" : "/v1/staple", sizes[i], chunked, 1);
				n = random_cuts(r.len, cuts, sizeof(cuts) / sizeof(cuts[0]));
				snprintf(what, sizeof(what), "seed %u body %zu %s", seed, sizes[i],
				    chunked ? "chunked" : "Content-Length");
				expect_same(r.p, r.len, cuts, n, what);
				free(r.p);
			}
		}
	}
}

/* Three and four requests back to back in one stream, cut anywhere: a GET, a large body, a
 * chunked body, one answered later; then each piece one byte long for a short pipeline. */
static void
test_pipelined_in_pieces(void **state)
{
	unsigned seed = (unsigned)time(NULL) ^ 0x5a5a;
	size_t cuts[2048];
	struct req parts[4];
	char *all;
	size_t len = 0;

	srand(seed);
	get(&parts[0], "/later/healthz", 0);
	post(&parts[1], "/v1/staple", 20000, 0, 0);
	post(&parts[2], "/ocsp", 9000, 1, 0);
	post(&parts[3], "/v1/staples", 30000, 0, 1);
	for (int i = 0; i < 4; i++)
		len += parts[i].len;
	assert_non_null(all = malloc(len));
	len = 0;
	for (int i = 0; i < 4; i++) {
		memcpy(all + len, parts[i].p, parts[i].len);
		len += parts[i].len;
		free(parts[i].p);
	}
	for (int rep = 0; rep < 20; rep++) {
		char what[64];
		size_t n = random_cuts(len, cuts, sizeof(cuts) / sizeof(cuts[0]));

		snprintf(what, sizeof(what), "seed %u pipeline of 4", seed);
		expect_same(all, len, cuts, n, what);
	}
	free(all);

	/* A short pipeline, one byte per read. */
	get(&parts[0], "/later/metrics", 0);
	post(&parts[1], "/ocsp", 300, 1, 0);
	get(&parts[2], "/healthz", 1);
	len = parts[0].len + parts[1].len + parts[2].len;
	assert_non_null(all = malloc(len));
	len = 0;
	for (int i = 0; i < 3; i++) {
		memcpy(all + len, parts[i].p, parts[i].len);
		len += parts[i].len;
		free(parts[i].p);
	}
	assert_true(len - 1 <= sizeof(cuts) / sizeof(cuts[0]));
	for (size_t i = 1; i < len; i++)
		cuts[i - 1] = i;
	expect_same(all, len, cuts, len - 1, "pipeline of 3, byte by byte");
	free(all);
}

/* A body or a head over its limit is refused the same way however it arrives (the verdict on
 * a head too large once depended on how many bytes the read that crossed the bound brought:
 * found by fuzz_http_reads). */
static void
test_too_large_in_pieces(void **state)
{
	static const size_t head_sizes[] = { MAX_HEAD + 1, MAX_HEAD + 2, MAX_HEAD + 5000 };
	size_t cuts[64];
	struct req r;
	size_t n;
	char *big;

	assert_non_null(big = malloc(MAX_HEAD + 6000));
	for (size_t i = 0; i < sizeof(head_sizes) / sizeof(head_sizes[0]); i++) {
		for (int kind = 0; kind < 3; kind++) {
			/* A long request line without its end, a long header field, a long request
			 * line with its end and a head after it. */
			static const char tail[] = " HTTP/1.1\r\nHost: x\r\n\r\n";
			size_t len = (size_t)snprintf(big, MAX_HEAD + 6000, "GET /%s",
			    kind == 1 ? "x HTTP/1.1\r\nHost: x\r\nX-Long: " : "");

			memset(big + len, 'a', head_sizes[i] - len);
			len = head_sizes[i];
			if (kind == 2) {
				memcpy(big + len, tail, sizeof(tail) - 1);
				len += sizeof(tail) - 1;
			}
			for (int rep = 0; rep < 4; rep++) {
				n = random_cuts(len, cuts, sizeof(cuts) / sizeof(cuts[0]));
				if (rep == 0) {
					/* The read that crosses the bound ends just past it. */
					cuts[0] = MAX_HEAD - 1;
					cuts[1] = MAX_HEAD + 1;
					n = 2;
				}
				expect_same(big, len, cuts, n, kind == 1 ? "long field" : "long request line");
			}
		}
	}
	free(big);

	srand(7);
	for (int chunked = 0; chunked <= 1; chunked++) {
		post(&r, "/v1/staple", MAX_BODY + 1, chunked, 1);
		n = random_cuts(r.len, cuts, sizeof(cuts) / sizeof(cuts[0]));
		expect_same(r.p, r.len, cuts, n, chunked ? "413 chunked" : "413 Content-Length");
		free(r.p);
	}
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_head_split_at_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies_cut_at_random_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_in_pieces, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
