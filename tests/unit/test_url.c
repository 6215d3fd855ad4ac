/* Unit tests for url.c: the one URL parser (libcurl's CURLU) behind AIA URLs, [responders],
 * [upstream] allow, the fetcher's per-host key and staplerctl's per-upstream report. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cache_report.h"
#include "url.h"

static void
parses(const char *url, const char *scheme, const char *host, unsigned port, int userinfo,
    int fragment)
{
	struct url_parts p;
	char why[256];

	if (url_parse(url, strlen(url), &p, why, sizeof(why)) != 0)
		fail_msg("%s: %s", url, why);
	assert_string_equal(p.scheme, scheme);
	assert_string_equal(p.host, host);
	assert_int_equal(p.port, port);
	assert_int_equal(p.has_userinfo, userinfo);
	assert_int_equal(p.has_fragment, fragment);
}

static void
refused(const char *url, size_t len, const char *reason)
{
	struct url_parts p;
	char why[256];

	if (url_parse_fetchable(url, len, &p, why, sizeof(why)) == 0)
		fail_msg("%s: accepted", url);
	if (strstr(why, reason) == NULL)
		fail_msg("%s: \"%s\" lacks \"%s\"", url, why, reason);
}

static void
test_parts(void **state)
{
	(void)state;
	parses("http://ocsp.example/", "http", "ocsp.example", 80, 0, 0);
	parses("HTTPS://OCSP.Example:8443/a?b", "https", "ocsp.example", 8443, 0, 0);
	parses("http://[::1]:8080/", "http", "[::1]", 8080, 0, 0);
	parses("http://127.0.0.1", "http", "127.0.0.1", 80, 0, 0);
	parses("http://u:p@h.example/", "http", "h.example", 80, 1, 0);
	parses("http://u@h.example/", "http", "h.example", 80, 1, 0);
	parses("http://h.example/x#frag", "http", "h.example", 80, 0, 1);
	parses("http://h.example/x#", "http", "h.example", 80, 0, 1);
	parses("ldap://h.example/", "ldap", "h.example", 389, 0, 0);
}

static void
test_refusals(void **state)
{
	static const char nul[] = "http://a.example/\0http://b.example/";

	(void)state;
	refused("http://a.example/\nhttp://b.example/", 36, "control character (0x0a");
	refused("http://a.example/\r", 18, "control character");
	refused("http://a.example/\x7f", 18, "control character (0x7f");
	refused(nul, sizeof(nul) - 1, "control character (0x00");
	refused("http://a.example/ x", 19, "space");
	refused("http://a.example/\xc3\xa9", 19, "outside ASCII");
	refused("http://user:pass@a.example/", 27, "user information");
	refused("http://user@a.example/", 22, "user information");
	refused("http://a.example/ocsp#x", 23, "#fragment");
	refused("ftp://a.example/", 16, "http:// or https://");
	refused("http:///path", 12, "no host");
	refused("http:a.example/", 15, "no host");
	refused("a.example/ocsp", 14, "no host");
	refused("", 0, "empty");
	refused("http://a.example:99999/", 23, "does not parse");
}

/* staplerctl stats groups upstreams as the fetcher counts them: host:port, default port
 * filled, user information never taken for the host (it used to skip a character after '@'). */
static void
test_report_host(void **state)
{
	char out[URL_AUTHORITY_MAX];

	(void)state;
	cache_report_url_host("http://OCSP.example/x", out, sizeof(out));
	assert_string_equal(out, "ocsp.example:80");
	cache_report_url_host("http://ocsp.example:80/y", out, sizeof(out));
	assert_string_equal(out, "ocsp.example:80");
	cache_report_url_host("https://ocsp.example/", out, sizeof(out));
	assert_string_equal(out, "ocsp.example:443");
	cache_report_url_host("http://u:p@ocsp.example/", out, sizeof(out));
	assert_string_equal(out, "ocsp.example:80");
	cache_report_url_host("http://a@b@ocsp.example/", out, sizeof(out));
	assert_string_equal(out, "");
	cache_report_url_host("junk", out, sizeof(out));
	assert_string_equal(out, "");
	{
		struct url_parts p;
		char why[64], small[8];

		assert_int_equal(url_parse("http://ocsp.example/", 20, &p, why, sizeof(why)), 0);
		assert_int_equal(url_authority(&p, small, sizeof(small)), -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_report_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
