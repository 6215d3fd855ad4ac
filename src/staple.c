/* The staple service: a submitted certificate becomes a verified staple, from memory when it
 * can; else one upstream fetch per certificate (concurrent submissions wait on the same one),
 * trying each AIA URL in order, verified, stored in SQLite and in the memory index. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>

#include "fetch.h"
#include "staple.h"
#include "anon.h"
#include "cache.h"
#include "certs.h"
#include "config.h"
#include "crl_list.h"
#include "events.h"
#include "fmt.h"
#include "issuers.h"
#include "log.h"
#include "ocsp.h"
#include "persist.h"
#include "sched.h"
#include "table.h"
#include "util.h"

struct staple_wait {
	struct pending *p;
	staple_cb cb;
	void *arg;
	unsigned char digest[STORE_DIGEST_LEN];
	int has_digest;
	int refresh;                 /* a refresh's waiter (scheduler, operator), not a client */
	TAILQ_ENTRY(staple_wait) link;
};

/* One certificate with a fetch in flight, and everyone waiting for it. */
struct pending {
	struct staple_service *svc;
	struct stapler_key key;      /* the table's key: a copy of t->key */
	struct staple_target *t;
	int refresh;                 /* started by the scheduler or an operator, not a client */
	struct fetch_job *job;       /* the transfer in flight, until its callback runs */
	int url_index;
	int permanent;               /* the last URL gave an answer that was wrong, not absent */
	int evicted;                 /* evicted while in flight: out of the table, stores nothing */
	int kept_held;               /* an older answer came: no failure to record */
	int expiring;                /* a URL answered within the safety margin */
	int anonymous;               /* an /ocsp miss for a key not held: answers go to svc->anon */
	int urgent;                  /* a CRL withdrew its staple: fetched ahead of other work */
	const struct fetch_result *res;  /* the answer, during on_fetched() only */
	unsigned char *req;
	size_t req_len;
	char last_error[512];
	TAILQ_HEAD(, staple_wait) waiters;
};

struct staple_service {
	const struct stapler_config *cfg;
	const struct certs_trust *trust;
	struct cache *cache;
	struct store *store;
	struct fetcher *fetch;
	struct table pending;        /* fetches whose answer becomes the entry */
	struct table anon_pending;   /* anonymous /ocsp misses: their answers are held apart */
	struct anon_map *anon;
	struct table anchors;        /* SHA-1 keys of the bundle's intermediates: never anonymous */
	struct table backoff;        /* struct backoff by key: entries not fetched again for now */
	int (*admit)(void *ctx);     /* staple_service_admit(): may a client start a fetch now? */
	void *admit_ctx;
	time_t load_floor;           /* staple_service_load(): no entry counts as unused before */
	struct staple_load_progress load;   /* the warm start in the background */
	uint64_t seed;
	uint64_t rng;                /* xorshift state: jitter only, not secrets */
	struct issuers *issuers;   /* who the OCSP proxy serves, learned from stored staples */
	struct ocsp_signers *signers; /* responders proven for their issuers: one check per answer */
	struct persist *persist;   /* the daemon's writes go through it; NULL: straight to cache */
	struct events *events;     /* staple_service_set_events(): the event hub, or NULL */
	struct crl *crl;           /* staple_service_set_crl(): CRLs followed, or NULL */
	struct staple_crl_ops crl_ops;
	struct table withdrawn;    /* struct withdrawn by key: staples a CRL withdrew */
	int urgent;                /* the fetch ensure() starts now is urgent */
	int draining;              /* stopping: no new fetch starts */
	struct log_limit refusals; /* bounds the refusal lines outsiders can cause */
	time_t trust_at;           /* the trust anchors were (re)loaded: staples verified before
	                            * are verified in full again, even when their bytes return */
	struct staple_stats stats;
};

/* A staple a CRL withdrew (its flag is in the store; this is the list of them). */
struct withdrawn {
	struct stapler_key key;      /* first: the entry is its own key (anchor_match()) */
};

/* An entry whose last fetch got only answers within the safety margin (a responder signing
 * near-expired responses): a client asking again is answered from here until retry_at,
 * instead of another fetch per request. */
struct backoff {
	struct stapler_key key;      /* first: the entry is its own key (anchor_match()) */
	int failures;
	time_t retry_at;
	char error[256];
};

static int
pending_match(const void *entry, const void *key)
{
	return stapler_key_equal(&((const struct pending *)entry)->key, key);
}

static const void *
pending_key_of(const void *entry)
{
	return &((const struct pending *)entry)->key;
}

static int
anchor_match(const void *entry, const void *key)
{
	return stapler_key_equal(entry, key);
}

static const void *
anchor_key_of(const void *entry)
{
	return entry;
}

/* The one table of what an outcome is called and how each interface answers it. */
static const struct outcome_info {
	const char *name;        /* admin socket, logs */
	int http;                /* /v1/staple, /v1/staples */
	int ocsp;                /* /ocsp: the OCSPResponseStatus */
	const char *ocpp;        /* /v1/ocpp/certificate-status: statusInfo.reasonCode */
} outcomes[] = {
	[STAPLE_OK] = { "ok", 200, OCSP_RESPONSE_STATUS_SUCCESSFUL, NULL },
	[STAPLE_BAD_INPUT] = { "bad_input", 400, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
	    "MalformedRequest" },
	[STAPLE_UNTRUSTED] = { "untrusted", 403, OCSP_RESPONSE_STATUS_UNAUTHORIZED,
	    "UnknownIssuer" },
	[STAPLE_NO_URL] = { "no_url", 422, OCSP_RESPONSE_STATUS_UNAUTHORIZED, "NoResponder" },
	[STAPLE_UPSTREAM_FAILED] = { "upstream_failed", 502, OCSP_RESPONSE_STATUS_TRYLATER,
	    "UpstreamFailed" },
	[STAPLE_UNAVAILABLE] = { "unavailable", 503, OCSP_RESPONSE_STATUS_TRYLATER,
	    "Unavailable" },
	[STAPLE_LIMITED] = { "limited", 429, OCSP_RESPONSE_STATUS_TRYLATER, "RateLimited" },
};

static const struct outcome_info *
outcome_info(enum staple_outcome outcome)
{
	static const struct outcome_info other = { "error", 500, OCSP_RESPONSE_STATUS_INTERNALERROR,
	    "Unavailable" };

	if ((size_t)outcome >= sizeof(outcomes) / sizeof(outcomes[0]) ||
	    outcomes[outcome].name == NULL)
		return &other;
	return &outcomes[outcome];
}

const char *
staple_outcome_name(enum staple_outcome outcome)
{
	return outcome_info(outcome)->name;
}

int
staple_outcome_http(enum staple_outcome outcome)
{
	return outcome_info(outcome)->http;
}

int
staple_outcome_ocsp(enum staple_outcome outcome)
{
	return outcome_info(outcome)->ocsp;
}

const char *
staple_outcome_ocpp(enum staple_outcome outcome)
{
	return outcome_info(outcome)->ocpp;
}

double
staple_service_random(struct staple_service *svc)
{
	uint64_t x = svc->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	svc->rng = x;
	return (double)(x >> 11) / (double)(1ULL << 53);
}

static struct sched_policy
policy(const struct staple_service *svc)
{
	struct sched_policy pol = {
		.window = svc->cfg->refresh_window,
		.min_interval = svc->cfg->refresh_min_interval,
		.max_interval = svc->cfg->refresh_max_interval,
		.max_age_cap = svc->cfg->refresh_upstream_max_age,
	};

	return pol;
}

struct staple_service *
staple_service_new(const struct stapler_config *cfg, const struct certs_trust *trust,
    struct cache *cache, struct store *store, struct fetcher *fetch)
{
	struct staple_service *svc = calloc(1, sizeof(*svc));

	if (svc == NULL)
		return NULL;
	svc->cfg = cfg;
	svc->trust = trust;
	svc->cache = cache;
	svc->store = store;
	svc->fetch = fetch;
	svc->trust_at = time(NULL);
	svc->pending.hash = table_key_hash;
	svc->pending.match = pending_match;
	svc->pending.key_of = pending_key_of;
	svc->anon_pending = svc->pending;
	svc->anchors.hash = table_key_hash;
	svc->anchors.match = anchor_match;
	svc->anchors.key_of = anchor_key_of;
	svc->withdrawn.hash = table_key_hash;
	svc->withdrawn.match = anchor_match;
	svc->withdrawn.key_of = anchor_key_of;
	svc->backoff.hash = table_key_hash;
	svc->backoff.match = anchor_match;
	svc->backoff.key_of = anchor_key_of;
	svc->seed = table_seed();
	if (RAND_bytes((unsigned char *)&svc->rng, sizeof(svc->rng)) != 1 || svc->rng == 0)
		svc->rng = svc->seed | 1;
	if ((svc->issuers = issuers_new()) == NULL || (svc->anon = anon_map_new()) == NULL ||
	    (svc->signers = ocsp_signers_new()) == NULL) {
		anon_map_free(&svc->anon);
		issuers_free(&svc->issuers);
		free(svc);
		return NULL;
	}
	return svc;
}

static void
pending_free(struct pending *p)
{
	struct staple_wait *w;

	while ((w = TAILQ_FIRST(&p->waiters)) != NULL) {
		TAILQ_REMOVE(&p->waiters, w, link);
		free(w);
	}
	staple_target_free(&p->t);
	OPENSSL_free(p->req);
	free(p);
}

void
staple_service_free(struct staple_service **svcp)
{
	struct staple_service *svc;

	if (svcp == NULL || (svc = *svcp) == NULL)
		return;
	/* Fetches still in flight belong to the fetcher; it must be freed first, which ends them. */
	for (size_t i = 0; i < svc->pending.cap; i++) {
		if (svc->pending.slot[i] != NULL)
			pending_free(svc->pending.slot[i]);
	}
	for (size_t i = 0; i < svc->anon_pending.cap; i++) {
		if (svc->anon_pending.slot[i] != NULL)
			pending_free(svc->anon_pending.slot[i]);
	}
	table_clear(&svc->pending, 0);
	table_clear(&svc->anon_pending, 0);
	table_clear(&svc->anchors, 1);
	table_clear(&svc->backoff, 1);
	table_clear(&svc->withdrawn, 1);
	anon_map_free(&svc->anon);
	issuers_free(&svc->issuers);
	ocsp_signers_free(&svc->signers);
	free(svc);
	*svcp = NULL;
}

/* An intermediate of the bundle names its issuer's responder in its AIA, as the certificate
 * of a stored staple would: /ocsp can forward a miss for it before anyone submitted it. */
