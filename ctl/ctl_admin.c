/* staplerctl's actions, through the daemon's admin socket (docs/admin-protocol.md): import,
 * refresh, evict. The daemon is the only writer of the cache. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "config.h"
#include "fmt.h"
#include "unixsock.h"
#include "util.h"

/* Submissions in flight at once on the connection. */
#define IMPORT_PARALLEL 8
/* A certificate file larger than this is not a certificate (the daemon caps bodies too). */
#define IMPORT_FILE_MAX (1024 * 1024)
/* Files one import takes (a directory's entries included). */
#define IMPORT_MAX_FILES 100000
/* A reply waits for upstream fetches, each bounded by [upstream] timeout per URL. */
#define REPLY_TIMEOUT_MS (10 * 60 * 1000)
#define REPLY_MAX (64 * 1024)

struct conn {
	int fd;
	const char *path;
	char buf[REPLY_MAX];
	size_t len;
};

/* Connects to the daemon; prints the one-line error and returns -1 when it is not there. */
static int
conn_open(struct ctl *ctl, struct conn *c)
{
	const struct stapler_config *cfg = ctl_config(ctl);
	char err[512];

	c->len = 0;
	if (cfg == NULL)
		return -1;
	c->path = cfg->admin_socket;
	if (c->path == NULL || c->path[0] == '\0') {
		ctl_err("%s: admin_socket is not set, so the daemon cannot be asked", ctl->conf_path);
		return -1;
	}
	if ((c->fd = unixsock_connect(c->path, err, sizeof(err))) < 0) {
		ctl_err("cannot reach staplerd at %s (is the daemon running?)", err);
		return -1;
	}
	return 0;
}

static int
conn_send(struct conn *c, const char *line, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ctl_err("lost the connection to staplerd at %s: %s", c->path, strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Reads one reply line into out (NUL-terminated, no '\n'). Returns 0 or -1 (printed). */
static int
conn_recv(struct conn *c, char *out, size_t cap)
{
	char *nl;

	while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int pr;

		if (c->len == sizeof(c->buf)) {
			ctl_err("reply from staplerd too long");
			return -1;
		}
		if ((pr = poll(&pfd, 1, REPLY_TIMEOUT_MS)) < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			ctl_err("no reply from staplerd at %s in %d s", c->path, REPLY_TIMEOUT_MS / 1000);
			return -1;
		}
		if ((n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len)) < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ctl_err("staplerd at %s closed the connection%s%s", c->path, n < 0 ? ": " : "",
			    n < 0 ? strerror(errno) : "");
			return -1;
		}
		c->len += (size_t)n;
	}
	*nl = '\0';
	util_strlcpy(out, c->buf, cap);
	c->len -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->len);
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* One request, one reply. Returns 0 with the reply in out, or -1 (printed). */
static int
request(struct ctl *ctl, const char *line, char *out, size_t cap)
{
	struct conn c = { .fd = -1 };
	int rc = -1;

	if (conn_open(ctl, &c) < 0)
		return -1;
	if (conn_send(&c, line, strlen(line)) == 0 && conn_recv(&c, out, cap) == 0)
		rc = 0;
	conn_close(&c);
	return rc;
}

int
ctl_daemon_ask(struct ctl *ctl, const char *line, char *out, size_t cap)
{
	const struct stapler_config *cfg = ctl_config(ctl);
	struct conn c = { .fd = -1 };
	char err[512];
	int rc = -1;

	if (cfg == NULL || cfg->admin_socket == NULL || cfg->admin_socket[0] == '\0')
		return -1;
	c.path = cfg->admin_socket;
	if ((c.fd = unixsock_connect(c.path, err, sizeof(err))) < 0)
		return -1;
	if (conn_send(&c, line, strlen(line)) == 0 && conn_recv(&c, out, cap) == 0 &&
	    strncmp(out, "ok", 2) == 0 && (out[2] == '\0' || out[2] == ' '))
		rc = 0;
	conn_close(&c);
	return rc;
}

static const char *
kv(const char *line, const char *key, char *buf, size_t cap)
{
	if (fmt_kv_get(line, key, buf, cap) != 1)
		buf[0] = '\0';
	return buf;
}

