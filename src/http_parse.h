/* The strict HTTP/1.1 request parser (RFC 9112): request line, the few header fields the API
 * reads, message framing, and a chunked body decoder. Pure: no I/O, no allocation, so the unit
 * tests and the fuzz harness drive it directly. */
#ifndef STAPLER_HTTP_PARSE_H
#define STAPLER_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on a request head; longer or more gets 414/431. */
#define HTTP_PARSE_MAX_LINE 8192     /* request line */
#define HTTP_PARSE_MAX_HEADERS 64    /* header fields */

enum http_method {
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_OTHER,   /* a valid token the API does not serve: 405 */
};

enum http_parse_result {
	HTTP_PARSE_OK = 0,
	HTTP_PARSE_INCOMPLETE,  /* need more bytes */
	HTTP_PARSE_ERROR,       /* answer status (400, 414, 431, 501, 505) and close */
};

/* What the API needs of a request head. It holds offsets into the parsed buffer, never
 * pointers: the buffer may grow (and move) while the body is still arriving, so whatever is
 * kept of a head is found again through the buffer's current address (http_head_path(),
 * http_head_if_none_match()). */
struct http_head {
	enum http_method method;
	int minor;                 /* HTTP/1.minor: 0 or 1 */
	size_t path_off;           /* request target up to '?' (origin-form) */
	size_t path_len;           /* 0: an absolute-form target without a path, that is "/" */
	size_t if_none_match_off;  /* 0 when absent (a field never starts a head) */
	size_t if_none_match_len;
	int keep_alive;            /* after the answer, the connection may carry another request */
	int chunked;               /* Transfer-Encoding: chunked */
	int expect_continue;       /* Expect: 100-continue */
	uint64_t content_length;   /* 0 without a body */
	size_t head_len;           /* bytes of the head, final CRLF CRLF included */
};

/* Parses the request head at buf[0..len). Empty lines before the request line are skipped
 * (RFC 9112 §2.2). max_head bounds the whole head. Returns HTTP_PARSE_OK with *h filled,
 * HTTP_PARSE_INCOMPLETE, or HTTP_PARSE_ERROR with *status and *reason (a static string). */
enum http_parse_result http_parse_head(const char *buf, size_t len, size_t max_head,
    struct http_head *h, int *status, const char **reason);

/* The path of a head parsed from buf (wherever buf is now), not NUL-terminated. */
static inline const char *
http_head_path(const struct http_head *h, const char *buf, size_t *len)
{
	if (h->path_len == 0) {
		*len = 1;
		return "/";
	}
	*len = h->path_len;
	return buf + h->path_off;
}

/* If-None-Match of a head parsed from buf, or NULL when absent. */
static inline const char *
http_head_if_none_match(const struct http_head *h, const char *buf, size_t *len)
{
	*len = h->if_none_match_len;
	return h->if_none_match_off != 0 ? buf + h->if_none_match_off : NULL;
}

/* A chunked body decoder that works in place: decoded bytes are never ahead of the bytes read,
 * so it may write into the buffer it reads. Zero it to start. */
struct http_chunked {
	int state;
	uint64_t remaining;   /* bytes left of the current chunk */
	size_t line;          /* bytes of the current size line or trailer section */
	int trailers;         /* trailer fields seen */
};

/* Decodes in[0..len) (the next raw bytes) into out, which already holds *out_len bytes and
 * may hold at most max. Returns HTTP_PARSE_OK when the last chunk and the trailers ended,
 * HTTP_PARSE_INCOMPLETE when all of in was taken, else HTTP_PARSE_ERROR with *status 400 or
 * 413. *used is the raw bytes consumed. out may equal in's buffer at or before in. */
enum http_parse_result http_chunked_decode(struct http_chunked *c, const char *in, size_t len,
    char *out, size_t *out_len, size_t max, size_t *used, int *status);

#endif