static void
learn_anchor(X509 *cert, X509 *issuer, void *arg)
{
	struct staple_service *svc = arg;
	struct stapler_key *key;
	struct certs_urls urls;
	OCSP_CERTID *id;
	char why[256];
	void *replaced;

	/* The operator vouches for it: a miss for it is no stranger's (proven()). */
	if ((key = calloc(1, sizeof(*key))) != NULL &&
	    (id = certs_certid(cert, issuer, STAPLER_HASH_SHA1)) != NULL) {
		if (certs_certid_key(id, issuer, key) == 0 &&
		    table_put(&svc->anchors, key, svc->seed, &replaced) == 0) {
			free(replaced);
			key = NULL;
		}
		OCSP_CERTID_free(id);
	}
	free(key);
	/* A refused AIA URL (control characters, user information, a fragment) is skipped. */
	if (certs_ocsp_urls(cert, &urls, why, sizeof(why)) > 0 &&
	    issuers_learn(svc->issuers, issuer, &urls) < 0)
		log_warn("issuer_not_learned", "reason=\"registry full or out of memory\"");
	certs_urls_free(&urls);
}

/* Learned issuers that no longer chain to the anchors in force are served no more. */
static void
retrust(struct staple_service *svc)
{
	size_t untrusted;

	table_clear(&svc->anchors, 1);
	certs_trust_issued(svc->trust, time(NULL), learn_anchor, svc);
	untrusted = issuers_retrust(svc->issuers, svc->trust, time(NULL));

	if (untrusted > 0)
		log_warn("issuers_untrusted", "count=%zu reason=\"no longer chain to the trust anchors: "
		    "not served by /ocsp, not refreshed\"", untrusted);
}

void
staple_service_reload(struct staple_service *svc, const struct stapler_config *cfg,
    const struct certs_trust *trust)
{
	svc->cfg = cfg;
	svc->trust = trust;
	svc->trust_at = time(NULL);
	store_seen_clear(svc->store);
	/* Responders were proven against the anchors of then. */
	ocsp_signers_clear(svc->signers);
	retrust(svc);
}

struct issuers *
staple_service_issuers(struct staple_service *svc)
{
	return svc->issuers;
}

const struct certs_trust *
staple_service_trust(const struct staple_service *svc)
{
	return svc->trust;
}

const struct stapler_config *
staple_service_config(const struct staple_service *svc)
{
	return svc->cfg;
}

struct store *
staple_service_store(struct staple_service *svc)
{
	return svc->store;
}

enum stapler_hash_alg
staple_service_certid_hash(const struct staple_service *svc)
{
	return svc->cfg->certid_hash;
}

size_t
staple_service_pending(const struct staple_service *svc)
{
	return svc->pending.count + svc->anon_pending.count;
}

void
staple_service_admit(struct staple_service *svc, int (*admit)(void *ctx), void *ctx)
{
	svc->admit = admit;
	svc->admit_ctx = ctx;
}

const struct staple *
staple_service_anonymous(struct staple_service *svc, const struct stapler_key *key, time_t now)
{
	return anon_map_get(svc->anon, key, now);
}

size_t
staple_service_anonymous_count(const struct staple_service *svc)
{
	return anon_map_count(svc->anon);
}

/* The table p stands in. */
static struct table *
pending_table(struct staple_service *svc, int anonymous)
{
	return anonymous ? &svc->anon_pending : &svc->pending;
}

/* RFC 6960 §2.2 "extended revoked": a responder's answer for a serial it never issued
 * (revoked, certificateHold, revocationTime 1970-01-01T00:00:00Z). Not a revocation to hold:
 * the certificate may be issued tomorrow. */
static int
not_issued(enum stapler_cert_status status, long long revoked_at, int reason)
{
	return status == STAPLER_REVOKED && revoked_at == 0 &&
	    reason == OCSP_REVOKED_STATUS_CERTIFICATEHOLD;
}

void
staple_service_stats(const struct staple_service *svc, struct staple_stats *out)
{
	*out = svc->stats;
}

void
staple_service_set_persist(struct staple_service *svc, struct persist *persist)
{
	svc->persist = persist;
}

/* The service's writes: through the write-behind queue in the daemon, where a write the
 * database refuses now is kept and retried; straight to the cache in tests and tools. A first
 * revocation (the staple held is not revoked) goes to the journal first. */
static int
write_row(struct staple_service *svc, const struct cache_issuer *issuer,
    const struct cache_row *row, int first_revocation, struct event_rec *ev)
{
	svc->stats.rows_written++;
	if (svc->persist == NULL) {
		outbox_rec_free(&ev);
		return cache_store(svc->cache, issuer, row);
	}
	return persist_store_event(svc->persist, issuer, row, first_revocation, ev);
}

void
staple_service_set_events(struct staple_service *svc, struct events *events)
{
	svc->events = events;
}

struct events *
staple_service_events(const struct staple_service *svc)
{
	return svc->events;
}

/* The cert_revoked event of a revocation replacing a staple held good or unknown (was), for
 * the row's write; NULL when there is no hub or it is a repeat. Its id is fixed by the
 * revocation's thisUpdate, so the journal's replay raises the same event. */
static struct event_rec *
revoked_event(struct staple_service *svc, const struct stapler_key *key, const char *was,
    long long this_update, long long revoked_at, int reason, long long now)
{
	struct event_rec *ev;
	char fields[256];

	if (svc->events == NULL)
		return NULL;
	snprintf(fields, sizeof(fields), "\"was\":\"%s\",\"status\":\"revoked\","
	    "\"revoked_at\":%lld,\"reason\":%d,\"this_update\":%lld,\"source\":\"ocsp\"", was,
	    revoked_at, reason, this_update);
	if ((ev = outbox_rec_cert(EV_CERT_REVOKED, key, this_update, now, fields)) != NULL &&
	    !events_admit(svc->events, ev))
		outbox_rec_free(&ev);
	return ev;
}

static int
write_failure(struct staple_service *svc, const struct stapler_key *key, int failures,
    const char *last_error, long long next_refresh_at)
{
	return svc->persist != NULL ? persist_failure(svc->persist, key, failures, last_error,
	    next_refresh_at) : cache_set_failure(svc->cache, key, failures, last_error,
	    next_refresh_at);
}

/* A revocation from the journal (it never reached the database before the last stop): put
 * back in force in memory and queued for the database, unless the row has it already. */
static void
replay_revocation(const struct persist_revocation *r, void *arg)
{
	struct staple_service *svc = arg;
	char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];
	struct cache_row row;
	struct staple *s;
	unsigned char *der;
	enum stapler_cert_status was;

	stapler_key_serial_hex(r->key, serial);
	stapler_key_hash_hex(r->key, hash);
	if (cache_get(svc->cache, r->key, &row) != 1) {
		log_warn("revocation_not_recovered", "serial=%s issuer=%s reason=\"entry not cached\"",
		    serial, hash);
		return;
	}
	if (row.status == STAPLER_REVOKED && row.this_update >= r->this_update) {
		cache_row_clear(&row);
		return;
	}
	was = row.status;
	if ((der = malloc(r->der_len)) == NULL) {
		cache_row_clear(&row);
		return;
	}
	memcpy(der, r->der, r->der_len);
	free(row.response_der);
	row.response_der = der;
	row.response_len = r->der_len;
	row.status = STAPLER_REVOKED;
	row.revoked_at = r->revoked_at;
	row.revocation_reason = r->revocation_reason;
	row.this_update = r->this_update;
	row.next_update = r->next_update;
	row.produced_at = r->produced_at;
	row.fetched_at = r->fetched_at;
	row.failures = 0;
	free(row.last_error);
	row.last_error = NULL;
	s = staple_new(r->key, STAPLER_REVOKED, (time_t)r->this_update, (time_t)r->next_update,
	    (time_t)r->produced_at, (time_t)r->fetched_at, r->der, r->der_len);
	if (s != NULL)
		store_put(svc->store, s);
	if (persist_store_event(svc->persist, NULL, &row, 0, revoked_event(svc, r->key,
	    stapler_status_name(was), r->this_update, r->revoked_at, r->revocation_reason,
	    (long long)time(NULL))) < 0)
		log_error("cache_store_failed", "serial=%s issuer=%s", serial, hash);
	log_warn("revocation_recovered", "serial=%s issuer=%s this_update=%lld reason=\"the "
	    "revocation had not reached the database before the last stop; serving it, not the "
	    "older good\"", serial, hash, (long long)r->this_update);
	cache_row_clear(&row);
}

void
staple_service_drain(struct staple_service *svc)
{
	svc->draining = 1;
}

struct persist *
staple_service_persist(const struct staple_service *svc)
{
	return svc->persist;
}

int
staple_service_replay_journal(struct staple_service *svc)
{
	return svc->persist != NULL ? persist_journal_replay(svc->persist, replay_revocation, svc) : 0;
}

static void withdrawn_note(struct staple_service *svc, const struct stapler_key *key);

/* An entry that comes into memory from its row (the warm start's slices, a read by key while
 * they run) after the CRLs held were applied at start, to what memory held then: a CRL that
 * lists it withdraws it now, as it would have then (no event: the withdrawal's was raised when
 * the CRL was first applied, before the restart). One binary search in the CRL's serials. */
static void
crl_withdraw_loaded(struct staple_service *svc, struct staple *s)
{
	time_t crl_tu;

	if (svc->crl != NULL && s->status != STAPLER_REVOKED && svc->crl_ops.check(svc->crl, &s->key,
	    &crl_tu) && crl_decide(1, (enum stapler_cert_status)s->status, s->this_update,
	    crl_tu) == CRL_WITHDRAW) {
		s->withdrawn = 1;
		withdrawn_note(svc, &s->key);
	}
}

/* Learns the issuer of a cached row and its URLs for the OCSP proxy (one query per issuer). */
static void
learn_row_issuer(struct staple_service *svc, const struct cache_row *row, const char *urls,
    const struct stapler_key *key)
{
	struct cache_issuer ci;

	if (!issuers_known(svc->issuers, key)) {
		if (cache_get_issuer(svc->cache, key, &ci) != 1 ||
		    issuers_learn_der(svc->issuers, ci.cert_der, ci.cert_len, urls) < 0)
			log_warn("issuer_not_learned", "issuer=%s", row->issuer_key_hash);
		cache_issuer_clear(&ci);
		return;
	}
	(void)issuers_add_urls(svc->issuers, key, urls);
}

/* A cached row becomes the entry held for its key, unless the service knows better: an entry
 * in memory already (stored, refreshed or revoked since the start, or put back from the
 * revocation journal) is newer than its row, and a row with a write waiting (an eviction, a
 * newer answer) is older than what the service decided. Returns 1 when the entry was made,
 * 0 when the row was passed over, -1 when memory ran out. */
