/* The staple service: turns a submitted certificate into a verified staple, from memory when
 * it can, else through one coalesced upstream fetch per certificate, verified and cached. */
#ifndef STAPLER_STAPLE_H
#define STAPLER_STAPLE_H

#include <stddef.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "certs.h"
#include "fetch.h"
#include "ocsp.h"
#include "store.h"

/* Entries held back after a fetch that got only answers within the safety margin, at most
 * (past it, such an entry is fetched again when asked for). */
#define STAPLE_BACKOFF_MAX 10000

struct cache;
struct cache_row;
struct certs_trust;
struct fetcher;
struct issuers;
struct persist;
struct stapler_config;

enum staple_outcome {
	STAPLE_OK = 0,
	STAPLE_BAD_INPUT,       /* 400: not a certificate */
	STAPLE_UNTRUSTED,       /* 403: does not chain to the trust anchors, or URL not allowed */
	STAPLE_NO_URL,          /* 422: no usable OCSP URL */
	STAPLE_UPSTREAM_FAILED, /* 502: every upstream failed and nothing valid is cached */
	STAPLE_UNAVAILABLE,     /* 503: shutting down, overloaded, or the cache is full */
	STAPLE_LIMITED,         /* 429: this client started too many fetches lately */
};

/* The callback contract of every call below that takes one (docs/design.md "One callback
 * contract"): an answer known during the call (a memory hit, a refusal, a fetch that could not
 * start) is returned as a value in a struct staple_answer, the call returns NULL, and cb never
 * runs. Only real waiting returns a wait handle; cb then runs exactly once, later, from the
 * event loop (never before the call returns), unless staple_wait_cancel() comes first.
 * Callers need no "answered during the call" flags. */

/* Called once with the outcome. On STAPLE_OK, s is the staple (valid during the call only);
 * otherwise error says why. */
typedef void (*staple_cb)(enum staple_outcome outcome, const struct staple *s, const char *error,
    void *arg);

/* An answer known at once. */
struct staple_answer {
	enum staple_outcome outcome;
	const struct staple *staple;   /* on STAPLE_OK: the service's own, valid until control
	                                * returns to the event loop (or the next service call) */
	char error[512];               /* why, when outcome != STAPLE_OK; "" otherwise */
};

struct staple_service;
struct staple_wait;

/* One certificate to staple: who it is (key, CertID), who issued it (verifies the answer),
 * where to ask (AIA URLs in order) and until when it is worth asking (earliest notAfter of
 * its chain). Every path that fetches (a submission, a chain staple, an OCSP proxy miss, a
 * refresh) builds one and hands it to staple_ensure(). */
struct staple_target {
	struct stapler_key key;   /* the whole CertID (types.h) */
	char serial_hex[STAPLER_SERIAL_HEX_MAX];
	char key_hash_hex[STAPLER_SHA1_HEX];
	char name_hash_hex[STAPLER_SHA1_HEX];
	OCSP_CERTID *id;          /* owned; hashed with key.hash_alg */
	X509 *issuer;             /* owned reference */
	struct certs_urls urls;   /* owned */
	char url_error[256];      /* why an AIA URL was refused ("" when none was) */
	int no_rev_avail;         /* RFC 9608 noRevAvail: no revocation information will exist */
	char subject[512];
	time_t not_after;
	int anonymous;            /* an /ocsp miss: nobody proved the certificate exists */
	/* A refresh of a held answer: the upstream's validators of it ("": none), sent as
	 * If-None-Match / If-Modified-Since. */
	char etag[FETCH_VALIDATOR_MAX], last_modified[FETCH_VALIDATOR_MAX];
};

/* A new target for subject under issuer (a new reference is taken on issuer): the CertID
 * hashed with alg, key, AIA URLs. Returns NULL with err set when the CertID cannot be made
 * (serial too long). A target without URLs is returned all the same (urls.n == 0, url_error
 * saying why when URLs were refused): staple_ensure() answers 422. */
struct staple_target *staple_target_new(X509 *subject, X509 *issuer, time_t not_after,
    enum stapler_hash_alg alg, char *err, size_t errlen);
/* A new target from a CertID (copied), its issuer (new reference) and URLs (copied). */
struct staple_target *staple_target_from_certid(const OCSP_CERTID *id, X509 *issuer,
    const struct certs_urls *urls, const char *subject, time_t not_after);
