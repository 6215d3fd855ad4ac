/* The one URL parser: libcurl's CURLU, for every URL staplerd reads (AIA OCSP URLs, the
 * [responders] and allow configuration, the fetcher's policy and per-host key, staplerctl's
 * per-upstream report), so that all of them agree on what the host of a URL is. */
#ifndef STAPLER_URL_H
#define STAPLER_URL_H

#include <stddef.h>

/* Longest URL staplerd parses at all. */
#define URL_MAX_LEN 2048
#define URL_HOST_MAX 256
/* "host:port" with the port made explicit (the upstream a URL names). */
#define URL_AUTHORITY_MAX (URL_HOST_MAX + 8)

struct url_parts {
	char scheme[16];            /* lowercase */
	char host[URL_HOST_MAX];    /* lowercase; an IPv6 address keeps its brackets */
	unsigned port;              /* the scheme's default when the URL names none */
	int has_userinfo;           /* user[:password]@ before the host */
	int has_fragment;           /* a #fragment */
	int has_query;              /* a ?query */
};

/* Parses len bytes of text as an absolute URL. Refuses, with why set to one readable
 * sentence: an empty or overlong URL, a NUL, a control character, a space or a byte outside
 * ASCII anywhere in it (none has a place in a URL, and a newline would split a stored list), and
 * whatever libcurl does not parse or gives no host. Returns 0 and fills *out, or -1. */
int url_parse(const char *url, size_t len, struct url_parts *out, char *why, size_t whylen);

/* url_parse(), then what staplerd fetches: http or https, no user information (it would be
 * sent as credentials), no fragment (a GET appends the request after the path, and a
 * fragment would swallow it). Returns 0, or -1 with why set. */
int url_parse_fetchable(const char *url, size_t len, struct url_parts *out, char *why,
    size_t whylen);

/* "host:port" of parts into out. Returns 0, or -1 when it does not fit. */
int url_authority(const struct url_parts *parts, char *out, size_t cap);

#endif