static int
entry_from_row(struct staple_service *svc, const struct cache_row *row, const unsigned char *der,
    size_t der_len, const char *urls)
{
	struct stapler_key key;
	struct staple *s;
	int put;

	if (cache_row_key(row, &key) < 0) {
		log_warn("cache_row_skipped", "serial=%s issuer=%s reason=\"bad key\"", row->serial,
		    row->issuer_key_hash);
		return 0;
	}
	if (staple_service_write_pending(svc, &key))
		return 0;
	/* Stored by a version that kept answers to anonymous misses: never a revocation. */
	if (not_issued(row->status, row->revoked_at, row->revocation_reason)) {
		log_warn("cache_row_skipped", "serial=%s issuer=%s reason=\"stored answer says not "
		    "issued (RFC 6960 extended revoked): fetched again when asked for\"", row->serial,
		    row->issuer_key_hash);
		(void)(svc->persist != NULL ? persist_delete(svc->persist, &key) :
		    cache_delete(svc->cache, &key));
		return 0;
	}
	s = staple_new(&key, row->status, (time_t)row->this_update, (time_t)row->next_update,
	    (time_t)row->produced_at, (time_t)row->fetched_at, der, der_len);
	if (s == NULL)
		return -1;
	s->refresh_at = (time_t)row->next_refresh_at;
	s->used_at = (time_t)(row->used_at != 0 ? row->used_at : row->fetched_at);
	/* Time the daemon was down does not count: nobody could ask. An entry unused for longer
	 * gets a day (at most half its TTL) after the start to be asked for again. */
	if (s->used_at < svc->load_floor)
		s->used_at = svc->load_floor;
	/* One probe: what memory holds already stays (most rows are new: a staple made for
	 * nothing is rare). */
	if ((put = store_put_new(svc->store, s)) <= 0)
		return put;
	learn_row_issuer(svc, row, urls, &key);
	crl_withdraw_loaded(svc, s);
	return 1;
}

static int
load_slice_row(const struct cache_load_row *r, void *arg)
{
	return entry_from_row(arg, &r->row, r->der, r->der_len, r->ocsp_urls) < 0 ? -1 : 0;
}

/* An issuer of the cache, learned before the listener opens with the URLs of one of its rows
 * per CertID algorithm (index lookups), so the OCSP proxy knows every issuer and where to ask
 * from the first request; the load adds the URLs of the other rows as it passes them. */
static int
learn_cached_issuer(const struct cache_issuer *ci, void *arg)
{
	struct staple_service *svc = arg;
	enum stapler_hash_alg alg;
	char *urls = NULL;
	int learned = 0;

	/* Every algorithm types.c names ("invalid" past the last parses as none). */
	for (int i = 0; stapler_hash_alg_parse(stapler_hash_alg_name((enum stapler_hash_alg)i),
	    &alg) == 0; i++) {
		if (cache_issuer_urls(svc->cache, alg, ci->name_hash, ci->key_hash, &urls) == 1 &&
		    issuers_learn_der(svc->issuers, ci->cert_der, ci->cert_len, urls) == 0)
			learned = 1;
		free(urls);
		urls = NULL;
	}
	if (!learned)
		(void)issuers_learn_der(svc->issuers, ci->cert_der, ci->cert_len, NULL);
	return 0;
}

int
staple_service_load_begin(struct staple_service *svc)
{
	long long ttl = svc->cfg->unused_ttl, grace = ttl / 2 < 86400 ? ttl / 2 : 86400;

	svc->load_floor = time(NULL) - (time_t)(ttl - grace);
	memset(&svc->load, 0, sizeof(svc->load));
	svc->load.phase = STAPLE_LOADING;
	/* The index sized once for what comes, not doubled twenty times on the way. */
	if ((svc->load.bound = cache_rows_bound(svc->cache)) > 0)
		(void)store_reserve(svc->store, (size_t)svc->load.bound);
	if (cache_issuers_foreach(svc->cache, learn_cached_issuer, svc) != 0)
		return -1;
	/* The anchors may have changed while the daemon was down. */
	retrust(svc);
	return 0;
}

int
staple_service_load_step(struct staple_service *svc, long limit)
{
	size_t issuers = issuers_count(svc->issuers);
	long n;

	if (svc->load.phase != STAPLE_LOADING)
		return 0;
	if ((n = cache_load_slice(svc->cache, &svc->load.after, limit, load_slice_row, svc)) < 0)
		return -1;
	svc->load.rows += (size_t)n;
	/* An issuer first met in this slice is served once it is found trusted. */
	if (issuers_count(svc->issuers) != issuers)
		retrust(svc);
	if (n < limit)
		svc->load.phase = STAPLE_LOADED;
	return svc->load.phase == STAPLE_LOADING;
}

long
staple_service_load(struct staple_service *svc)
{
	int rc;

	if (staple_service_load_begin(svc) < 0)
		return -1;
	while ((rc = staple_service_load_step(svc, 4096)) > 0)
		;
	return rc < 0 ? -1 : (long)store_count(svc->store);
}

void
staple_service_load_progress(const struct staple_service *svc, struct staple_load_progress *out)
{
	*out = svc->load;
}

const char *
staple_load_phase_name(enum staple_load_phase phase)
{
	return phase == STAPLE_LOADING ? "loading" : "ready";
}

/* staple_service_get(); *failed set when the row could not be read during the load (then
 * nobody knows whether a revocation is stored for key: nothing may be fetched for it). */
static const struct staple *
held_get(struct staple_service *svc, const struct stapler_key *key, int *failed)
{
	const struct staple *s = store_get(svc->store, key);
	struct cache_row row;
	int rc;

	*failed = 0;
	if (s != NULL || svc->load.phase != STAPLE_LOADING)
		return s;
	/* Not loaded yet: its row, by the UNIQUE index (a few pages, tens of microseconds),
	 * instead of a fetch while a valid row is there. */
	if ((rc = cache_get(svc->cache, key, &row)) == 1 &&
	    entry_from_row(svc, &row, row.response_der, row.response_len, row.ocsp_urls) == 1) {
		svc->load.by_key++;
		s = store_get(svc->store, key);
	} else if (rc < 0) {
		svc->load.lookup_failed++;
		*failed = 1;
	}
	cache_row_clear(&row);
	return s;
}

const struct staple *
staple_service_get(struct staple_service *svc, const struct stapler_key *key)
{
	int failed;

	return held_get(svc, key, &failed);
}

/* A refresh failed for a staple held: inside the danger window, or past its expiry (no longer
 * served), the head-end is told, once per staple (the id is fixed by its nextUpdate). */
static void
note_unrefreshed(struct staple_service *svc, const struct stapler_key *key, const char *error,
    time_t now)
{
	const struct staple *held = store_get(svc->store, key);
	enum event_type type;
	char fields[768], err[320];
	size_t n;

	if (svc->events == NULL || held == NULL)
		return;
	if (!staple_servable(held, now))
		type = EV_STAPLE_EXPIRED;
	else if ((long long)(held->next_update - now) < svc->cfg->health_danger_window)
		type = EV_STAPLE_DANGER;
	else
		return;
	/* The error, JSON-escaped as far as 300 bytes of escapes go. */
	n = fmt_json_escape(err, 0, 300, error != NULL ? error : "");
	err[n] = '\0';
	snprintf(fields, sizeof(fields), "\"status\":\"%s\",\"next_update\":%lld,"
	    "\"error\":\"%s\"", stapler_status_name(held->status), (long long)held->next_update,
	    err);
	events_raise(svc->events, outbox_rec_cert(type, key, (long long)held->next_update,
	    (long long)now, fields));
}

/* Every URL failed. A cached entry keeps its response byte for byte (served until its
 * nextUpdate, checked at serve time) and gets its failure counted and its retry backed off. */
static void
record_failure(struct pending *p, const char *error)
{
	struct staple_service *svc = p->svc;
	struct cache_row row;
	time_t now = time(NULL), next;
	int failures;

	if (cache_get(svc->cache, &p->key, &row) != 1) {
		/* Nothing cached: the client gets 502, the scheduler has nothing to retry. */
		log_warn("fetch_failed_uncached", "serial=%s issuer=%s error=\"%s\"", p->t->serial_hex,
		    p->t->key_hash_hex, error);
		cache_row_clear(&row);
		return;
	}
	failures = row.failures + 1;
	next = sched_retry_at(failures, now, (time_t)row.next_update, staple_service_random(svc));
	if (write_failure(svc, &p->key, failures, error, (long long)next) < 0)
		log_error("cache_store_failed", "serial=%s issuer=%s", row.serial, row.issuer_key_hash);
	store_set_refresh_at(svc->store, &p->key, next);
	note_unrefreshed(svc, &p->key, error, now);
	/* A wrong answer (bad signature, another CertID, an unauthorised signer) is worth an
	 * operator's attention; an absent one (timeout, 5xx, tryLater) is routine. */
	log_msg(p->permanent ? LOG_LVL_ERROR : LOG_LVL_WARN, "refresh_failed", "serial=%s issuer=%s "
	    "url=\"%s\" outcome=%s failures=%d next_try=%lld served_until=%lld error=\"%s\"",
	    row.serial, row.issuer_key_hash, row.ocsp_url, p->permanent ? "invalid_response" :
	    "unavailable", failures, (long long)next,
	    (long long)(row.next_update - STORE_EXPIRY_MARGIN), error);
	cache_row_clear(&row);
}

/* Drops the backoff entries whose time has come; returns how many are left. */
static size_t
backoff_sweep(struct staple_service *svc, time_t now)
{
	size_t i = 0;

	while (i < svc->backoff.cap) {
		struct backoff *b = svc->backoff.slot[i];

		/* Removal shifts a later entry back into slot i: look at it again. */
		if (b != NULL && b->retry_at <= now) {
			table_remove(&svc->backoff, &b->key, svc->seed);
			free(b);
			continue;
		}
		i++;
	}
	return svc->backoff.count;
}

/* p's every answer was within the margin: a failure of the entry, backed off with jitter
 * like a refresh that failed (sched_retry_at(), sooner as the staple held nears its end),
 * also for a certificate that has no row yet. */
static void
backoff_note(struct pending *p, const char *error, time_t now)
{
	struct staple_service *svc = p->svc;
	struct backoff *b = table_get(&svc->backoff, &p->key, svc->seed);
	const struct staple *held = store_get(svc->store, &p->key);
	void *replaced;

	if (b == NULL) {
		if ((svc->backoff.count >= STAPLE_BACKOFF_MAX && backoff_sweep(svc, now) >=
		    STAPLE_BACKOFF_MAX) || (b = calloc(1, sizeof(*b))) == NULL)
			return;
		b->key = p->key;
		if (table_put(&svc->backoff, b, svc->seed, &replaced) < 0) {
			free(b);
			return;
		}
	}
	b->failures++;
	b->retry_at = sched_retry_at(b->failures, now, held != NULL ? held->next_update : 0,
	    staple_service_random(svc));
	util_strlcpy(b->error, error != NULL ? error : "", sizeof(b->error));
	log_info("fetch_backoff", "serial=%s issuer=%s failures=%d next_try=%lld reason=\"only "
	    "answers within the safety margin\"", p->t->serial_hex, p->t->key_hash_hex, b->failures,
	    (long long)b->retry_at);
}

/* The backoff entry that holds key back at now, or NULL. One whose time has come stays (its
 * failure count paces the next backoff) until a success or a sweep drops it. */
static const struct backoff *
backoff_get(struct staple_service *svc, const struct stapler_key *key, time_t now)
{
	struct backoff *b;

	if (svc->backoff.count == 0 || (b = table_get(&svc->backoff, key, svc->seed)) == NULL)
		return NULL;
	return b->retry_at > now ? b : NULL;
}

static void
backoff_clear(struct staple_service *svc, const struct stapler_key *key)
{
	if (svc->backoff.count > 0)
		free(table_remove(&svc->backoff, key, svc->seed));
}

