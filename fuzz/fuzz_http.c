/* Fuzz harness: the HTTP request parser (http_parse.c), the bytes any client sends. The input
 * is parsed as a request head; what follows the head, or the whole input, goes through the
 * chunked decoder both at once and one byte at a time, out of place and in place, and the
 * results must agree. */
#include <stdlib.h>
#include <string.h>

#include "fuzzpki.h"
#include "http_parse.h"

#define FUZZ_HEAD_MAX 16384
#define FUZZ_BODY_MAX 4096

static void
head(const uint8_t *data, size_t size)
{
	struct http_head h;
	const char *why, *path;
	size_t path_len;
	int status;
	enum http_parse_result r = http_parse_head((const char *)data, size, FUZZ_HEAD_MAX, &h,
	    &status, &why);

	if (r == HTTP_PARSE_ERROR) {
		fuzz_check(why != NULL && status >= 400 && status <= 505, "error without status");
		return;
	}
	if (r != HTTP_PARSE_OK)
		return;
	fuzz_check(h.head_len <= size && h.head_len <= FUZZ_HEAD_MAX, "head_len out of bounds");
	path = http_head_path(&h, (const char *)data, &path_len);
	fuzz_check(path_len > 0 && (path[0] == '/' || path[0] == '*'), "path");
	/* Offsets stay inside the head (absolute-form without a path is a static "/"). */
	fuzz_check(h.path_len == 0 || h.path_off + h.path_len <= h.head_len, "path outside");
	fuzz_check(h.if_none_match_off == 0 ||
	    h.if_none_match_off + h.if_none_match_len <= h.head_len, "If-None-Match outside");
	fuzz_check(!(h.chunked && h.content_length != 0), "chunked with a length");
	fuzz_check(h.minor == 0 || h.minor == 1, "version");
}

static enum http_parse_result
chunked(const uint8_t *data, size_t size, size_t step, int in_place, char *out, size_t *out_len,
    size_t *at)
{
	struct http_chunked c;
	enum http_parse_result r = HTTP_PARSE_INCOMPLETE;
	char *buf = malloc(size ? size : 1);
	int status;

	memcpy(buf, data, size);
	memset(&c, 0, sizeof(c));
	*out_len = *at = 0;
	while (*at < size) {
		size_t n = size - *at < step ? size - *at : step, used;

		r = http_chunked_decode(&c, buf + *at, n, in_place ? buf : out, out_len, FUZZ_BODY_MAX,
		    &used, &status);
		fuzz_check(used <= n, "used more than given");
		fuzz_check(*out_len <= FUZZ_BODY_MAX, "body over its bound");
		*at += used;
		if (r != HTTP_PARSE_INCOMPLETE)
			break;
	}
	if (in_place)
		memcpy(out, buf, *out_len);
	free(buf);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char a[FUZZ_BODY_MAX], b[FUZZ_BODY_MAX];
	size_t alen, blen, aat, bat;
	enum http_parse_result ra, rb;

	if (size > 65536)
		return 0;
	head(data, size);
	ra = chunked(data, size, size ? size : 1, 0, a, &alen, &aat);
	rb = chunked(data, size, 1, 1, b, &blen, &bat);
	fuzz_check(ra == rb, "chunked: whole and byte-wise disagree");
	if (ra == HTTP_PARSE_OK) {
		fuzz_check(alen == blen && aat == bat && memcmp(a, b, alen) == 0,
		    "chunked: whole and byte-wise decode differently");
	}
	return 0;
}
