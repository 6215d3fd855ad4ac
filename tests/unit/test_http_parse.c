/* Unit tests for http_parse.c: request heads good and hostile, each case a request and the
 * verdict it must get; the chunked decoder whole, byte by byte, and in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http_parse.h"

#define MAX_HEAD 16384

struct head_case {
	const char *req;
	int status;            /* 0: parses; -1: incomplete; else the error status */
	enum http_method method;
	const char *path;
	int keep_alive, chunked;
	uint64_t length;
};

#define BAD(req, st) { req, st, HTTP_GET, NULL, 0, 0, 0 }
#define CBAD(raw, st) { raw, st, NULL, 0 }

static const struct head_case cases[] = {
	/* good */
	{ "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP_GET, "/healthz", 1, 0, 0 },
	{ "GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP_GET, "/healthz", 1, 0, 0 },
	{ "HEAD /ocsp/MEMwQTA%2F HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP_HEAD, "/ocsp/MEMwQTA%2F", 1, 0, 0 },
	{ "POST /v1/staple HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", 0, HTTP_POST,
	  "/v1/staple", 1, 0, 12 },
	{ "POST /ocsp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0, HTTP_POST,
	  "/ocsp", 1, 1, 0 },
	{ "POST /ocsp HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n", 0, HTTP_POST,
	  "/ocsp", 1, 1, 0 },
	{ "GET / HTTP/1.0\r\n\r\n", 0, HTTP_GET, "/", 0, 0, 0 },
	{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, HTTP_GET, "/", 1, 0, 0 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: te, close\r\n\r\n", 0, HTTP_GET, "/", 0, 0, 0 },
	{ "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, HTTP_GET, "/", 1, 0, 0 },
	{ "GET http://example.com/ocsp/AB HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, HTTP_GET,
	  "/ocsp/AB", 1, 0, 0 },
	{ "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, HTTP_GET, "/", 1, 0, 0 },
	{ "PUT /v1/staple HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, HTTP_OTHER,
	  "/v1/staple", 1, 0, 0 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Text: caf\xc3\xa9\r\n\r\n", 0, HTTP_GET, "/",
	  1, 0, 0 },
	/* incomplete */
	{ "GET / HTTP/1.1\r\nHost: a\r\n", -1, 0, NULL, 0, 0, 0 },
	{ "GET / HTT", -1, 0, NULL, 0, 0, 0 },
	{ "", -1, 0, NULL, 0, 0, 0 },
	/* framing: the smuggling vectors */
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +0\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
	BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400),
	BAD("POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 5\r\n\r\n", 400),
	/* obs-fold, bare LF and CR, control bytes */
	BAD("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", 400),
	/* request line */
	BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
	BAD("GET /\r\n\r\n", 400),
	BAD("GET / http/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
	BAD("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
	BAD("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
	BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
	BAD("GET ocsp HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("GET /a\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	/* Host */
	BAD("GET / HTTP/1.1\r\n\r\n", 400),
	BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
};

static void
test_heads(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct head_case *c = &cases[i];
		struct http_head h;
		const char *why, *path;
		size_t path_len;
		int status;
		enum http_parse_result r = http_parse_head(c->req, strlen(c->req), MAX_HEAD, &h,
		    &status, &why);

		if (c->status == -1) {
			if (r != HTTP_PARSE_INCOMPLETE)
				fail_msg("case %zu: want incomplete, got %d (%d)", i, r, status);
			continue;
		}
		if (c->status != 0) {
			if (r != HTTP_PARSE_ERROR || status != c->status)
				fail_msg("case %zu: want %d, got result %d status %d", i, c->status, r, status);
			assert_non_null(why);
			continue;
		}
		if (r != HTTP_PARSE_OK)
			fail_msg("case %zu: want OK, got %d status %d (%s)", i, r, status, why);
		assert_int_equal(h.method, c->method);
		path = http_head_path(&h, c->req, &path_len);
		assert_int_equal(path_len, strlen(c->path));
		assert_memory_equal(path, c->path, path_len);
		assert_int_equal(h.keep_alive, c->keep_alive);
		assert_int_equal(h.chunked, c->chunked);
		assert_int_equal(h.content_length, c->length);
		assert_int_equal(h.head_len, strlen(c->req));
	}
}

static void
test_if_none_match_and_expect(void **state)
{
	static const char req[] = "POST /v1/staple HTTP/1.1\r\nHost: a\r\nIf-None-Match:  \"abc\", W/\"d\" \r\n"
	    "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nxyz";
	struct http_head h;
	const char *why, *inm;
	size_t inm_len;
	int status;

	assert_int_equal(http_parse_head(req, sizeof(req) - 1, MAX_HEAD, &h, &status, &why),
	    HTTP_PARSE_OK);
	inm = http_head_if_none_match(&h, req, &inm_len);
	assert_int_equal(inm_len, strlen("\"abc\", W/\"d\""));
	assert_memory_equal(inm, "\"abc\", W/\"d\"", inm_len);
	assert_true(h.expect_continue);
	assert_int_equal(h.head_len, sizeof(req) - 4);
}

static void
test_bounds(void **state)
{
	char buf[40000];
	struct http_head h;
	const char *why;
	size_t n;
	int status;

	/* A request line longer than its bound: 414, even before its end arrives. */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', HTTP_PARSE_MAX_LINE + 10);
	n = 5 + HTTP_PARSE_MAX_LINE + 10;
	assert_int_equal(http_parse_head(buf, n, MAX_HEAD, &h, &status, &why), HTTP_PARSE_ERROR);
	assert_int_equal(status, 414);
	/* A head longer than max_head: 431, complete or not. */
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(buf + n, 'b', 20000);
	n += 20000;
	assert_int_equal(http_parse_head(buf, n, MAX_HEAD, &h, &status, &why), HTTP_PARSE_ERROR);
	assert_int_equal(status, 431);
	memcpy(buf + n, "\r\n\r\n", 4);
	assert_int_equal(http_parse_head(buf, n + 4, MAX_HEAD, &h, &status, &why), HTTP_PARSE_ERROR);
	assert_int_equal(status, 431);
	/* Too many fields: 431. */
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HTTP_PARSE_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: y\r\n", i);
	memcpy(buf + n, "\r\n", 2);
	assert_int_equal(http_parse_head(buf, n + 2, MAX_HEAD, &h, &status, &why), HTTP_PARSE_ERROR);
	assert_int_equal(status, 431);
}

struct chunk_case {
	const char *raw;
	int status;         /* 0: decodes to want; else 400/413 */
	const char *want;
	size_t rest;        /* raw bytes left after the body (the next request) */
};

static const struct chunk_case chunks[] = {
	{ "5\r\nhello\r\n0\r\n\r\n", 0, "hello", 0 },
	{ "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET", 0, "hello world", 3 },
	{ "A;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", 0, "0123456789", 0 },
	{ "0\r\n\r\n", 0, "", 0 },
	{ "5 \r\nhello\r\n0\r\n\r\n", 0, "hello", 0 },
	CBAD("\r\n", 400),
	CBAD("x\r\n", 400),
	CBAD("5\nhello\r\n0\r\n\r\n", 400),
	CBAD("5\r\nhelloXX0\r\n\r\n", 400),
	CBAD("5\r\nhello\r\n0\r\nbad\x01\r\n\r\n", 400),
	CBAD("-5\r\nhello\r\n0\r\n\r\n", 400),
	CBAD("FFFFFFFFFFFFFFFFFFFF\r\n", 413),
	CBAD("40\r\n", 413),                       /* over the 32-byte cap of the test */
	CBAD("10\r\n0123456789abcdef\r\n11\r\n", 413),
};

static void
decode_case(const struct chunk_case *c, size_t step, int in_place)
{
	char in[256], out[256];
	struct http_chunked st;
	size_t len = strlen(c->raw), at = 0, out_len = 0, used;
	enum http_parse_result r = HTTP_PARSE_INCOMPLETE;
	int status = 0;
	char *dst = in_place ? in : out;

	memcpy(in, c->raw, len);
	memset(&st, 0, sizeof(st));
	while (at < len) {
		size_t n = len - at < step ? len - at : step;

		r = http_chunked_decode(&st, in + at, n, dst, &out_len, 32, &used, &status);
		at += used;
		if (r != HTTP_PARSE_INCOMPLETE)
			break;
		assert_int_equal(used, n);
	}
	if (c->status != 0) {
		assert_int_equal(r, HTTP_PARSE_ERROR);
		assert_int_equal(status, c->status);
		return;
	}
	assert_int_equal(r, HTTP_PARSE_OK);
	assert_int_equal(out_len, strlen(c->want));
	assert_memory_equal(dst, c->want, out_len);
	assert_int_equal(len - at, c->rest);
}

static void
test_chunked(void **state)
{
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		decode_case(&chunks[i], 1000, 0);
		decode_case(&chunks[i], 1, 0);
		decode_case(&chunks[i], 3, 1);
		decode_case(&chunks[i], 1000, 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heads),
		cmocka_unit_test(test_if_none_match_and_expect),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_chunked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