/* Answers and frees every waiter of p, then p itself. */
static void
pending_finish(struct pending *p, enum staple_outcome outcome, const struct staple *s,
    const char *error)
{
	struct staple_service *svc = p->svc;
	struct staple_wait *w;

	/* An evicted fetch left the table already; a newer one for the key may be in it. */
	if (!p->evicted)
		table_remove(pending_table(svc, p->anonymous), &p->key, svc->seed);
	/* An evicted entry has no row to record a failure on (or a newer fetch's row). */
	if (outcome == STAPLE_UPSTREAM_FAILED && !p->evicted && !p->kept_held && !p->anonymous)
		record_failure(p, error);
	if (outcome == STAPLE_UPSTREAM_FAILED && p->expiring && !p->evicted && !p->anonymous)
		backoff_note(p, error, time(NULL));
	else if (outcome == STAPLE_OK && !p->evicted && !p->anonymous)
		backoff_clear(svc, &p->key);
	while ((w = TAILQ_FIRST(&p->waiters)) != NULL) {
		TAILQ_REMOVE(&p->waiters, w, link);
		if (outcome == STAPLE_OK && w->has_digest && !p->evicted && !p->anonymous)
			store_seen_put(svc->store, w->digest, &p->key, p->t->not_after);
		w->cb(outcome, s, error, w->arg);
		free(w);
	}
	pending_free(p);
}

/* Stores a verified response in SQLite and memory; returns the staple or NULL. */
static const struct staple *
commit(struct pending *p, const char *url, const unsigned char *der, size_t len,
    const struct ocsp_result *r, time_t now, time_t *next_refresh)
{
	struct staple_service *svc = p->svc;
	struct sched_policy pol = policy(svc);
	struct cache_row row = { 0 };
	struct cache_issuer issuer = { 0 };
	const struct staple *old;
	struct staple *s;
	time_t used_at;
	char urls[CERTS_URLS_ENCODED_MAX];
	unsigned char *issuer_der;
	size_t issuer_len;

	/* "" for a target with no URL of its own (an override serves it); the bound on URLs
	 * makes the list fit. */
	(void)certs_urls_encode(&p->t->urls, urls, sizeof(urls));
	row.hash_alg = (enum stapler_hash_alg)p->t->key.hash_alg;
	row.hash_params = (enum stapler_hash_params)p->t->key.hash_params;
	util_strlcpy(row.serial, p->t->serial_hex, sizeof(row.serial));
	util_strlcpy(row.issuer_key_hash, p->t->key_hash_hex, sizeof(row.issuer_key_hash));
	util_strlcpy(row.issuer_name_hash, p->t->name_hash_hex, sizeof(row.issuer_name_hash));
	row.subject = p->t->subject;
	row.ocsp_url = (char *)(uintptr_t)url;
	row.ocsp_urls = urls;
	row.status = r->status;
	row.revoked_at = r->revoked_at;
	row.revocation_reason = r->revocation_reason;
	row.this_update = r->this_update;
	row.next_update = r->next_update;
	row.produced_at = r->produced_at;
	row.fetched_at = now;
	row.cert_not_after = p->t->not_after;
	row.response_der = (unsigned char *)(uintptr_t)der;
	row.response_len = len;
	row.request_der = p->req;
	row.request_len = p->req_len;
	row.next_refresh_at = sched_next_refresh(&pol, r->this_update, r->next_update, now,
	    staple_service_random(svc));
	if (p->res != NULL) {
		row.next_refresh_at = sched_after_max_age(&pol, (time_t)row.next_refresh_at,
		    r->this_update, r->next_update, now, p->res->max_age);
		row.upstream_etag = (char *)(uintptr_t)p->res->etag;
		row.upstream_last_modified = (char *)(uintptr_t)p->res->last_modified;
	}
	row.created_at = now;
	old = store_get(svc->store, &p->key);
	used_at = old != NULL ? old->used_at : now;
	row.used_at = used_at;
	*next_refresh = (time_t)row.next_refresh_at;

	util_strlcpy(issuer.key_hash, p->t->key_hash_hex, sizeof(issuer.key_hash));
	util_strlcpy(issuer.name_hash, p->t->name_hash_hex, sizeof(issuer.name_hash));
	if ((issuer_der = certs_der(p->t->issuer, &issuer_len)) == NULL)
		return NULL;
	{
		char isub[512];

		certs_subject(p->t->issuer, isub, sizeof(isub));
		issuer.subject = isub;
		issuer.cert_der = issuer_der;
		issuer.cert_len = issuer_len;
		/* A verified staple is served even while the database refuses the write: the
		 * write-behind queue keeps it and retries until it lands. */
		int first = r->status == STAPLER_REVOKED &&
		    (old == NULL || old->status != STAPLER_REVOKED);

		if (write_row(svc, &issuer, &row, first, first && old != NULL ?
		    revoked_event(svc, &p->key, stapler_status_name(old->status), r->this_update,
		    r->revoked_at, r->revocation_reason, now) : NULL) < 0)
			log_error("cache_store_failed", "serial=%s issuer=%s", p->t->serial_hex, p->t->key_hash_hex);
	}
	OPENSSL_free(issuer_der);
	s = staple_new(&p->key, r->status, r->this_update, r->next_update, r->produced_at, now, der, len);
	if (s == NULL)
		return NULL;
	s->refresh_at = (time_t)row.next_refresh_at;
	s->used_at = used_at;
	if (store_put(svc->store, s) < 0)
		return NULL;
	if (issuers_learn(svc->issuers, p->t->issuer, &p->t->urls) < 0)
		log_warn("issuer_not_learned", "issuer=%s", p->t->key_hash_hex);
	return store_get(svc->store, &p->key);
}

static int try_next_url(struct pending *p);

/* A certificate held good (or unknown) that its CA now says is revoked: a security event an
 * operator must see, logged at warning level and counted, once per certificate. */
static void
note_revocation(struct pending *p, const struct staple *old, const struct ocsp_result *r,
    const char *url)
{
	if (old == NULL || old->status == STAPLER_REVOKED || r->status != STAPLER_REVOKED)
		return;
	p->svc->stats.revocations_seen++;
	log_warn("revocation_seen", "serial=%s issuer=%s subject=\"%s\" url=\"%s\" was=%s "
	    "revoked_at=%lld reason=%d", p->t->serial_hex, p->t->key_hash_hex, p->t->subject, url,
	    stapler_status_name(old->status), (long long)r->revoked_at, r->revocation_reason);
}

int
staple_fetch_urls(const struct staple_service *svc, const unsigned char *key_hash,
    const struct certs_urls *own, char *const **urls)
{
	const struct config_responder *r = config_responder_find(svc->cfg, key_hash);

	if (r != NULL) {
		*urls = r->url;
		return r->n;
	}
	*urls = own->url;
	return own->n;
}

static struct sched_answer
answer_of(enum stapler_cert_status status, time_t this_update, time_t next_update,
    time_t produced_at)
{
	struct sched_answer a = { status == STAPLER_REVOKED, this_update, next_update, produced_at };

	return a;
}

/* The upstream answered, verified, but older than the staple held (a lagging replica, a
 * cache in front of the responder): the held staple stays, in memory and in its row, and is
 * what the waiters get while it is servable. An answer came, so this is no failure: the
 * failure count is reset and the next try is paced by sched_after_older(). */
static void
keep_held(struct pending *p, const char *url, const struct ocsp_result *r,
    const struct staple *held, time_t now)
{
	struct staple_service *svc = p->svc;
	struct sched_policy pol = policy(svc);
	struct sched_answer h = answer_of(held->status, held->this_update, held->next_update,
	    held->produced_at);
	time_t next = sched_after_older(&pol, &h, now, staple_service_random(svc));
	char note[512];

	svc->stats.older_refused++;
	snprintf(note, sizeof(note), "%.300s: older answer not kept: thisUpdate %lld before the "
	    "held %lld", url, (long long)r->this_update, (long long)held->this_update);
	log_warn("response_older", "serial=%s issuer=%s url=\"%s\" this_update=%lld "
	    "held_this_update=%lld produced_at=%lld held_produced_at=%lld next_try=%lld",
	    p->t->serial_hex, p->t->key_hash_hex, url, (long long)r->this_update,
	    (long long)held->this_update, (long long)r->produced_at, (long long)held->produced_at,
	    (long long)next);
	if (!p->evicted && write_failure(svc, &p->key, 0, note, (long long)next) < 0)
		log_error("cache_store_failed", "serial=%s issuer=%s", p->t->serial_hex,
		    p->t->key_hash_hex);
	if (!p->evicted)
		store_set_refresh_at(svc->store, &p->key, next);
	if (staple_servable(held, now))
		pending_finish(p, STAPLE_OK, held, NULL);
	else {
		p->kept_held = 1;
		pending_finish(p, STAPLE_UPSTREAM_FAILED, NULL, note);
	}
}

/* A first revocation that ends within the safety margin: the good answer held is wrong, so
 * the revocation replaces it (and is final), but it can be served to nobody: the waiters get
 * 502 and the entry backs off like after any failure. */
static void
keep_revocation(struct pending *p, const struct fetch_result *res, const struct ocsp_result *r,
    time_t now)
{
	time_t next;

	p->svc->stats.expiring_refused++;
	p->permanent = 0;
	p->expiring = 1;
	snprintf(p->last_error, sizeof(p->last_error), "%s: revoked, but nextUpdate in %lld s, "
	    "within the %d s safety margin: kept, served to nobody", res->url,
	    (long long)(r->next_update - now), STORE_EXPIRY_MARGIN);
	log_warn("response_rejected", "serial=%s issuer=%s url=\"%s\" verdict=revoked_expiring "
	    "status=revoked next_update=%lld", p->t->serial_hex, p->t->key_hash_hex, res->url,
	    (long long)r->next_update);
	if (!p->evicted && commit(p, res->url, res->body, res->len, r, now, &next) == NULL) {
		pending_finish(p, STAPLE_UNAVAILABLE, NULL, "out of memory");
		return;
	}
	pending_finish(p, STAPLE_UPSTREAM_FAILED, NULL, p->last_error);
}

/* The verified answer to an anonymous miss: its waiters get it, and the map of such answers
 * holds it for the next ones (never the store, never the database). */
static void
anon_commit(struct pending *p, const struct fetch_result *res, const struct ocsp_result *r,
    time_t now)
{
	const struct stapler_config *cfg = p->svc->cfg;
	struct staple *s, *held;

	s = staple_new(&p->key, r->status, r->this_update, r->next_update, r->produced_at, now,
	    res->body, res->len);
	if (s == NULL) {
		pending_finish(p, STAPLE_UNAVAILABLE, NULL, "out of memory");
		return;
	}
	if (!staple_servable(s, now)) {
		free(s);
		p->permanent = 0;
		snprintf(p->last_error, sizeof(p->last_error), "%s: expiring: nextUpdate in %lld s, "
		    "within the %d s safety margin", res->url, (long long)(r->next_update - now),
		    STORE_EXPIRY_MARGIN);
		p->url_index++;
		(void)try_next_url(p);
		return;
	}
	/* A copy for the map: a waiter's answer may run code that changes the map. */
	if (!p->evicted && (held = staple_new(&p->key, r->status, r->this_update, r->next_update,
	    r->produced_at, now, res->body, res->len)) != NULL)
		(void)anon_map_put(p->svc->anon, held, now, cfg->anonymous_ttl,
		    (size_t)cfg->anonymous_entries, cfg->anonymous_bytes);
	log_debug("anonymous_fetched", "serial=%s issuer=%s url=\"%s\" status=%s held=%zu",
	    p->t->serial_hex, p->t->key_hash_hex, res->url, stapler_status_name(r->status),
	    anon_map_count(p->svc->anon));
	pending_finish(p, STAPLE_OK, s, NULL);
	free(s);
}

