/* The one URL parser (libcurl's CURLU): scheme, host, port, user information, fragment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "url.h"
#include "util.h"

static void
lowercase(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

/* 1 when CURLU holds part (e.g. a user name), else 0. */
static int
has_part(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	int has = curl_url_get(u, part, &v, 0) == CURLUE_OK && v != NULL;

	curl_free(v);
	return has;
}

int
url_parse(const char *url, size_t len, struct url_parts *out, char *why, size_t whylen)
{
	char *text = NULL, *scheme = NULL, *host = NULL, *port = NULL;
	CURLU *u = NULL;
	long p;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (url == NULL || len == 0) {
		snprintf(why, whylen, "empty URL");
		return -1;
	}
	if (len >= URL_MAX_LEN) {
		snprintf(why, whylen, "URL longer than %d bytes", URL_MAX_LEN - 1);
		return -1;
	}
	/* Checked on the raw bytes, before libcurl sees them: it would percent-encode or cut
	 * some of these, and then the URL fetched would not be the URL written. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];

		if (c < 0x20 || c == 0x7f) {
			snprintf(why, whylen, "URL holds a control character (0x%02x at byte %zu)", c, i);
			return -1;
		}
		if (c == ' ' || c >= 0x80) {
			snprintf(why, whylen, "URL holds a %s at byte %zu",
			    c == ' ' ? "space" : "byte outside ASCII", i);
			return -1;
		}
	}
	/* libcurl reads "http:///x" as host "x" and "http:h" as "http://h": take the URL as
	 * written, with "://" and an authority. */
	{
		size_t i = 0;

		while (i + 3 < len && memcmp(url + i, "://", 3) != 0)
			i++;
		if (i + 3 >= len || strchr("/?#", url[i + 3]) != NULL) {
			snprintf(why, whylen, "URL has no host (expected http://host/... or "
			    "https://host/...)");
			return -1;
		}
	}
	if ((text = strndup(url, len)) == NULL || (u = curl_url()) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, text, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		snprintf(why, whylen, "URL does not parse or has no host (expected http://host/... "
		    "or https://host/...)");
		goto out;
	}
	if (util_strlcpy(out->scheme, scheme, sizeof(out->scheme)) < 0 ||
	    util_strlcpy(out->host, host, sizeof(out->host)) < 0) {
		snprintf(why, whylen, "URL scheme or host too long");
		goto out;
	}
	lowercase(out->scheme);
	lowercase(out->host);
	/* An unknown scheme has no default port: 0. */
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    port != NULL && util_parse_long(port, 0, 65535, &p) == 0)
		out->port = (unsigned)p;
	out->has_userinfo = has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
	    has_part(u, CURLUPART_OPTIONS);
	out->has_fragment = has_part(u, CURLUPART_FRAGMENT) || memchr(url, '#', len) != NULL;
	out->has_query = has_part(u, CURLUPART_QUERY);
	ret = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	free(text);
	return ret;
}

int
url_parse_fetchable(const char *url, size_t len, struct url_parts *out, char *why,
    size_t whylen)
{
	if (url_parse(url, len, out, why, whylen) < 0)
		return -1;
	if (strcmp(out->scheme, "http") != 0 && strcmp(out->scheme, "https") != 0) {
		snprintf(why, whylen, "scheme %.20s: must be http:// or https://", out->scheme);
		return -1;
	}
	if (out->has_userinfo) {
		snprintf(why, whylen, "URL carries user information (user:password@), which would "
		    "be sent as credentials");
		return -1;
	}
	if (out->has_fragment) {
		snprintf(why, whylen, "URL has a #fragment, which would swallow the request of a GET");
		return -1;
	}
	return 0;
}

int
url_authority(const struct url_parts *parts, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s:%u", parts->host, parts->port);

	return n < 0 || (size_t)n >= cap ? -1 : 0;
}
