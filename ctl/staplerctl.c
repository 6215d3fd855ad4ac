/* staplerctl: the admin CLI. Inspection reads the database read-only; actions go through the
 * daemon's admin socket; verify checks a staple offline. Command table, help, shared helpers. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"
#include "cache.h"
#include "cache_report.h"
#include "config.h"
#include "fmt.h"
#include "util.h"

static const struct ctl_command commands[] = {
	{ "list", ctl_cmd_list,
	  "list [--status good|revoked|unknown] [--due] [--expired] [--issuer HASH] [--json]",
	  "Lists cached staples from the database, by next refresh time: serial, subject, issuer\n"
	  "key hash (shortened), status, next update, last fetch, failures, last error.\n"
	  "  --status S     only entries with this certificate status\n"
	  "  --due          only entries whose refresh is due now\n"
	  "  --expired      only entries whose nextUpdate has passed (no longer served)\n"
	  "  --issuer HASH  only entries of this issuer (key hash, any case, ':' allowed)\n" },
	{ "show", ctl_cmd_show, "show SERIAL [--issuer HASH] [--hash ALG] [--params P] [--json]",
	  "Shows everything about one cached entry, with the decoded OCSP response. When two CAs\n"
	  "issued the same serial, --issuer picks one (the error lists the choices). Exits 1 when\n"
	  "the entry is not found or the certificate is revoked.\n" },
	{ "stats", ctl_cmd_stats, "stats [--json]",
	  "Counts entries by status, expired and expiring within 24 h, due and failing, and per\n"
	  "upstream (host of the OCSP URL) its healthy and failing entries.\n" },
	{ "export", ctl_cmd_export, "export SERIAL [--issuer HASH] [--hash ALG] [--params P] -o FILE|- [--json]",
	  "Writes the DER staple (exactly the bytes served) to FILE, atomically (a temporary file\n"
	  "in the same directory, then rename), or to standard output with -o -.\n" },
	{ "import", ctl_cmd_import, "import FILE...|DIR [--json]",
	  "Submits certificates to the daemon, as POST /v1/staple would: each file holds one PEM\n"
	  "certificate (optionally followed by its chain) or one DER certificate; a directory\n"
	  "means its files. Up to 8 submissions run at once. Reports every failure with its\n"
	  "reason; exits 1 when any failed.\n" },
	{ "refresh", ctl_cmd_refresh, "refresh SERIAL [--issuer HASH] [--hash ALG] [--params P] | --due | --all [--json]",
	  "Fetches a cached entry again now through the daemon and waits for the outcome.\n"
	  "  --due  fetch now every entry already due (at most 256 at once)\n"
	  "  --all  mark every entry due; the daemon's scheduler refetches them within its limits\n" },
	{ "evict", ctl_cmd_evict, "evict SERIAL [--issuer HASH] [--hash ALG] [--params P] [--json]",
	  "Removes an entry from the daemon's database and memory: it is no longer served, and\n"
	  "the next submission of the certificate fetches a new staple.\n" },
	{ "backup", ctl_cmd_backup, "backup FILE [--force] [--json]",
	  "Copies the database to FILE while the daemon runs: SQLite's online backup from a\n"
	  "read-only connection (it never blocks the daemon), written to FILE.tmp, checked with\n"
	  "PRAGMA integrity_check, then renamed to FILE. Refuses an existing FILE unless --force.\n"
	  "Restore: stop staplerd, remove the database's -wal and -shm files if left, copy FILE\n"
	  "to the database path (owner staplerd), start staplerd (docs/operations.md).\n" },
	{ "events", ctl_cmd_events, "events [--follow] [--since SEQ] [--json]",
	  "Prints the events the daemon raised (revocations, CRL withdrawals, staples expiring\n"
	  "unrefreshed, upstreams failing, refresh behind, database writes failing), oldest\n"
	  "first, from its outbox over the admin socket: seq, time, type, subject, data, id.\n"
	  "  --since SEQ  only events after this seq (the first column)\n"
	  "  --follow     keep printing events as they come, until interrupted\n"
	  "  --json       one CloudEvents 1.0 JSON object per line, as webhooks get them\n" },
	{ "verify", ctl_cmd_verify,
	  "verify --cert FILE [--chain FILE] --staple FILE [--ca FILE] [--max-age D] [--json]",
	  "Checks a staple the way a relying party does: signature, signer authorisation, CertID,\n"
	  "freshness (nextUpdate; thisUpdate within --max-age, e.g. 1h, 2d, when given). The issuer\n"
	  "comes from --chain or --ca; with --ca the certificate must chain to it. Needs no\n"
	  "daemon and no configuration. Exits 0 good, 1 revoked, 2 unknown, invalid or stale.\n" },
};

const struct ctl_command *
ctl_find_command(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(commands); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

void
ctl_command_help(FILE *fp, const struct ctl_command *cmd)
{
	fprintf(fp, "usage: staplerctl [-c FILE] %s\n\n%s", cmd->usage, cmd->help);
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: staplerctl [-c FILE] [--json] COMMAND [ARGS]\n"
	    "  -c FILE   configuration file (default " CTL_DEFAULT_CONFIG ")\n"
	    "  --json    machine-readable output (docs/staplerctl-json.md)\n"
	    "  -V        print the version\n"
	    "commands:\n");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(commands); i++)
		fprintf(fp, "  %s\n", commands[i].usage);
	fprintf(fp, "`staplerctl help COMMAND` or `staplerctl COMMAND --help` explains one.\n");
}

void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("staplerctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ctl_usage_error(const char *name, const char *fmt, ...)
{
	const struct ctl_command *cmd = ctl_find_command(name);
	va_list ap;

	fputs("staplerctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; usage: staplerctl %s\n", cmd != NULL ? cmd->usage : name);
	return CTL_USAGE;
}

int
ctl_common_opt(struct ctl *ctl, const char *name, int ch, char **argv)
{
	switch (ch) {
	case 'j':
		ctl->json = 1;
		return -1;
	case 'h':
		ctl_command_help(stdout, ctl_find_command(name));
		return CTL_OK;
	case ':':
		return ctl_usage_error(name, "%s needs a value", argv[optind - 1]);
	default:
		return ctl_usage_error(name, "unknown option %s", argv[optind - 1]);
	}
}

const struct stapler_config *
ctl_config(struct ctl *ctl)
{
	char err[512];

	if (ctl->cfg == NULL && (ctl->cfg = config_load(ctl->conf_path, err, sizeof(err))) == NULL)
		ctl_err("%s", err);
	return ctl->cfg;
}

struct cache *
ctl_open_db(struct ctl *ctl)
{
	const struct stapler_config *cfg = ctl_config(ctl);
	struct cache *cache;
	char err[512];

	if (cfg == NULL)
		return NULL;
	if ((cache = cache_open(cfg->database, 1, err, sizeof(err))) == NULL)
		ctl_err("cannot open the database: %s", err);
	return cache;
}

unsigned char *
ctl_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n = 0;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	n = fread(buf, 1, max + 1, fp);
	if (ferror(fp) || n > max) {
		snprintf(err, errlen, "%s: %s", path, ferror(fp) ? strerror(errno) : "file too large");
		free(buf);
		buf = NULL;
		goto out;
	}
	*len = n;
out:
	if (fp != stdin)
		fclose(fp);
	return buf;
}

int
ctl_lookup(struct cache *cache, const char *serial_arg, const char *issuer_arg,
    const char *hash_arg, const char *params_arg, time_t now, struct stapler_key *key)
{
	struct cache_report_filter f = { .now = (long long)now };
	char s[STAPLER_SERIAL_HEX_MAX], h[STAPLER_SHA1_HEX];
	struct cache_report_match m;
	enum stapler_hash_params params;
	enum stapler_hash_alg alg;

	if (fmt_serial(serial_arg, s) < 0) {
		ctl_err("%s: not a serial (hex digits, ':' allowed)", serial_arg);
		return CTL_USAGE;
	}
	if (issuer_arg != NULL && fmt_key_hash(issuer_arg, h) < 0) {
		ctl_err("%s: not an issuer key or name hash (40 hex digits)", issuer_arg);
		return CTL_USAGE;
	}
	if (hash_arg != NULL && stapler_hash_alg_parse(hash_arg, &alg) < 0) {
		ctl_err("--hash %s: not sha1, sha256, sha384 or sha512", hash_arg);
		return CTL_USAGE;
	}
	if (params_arg != NULL && stapler_hash_params_parse(params_arg, &params) < 0) {
		ctl_err("--params %s: not null or absent", params_arg);
		return CTL_USAGE;
	}
	f.serial = s;
	f.issuer = issuer_arg != NULL ? h : NULL;
	f.hash_alg = hash_arg != NULL ? 1 + (int)alg : 0;
	f.hash_params = params_arg != NULL ? 1 + (int)params : 0;
	if (cache_report_lookup(cache, &f, &m) < 0) {
		ctl_err("cannot read the database");
		return CTL_USAGE;
	}
	if (m.n == 0) {
		ctl_err("no cached entry for serial %s%s%s%s%s%s%s", s,
		    issuer_arg ? " and issuer " : "", issuer_arg ? h : "",
		    hash_arg ? " with hash " : "", hash_arg ? hash_arg : "",
		    params_arg ? " with parameters " : "", params_arg ? params_arg : "");
		return CTL_BAD;
	}
	if (m.n > 1 && m.by_issuer) {
		ctl_err("serial %s is cached for several issuers; choose one with --issuer: %s", s,
		    m.choices);
		return CTL_USAGE;
	}
	if (m.n > 1 && m.by_params) {
		ctl_err("serial %s is cached with the hash algorithm's parameters both NULL and "
		    "absent; choose one with --params: %s", s, m.choices);
		return CTL_USAGE;
	}
	if (m.n > 1) {
		ctl_err("serial %s is cached for several CertID hash algorithms; choose one with "
		    "--hash: %s", s, m.choices);
		return CTL_USAGE;
	}
	*key = m.key;
	return CTL_OK;
}

void
ctl_time(long long t, time_t now, char *out, size_t cap)
{
	char iso[21], rel[32];

	if (t == 0) {
		snprintf(out, cap, "-");
		return;
	}
	util_iso_time((time_t)t, iso);
	fmt_reltime(t, (long long)now, rel, sizeof(rel));
	snprintf(out, cap, "%s (%s)", iso, rel);
}

void
ctl_table_init(struct ctl_table *t, int ncols, const char *const *head)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	for (int i = 0; i < ncols; i++) {
		t->head[i] = head[i];
		t->width[i] = strlen(head[i]);
	}
}

int
ctl_table_add(struct ctl_table *t, const char *const *cells)
{
	size_t base;

	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		char **n = realloc(t->cell, ncap * (size_t)t->ncols * sizeof(*n));

		if (n == NULL)
			return -1;
		t->cell = n;
		t->cap = ncap;
	}
	base = t->nrows * (size_t)t->ncols;
	for (int i = 0; i < t->ncols; i++) {
		const char *c = cells[i] != NULL && cells[i][0] != '\0' ? cells[i] : "-";

		if ((t->cell[base + (size_t)i] = strdup(c)) == NULL) {
			while (i-- > 0)
				free(t->cell[base + (size_t)i]);
			return -1;
		}
		if (strlen(c) > t->width[i])
			t->width[i] = strlen(c);
	}
	t->nrows++;
	return 0;
}

static void
table_row(const struct ctl_table *t, FILE *fp, const char *const *cells)
{
	for (int i = 0; i < t->ncols; i++) {
		if (i == t->ncols - 1)
			fprintf(fp, "%s\n", cells[i]);
		else
			fprintf(fp, "%-*s  ", (int)t->width[i], cells[i]);
	}
}

void
ctl_table_print(const struct ctl_table *t, FILE *fp)
{
	table_row(t, fp, t->head);
	for (size_t r = 0; r < t->nrows; r++)
		table_row(t, fp, (const char *const *)&t->cell[r * (size_t)t->ncols]);
}

void
ctl_table_free(struct ctl_table *t)
{
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cell[i]);
	free(t->cell);
	memset(t, 0, sizeof(*t));
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl ctl = { .conf_path = CTL_DEFAULT_CONFIG };
	const struct ctl_command *cmd;
	int ch, rc;

	/* '+': stop at the command; its own options follow it. */
	while ((ch = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl.conf_path = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		case 'V':
			printf("staplerctl %s\n", STAPLER_VERSION);
			return CTL_OK;
		default:
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 >= argc) {
			usage(stdout);
			return CTL_OK;
		}
		if ((cmd = ctl_find_command(argv[optind + 1])) == NULL) {
			ctl_err("unknown command '%s'; try staplerctl --help", argv[optind + 1]);
			return CTL_USAGE;
		}
		ctl_command_help(stdout, cmd);
		return CTL_OK;
	}
	if ((cmd = ctl_find_command(argv[optind])) == NULL) {
		ctl_err("unknown command '%s'; try staplerctl --help", argv[optind]);
		return CTL_USAGE;
	}
	ctl.now = time(NULL);
	argc -= optind;
	argv += optind;
	optind = 0;     /* getopt_long restarts for the command's own options */
	opterr = 0;     /* ctl_common_opt() says what is wrong, in one line */
	rc = cmd->run(&ctl, argc, argv);
	config_free(&ctl.cfg);
	return rc;
}
