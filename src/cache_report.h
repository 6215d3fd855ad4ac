/* Read-only reports over the cache for operators (staplerctl, the admin socket): filtered
 * listings, counts, lookups by serial across issuers. SQLite only, no libevent; safe on a
 * database opened read-only while the daemon writes (WAL). */
#ifndef STAPLER_CACHE_REPORT_H
#define STAPLER_CACHE_REPORT_H

#include "cache.h"
#include "stapler/types.h"

/* What cache_report_list() selects; zero-initialise, then set what matters. */
struct cache_report_filter {
	int status;            /* 0: any; else 1 + enum stapler_cert_status */
	int due;               /* next_refresh_at <= now, certificate not expired (as the scheduler) */
	int expired;           /* next_update <= now */
	const char *issuer;    /* canonical issuer key hash or name hash (fmt_key_hash), or NULL */
	const char *name_hash; /* canonical issuer name hash, or NULL */
	int hash_alg;          /* 0: any; else 1 + enum stapler_hash_alg */
	int hash_params;       /* 0: any; else 1 + enum stapler_hash_params */
	const char *serial;    /* canonical serial (fmt_serial), or NULL */
	long long now;
	int limit;             /* 0: no limit */
};

/* One listed entry: what a table or a lookup needs, without the DER blobs. Valid during the
 * callback only. */
struct cache_report_entry {
	enum stapler_hash_alg hash_alg;
	enum stapler_hash_params hash_params;
	char serial[STAPLER_SERIAL_HEX_MAX];
	char issuer_key_hash[STAPLER_SHA1_HEX];
	char issuer_name_hash[STAPLER_SHA1_HEX];
	const char *subject;
	const char *issuer_subject;   /* "" when the issuer row is missing */
	const char *ocsp_url;
	const char *last_error;       /* NULL after a success */
	enum stapler_cert_status status;
	long long this_update, next_update, fetched_at, next_refresh_at, cert_not_after;
	int failures;
};

/* Calls cb for every entry matching f, by next_refresh_at, then serial and issuer; stops when
 * cb returns non-zero. cb must not call cache functions. Returns the number of entries handed
 * to cb, or -1 (logged). */
int cache_report_list(struct cache *cache, const struct cache_report_filter *f,
    int (*cb)(const struct cache_report_entry *e, void *arg), void *arg);

/* What a lookup of one entry by serial (and optionally issuer, hash algorithm and its
 * parameters' encoding) found. */
#define CACHE_REPORT_LOOKUP_MAX 8
struct cache_report_match {
	int n;                    /* matching entries, at most CACHE_REPORT_LOOKUP_MAX counted */
	struct stapler_key key;   /* the entry when n == 1 */
	int by_issuer;            /* n > 1: they differ by issuer (else by the CertID's form) */
	int by_params;            /* n > 1: they differ only by the parameters' encoding */
	/* n > 1: the choices, comma separated: issuer hashes (the key hash, or the name hash
	 * where two issuers share a key) when by_issuer, parameter encodings ("null", "absent")
	 * when by_params, else hash algorithm names. */
	char choices[CACHE_REPORT_LOOKUP_MAX * (STAPLER_SHA1_HEX + 1)];
};

/* Finds the entries matching f (serial set; issuer, name_hash, hash_alg and hash_params narrow
 * it; limit ignored) into *m, so that every caller resolves "SERIAL [--issuer H] [--hash A]
 * [--params P]" alike.
 * Returns 0 or -1 (logged). */
int cache_report_lookup(struct cache *cache, const struct cache_report_filter *f,
    struct cache_report_match *m);

#define CACHE_REPORT_MAX_HOSTS 64
#define CACHE_REPORT_HOST_LEN 256

/* Per upstream (the authority of the URL a response came from): its entries, how many of them
 * are healthy (last refresh succeeded) and failing, and the failed attempts they count. */
struct cache_report_host {
	char host[CACHE_REPORT_HOST_LEN];
	long long entries, ok, failing, failures;
};

struct cache_report_stats {
	long long total;
	long long by_status[3];       /* index: enum stapler_cert_status */
	long long expired;            /* next_update <= now: no longer served */
	long long expiring_24h;       /* now < next_update <= now + 24 h */
	long long due;                /* next_refresh_at <= now, certificate not expired */
	long long failing;            /* failures > 0 */
	long long issuers;            /* distinct issuers among the entries */
	long long due_next_hour;      /* next_refresh_at <= now + 1 h, certificate not expired:
	                               * the refresh demand per hour */
	long long oldest_due;         /* the earliest next_refresh_at among the due, or 0 */
	int n_hosts;                  /* at most CACHE_REPORT_MAX_HOSTS, most entries first */
	long long other_hosts;        /* entries of hosts beyond that bound */
	struct cache_report_host host[CACHE_REPORT_MAX_HOSTS];
};

/* Fills *st at now. Returns 0 or -1 (logged). */
int cache_report_stats(struct cache *cache, long long now, struct cache_report_stats *st);

/* The upstream a URL names, "host:port" with the default port filled in, exactly as the
 * fetcher groups its per-host limits (url.c); "" when the URL does not parse. */
void cache_report_url_host(const char *url, char *out, size_t cap);

#endif
