/* The SQLite cache: opening and migrating the database, its prepared statements and writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cache.h"
#include "log.h"

/* Generated from sql/ by cmake/embed_sql.cmake, in file-name order. */
extern const char *const cache_migrations[];
extern const char *const cache_migration_names[];
extern const size_t cache_migration_count;

/* Another process (staplerctl, a checkpoint) may hold the lock briefly. */
#define CACHE_BUSY_TIMEOUT_MS 5000

enum cache_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_PUT_ISSUER,
	ST_PUT_ROW,
	ST_GET_ROW,
	ST_GET_ISSUER,
	ST_ALL_ROWS,
	ST_LOAD_SLICE,
	ST_ISSUERS,
	ST_ISSUER_URLS,
	ST_COUNT,
	ST_DUE,
	ST_SET_REFRESH,
	ST_SET_FAILURE,
	ST_DELETE,
	ST_EXPIRED,
	ST_SPREAD,
	ST_MAX
};

/* Column order read by row_read(). */
#define ROW_COLUMNS \
	"hash_alg, serial, issuer_key_hash, issuer_name_hash, subject, ocsp_url, ocsp_urls, " \
	"cert_status, revoked_at, revocation_reason, this_update, next_update, produced_at, " \
	"fetched_at, cert_not_after, response_der, request_der, next_refresh_at, failures, " \
	"last_error, created_at, used_at, upstream_etag, upstream_last_modified, hash_params"

/* A row's key, bound by bind_key() as ?1..?5, and read back by read_keys() in KEY_COLUMNS
 * order. */
#define KEY_MATCH \
	"hash_alg = ?1 AND issuer_name_hash = ?2 AND issuer_key_hash = ?3 AND serial = ?4 " \
	"AND hash_params = ?5"
#define KEY_COLUMNS "hash_alg, issuer_name_hash, issuer_key_hash, serial, hash_params"

/* Parameter numbers of ST_PUT_ROW: the same order as ROW_COLUMNS. */
enum put_row_param {
	P_HASH_ALG = 1,
	P_SERIAL,
	P_ISSUER_KEY_HASH,
	P_ISSUER_NAME_HASH,
	P_SUBJECT,
	P_OCSP_URL,
	P_OCSP_URLS,
	P_CERT_STATUS,
	P_REVOKED_AT,
	P_REVOCATION_REASON,
	P_THIS_UPDATE,
	P_NEXT_UPDATE,
	P_PRODUCED_AT,
	P_FETCHED_AT,
	P_CERT_NOT_AFTER,
	P_RESPONSE_DER,
	P_REQUEST_DER,
	P_NEXT_REFRESH_AT,
	P_FAILURES,
	P_LAST_ERROR,
	P_CREATED_AT,
	P_USED_AT,
	P_UPSTREAM_ETAG,
	P_UPSTREAM_LAST_MODIFIED,
	P_HASH_PARAMS,
};

static const char *const stmt_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* An issuer is immutable for its name and key hashes: the first copy stays. */
	[ST_PUT_ISSUER] =
	    "INSERT INTO issuer (name_hash, key_hash, subject, cert_der, added_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name_hash, key_hash) DO NOTHING",
	[ST_PUT_ROW] =
	    "INSERT INTO ocsp_response (" ROW_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) "
	    "ON CONFLICT(hash_alg, hash_params, issuer_name_hash, issuer_key_hash, serial) "
	    "DO UPDATE SET "
	    "subject = excluded.subject, "
	    "ocsp_url = excluded.ocsp_url, ocsp_urls = excluded.ocsp_urls, "
	    "cert_status = excluded.cert_status, revoked_at = excluded.revoked_at, "
	    "revocation_reason = excluded.revocation_reason, this_update = excluded.this_update, "
	    "next_update = excluded.next_update, produced_at = excluded.produced_at, "
	    "fetched_at = excluded.fetched_at, cert_not_after = excluded.cert_not_after, "
	    "response_der = excluded.response_der, request_der = excluded.request_der, "
	    "next_refresh_at = excluded.next_refresh_at, failures = excluded.failures, "
	    "last_error = excluded.last_error, used_at = max(used_at, excluded.used_at), "
	    "upstream_etag = excluded.upstream_etag, "
	    "upstream_last_modified = excluded.upstream_last_modified",
	[ST_GET_ROW] =
	    "SELECT " ROW_COLUMNS " FROM ocsp_response WHERE " KEY_MATCH,
	[ST_GET_ISSUER] = "SELECT name_hash, key_hash, subject, cert_der FROM issuer "
	    "WHERE name_hash = ?1 AND key_hash = ?2",
	[ST_ALL_ROWS] = "SELECT " ROW_COLUMNS " FROM ocsp_response ORDER BY id",
	/* The warm start's slices: only what an entry keeps, by rowid from where the last
	 * slice stopped (the primary key: a seek, then a range). Column order: LOAD_COL_*. */
	[ST_LOAD_SLICE] =
	    "SELECT id, hash_alg, serial, issuer_key_hash, issuer_name_hash, cert_status, "
	    "revoked_at, revocation_reason, this_update, next_update, produced_at, fetched_at, "
	    "next_refresh_at, used_at, response_der, ocsp_urls, hash_params FROM ocsp_response "
	    "WHERE id > ?1 "
	    "ORDER BY id LIMIT ?2",
	[ST_ISSUERS] = "SELECT name_hash, key_hash, subject, cert_der FROM issuer",
	/* One row of the issuer under one CertID algorithm: the UNIQUE index's prefix. */
	[ST_ISSUER_URLS] =
	    "SELECT ocsp_urls FROM ocsp_response WHERE hash_alg = ?1 "
	    "AND hash_params IN ('null', 'absent') AND issuer_name_hash = ?2 "
	    "AND issuer_key_hash = ?3 LIMIT 1",
	[ST_COUNT] = "SELECT cert_status, count(*) FROM ocsp_response GROUP BY cert_status",
	/* The ?2 longest due ride the next_refresh_at index (a bounded read, however large the
	 * backlog); among them the most urgent come first: the closest to nextUpdate, then the
	 * longest since fetched. A certificate past its notAfter is never refetched. */
	[ST_DUE] =
	    "SELECT " KEY_COLUMNS ", next_refresh_at FROM (SELECT " KEY_COLUMNS ", next_refresh_at, "
	    "next_update, fetched_at FROM ocsp_response WHERE next_refresh_at <= ?1 "
	    "AND cert_not_after > ?1 ORDER BY next_refresh_at LIMIT ?2) "
	    "ORDER BY next_update, fetched_at, next_refresh_at",
	[ST_SET_REFRESH] =
	    "UPDATE ocsp_response SET next_refresh_at = ?6 WHERE " KEY_MATCH,
	[ST_SET_FAILURE] =
	    "UPDATE ocsp_response SET failures = ?6, last_error = ?7, next_refresh_at = ?8 "
	    "WHERE " KEY_MATCH,
	[ST_DELETE] = "DELETE FROM ocsp_response WHERE " KEY_MATCH,
	[ST_EXPIRED] =
	    "SELECT " KEY_COLUMNS " FROM ocsp_response WHERE cert_not_after < ?1 "
	    "ORDER BY cert_not_after LIMIT ?2",
	/* Warm start: at most ?3 entries already due are spread over the next ?2 seconds (after
	 * now: a row moved is not picked again). The next_refresh_at index finds them. */
	[ST_SPREAD] =
	    "UPDATE ocsp_response SET next_refresh_at = ?1 + 1 + abs(random() % ?2) "
	    "WHERE id IN (SELECT id FROM ocsp_response WHERE next_refresh_at <= ?1 LIMIT ?3)",
};

