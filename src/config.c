/* Configuration: one table of keys (section, name, type, default), parsed with inih;
 * every error names the file, the line and the key.
 *
 * Besides the fixed keys below there is one open section, [responders]: each key is an issuer
 * key hash (hex SHA-1 of the CA public key, as in a CertID; any case, colons allowed) and its
 * value the space-separated http/https responder URLs that every fetch for that issuer's
 * certificates uses, in order, instead of their AIA URLs (like nginx ssl_stapling_responder).
 * The [upstream] allow list applies to them too. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"
#include "url.h"
#include "util.h"

/* K_TEXT: a string that may be empty; K_URLS: the space-separated [events] webhooks;
 * K_CRL_URLS: [crl] urls, space-separated KEYHASH=URL pairs. */
enum key_type { K_STRING, K_SIZE, K_DURATION, K_LONG, K_HOSTS, K_LEVEL, K_HASH_ALG, K_ADDRS,
    K_TEXT, K_URLS, K_CRL_URLS };

struct key_def {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def;   /* default, parsed like a file value */
	long min, max;     /* bounds for K_LONG, K_SIZE and K_DURATION (0/0: none) */
	int restart;       /* RELOAD: SIGHUP applies it; RESTART: SIGHUP keeps the running
	                    * value (the man page says "Takes effect at restart only") */
};

#define RELOAD 0
#define RESTART 1

#define OFF(f) offsetof(struct stapler_config, f)