/* The exit code for an error reply: bad input, not found and failed fetches are the thing
 * asked about (1); a malformed request, an ambiguous serial, a busy daemon are usage or
 * environment (2). */
static int
error_exit(const char *outcome)
{
	static const char *const usage_outcomes[] = { "bad_request", "ambiguous", "busy",
		"unavailable" };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(usage_outcomes); i++) {
		if (strcmp(outcome, usage_outcomes[i]) == 0)
			return CTL_USAGE;
	}
	return CTL_BAD;
}

/* Prints an error reply in one line (JSON on stdout with --json) and returns its exit code. */
static int
report_error(struct ctl *ctl, const char *reply)
{
	char outcome[32], error[1024], issuers[1024], hashes[64], params[32];
	char serial[STAPLER_SERIAL_HEX_MAX];

	kv(reply, "outcome", outcome, sizeof(outcome));
	kv(reply, "error", error, sizeof(error));
	kv(reply, "issuers", issuers, sizeof(issuers));
	kv(reply, "hashes", hashes, sizeof(hashes));
	kv(reply, "params", params, sizeof(params));
	kv(reply, "serial", serial, sizeof(serial));
	if (ctl->json) {
		printf("{\"ok\":false,\"outcome\":");
		fmt_json_str(stdout, outcome);
		printf(",\"error\":");
		fmt_json_str(stdout, error);
		if (issuers[0] != '\0') {
			printf(",\"issuers\":[");
			for (char *p = issuers, *e; *p; p = *e ? e + 1 : e) {
				e = p + strcspn(p, ",");
				printf("%s\"%.*s\"", p == issuers ? "" : ",", (int)(e - p), p);
			}
			printf("]");
		}
		if (hashes[0] != '\0') {
			printf(",\"hashes\":");
			fmt_json_str(stdout, hashes);
		}
		if (params[0] != '\0') {
			printf(",\"params\":");
			fmt_json_str(stdout, params);
		}
		printf("}\n");
	}
	if (issuers[0] != '\0')
		ctl_err("%s: choose one with --issuer: %s", error, issuers);
	else if (hashes[0] != '\0')
		ctl_err("%s: choose one with --hash: %s", error, hashes);
	else if (params[0] != '\0')
		ctl_err("%s: choose one with --params: %s", error, params);
	else
		ctl_err("%s%s%s (%s)", serial[0] ? serial : "", serial[0] ? ": " : "", error, outcome);
	return error_exit(outcome);
}

/* Builds "VERB serial=S [issuer=H] [hash=A] [params=P]" from SERIAL [--issuer HASH] [--hash ALG]
 * [--params P]; -1 to go on, else exit. */
