/* The SQLite cache: open and migrate (sql/), prepared statements, one transaction per write.
 * No libevent here: staplerctl and the unit tests link it directly. */
#ifndef STAPLER_CACHE_H
#define STAPLER_CACHE_H

#include <stddef.h>

#include "stapler/types.h"

struct cache;
struct sqlite3;

/* One row of ocsp_response (docs/contract.md §6). Strings and blobs are owned by the row
 * (cache_row_clear() frees them); times are Unix seconds UTC. */
struct cache_row {
	/* The key: the whole CertID as encoded (types.h). The hashes are the issuer's SHA-1
	 * ones, whatever hash_alg is. */
	enum stapler_hash_alg hash_alg;
	enum stapler_hash_params hash_params;       /* the hash AlgorithmIdentifier's parameters */
	char serial[STAPLER_SERIAL_HEX_MAX];        /* uppercase hex */
	char issuer_key_hash[STAPLER_SHA1_HEX];     /* uppercase hex */
	char issuer_name_hash[STAPLER_SHA1_HEX];    /* uppercase hex */
	char *subject;
	char *ocsp_url;       /* URL the stored response came from */
	char *ocsp_urls;      /* every AIA URL, in order (certs_urls_encode(): netstrings) */
	enum stapler_cert_status status;
	long long revoked_at;       /* 0 unless revoked */
	int revocation_reason;      /* -1 when none */
	long long this_update, next_update, produced_at, fetched_at;
	long long cert_not_after;
	unsigned char *response_der; size_t response_len;   /* exactly the bytes served */
	unsigned char *request_der; size_t request_len;     /* the OCSPRequest a refresh re-sends */
	long long next_refresh_at;
	int failures;
	char *last_error;     /* NULL when the last attempt succeeded */
	long long created_at;
	long long used_at;    /* last asked for, as of the row's last write (0: when fetched) */
	/* The upstream's ETag and Last-Modified for response_der, verbatim; NULL: none given. */
	char *upstream_etag, *upstream_last_modified;
};

/* The issuer (CA) certificate of rows, needed to verify their refreshed responses. */
struct cache_issuer {
	char name_hash[STAPLER_SHA1_HEX];   /* SHA-1 of its subject name, uppercase hex */
	char key_hash[STAPLER_SHA1_HEX];    /* SHA-1 of its public key, uppercase hex */
	char *subject;
	unsigned char *cert_der; size_t cert_len;
};

/* How cache_open() opens: read-write (creating and migrating), read-only (staplerctl), or
 * the daemon's: read-write, or read-only when the database exists and can be read but not
 * written (a read-only mount, a file the service user cannot write). Then cache_writable()
 * is 0, writes fail with CACHE_FAULT_READONLY, and cache_recover() tries read-write again. */
#define CACHE_OPEN_RW 0
#define CACHE_OPEN_RO 1
#define CACHE_OPEN_FALLBACK 2

/* Opens the database at path in mode, in WAL mode. Returns NULL with err set ("path:
 * message") on failure: for CACHE_OPEN_FALLBACK, a database that can be neither written nor
 * read. */
struct cache *cache_open(const char *path, int mode, char *err, size_t errlen);
/* 0 while the connection is read-only (CACHE_OPEN_RO, or a fallback not yet writable). */
int cache_writable(const struct cache *cache);
void cache_close(struct cache **cache);
/* The schema version this build creates (the number of migrations in sql/). */
int cache_schema_latest(void);
/* The schema version the database is at (PRAGMA user_version). */
int cache_schema_version(struct cache *cache);

/* In one transaction: records the issuer (kept if known) and inserts or replaces the row with
 * the same key (hash_alg, hash_params, issuer_name_hash, issuer_key_hash, serial), keeping
 * its created_at.
 * Returns 0 or -1 (logged). */
int cache_store(struct cache *cache, const struct cache_issuer *issuer, const struct cache_row *row);
/* cache_store(), and extra(db, arg) (may be NULL) inside the same transaction after the row:
 * what rides in the row's write (its events). extra returns 0, or -1 with SQLite's error on
 * db, which rolls the whole write back. */
int cache_store_with(struct cache *cache, const struct cache_issuer *issuer,
    const struct cache_row *row, int (*extra)(struct sqlite3 *db, void *arg), void *arg);