static const struct key_def keys[] = {
	{ "server", "listen", K_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, RESTART },
	{ "server", "admin_socket", K_STRING, OFF(admin_socket), "/run/staplerd/admin.sock",
	    0, 0, RESTART },
	{ "server", "max_request", K_SIZE, OFF(max_request), "64k",
	    1024, 16L * 1024 * 1024, RELOAD },
	{ "server", "drain_timeout", K_DURATION, OFF(drain_timeout), "10s", 0, 300, RELOAD },
	{ "health", "danger_window", K_DURATION, OFF(health_danger_window), "1d", 60, 0, RELOAD },
	{ "health", "upstream_failing", K_DURATION, OFF(health_upstream_failing), "10m",
	    1, 0, RELOAD },
	{ "health", "degraded_code", K_LONG, OFF(health_degraded_code), "200", 200, 599, RELOAD },
	{ "health", "refresh_behind", K_DURATION, OFF(health_refresh_behind), "1h", 0, 0, RELOAD },
	{ "server", "max_header", K_SIZE, OFF(max_header), "16k", 1024, 1024L * 1024, RELOAD },
	{ "server", "max_connections", K_LONG, OFF(max_connections), "0", 0, 1000000, RELOAD },
	{ "server", "max_connections_per_client", K_LONG, OFF(max_connections_per_client), "0", 0,
	    1000000, RELOAD },
	{ "server", "header_timeout", K_DURATION, OFF(header_timeout), "10s", 1, 3600, RELOAD },
	{ "server", "request_timeout", K_DURATION, OFF(request_timeout), "30s", 1, 3600, RELOAD },
	{ "server", "idle_timeout", K_DURATION, OFF(idle_timeout), "30s", 1, 3600, RELOAD },
	{ "cache", "database", K_STRING, OFF(database), "/var/lib/staplerd/cache.db",
	    0, 0, RESTART },
	{ "cache", "certid_hash", K_HASH_ALG, OFF(certid_hash), "sha1", 0, 0, RELOAD },
	{ "cache", "max_entries", K_LONG, OFF(max_entries), "2000000", 1, 1000000000, RELOAD },
	{ "cache", "max_bytes", K_SIZE, OFF(max_bytes), "4096m", 1024, 1L << 50, RELOAD },
	{ "cache", "unused_ttl", K_DURATION, OFF(unused_ttl), "30d", 1, 0, RELOAD },
	{ "cache", "anonymous_entries", K_LONG, OFF(anonymous_entries), "100000",
	    0, 10000000, RELOAD },
	{ "cache", "anonymous_bytes", K_SIZE, OFF(anonymous_bytes), "64m", 0, 1L << 40, RELOAD },
	{ "cache", "anonymous_ttl", K_DURATION, OFF(anonymous_ttl), "1h", 1, 0, RELOAD },
	{ "cache", "load_batch", K_LONG, OFF(load_batch), "1000", 1, 1000000, RELOAD },
	{ "cache", "load_max_cpu", K_LONG, OFF(load_max_cpu), "100", 1, 100, RELOAD },
	{ "trust", "ca_file", K_STRING, OFF(ca_file), "/etc/staplerd/ca-bundle.pem", 0, 0, RELOAD },
	{ "upstream", "timeout", K_DURATION, OFF(upstream_timeout), "10s", 1, 600, RELOAD },
	{ "upstream", "accept_no_next_update", K_DURATION, OFF(accept_no_next_update), "0", 0,
	    30 * 86400, RELOAD },
	{ "upstream", "max_parallel", K_LONG, OFF(max_parallel), "64", 1, 4096, RELOAD },
	{ "upstream", "max_per_host", K_LONG, OFF(max_per_host), "64", 1, 4096, RELOAD },
	{ "upstream", "allow", K_HOSTS, 0, "", 0, 0, RELOAD },
	{ "refresh", "window", K_DURATION, OFF(refresh_window), "7d", 0, 0, RELOAD },
	{ "refresh", "min_interval", K_DURATION, OFF(refresh_min_interval), "1h", 0, 0, RELOAD },
	{ "refresh", "max_interval", K_DURATION, OFF(refresh_max_interval), "1d", 1, 0, RELOAD },
	{ "refresh", "upstream_max_age", K_DURATION, OFF(refresh_upstream_max_age), "1d",
	    0, 0, RELOAD },
	{ "refresh", "check_interval", K_DURATION, OFF(refresh_check_interval), "1m",
	    1, 0, RELOAD },
	{ "refresh", "max_cpu", K_LONG, OFF(refresh_max_cpu), "15", 1, 100, RELOAD },
	{ "limits", "fetches_per_client", K_LONG, OFF(fetches_per_client), "10",
	    0, 1000000, RELOAD },
	{ "limits", "trusted_clients", K_ADDRS, 0, "", 0, 0, RELOAD },
	{ "limits", "fetch_burst", K_LONG, OFF(fetch_burst), "100", 1, 1000000, RELOAD },
	{ "limits", "clients", K_LONG, OFF(limit_clients), "65536", 16, 10000000, RELOAD },
	{ "ocpp", "min_validity", K_DURATION, OFF(ocpp_min_validity), "1h", 0, 0, RELOAD },
	{ "log", "level", K_LEVEL, OFF(log_level), "info", 0, 0, RELOAD },
	{ "events", "webhooks", K_URLS, 0, "", 0, 0, RESTART },
	{ "events", "secret", K_TEXT, OFF(events_secret), "", 0, 0, RELOAD },
	{ "events", "source", K_STRING, OFF(events_source), "urn:staplerd", 0, 0, RELOAD },
	{ "events", "timeout", K_DURATION, OFF(events_timeout), "10s", 1, 300, RELOAD },
	{ "events", "retry_max", K_DURATION, OFF(events_retry_max), "5m", 1, 86400, RELOAD },
	{ "events", "outbox_max", K_LONG, OFF(events_outbox_max), "100000",
	    100, 100000000, RELOAD },
	{ "crl", "poll_interval", K_DURATION, OFF(crl_poll_interval), "5m", 0, 0, RELOAD },
	{ "crl", "max_size", K_SIZE, OFF(crl_max_size), "10m", 1024, 256L * 1024 * 1024, RELOAD },
	{ "crl", "timeout", K_DURATION, OFF(crl_timeout), "30s", 1, 600, RELOAD },
	{ "crl", "urls", K_CRL_URLS, 0, "", 0, 0, RELOAD },
};