static int
key_request(struct ctl *ctl, const char *name, int argc, char **argv, int allow_bulk,
    char *line, size_t cap)
{
	static const struct option longopts[] = {
		{ "issuer", required_argument, NULL, 'i' },
		{ "hash", required_argument, NULL, 'H' },
		{ "params", required_argument, NULL, 'P' },
		{ "all", no_argument, NULL, 'a' },
		{ "due", no_argument, NULL, 'd' },
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *issuer = NULL, *bulk = NULL, *alg = NULL, *params = NULL;
	enum stapler_hash_params pa;
	enum stapler_hash_alg a;
	size_t len;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, ":hj", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			issuer = optarg;
			break;
		case 'H':
			if (stapler_hash_alg_parse(optarg, &a) < 0)
				return ctl_usage_error(name, "--hash %s: not sha1, sha256, sha384 or "
				    "sha512", optarg);
			alg = stapler_hash_alg_name(a);
			break;
		case 'P':
			if (stapler_hash_params_parse(optarg, &pa) < 0)
				return ctl_usage_error(name, "--params %s: not null or absent", optarg);
			params = stapler_hash_params_name(pa);
			break;
		case 'a':
		case 'd':
			if (!allow_bulk)
				return ctl_usage_error(name, "unknown option %s", argv[optind - 1]);
			bulk = ch == 'a' ? "all" : "due";
			break;
		default:
			if ((rc = ctl_common_opt(ctl, name, ch, argv)) >= 0)
				return rc;
		}
	}
	len = (size_t)snprintf(line, cap, "%s", name);
	if (bulk != NULL) {
		if (optind != argc || issuer != NULL || alg != NULL || params != NULL)
			return ctl_usage_error(name, "--%s takes no SERIAL, --issuer, --hash or "
			    "--params", bulk);
		fmt_kv_add(line, &len, cap, bulk, "1");
	} else {
		char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];

		if (optind + 1 != argc)
			return ctl_usage_error(name, optind == argc ? "SERIAL missing" : "one SERIAL only");
		if (fmt_serial(argv[optind], serial) < 0)
			return ctl_usage_error(name, "%s: not a serial (hex digits, ':' allowed)",
			    argv[optind]);
		fmt_kv_add(line, &len, cap, "serial", serial);
		if (issuer != NULL) {
			if (fmt_key_hash(issuer, hash) < 0)
				return ctl_usage_error(name, "%s: not an issuer key or name hash (40 hex "
				    "digits)", issuer);
			fmt_kv_add(line, &len, cap, "issuer", hash);
		}
		if (alg != NULL)
			fmt_kv_add(line, &len, cap, "hash", alg);
		if (params != NULL)
			fmt_kv_add(line, &len, cap, "params", params);
	}
	if (len + 1 < cap) {
		line[len++] = '\n';
		line[len] = '\0';
	}
	return -1;
}

/* Prints the fields of an ok reply: as JSON (the listed keys, numbers where numeric) or as
 * one human line. */
static void
print_ok(struct ctl *ctl, const char *reply, const char *what)
{
	static const char *const keys[] = { "serial", "issuer", "hash", "params", "status",
		"this_update",
		"next_update", "fetched_at", "refreshed", "failed", "marked", "error" };
	char v[1024];

	if (ctl->json) {
		printf("{\"ok\":true");
		for (size_t i = 0; i < UTIL_ARRAY_LEN(keys); i++) {
			const char *p;

			if (fmt_kv_get(reply, keys[i], v, sizeof(v)) != 1)
				continue;
			printf(",\"%s\":", keys[i]);
			for (p = v; *p >= '0' && *p <= '9'; p++)
				;
			if (*p == '\0' && v[0] != '\0' && strcmp(keys[i], "serial") != 0)
				printf("%s", v);
			else
				fmt_json_str(stdout, v);
		}
		printf("}\n");
		return;
	}
	printf("%s", what);
	if (fmt_kv_get(reply, "serial", v, sizeof(v)) == 1)
		printf(" serial %s", v);
	if (fmt_kv_get(reply, "issuer", v, sizeof(v)) == 1)
		printf(" (issuer %s", v);
	if (fmt_kv_get(reply, "issuer", v, sizeof(v)) == 1 &&
	    fmt_kv_get(reply, "hash", v, sizeof(v)) == 1 && strcmp(v, "sha1") != 0)
		printf(", %s CertID", v);
	if (fmt_kv_get(reply, "issuer", v, sizeof(v)) == 1 &&
	    fmt_kv_get(reply, "params", v, sizeof(v)) == 1 && strcmp(v, "null") != 0)
		printf(", %s parameters", v);
	if (fmt_kv_get(reply, "issuer", v, sizeof(v)) == 1)
		printf(")");
	if (fmt_kv_get(reply, "status", v, sizeof(v)) == 1)
		printf(": %s", v);
	if (fmt_kv_get(reply, "next_update", v, sizeof(v)) == 1) {
		char rel[32];
		long t;

		if (util_parse_long(v, 0, LONG_MAX, &t) == 0) {
			fmt_reltime(t, (long long)ctl->now, rel, sizeof(rel));
			printf(", next update %s", rel);
		}
	}
	if (fmt_kv_get(reply, "marked", v, sizeof(v)) == 1)
		printf(" %s entries marked due; the scheduler refetches them", v);
	if (fmt_kv_get(reply, "refreshed", v, sizeof(v)) == 1) {
		printf(" %s due entries", v);
		if (fmt_kv_get(reply, "failed", v, sizeof(v)) == 1 && strcmp(v, "0") != 0)
			printf(", %s failed (first: %s)", v, kv(reply, "error", v, sizeof(v)));
	}
	printf("\n");
}