struct cache {
	sqlite3 *db;
	int readonly;
	int fallback;         /* CACHE_OPEN_FALLBACK: read-only for now, read-write when it can */
	char *path;
	int nowait;           /* cache_set_nowait(): no busy wait, faults left to the caller */
	enum cache_fault fault;   /* of the last failed statement */
	char errmsg[256];         /* SQLite's message for it, kept past later calls */
	int in_foreach;       /* ST_ALL_ROWS is running: a nested foreach would restart it */
	sqlite3_stmt *stmt[ST_MAX];
};

static void
cache_fail(const char *op, const char *msg)
{
	log_error("cache_error", "op=%s err=\"%s\"", op, msg);
}

/* The kind of a failed statement: the faults of the disk and of other processes are
 * transient (the write is worth keeping and trying again); the rest are bugs or bad rows. */
static enum cache_fault
fault_of(int code)
{
	switch (code & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return CACHE_FAULT_BUSY;
	case SQLITE_FULL:
		return CACHE_FAULT_FULL;
	case SQLITE_READONLY:
		return CACHE_FAULT_READONLY;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
		return CACHE_FAULT_IO;
	/* What a row can be refused for, or a bug in a statement: trying again cannot help. */
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
	case SQLITE_RANGE:
	case SQLITE_MISUSE:
		return CACHE_FAULT_OTHER;
	/* The rest (out of memory, a transaction a fault left open, a page that read wrong
	 * while the disk failed) is the state of the connection, not of the row: worth a retry
	 * once cache_recover() has reset it. */
	default:
		return CACHE_FAULT_ERROR;
	}
}

static void
cache_fail_db(struct cache *c, const char *op)
{
	c->fault = fault_of(sqlite3_extended_errcode(c->db));
	snprintf(c->errmsg, sizeof(c->errmsg), "%s (%d)", sqlite3_errmsg(c->db),
	    sqlite3_extended_errcode(c->db));
	/* In no-wait mode the caller keeps the write and logs the fault once per interval. */
	if (c->nowait && c->fault != CACHE_FAULT_OTHER)
		return;
	cache_fail(op, sqlite3_errmsg(c->db));
}

void
cache_set_nowait(struct cache *cache)
{
	cache->nowait = 1;
	sqlite3_busy_timeout(cache->db, 0);
}

enum cache_fault
cache_fault(const struct cache *cache)
{
	return cache->fault;
}

const char *
cache_fault_name(enum cache_fault f)
{
	switch (f) {
	case CACHE_FAULT_NONE: return "none";
	case CACHE_FAULT_BUSY: return "locked";
	case CACHE_FAULT_FULL: return "disk_full";
	case CACHE_FAULT_IO: return "io_error";
	case CACHE_FAULT_READONLY: return "read_only";
	case CACHE_FAULT_ERROR: return "db_error";
	case CACHE_FAULT_OTHER: break;
	}
	return "error";
}

const char *
cache_errmsg(const struct cache *cache)
{
	return cache->errmsg[0] != '\0' ? cache->errmsg : sqlite3_errmsg(cache->db);
}

/* Ready a statement for its next use; sqlite3_reset repeats the last step's error, which was
 * already handled. */
