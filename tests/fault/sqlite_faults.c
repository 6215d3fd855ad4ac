/* Test-only SQLite fault injection: a VFS that wraps the default one and makes writes fail on
 * demand, linked into the staplerd_faults test binary only (never into staplerd). It is
 * registered as the default VFS before main() runs, and reads its orders from the environment:
 *
 *   STAPLER_SQLITE_FAULT=CODE[:after=N][:for=MS]   from the Nth write on (default: the first),
 *                                                  for MS milliseconds (default: for good)
 *   STAPLER_SQLITE_FAULT_FILE=PATH                 while PATH exists, its first word is CODE
 *
 * CODE: full (SQLITE_FULL), ioerr (SQLITE_IOERR_WRITE, and fsync fails too), readonly
 * (SQLITE_READONLY), busy (the write lock is refused: SQLITE_BUSY). The file lets a test turn
 * faults on and off under a running daemon; the variable, a fault at an exact write. The
 * revocation journal is not SQLite's and is not touched: it is what must survive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

enum fault_code { F_NONE, F_FULL, F_IOERR, F_READONLY, F_BUSY };

struct fault_file {
	sqlite3_file base;
	sqlite3_file *real;     /* follows this struct in the same allocation */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_methods;
static enum fault_code env_code;
static long long env_after, env_for_ms, writes, started_ms;
static const char *fault_file;

static enum fault_code
code_of(const char *s)
{
	if (strncmp(s, "full", 4) == 0)
		return F_FULL;
	if (strncmp(s, "ioerr", 5) == 0)
		return F_IOERR;
	if (strncmp(s, "readonly", 8) == 0)
		return F_READONLY;
	if (strncmp(s, "busy", 4) == 0)
		return F_BUSY;
	return F_NONE;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fault in force now: the file's, else the variable's once its write count is reached. */
static enum fault_code
active(void)
{
	char word[16] = "";
	FILE *fp;

	if (fault_file != NULL && (fp = fopen(fault_file, "r")) != NULL) {
		if (fgets(word, sizeof(word), fp) == NULL)
			word[0] = '\0';
		fclose(fp);
		return code_of(word);
	}
	if (env_code == F_NONE || writes < env_after)
		return F_NONE;
	if (started_ms == 0)
		started_ms = now_ms();
	if (env_for_ms > 0 && now_ms() - started_ms >= env_for_ms)
		return F_NONE;
	return env_code;
}

static sqlite3_file *
real_of(sqlite3_file *f)
{
	return ((struct fault_file *)f)->real;
}

static int
f_close(sqlite3_file *f)
{
	return real_of(f)->pMethods->xClose(real_of(f));
}

static int
f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	return real_of(f)->pMethods->xRead(real_of(f), buf, n, off);
}

static int
f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	writes++;
	switch (active()) {
	case F_FULL: return SQLITE_FULL;
	case F_IOERR: return SQLITE_IOERR_WRITE;
	case F_READONLY: return SQLITE_READONLY;
	default: break;
	}
	return real_of(f)->pMethods->xWrite(real_of(f), buf, n, off);
}

static int
f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	if (active() == F_IOERR)
		return SQLITE_IOERR_TRUNCATE;
	return real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int
f_sync(sqlite3_file *f, int flags)
{
	if (active() == F_IOERR)
		return SQLITE_IOERR_FSYNC;
	return real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int
f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return real_of(f)->pMethods->xFileSize(real_of(f), size);
}

static int
f_lock(sqlite3_file *f, int level)
{
	if (level >= SQLITE_LOCK_RESERVED && active() == F_BUSY)
		return SQLITE_BUSY;
	return real_of(f)->pMethods->xLock(real_of(f), level);
}

static int
f_unlock(sqlite3_file *f, int level)
{
	return real_of(f)->pMethods->xUnlock(real_of(f), level);
}

static int
f_check_reserved(sqlite3_file *f, int *out)
{
	return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}

static int
f_control(sqlite3_file *f, int op, void *arg)
{
	return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}

static int
f_sector(sqlite3_file *f)
{
	return real_of(f)->pMethods->xSectorSize(real_of(f));
}