/* Runs fn(db, arg) in one write transaction, with the faults of the other writes. 0 or -1. */
int cache_tx(struct cache *cache, int (*fn)(struct sqlite3 *db, void *arg), void *arg);

/* Reads one row. Returns 1 and fills *row (cache_row_clear() after), 0 when absent, -1 on error. */
int cache_get(struct cache *cache, const struct stapler_key *key, struct cache_row *row);
/* The key of a row read from the database. Returns 0, or -1 when the row's key is malformed. */
int cache_row_key(const struct cache_row *row, struct stapler_key *key);

/* Reads the issuer of key (its name and key hashes). Returns 1 and fills *issuer
 * (cache_issuer_clear()), 0 when absent, -1 on error. */
int cache_get_issuer(struct cache *cache, const struct stapler_key *key,
    struct cache_issuer *issuer);

/* Calls cb for every row (warm start), in rowid order; stops early and returns cb's value
 * when it returns non-zero. The row passed to cb is valid during the call only. */
int cache_foreach(struct cache *cache, int (*cb)(const struct cache_row *row, void *arg), void *arg);

/* A row as the warm start reads it: in row the key, the status and the times (its strings
 * and blobs NULL); the DER and the encoded URL list point into SQLite's memory, valid during
 * the callback only. Nothing is copied that an entry does not keep. */
struct cache_load_row {
	long long id;
	struct cache_row row;
	const unsigned char *der; size_t der_len;
	const char *ocsp_urls;    /* NULL when absent */
};

/* The warm start in slices: calls cb for at most limit rows whose id is above *after, in id
 * order, and moves *after to the last id read (an unreadable row is logged and passed over).
 * Each call is one short read of its own (no statement stays open between calls, so writes
 * and checkpoints go on between slices). Returns the number of rows read (0: none left), or
 * -1 on an error or when cb returned non-zero. */
long cache_load_slice(struct cache *cache, long long *after, long limit,
    int (*cb)(const struct cache_load_row *r, void *arg), void *arg);
/* Calls cb for every issuer (the issuer table: one row per CA); stops early and returns cb's
 * value when it returns non-zero, -1 on error. The issuer is valid during the call only. */
int cache_issuers_foreach(struct cache *cache,
    int (*cb)(const struct cache_issuer *issuer, void *arg), void *arg);
/* The encoded URL list (certs_urls_encode()) of one row of the issuer with these SHA-1 hashes
 * (uppercase hex) under CertID algorithm alg: one lookup in the UNIQUE index. Returns 1 and
 * sets *urls (free()), 0 when it has no such row, -1 on error. */
int cache_issuer_urls(struct cache *cache, enum stapler_hash_alg alg, const char *name_hash,
    const char *key_hash, char **urls);

/* Number of rows, and of rows per status (counts[STAPLER_GOOD…STAPLER_UNKNOWN]). 0 or -1. */
int cache_count(struct cache *cache, long long *total, long long counts[3]);
/* At least as many as the rows of ocsp_response (the largest rowid; cheap at any size), or 0
 * when it cannot tell. */
long long cache_rows_bound(struct cache *cache);

/* The scheduler's side. */

/* A row's key and when to fetch it next. */
struct cache_refresh {
	struct stapler_key key;
	long long next_refresh_at;
};

/* The keys of at most limit rows due at now (next_refresh_at <= now, certificate not
 * expired), into keys[] with their next_refresh_at: the limit longest due, most urgent first
 * (earliest nextUpdate, then earliest fetched). Returns the count, or -1. */
int cache_due(struct cache *cache, long long now, int limit, struct cache_refresh *keys);
/* Sets next_refresh_at of n rows in one transaction. Returns 0 or -1. */
int cache_set_refresh(struct cache *cache, const struct cache_refresh *items, size_t n);
/* Records a failed refresh: failure count, last error, next try. The response stays as it is.
 * Returns 0 or -1. */
int cache_set_failure(struct cache *cache, const struct stapler_key *key, int failures,
    const char *last_error, long long next_refresh_at);