static void
stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows. Returns 0 or -1 (logged). */
static int
stmt_run(struct cache *c, enum cache_stmt which, const char *op)
{
	sqlite3_stmt *st = c->stmt[which];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		cache_fail_db(c, op);
	stmt_done(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Ends a failed transaction. SQLite has rolled it back itself after some errors (a full
 * disk, an I/O error), and the fault to report is the one that ended it, not this one. */
static void
rollback(struct cache *c, const char *op)
{
	enum cache_fault fault = c->fault;

	if (sqlite3_get_autocommit(c->db))
		return;
	stmt_run(c, ST_ROLLBACK, op);
	c->fault = fault;
}

static int file_writable(const char *path);
static void match_mode(const char *path, const char *suffix);
static int db_connect(struct cache *c, const char *path, int mode, const char *uri, char *err,
    size_t errlen);
static void db_disconnect(struct cache *c);

/* A database served read-only since the start: opened read-write again when it can be (a
 * remount, a chmod), in place, so every holder of the cache keeps its pointer. */
static int
reopen_writable(struct cache *c)
{
	struct cache fresh = { .fallback = 1, .nowait = c->nowait };
	char err[2048];

	if (!file_writable(c->path))
		return -1;
	match_mode(c->path, "-wal");
	match_mode(c->path, "-shm");
	if (db_connect(&fresh, c->path, CACHE_OPEN_RW, NULL, err, sizeof(err)) != 0)
		return -1;
	db_disconnect(c);
	c->db = fresh.db;
	memcpy(c->stmt, fresh.stmt, sizeof(c->stmt));
	c->readonly = 0;
	log_info("database_writable", "path=\"%s\"", c->path);
	return 0;
}

int
cache_recover(struct cache *cache)
{
	enum cache_fault fault = cache->fault;
	int ret = 0;

	if (cache->readonly && cache->fallback)
		return cache->in_foreach ? -1 : reopen_writable(cache);

	/* Whatever a failed step left behind: a statement mid-way, a transaction still open. */
	for (int i = 0; i < ST_MAX; i++) {
		if (i != ST_ALL_ROWS || !cache->in_foreach)
			stmt_done(cache->stmt[i]);
	}
	if (!sqlite3_get_autocommit(cache->db) &&
	    sqlite3_exec(cache->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		ret = -1;
	/* In WAL mode the log only restarts from its beginning after a complete checkpoint, and
	 * the automatic one waits for 1,000 pages: on a full disk the log's own growth is what
	 * fails, again and again, after space came back. Fold it in and truncate it. */
	if (fault == CACHE_FAULT_FULL && ret == 0 && !cache->readonly &&
	    sqlite3_wal_checkpoint_v2(cache->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
	    NULL) != SQLITE_OK)
		ret = -1;
	cache->fault = fault;
	return ret;
}

int
cache_set_durable(struct cache *cache, int durable)
{
	int rc = sqlite3_exec(cache->db, durable ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Runs a query whose answer is one integer. Returns 0 or -1. */
static int
query_int(sqlite3 *db, const char *sql, int *value)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	*value = sqlite3_column_int(st, 0);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

static int
exec_user_version(sqlite3 *db, int *version)
{
	return query_int(db, "PRAGMA user_version", version);
}

/* Applies one pending migration in its own transaction. Sets *done when none is left.
 * The version is read again under the write lock, so two processes opening a new
 * database at once cannot apply a migration twice. */
static int
migrate_one(sqlite3 *db, const char *path, int *done, char *err, size_t errlen)
{
	char *msg = NULL, setver[64];
	int version, objects, in_tx = 0, ret = -1;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot start migration: %s", path, msg ? msg : "?");
		goto out;
	}
	in_tx = 1;
	if (exec_user_version(db, &version) != 0) {
		snprintf(err, errlen, "%s: cannot read schema version: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (version < 0 || (size_t)version > cache_migration_count) {
		snprintf(err, errlen, "%s: schema version %d is newer than this build knows (%zu); "
		    "use a newer staplerd", path, version, cache_migration_count);
		goto out;
	}
	/* Version 0 with tables in it is some other program's database (a wrong path in the
	 * config): adding ours to it would hide the mistake. */
	if (version == 0) {
		if (query_int(db, "SELECT count(*) FROM sqlite_master", &objects) != 0) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
			goto out;
		}
		if (objects > 0) {
			snprintf(err, errlen, "%s: not a staplerd database (it has tables but no "
			    "schema version)", path);
			goto out;
		}
	}
	if ((size_t)version == cache_migration_count) {
		*done = 1;
	} else {
		if (sqlite3_exec(db, cache_migrations[version], NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "%s: migration %s failed: %s", path,
			    cache_migration_names[version], msg ? msg : "?");
			goto out;
		}
		snprintf(setver, sizeof(setver), "PRAGMA user_version = %d", version + 1);
		if (sqlite3_exec(db, setver, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "%s: cannot set schema version: %s", path,
			    msg ? msg : "?");
			goto out;
		}
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot commit migration: %s", path, msg ? msg : "?");
		goto out;
	}
	in_tx = 0;
	ret = 0;
out:
	if (in_tx)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_free(msg);
	return ret;
}

/* The daemon is the cache's only writer: a database it cannot write is a startup error that
 * says what is read-only and what to do, not a failure further down ("cannot start
 * migration", a refresh timer that cannot start). A write transaction is opened and rolled
 * back, so the file, its directory (the -wal and -shm files) and the mount are all tried. */
static int
check_writable(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	int primary = rc & 0xff;

	if (rc == SQLITE_OK && sqlite3_db_readonly(db, "main") != 1) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return 0;
	}
	if (rc == SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	/* Not a question of rights or mounts (not a database, corrupt): no read-only fallback. */
	if (rc != SQLITE_OK && primary != SQLITE_READONLY && primary != SQLITE_CANTOPEN &&
	    primary != SQLITE_PERM && primary != SQLITE_AUTH && primary != SQLITE_BUSY &&
	    primary != SQLITE_LOCKED && primary != SQLITE_IOERR) {
		snprintf(err, errlen, "%s: cannot open the database: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
		snprintf(err, errlen, "%s: the database is locked by another process (%s); staplerd is "
		    "its only writer: stop the other writer (a second staplerd on the same database?) "
		    "and start again", path, sqlite3_errstr(rc));
		return -1;
	}
	snprintf(err, errlen, "%s: the database cannot be written (%s): its file system is mounted "
	    "read-only, or the file or its directory (which holds the -wal and -shm files) is not "
	    "writable by the user staplerd runs as; staplerd is the cache's only writer and needs "
	    "both writable (the unit's StateDirectory= does this)",
	    path, rc == SQLITE_OK ? "opened read-only" : sqlite3_errmsg(db));
	return -2;
}

/* Read-write setup. Migrations run first, so a database that is not ours is refused before
 * anything in it changes, and with foreign keys still off, so a future migration may rebuild
 * a table the way SQLite documents. Then WAL, so staplerctl reads while the daemon writes;
 * NORMAL is durable enough in WAL mode (a crash loses at most the last commits, never
 * consistency). */
static int
setup_readwrite(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *text;
	char *msg = NULL, mode[16] = "";
	int version, ret = -1, done = 0;

	if ((ret = check_writable(db, path, err, errlen)) != 0)
		return ret;
	ret = -1;
	/* An up-to-date database (every start but the first) needs no write lock. */
	if (exec_user_version(db, &version) == 0 && version >= 0 &&
	    (size_t)version == cache_migration_count)
		done = 1;
	while (!done) {
		if (migrate_one(db, path, &done, err, errlen) != 0)
			goto out;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		snprintf(err, errlen, "%s: cannot enable WAL: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	text = (const char *)sqlite3_column_text(st, 0);
	snprintf(mode, sizeof(mode), "%s", text ? text : "?");
	/* An in-memory database (tests) has no journal file to put in WAL mode. */
	if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
		snprintf(err, errlen, "%s: cannot enable WAL (journal mode stays %s)", path, mode);
		goto out;
	}
	if (sqlite3_exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", NULL, NULL,
	    &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : "?");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	sqlite3_free(msg);
	return ret;
}

/* Read-only setup: never migrates, so the schema must already be the one this build knows. */
static int
setup_readonly(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	int version;

	if (exec_user_version(db, &version) != 0) {
		snprintf(err, errlen, "%s: cannot read schema version: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	if (version < 0 || (size_t)version > cache_migration_count) {
		snprintf(err, errlen, "%s: schema version %d is newer than this build knows (%zu); "
		    "use a newer staplerctl", path, version, cache_migration_count);
		return -1;
	}
	if ((size_t)version < cache_migration_count) {
		snprintf(err, errlen, "%s: schema version %d, expected %zu; staplerd creates and "
		    "migrates the database when it starts", path, version, cache_migration_count);
		return -1;
	}
	return 0;
}

/* Finalizes the statements and closes the connection (all statements are finalized, so the
 * close cannot be left pending). */
static void
db_disconnect(struct cache *c)
{
	for (int i = 0; i < ST_MAX; i++) {
		sqlite3_finalize(c->stmt[i]);
		c->stmt[i] = NULL;
	}
	if (c->db != NULL && sqlite3_close(c->db) != SQLITE_OK)
		cache_fail("close", sqlite3_errmsg(c->db));
	c->db = NULL;
}

/* A file: URI for path, every byte but [A-Za-z0-9/._-] percent-encoded, then query. */
static int
file_uri(const char *path, const char *query, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const char *p = "file:"; *p != '\0' && n < cap; p++)
		out[n++] = *p;
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
		if (n + 4 > cap)
			return -1;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '/' || *p == '.' || *p == '_' || *p == '-') {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (snprintf(out + n, cap - n, "%s", query) >= (int)(cap - n))
		return -1;
	return 0;
}

/* Opens c->db for mode (CACHE_OPEN_RW creates; CACHE_OPEN_RO through uri when not NULL),
 * sets it up and prepares the statements. Returns 0, -2 when the database can be read but not
 * written, -1 otherwise; err says why. On failure c holds no connection. */
static int
db_connect(struct cache *c, const char *path, int mode, const char *uri, char *err, size_t errlen)
{
	int flags, rc, ret = -1;

	flags = mode == CACHE_OPEN_RO ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | (c->fallback ? 0 : SQLITE_OPEN_CREATE);
	if (uri != NULL)
		flags |= SQLITE_OPEN_URI;
	/* A connection is used by one thread only (the daemon's loop, staplerctl): SQLite's
	 * per-call mutexes were 5 % of a warm start's time. */
	flags |= SQLITE_OPEN_NOMUTEX;
	rc = sqlite3_open_v2(uri != NULL ? uri : path, &c->db, flags, NULL);
	if (rc != SQLITE_OK && mode != CACHE_OPEN_RO && (rc & 0xff) == SQLITE_CANTOPEN &&
	    access(path, F_OK) == 0) {
		snprintf(err, errlen, "%s: the database exists but cannot be read (%s): the user "
		    "staplerd runs as needs to read it (its mode, owner, or an unreadable mount)", path,
		    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if (rc != SQLITE_OK && mode != CACHE_OPEN_RO && (rc & 0xff) == SQLITE_CANTOPEN) {
		snprintf(err, errlen, "%s: cannot open or create the database (%s): its directory must "
		    "exist and be writable by the user staplerd runs as, on a file system mounted "
		    "read-write", path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(c->db, c->nowait ? 0 : CACHE_BUSY_TIMEOUT_MS);
	if (mode == CACHE_OPEN_RO)
		ret = setup_readonly(c->db, path, err, errlen);
	else
		ret = setup_readwrite(c->db, path, err, errlen);
	if (ret != 0)
		goto fail;
	ret = -1;
	for (int i = 0; i < ST_MAX; i++) {
		/* PERSISTENT: these live as long as the connection. */
		if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &c->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: cannot prepare statement: %s", path,
			    sqlite3_errmsg(c->db));
			goto fail;
		}
	}
	c->readonly = mode == CACHE_OPEN_RO;
	return 0;
fail:
	db_disconnect(c);
	return ret;
}

/* 1 when the file at path can be opened for writing (or does not exist yet), 0 when not:
 * asked of the kernel before SQLite, which opens such a file read-only without a word and
 * creates its -wal and -shm files with the same read-only mode, so a chmod of the database
 * alone would not make it writable again. */
static int
file_writable(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return errno == ENOENT;
}

/* The database is writable again, but its -wal or -shm file (suffix) may have been created
 * while it was not, with its read-only mode (SQLite gives them the database's; staplerctl
 * reading it does this): such a file gets the database's mode again, where we own it, or
 * SQLite would open the database read-only all the same. */
static void
match_mode(const char *path, const char *suffix)
{
	char side[4200];
	struct stat db;

	if (snprintf(side, sizeof(side), "%s%s", path, suffix) >= (int)sizeof(side) ||
	    file_writable(side) || errno != EACCES || stat(path, &db) < 0)
		return;
	if (chmod(side, db.st_mode & 0666) < 0)
		log_warn("database_file_mode", "path=\"%s\" error=\"%s\"", side, strerror(errno));
}

/* A database that can be read but not written (a read-only mount, a file the service user
 * cannot write): opened read-only. Immutable (no -shm file, no locks) unless its WAL holds
 * commits (a crash before the stop): an ordinary read-only open would create the -shm with the
 * file's read-only mode, and the connection opened once the file is writable again would be
 * read-only all the same; and on a read-only mount it could not create it at all. Nobody else
 * writes the file meanwhile: staplerd is its only writer. Returns 0 or -1 with err set. */
static int
db_connect_readonly(struct cache *c, const char *path, const char *why, char *err,
    size_t errlen)
{
	static const char *const first_immutable[] = { "?immutable=1", "?mode=ro" };
	static const char *const first_wal[] = { "?mode=ro", "?immutable=1" };
	const char *const *order = first_immutable;
	char uri[4200], msg[512] = "", wal[4200];
	struct stat sb;

	if (snprintf(wal, sizeof(wal), "%s-wal", path) < (int)sizeof(wal) && stat(wal, &sb) == 0 &&
	    sb.st_size > 0)
		order = first_wal;
	for (int i = 0; i < 2; i++) {
		if (file_uri(path, order[i], uri, sizeof(uri)) == 0 &&
		    db_connect(c, path, CACHE_OPEN_RO, uri, msg, sizeof(msg)) == 0)
			return 0;
	}
	snprintf(err, errlen, "%.1500s; and it cannot be read either: %.1000s", why, msg);
	return -1;
}

/* Errors go to err only: the caller reports them (a startup error, or staplerctl's one line). */
struct cache *
cache_open(const char *path, int mode, char *err, size_t errlen)
{
	struct cache *c = NULL;
	char why[2048];
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "cache: no database path");
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (mode == CACHE_OPEN_FALLBACK && !file_writable(path)) {
		snprintf(why, sizeof(why), "%s: the database cannot be written (%s): its file system is "
		    "mounted read-only, or the file is not writable by the user staplerd runs as",
		    path, strerror(errno));
		rc = -2;
	} else if ((rc = db_connect(c, path, mode == CACHE_OPEN_RO ? CACHE_OPEN_RO : CACHE_OPEN_RW,
	    NULL, why, sizeof(why))) == 0)
		return c;
	/* An existing database that cannot be written is served read-only until it can be. */
	if (rc == -2 && mode == CACHE_OPEN_FALLBACK) {
		c->fallback = 1;
		if (db_connect_readonly(c, path, why, err, errlen) == 0) {
			snprintf(err, errlen, "%s", why);   /* why it is read-only */
			c->fault = CACHE_FAULT_READONLY;
			snprintf(c->errmsg, sizeof(c->errmsg), "opened read-only: it cannot be written");
			return c;
		}
		goto fail;
	}
	snprintf(err, errlen, "%s", why);
fail:
	cache_close(&c);
	return NULL;
}

int
cache_writable(const struct cache *cache)
{
	return !cache->readonly;
}

void
cache_close(struct cache **cache)
{
	struct cache *c;

	if (cache == NULL || *cache == NULL)
		return;
	c = *cache;
	db_disconnect(c);
	free(c->path);
	free(c);
	*cache = NULL;
}

int
cache_schema_latest(void)
{
	return (int)cache_migration_count;
}

int
cache_schema_version(struct cache *cache)
{
	int version;

	if (exec_user_version(cache->db, &version) != 0) {
		cache_fail_db(cache, "schema_version");
		return -1;
	}
	return version;
}

/* Keys are compared as text: a lowercase or empty one would make a second row for the same
 * certificate, so only uppercase hex (and a serial's '-') gets in. */
static int
valid_hex(const char *s, size_t cap, int allow_sign)
{
	size_t i = 0, len = strnlen(s, cap);

	if (len == cap)
		return 0;
	if (allow_sign && s[0] == '-')
		i++;
	if (i == len)
		return 0;
	for (; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	}
	return 1;
}

/* Optional values are NULL in the database rather than magic numbers. */
static int
bind_optional_int(sqlite3_stmt *st, int param, long long value, long long none)
{
	if (value == none)
		return sqlite3_bind_null(st, param);
	return sqlite3_bind_int64(st, param, value);
}

static int
bind_row(sqlite3_stmt *st, const struct cache_row *row, long long created_at)
{
	int rc = SQLITE_OK;

#define B(call) do { if (rc == SQLITE_OK) rc = (call); } while (0)
	B(sqlite3_bind_text(st, P_HASH_ALG, stapler_hash_alg_name(row->hash_alg), -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_SERIAL, row->serial, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_ISSUER_KEY_HASH, row->issuer_key_hash, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_ISSUER_NAME_HASH, row->issuer_name_hash, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_SUBJECT, row->subject, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_OCSP_URL, row->ocsp_url, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_OCSP_URLS, row->ocsp_urls, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_CERT_STATUS, stapler_status_name(row->status), -1,
	    SQLITE_STATIC));
	B(bind_optional_int(st, P_REVOKED_AT, row->revoked_at, 0));
	B(bind_optional_int(st, P_REVOCATION_REASON, row->revocation_reason, -1));
	B(sqlite3_bind_int64(st, P_THIS_UPDATE, row->this_update));
	B(sqlite3_bind_int64(st, P_NEXT_UPDATE, row->next_update));
	B(sqlite3_bind_int64(st, P_PRODUCED_AT, row->produced_at));
	B(sqlite3_bind_int64(st, P_FETCHED_AT, row->fetched_at));
	B(sqlite3_bind_int64(st, P_CERT_NOT_AFTER, row->cert_not_after));
	/* A NULL pointer binds SQL NULL, which NOT NULL rejects: a row needs both DERs. */
	B(sqlite3_bind_blob64(st, P_RESPONSE_DER, row->response_der, row->response_len,
	    SQLITE_STATIC));
	B(sqlite3_bind_blob64(st, P_REQUEST_DER, row->request_der, row->request_len,
	    SQLITE_STATIC));
	B(sqlite3_bind_int64(st, P_NEXT_REFRESH_AT, row->next_refresh_at));
	B(sqlite3_bind_int(st, P_FAILURES, row->failures));
	B(sqlite3_bind_text(st, P_LAST_ERROR, row->last_error, -1, SQLITE_STATIC));
	B(sqlite3_bind_int64(st, P_CREATED_AT, created_at));
	/* 0 (not known, as for a row written by a tool): as asked for when fetched. */
	B(sqlite3_bind_int64(st, P_USED_AT, row->used_at != 0 ? row->used_at : row->fetched_at));
	B(sqlite3_bind_text(st, P_UPSTREAM_ETAG, row->upstream_etag, -1, SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_UPSTREAM_LAST_MODIFIED, row->upstream_last_modified, -1,
	    SQLITE_STATIC));
	B(sqlite3_bind_text(st, P_HASH_PARAMS, stapler_hash_params_name(row->hash_params), -1,
	    SQLITE_STATIC));
#undef B
	return rc == SQLITE_OK ? 0 : -1;
}

int
cache_store(struct cache *cache, const struct cache_issuer *issuer, const struct cache_row *row)
{
	return cache_store_with(cache, issuer, row, NULL, NULL);
}

int
cache_store_with(struct cache *cache, const struct cache_issuer *issuer,
    const struct cache_row *row, int (*extra)(struct sqlite3 *db, void *arg), void *arg)
{
	sqlite3_stmt *st;
	long long now = (long long)time(NULL);
	int in_tx = 0, ret = -1;

	/* Read-only for now (cache_recover() tries read-write again): worth a retry. */
	if (cache->readonly && cache->fallback) {
		cache->fault = CACHE_FAULT_READONLY;
		goto out;
	}
	/* A refusal below is the row's fault, not the database's: never worth a retry. */
	cache->fault = CACHE_FAULT_OTHER;
	if (cache->readonly) {
		cache_fail("store", "database is open read-only");
		goto out;
	}
	if (!valid_hex(row->serial, sizeof(row->serial), 1) ||
	    !valid_hex(row->issuer_key_hash, sizeof(row->issuer_key_hash), 0) ||
	    !valid_hex(row->issuer_name_hash, sizeof(row->issuer_name_hash), 0)) {
		cache_fail("store", "serial and hashes must be uppercase hex");
		goto out;
	}
	if ((unsigned)row->status > STAPLER_UNKNOWN ||
	    (unsigned)row->hash_alg >= STAPLER_HASH_ALG_COUNT ||
	    (unsigned)row->hash_params > STAPLER_PARAMS_ABSENT) {
		cache_fail("store", "invalid certificate status, hash algorithm or parameters");
		goto out;
	}
	/* A row is verified against its own issuer, never another CA's. */
	if (issuer != NULL && (strcmp(issuer->key_hash, row->issuer_key_hash) != 0 ||
	    strcmp(issuer->name_hash, row->issuer_name_hash) != 0)) {
		cache_fail("store", "issuer name or key hash differs from the row's");
		goto out;
	}
	if (stmt_run(cache, ST_BEGIN, "store") != 0)
		goto out;
	in_tx = 1;
	if (issuer != NULL) {
		st = cache->stmt[ST_PUT_ISSUER];
		if (sqlite3_bind_text(st, 1, issuer->name_hash, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, issuer->key_hash, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st, 3, issuer->subject, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_blob64(st, 4, issuer->cert_der, issuer->cert_len,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 5, now) != SQLITE_OK) {
			cache_fail_db(cache, "store_issuer");
			stmt_done(st);
			goto out;
		}
		if (stmt_run(cache, ST_PUT_ISSUER, "store_issuer") != 0)
			goto out;
	}
	st = cache->stmt[ST_PUT_ROW];
	/* created_at is only written by the INSERT branch; the upsert keeps the first value. */
	if (bind_row(st, row, row->created_at != 0 ? row->created_at : now) != 0) {
		cache_fail_db(cache, "store");
		stmt_done(st);
		goto out;
	}
	if (stmt_run(cache, ST_PUT_ROW, "store") != 0)
		goto out;
	if (extra != NULL && extra(cache->db, arg) != 0) {
		cache_fail_db(cache, "store_extra");
		goto out;
	}
	if (stmt_run(cache, ST_COMMIT, "store_commit") != 0)
		goto out;
	in_tx = 0;
	ret = 0;
out:
	if (in_tx)
		rollback(cache, "store_rollback");
	return ret;
}

int
cache_tx(struct cache *cache, int (*fn)(struct sqlite3 *db, void *arg), void *arg)
{
	int ret = -1;

	if (cache->readonly) {
		cache->fault = cache->fallback ? CACHE_FAULT_READONLY : CACHE_FAULT_OTHER;
		return -1;
	}
	if (stmt_run(cache, ST_BEGIN, "tx") != 0)
		return -1;
	if (fn(cache->db, arg) != 0) {
		cache_fail_db(cache, "tx");
		rollback(cache, "tx_rollback");
		return -1;
	}
	if (stmt_run(cache, ST_COMMIT, "tx_commit") != 0)
		rollback(cache, "tx_rollback");
	else
		ret = 0;
	return ret;
}

/* Copies a TEXT column into a new string; NULL stays NULL. */
static int
col_strdup(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *text = sqlite3_column_text(st, col);
	int len = sqlite3_column_bytes(st, col);

	*out = NULL;
	if (text == NULL)
		return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
	*out = malloc((size_t)len + 1);
	if (*out == NULL)
		return -1;
	memcpy(*out, text, (size_t)len + 1);
	return 0;
}

/* Copies a TEXT column into a fixed buffer; too long means the row is not ours. */
static int
col_copy(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *text = sqlite3_column_text(st, col);
	size_t len = (size_t)sqlite3_column_bytes(st, col);

	if (text == NULL || len >= cap)
		return -1;
	memcpy(out, text, len + 1);
	return 0;
}

/* Copies a BLOB column; a zero-length blob gives NULL and 0. */
static int
col_blob(sqlite3_stmt *st, int col, unsigned char **out, size_t *len)
{
	const void *blob = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	*out = NULL;
	*len = 0;
	if (blob == NULL || n <= 0)
		return 0;
	*out = malloc((size_t)n);
	if (*out == NULL)
		return -1;
	memcpy(*out, blob, (size_t)n);
	*len = (size_t)n;
	return 0;
}

/* Fills row from the current result (ROW_COLUMNS order). On failure row is cleared. */
static int
row_read(sqlite3_stmt *st, struct cache_row *row)
{
	const char *status, *alg, *params;

	memset(row, 0, sizeof(*row));
	alg = (const char *)sqlite3_column_text(st, 0);
	status = (const char *)sqlite3_column_text(st, 7);
	params = (const char *)sqlite3_column_text(st, 24);
	if (alg == NULL || stapler_hash_alg_parse(alg, &row->hash_alg) != 0 ||
	    params == NULL || stapler_hash_params_parse(params, &row->hash_params) != 0 ||
	    col_copy(st, 1, row->serial, sizeof(row->serial)) != 0 ||
	    col_copy(st, 2, row->issuer_key_hash, sizeof(row->issuer_key_hash)) != 0 ||
	    col_copy(st, 3, row->issuer_name_hash, sizeof(row->issuer_name_hash)) != 0 ||
	    col_strdup(st, 4, &row->subject) != 0 ||
	    col_strdup(st, 5, &row->ocsp_url) != 0 ||
	    col_strdup(st, 6, &row->ocsp_urls) != 0 ||
	    status == NULL || stapler_status_parse(status, &row->status) != 0 ||
	    col_blob(st, 15, &row->response_der, &row->response_len) != 0 ||
	    col_blob(st, 16, &row->request_der, &row->request_len) != 0 ||
	    col_strdup(st, 19, &row->last_error) != 0 ||
	    col_strdup(st, 22, &row->upstream_etag) != 0 ||
	    col_strdup(st, 23, &row->upstream_last_modified) != 0)
		goto fail;
	row->revoked_at = sqlite3_column_type(st, 8) == SQLITE_NULL ? 0 :
	    sqlite3_column_int64(st, 8);
	row->revocation_reason = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(st, 9);
	row->this_update = sqlite3_column_int64(st, 10);
	row->next_update = sqlite3_column_int64(st, 11);
	row->produced_at = sqlite3_column_int64(st, 12);
	row->fetched_at = sqlite3_column_int64(st, 13);
	row->cert_not_after = sqlite3_column_int64(st, 14);
	row->next_refresh_at = sqlite3_column_int64(st, 17);
	row->failures = sqlite3_column_int(st, 18);
	row->created_at = sqlite3_column_int64(st, 20);
	row->used_at = sqlite3_column_int64(st, 21);
	return 0;
fail:
	cache_row_clear(row);
	return -1;
}

int
cache_row_key(const struct cache_row *row, struct stapler_key *key)
{
	if (stapler_key_from_hex(key, row->hash_alg, row->issuer_name_hash, row->issuer_key_hash,
	    row->serial) < 0 || (unsigned)row->hash_params > STAPLER_PARAMS_ABSENT)
		return -1;
	key->hash_params = (unsigned char)row->hash_params;
	return 0;
}

/* A key's stored (text) forms. */
struct key_text {
	char name_hash[STAPLER_SHA1_HEX], key_hash[STAPLER_SHA1_HEX];
	char serial[STAPLER_SERIAL_HEX_MAX];
};

/* Binds key as ?1..?5 (KEY_MATCH); text holds the strings until the statement is reset. */
static int
bind_key(sqlite3_stmt *st, const struct stapler_key *key, struct key_text *text)
{
	stapler_key_name_hash_hex(key, text->name_hash);
	stapler_key_hash_hex(key, text->key_hash);
	stapler_key_serial_hex(key, text->serial);
	return sqlite3_bind_text(st, 1, stapler_hash_alg_name(key->hash_alg), -1,
	    SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_text(st, 2, text->name_hash, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_text(st, 3, text->key_hash, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_text(st, 4, text->serial, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_text(st, 5, stapler_hash_params_name(key->hash_params), -1,
	    SQLITE_STATIC) == SQLITE_OK ? 0 : -1;
}

/* *row is zeroed on every return, so cache_row_clear() after any result is safe. */
int
cache_get(struct cache *cache, const struct stapler_key *key, struct cache_row *row)
{
	sqlite3_stmt *st = cache->stmt[ST_GET_ROW];
	struct key_text text;
	int rc, ret = -1;

	memset(row, 0, sizeof(*row));
	if (bind_key(st, key, &text) != 0) {
		cache_fail_db(cache, "get");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 0;
	} else if (rc != SQLITE_ROW) {
		cache_fail_db(cache, "get");
	} else if (row_read(st, row) != 0) {
		cache_fail("get", "unreadable row (out of memory or corrupt)");
	} else {
		ret = 1;
	}
out:
	stmt_done(st);
	return ret;
}

int
cache_get_issuer(struct cache *cache, const struct stapler_key *key, struct cache_issuer *issuer)
{
	sqlite3_stmt *st = cache->stmt[ST_GET_ISSUER];
	struct key_text text;
	int rc, ret = -1;

	memset(issuer, 0, sizeof(*issuer));
	stapler_key_name_hash_hex(key, text.name_hash);
	stapler_key_hash_hex(key, text.key_hash);
	if (sqlite3_bind_text(st, 1, text.name_hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, text.key_hash, -1, SQLITE_STATIC) != SQLITE_OK) {
		cache_fail_db(cache, "get_issuer");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 0;
	} else if (rc != SQLITE_ROW) {
		cache_fail_db(cache, "get_issuer");
	} else if (col_copy(st, 0, issuer->name_hash, sizeof(issuer->name_hash)) != 0 ||
	    col_copy(st, 1, issuer->key_hash, sizeof(issuer->key_hash)) != 0 ||
	    col_strdup(st, 2, &issuer->subject) != 0 ||
	    col_blob(st, 3, &issuer->cert_der, &issuer->cert_len) != 0) {
		cache_fail("get_issuer", "unreadable row (out of memory or corrupt)");
		cache_issuer_clear(issuer);
	} else {
		ret = 1;
	}
out:
	stmt_done(st);
	return ret;
}

int
cache_foreach(struct cache *cache, int (*cb)(const struct cache_row *row, void *arg), void *arg)
{
	sqlite3_stmt *st = cache->stmt[ST_ALL_ROWS];
	struct cache_row row;
	int rc, ret = 0;

	if (cache->in_foreach) {
		cache_fail("foreach", "called from its own callback");
		return -1;
	}
	cache->in_foreach = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_read(st, &row) != 0) {
			cache_fail("foreach", "unreadable row (out of memory or corrupt)");
			ret = -1;
			goto out;
		}
		ret = cb(&row, arg);
		cache_row_clear(&row);
		if (ret != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		cache_fail_db(cache, "foreach");
		ret = -1;
	}
out:
	stmt_done(st);
	cache->in_foreach = 0;
	return ret;
}

/* Column numbers of ST_LOAD_SLICE. */
enum load_col {
	LOAD_COL_ID, LOAD_COL_ALG, LOAD_COL_SERIAL, LOAD_COL_KEY_HASH, LOAD_COL_NAME_HASH,
	LOAD_COL_STATUS, LOAD_COL_REVOKED_AT, LOAD_COL_REASON, LOAD_COL_THIS_UPDATE,
	LOAD_COL_NEXT_UPDATE, LOAD_COL_PRODUCED_AT, LOAD_COL_FETCHED_AT, LOAD_COL_NEXT_REFRESH_AT,
	LOAD_COL_USED_AT, LOAD_COL_DER, LOAD_COL_URLS, LOAD_COL_PARAMS,
};

/* Fills r from the current ST_LOAD_SLICE result: no allocation, the DER and the URL list
 * point into SQLite's memory. */
static int
load_row_read(sqlite3_stmt *st, struct cache_load_row *r)
{
	struct cache_row *row = &r->row;
	const char *status = (const char *)sqlite3_column_text(st, LOAD_COL_STATUS);
	const char *alg = (const char *)sqlite3_column_text(st, LOAD_COL_ALG);
	const char *params = (const char *)sqlite3_column_text(st, LOAD_COL_PARAMS);

	memset(r, 0, sizeof(*r));
	if (alg == NULL || stapler_hash_alg_parse(alg, &row->hash_alg) != 0 ||
	    params == NULL || stapler_hash_params_parse(params, &row->hash_params) != 0 ||
	    col_copy(st, LOAD_COL_SERIAL, row->serial, sizeof(row->serial)) != 0 ||
	    col_copy(st, LOAD_COL_KEY_HASH, row->issuer_key_hash, sizeof(row->issuer_key_hash)) != 0 ||
	    col_copy(st, LOAD_COL_NAME_HASH, row->issuer_name_hash,
	    sizeof(row->issuer_name_hash)) != 0 ||
	    status == NULL || stapler_status_parse(status, &row->status) != 0)
		return -1;
	r->id = sqlite3_column_int64(st, LOAD_COL_ID);
	row->revoked_at = sqlite3_column_type(st, LOAD_COL_REVOKED_AT) == SQLITE_NULL ? 0 :
	    sqlite3_column_int64(st, LOAD_COL_REVOKED_AT);
	row->revocation_reason = sqlite3_column_type(st, LOAD_COL_REASON) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(st, LOAD_COL_REASON);
	row->this_update = sqlite3_column_int64(st, LOAD_COL_THIS_UPDATE);
	row->next_update = sqlite3_column_int64(st, LOAD_COL_NEXT_UPDATE);
	row->produced_at = sqlite3_column_int64(st, LOAD_COL_PRODUCED_AT);
	row->fetched_at = sqlite3_column_int64(st, LOAD_COL_FETCHED_AT);
	row->next_refresh_at = sqlite3_column_int64(st, LOAD_COL_NEXT_REFRESH_AT);
	row->used_at = sqlite3_column_int64(st, LOAD_COL_USED_AT);
	r->der = sqlite3_column_blob(st, LOAD_COL_DER);
	r->der_len = (size_t)sqlite3_column_bytes(st, LOAD_COL_DER);
	r->ocsp_urls = (const char *)sqlite3_column_text(st, LOAD_COL_URLS);
	return 0;
}

long
cache_load_slice(struct cache *cache, long long *after, long limit,
    int (*cb)(const struct cache_load_row *r, void *arg), void *arg)
{
	sqlite3_stmt *st = cache->stmt[ST_LOAD_SLICE];
	struct cache_load_row r;
	long n = 0;
	int rc;

	if (sqlite3_bind_int64(st, 1, *after) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, limit) != SQLITE_OK) {
		cache_fail_db(cache, "load");
		n = -1;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		/* Past a row that cannot be read, never stuck on it: its id is known. */
		*after = sqlite3_column_int64(st, LOAD_COL_ID);
		n++;
		if (load_row_read(st, &r) != 0) {
			cache_fail("load", "unreadable row (corrupt)");
			continue;
		}
		if (cb(&r, arg) != 0) {
			n = -1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		cache_fail_db(cache, "load");
		n = -1;
	}
out:
	stmt_done(st);
	return n;
}

int
cache_issuers_foreach(struct cache *cache,
    int (*cb)(const struct cache_issuer *issuer, void *arg), void *arg)
{
	sqlite3_stmt *st = cache->stmt[ST_ISSUERS];
	struct cache_issuer issuer;
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&issuer, 0, sizeof(issuer));
		if (col_copy(st, 0, issuer.name_hash, sizeof(issuer.name_hash)) != 0 ||
		    col_copy(st, 1, issuer.key_hash, sizeof(issuer.key_hash)) != 0 ||
		    col_strdup(st, 2, &issuer.subject) != 0 ||
		    col_blob(st, 3, &issuer.cert_der, &issuer.cert_len) != 0) {
			cache_issuer_clear(&issuer);
			cache_fail("issuers", "unreadable row (out of memory or corrupt)");
			continue;
		}
		ret = cb(&issuer, arg);
		cache_issuer_clear(&issuer);
		if (ret != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		cache_fail_db(cache, "issuers");
		ret = -1;
	}
out:
	stmt_done(cache->stmt[ST_ISSUERS]);
	return ret;
}

int
cache_issuer_urls(struct cache *cache, enum stapler_hash_alg alg, const char *name_hash,
    const char *key_hash, char **urls)
{
	sqlite3_stmt *st = cache->stmt[ST_ISSUER_URLS];
	int rc, ret = -1;

	*urls = NULL;
	if (sqlite3_bind_text(st, 1, stapler_hash_alg_name(alg), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name_hash, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, key_hash, -1, SQLITE_STATIC) != SQLITE_OK) {
		cache_fail_db(cache, "issuer_urls");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		ret = 0;
	else if (rc != SQLITE_ROW)
		cache_fail_db(cache, "issuer_urls");
	else if (col_strdup(st, 0, urls) == 0 && *urls != NULL)
		ret = 1;
out:
	stmt_done(st);
	return ret;
}

int
cache_count(struct cache *cache, long long *total, long long counts[3])
{
	sqlite3_stmt *st = cache->stmt[ST_COUNT];
	enum stapler_cert_status status;
	long long sum = 0, by[3] = { 0, 0, 0 };
	const char *name;
	int rc, ret = -1;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		if (name == NULL || stapler_status_parse(name, &status) != 0) {
			cache_fail("count", "unknown cert_status in database");
			goto out;
		}
		by[status] = sqlite3_column_int64(st, 1);
		sum += by[status];
	}
	if (rc != SQLITE_DONE) {
		cache_fail_db(cache, "count");
		goto out;
	}
	if (total != NULL)
		*total = sum;
	if (counts != NULL)
		memcpy(counts, by, sizeof(by));
	ret = 0;
out:
	stmt_done(st);
	return ret;
}

void
cache_row_clear(struct cache_row *row)
{
	if (row == NULL)
		return;
	free(row->subject);
	free(row->ocsp_url);
	free(row->ocsp_urls);
	free(row->response_der);
	free(row->request_der);
	free(row->last_error);
	free(row->upstream_etag);
	free(row->upstream_last_modified);
	memset(row, 0, sizeof(*row));
}

void
cache_issuer_clear(struct cache_issuer *issuer)
{
	if (issuer == NULL)
		return;
	free(issuer->subject);
	free(issuer->cert_der);
	memset(issuer, 0, sizeof(*issuer));
}

/* Steps st, a query of KEY_COLUMNS bound to now (?1) and limit (?2), into keys[0..limit).
 * Returns the count, or -1 (logged). Resets st. */
static int
read_keys(struct cache *cache, sqlite3_stmt *st, const char *op, long long now, int limit,
    struct cache_refresh *keys)
{
	int rc = SQLITE_DONE, n = 0;

	if (sqlite3_bind_int64(st, 1, now) != SQLITE_OK || sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
		cache_fail_db(cache, op);
		stmt_done(st);
		return -1;
	}
	while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *alg = (const char *)sqlite3_column_text(st, 0);
		const char *params = (const char *)sqlite3_column_text(st, 4);
		enum stapler_hash_params pa;
		enum stapler_hash_alg a;

		if (alg == NULL || stapler_hash_alg_parse(alg, &a) != 0 ||
		    params == NULL || stapler_hash_params_parse(params, &pa) != 0 ||
		    stapler_key_from_hex(&keys[n].key, a, (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    (const char *)sqlite3_column_text(st, 3)) != 0)
			continue;
		keys[n].key.hash_params = (unsigned char)pa;
		/* The due list carries each row's next_refresh_at as a sixth column. */
		keys[n].next_refresh_at = sqlite3_column_count(st) > 5 ? sqlite3_column_int64(st, 5) : 0;
		n++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		cache_fail_db(cache, op);
		n = -1;
	}
	stmt_done(st);
	return n;
}

int
cache_due(struct cache *cache, long long now, int limit, struct cache_refresh *keys)
{
	return read_keys(cache, cache->stmt[ST_DUE], "due", now, limit, keys);
}

int
cache_set_refresh(struct cache *cache, const struct cache_refresh *items, size_t n)
{
	sqlite3_stmt *st = cache->stmt[ST_SET_REFRESH];
	struct key_text text;
	int in_tx = 0, ret = -1;

	if (n == 0)
		return 0;
	if (stmt_run(cache, ST_BEGIN, "set_refresh") != 0)
		goto out;
	in_tx = 1;
	for (size_t i = 0; i < n; i++) {
		if (bind_key(st, &items[i].key, &text) != 0 ||
		    sqlite3_bind_int64(st, 6, items[i].next_refresh_at) != SQLITE_OK) {
			cache_fail_db(cache, "set_refresh");
			stmt_done(st);
			goto out;
		}
		if (stmt_run(cache, ST_SET_REFRESH, "set_refresh") != 0)
			goto out;
	}
	if (stmt_run(cache, ST_COMMIT, "set_refresh_commit") != 0)
		goto out;
	in_tx = 0;
	ret = 0;
out:
	if (in_tx)
		rollback(cache, "set_refresh_rollback");
	return ret;
}

int
cache_set_failure(struct cache *cache, const struct stapler_key *key, int failures,
    const char *last_error, long long next_refresh_at)
{
	sqlite3_stmt *st = cache->stmt[ST_SET_FAILURE];
	struct key_text text;

	if (bind_key(st, key, &text) != 0 ||
	    sqlite3_bind_int(st, 6, failures) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, last_error, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 8, next_refresh_at) != SQLITE_OK) {
		cache_fail_db(cache, "set_failure");
		stmt_done(st);
		return -1;
	}
	return stmt_run(cache, ST_SET_FAILURE, "set_failure");
}

int
cache_delete(struct cache *cache, const struct stapler_key *key)
{
	sqlite3_stmt *st = cache->stmt[ST_DELETE];
	struct key_text text;

	if (bind_key(st, key, &text) != 0) {
		cache_fail_db(cache, "delete");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(cache, ST_DELETE, "delete") != 0)
		return -1;
	return sqlite3_changes(cache->db) > 0 ? 1 : 0;
}

int
cache_purge_expired(struct cache *cache, long long before, int limit,
    void (*cb)(const struct stapler_key *key, void *arg), void *arg)
{
	struct cache_refresh *keys = NULL;
	int n, in_tx = 0, ret = -1;

	if (limit <= 0)
		return 0;
	if ((keys = calloc((size_t)limit, sizeof(*keys))) == NULL) {
		cache_fail("purge", "out of memory");
		return -1;
	}
	if ((n = read_keys(cache, cache->stmt[ST_EXPIRED], "purge", before, limit, keys)) <= 0) {
		ret = n;
		goto out;
	}
	if (stmt_run(cache, ST_BEGIN, "purge") != 0)
		goto out;
	in_tx = 1;
	for (int i = 0; i < n; i++) {
		if (cache_delete(cache, &keys[i].key) < 0)
			goto out;
	}
	if (stmt_run(cache, ST_COMMIT, "purge_commit") != 0)
		goto out;
	in_tx = 0;
	for (int i = 0; cb != NULL && i < n; i++)
		cb(&keys[i].key, arg);
	ret = n;
out:
	if (in_tx)
		rollback(cache, "purge_rollback");
	free(keys);
	return ret;
}

int
cache_spread_due(struct cache *cache, long long now, long long spread, int limit)
{
	sqlite3_stmt *st = cache->stmt[ST_SPREAD];

	if (spread < 1)
		spread = 1;
	if (sqlite3_bind_int64(st, 1, now) != SQLITE_OK || sqlite3_bind_int64(st, 2, spread) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, limit) != SQLITE_OK) {
		cache_fail_db(cache, "spread");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(cache, ST_SPREAD, "spread") != 0)
		return -1;
	return sqlite3_changes(cache->db);
}

long long
cache_mark_all_due(struct cache *cache, long long now)
{
	sqlite3_stmt *st = NULL;
	long long n = -1;

	if (sqlite3_prepare_v2(cache->db, "UPDATE ocsp_response SET next_refresh_at = ?1 "
	    "WHERE next_refresh_at > ?1", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, now) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
		cache_fail_db(cache, "mark_all_due");
	else
		n = sqlite3_changes64(cache->db);
	sqlite3_finalize(st);
	return n;
}

sqlite3 *
cache_db(struct cache *cache)
{
	return cache->db;
}

int
cache_checkpoint(struct cache *cache)
{
	int log_frames = 0, done = 0;

	if (cache == NULL || cache->readonly)
		return -1;
	if (sqlite3_wal_checkpoint_v2(cache->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
	    &done) != SQLITE_OK) {
		cache_fail_db(cache, "checkpoint");
		return -1;
	}
	return 0;
}

/* The first column of the first row of sql on db, into out; 0 or -1. */
static int
query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && (v = sqlite3_column_text(st, 0)) != NULL) {
		snprintf(out, cap, "%s", (const char *)v);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

long long
cache_rows_bound(struct cache *cache)
{
	sqlite3_stmt *st = NULL;
	long long n = 0;

	/* The rowid's maximum: an index lookup, where count(*) would read the whole table. */
	if (sqlite3_prepare_v2(cache->db, "SELECT max(id) FROM ocsp_response", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n > 0 ? n : 0;
}

long
cache_backup(struct cache *cache, const char *dest, char *err, size_t errlen)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b = NULL;
	char check[256], mode[32];
	long pages = -1;
	int rc, in_txn = 0;

	/* One read transaction around every step: the snapshot cannot change between steps, so
	 * the backup never restarts, however busy the writer is. */
	if (sqlite3_exec(cache->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot start a read transaction: %s", sqlite3_errmsg(cache->db));
		goto out;
	}
	in_txn = 1;
	if (query_text(cache->db, "SELECT count(*) FROM sqlite_master", check, sizeof(check)) < 0) {
		snprintf(err, errlen, "cannot read the database: %s", sqlite3_errmsg(cache->db));
		goto out;
	}
	if (sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", dest, dst != NULL ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	if ((b = sqlite3_backup_init(dst, "main", cache->db, "main")) == NULL) {
		snprintf(err, errlen, "%s: %s", dest, sqlite3_errmsg(dst));
		goto out;
	}
	while ((rc = sqlite3_backup_step(b, CACHE_BACKUP_STEP)) == SQLITE_OK ||
	    rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		if (rc != SQLITE_OK)
			sqlite3_sleep(10);
	}
	pages = sqlite3_backup_pagecount(b);
	rc = sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: backup failed: %s", dest, sqlite3_errstr(rc));
		pages = -1;
		goto out;
	}
	if (query_text(dst, "PRAGMA journal_mode = DELETE", mode, sizeof(mode)) < 0 ||
	    query_text(dst, "PRAGMA integrity_check", check, sizeof(check)) < 0 ||
	    strcmp(check, "ok") != 0) {
		snprintf(err, errlen, "%s: the copy fails PRAGMA integrity_check: %s", dest,
		    sqlite3_errmsg(dst));
		pages = -1;
	}
out:
	if (b != NULL)
		sqlite3_backup_finish(b);
	if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && pages >= 0) {
		snprintf(err, errlen, "%s: cannot close: %s", dest, sqlite3_errmsg(dst));
		pages = -1;
	}
	if (in_txn)
		sqlite3_exec(cache->db, "COMMIT", NULL, NULL, NULL);
	return pages;
}
