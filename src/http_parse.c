/* The strict HTTP/1.1 request parser: anything a lenient parser would guess at (duplicate or
 * signed Content-Length, Content-Length with chunked, obs-fold, bare LF, control bytes) is
 * refused, because two parsers that guess differently are how requests get smuggled. */
#include <string.h>
#include <strings.h>

#include "http_parse.h"
#include "util.h"

/* Bounds inside a chunked body: a size line with its extensions, a trailer line. */
#define CHUNK_LINE_MAX 4096

static int
is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB (RFC 9110 §5.5); obs-text is allowed, control bytes are not. */
static int
is_field_char(unsigned char c)
{
	return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
}

static int
token_is(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* Sets *close / *keep when the comma-separated Connection list names them. */
static void
connection_tokens(const char *v, size_t n, int *close, int *keep)
{
	size_t i = 0;

	while (i < n) {
		size_t start, end;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (token_is(v + start, end - start, "close"))
			*close = 1;
		else if (token_is(v + start, end - start, "keep-alive"))
			*keep = 1;
	}
}

/* Content-Length: 1*DIGIT, nothing else (no sign, no list, no spaces inside). */
static int
parse_length(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

static enum http_parse_result
fail(int *status, const char **reason, int code, const char *why)
{
	*status = code;
	*reason = why;
	return HTTP_PARSE_ERROR;
}

/* The request line: method SP request-target SP HTTP-version, single spaces. */
static enum http_parse_result
request_line(const char *buf, const char *p, size_t n, struct http_head *h, int *status,
    const char **reason)
{
	const char *sp1, *sp2, *t, *v, *q;
	size_t mlen, tlen, vlen;

	if ((sp1 = memchr(p, ' ', n)) == NULL)
		return fail(status, reason, 400, "malformed request line");
	mlen = (size_t)(sp1 - p);
	if (mlen == 0 || mlen > 32)
		return fail(status, reason, mlen == 0 ? 400 : 501, "malformed or unknown method");
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)p[i]))
			return fail(status, reason, 400, "malformed method");
	t = sp1 + 1;
	if ((sp2 = memchr(t, ' ', n - mlen - 1)) == NULL)
		return fail(status, reason, 400, "malformed request line");
	tlen = (size_t)(sp2 - t);
	v = sp2 + 1;
	vlen = n - (size_t)(v - p);
	if (tlen == 0)
		return fail(status, reason, 400, "empty request target");
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f || t[i] == '#')
			return fail(status, reason, 400, "malformed request target");
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9')
		return fail(status, reason, 400, "malformed HTTP version");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return fail(status, reason, 505, "HTTP version not supported: use HTTP/1.1");
	h->minor = v[7] - '0';
	if (mlen == 3 && memcmp(p, "GET", 3) == 0)
		h->method = HTTP_GET;
	else if (mlen == 4 && memcmp(p, "HEAD", 4) == 0)
		h->method = HTTP_HEAD;
	else if (mlen == 4 && memcmp(p, "POST", 4) == 0)
		h->method = HTTP_POST;
	else
		h->method = HTTP_OTHER;
	/* absolute-form (RFC 9112 §3.2.2): a server must accept it; the authority is ignored. */
	if (tlen > 7 && (strncasecmp(t, "http://", 7) == 0 ||
	    (tlen > 8 && strncasecmp(t, "https://", 8) == 0))) {
		const char *a = (const char *)memchr(t, ':', tlen) + 3;
		const char *slash = memchr(a, '/', tlen - (size_t)(a - t));

		if (slash == NULL) {
			/* No path: "/" (path_len 0 says so, see http_head_path()). */
			h->path_off = h->path_len = 0;
			return HTTP_PARSE_OK;
		}
		tlen -= (size_t)(slash - t);
		t = slash;
	} else if (t[0] != '/' && !(tlen == 1 && t[0] == '*')) {
		return fail(status, reason, 400, "malformed request target");
	}
	h->path_off = (size_t)(t - buf);
	h->path_len = (q = memchr(t, '?', tlen)) != NULL ? (size_t)(q - t) : tlen;
	return HTTP_PARSE_OK;
}