struct parse_ctx {
	struct stapler_config *cfg;
	const char *path;
	FILE *fp;
	int line;          /* line the reader handed to inih last */
	char *err;
	size_t errlen;
	int failed;        /* line of the first value error, or 0 */
	int cont;          /* the line read last is indented: an inih continuation line */
	int too_long;      /* line longer than inih takes, or 0 */
};

static int
set_error(struct parse_ctx *ctx, const char *key, const char *msg)
{
	if (ctx->failed)
		return 0;
	ctx->failed = ctx->line;
	snprintf(ctx->err, ctx->errlen, "%s:%d: %s: %s", ctx->path, ctx->line, key, msg);
	return 0;
}

/* Moves *p past separators (white space, and commas when commas is set) to the next item of a
 * list; returns its length, 0 at the end. */
static size_t
next_item(const char **p, int commas)
{
	while (isspace((unsigned char)**p) || (commas && **p == ','))
		(*p)++;
	return strcspn(*p, commas ? " \t," : " \t");
}

/* Frees the n strings of a list the configuration owns and empties it. */
static void
strings_clear(char **v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free(v[i]);
	*n = 0;
}

static void
hosts_clear(struct stapler_config *cfg)
{
	strings_clear(cfg->allow, &cfg->n_allow);
}

/* Parses a space-separated host list; returns NULL or a message. */
static const char *
set_hosts(struct stapler_config *cfg, const char *value, int append)
{
	const char *p = value;

	if (!append)
		hosts_clear(cfg);
	while (*p != '\0') {
		size_t len;
		char *h;

		if ((len = next_item(&p, 1)) == 0)
			break;
		if (cfg->n_allow == CONFIG_MAX_ALLOW)
			return "too many hosts";
		if (len > 253)
			return "host name too long";
		/* The fetcher compares the host the URL parser gives, so an entry is read by the
		 * same parser: it must come back as exactly that host (no port, path or '@'). */
		{
			struct url_parts parts;
			char url[300], why[200];
			int n = snprintf(url, sizeof(url), "http://%.*s/", (int)len, p);

			if (n < 0 || (size_t)n >= sizeof(url) ||
			    url_parse(url, (size_t)n, &parts, why, sizeof(why)) < 0 ||
			    parts.has_userinfo || parts.port != 80 || strlen(parts.host) != len ||
			    strncasecmp(parts.host, p, len) != 0)
				return "not a host name";
			if ((h = strdup(parts.host)) == NULL)
				return "out of memory";
		}
		cfg->allow[cfg->n_allow++] = h;
		p += len;
	}
	return NULL;
}

/* Parses a space-separated list of IP addresses (the clients whose /ocsp misses are trusted)
 * into the 17-byte form of http_req_client(): family, then the address. Returns NULL or a
 * message. */
static const char *
set_addrs(struct stapler_config *cfg, const char *value)
{
	const char *p = value;

	cfg->n_trusted = 0;
	while (*p != '\0') {
		unsigned char *out;
		char buf[64];
		size_t len;

		if ((len = next_item(&p, 1)) == 0)
			break;
		if (cfg->n_trusted == CONFIG_MAX_TRUSTED)
			return "too many addresses";
		if (len >= sizeof(buf))
			return "not an IP address";
		memcpy(buf, p, len);
		buf[len] = '\0';
		out = cfg->trusted[cfg->n_trusted];
		memset(out, 0, CONFIG_ADDR_LEN);
		if (inet_pton(AF_INET, buf, out + 1) == 1)
			out[0] = AF_INET;
		else if (inet_pton(AF_INET6, buf, out + 1) == 1)
			out[0] = AF_INET6;
		else
			return "not an IP address (no host names, no prefixes)";
		cfg->n_trusted++;
		p += len;
	}
	return NULL;
}

int
config_client_trusted(const struct stapler_config *cfg, const unsigned char *addr)
{
	for (size_t i = 0; addr != NULL && i < cfg->n_trusted; i++) {
		if (memcmp(cfg->trusted[i], addr, CONFIG_ADDR_LEN) == 0)
			return 1;
	}
	return 0;
}