static int
simple_action(struct ctl *ctl, const char *name, const char *what, int argc, char **argv,
    int allow_bulk)
{
	char line[512], reply[REPLY_MAX];
	int rc;

	if ((rc = key_request(ctl, name, argc, argv, allow_bulk, line, sizeof(line))) >= 0)
		return rc;
	if (request(ctl, line, reply, sizeof(reply)) < 0)
		return CTL_USAGE;
	if (strncmp(reply, "ok", 2) != 0 || (reply[2] != ' ' && reply[2] != '\0'))
		return report_error(ctl, reply);
	print_ok(ctl, reply, what);
	{
		char failed[16];

		/* refresh --due: any failed refetch is bad news. */
		if (fmt_kv_get(reply, "failed", failed, sizeof(failed)) == 1 && strcmp(failed, "0") != 0)
			return CTL_BAD;
	}
	return CTL_OK;
}

int
ctl_cmd_refresh(struct ctl *ctl, int argc, char **argv)
{
	return simple_action(ctl, "refresh", "refreshed", argc, argv, 1);
}

int
ctl_cmd_evict(struct ctl *ctl, int argc, char **argv)
{
	return simple_action(ctl, "evict", "evicted", argc, argv, 0);
}

/* --- import ---------------------------------------------------------------------------- */

struct item {
	char *path;
	int done, ok;
	char *reply;          /* the daemon's reply line, or our own error as a reply */
};

struct import {
	struct item *items;
	size_t n, cap;
};

