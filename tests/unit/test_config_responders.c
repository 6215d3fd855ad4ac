/* Unit tests for config.c's [responders] section: per-issuer responder overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"
#include "testpki.h"

#define HASH "0123456789ABCDEF0123456789ABCDEF01234567"
#define HASH_COLONS "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67"

/* Loads text as a config file; returns the config or NULL with err set. */
static struct stapler_config *
load(const char *text, char *err, size_t errlen, char **path_out)
{
	char *dir = testpki_tmpdir();
	char *path = testpki_write_file(dir, "staplerd.conf", text, strlen(text));
	struct stapler_config *cfg = config_load(path, err, errlen);

	if (path_out != NULL)
		*path_out = strdup(path);
	testpki_tmpdir_remove(dir);
	free(path);
	free(dir);
	return cfg;
}

/* Asserts that text fails with "PATH:line: key: ..." naming want_key and containing want. */
static void
assert_error(const char *text, int line, const char *want_key, const char *want)
{
	char err[512], prefix[600], *path = NULL;
	struct stapler_config *cfg = load(text, err, sizeof(err), &path);

	assert_null(cfg);
	snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", path, line, want_key);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not start with \"%s\" or lacks \"%s\"", err, prefix, want);
	free(path);
}

static void
test_overrides_parse(void **state)
{
	unsigned char key[20], other[20];
	const struct config_responder *r;
	struct stapler_config *cfg;
	char err[512];

	(void)state;
	cfg = load("[upstream]\nallow = ocsp.local 127.0.0.1\n[responders]\n"
	    HASH " = http://ocsp.local/a  https://127.0.0.1:8443/b\n"
	    HASH_COLONS "ff = http://ocsp.local/\n", err, sizeof(err), NULL);
	/* The second key is a different issuer (ends in ...67ff): 21 bytes is not a hash. */
	assert_null(cfg);
	assert_non_null(strstr(err, "not an issuer key hash"));

	cfg = load("[responders]\n" HASH_COLONS " = http://ocsp.local/a  https://127.0.0.1:8443/b\n"
	    "fedcba9876543210fedcba9876543210fedcba98=http://other/\n", err, sizeof(err), NULL);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->n_responders, 2);
	assert_int_equal(util_unhex(HASH, key, sizeof(key)), 20);
	r = config_responder_find(cfg, key);
	assert_non_null(r);
	assert_int_equal(r->n, 2);
	assert_string_equal(r->url[0], "http://ocsp.local/a");
	assert_string_equal(r->url[1], "https://127.0.0.1:8443/b");
	assert_int_equal(util_unhex("FEDCBA9876543210FEDCBA9876543210FEDCBA98", other, 20), 20);
	r = config_responder_find(cfg, other);
	assert_non_null(r);
	assert_string_equal(r->url[0], "http://other/");
	other[0] ^= 1;
	assert_null(config_responder_find(cfg, other));
	config_free(&cfg);

	/* No section: no overrides. */
	cfg = load("[server]\nlisten = 127.0.0.1:1\n", err, sizeof(err), NULL);
	assert_non_null(cfg);
	assert_int_equal(cfg->n_responders, 0);
	assert_null(config_responder_find(cfg, key));
	config_free(&cfg);
}

static void
test_override_errors(void **state)
{
	(void)state;
	assert_error("[responders]\nnothex = http://a/\n", 2, "nothex", "not an issuer key hash");
	assert_error("[responders]\n0123 = http://a/\n", 2, "0123", "not an issuer key hash");
	assert_error("[responders]\n" HASH " =\n", 2, HASH, "no responder URL");
	assert_error("[responders]\n" HASH " = ftp://a/\n", 2, HASH, "http:// or https://");
	assert_error("[responders]\n" HASH " = file:///etc/passwd\n", 2, HASH, "http://");
	assert_error("[responders]\n" HASH " = http:///path\n", 2, HASH, "no host");
	assert_error("[responders]\n" HASH " = http://user@host/\n", 2, HASH, "user information");
	assert_error("[responders]\n" HASH " = http://a/ http://b/ http://c/ http://d/ http://e/\n", 2,
	    HASH, "too many responder URLs");
	assert_error("[responders]\n" HASH " = http://a/\n\n" HASH_COLONS " = http://b/\n", 4,
	    HASH_COLONS, "listed twice");
	/* The allow list applies, whichever section comes first; the error names the line. */
	assert_error("[responders]\n" HASH " = http://ocsp.local/ http://evil.example/\n"
	    "[upstream]\nallow = ocsp.local\n", 2, HASH, "evil.example is not in [upstream] allow");
	assert_error("[upstream]\nallow = ocsp.local\n[responders]\n\n" HASH " = HTTP://OCSP.LOCAL/ "
	    "http://[::1]:80/\n", 5, HASH, "[::1] is not in [upstream] allow");
	/* A near miss of the section name is still an unknown section. */
	assert_error("[responder]\n" HASH " = http://a/\n", 2, HASH, "unknown section");
}

static void
test_override_continuation_lines(void **state)
{
	struct stapler_config *cfg;
	const struct config_responder *r;
	unsigned char key[20];
	char err[512];

	(void)state;
	/* Long URLs do not fit one 199-byte line: they go on over indented lines, in order. */
	cfg = load("[responders]\n" HASH_COLONS " = http://proxy-ocsp-primary.utility.example/ocsp\n"
	    "    http://proxy-ocsp-secondary.utility.example/ocsp\n"
	    "\thttp://127.0.0.1:8888/\n[server]\nlisten = 127.0.0.1:1\n", err, sizeof(err), NULL);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(util_unhex(HASH, key, sizeof(key)), 20);
	assert_non_null(r = config_responder_find(cfg, key));
	assert_int_equal(r->n, 3);
	assert_string_equal(r->url[0], "http://proxy-ocsp-primary.utility.example/ocsp");
	assert_string_equal(r->url[1], "http://proxy-ocsp-secondary.utility.example/ocsp");
	assert_string_equal(r->url[2], "http://127.0.0.1:8888/");
	config_free(&cfg);
	assert_error("[responders]\n" HASH " = http://a/ http://b/ http://c/\n  http://d/ http://e/\n",
	    3, HASH, "too many responder URLs");
	assert_error("[responders]\n" HASH " = http://a/\n  ftp://b/\n", 3, HASH, "http://");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overrides_parse),
		cmocka_unit_test(test_override_errors),
		cmocka_unit_test(test_override_continuation_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