/* Deletes one row. Returns 1 when it was there, 0 when not, -1 on error. */
int cache_delete(struct cache *cache, const struct stapler_key *key);
/* Deletes at most limit rows whose certificate expired before `before`, in one transaction,
 * then calls cb (may be NULL) with each deleted key. Returns the count or -1. */
int cache_purge_expired(struct cache *cache, long long before, int limit,
    void (*cb)(const struct stapler_key *key, void *arg), void *arg);
/* Warm start: moves at most limit rows already due at now to a random time in (now, now +
 * spread]: one short write, called again until it moves fewer than limit (a single statement
 * over every due row rewrote the whole table at a start after a long stop: 14 s for a million
 * rows). Returns the number of rows moved, or -1. */
int cache_spread_due(struct cache *cache, long long now, long long spread, int limit);

/* Operator's refresh of everything: sets next_refresh_at = now on every row not already due,
 * so the scheduler picks them up at its next ticks. Returns the number of rows marked, or -1. */
long long cache_mark_all_due(struct cache *cache, long long now);

/* Why the last failed call failed: transient faults (another process holds the lock, the
 * disk is full, an I/O error or a read-only file) are worth keeping the write and trying again;
 * CACHE_FAULT_OTHER is a bug or a bad row. */
enum cache_fault {
	CACHE_FAULT_NONE = 0,
	CACHE_FAULT_BUSY,
	CACHE_FAULT_FULL,
	CACHE_FAULT_IO,
	CACHE_FAULT_READONLY,   /* a read-only file or mount, for now */
	CACHE_FAULT_ERROR,      /* another SQLite error: the connection's state, worth a retry */
	CACHE_FAULT_OTHER,      /* the row's fault (refused before SQLite, or a constraint) */
};
enum cache_fault cache_fault(const struct cache *cache);
/* "none", "locked", "disk_full", "io_error", "read_only", "db_error", "error". */
const char *cache_fault_name(enum cache_fault f);
/* SQLite's message and extended code for the last failed statement (valid until the next
 * failure). */
const char *cache_errmsg(const struct cache *cache);
/* The daemon's mode: a statement that finds the database locked fails at once instead of
 * waiting (the event loop never waits on a lock), and transient faults are not logged here:
 * the write-behind queue (persist.c) keeps the write and logs once per interval. */
void cache_set_nowait(struct cache *cache);

/* Readies the connection for the next write after a failed one, whatever the failure left:
 * a fallback opened read-only is opened read-write again if it can be (else -1); otherwise
 * resets every statement, rolls back a transaction still open and, after a full disk,
 * checkpoints and truncates the WAL so its space is free again (fails at once while a reader
 * holds it). The fault of the last failure stays. Returns 0, or -1 when the rollback or the
 * checkpoint failed (the next write will tell). */
int cache_recover(struct cache *cache);
/* durable: commits fsync the WAL (synchronous = FULL), for a write that must survive a power
 * loss once it counts as done; 0: back to NORMAL. Returns 0 or -1. */
int cache_set_durable(struct cache *cache, int durable);

/* The SQLite handle, for the read-only reports of cache_report.c. Owned by the cache. */
struct sqlite3 *cache_db(struct cache *cache);

void cache_row_clear(struct cache_row *row);
void cache_issuer_clear(struct cache_issuer *issuer);

/* Operations on the whole file. */

/* Folds the WAL into the database and truncates it (PRAGMA wal_checkpoint(TRUNCATE)), so a
 * stopped daemon leaves one self-contained file. Returns 0, or -1 (logged) when it could not
 * complete (a reader held it past the busy timeout). */
int cache_checkpoint(struct cache *cache);

/* Copies the database into a new file dest with SQLite's online backup API, CACHE_BACKUP_STEP
 * pages per step, all inside one read transaction of cache: a consistent snapshot, and in WAL
 * mode a reader never blocks the daemon's writer. The copy is switched to a rollback journal
 * (one self-contained file) and must pass PRAGMA integrity_check. dest must be absent or an
 * empty file (the caller creates it exclusively).
 * Returns the number of pages copied, or -1 with err set (dest may then be left behind for
 * the caller to remove). */
#define CACHE_BACKUP_STEP 256
long cache_backup(struct cache *cache, const char *dest, char *err, size_t errlen);

#endif