static int
add_item(struct import *im, const char *path)
{
	if (im->n == IMPORT_MAX_FILES) {
		ctl_err("more than %d files", IMPORT_MAX_FILES);
		return -1;
	}
	if (im->n == im->cap) {
		size_t ncap = im->cap ? im->cap * 2 : 64;
		struct item *n = realloc(im->items, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		im->items = n;
		im->cap = ncap;
	}
	memset(&im->items[im->n], 0, sizeof(im->items[0]));
	if ((im->items[im->n].path = strdup(path)) == NULL)
		return -1;
	im->n++;
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files (not hidden), sorted. */
static int
add_dir(struct import *im, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **list = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (d == NULL) {
		ctl_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			char **nl = realloc(list, (cap = cap ? cap * 2 : 64) * sizeof(*nl));

			if (nl == NULL) {
				rc = -1;
				break;
			}
			list = nl;
		}
		if ((list[n] = strdup(path)) == NULL)
			rc = -1;
		else
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(list, n, sizeof(*list), name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && add_item(im, list[i]) < 0)
			rc = -1;
		free(list[i]);
	}
	free(list);
	return rc;
}

/* Sends item i; a file that cannot be read fails locally. Returns 1 when sent, 0 when failed
 * locally, -1 when the connection broke. */
static int
send_item(struct conn *c, struct item *it, size_t i)
{
	unsigned char *body;
	char err[512], *b64, *line;
	size_t len, cap;
	int rc;

	if ((body = ctl_read_file(it->path, IMPORT_FILE_MAX, &len, err, sizeof(err))) == NULL ||
	    len == 0) {
		char r[700];
		size_t rl = (size_t)snprintf(r, sizeof(r), "error");

		fmt_kv_add(r, &rl, sizeof(r), "outcome", "bad_input");
		fmt_kv_add(r, &rl, sizeof(r), "error", body == NULL ? err : "empty file");
		free(body);
		it->done = 1;
		it->reply = strdup(r);
		return 0;
	}
	b64 = util_base64(body, len);
	free(body);
	cap = (b64 ? strlen(b64) : 0) + 64;
	if (b64 == NULL || (line = malloc(cap)) == NULL) {
		free(b64);
		ctl_err("out of memory");
		return -1;
	}
	snprintf(line, cap, "submit id=%zu body=%s\n", i, b64);
	free(b64);
	rc = conn_send(c, line, strlen(line));
	free(line);
	return rc < 0 ? -1 : 1;
}

static void
progress(size_t done, size_t n, size_t failed)
{
	int width = 30, fill = n ? (int)(done * (size_t)width / n) : width;

	fprintf(stderr, "\r[%.*s%*s] %zu/%zu  failed %zu", fill,
	    "==============================", width - fill, "", done, n, failed);
	if (done == n)
		fputc('\n', stderr);
	fflush(stderr);
}

static void
import_report(struct ctl *ctl, const struct import *im, size_t ok)
{
	char v[1024];

	if (ctl->json) {
		printf("{\"submitted\":%zu,\"ok\":%zu,\"failed\":%zu,\"results\":[", im->n, ok,
		    im->n - ok);
		for (size_t i = 0; i < im->n; i++) {
			const struct item *it = &im->items[i];
			const char *r = it->reply ? it->reply : "";

			printf("%s{\"file\":", i ? "," : "");
			fmt_json_str(stdout, it->path);
			printf(",\"ok\":%s", it->ok ? "true" : "false");
			if (it->ok) {
				printf(",\"serial\":");
				fmt_json_str(stdout, kv(r, "serial", v, sizeof(v)));
				printf(",\"issuer\":");
				fmt_json_str(stdout, kv(r, "issuer", v, sizeof(v)));
				printf(",\"status\":");
				fmt_json_str(stdout, kv(r, "status", v, sizeof(v)));
				printf(",\"next_update\":%s", kv(r, "next_update", v, sizeof(v))[0] ? v : "0");
			} else {
				printf(",\"outcome\":");
				fmt_json_str(stdout, kv(r, "outcome", v, sizeof(v)));
				printf(",\"http\":%s", kv(r, "http", v, sizeof(v))[0] ? v : "null");
				printf(",\"error\":");
				fmt_json_str(stdout, kv(r, "error", v, sizeof(v)));
			}
			printf("}");
		}
		printf("]}\n");
		return;
	}
	printf("imported %zu of %zu certificate files, %zu failed\n", ok, im->n, im->n - ok);
	for (size_t i = 0; i < im->n; i++) {
		const struct item *it = &im->items[i];
		const char *r = it->reply ? it->reply : "";
		char outcome[32], http[8];

		if (it->ok)
			continue;
		kv(r, "outcome", outcome, sizeof(outcome));
		kv(r, "http", http, sizeof(http));
		printf("  %s: %s%s%s%s: %s\n", it->path, outcome, http[0] ? " (" : "", http,
		    http[0] ? ")" : "", kv(r, "error", v, sizeof(v)));
	}
}

int
ctl_cmd_import(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = { CTL_COMMON_LONGOPTS, { NULL, 0, NULL, 0 } };
	struct import im = { 0 };
	struct conn c = { .fd = -1 };
	size_t next = 0, done = 0, ok = 0, outstanding = 0;
	char *reply = NULL;
	int ch, rc = CTL_USAGE, bar;

	while ((ch = getopt_long(argc, argv, ":hj", longopts, NULL)) != -1) {
		if ((rc = ctl_common_opt(ctl, "import", ch, argv)) >= 0)
			return rc;
	}
	if (optind == argc)
		return ctl_usage_error("import", "FILE or DIR missing");
	for (int i = optind; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode) ? add_dir(&im, argv[i]) < 0 :
		    add_item(&im, argv[i]) < 0)
			goto out;
	}
	if (im.n == 0) {
		ctl_err("no files to import");
		goto out;
	}
	if (conn_open(ctl, &c) < 0 || (reply = malloc(REPLY_MAX)) == NULL)
		goto out;
	bar = !ctl->json && isatty(STDERR_FILENO);
	while (done < im.n) {
		char id[24];
		long i;
		int sent;

		while (next < im.n && outstanding < IMPORT_PARALLEL) {
			if ((sent = send_item(&c, &im.items[next], next)) < 0)
				goto out;
			if (sent == 0)
				done++;
			outstanding += (size_t)sent;
			next++;
		}
		if (outstanding > 0) {
			if (conn_recv(&c, reply, REPLY_MAX) < 0)
				goto out;
			if (fmt_kv_get(reply, "id", id, sizeof(id)) != 1 ||
			    util_parse_long(id, 0, (long)im.n - 1, &i) < 0 || im.items[i].done) {
				ctl_err("unexpected reply from staplerd: %.200s", reply);
				goto out;
			}
			im.items[i].done = 1;
			im.items[i].ok = strncmp(reply, "ok ", 3) == 0;
			im.items[i].reply = strdup(reply);
			ok += (size_t)im.items[i].ok;
			outstanding--;
			done++;
		}
		if (bar)
			progress(done, im.n, done - ok);
	}
	import_report(ctl, &im, ok);
	rc = ok == im.n ? CTL_OK : CTL_BAD;