void staple_target_free(struct staple_target **t);
/* How many URLs a fetch for t would try: its issuer's [responders] override, else its own. */
int staple_target_url_count(const struct staple_service *svc, const struct staple_target *t);
/* The URLs a fetch for a certificate of the issuer with this SHA-1 key hash tries, in order:
 * the [responders] override when the operator configured one, else its own (AIA or learned)
 * URLs own. *urls stays valid until the next reload or until own is freed. Returns the count. */
int staple_fetch_urls(const struct staple_service *svc, const unsigned char *key_hash,
    const struct certs_urls *own, char *const **urls);

/* The service uses (does not own) every part passed in. */
struct staple_service *staple_service_new(const struct stapler_config *cfg,
    const struct certs_trust *trust, struct cache *cache, struct store *store, struct fetcher *fetch);
void staple_service_free(struct staple_service **svc);
/* Swaps configuration and trust anchors (SIGHUP); forgets which bodies were checked. */
void staple_service_reload(struct staple_service *svc, const struct stapler_config *cfg,
    const struct certs_trust *trust);

/* The event hub revocations and staple transitions are raised on (NULL: none). */
struct events;
void staple_service_set_events(struct staple_service *svc, struct events *events);
struct events *staple_service_events(const struct staple_service *svc);
/* The CRLs followed (NULL: none): submissions teach it their issuers' CRL URLs, and an OCSP
 * answer its CRL contradicts is not served. The poller (crl.c) sits above the service and
 * acts on it; the service asks it through ops, so it depends on no poller code:
 * check(crl, key, &crl_this_update) is 1 when the CRL held for key's issuer lists key;
 * learn(crl, subject, issuer) tells it a certificate of a trusted chain was seen. */
struct crl;
struct crl_list;
struct staple_crl_ops {
	int (*check)(const struct crl *c, const struct stapler_key *key, time_t *crl_this_update);
	void (*learn)(struct crl *c, X509 *subject, X509 *issuer);
};
void staple_service_set_crl(struct staple_service *svc, struct crl *crl,
    const struct staple_crl_ops *ops);
struct crl *staple_service_crl(const struct staple_service *svc);
/* Withdraws the staple held for key (a CRL lists it; it is good or unknown from before the
 * CRL): no longer served. Returns 1 when withdrawn now, 0 when it was already, -1 when
 * nothing (or a revocation) is held. */
int staple_service_withdraw(struct staple_service *svc, const struct stapler_key *key);
/* Fetches a withdrawn staple again now, at a client's priority (nothing when it is no longer
 * withdrawn). */
void staple_service_refetch(struct staple_service *svc, const struct stapler_key *key, time_t now);
/* Serves again the withdrawn staples of the issuer (name_hash, key_hash) that list no longer
 * names (a newer CRL dropped them, e.g. a certificateHold released). */
void staple_service_unwithdraw_unlisted(struct staple_service *svc, const unsigned char *name_hash,
    const unsigned char *key_hash, const struct crl_list *list);
/* Staples withdrawn now. */
size_t staple_service_withdrawn(const struct staple_service *svc);
/* From now on the service's writes go through persist (the daemon's write-behind queue), so
 * none waits on the database lock; without it they go straight to the cache. */
void staple_service_set_persist(struct staple_service *svc, struct persist *persist);
/* At start, after staple_service_load(): revocations the journal holds that the database does
 * not (a stop while the database refused them) are served and queued again. Returns the
 * number of journal records, or -1. */
int staple_service_replay_journal(struct staple_service *svc);
/* Stopping: staples in memory are still served, but no new fetch starts (STAPLE_UNAVAILABLE,
 * 503); fetches already running go on for their waiters. */
void staple_service_drain(struct staple_service *svc);
/* Logs a refused submission (what an outsider sent), within the bound of log.h. */
void staple_service_log_refusal(struct staple_service *svc, const char *route, int status,
    const char *err);
/* The write-behind queue in use, or NULL. */
struct persist *staple_service_persist(const struct staple_service *svc);

/* The warm start (docs/design.md "Warm start"): the listener opens after
 * staple_service_load_begin(), the rows come in slices from the loop after it, and meanwhile
 * an entry not loaded yet is read from the database by its key when it is asked for. */
