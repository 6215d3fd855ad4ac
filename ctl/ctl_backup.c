/* staplerctl backup: a consistent copy of the cache while the daemon runs, made with SQLite's
 * online backup API from a read-only connection (a WAL reader never blocks the daemon's
 * writer), into FILE.tmp, checked, then renamed over FILE. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "cache.h"
#include "config.h"
#include "fmt.h"
#include "util.h"

/* 1 when a and b name the same file (both exist), else 0. */
static int
same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	    sa.st_ino == sb.st_ino;
}

/* Makes the rename durable: fsync of the directory that holds path. */
static void
sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd;

	if (util_strlcpy(dir, path, sizeof(dir)) < 0)
		return;
	if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Copies the database to tmp (created exclusively) and checks it; CTL_OK or an exit code. */
static int
backup_to(struct cache *cache, const char *tmp, long *pages)
{
	char err[1024];
	int fd;

	/* A leftover of an interrupted backup is ours to replace; anything else at tmp is not
	 * touched (O_EXCL below). */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		ctl_err("%s: %s", tmp, strerror(errno));
		return CTL_USAGE;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
		ctl_err("%s: %s", tmp, strerror(errno));
		return CTL_USAGE;
	}
	close(fd);
	if ((*pages = cache_backup(cache, tmp, err, sizeof(err))) < 0) {
		ctl_err("backup failed: %s", err);
		unlink(tmp);
		return CTL_BAD;
	}
	return CTL_OK;
}

int
ctl_cmd_backup(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' }, CTL_COMMON_LONGOPTS, { NULL, 0, NULL, 0 },
	};
	const struct stapler_config *cfg;
	struct cache *cache = NULL, *copy = NULL;
	long long total = -1, counts[3];
	char tmp[PATH_MAX], err[512];
	const char *file;
	struct stat st;
	int ch, rc, force = 0;
	long pages = 0;

	while ((ch = getopt_long(argc, argv, ":hjf", longopts, NULL)) != -1) {
		if (ch == 'f') {
			force = 1;
			continue;
		}
		if ((rc = ctl_common_opt(ctl, "backup", ch, argv)) >= 0)
			return rc;
	}
	if (optind + 1 != argc)
		return ctl_usage_error("backup", optind == argc ? "FILE missing" : "one FILE only");
	file = argv[optind];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= (int)sizeof(tmp))
		return ctl_usage_error("backup", "%s: path too long", file);
	if ((cfg = ctl_config(ctl)) == NULL)
		return CTL_USAGE;
	if (same_file(file, cfg->database) || same_file(tmp, cfg->database)) {
		ctl_err("%s is the database itself", file);
		return CTL_USAGE;
	}
	if (lstat(file, &st) == 0 && !force) {
		ctl_err("%s exists; use --force to replace it", file);
		return CTL_USAGE;
	}
	if (lstat(file, &st) == 0 && !S_ISREG(st.st_mode)) {
		ctl_err("%s is not a regular file", file);
		return CTL_USAGE;
	}
	if ((cache = ctl_open_db(ctl)) == NULL)
		return CTL_USAGE;
	rc = backup_to(cache, tmp, &pages);
	cache_close(&cache);
	if (rc != CTL_OK)
		return rc;
	/* The copy must open as a cache of this schema before it replaces anything. */
	if ((copy = cache_open(tmp, 1, err, sizeof(err))) == NULL ||
	    cache_count(copy, &total, counts) < 0) {
		ctl_err("the copy does not read back: %s", copy == NULL ? err : "cannot count rows");
		cache_close(&copy);
		unlink(tmp);
		return CTL_BAD;
	}
	cache_close(&copy);
	if (rename(tmp, file) < 0) {
		ctl_err("%s: %s", file, strerror(errno));
		unlink(tmp);
		return CTL_USAGE;
	}
	sync_dir(file);
	if (stat(file, &st) < 0)
		st.st_size = 0;
	if (ctl->json) {
		printf("{\"file\":");
		fmt_json_str(stdout, file);
		printf(",\"entries\":%lld,\"pages\":%ld,\"bytes\":%lld,\"integrity\":\"ok\"}\n", total,
		    pages, (long long)st.st_size);
	} else {
		printf("backed up %lld entries (%lld bytes, integrity ok) to %s\n", total,
		    (long long)st.st_size, file);
	}
	return CTL_OK;
}
