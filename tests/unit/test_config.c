/* Unit tests for config.c: defaults, every key type, `file:line: key: message` errors, the
 * upstream allow list and listen address splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "testpki.h"

#define DAY 86400LL

/* The fixture: one temporary directory per test, and the last file written into it. */
struct fx {
	char *dir;
	char *path;
	char err[512];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = testpki_tmpdir();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	testpki_tmpdir_remove(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

/* Writes text as the test's config file and loads it. */
static struct stapler_config *
load_text(struct fx *f, const char *text)
{
	free(f->path);
	f->path = testpki_write_file(f->dir, "staplerd.conf", text, strlen(text));
	f->err[0] = '\0';
	return config_load(f->path, f->err, sizeof(f->err));
}

/* Loads text, expects a failure and that the error reads "PATH:" followed by want. */
static void
expect_error(struct fx *f, const char *text, const char *want)
{
	struct stapler_config *cfg = load_text(f, text);
	char full[768];

	if (cfg != NULL) {
		config_free(&cfg);
		fail_msg("accepted a bad config:\n%s", text);
	}
	snprintf(full, sizeof(full), "%s:%s", f->path, want);
	assert_string_equal(f->err, full);
}

static void
test_defaults(void **state)
{
	struct stapler_config *cfg = config_default();

	assert_non_null(cfg);
	assert_null(cfg->path);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_string_equal(cfg->admin_socket, "/run/staplerd/admin.sock");
	assert_int_equal(cfg->max_request, 64 * 1024);
	assert_string_equal(cfg->database, "/var/lib/staplerd/cache.db");
	assert_int_equal(cfg->certid_hash, STAPLER_HASH_SHA1);
	assert_string_equal(cfg->ca_file, "/etc/staplerd/ca-bundle.pem");
	assert_int_equal(cfg->upstream_timeout, 10);
	assert_int_equal(cfg->max_parallel, 64);
	assert_int_equal(cfg->max_entries, 2000000);
	assert_true(cfg->max_bytes == (size_t)4096 * 1024 * 1024);
	assert_int_equal(cfg->unused_ttl, 30 * 86400);
	assert_int_equal(cfg->anonymous_entries, 100000);
	assert_true(cfg->anonymous_bytes == (size_t)64 * 1024 * 1024);
	assert_int_equal(cfg->anonymous_ttl, 3600);
	assert_int_equal(cfg->fetches_per_client, 10);
	assert_int_equal(cfg->fetch_burst, 100);
	assert_int_equal(cfg->limit_clients, 65536);
	assert_int_equal(cfg->n_allow, 0);
	assert_int_equal(cfg->refresh_window, 7 * DAY);
	assert_int_equal(cfg->refresh_min_interval, 3600);
	assert_int_equal(cfg->refresh_check_interval, 60);
	assert_string_equal(cfg->log_level, "info");
	config_free(&cfg);
	assert_null(cfg);
	config_free(&cfg);      /* NULL is fine */
	config_free(NULL);
}

/* [cache] certid_hash takes each CertID hash algorithm staplerd serves. */
static void
test_certid_hash_values(void **state)
{
	static const struct {
		const char *text;
		enum stapler_hash_alg alg;
	} cases[] = {
		{ "[cache]\ncertid_hash = sha1\n", STAPLER_HASH_SHA1 },
		{ "[cache]\ncertid_hash = sha256\n", STAPLER_HASH_SHA256 },
		{ "[cache]\ncertid_hash = sha384\n", STAPLER_HASH_SHA384 },
		{ "[cache]\ncertid_hash = sha512\n", STAPLER_HASH_SHA512 },
	};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct stapler_config *cfg = load_text(f, cases[i].text);

		if (cfg == NULL)
			fail_msg("%s: %s", cases[i].text, f->err);
		assert_int_equal(cfg->certid_hash, cases[i].alg);
		config_free(&cfg);
	}
}

static void
test_empty_file_is_defaults(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg = load_text(f, "; nothing but a comment\n\n");

	assert_non_null(cfg);
	assert_string_equal(cfg->path, f->path);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_int_equal(cfg->max_request, 64 * 1024);
	assert_int_equal(cfg->refresh_window, 7 * DAY);
	config_free(&cfg);
}

static void
test_every_key(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg = load_text(f,
	    "[server]\n"
	    "listen = [::1]:8443\n"
	    "admin_socket = /tmp/x/admin.sock\n"
	    "max_request = 1m\n"
	    "[cache]\n"
	    "database = /tmp/x/cache.db\n"
	    "certid_hash = sha256\n"
	    "[trust]\n"
	    "ca_file = /tmp/x/ca.pem\n"
	    "[upstream]\n"
	    "timeout = 2m\n"
	    "max_parallel = 4096\n"
	    "allow = OCSP.Example.com  10.0.0.1,ocsp2.example.net\n"
	    "[refresh]\n"
	    "window = 2d\n"
	    "min_interval = 30m\n"
	    "check_interval = 15s\n"
	    "[log]\n"
	    "level = debug\n");

	assert_non_null(cfg);
	assert_string_equal(cfg->listen, "[::1]:8443");
	assert_string_equal(cfg->admin_socket, "/tmp/x/admin.sock");
	assert_int_equal(cfg->max_request, 1024 * 1024);
	assert_string_equal(cfg->database, "/tmp/x/cache.db");
	assert_int_equal(cfg->certid_hash, STAPLER_HASH_SHA256);
	assert_string_equal(cfg->ca_file, "/tmp/x/ca.pem");
	assert_int_equal(cfg->upstream_timeout, 120);
	assert_int_equal(cfg->max_parallel, 4096);
	assert_int_equal(cfg->n_allow, 3);
	assert_string_equal(cfg->allow[0], "ocsp.example.com");
	assert_string_equal(cfg->allow[1], "10.0.0.1");
	assert_string_equal(cfg->allow[2], "ocsp2.example.net");
	assert_int_equal(cfg->refresh_window, 2 * DAY);
	assert_int_equal(cfg->refresh_min_interval, 30 * 60);
	assert_int_equal(cfg->refresh_check_interval, 15);
	assert_string_equal(cfg->log_level, "debug");
	config_free(&cfg);
}

static void
test_units(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg;

	cfg = load_text(f, "[server]\nmax_request = 64k\n[upstream]\ntimeout = 90\n"
	    "[refresh]\nwindow = 36h\nmin_interval = 0\ncheck_interval = 1d\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->max_request, 65536);
	assert_int_equal(cfg->upstream_timeout, 90);
	assert_int_equal(cfg->refresh_window, 36 * 3600);
	assert_int_equal(cfg->refresh_min_interval, 0);
	assert_int_equal(cfg->refresh_check_interval, DAY);
	config_free(&cfg);

	/* A plain byte count is a size too. */
	cfg = load_text(f, "[server]\nmax_request = 2048\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->max_request, 2048);
	config_free(&cfg);
}

static void
test_log_levels(void **state)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	struct fx *f = *state;
	char text[64];

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct stapler_config *cfg;

		snprintf(text, sizeof(text), "[log]\nlevel = %s\n", levels[i]);
		cfg = load_text(f, text);
		assert_non_null(cfg);
		assert_string_equal(cfg->log_level, levels[i]);
		config_free(&cfg);
	}
}

/* Inline `;` comments, as docs/contract.md writes them, and an empty allow list. */
static void
test_inline_comments(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg = load_text(f,
	    "[server]\n"
	    "listen = 127.0.0.1:9000            ; address:port of the HTTP API\n"
	    "[upstream]\n"
	    "allow =                            ; optional\n");

	assert_non_null(cfg);
	assert_string_equal(cfg->listen, "127.0.0.1:9000");
	assert_int_equal(cfg->n_allow, 0);
	config_free(&cfg);
}

/* A later allow line replaces the list rather than adding to it. */
static void
test_allow_replaced(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg = load_text(f,
	    "[upstream]\nallow = a.example b.example\n[upstream]\nallow = c.example\n");

	assert_non_null(cfg);
	assert_int_equal(cfg->n_allow, 1);
	assert_string_equal(cfg->allow[0], "c.example");
	config_free(&cfg);
}

static void
test_allow_long_line(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg;
	char text[512];
	size_t off;

	/* inih reads lines of at most 200 bytes: a longer allow list is refused, never cut short
	 * into a list of other hosts. */
	off = (size_t)snprintf(text, sizeof(text), "[upstream]\nallow =");
	for (int i = 0; i < 20; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, " host%d.example", i);
	snprintf(text + off, sizeof(text) - off, "\n");
	assert_true(strlen(text) < sizeof(text) - 1);
	cfg = load_text(f, text);
	assert_null(cfg);
	assert_non_null(strstr(f->err, f->path));
	/* ...with the right line number and the way out. */
	assert_non_null(strstr(f->err, ":2: line longer than 199 bytes"));
	assert_non_null(strstr(f->err, "continuation"));
}

static void
test_line_of_exactly_the_limit(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg;
	char text[512];
	int n;

	/* 199 bytes and a newline is the longest line inih takes: accepted. */
	n = snprintf(text, sizeof(text), "[upstream]\nallow = ");
	while (n < 11 + 199)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s", n + 10 <= 11 + 199 ? "h.example " : "x");
	snprintf(text + n, sizeof(text) - (size_t)n, "\n[server]\nlisten = 127.0.0.1:1\n");
	cfg = load_text(f, text);
	if (cfg == NULL)
		fail_msg("%s", f->err);
	assert_string_equal(cfg->listen, "127.0.0.1:1");
	config_free(&cfg);
}

static void
test_allow_continuation_lines(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg;
	char text[4096];
	size_t off;

	/* 60 hosts over indented continuation lines, five per line. */
	off = (size_t)snprintf(text, sizeof(text), "[upstream]\nallow = host0.example\n");
	for (int i = 1; i < 60; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%shost%d.example%s",
		    i % 5 == 1 ? "    " : " ", i, i % 5 == 0 ? "\n" : "");
	snprintf(text + off, sizeof(text) - off, "\ntimeout = 3s\n");
	cfg = load_text(f, text);
	if (cfg == NULL)
		fail_msg("%s", f->err);
	assert_int_equal(cfg->n_allow, 60);
	assert_string_equal(cfg->allow[0], "host0.example");
	assert_string_equal(cfg->allow[59], "host59.example");
	assert_int_equal(cfg->upstream_timeout, 3);
	config_free(&cfg);
	/* A second, unindented allow line replaces the list (the last one wins, as for any key). */
	cfg = load_text(f, "[upstream]\nallow = a.example\n  b.example\nallow = c.example\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->n_allow, 1);
	assert_string_equal(cfg->allow[0], "c.example");
	config_free(&cfg);
}

/* A bad configuration and the error it must give, after "PATH:". */
struct bad_config {
	const char *text;
	const char *want;
};

#define DURATION_MSG "not a duration (a number with s, m, h or d)"
#define SIZE_MSG "not a size (bytes, or a number with k or m)"
#define LEVEL_MSG "must be error, warn, info or debug"
#define LONG_MSG "not a whole number in range"

static const struct bad_config bad_configs[] = {
	/* Unknown keys, also a known key in the wrong section; comments and blank lines count. */
	{ "[server]\nlisten = 127.0.0.1:8080\nbogus = 1\n", "3: bogus: unknown key in section [server]" },
	{ "; comment\n\n[cache]\ntimeout = 5s\n", "4: timeout: unknown key in section [cache]" },
	/* Unknown sections; names match exactly. */
	{ "[server]\nlisten = 127.0.0.1:1\n[bogus]\nkey = 1\n", "4: key: unknown section [bogus]" },
	{ "[Server]\nlisten = 127.0.0.1:1\n", "2: listen: unknown section [Server]" },
	{ "listen = 127.0.0.1:1\n", "1: listen: unknown section []" },
	/* Durations. */
	{ "[upstream]\ntimeout = 10x\n", "2: timeout: " DURATION_MSG },
	{ "[upstream]\ntimeout = -5s\n", "2: timeout: " DURATION_MSG },
	{ "[upstream]\ntimeout = 1.5s\n", "2: timeout: " DURATION_MSG },
	{ "[upstream]\ntimeout = s\n", "2: timeout: " DURATION_MSG },
	{ "[refresh]\n\nwindow = 1w\n", "3: window: " DURATION_MSG },
	{ "[refresh]\nmin_interval = 99999999999999999999d\n", "2: min_interval: " DURATION_MSG },
	/* Sizes. */
	{ "[server]\nmax_request = lots\n", "2: max_request: " SIZE_MSG },
	{ "[server]\nmax_request = 1g\n", "2: max_request: " SIZE_MSG },
	{ "[server]\nmax_request = 64kb\n", "2: max_request: " SIZE_MSG },
	{ "[server]\nmax_request = -1k\n", "2: max_request: " SIZE_MSG },
	/* Out of range. */
	{ "[upstream]\nmax_parallel = 0\n", "2: max_parallel: " LONG_MSG },
	{ "[limits]\nfetch_burst = 0\n", "2: fetch_burst: " LONG_MSG },
	{ "[cache]\nmax_entries = 0\n", "2: max_entries: " LONG_MSG },
	{ "[upstream]\nmax_parallel = 4097\n", "2: max_parallel: " LONG_MSG },
	{ "[upstream]\nmax_parallel = 99999999999999999999\n", "2: max_parallel: " LONG_MSG },
	{ "[upstream]\nmax_parallel = 8 threads\n", "2: max_parallel: " LONG_MSG },
	{ "[upstream]\ntimeout = 0s\n", "2: timeout: duration out of range" },
	{ "[upstream]\ntimeout = 601\n", "2: timeout: duration out of range" },
	{ "[refresh]\ncheck_interval = 0\n", "2: check_interval: duration out of range" },
	{ "[server]\nmax_request = 1023\n", "2: max_request: size out of range" },
	{ "[server]\nmax_request = 17m\n", "2: max_request: size out of range" },
	/* Log levels: lowercase names only. */
	{ "[log]\nlevel = verbose\n", "2: level: " LEVEL_MSG },
	{ "[log]\nlevel = INFO\n", "2: level: " LEVEL_MSG },
	/* Host lists. */
	{ "[upstream]\nallow = good.example bad/host\n", "2: allow: not a host name" },
	{ "[upstream]\nallow = http://x.example\n", "2: allow: not a host name" },
	/* Entries are read by the fetcher's URL parser: what it would not give back as a host. */
	{ "[upstream]\nallow = user@x.example\n", "2: allow: not a host name" },
	{ "[upstream]\nallow = x.example:8080\n", "2: allow: not a host name" },
	{ "[upstream]\nallow = x.example#f\n", "2: allow: not a host name" },
	/* The CertID hash algorithm of submissions. */
	{ "[cache]\ncertid_hash = md5\n",
	  "2: certid_hash: must be sha1, sha256, sha384 or sha512" },
	{ "[cache]\ncertid_hash = SHA256\n",
	  "2: certid_hash: must be sha1, sha256, sha384 or sha512" },
	/* Strings must not be empty (an inline comment leaves nothing). */
	{ "[cache]\ndatabase =\n", "2: database: must not be empty" },
	{ "[server]\nlisten = ; nothing\n", "2: listen: must not be empty" },
	/* The first error is the one reported, even when later lines are wrong too. */
	{ "[upstream]\ntimeout = soon\nmax_parallel = many\n", "2: timeout: " DURATION_MSG },
	/* inih's own syntax errors: a line without '=', an unclosed section (whose keys must not
	 * be blamed on section ""). */
	{ "[server]\nlisten = 127.0.0.1:8080\njust some words\n", "3: syntax error" },
	{ "; fine\n[server\nlisten = 127.0.0.1:8080\n", "2: syntax error" },
	{ "[upstream]\ntimeout = 5s\n[server\nlisten = x\nbogus = 1\n", "3: syntax error" },
	/* A value error before a syntax error is still the first. */
	{ "[upstream]\ntimeout = 5x\njust words\n", "2: timeout: " DURATION_MSG },
};

static void
test_bad_configs(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++)
		expect_error(f, bad_configs[i].text, bad_configs[i].want);
}

/* The bounds of each range are themselves in range. */
static void
test_range_bounds(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg;

	cfg = load_text(f, "[server]\nmax_request = 16m\n[upstream]\ntimeout = 10m\nmax_parallel = 1\n"
	    "[refresh]\nwindow = 0\ncheck_interval = 1s\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->max_request, 16 * 1024 * 1024);
	assert_int_equal(cfg->upstream_timeout, 600);
	assert_int_equal(cfg->max_parallel, 1);
	assert_int_equal(cfg->refresh_window, 0);
	assert_int_equal(cfg->refresh_check_interval, 1);
	config_free(&cfg);
	cfg = load_text(f, "[server]\nmax_request = 1k\n[upstream]\ntimeout = 1\n");
	assert_non_null(cfg);
	assert_int_equal(cfg->max_request, 1024);
	assert_int_equal(cfg->upstream_timeout, 1);
	config_free(&cfg);
}

static void
test_missing_file(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg;
	char path[1024], want[1200];

	snprintf(path, sizeof(path), "%s/no-such.conf", f->dir);
	cfg = config_load(path, f->err, sizeof(f->err));
	assert_null(cfg);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	assert_string_equal(f->err, want);
}

static void
test_host_allowed(void **state)
{
	struct fx *f = *state;
	struct stapler_config *cfg = config_default();

	assert_non_null(cfg);
	/* No list: every host. */
	assert_int_equal(config_host_allowed(cfg, "anything.example"), 1);
	config_free(&cfg);

	cfg = load_text(f, "[upstream]\nallow = ocsp.example.com 127.0.0.1\n");
	assert_non_null(cfg);
	assert_int_equal(config_host_allowed(cfg, "ocsp.example.com"), 1);
	assert_int_equal(config_host_allowed(cfg, "OCSP.Example.COM"), 1);
	assert_int_equal(config_host_allowed(cfg, "127.0.0.1"), 1);
	/* Exact names only: no suffix or prefix matches. */
	assert_int_equal(config_host_allowed(cfg, "evil.ocsp.example.com"), 0);
	assert_int_equal(config_host_allowed(cfg, "ocsp.example.com.evil"), 0);
	assert_int_equal(config_host_allowed(cfg, "example.com"), 0);
	assert_int_equal(config_host_allowed(cfg, "127.0.0.2"), 0);
	assert_int_equal(config_host_allowed(cfg, ""), 0);
	config_free(&cfg);
}

static void
test_split_listen(void **state)
{
	char host[64];
	unsigned short port = 0;

	assert_int_equal(config_split_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);

	assert_int_equal(config_split_listen("[::1]:8443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8443);

	assert_int_equal(config_split_listen("[2001:db8::1]:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 65535);

	assert_int_equal(config_split_listen("localhost:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(port, 0);

	port = 7;
	assert_int_equal(config_split_listen("127.0.0.1", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen(":8080", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("127.0.0.1:", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("127.0.0.1:http", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("127.0.0.1:65536", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("127.0.0.1:-1", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[::1]", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[::1]8080", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[::1:8080", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[]:8080", host, sizeof(host), &port), -1);
	/* The host must fit in the caller's buffer, terminator included. */
	assert_int_equal(config_split_listen("abcdefgh:1", host, 8, &port), -1);
	assert_int_equal(port, 7);
	assert_int_equal(config_split_listen("abcdefg:1", host, 8, &port), 0);
	assert_string_equal(host, "abcdefg");
}

/* A reload keeps the running value of every restart-only key the new file changes, and
 * names them; the others come from the new file. */
static void
test_reload_keeps_restart_only_keys(void **state)
{
	struct fx *f = *state;
	struct stapler_config *old, *ncfg;
	char names[256];

	assert_non_null(old = load_text(f, "[server]\nlisten = 127.0.0.1:8080\n"
	    "[cache]\ndatabase = /tmp/a.db\n[refresh]\nwindow = 2d\n"));
	assert_non_null(ncfg = load_text(f, "[server]\nlisten = 127.0.0.1:9090\n"
	    "admin_socket = /tmp/other.sock\n[cache]\ndatabase = /tmp/a.db\n[refresh]\nwindow = 3d\n"));
	assert_int_equal(config_keep_restart_only(old, ncfg, names, sizeof(names)), 2);
	assert_string_equal(names, "server.listen server.admin_socket");
	config_free(&ncfg);
	/* The webhook list too: the deliverer reads it at the start only. */
	assert_non_null(ncfg = load_text(f, "[server]\nlisten = 127.0.0.1:8080\n"
	    "[cache]\ndatabase = /tmp/a.db\n[refresh]\nwindow = 3d\n"
	    "[events]\nwebhooks = http://127.0.0.1:9/a http://127.0.0.1:9/b\n"));
	assert_int_equal(config_keep_restart_only(old, ncfg, names, sizeof(names)), 1);
	assert_string_equal(names, "events.webhooks");
	assert_int_equal(ncfg->n_webhooks, 0);
	assert_string_equal(ncfg->listen, "127.0.0.1:8080");
	assert_string_equal(ncfg->admin_socket, old->admin_socket);
	assert_string_equal(ncfg->database, "/tmp/a.db");
	assert_int_equal(ncfg->refresh_window, 3 * DAY);
	/* Nothing changed: nothing named. */
	assert_int_equal(config_keep_restart_only(old, ncfg, names, sizeof(names)), 0);
	assert_string_equal(names, "");
	config_free(&ncfg);
	config_free(&old);
}

/* Reads a file of the source tree (STAPLER_SOURCE_DIR, set by CTest) into a new string. */
static char *
source_file(const char *rel)
{
	const char *data = getenv("STAPLER_SOURCE_DIR");
	char path[1024];
	FILE *fp;
	char *buf;
	long n;

	assert_non_null(data);
	snprintf(path, sizeof(path), "%s/%s", data, rel);
	assert_non_null(fp = fopen(path, "r"));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	assert_true((n = ftell(fp)) > 0);
	rewind(fp);
	assert_non_null(buf = calloc(1, (size_t)n + 1));
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

/* The key table is where each key is documented from: every key has its entry in its
 * section of staplerd.conf(5), which says "Takes effect at restart only" exactly for the
 * restart-only keys, and its commented default line in its section of conf/staplerd.conf. */
static void
test_key_table_matches_the_docs(void **state)
{
	char *man = source_file("man/staplerd.conf.5"), *conf = source_file("conf/staplerd.conf");
	size_t n = config_key_count();

	(void)state;
	assert_true(n > 30);
	for (size_t i = 0; i < n; i++) {
		const char *section, *name, *sh, *end, *it, *next;
		char want[128], upper[32];
		int restart = config_key_at(i, &section, &name);
		size_t k;

		for (k = 0; section[k] != '\0' && k + 1 < sizeof(upper); k++)
			upper[k] = (char)(section[k] - 'a' + 'A');
		upper[k] = '\0';
		snprintf(want, sizeof(want), "\n.Sh %s\n", upper);
		if ((sh = strstr(man, want)) == NULL)
			fail_msg("staplerd.conf.5 has no section %s", upper);
		end = strstr(sh + 1, "\n.Sh ");
		snprintf(want, sizeof(want), "\n.It Cm %s ", name);
		if ((it = strstr(sh, want)) == NULL || (end != NULL && it > end))
			fail_msg("staplerd.conf.5 does not document %s.%s in %s", section, name, upper);
		next = strstr(it + 1, "\n.It ");
		{
			const char *r = strstr(it, "restart only");
			int says = r != NULL && (next == NULL || r < next) && (end == NULL || r < end);

			if (says != restart)
				fail_msg("staplerd.conf.5: %s.%s %s \"Takes effect at restart only\"",
				    section, name, restart ? "lacks" : "wrongly says");
		}
		snprintf(want, sizeof(want), "\n[%s]\n", section);
		if ((sh = strstr(conf, want)) == NULL)
			fail_msg("conf/staplerd.conf has no [%s]", section);
		end = strstr(sh + 1, "\n[");
		snprintf(want, sizeof(want), "\n;%s =", name);
		if ((it = strstr(sh, want)) == NULL || (end != NULL && it > end) ||
		    (it[strlen(want)] != ' ' && it[strlen(want)] != '\n'))
			fail_msg("conf/staplerd.conf has no ;%s = line in [%s]", name, section);
	}
	assert_int_equal(config_key_restart_only("server", "listen"), 1);
	assert_int_equal(config_key_restart_only("refresh", "window"), 0);
	assert_int_equal(config_key_restart_only("server", "nonesuch"), -1);
	free(man);
	free(conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test_setup_teardown(test_empty_file_is_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_certid_hash_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_comments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_configs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_of_exactly_the_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_continuation_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_allowed, setup, teardown),
		cmocka_unit_test(test_split_listen),
		cmocka_unit_test_setup_teardown(test_reload_keeps_restart_only_keys, setup, teardown),
		cmocka_unit_test(test_key_table_matches_the_docs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