enum staple_load_phase {
	STAPLE_LOADED = 0,     /* "ready": every row is in memory (or no load was begun) */
	STAPLE_LOADING,        /* "loading": slices to come; misses are looked up by key */
};
struct staple_load_progress {
	enum staple_load_phase phase;
	long long after;       /* the largest rowid loaded so far */
	long long bound;       /* the largest rowid at the start: at least the rows to load */
	size_t rows;           /* rows read by the slices */
	size_t by_key;         /* entries read by key before their slice came */
	size_t lookup_failed;  /* lookups by key the database failed */
};
/* Sizes the index for the rows to come, learns every issuer of the cache (so the OCSP proxy
 * serves them from the first request) and enters the loading phase. Cheap at any size (index
 * lookups). Returns 0, or -1 when the database cannot be read. */
int staple_service_load_begin(struct staple_service *svc);
/* Loads the next at most limit rows into memory. An entry in memory already, or with a write
 * waiting, is newer than its row and stays. Returns 1 while rows remain, 0 once every row is
 * loaded (the phase is then STAPLE_LOADED), -1 when the database failed (try again later). */
int staple_service_load_step(struct staple_service *svc, long limit);
/* begin, then every step at once (staplerctl-like callers and tests). Returns the entries
 * held, or -1. */
long staple_service_load(struct staple_service *svc);
void staple_service_load_progress(const struct staple_service *svc,
    struct staple_load_progress *out);
/* "loading" or "ready" (/healthz, the systemd status). */
const char *staple_load_phase_name(enum staple_load_phase phase);
/* The staple held for key, or NULL. While loading, an entry not loaded yet is read from the
 * database by its key (one lookup in the UNIQUE index) and kept; NULL when it has no row.
 * Valid as store_get()'s answer is. */
const struct staple *staple_service_get(struct staple_service *svc, const struct stapler_key *key);

/* Resolves a request body (PEM chain or DER certificate). Returns NULL with *ans set when the
 * answer is known now (memory hit, bad input, refusal); otherwise returns a wait handle and
 * calls cb when the fetch ends. staple_wait_cancel() drops the callback (client gone). */
struct staple_wait *staple_submit(struct staple_service *svc, const unsigned char *body, size_t len,
    time_t now, struct staple_answer *ans, staple_cb cb, void *arg);
void staple_wait_cancel(struct staple_wait *w);

/* Gets a staple for t (taken: freed by the service): from memory when a servable one is there,
 * else through the one fetch in flight for t->key, else a new fetch over t's URLs. digest, when
 * not NULL, is remembered for the body that named t once the staple is there. Returns NULL
 * with *ans set when the answer is known now (a failure to start any URL included); otherwise
 * returns a wait handle. */
struct staple_wait *staple_ensure(struct staple_service *svc, struct staple_target *t,
    const unsigned char *digest, time_t now, struct staple_answer *ans, staple_cb cb, void *arg);

/* Fetches a cached entry again now, even while its staple is servable (the scheduler, an
 * operator's refresh). Answers as staple_ensure() does (NULL with *ans set: nothing started);
 * on failure the entry keeps its response and its failure is recorded with a backed-off
 * retry time. */
struct staple_wait *staple_refresh_row(struct staple_service *svc, const struct cache_row *row,
    time_t now, struct staple_answer *ans, staple_cb cb, void *arg);
/* 1 when the entry has a write waiting in the write-behind queue: its row in the database is
 * older than what the service knows (the scheduler leaves it alone until it lands). */
int staple_service_write_pending(const struct staple_service *svc, const struct stapler_key *key);
/* 1 when the entry has a fetch in flight. */
int staple_service_is_pending(const struct staple_service *svc, const struct stapler_key *key);
/* Forgets an entry: its row, its staple, and what a fetch in flight for it would store (that
 * fetch still answers its waiters, and stores nothing). Returns 1 when it was there (or in
 * flight), 0 when not, -1 on error. */
int staple_service_evict(struct staple_service *svc, const struct stapler_key *key);
/* A number in [0, 1) for jitter. */
double staple_service_random(struct staple_service *svc);
/* The parts the OCSP proxy and chain staples consult; owned by the service (issuers) or
 * by its creator, valid until the next reload (trust). */
struct issuers *staple_service_issuers(struct staple_service *svc);
const struct certs_trust *staple_service_trust(const struct staple_service *svc);
struct store *staple_service_store(struct staple_service *svc);

/* The configuration in force (until the next reload). */
const struct stapler_config *staple_service_config(const struct staple_service *svc);