static void
webhooks_clear(struct stapler_config *cfg)
{
	strings_clear(cfg->webhooks, &cfg->n_webhooks);
}

/* Parses the space-separated webhook URLs (http or https, through the one URL parser). */
static const char *
set_urls(struct stapler_config *cfg, const char *value)
{
	const char *p = value;

	webhooks_clear(cfg);
	while (*p != '\0') {
		struct url_parts parts;
		char why[200];
		size_t len;

		if ((len = next_item(&p, 0)) == 0)
			break;
		if (cfg->n_webhooks == CONFIG_MAX_WEBHOOKS)
			return "too many webhook URLs (at most 8)";
		if (len >= CONFIG_MAX_URL_LEN || url_parse_fetchable(p, len, &parts, why,
		    sizeof(why)) < 0)
			return "not an http or https URL";
		if ((cfg->webhooks[cfg->n_webhooks] = strndup(p, len)) == NULL)
			return "out of memory";
		cfg->n_webhooks++;
		p += len;
	}
	return NULL;
}

static void
crl_urls_clear(struct stapler_config *cfg)
{
	for (size_t i = 0; i < cfg->n_crl_urls; i++)
		free(cfg->crl_urls[i].url);
	cfg->n_crl_urls = 0;
}

/* Parses [crl] urls: KEYHASH=URL pairs (the issuer key hash in hex, no colons; an http or
 * https URL), space separated; append: a continuation line. */
static const char *
set_crl_urls(struct stapler_config *cfg, const char *value, int append)
{
	const char *p = value;
	size_t len;

	if (!append)
		crl_urls_clear(cfg);
	while ((len = next_item(&p, 0)) > 0) {
		struct config_crl_url *u = &cfg->crl_urls[cfg->n_crl_urls];
		const char *eq = memchr(p, '=', len);
		struct url_parts parts;
		char hex[64], why[200];

		if (cfg->n_crl_urls == CONFIG_MAX_CRL_URLS)
			return "too many CRL URLs (at most 64)";
		if (eq == NULL || (size_t)(eq - p) >= sizeof(hex))
			return "not KEYHASH=URL";
		memcpy(hex, p, (size_t)(eq - p));
		hex[eq - p] = '\0';
		if (strchr(hex, ':') != NULL || util_unhex(hex, u->key_hash, sizeof(u->key_hash)) != 20)
			return "not an issuer key hash (40 hex digits) before '='";
		if (len - (size_t)(eq + 1 - p) >= CONFIG_MAX_URL_LEN ||
		    url_parse_fetchable(eq + 1, len - (size_t)(eq + 1 - p), &parts, why,
		    sizeof(why)) < 0)
			return "not an http or https URL after '='";
		if ((u->url = strndup(eq + 1, len - (size_t)(eq + 1 - p))) == NULL)
			return "out of memory";
		cfg->n_crl_urls++;
		p += len;
	}
	return NULL;
}

const char *
config_crl_url_find(const struct stapler_config *cfg, const unsigned char *key_hash)
{
	for (size_t i = 0; i < cfg->n_crl_urls; i++) {
		if (memcmp(cfg->crl_urls[i].key_hash, key_hash, 20) == 0)
			return cfg->crl_urls[i].url;
	}
	return NULL;
}