enum http_parse_result
http_parse_head(const char *buf, size_t len, size_t max_head, struct http_head *h, int *status,
    const char **reason)
{
	const char *te = NULL;
	size_t pos = 0, te_len = 0;
	int n_headers = 0, n_hosts = 0, n_lengths = 0, n_te = 0, close = 0, keep = 0;
	int first = 1;

	memset(h, 0, sizeof(*h));
	*status = 0;
	*reason = NULL;
	while (pos + 1 < len && buf[pos] == '\r' && buf[pos + 1] == '\n')
		pos += 2;
	if (pos > HTTP_PARSE_MAX_LINE)
		return fail(status, reason, 400, "too many empty lines");
	for (;;) {
		const char *line = buf + pos, *nl, *colon, *v;
		size_t n, vlen, name_len;

		if ((nl = memchr(line, '\n', len - pos)) == NULL) {
			if (first && len - pos > HTTP_PARSE_MAX_LINE)
				return fail(status, reason, 414, "request line too long");
			if (len > max_head)
				return fail(status, reason, 431, "request header too large");
			return HTTP_PARSE_INCOMPLETE;
		}
		n = (size_t)(nl - line);
		if ((size_t)(nl - buf) + 1 > max_head)
			return fail(status, reason, first && n > HTTP_PARSE_MAX_LINE ? 414 : 431,
			    first ? "request line too long" : "request header too large");
		if (n == 0 || line[n - 1] != '\r')
			return fail(status, reason, 400, "line not ended by CRLF");
		n--;
		pos = (size_t)(nl - buf) + 1;
		if (first) {
			enum http_parse_result r;

			if (n > HTTP_PARSE_MAX_LINE)
				return fail(status, reason, 414, "request line too long");
			for (size_t i = 0; i < n; i++)
				if (line[i] == '\r' || line[i] == '\0')
					return fail(status, reason, 400, "control byte in request line");
			if ((r = request_line(buf, line, n, h, status, reason)) != HTTP_PARSE_OK)
				return r;
			first = 0;
			continue;
		}
		if (n == 0)
			break;
		if (++n_headers > HTTP_PARSE_MAX_HEADERS)
			return fail(status, reason, 431, "too many header fields");
		if (line[0] == ' ' || line[0] == '\t')
			return fail(status, reason, 400, "obsolete line folding");
		if ((colon = memchr(line, ':', n)) == NULL)
			return fail(status, reason, 400, "header field without ':'");
		name_len = (size_t)(colon - line);
		if (name_len == 0)
			return fail(status, reason, 400, "empty header field name");
		for (size_t i = 0; i < name_len; i++)
			if (!is_tchar((unsigned char)line[i]))
				return fail(status, reason, 400, "malformed header field name");
		v = colon + 1;
		vlen = n - name_len - 1;
		for (size_t i = 0; i < vlen; i++)
			if (!is_field_char((unsigned char)v[i]))
				return fail(status, reason, 400, "control byte in header field");
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (token_is(line, name_len, "content-length")) {
			if (++n_lengths > 1)
				return fail(status, reason, 400, "more than one Content-Length");
			if (parse_length(v, vlen, &h->content_length) < 0)
				return fail(status, reason, 400, "Content-Length is not a number");
		} else if (token_is(line, name_len, "transfer-encoding")) {
			n_te++;
			te = v;
			te_len = vlen;
		} else if (token_is(line, name_len, "connection")) {
			connection_tokens(v, vlen, &close, &keep);
		} else if (token_is(line, name_len, "host")) {
			n_hosts++;
		} else if (token_is(line, name_len, "if-none-match")) {
			h->if_none_match_off = (size_t)(v - buf);
			h->if_none_match_len = vlen;
		} else if (token_is(line, name_len, "expect")) {
			h->expect_continue = token_is(v, vlen, "100-continue");
		}
	}
	h->head_len = pos;
	if (n_hosts > 1 || (h->minor == 1 && n_hosts == 0))
		return fail(status, reason, 400, "HTTP/1.1 needs exactly one Host");
	if (n_te > 0) {
		if (h->minor == 0)
			return fail(status, reason, 400, "Transfer-Encoding in HTTP/1.0");
		if (n_lengths > 0)
			return fail(status, reason, 400, "both Content-Length and Transfer-Encoding");
		if (n_te > 1 || !token_is(te, te_len, "chunked"))
			return fail(status, reason, 501, "only Transfer-Encoding: chunked is understood");
		h->chunked = 1;
	}
	if (h->minor == 0)
		h->expect_continue = 0;
	h->keep_alive = !close && (h->minor == 1 || keep);
	return HTTP_PARSE_OK;
}