/* ---- the OCSP responder's requests (staple_ocsp.c) ---- */

/* The servable staple an OCSPRequest of RFC 9919's lightweight shape names (der, len),
 * found without OpenSSL and without allocating (but during the warm start's load, when an
 * entry not loaded yet is read from its row by key), while its issuer is trusted at now
 * (marked used); NULL otherwise: the caller then decodes the request and asks staple_ocsp(). */
const struct staple *staple_ocsp_hit(struct staple_service *svc, const unsigned char *der,
    size_t len, time_t now);
/* The staple for a CertID an OCSP client sent (id is taken), answered as staple_ensure()
 * does: from memory (or the answer held for another anonymous client), else fetched from the
 * upstream known for its issuer. trusted: the client is one of the operator's own hosts
 * ([limits] trusted_clients), so its miss is stored and refreshed like a submission; any other
 * miss is anonymous: answered, held apart, never stored. A refusal's ans->error is a stable
 * token: "unknown_issuer", "hash_algorithm", "serial_too_long" (STAPLE_UNTRUSTED),
 * "no_upstream" (STAPLE_NO_URL), "out_of_memory" (STAPLE_UNAVAILABLE). */
struct staple_wait *staple_ocsp(struct staple_service *svc, OCSP_CERTID *id, int trusted,
    time_t now, struct staple_answer *ans, staple_cb cb, void *arg);

/* The CertID hash algorithm of staples for submitted certificates ([cache] certid_hash). */
enum stapler_hash_alg staple_service_certid_hash(const struct staple_service *svc);

/* While admit is set, every new upstream fetch a client would start (not a refresh, not one
 * joining a fetch in flight, not a memory hit) asks admit(ctx) first; -1 refuses it with
 * STAPLE_LIMITED. The HTTP front end sets it around each call with the client's rate limit
 * and clears it (NULL) after. */
void staple_service_admit(struct staple_service *svc, int (*admit)(void *ctx), void *ctx);
/* The answer held for an anonymous /ocsp miss (docs/design.md "Anonymous /ocsp misses
 * cannot poison the cache"), servable at now, or NULL. Never consulted for submissions. */
const struct staple *staple_service_anonymous(struct staple_service *svc,
    const struct stapler_key *key, time_t now);
size_t staple_service_anonymous_count(const struct staple_service *svc);

/* Certificates with a fetch in flight. */
size_t staple_service_pending(const struct staple_service *svc);

/* Counters of answers the service did not keep (docs/design.md "Which answer is kept"),
 * since start; for /metrics. */
struct staple_stats {
	unsigned long long older_refused;      /* verified, but older than the staple held */
	unsigned long long expiring_refused;   /* verified, but within the safety margin */
	unsigned long long evicted_in_flight;  /* verified after its entry was evicted: not stored */
	unsigned long long revocations_seen;   /* a staple held good or unknown turned revoked */
	unsigned long long verified;           /* responses whose signature was checked */
	unsigned long long unchanged;          /* refreshes answered with the bytes held: no check */
	unsigned long long not_modified;       /* refreshes answered 304: no body, no check */
	unsigned long long rows_written;       /* whole rows written (a new answer kept) */
	unsigned long long rejected[OCSP_VERDICTS];   /* upstream answers refused, by verdict */
	unsigned long long no_next_update_kept;       /* kept with [upstream]
	                                               * accept_no_next_update's lifetime */
};
void staple_service_stats(const struct staple_service *svc, struct staple_stats *out);

/* How each interface names and answers an outcome, from one table (any value is safe):
 * its name ("ok", "bad_input", ...; the admin socket and logs), its HTTP status (/v1/staple),
 * its OCSPResponseStatus (/ocsp; 0, successful, for STAPLE_OK) and its OCPP reasonCode (NULL
 * for STAPLE_OK). */
const char *staple_outcome_name(enum staple_outcome outcome);
int staple_outcome_http(enum staple_outcome outcome);
int staple_outcome_ocsp(enum staple_outcome outcome);
const char *staple_outcome_ocpp(enum staple_outcome outcome);

/* A stop: cancels the fetches in flight that no client waits for (only refreshes, of the
 * scheduler or an operator), or with waited_too every fetch; their waiters are answered with
 * STAPLE_UNAVAILABLE ("shutting down": 503) before this returns. Returns how many. */
size_t staple_service_drop_pending(struct staple_service *svc, int waited_too);

#endif