/* Applies one value; returns NULL or what is wrong with it. */
static const char *
apply(struct stapler_config *cfg, const struct key_def *k, const char *value)
{
	char *base = (char *)cfg;
	long long ll;
	size_t sz;
	long l;

	switch (k->type) {
	case K_STRING: {
		char **slot = (char **)(base + k->offset);
		char *copy;

		if (*value == '\0')
			return "must not be empty";
		if ((copy = strdup(value)) == NULL)
			return "out of memory";
		free(*slot);
		*slot = copy;
		return NULL;
	}
	case K_SIZE:
		if (util_parse_size(value, &sz) < 0)
			return "not a size (bytes, or a number with k or m)";
		if (k->max != 0 && (sz < (size_t)k->min || sz > (size_t)k->max))
			return "size out of range";
		*(size_t *)(base + k->offset) = sz;
		return NULL;
	case K_DURATION:
		if (util_parse_duration(value, &ll) < 0)
			return "not a duration (a number with s, m, h or d)";
		if (ll < k->min || (k->max != 0 && ll > k->max))
			return "duration out of range";
		*(long long *)(base + k->offset) = ll;
		return NULL;
	case K_LONG:
		if (util_parse_long(value, k->min, k->max, &l) < 0)
			return "not a whole number in range";
		*(long *)(base + k->offset) = l;
		return NULL;
	case K_HOSTS:
		return set_hosts(cfg, value, 0);
	case K_URLS:
		return set_urls(cfg, value);
	case K_CRL_URLS:
		return set_crl_urls(cfg, value, 0);
	case K_TEXT: {
		char **slot = (char **)(base + k->offset);
		char *copy;

		if ((copy = strdup(value)) == NULL)
			return "out of memory";
		free(*slot);
		*slot = copy;
		return NULL;
	}
	case K_ADDRS:
		return set_addrs(cfg, value);
	case K_LEVEL: {
		static const char *const levels[] = { "error", "warn", "info", "debug" };

		for (size_t i = 0; i < UTIL_ARRAY_LEN(levels); i++) {
			if (strcmp(value, levels[i]) == 0) {
				char **slot = (char **)(base + k->offset);

				free(*slot);
				*slot = strdup(value);
				return *slot == NULL ? "out of memory" : NULL;
			}
		}
		return "must be error, warn, info or debug";
	}
	case K_HASH_ALG:
		/* Lowercase only, as documented: one spelling per value. */
		for (int i = 0; i < STAPLER_HASH_ALG_COUNT; i++) {
			if (strcmp(value, stapler_hash_alg_name((enum stapler_hash_alg)i)) == 0) {
				*(enum stapler_hash_alg *)(base + k->offset) = (enum stapler_hash_alg)i;
				return NULL;
			}
		}
		return "must be sha1, sha256, sha384 or sha512";
	}
	return "unknown key type";
}

static void
responders_clear(struct stapler_config *cfg)
{
	for (size_t i = 0; i < cfg->n_responders; i++) {
		for (int j = 0; j < cfg->responders[i].n; j++)
			free(cfg->responders[i].url[j]);
	}
	free(cfg->responders);
	cfg->responders = NULL;
	cfg->n_responders = 0;
}

/* The host of a responder URL (lowercase, brackets kept for IPv6) into host, through the one
 * URL parser the fetcher uses; NULL or what is wrong with the URL (in why). */
static const char *
url_host(const char *url, char *host, size_t cap, char *why, size_t whylen)
{
	struct url_parts parts;
	char reason[200];

	if (url_parse_fetchable(url, strlen(url), &parts, reason, sizeof(reason)) < 0) {
		snprintf(why, whylen, "responder URL refused: %s", reason);
		return why;
	}
	if (util_strlcpy(host, parts.host, cap) < 0) {
		snprintf(why, whylen, "responder URL host too long");
		return why;
	}
	return NULL;
}

/* Appends the space-separated URLs of value to r (which owns them, also on failure); returns
 * NULL or what is wrong. */
static const char *
responder_urls(struct config_responder *r, const char *value, char *reason, size_t reasonlen)
{
	const char *p = value, *why;
	char host[URL_HOST_MAX];

	while (*p != '\0') {
		size_t len;

		if ((len = next_item(&p, 0)) == 0)
			break;
		if (r->n == CONFIG_MAX_RESPONDER_URLS)
			return "too many responder URLs (at most 4)";
		if ((r->url[r->n] = strndup(p, len)) == NULL)
			return "out of memory";
		if ((why = url_host(r->url[r->n++], host, sizeof(host), reason, reasonlen)) != NULL)
			return why;
		p += len;
	}
	return NULL;
}