out:
	conn_close(&c);
	free(reply);
	for (size_t i = 0; i < im.n; i++) {
		free(im.items[i].path);
		free(im.items[i].reply);
	}
	free(im.items);
	return rc;
}

/* How often `events --follow` asks for new events (milliseconds). */
#define EVENTS_FOLLOW_MS 500

/* Prints one `event` line of the daemon's reply. */
static void
print_event(struct ctl *ctl, const char *line)
{
	char seq[24], id[64], type[32], subject[256], t[24], data[REPLY_MAX / 2], when[21];
	long v;

	if (ctl->json) {
		/* NDJSON: one CloudEvents object per line, as the webhooks get it. */
		printf("%s\n", kv(line, "cloudevent", data, sizeof(data)));
		return;
	}
	kv(line, "seq", seq, sizeof(seq));
	kv(line, "event_id", id, sizeof(id));
	kv(line, "type", type, sizeof(type));
	kv(line, "subject", subject, sizeof(subject));
	kv(line, "time", t, sizeof(t));
	kv(line, "data", data, sizeof(data));
	if (util_parse_long(t, 0, LONG_MAX, &v) < 0)
		v = 0;
	util_iso_time((time_t)v, when);
	printf("%-6s %s %-18s %s %s id=%s\n", seq, when, type, subject, data, id);
}

int
ctl_cmd_events(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct conn c = { .fd = -1 };
	long since = 0;
	int follow = 0, ch, rc;
	char line[128], reply[REPLY_MAX], last[24];

	optind = 1;
	while ((ch = getopt_long(argc, argv, "fs:hj", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			follow = 1;
			break;
		case 's':
			if (util_parse_long(optarg, 0, LONG_MAX, &since) < 0)
				return ctl_usage_error(argv[0], "--since takes an event seq (a number)");
			break;
		default:
			if ((rc = ctl_common_opt(ctl, argv[0], ch, argv)) >= 0)
				return rc;
		}
	}
	if (optind != argc)
		return ctl_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if (conn_open(ctl, &c) < 0)
		return CTL_USAGE;
	for (;;) {
		snprintf(line, sizeof(line), "events since=%ld limit=1000%s\n", since,
		    ctl->json ? " json=1" : "");
		if (conn_send(&c, line, strlen(line)) < 0) {
			conn_close(&c);
			return CTL_USAGE;
		}
		for (;;) {
			if (conn_recv(&c, reply, sizeof(reply)) < 0) {
				conn_close(&c);
				return CTL_USAGE;
			}
			if (strncmp(reply, "event ", 6) == 0) {
				print_event(ctl, reply);
				continue;
			}
			break;
		}
		if (strncmp(reply, "ok", 2) != 0) {
			conn_close(&c);
			return report_error(ctl, reply);
		}
		fflush(stdout);
		if (util_parse_long(kv(reply, "last", last, sizeof(last)), 0, LONG_MAX, &since) < 0) {
			conn_close(&c);
			ctl_err("malformed reply from staplerd: %s", reply);
			return CTL_USAGE;
		}
		/* A full page means more wait: ask again at once. */
		if (strstr(reply, " count=1000") != NULL)
			continue;
		if (!follow)
			break;
		poll(NULL, 0, EVENTS_FOLLOW_MS);
	}
	conn_close(&c);
	return CTL_OK;
}