static int
f_device(sqlite3_file *f)
{
	return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}

static int
f_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **p)
{
	return real_of(f)->pMethods->xShmMap(real_of(f), page, size, extend, p);
}

/* In WAL mode the write lock is a lock on the -shm file: refused while busy. */
static int
f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	if ((flags & SQLITE_SHM_LOCK) && (flags & SQLITE_SHM_EXCLUSIVE) && offset == 0 &&
	    active() == F_BUSY)
		return SQLITE_BUSY;
	return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}

static void
f_shm_barrier(sqlite3_file *f)
{
	real_of(f)->pMethods->xShmBarrier(real_of(f));
}

static int
f_shm_unmap(sqlite3_file *f, int del)
{
	return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
}

static int
f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
	return real_of(f)->pMethods->xFetch(real_of(f), off, n, p);
}

static int
f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
}

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
	struct fault_file *ff = (struct fault_file *)f;
	int rc;

	(void)vfs;
	ff->real = (sqlite3_file *)(ff + 1);
	if ((rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags)) != SQLITE_OK) {
		f->pMethods = NULL;
		return rc;
	}
	f->pMethods = ff->real->pMethods != NULL ? &fault_methods : NULL;
	return rc;
}

static int
v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int
v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int
v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *
v_dlopen(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return real_vfs->xDlOpen(real_vfs, name);
}

static void
v_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	real_vfs->xDlError(real_vfs, n, msg);
}

static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void
v_dlclose(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	real_vfs->xDlClose(real_vfs, h);
}

static int
v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int
v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int
v_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int
v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static int
v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

/* A number after key= in spec, or dflt. */
static long long
spec_num(const char *spec, const char *key, long long dflt)
{
	const char *p = strstr(spec, key);
	char *end;
	long long v;

	if (p == NULL)
		return dflt;
	v = strtoll(p + strlen(key), &end, 10);
	return end != p + strlen(key) && v >= 0 ? v : dflt;
}

__attribute__((constructor)) static void
fault_vfs_install(void)
{
	const char *spec = getenv("STAPLER_SQLITE_FAULT");

	fault_file = getenv("STAPLER_SQLITE_FAULT_FILE");
	if (spec != NULL) {
		env_code = code_of(spec);
		env_after = spec_num(spec, ":after=", 1) - 1;
		env_for_ms = spec_num(spec, ":for=", 0);
	}
	if ((real_vfs = sqlite3_vfs_find(NULL)) == NULL) {
		fprintf(stderr, "sqlite_faults: no default VFS\n");
		abort();
	}
	fault_methods = (sqlite3_io_methods){ 3, f_close, f_read, f_write, f_truncate, f_sync,
	    f_size, f_lock, f_unlock, f_check_reserved, f_control, f_sector, f_device, f_shm_map,
	    f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch };
	fault_vfs = *real_vfs;
	fault_vfs.szOsFile = (int)sizeof(struct fault_file) + real_vfs->szOsFile;
	fault_vfs.zName = "stapler-faults";
	fault_vfs.pNext = NULL;
	fault_vfs.xOpen = v_open;
	fault_vfs.xDelete = v_delete;
	fault_vfs.xAccess = v_access;
	fault_vfs.xFullPathname = v_full_pathname;
	fault_vfs.xDlOpen = v_dlopen;
	fault_vfs.xDlError = v_dlerror;
	fault_vfs.xDlSym = v_dlsym;
	fault_vfs.xDlClose = v_dlclose;
	fault_vfs.xRandomness = v_randomness;
	fault_vfs.xSleep = v_sleep;
	fault_vfs.xCurrentTime = v_current_time;
	fault_vfs.xGetLastError = v_last_error;
	fault_vfs.xCurrentTimeInt64 = v_current_time64;
	/* The unix VFS's system-call overrides stay the real VFS's own. */
	fault_vfs.xSetSystemCall = NULL;
	fault_vfs.xGetSystemCall = NULL;
	fault_vfs.xNextSystemCall = NULL;
	if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK) {
		fprintf(stderr, "sqlite_faults: cannot register the VFS\n");
		abort();
	}
}