/* Parses one [responders] line; returns NULL or a message. */
static const char *
responder_add(struct stapler_config *cfg, const char *name, const char *value, int line,
    char *reason, size_t reasonlen)
{
	struct config_responder r = { .line = line }, *grown;
	const char *why = NULL;

	if (util_unhex(name, r.key_hash, sizeof(r.key_hash)) != (int)sizeof(r.key_hash))
		return "not an issuer key hash (40 hex digits: SHA-1 of the CA public key)";
	if (config_responder_find(cfg, r.key_hash) != NULL)
		return "issuer listed twice in [responders]";
	if (cfg->n_responders >= CONFIG_MAX_RESPONDERS)
		return "too many [responders] entries";
	if ((why = responder_urls(&r, value, reason, reasonlen)) != NULL)
		goto fail;
	if (r.n == 0) {
		why = "no responder URL";
		goto fail;
	}
	if ((grown = realloc(cfg->responders, (cfg->n_responders + 1) * sizeof(*grown))) == NULL) {
		why = "out of memory";
		goto fail;
	}
	cfg->responders = grown;
	cfg->responders[cfg->n_responders++] = r;
	return NULL;
fail:
	for (int i = 0; i < r.n; i++)
		free(r.url[i]);
	return why;
}

/* An indented continuation of the [responders] entry above it: more URLs, in order. */
static int
responder_more(struct parse_ctx *ctx, const char *name, const char *value)
{
	struct config_responder *r;
	const char *why;
	char reason[256];

	if (ctx->cfg->n_responders == 0)
		return set_error(ctx, name, "continuation line without a [responders] entry above");
	r = &ctx->cfg->responders[ctx->cfg->n_responders - 1];
	if ((why = responder_urls(r, value, reason, sizeof(reason))) != NULL)
		return set_error(ctx, name, why);
	return 1;
}

/* One [responders] line. inih also splits at ':', so "AB:CD:…:EF = url" arrives as name "AB"
 * and value "CD:…:EF = url": the key is put back together up to the '='. */
static int
responder_line(struct parse_ctx *ctx, const char *name, const char *value)
{
	char key[128], reason[256];
	const char *eq = strchr(value, '='), *why;
	size_t klen;

	if (eq != NULL && strspn(value, "0123456789abcdefABCDEF: \t") == (size_t)(eq - value)) {
		klen = (size_t)(eq - value);
		while (klen > 0 && (value[klen - 1] == ' ' || value[klen - 1] == '\t'))
			klen--;
		if (snprintf(key, sizeof(key), "%s:%.*s", name, (int)klen, value) >= (int)sizeof(key))
			return set_error(ctx, name, "not an issuer key hash");
		for (value = eq + 1; *value == ' ' || *value == '\t'; value++)
			;
		name = key;
	}
	if ((why = responder_add(ctx->cfg, name, value, ctx->line, reason,
	    sizeof(reason))) != NULL)
		return set_error(ctx, name, why);
	return 1;
}

/* After the whole file is read ([upstream] may come later): every override URL must pass the
 * allow list. Returns 0 or -1 with ctx's error set. */
static int
responders_check(struct parse_ctx *ctx)
{
	struct stapler_config *cfg = ctx->cfg;
	char host[URL_HOST_MAX], key[2 * 20 + 1], msg[320], why[256];

	for (size_t i = 0; i < cfg->n_responders; i++) {
		for (int j = 0; j < cfg->responders[i].n; j++) {
			if (url_host(cfg->responders[i].url[j], host, sizeof(host), why, sizeof(why)) != NULL ||
			    config_host_allowed(cfg, host))
				continue;
			util_hex(cfg->responders[i].key_hash, 20, key);
			ctx->line = cfg->responders[i].line;
			snprintf(msg, sizeof(msg), "host %.200s is not in [upstream] allow", host);
			set_error(ctx, key, msg);
			return -1;
		}
	}
	return 0;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	char msg[160];

	if (ctx->failed)
		return 0;
	if (name == NULL) {
		/* inih reports a section header with a NULL name (INI_CALL_HANDLER_ON_NEW_SECTION). */
		return 1;
	}
	if (strcmp(section, "responders") == 0)
		return ctx->cont ? responder_more(ctx, name, value) : responder_line(ctx, name, value);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keys); i++) {
		const char *why;

		if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].name, name) != 0)
			continue;
		/* A host list may go on over indented continuation lines. */
		if (keys[i].type == K_HOSTS && ctx->cont)
			why = set_hosts(ctx->cfg, value, 1);
		else if (keys[i].type == K_CRL_URLS && ctx->cont)
			why = set_crl_urls(ctx->cfg, value, 1);
		else
			why = apply(ctx->cfg, &keys[i], value);
		if (why != NULL)
			return set_error(ctx, name, why);
		return 1;
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keys); i++) {
		if (strcmp(keys[i].section, section) == 0) {
			snprintf(msg, sizeof(msg), "unknown key in section [%s]", section);
			return set_error(ctx, name, msg);
		}
	}
	snprintf(msg, sizeof(msg), "unknown section [%s]", section);
	return set_error(ctx, name, msg);
}

