/* staplerctl's shared parts: the context every command gets, output helpers, exit codes. */
#ifndef STAPLERCTL_CTL_H
#define STAPLERCTL_CTL_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* Exit codes (docs/contract.md §7). */
#define CTL_OK 0
#define CTL_BAD 1      /* the thing asked about is bad: revoked, not found, failed */
#define CTL_USAGE 2    /* usage or environment error */

#define CTL_DEFAULT_CONFIG "/etc/staplerd/staplerd.conf"

struct stapler_config;
struct cache;

struct ctl {
	const char *conf_path;
	struct stapler_config *cfg;   /* loaded on first use */
	int json;
	time_t now;
};

/* One command: its name, its function (argv[0] is the command name), its usage and help. */
struct ctl_command {
	const char *name;
	int (*run)(struct ctl *ctl, int argc, char **argv);
	const char *usage;
	const char *help;
};

/* The command table (staplerctl.c) and its help printer. */
const struct ctl_command *ctl_find_command(const char *name);
void ctl_command_help(FILE *fp, const struct ctl_command *cmd);
/* For a command's option parser: prints the usage line to stderr and returns CTL_USAGE. */
int ctl_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Long options every command takes; short "hj" go with them. */
#define CTL_COMMON_LONGOPTS \
	{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }
/* Handles 'j', 'h' and getopt's errors for command name: returns -1 when parsing goes on,
 * else the exit code. */
int ctl_common_opt(struct ctl *ctl, const char *name, int ch, char **argv);

/* "staplerctl: …" on stderr, one line. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The configuration (-c), loaded once; NULL after printing why. */
const struct stapler_config *ctl_config(struct ctl *ctl);
/* The database, opened read-only; NULL after printing why. */
struct cache *ctl_open_db(struct ctl *ctl);

/* Reads a whole file of at most max bytes. Returns a new buffer (free()) or NULL after
 * setting err. */
unsigned char *ctl_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* Resolves SERIAL [--issuer HASH] [--hash ALG] [--params P] (issuer_arg, hash_arg and
 * params_arg may be NULL; HASH is the issuer's key or name hash, P "null" or "absent") to one
 * cached entry's key. Returns CTL_OK, or the exit code
 * after printing why (not found, ambiguous, malformed). */
struct stapler_key;
int ctl_lookup(struct cache *cache, const char *serial_arg, const char *issuer_arg,
    const char *hash_arg, const char *params_arg, time_t now, struct stapler_key *key);

/* Time as "2026-11-21T14:00:00Z (in 6d 23h)"; "-" for 0. */
void ctl_time(long long t, time_t now, char *out, size_t cap);

/* A human table: add cells row by row, then print with aligned columns. */
#define CTL_TABLE_MAX_COLS 10
struct ctl_table {
	int ncols;
	const char *head[CTL_TABLE_MAX_COLS];
	size_t width[CTL_TABLE_MAX_COLS];
	char **cell;            /* nrows * ncols, owned */
	size_t nrows, cap;
};
void ctl_table_init(struct ctl_table *t, int ncols, const char *const *head);
/* Adds a row of ncols strings (copied; NULL prints "-"). Returns 0 or -1. */
int ctl_table_add(struct ctl_table *t, const char *const *cells);
void ctl_table_print(const struct ctl_table *t, FILE *fp);
void ctl_table_free(struct ctl_table *t);

/* Commands. */
int ctl_cmd_list(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_show(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_stats(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_export(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_import(struct ctl *ctl, int argc, char **argv);
/* Sends one request line ("pace\n") to the daemon when it is reachable and its reply is
 * "ok …"; returns 0 with the reply in out, or -1 quietly (no daemon is no error here). */
int ctl_daemon_ask(struct ctl *ctl, const char *line, char *out, size_t cap);
int ctl_cmd_refresh(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_evict(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_verify(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_backup(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_events(struct ctl *ctl, int argc, char **argv);

#endif