/* The upstream answered with what is held: a 304, or the very bytes of the staple held,
 * verified since the trust anchors were last loaded. Nothing new is learned, so nothing is
 * verified or rewritten: the held staple's own times are checked against the clock, and only
 * its schedule moves (paced as if just fetched, and by the upstream's max-age). Returns 0,
 * or -1 when the held staple cannot stand for the answer (the caller goes on as usual). */
static int
keep_unchanged(struct pending *p, const struct fetch_result *res, const struct staple *held,
    time_t now)
{
	struct staple_service *svc = p->svc;
	struct sched_policy pol = policy(svc);
	time_t next;

	if (held == NULL || p->anonymous || p->evicted || !staple_servable(held, now))
		return -1;
	if (res->status == FETCH_OK && (held->fetched_at <= svc->trust_at ||
	    held->der_len != res->len || memcmp(held->der, res->body, res->len) != 0))
		return -1;
	next = sched_next_refresh(&pol, held->this_update, held->next_update, now,
	    staple_service_random(svc));
	next = sched_after_max_age(&pol, next, held->this_update, held->next_update, now,
	    res->max_age);
	if (res->status == FETCH_NOT_MODIFIED)
		svc->stats.not_modified++;
	else
		svc->stats.unchanged++;
	if (write_failure(svc, &p->key, 0, NULL, (long long)next) < 0)
		log_error("cache_store_failed", "serial=%s issuer=%s", p->t->serial_hex,
		    p->t->key_hash_hex);
	store_set_refresh_at(svc->store, &p->key, next);
	log_info(p->refresh ? "refreshed" : "staple_fetched", "serial=%s issuer=%s url=\"%s\" "
	    "outcome=%s status=%s this_update=%lld next_update=%lld failures=0 next_try=%lld",
	    p->t->serial_hex, p->t->key_hash_hex, res->url,
	    res->status == FETCH_NOT_MODIFIED ? "not_modified" : "unchanged",
	    stapler_status_name(held->status), (long long)held->this_update,
	    (long long)held->next_update, (long long)next);
	pending_finish(p, STAPLE_OK, held, NULL);
	return 0;
}

static void
withdrawn_forget(struct staple_service *svc, const struct stapler_key *key)
{
	free(table_remove(&svc->withdrawn, key, svc->seed));
}

static void
withdrawn_note(struct staple_service *svc, const struct stapler_key *key)
{
	struct withdrawn *w;
	void *replaced;

	if (table_get(&svc->withdrawn, key, svc->seed) != NULL || (w = calloc(1, sizeof(*w))) == NULL)
		return;
	w->key = *key;
	if (table_put(&svc->withdrawn, w, svc->seed, &replaced) < 0)
		free(w);
}

/* A verified OCSP answer for a serial the issuer's CRL lists. A revocation goes on as usual.
 * A good or unknown from before the CRL is not served (it stays withdrawn: its row is kept
 * when newer than the one held, and the entry backs off like after a failure, so it is
 * asked again until OCSP catches up); one from after the CRL is served and told as a
 * disagreement. Returns 1 when p was finished here. */
static int
crl_contradicts(struct pending *p, const struct fetch_result *res, const struct ocsp_result *r,
    time_t now)
{
	struct staple_service *svc = p->svc;
	const struct staple *old, *s;
	struct sched_answer held, fresh;
	enum crl_verdict v;
	time_t crl_tu = 0, next;
	char fields[256];

	if (svc->crl == NULL || !svc->crl_ops.check(svc->crl, &p->key, &crl_tu))
		return 0;
	v = crl_decide(1, r->status, r->this_update, crl_tu);
	if (p->anonymous) {
		/* An outsider's miss is held apart, never the entry; but what a CRL contradicts is
		 * served to nobody. */
		if (v != CRL_WITHDRAW)
			return 0;
		snprintf(p->last_error, sizeof(p->last_error), "%s: withdrawn: the issuer's CRL of "
		    "%lld lists the certificate as revoked", res->url, (long long)crl_tu);
		pending_finish(p, STAPLE_UPSTREAM_FAILED, NULL, p->last_error);
		return 1;
	}
	if (v == CRL_KEEP) {
		withdrawn_forget(svc, &p->key);
		return 0;
	}
	snprintf(fields, sizeof(fields), "\"ocsp_status\":\"%s\",\"ocsp_this_update\":%lld,"
	    "\"crl_this_update\":%lld,\"served\":%s", stapler_status_name(r->status),
	    (long long)r->this_update, (long long)crl_tu, v == CRL_DISAGREE ? "true" : "false");
	events_raise(svc->events, outbox_rec_cert(EV_CRL_OCSP_DISAGREE, &p->key, (long long)crl_tu,
	    (long long)now, fields));
	if (v == CRL_DISAGREE) {
		withdrawn_forget(svc, &p->key);
		return 0;
	}
	old = store_get(svc->store, &p->key);
	fresh = answer_of(r->status, r->this_update, r->next_update, r->produced_at);
	if (old != NULL)
		held = answer_of(old->status, old->this_update, old->next_update, old->produced_at);
	if (!p->evicted && sched_keep(old != NULL ? &held : NULL, &fresh, now, STORE_EXPIRY_MARGIN) ==
	    SCHED_KEEP_FRESH) {
		p->res = res;
		s = commit(p, res->url, res->body, res->len, r, now, &next);
		p->res = NULL;
		if (s != NULL)
			((struct staple *)(uintptr_t)s)->withdrawn = 1;
	}
	if ((old = store_get(svc->store, &p->key)) != NULL && old->status != STAPLER_REVOKED) {
		((struct staple *)(uintptr_t)old)->withdrawn = 1;
		withdrawn_note(svc, &p->key);
	}
	p->permanent = 0;
	p->expiring = 1;         /* backed off: clients get this error, not a fetch each */
	snprintf(p->last_error, sizeof(p->last_error), "%s: withdrawn: the issuer's CRL of %lld "
	    "lists the certificate as revoked, and OCSP still answers %s from %lld, before it",
	    res->url, (long long)crl_tu, stapler_status_name(r->status), (long long)r->this_update);
	log_warn("staple_withheld", "serial=%s issuer=%s url=\"%s\" ocsp_status=%s "
	    "ocsp_this_update=%lld crl_this_update=%lld", p->t->serial_hex, p->t->key_hash_hex,
	    res->url, stapler_status_name(r->status), (long long)r->this_update, (long long)crl_tu);
	pending_finish(p, STAPLE_UPSTREAM_FAILED, NULL, p->last_error);
	return 1;
}

static void
fetched(struct pending *p, const struct fetch_result *res)
{
	const struct staple *old, *s;
	struct staple *unstored;
	struct sched_answer held, fresh;
	struct ocsp_result r;
	enum ocsp_verdict v;
	time_t now = time(NULL), next = 0;

	p->job = NULL;
	if (res->status == FETCH_CANCELLED) {
		pending_finish(p, STAPLE_UNAVAILABLE, NULL, "shutting down");
		return;
	}
	if ((res->status == FETCH_OK || res->status == FETCH_NOT_MODIFIED) &&
	    keep_unchanged(p, res, store_get(p->svc->store, &p->key), now) == 0)
		return;

	if (res->status != FETCH_OK) {
		p->permanent = 0;
		snprintf(p->last_error, sizeof(p->last_error), "%s: %s", res->url, res->error);
		log_warn("fetch_failed", "serial=%s issuer=%s url=\"%s\" error=\"%s\"", p->t->serial_hex,
		    p->t->key_hash_hex, res->url, res->error);
		p->url_index++;
		(void)try_next_url(p);
		return;
	}
	p->svc->stats.verified++;
	v = ocsp_verify_cached(res->body, res->len, p->t->id, p->t->issuer, now, p->svc->signers,
	    &r);
	/* A deployment may accept responses without nextUpdate (Vault PKI issues them) for a
	 * lifetime of its choosing from thisUpdate; everything else was verified already. */
	if (v == OCSP_NO_NEXT_UPDATE && p->svc->cfg->accept_no_next_update > 0 &&
	    r.this_update <= now + OCSP_SKEW) {
		r.next_update = r.this_update + (time_t)p->svc->cfg->accept_no_next_update;
		if (r.next_update > now) {
			v = OCSP_OK;
			p->svc->stats.no_next_update_kept++;
		} else {
			v = OCSP_EXPIRED;
			snprintf(r.detail, sizeof(r.detail), "no nextUpdate, and thisUpdate plus "
			    "[upstream] accept_no_next_update passed %lld s ago",
			    (long long)(now - r.next_update));
		}
	}
	if (v != OCSP_OK) {
		if ((unsigned)v < OCSP_VERDICTS)
			p->svc->stats.rejected[v]++;
		p->permanent = !ocsp_verdict_is_temporary(v);
		snprintf(p->last_error, sizeof(p->last_error), "%s: %s: %s", res->url,
		    ocsp_verdict_name(v), r.detail);
		log_warn("response_rejected", "serial=%s issuer=%s url=\"%s\" verdict=%s detail=\"%s\"",
		    p->t->serial_hex, p->t->key_hash_hex, res->url, ocsp_verdict_name(v), r.detail);
		p->url_index++;
		(void)try_next_url(p);
		return;
	}
	if (crl_contradicts(p, res, &r, now))
		return;
	if (p->anonymous) {
		anon_commit(p, res, &r, now);
		return;
	}
	if (not_issued(r.status, (long long)r.revoked_at, r.revocation_reason)) {
		/* The certificate chains to our anchors, so its CA issued it: a responder that
		 * says otherwise lags. Like an absent answer: the next URL, later a retry. */
		p->permanent = 0;
		snprintf(p->last_error, sizeof(p->last_error), "%s: answers \"not issued\" (RFC 6960 "
		    "extended revoked: certificateHold, revoked 1970-01-01): not kept", res->url);
		log_warn("response_rejected", "serial=%s issuer=%s url=\"%s\" verdict=not_issued",
		    p->t->serial_hex, p->t->key_hash_hex, res->url);
		p->url_index++;
		(void)try_next_url(p);
		return;
	}
	old = store_get(p->svc->store, &p->key);
	if (old != NULL)
		held = answer_of(old->status, old->this_update, old->next_update, old->produced_at);
	fresh = answer_of(r.status, r.this_update, r.next_update, r.produced_at);
	switch (sched_keep(old != NULL ? &held : NULL, &fresh, now, STORE_EXPIRY_MARGIN)) {
	case SCHED_KEEP_EXPIRING:
		/* It could be served to nobody: a failure of the entry, backed off (backoff_note()),
		 * so it is not fetched again on every request. */
		p->svc->stats.expiring_refused++;
		p->permanent = 0;
		p->expiring = 1;
		snprintf(p->last_error, sizeof(p->last_error), "%s: expiring: nextUpdate in %lld s, "
		    "within the %d s safety margin", res->url, (long long)(r.next_update - now),
		    STORE_EXPIRY_MARGIN);
		log_warn("response_rejected", "serial=%s issuer=%s url=\"%s\" verdict=expiring "
		    "status=%s next_update=%lld", p->t->serial_hex, p->t->key_hash_hex, res->url,
		    stapler_status_name(r.status), (long long)r.next_update);
		p->url_index++;
		(void)try_next_url(p);
		return;
	case SCHED_KEEP_ROLLBACK:
		/* A signed revocation is final here: never roll back to good or unknown. */
		p->permanent = 1;
		snprintf(p->last_error, sizeof(p->last_error), "%s: says %s for a revoked certificate",
		    res->url, stapler_status_name(r.status));
		log_warn("response_rejected", "serial=%s issuer=%s url=\"%s\" verdict=rollback status=%s",
		    p->t->serial_hex, p->t->key_hash_hex, res->url, stapler_status_name(r.status));
		p->url_index++;
		(void)try_next_url(p);
		return;
	case SCHED_KEEP_OLDER:
		keep_held(p, res->url, &r, old, now);
		return;
	case SCHED_KEEP_REVOKED_EXPIRING:
		note_revocation(p, old, &r, res->url);
		keep_revocation(p, res, &r, now);
		return;
	case SCHED_KEEP_FRESH:
		note_revocation(p, old, &r, res->url);
		break;
	}
	if (p->evicted) {
		/* The eviction came after this fetch started and wins: its waiters get the
		 * verified answer, and nothing is stored. */
		p->svc->stats.evicted_in_flight++;
		log_info("fetch_discarded", "serial=%s issuer=%s url=\"%s\" reason=evicted status=%s",
		    p->t->serial_hex, p->t->key_hash_hex, res->url, stapler_status_name(r.status));
		unstored = staple_new(&p->key, r.status, r.this_update, r.next_update, r.produced_at,
		    now, res->body, res->len);
		pending_finish(p, unstored != NULL ? STAPLE_OK : STAPLE_UNAVAILABLE, unstored,
		    unstored != NULL ? NULL : "out of memory");
		free(unstored);
		return;
	}
	p->res = res;
	s = commit(p, res->url, res->body, res->len, &r, now, &next);
	p->res = NULL;
	if (s == NULL) {
		pending_finish(p, STAPLE_UNAVAILABLE, NULL, "out of memory");
		return;
	}
	log_info(p->refresh ? "refreshed" : "staple_fetched", "serial=%s issuer=%s url=\"%s\" "
	    "outcome=ok status=%s this_update=%lld next_update=%lld failures=0 next_try=%lld",
	    p->t->serial_hex, p->t->key_hash_hex, res->url, stapler_status_name(r.status),
	    (long long)r.this_update, (long long)r.next_update, (long long)next);
	pending_finish(p, STAPLE_OK, s, NULL);
}