/* fgets that counts lines, so errors can name the line inih is on. */
static char *
reader(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->fp);
	size_t n;
	int c;

	if (r == NULL)
		return NULL;
	ctx->line++;
	n = strlen(str);
	/* inih would take the rest of a long line as a line of its own: refuse it here, where the
	 * line number is still right. A line of exactly num - 1 bytes plus its newline is fine. */
	if (n == (size_t)num - 1 && str[n - 1] != '\n') {
		if ((c = getc(ctx->fp)) != '\n' && c != EOF) {
			ctx->too_long = ctx->line;
			return NULL;
		}
	}
	ctx->cont = str[0] == ' ' || str[0] == '\t';
	return r;
}
struct stapler_config *
config_default(void)
{
	struct stapler_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keys); i++) {
		if (apply(cfg, &keys[i], keys[i].def) != NULL && keys[i].type != K_HOSTS) {
			config_free(&cfg);
			return NULL;
		}
	}
	return cfg;
}

struct stapler_config *
config_load(const char *path, char *err, size_t errlen)
{
	struct stapler_config *cfg = NULL;
	struct parse_ctx ctx = { 0 };
	int r;

	if ((cfg = config_default()) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if ((cfg->path = strdup(path)) == NULL)
		goto fail;
	ctx.cfg = cfg;
	ctx.path = path;
	ctx.err = err;
	ctx.errlen = errlen;
	if ((ctx.fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	r = ini_parse_stream(reader, &ctx, handler, &ctx);
	fclose(ctx.fp);
	if (ctx.too_long && (!ctx.failed || ctx.too_long < ctx.failed) && (r <= 0 || r > ctx.too_long)) {
		snprintf(err, errlen, "%s:%d: line longer than %d bytes (a long list goes on over "
		    "indented continuation lines)", path, ctx.too_long, INI_MAX_LINE - 1);
		goto fail;
	}
	/* inih keeps going after a syntax error and returns the first line it failed on (ours
	 * included), so a syntax error before our first value error is the one to report:
	 * after "[server" every key would be in section "". */
	if (ctx.failed && (r <= 0 || r >= ctx.failed))
		goto fail;
	if (r != 0) {
		/* A syntax error inih found itself (no '=' or an unclosed section). */
		snprintf(err, errlen, "%s:%d: syntax error", path, r);
		goto fail;
	}
	if (responders_check(&ctx) < 0)
		goto fail;
	return cfg;
fail:
	config_free(&cfg);
	return NULL;
}

/* The webhook list of old back into ncfg when they differ: 1, 0 when the same, -1 (memory). */
static int
keep_webhooks(const struct stapler_config *old, struct stapler_config *ncfg)
{
	char *copy[CONFIG_MAX_WEBHOOKS];
	size_t i;

	for (i = 0; old->n_webhooks == ncfg->n_webhooks && i < old->n_webhooks; i++)
		if (strcmp(old->webhooks[i], ncfg->webhooks[i]) != 0)
			break;
	if (old->n_webhooks == ncfg->n_webhooks && i == old->n_webhooks)
		return 0;
	for (i = 0; i < old->n_webhooks; i++) {
		if ((copy[i] = strdup(old->webhooks[i])) == NULL) {
			while (i > 0)
				free(copy[--i]);
			return -1;
		}
	}
	webhooks_clear(ncfg);
	for (i = 0; i < old->n_webhooks; i++)
		ncfg->webhooks[i] = copy[i];
	ncfg->n_webhooks = old->n_webhooks;
	return 1;
}

int
config_keep_restart_only(const struct stapler_config *old, struct stapler_config *ncfg,
    char *names, size_t cap)
{
	size_t len = 0;
	int n = 0;

	if (cap > 0)
		names[0] = '\0';
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct key_def *k = &keys[i];
		char **was, **now, *copy;
		int kept;

		if (!k->restart)
			continue;
		if (k->type == K_URLS) {
			if ((kept = keep_webhooks(old, ncfg)) < 0)
				return -1;
			if (kept && len < cap)
				len += (size_t)snprintf(names + len, cap - len, "%s%s.%s", n ? " " : "",
				    k->section, k->name);
			n += kept;
			continue;
		}
		/* Strings and the webhook list are the restart-only types; a key of another type
		 * set RESTART would need its own comparison here. */
		if (k->type != K_STRING)
			continue;
		was = (char **)(void *)((char *)(uintptr_t)old + k->offset);
		now = (char **)(void *)((char *)ncfg + k->offset);
		if (strcmp(*was, *now) == 0)
			continue;
		if ((copy = strdup(*was)) == NULL)
			return -1;
		free(*now);
		*now = copy;
		if (len < cap)
			len += (size_t)snprintf(names + len, cap - len, "%s%s.%s", n ? " " : "",
			    k->section, k->name);
		n++;
	}
	return n;
}

int
config_key_restart_only(const char *section, const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return keys[i].restart;
	return -1;
}

size_t
config_key_count(void)
{
	return sizeof(keys) / sizeof(keys[0]);
}

int
config_key_at(size_t i, const char **section, const char **name)
{
	if (i >= sizeof(keys) / sizeof(keys[0]))
		return -1;
	*section = keys[i].section;
	*name = keys[i].name;
	return keys[i].restart;
}

void
config_free(struct stapler_config **cfgp)
{
	struct stapler_config *cfg;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	free(cfg->path);
	free(cfg->listen);
	free(cfg->admin_socket);
	free(cfg->database);
	free(cfg->ca_file);
	free(cfg->log_level);
	free(cfg->events_secret);
	free(cfg->events_source);
	webhooks_clear(cfg);
	crl_urls_clear(cfg);
	hosts_clear(cfg);
	responders_clear(cfg);
	free(cfg);
	*cfgp = NULL;
}

int
config_host_allowed(const struct stapler_config *cfg, const char *host)
{
	if (cfg->n_allow == 0)
		return 1;
	for (size_t i = 0; i < cfg->n_allow; i++) {
		if (strcasecmp(cfg->allow[i], host) == 0)
			return 1;
	}
	return 0;
}

const struct config_responder *
config_responder_find(const struct stapler_config *cfg, const unsigned char *key_hash)
{
	for (size_t i = 0; i < cfg->n_responders; i++) {
		if (memcmp(cfg->responders[i].key_hash, key_hash, sizeof(cfg->responders[i].key_hash)) == 0)
			return &cfg->responders[i];
	}
	return NULL;
}

int
config_split_listen(const char *listen, char *host, size_t cap, unsigned short *port)
{
	const char *colon;
	size_t hlen;
	long p;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		hlen = (size_t)(close - listen - 1);
		listen++;
		colon = close + 1;
	} else {
		if ((colon = strrchr(listen, ':')) == NULL)
			return -1;
		hlen = (size_t)(colon - listen);
	}
	if (hlen == 0 || hlen >= cap || util_parse_long(colon + 1, 0, 65535, &p) < 0)
		return -1;
	memcpy(host, listen, hlen);
	host[hlen] = '\0';
	*port = (unsigned short)p;
	return 0;
}