enum {
	C_SIZE0,      /* first digit of a chunk size */
	C_SIZE,       /* more digits */
	C_EXT,        /* chunk extensions, ignored */
	C_SIZE_LF,
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TRAILER,    /* start of a trailer line, or of the final CRLF */
	C_TRAILER_LINE,
	C_TRAILER_LF,
	C_END_LF,
	C_DONE,
};

enum http_parse_result
http_chunked_decode(struct http_chunked *c, const char *in, size_t len, char *out,
    size_t *out_len, size_t max, size_t *used, int *status)
{
	size_t i = 0;

	*status = 0;
	while (i < len && c->state != C_DONE) {
		char ch = in[i];
		int d;

		switch (c->state) {
		case C_SIZE0:
		case C_SIZE:
			if ((d = util_hexval((unsigned char)ch)) >= 0) {
				if (c->remaining > (UINT64_MAX >> 8))
					goto too_large;
				c->remaining = c->remaining * 16 + (uint64_t)d;
				c->state = C_SIZE;
			} else if (c->state == C_SIZE0) {
				goto bad;
			} else if (ch == ';' || ch == ' ' || ch == '\t') {
				c->state = C_EXT;
			} else if (ch == '\r') {
				c->state = C_SIZE_LF;
			} else {
				goto bad;
			}
			if (c->remaining > max - *out_len)
				goto too_large;
			break;
		case C_EXT:
			if (ch == '\r')
				c->state = C_SIZE_LF;
			else if (!is_field_char((unsigned char)ch))
				goto bad;
			break;
		case C_SIZE_LF:
			if (ch != '\n')
				goto bad;
			c->line = 0;
			c->state = c->remaining > 0 ? C_DATA : C_TRAILER;
			break;
		case C_DATA: {
			size_t take = len - i;

			if (take > c->remaining)
				take = (size_t)c->remaining;
			memmove(out + *out_len, in + i, take);
			*out_len += take;
			c->remaining -= take;
			i += take;
			if (c->remaining == 0)
				c->state = C_DATA_CR;
			continue;
		}
		case C_DATA_CR:
			if (ch != '\r')
				goto bad;
			c->state = C_DATA_LF;
			break;
		case C_DATA_LF:
			if (ch != '\n')
				goto bad;
			c->line = 0;
			c->state = C_SIZE0;
			break;
		case C_TRAILER:
			if (ch == '\r') {
				c->state = C_END_LF;
			} else {
				if (++c->trailers > HTTP_PARSE_MAX_HEADERS || !is_field_char((unsigned char)ch))
					goto bad;
				c->state = C_TRAILER_LINE;
			}
			break;
		case C_TRAILER_LINE:
			if (ch == '\r')
				c->state = C_TRAILER_LF;
			else if (!is_field_char((unsigned char)ch))
				goto bad;
			break;
		case C_TRAILER_LF:
			if (ch != '\n')
				goto bad;
			c->line = 0;
			c->state = C_TRAILER;
			break;
		case C_END_LF:
			if (ch != '\n')
				goto bad;
			c->state = C_DONE;
			break;
		default:
			goto bad;
		}
		if (++c->line > CHUNK_LINE_MAX)
			goto bad;
		i++;
	}
	*used = i;
	return c->state == C_DONE ? HTTP_PARSE_OK : HTTP_PARSE_INCOMPLETE;
bad:
	*used = i;
	*status = 400;
	return HTTP_PARSE_ERROR;
too_large:
	*used = i;
	*status = 413;
	return HTTP_PARSE_ERROR;
}