static void
on_fetched(const struct fetch_result *res, void *arg)
{
	struct pending *p = arg;
	const struct staple *held = store_get(p->svc->store, &p->key);
	struct fetch_result again;
	unsigned char *der;

	/* A 304 for a staple verified before the trust anchors were reloaded: the held bytes are
	 * the answer, checked in full like a new one (a copy: keeping it replaces them). */
	if (res->status == FETCH_NOT_MODIFIED && held != NULL && !p->anonymous &&
	    held->fetched_at <= p->svc->trust_at && (der = malloc(held->der_len)) != NULL) {
		memcpy(der, held->der, held->der_len);
		again = *res;
		again.status = FETCH_OK;
		again.body = der;
		again.len = held->der_len;
		/* A 304 need not repeat the validators: the ones sent still describe the bytes. */
		if (again.etag == NULL && p->t->etag[0] != '\0')
			again.etag = p->t->etag;
		if (again.last_modified == NULL && p->t->last_modified[0] != '\0')
			again.last_modified = p->t->last_modified;
		fetched(p, &again);
		free(der);
		return;
	}
	fetched(p, res);
}

/* Starts the fetch at p->url_index or the next URL that can be fetched and returns 0; -1
 * when none is left (p->last_error says why). */
static int
start_url(struct pending *p)
{
	char *const *urls;
	int n = staple_fetch_urls(p->svc, p->t->key.key_hash, &p->t->urls, &urls);
	char err[256];

	enum fetch_priority prio = p->urgent ? FETCH_PRIO_CLIENT : p->refresh ? FETCH_PRIO_REFRESH :
	    p->t->anonymous ? FETCH_PRIO_ANONYMOUS : FETCH_PRIO_CLIENT;

	for (; p->url_index < n; p->url_index++) {
		if (fetch_start(p->svc->fetch, urls[p->url_index], p->req, p->req_len, prio, on_fetched,
		    p, &p->job, err, sizeof(err)) == 0) {
			/* Best effort: without them the request is a plain one. */
			if (p->t->etag[0] != '\0' || p->t->last_modified[0] != '\0')
				(void)fetch_set_validators(p->job, p->t->etag[0] != '\0' ? p->t->etag :
				    NULL, p->t->last_modified[0] != '\0' ? p->t->last_modified : NULL);
			return 0;
		}
		snprintf(p->last_error, sizeof(p->last_error), "%.200s: %.250s", urls[p->url_index], err);
	}
	return -1;
}

/* From a fetch's callback: the next URL, or when none is left the waiters get the last error
 * and p is freed (-1). */
static int
try_next_url(struct pending *p)
{
	if (start_url(p) == 0)
		return 0;
	pending_finish(p, STAPLE_UPSTREAM_FAILED, NULL, p->last_error);
	return -1;
}

/* Sets *ans to an answer known during the call; returns NULL, the call's wait handle. */
static struct staple_wait *
answer_now(struct staple_answer *ans, enum staple_outcome outcome, const struct staple *s,
    const char *error)
{
	ans->outcome = outcome;
	ans->staple = outcome == STAPLE_OK ? s : NULL;
	util_strlcpy(ans->error, error != NULL ? error : "", sizeof(ans->error));
	return NULL;
}

static struct staple_wait *
wait_add(struct pending *p, const unsigned char *digest, staple_cb cb, void *arg)
{
	struct staple_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->p = p;
	w->cb = cb;
	w->arg = arg;
	if (digest != NULL) {
		memcpy(w->digest, digest, STORE_DIGEST_LEN);
		w->has_digest = 1;
	}
	TAILQ_INSERT_TAIL(&p->waiters, w, link);
	return w;
}

/* The hex forms of t->key. */
static void
target_hex(struct staple_target *t)
{
	stapler_key_serial_hex(&t->key, t->serial_hex);
	stapler_key_hash_hex(&t->key, t->key_hash_hex);
	stapler_key_name_hash_hex(&t->key, t->name_hash_hex);
}

struct staple_target *
staple_target_new(X509 *subject, X509 *issuer, time_t not_after, enum stapler_hash_alg alg,
    char *err, size_t errlen)
{
	struct staple_target *t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!X509_up_ref(issuer)) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->issuer = issuer;
	t->not_after = not_after;
	certs_subject(subject, t->subject, sizeof(t->subject));
	if ((t->id = certs_certid(subject, issuer, alg)) == NULL ||
	    certs_certid_key(t->id, issuer, &t->key) < 0) {
		snprintf(err, errlen, "cannot compute the OCSP CertID (serial longer than %d octets?)",
		    STAPLER_SERIAL_MAX);
		staple_target_free(&t);
		return NULL;
	}
	target_hex(t);
	certs_ocsp_urls(subject, &t->urls, t->url_error, sizeof(t->url_error));
	t->no_rev_avail = certs_no_rev_avail(subject);
	return t;
}

struct staple_target *
staple_target_from_certid(const OCSP_CERTID *id, X509 *issuer, const struct certs_urls *urls,
    const char *subject, time_t not_after)
{
	struct staple_target *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if (!X509_up_ref(issuer)) {
		free(t);
		return NULL;
	}
	t->issuer = issuer;
	t->not_after = not_after;
	util_strlcpy(t->subject, subject != NULL ? subject : "", sizeof(t->subject));
	if ((t->id = OCSP_CERTID_dup(id)) == NULL || certs_certid_key(t->id, issuer, &t->key) < 0)
		goto fail;
	target_hex(t);
	for (int i = 0; urls != NULL && i < urls->n && i < CERTS_MAX_URLS; i++) {
		if ((t->urls.url[i] = strdup(urls->url[i])) == NULL)
			goto fail;
		t->urls.n++;
	}
	return t;
fail:
	staple_target_free(&t);
	return NULL;
}

void
staple_target_free(struct staple_target **tp)
{
	struct staple_target *t;

	if (tp == NULL || (t = *tp) == NULL)
		return;
	X509_free(t->issuer);
	OCSP_CERTID_free(t->id);
	certs_urls_free(&t->urls);
	free(t);
	*tp = NULL;
}

int
staple_target_url_count(const struct staple_service *svc, const struct staple_target *t)
{
	char *const *urls;

	return staple_fetch_urls(svc, t->key.key_hash, &t->urls, &urls);
}

/* Checks that t may be fetched at all. Returns STAPLE_OK or the outcome to answer with. */
static enum staple_outcome
target_check(struct staple_service *svc, const struct staple_target *t, char *err, size_t errlen)
{
	char *const *urls;
	int n = staple_fetch_urls(svc, t->key.key_hash, &t->urls, &urls);
	char why[256];
	int usable = 0;

	/* RFC 9608: nothing to ask anyone, whatever URLs it names; no upstream is contacted. */
	if (t->no_rev_avail) {
		snprintf(err, errlen, "certificate carries noRevAvail (RFC 9608): its issuer "
		    "publishes no revocation information for it, so there is no staple");
		return STAPLE_NO_URL;
	}
	if (n == 0) {
		if (t->url_error[0] != '\0')
			snprintf(err, errlen, "certificate has no usable OCSP URL: %s", t->url_error);
		else
			snprintf(err, errlen, "certificate has no OCSP URL (authorityInfoAccess)");
		return STAPLE_NO_URL;
	}
	/* Policy first: a URL the operator did not allow is never contacted. */
	for (int i = 0; i < n; i++) {
		if (fetch_url_allowed(svc->cfg, urls[i], NULL, 0, why, sizeof(why)) == 0)
			usable++;
		else
			snprintf(err, errlen, "no OCSP URL may be fetched: %s", why);
	}
	if (usable == 0)
		return strstr(err, "allow") != NULL ? STAPLE_UNTRUSTED : STAPLE_NO_URL;
	return STAPLE_OK;
}

/* 1 when the certificate of key is known to exist: it has an entry under another CertID form
 * (another hash algorithm or parameters' encoding: it was submitted or imported, so a SHA-256
 * /ocsp miss for a SHA-1 entry is no stranger's), or it is an intermediate of the trust
 * bundle. */
static int
proven(struct staple_service *svc, const struct stapler_key *key)
{
	struct stapler_key other = *key;

	for (int alg = 0; alg < STAPLER_HASH_ALG_COUNT; alg++) {
		for (int params = STAPLER_PARAMS_NULL; params <= STAPLER_PARAMS_ABSENT; params++) {
			other.hash_alg = (unsigned char)alg;
			other.hash_params = (unsigned char)params;
			if (!stapler_key_equal(&other, key) && staple_service_get(svc, &other) != NULL)
				return 1;
		}
	}
	other.hash_alg = STAPLER_HASH_SHA1;
	other.hash_params = STAPLER_PARAMS_NULL;
	return table_get(&svc->anchors, &other, svc->seed) != NULL;
}

/* Refusals of what outsiders send (bad bodies, untrusted chains, excess fetches, a full cache)
 * are logged within a bound (log.h), so a flood of them cannot flood the log. */
static void
note_refused(struct staple_service *svc, const char *event, enum log_level level,
    const struct staple_target *t, int status, const char *err)
{
	unsigned long left_out;

	if (!log_limit_allow(&svc->refusals, (long long)time(NULL), &left_out))
		return;
	if (t != NULL)
		log_msg(level, event, "serial=%s issuer=%s status=%d suppressed=%lu error=\"%s\"",
		    t->serial_hex, t->key_hash_hex, status, left_out, err);
	else
		log_msg(level, event, "status=%d suppressed=%lu error=\"%s\"", status, left_out, err);
}

/* Whether a client may start a new fetch for t: within its address's rate (the admission
 * callback of staple_service_admit()), and, for a new entry, within the cache's bounds
 * (fetches in flight count, so a burst cannot overshoot them). */
static enum staple_outcome
admit_fetch(struct staple_service *svc, const struct staple_target *t, int anonymous,
    const struct staple *held, char *err, size_t errlen)
{
	const struct stapler_config *cfg = svc->cfg;

	if (svc->admit != NULL && svc->admit(svc->admit_ctx) < 0) {
		snprintf(err, errlen, "too many upstream fetches from this client address: retry later");
		return STAPLE_LIMITED;
	}
	if (anonymous || held != NULL)
		return STAPLE_OK;
	if (store_count(svc->store) + svc->pending.count >= (size_t)cfg->max_entries ||
	    store_bytes(svc->store) >= cfg->max_bytes) {
		snprintf(err, errlen, "cache full (%zu staples, %zu bytes; [cache] max_entries %ld, "
		    "max_bytes %zu): cached staples are still served", store_count(svc->store),
		    store_bytes(svc->store), cfg->max_entries, cfg->max_bytes);
		note_refused(svc, "cache_full", LOG_LVL_WARN, t, 503, err);
		return STAPLE_UNAVAILABLE;
	}
	return STAPLE_OK;
}

void
staple_service_log_refusal(struct staple_service *svc, const char *route, int status,
    const char *err)
{
	unsigned long left_out;

	if (log_limit_allow(&svc->refusals, (long long)time(NULL), &left_out))
		log_info("submission_refused", "route=%s status=%d suppressed=%lu error=\"%s\"", route,
		    status, left_out, err);
}

/* staple_ensure(); with refresh set, a servable staple does not stop a new fetch. */
static struct staple_wait *
ensure(struct staple_service *svc, struct staple_target *t, const unsigned char *digest,
    time_t now, int refresh, struct staple_answer *ans, staple_cb cb, void *arg)
{
	const struct staple *s;
	const struct backoff *bo;
	struct pending *p = NULL, *running;
	struct staple_wait *w;
	enum staple_outcome out;
	int unreadable;
	/* While the warm start loads, an entry not loaded yet is read by its key: answered
	 * from its row, and a refresh or a new answer is judged against it (a revocation held
	 * in the database is never replaced by an older or a good answer). */
	const struct staple *held = held_get(svc, &t->key, &unreadable);
	/* A miss for a certificate nobody proved exists (proven()): its answer is held apart, so
	 * that an outsider's request never becomes what a submission is served. */
	int anonymous = t->anonymous && !refresh && held == NULL && !proven(svc, &t->key);
	char err[512] = "";
	void *replaced;

	if (unreadable) {
		staple_target_free(&t);
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "the cache is loading and its row "
		    "cannot be read now");
	}

	if (!refresh && (s = held) != NULL && staple_servable(s, now)) {
		store_used(s, now);
		if (digest != NULL)
			store_seen_put(svc->store, digest, &t->key, t->not_after);
		staple_target_free(&t);
		return answer_now(ans, STAPLE_OK, s, NULL);
	}
	if (anonymous && (s = anon_map_get(svc->anon, &t->key, now)) != NULL) {
		staple_target_free(&t);
		return answer_now(ans, STAPLE_OK, s, NULL);
	}
	/* Anyone may join a fetch whose answer becomes the entry; only anonymous misses join an
	 * anonymous one. */
	if ((running = table_get(&svc->pending, &t->key, svc->seed)) != NULL ||
	    (anonymous && (running = table_get(&svc->anon_pending, &t->key, svc->seed)) != NULL)) {
		staple_target_free(&t);
		if ((w = wait_add(running, digest, cb, arg)) == NULL)
			return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "out of memory");
		w->refresh = refresh;
		return w;
	}
	/* Its last fetch got only answers within the margin: not again before its backoff. */
	if (!refresh && !anonymous && (bo = backoff_get(svc, &t->key, now)) != NULL) {
		snprintf(err, sizeof(err), "%.255s (backing off: next try in %lld s)", bo->error,
		    (long long)(bo->retry_at - now));
		staple_target_free(&t);
		return answer_now(ans, STAPLE_UPSTREAM_FAILED, NULL, err);
	}
	/* Stopping: what is in memory is still served, but nothing new reaches an upstream. */
	if (svc->draining) {
		staple_target_free(&t);
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "shutting down");
	}
	if ((out = target_check(svc, t, err, sizeof(err))) != STAPLE_OK) {
		note_refused(svc, "submission_refused", LOG_LVL_INFO, t, staple_outcome_http(out), err);
		staple_target_free(&t);
		return answer_now(ans, out, NULL, err);
	}
	if (!refresh && (out = admit_fetch(svc, t, anonymous, held, err, sizeof(err))) != STAPLE_OK) {
		note_refused(svc, "submission_refused", LOG_LVL_INFO, t, staple_outcome_http(out), err);
		staple_target_free(&t);
		return answer_now(ans, out, NULL, err);
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		staple_target_free(&t);
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "out of memory");
	}
	p->svc = svc;
	p->key = t->key;
	p->refresh = refresh;
	p->urgent = svc->urgent;
	p->anonymous = anonymous;
	p->t = t;
	t = NULL;
	TAILQ_INIT(&p->waiters);
	if (ocsp_request_build(p->t->id, &p->req, &p->req_len) < 0) {
		pending_free(p);
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "cannot build the OCSP request");
	}
	if (table_put(pending_table(svc, anonymous), p, svc->seed, &replaced) < 0 ||
	    (w = wait_add(p, digest, cb, arg)) == NULL) {
		table_remove(pending_table(svc, anonymous), &p->key, svc->seed);
		pending_free(p);
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "out of memory");
	}
	w->refresh = refresh;
	if (start_url(p) < 0) {
		/* Not one URL could start (queue full, refused): the answer is known now, so its
		 * waiter leaves unanswered and p ends with no one to call (a cached entry still
		 * gets its failure recorded). */
		TAILQ_REMOVE(&p->waiters, w, link);
		free(w);
		answer_now(ans, STAPLE_UPSTREAM_FAILED, NULL, p->last_error);
		pending_finish(p, STAPLE_UPSTREAM_FAILED, NULL, ans->error);
		return NULL;
	}
	return w;
}

struct staple_wait *
staple_ensure(struct staple_service *svc, struct staple_target *t, const unsigned char *digest,
    time_t now, struct staple_answer *ans, staple_cb cb, void *arg)
{
	return ensure(svc, t, digest, now, 0, ans, cb, arg);
}

/* The issuer of a cached row (a new reference) and whether it chains to the anchors at now:
 * the OCSP proxy's registry holds every issuer of a stored staple with a trust verdict that
 * holds until its chain expires, so a refresh costs no parse and, mostly, no chain check; an
 * issuer missing there (the registry was full) is read from the issuer table and checked.
 * NULL when neither has it. */
static X509 *
row_issuer(struct staple_service *svc, const struct cache_row *row, time_t now, int *trusted)
{
	struct stapler_key key;
	struct cache_issuer ci;
	const unsigned char *p;
	X509 *issuer = NULL;

	if (cache_row_key(row, &key) < 0)
		return NULL;
	if ((issuer = issuers_get(svc->issuers, &key, svc->trust, now, trusted)) != NULL)
		return X509_up_ref(issuer) ? issuer : NULL;
	if (cache_get_issuer(svc->cache, &key, &ci) == 1) {
		p = ci.cert_der;
		if (ci.cert_len <= LONG_MAX && (issuer = d2i_X509(NULL, &p, (long)ci.cert_len)) != NULL)
			*trusted = certs_trust_accepts(svc->trust, issuer, now, NULL);
	}
	cache_issuer_clear(&ci);
	return issuer;
}

/* The target of a cached row: its issuer, the CertID from the stored request, the URLs in
 * their order. Returns NULL (logged) when the row is unusable. */
static struct staple_target *
target_from_row(struct staple_service *svc, const struct cache_row *row, time_t now,
    int *trusted)
{
	struct staple_target *t = NULL;
	struct certs_urls urls = { 0 };
	struct stapler_key key;
	OCSP_CERTID *id = NULL;
	X509 *issuer;

	if ((issuer = row_issuer(svc, row, now, trusted)) == NULL) {
		log_error("refresh_skipped", "serial=%s issuer=%s reason=\"issuer certificate not cached\"",
		    row->serial, row->issuer_key_hash);
		return NULL;
	}
	if ((id = ocsp_request_certid(row->request_der, row->request_len)) == NULL) {
		log_error("refresh_skipped", "serial=%s issuer=%s reason=\"stored request does not parse\"",
		    row->serial, row->issuer_key_hash);
		goto out;
	}
	if (certs_urls_decode(row->ocsp_urls, &urls) < 0) {
		log_error("refresh_skipped", "serial=%s issuer=%s reason=\"stored URL list is "
		    "malformed (or out of memory)\"", row->serial, row->issuer_key_hash);
		goto out;
	}
	/* The stored request's CertID keeps the row's hash algorithm and parameters' encoding. */
	t = staple_target_from_certid(id, issuer, &urls, row->subject, (time_t)row->cert_not_after);
	if (t != NULL && (cache_row_key(row, &key) < 0 || !stapler_key_equal(&key, &t->key))) {
		log_error("refresh_skipped", "serial=%s issuer=%s reason=\"stored request is for "
		    "another CertID (serial %s, %s)\"", row->serial, row->issuer_key_hash,
		    t->serial_hex, stapler_hash_alg_name((enum stapler_hash_alg)t->key.hash_alg));
		staple_target_free(&t);
	}
out:
	certs_urls_free(&urls);
	OCSP_CERTID_free(id);
	X509_free(issuer);
	return t;
}

struct staple_wait *
staple_refresh_row(struct staple_service *svc, const struct cache_row *row, time_t now,
    struct staple_answer *ans, staple_cb cb, void *arg)
{
	static const char untrusted[] = "issuer no longer chains to the trust anchors";
	const struct staple *held;
	struct staple_target *t;
	int trusted = 0;

	if ((t = target_from_row(svc, row, now, &trusted)) == NULL)
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL,
		    "cached entry cannot be refreshed (see the log)");
	/* Only certificates that chain to the anchors in force make staplerd contact anything:
	 * an entry whose CA was removed is left alone (and purged once its certificate expired). */
	if (!trusted) {
		log_warn("refresh_skipped", "serial=%s issuer=%s reason=\"%s\"", row->serial,
		    row->issuer_key_hash, untrusted);
		write_failure(svc, &t->key, row->failures + 1, untrusted,
		    (long long)now + SCHED_BACKOFF_CAP);
		staple_target_free(&t);
		return answer_now(ans, STAPLE_UNTRUSTED, NULL, untrusted);
	}
	/* The upstream's validators describe the row's response: sent only while that is the
	 * staple held (a 304 then says the held staple is current). */
	held = store_get(svc->store, &t->key);
	if (held != NULL && held->der_len == row->response_len &&
	    memcmp(held->der, row->response_der, row->response_len) == 0) {
		if (row->upstream_etag != NULL)
			util_strlcpy(t->etag, row->upstream_etag, sizeof(t->etag));
		if (row->upstream_last_modified != NULL)
			util_strlcpy(t->last_modified, row->upstream_last_modified,
			    sizeof(t->last_modified));
	}
	return ensure(svc, t, NULL, now, 1, ans, cb, arg);
}

void
staple_service_set_crl(struct staple_service *svc, struct crl *crl,
    const struct staple_crl_ops *ops)
{
	svc->crl = ops != NULL && ops->check != NULL && ops->learn != NULL ? crl : NULL;
	if (svc->crl != NULL)
		svc->crl_ops = *ops;
}

struct crl *
staple_service_crl(const struct staple_service *svc)
{
	return svc->crl;
}

static void
on_refetched(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	(void)outcome;
	(void)s;
	(void)error;
	(void)arg;
}

int
staple_service_withdraw(struct staple_service *svc, const struct stapler_key *key)
{
	struct staple *held = (struct staple *)(uintptr_t)store_get(svc->store, key);
	char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];

	if (held == NULL || held->status == STAPLER_REVOKED)
		return -1;
	if (held->withdrawn)
		return 0;
	held->withdrawn = 1;
	withdrawn_note(svc, key);
	stapler_key_serial_hex(key, serial);
	stapler_key_hash_hex(key, hash);
	log_warn("staple_withdrawn", "serial=%s issuer=%s was=%s this_update=%lld reason=\"the "
	    "issuer's CRL lists it as revoked: not served until OCSP says revoked or answers from "
	    "after the CRL\"", serial, hash, stapler_status_name((enum stapler_cert_status)held->status),
	    (long long)held->this_update);
	return 1;
}

void
staple_service_refetch(struct staple_service *svc, const struct stapler_key *key, time_t now)
{
	const struct staple *held = store_get(svc->store, key);
	struct staple_answer ans;
	struct staple_target *t;
	struct cache_row row;
	int trusted = 0;

	if (held == NULL || !held->withdrawn)
		return;
	if (cache_get(svc->cache, key, &row) == 1 &&
	    (t = target_from_row(svc, &row, now, &trusted)) != NULL) {
		if (trusted) {
			svc->urgent = 1;
			(void)ensure(svc, t, NULL, now, 1, &ans, on_refetched, NULL);
			svc->urgent = 0;
		} else {
			staple_target_free(&t);
		}
	}
	cache_row_clear(&row);
}

void
staple_service_unwithdraw_unlisted(struct staple_service *svc, const unsigned char *name_hash,
    const unsigned char *key_hash, const struct crl_list *list)
{
	size_t i = 0;

	while (i < svc->withdrawn.cap) {
		struct withdrawn *w = svc->withdrawn.slot[i];
		struct staple *held;

		if (w == NULL || memcmp(w->key.name_hash, name_hash, STAPLER_SHA1_LEN) != 0 ||
		    memcmp(w->key.key_hash, key_hash, STAPLER_SHA1_LEN) != 0 ||
		    crl_listed(list, &w->key)) {
			i++;
			continue;
		}
		if ((held = (struct staple *)(uintptr_t)store_get(svc->store, &w->key)) != NULL &&
		    held->withdrawn) {
			char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];

			held->withdrawn = 0;
			stapler_key_serial_hex(&w->key, serial);
			stapler_key_hash_hex(&w->key, hash);
			log_info("staple_reinstated", "serial=%s issuer=%s reason=\"the issuer's newer "
			    "CRL no longer lists it\"", serial, hash);
		}
		/* The slot takes the next entry of its run: look at it again. */
		free(table_remove(&svc->withdrawn, &w->key, svc->seed));
	}
}

size_t
staple_service_withdrawn(const struct staple_service *svc)
{
	return svc->withdrawn.count;
}

int
staple_service_write_pending(const struct staple_service *svc, const struct stapler_key *key)
{
	return svc->persist != NULL && persist_has(svc->persist, key);
}

int
staple_service_is_pending(const struct staple_service *svc, const struct stapler_key *key)
{
	return table_get(&svc->pending, key, svc->seed) != NULL;
}

int
staple_service_evict(struct staple_service *svc, const struct stapler_key *key)
{
	char serial[STAPLER_SERIAL_HEX_MAX], issuer_key_hash[STAPLER_SHA1_HEX];
	struct pending *p;
	int rc;

	stapler_key_serial_hex(key, serial);
	stapler_key_hash_hex(key, issuer_key_hash);
	rc = svc->persist != NULL ? persist_delete(svc->persist, key) : cache_delete(svc->cache, key);
	if (rc < 0)
		return -1;
	if (store_remove(svc->store, key))
		rc = 1;
	/* A fetch that started before the eviction must not bring the entry back when it
	 * ends: it leaves the table (a request from now on starts a fetch of its own) and
	 * stores nothing; its waiters still get what it fetches. */
	if ((p = table_get(&svc->pending, key, svc->seed)) != NULL) {
		table_remove(&svc->pending, key, svc->seed);
		p->evicted = 1;
		rc = 1;
	}
	if ((p = table_get(&svc->anon_pending, key, svc->seed)) != NULL) {
		table_remove(&svc->anon_pending, key, svc->seed);
		p->evicted = 1;
	}
	(void)anon_map_remove(svc->anon, key);
	if (rc)
		log_info("evicted", "serial=%s issuer=%s hash=%s params=%s", serial, issuer_key_hash,
		    stapler_hash_alg_name((enum stapler_hash_alg)key->hash_alg),
		    stapler_hash_params_name((enum stapler_hash_params)key->hash_params));
	return rc;
}

/* Parses a body and checks its chain; returns STAPLE_OK with a new target, or the outcome. */
static enum staple_outcome
prepare(struct staple_service *svc, const unsigned char *body, size_t len, time_t now,
    struct staple_target **out_t, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = NULL;
	enum staple_outcome out = STAPLE_BAD_INPUT;
	X509 *issuer = NULL;
	time_t not_after;
	char why[256];

	*out_t = NULL;
	if ((certs = certs_parse(body, len, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	if (certs_verify_chain(svc->trust, certs, now, &issuer, &not_after, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "issuer not trusted: %s", why);
		out = STAPLE_UNTRUSTED;
		goto out;
	}
	if ((*out_t = staple_target_new(sk_X509_value(certs, 0), issuer, not_after,
	    svc->cfg->certid_hash, err, errlen)) == NULL)
		goto out;
	/* A trusted chain: its CRL Distribution Points may be followed. */
	if (svc->crl != NULL)
		svc->crl_ops.learn(svc->crl, sk_X509_value(certs, 0), issuer);
	out = STAPLE_OK;
out:
	X509_free(issuer);
	sk_X509_pop_free(certs, X509_free);
	return out;
}

struct staple_wait *
staple_submit(struct staple_service *svc, const unsigned char *body, size_t len, time_t now,
    struct staple_answer *ans, staple_cb cb, void *arg)
{
	unsigned char digest[STORE_DIGEST_LEN];
	const struct stapler_key *seen;
	const struct staple *s;
	struct staple_target *t;
	enum staple_outcome out;
	char err[512] = "";

	if (util_sha256(body, len, digest) < 0)
		return answer_now(ans, STAPLE_UNAVAILABLE, NULL, "digest failed");
	/* The hot path: a body seen before maps straight to its staple. */
	if ((seen = store_seen_get(svc->store, digest, now)) != NULL &&
	    (s = store_get(svc->store, seen)) != NULL && staple_servable(s, now)) {
		store_used(s, now);
		return answer_now(ans, STAPLE_OK, s, NULL);
	}
	if ((out = prepare(svc, body, len, now, &t, err, sizeof(err))) != STAPLE_OK) {
		note_refused(svc, "submission_refused", LOG_LVL_INFO, NULL, staple_outcome_http(out), err);
		return answer_now(ans, out, NULL, err);
	}
	return staple_ensure(svc, t, digest, now, ans, cb, arg);
}

void
staple_wait_cancel(struct staple_wait *w)
{
	struct pending *p;

	if (w == NULL)
		return;
	p = w->p;
	TAILQ_REMOVE(&p->waiters, w, link);
	free(w);
	/* A client fetch nobody waits for any more is dropped, so clients that left cannot keep
	 * upstream slots from those still waiting; a refresh runs on for the cache's sake. */
	if (!p->refresh && TAILQ_EMPTY(&p->waiters) && p->job != NULL) {
		log_debug("fetch_abandoned", "serial=%s issuer=%s", p->t->serial_hex, p->t->key_hash_hex);
		fetch_cancel(p->svc->fetch, p->job);
		p->job = NULL;
		/* An evicted fetch left the table already, and another may stand there now. */
		if (table_get(pending_table(p->svc, p->anonymous), &p->key, p->svc->seed) == p)
			table_remove(pending_table(p->svc, p->anonymous), &p->key, p->svc->seed);
		pending_free(p);
	}
}

/* fetch_cancel_if() match: every pending when *ctx is set, else those only refreshes wait for. */
static int
drop_match(void *arg, void *ctx)
{
	const struct pending *p = arg;
	const struct staple_wait *w;

	if (*(const int *)ctx)
		return 1;
	TAILQ_FOREACH(w, &p->waiters, link) {
		if (!w->refresh)
			return 0;
	}
	return 1;
}

size_t
staple_service_drop_pending(struct staple_service *svc, int waited_too)
{
	/* Each cancelled fetch ends in on_fetched(FETCH_CANCELLED): its waiters get
	 * STAPLE_UNAVAILABLE and the entry keeps its row, its response and its lease. */
	return fetch_cancel_if(svc->fetch, on_fetched, drop_match, &waited_too);
}
