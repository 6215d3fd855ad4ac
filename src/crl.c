/* CRLs: parsed and verified with OpenSSL (pure, time injected), polled per issuer through the
 * fetcher with conditional requests, kept in SQLite with the withdrawal events they cause, and
 * applied to the staples held by their serials (the work grows with the CRL, not the fleet). */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "cache.h"
#include "certs.h"
#include "config.h"
#include "crl.h"
#include "crl_list.h"
#include "events.h"
#include "fetch.h"
#include "fmt.h"
#include "log.h"
#include "metrics.h"
#include "staple.h"
#include "store.h"
#include "util.h"

struct crl_issuer {
	unsigned char name_hash[STAPLER_SHA1_LEN], key_hash[STAPLER_SHA1_LEN];
	char name_hex[STAPLER_SHA1_HEX], key_hex[STAPLER_SHA1_HEX];
	X509 *issuer;
	char url[CRL_URL_MAX];
	struct crl_list list;          /* the CRL in force (n = 0, this_update 0: none yet) */
	unsigned char *der;            /* its bytes, until saved */
	size_t der_len;
	int saved;                     /* its row is in the database */
	char etag[FETCH_VALIDATOR_MAX], last_modified[FETCH_VALIDATOR_MAX];
	time_t next_poll;
	struct fetch_job *job;
	struct crl *c;
};

struct crl {
	const struct stapler_config *cfg;
	struct cache *cache;
	struct fetcher *fetch;
	struct staple_service *svc;
	struct events *hub;
	struct event *timer;
	size_t n;
	struct crl_issuer *issuers[CRL_ISSUERS_MAX];
	int full_logged;
	struct event *kick;            /* starts queued refetches (on_refetch()) */
	struct stapler_key *refetch;
	size_t n_refetch, done_refetch, cap_refetch;
	unsigned long long fetched, not_modified, rejected, failed, withdrawals;
};

static struct crl_issuer *
issuer_find(const struct crl *c, const unsigned char *name_hash, const unsigned char *key_hash)
{
	for (size_t i = 0; i < c->n; i++) {
		if (memcmp(c->issuers[i]->name_hash, name_hash, STAPLER_SHA1_LEN) == 0 &&
		    memcmp(c->issuers[i]->key_hash, key_hash, STAPLER_SHA1_LEN) == 0)
			return c->issuers[i];
	}
	return NULL;
}

static struct crl_issuer *
issuer_add(struct crl *c, X509 *issuer, const unsigned char *name_hash,
    const unsigned char *key_hash, const char *url)
{
	struct crl_issuer *ci;

	if (c->n == CRL_ISSUERS_MAX) {
		if (!c->full_logged)
			log_warn("crl_issuers_full", "max=%d reason=\"more issuers than CRLs followed: "
			    "the others rely on OCSP alone\"", CRL_ISSUERS_MAX);
		c->full_logged = 1;
		return NULL;
	}
	if ((ci = calloc(1, sizeof(*ci))) == NULL || !X509_up_ref(issuer)) {
		free(ci);
		return NULL;
	}
	ci->c = c;
	ci->issuer = issuer;
	memcpy(ci->name_hash, name_hash, STAPLER_SHA1_LEN);
	memcpy(ci->key_hash, key_hash, STAPLER_SHA1_LEN);
	util_hex(name_hash, STAPLER_SHA1_LEN, ci->name_hex);
	util_hex(key_hash, STAPLER_SHA1_LEN, ci->key_hex);
	util_strlcpy(ci->url, url, sizeof(ci->url));
	ci->saved = 1;
	c->issuers[c->n++] = ci;
	return ci;
}

/* The first http or https URI of cert's CRL Distribution Points that the URL rules allow. */
static int
cdp_url(const struct stapler_config *cfg, X509 *cert, char *out, size_t cap)
{
	STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
	int found = 0;

	for (int i = 0; dps != NULL && !found && i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);

		if (dp->distpoint == NULL || dp->distpoint->type != 0 || dp->CRLissuer != NULL)
			continue;
		for (int j = 0; !found && j < sk_GENERAL_NAME_num(dp->distpoint->name.fullname); j++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, j);
			const ASN1_IA5STRING *uri;
			char err[256];

			if (gn->type != GEN_URI)
				continue;
			uri = gn->d.uniformResourceIdentifier;
			if (uri->length <= 0 || (size_t)uri->length >= cap ||
			    memchr(uri->data, '\0', (size_t)uri->length) != NULL)
				continue;
			memcpy(out, uri->data, (size_t)uri->length);
			out[uri->length] = '\0';
			found = fetch_url_allowed(cfg, out, NULL, 0, err, sizeof(err)) == 0;
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return found;
}

/* Queues a withdrawn staple's refetch: started CRL_REFETCH_BATCH per loop turn, so a mass
 * revocation withdraws everything at once but never holds the loop for its fetches. */
static void
refetch_add(struct crl *c, const struct stapler_key *key)
{
	if (c->n_refetch == c->cap_refetch) {
		size_t cap = c->cap_refetch ? c->cap_refetch * 2 : 64;
		struct stapler_key *k = realloc(c->refetch, cap * sizeof(*k));

		if (k == NULL)
			return;   /* the entry stays withdrawn; its scheduled refresh fetches it */
		c->refetch = k;
		c->cap_refetch = cap;
	}
	c->refetch[c->n_refetch++] = *key;
	event_active(c->kick, EV_TIMEOUT, 0);
}

static void
on_refetch(evutil_socket_t fd, short what, void *arg)
{
	struct crl *c = arg;
	time_t now = time(NULL);
	size_t n = c->n_refetch - c->done_refetch;

	if (n > CRL_REFETCH_BATCH)
		n = CRL_REFETCH_BATCH;
	for (size_t i = 0; i < n; i++)
		staple_service_refetch(c->svc, &c->refetch[c->done_refetch++], now);
	if (c->done_refetch < c->n_refetch) {
		event_active(c->kick, EV_TIMEOUT, 0);
		return;
	}
	c->n_refetch = c->done_refetch = 0;
}

/* Withdraws, or notes as disagreeing, every staple held that ci's CRL lists; lifts the
 * withdrawals it no longer supports. The events go into *evs (grown as needed, the caller
 * frees the array) to ride in the CRL's write; returns their count. */
static size_t
apply(struct crl *c, struct crl_issuer *ci, time_t now, struct event_rec ***evs)
{
	size_t nev = 0, cap = 0;
	char serial[STAPLER_SERIAL_HEX_MAX], url[6 * CRL_URL_MAX + 1];

	fmt_json_escape(url, 0, sizeof(url), ci->url);
	for (size_t i = 0; i < ci->list.n; i++) {
		const struct crl_serial *s = &ci->list.serials[i];

		/* Every CertID form a staple of the serial may be held under. */
		for (int form = 0; form < STAPLER_HASH_ALG_COUNT * 2; form++) {
			struct stapler_key key;
			const struct staple *held;
			enum crl_verdict v;
			struct event_rec *ev;
			char fields[sizeof(url) + 256];

			memset(&key, 0, sizeof(key));
			key.hash_alg = (unsigned char)(form / 2);
			key.hash_params = (unsigned char)(form % 2 == 0 ? STAPLER_PARAMS_NULL :
			    STAPLER_PARAMS_ABSENT);
			memcpy(key.name_hash, ci->name_hash, STAPLER_SHA1_LEN);
			memcpy(key.key_hash, ci->key_hash, STAPLER_SHA1_LEN);
			key.serial_len = s->len;
			key.serial_negative = s->negative;
			memcpy(key.serial, s->b, s->len);
			if ((held = store_get(staple_service_store(c->svc), &key)) == NULL)
				continue;
			v = crl_decide(1, (enum stapler_cert_status)held->status, held->this_update,
			    ci->list.this_update);
			if (v == CRL_KEEP)
				continue;
			stapler_key_serial_hex(&key, serial);
			snprintf(fields, sizeof(fields), "\"was\":\"%s\",\"staple_this_update\":%lld,"
			    "\"crl_this_update\":%lld,\"crl_url\":\"%s\"",
			    stapler_status_name((enum stapler_cert_status)held->status),
			    (long long)held->this_update, (long long)ci->list.this_update, url);
			if (v == CRL_WITHDRAW) {
				/* Told once per withdrawal, not at every CRL that still lists it. */
				if (staple_service_withdraw(c->svc, &key) != 1)
					continue;
				c->withdrawals++;
				refetch_add(c, &key);
				ev = outbox_rec_cert(EV_CERT_WITHDRAWN, &key, ci->list.this_update,
				    (long long)now, fields);
			} else {
				ev = outbox_rec_cert(EV_CRL_OCSP_DISAGREE, &key, ci->list.this_update,
				    (long long)now, fields);
			}
			if (ev != NULL && (c->hub == NULL || !events_admit(c->hub, ev)))
				outbox_rec_free(&ev);
			if (ev != NULL && nev == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct event_rec **grown = realloc(*evs, ncap * sizeof(*grown));

				if (grown == NULL) {
					events_write(c->hub, ev);   /* on its own, then */
					continue;
				}
				*evs = grown;
				cap = ncap;
			}
			if (ev != NULL)
				(*evs)[nev++] = ev;
		}
	}
	staple_service_unwithdraw_unlisted(c->svc, ci->name_hash, ci->key_hash, &ci->list);
	return nev;
}

struct crl_write {
	struct crl_issuer *ci;     /* its row is written, unless NULL (the events only) */
	struct event_rec **evs;
	size_t n;
};

static int
write_crl(struct sqlite3 *db, void *arg)
{
	const struct crl_write *w = arg;
	const struct crl_issuer *ci = w->ci;
	sqlite3_stmt *st;
	int rc;

	if (ci == NULL)
		goto events;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO crl (issuer_name_hash, issuer_key_hash, "
	    "url, this_update, next_update, etag, last_modified, fetched_at, crl_der) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, ci->name_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ci->key_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ci->url, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, ci->list.this_update);
	sqlite3_bind_int64(st, 5, ci->list.next_update);
	sqlite3_bind_text(st, 6, ci->etag[0] != '\0' ? ci->etag : NULL, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, ci->last_modified[0] != '\0' ? ci->last_modified : NULL, -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (long long)time(NULL));
	sqlite3_bind_blob64(st, 9, ci->der, ci->der_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
events:
	for (size_t i = 0; i < w->n; i++) {
		if (outbox_insert(db, w->evs[i]) < 0)
			return -1;
	}
	return 0;
}

/* Saves ci's CRL with the events it caused, in one transaction. When the database refuses
 * it now, the events go through the write-behind queue on their own (a withdrawal is never
 * dropped) and the CRL row is tried again at the next tick. Takes evs over. */
static void
save(struct crl *c, struct crl_issuer *ci, struct event_rec **evs, size_t n)
{
	struct crl_write w = { ci, evs, n };

	if (ci->der != NULL && cache_tx(c->cache, write_crl, &w) == 0) {
		ci->saved = 1;
		free(ci->der);
		ci->der = NULL;
		ci->der_len = 0;
		if (n > 0) {
			events_written(c->hub, n);
			events_kick(c->hub);
		}
		for (size_t i = 0; i < n; i++)
			outbox_rec_free(&evs[i]);
		return;
	}
	ci->saved = ci->der == NULL;
	for (size_t i = 0; i < n; i++)
		events_write(c->hub, evs[i]);
}

/* A newer CRL for ci, verified: in force from now. Takes list over. */
static void
take(struct crl *c, struct crl_issuer *ci, struct crl_list *list, const unsigned char *der,
    size_t len, time_t now)
{
	struct event_rec **evs = NULL;
	size_t n;

	crl_list_clear(&ci->list);
	ci->list = *list;
	memset(list, 0, sizeof(*list));
	free(ci->der);
	ci->der = NULL;
	ci->der_len = 0;
	if (der != NULL && (ci->der = malloc(len)) != NULL) {
		memcpy(ci->der, der, len);
		ci->der_len = len;
	}
	n = apply(c, ci, now, &evs);
	log_info("crl_applied", "issuer=%s url=\"%s\" this_update=%lld next_update=%lld "
	    "revoked=%zu withdrawn=%zu", ci->key_hex, ci->url, (long long)ci->list.this_update,
	    (long long)ci->list.next_update, ci->list.n, staple_service_withdrawn(c->svc));
	if (der != NULL) {
		save(c, ci, evs, n);
	} else {
		/* Applied again at a start: its events are in the outbox already, unless the last
		 * run stopped before they landed; one transaction either way. */
		struct crl_write w = { NULL, evs, n };

		if (n > 0 && cache_tx(c->cache, write_crl, &w) == 0) {
			events_kick(c->hub);
			for (size_t i = 0; i < n; i++)
				outbox_rec_free(&evs[i]);
		} else {
			for (size_t i = 0; i < n; i++)
				events_write(c->hub, evs[i]);
		}
	}
	free(evs);
}

/* When to ask again: the poll interval, not before the server's caching headers allow, and
 * at once when the CRL held reaches its nextUpdate. */
static time_t
next_poll_at(const struct crl *c, const struct crl_issuer *ci, time_t now, long long max_age)
{
	long long wait = c->cfg->crl_poll_interval;
	time_t t;

	if (max_age > wait)
		wait = max_age;
	t = now + (time_t)wait;
	if (ci->list.next_update > now && ci->list.next_update < t)
		t = ci->list.next_update;
	return t;
}

static void
on_fetched(const struct fetch_result *res, void *arg)
{
	struct crl_issuer *ci = arg;
	struct crl *c = ci->c;
	time_t now = time(NULL);
	struct crl_list list;
	char why[256];

	ci->job = NULL;
	if (res->status == FETCH_CANCELLED)
		return;
	ci->next_poll = now + (time_t)c->cfg->crl_poll_interval;
	if (res->status == FETCH_NOT_MODIFIED) {
		c->not_modified++;
		ci->next_poll = next_poll_at(c, ci, now, res->max_age);
		return;
	}
	if (res->status == FETCH_TOO_BIG) {
		c->rejected++;
		log_warn("crl_rejected", "issuer=%s url=\"%s\" reason=\"larger than [crl] max_size "
		    "(%zu bytes)\" action=\"ignored: the staples held are unchanged\"", ci->key_hex,
		    ci->url, c->cfg->crl_max_size);
		return;
	}
	if (res->status != FETCH_OK) {
		c->failed++;
		log_warn("crl_fetch_failed", "issuer=%s url=\"%s\" error=\"%s\" next_try=%lld",
		    ci->key_hex, ci->url, res->error != NULL ? res->error : "",
		    (long long)ci->next_poll);
		return;
	}
	c->fetched++;
	if (crl_parse_verify(res->body, res->len, c->cfg->crl_max_size, ci->issuer, now, &list, why,
	    sizeof(why)) < 0) {
		c->rejected++;
		log_warn("crl_rejected", "issuer=%s url=\"%s\" reason=\"%s\" action=\"ignored: the "
		    "staples held are unchanged\"", ci->key_hex, ci->url, why);
		return;
	}
	if (res->etag != NULL)
		util_strlcpy(ci->etag, res->etag, sizeof(ci->etag));
	if (res->last_modified != NULL)
		util_strlcpy(ci->last_modified, res->last_modified, sizeof(ci->last_modified));
	if (list.this_update <= ci->list.this_update) {
		/* The one held, or older (a lagging mirror): nothing new. */
		crl_list_clear(&list);
		ci->next_poll = next_poll_at(c, ci, now, res->max_age);
		return;
	}
	take(c, ci, &list, res->body, res->len, now);
	ci->next_poll = next_poll_at(c, ci, now, res->max_age);
}

static void
poll_one(struct crl *c, struct crl_issuer *ci, time_t now)
{
	struct fetch_raw opt = { 0 };
	char err[256];

	const char *forced = config_crl_url_find(c->cfg, ci->key_hash);

	/* [crl] urls wins over the certificates' CRL Distribution Points (read at each poll, so
	 * a reload applies). */
	if (forced != NULL && strcmp(forced, ci->url) != 0) {
		util_strlcpy(ci->url, forced, sizeof(ci->url));
		ci->etag[0] = ci->last_modified[0] = '\0';
	}
	if (ci->job != NULL || now < ci->next_poll || ci->url[0] == '\0')
		return;
	ci->next_poll = now + (time_t)c->cfg->crl_poll_interval;
	/* Only the CRLs of issuers the anchors in force trust are asked for. */
	if (!certs_trust_accepts(staple_service_trust(c->svc), ci->issuer, now, NULL)) {
		log_warn("crl_skipped", "issuer=%s url=\"%s\" reason=\"the issuer no longer chains to "
		    "the trust anchors\"", ci->key_hex, ci->url);
		return;
	}
	opt.max_body = c->cfg->crl_max_size;
	opt.timeout = c->cfg->crl_timeout;
	opt.policy = 1;
	opt.etag = ci->etag[0] != '\0' && ci->list.n + ci->list.this_update > 0 ? ci->etag : NULL;
	opt.last_modified = ci->last_modified[0] != '\0' && ci->list.this_update > 0 ?
	    ci->last_modified : NULL;
	if (fetch_start_raw(c->fetch, ci->url, &opt, on_fetched, ci, &ci->job, err,
	    sizeof(err)) < 0) {
		c->failed++;
		log_warn("crl_fetch_failed", "issuer=%s url=\"%s\" error=\"%s\"", ci->key_hex, ci->url,
		    err);
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct crl *c = arg;
	time_t now = time(NULL);

	if (c->cfg->crl_poll_interval <= 0)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (!c->issuers[i]->saved)
			save(c, c->issuers[i], NULL, 0);
		poll_one(c, c->issuers[i], now);
	}
}

void
crl_learn(struct crl *c, X509 *subject, X509 *issuer)
{
	unsigned char nh[STAPLER_SHA1_LEN], kh[STAPLER_SHA1_LEN];
	char url[CRL_URL_MAX];
	struct crl_issuer *ci;

	if (c == NULL || c->cfg->crl_poll_interval <= 0 ||
	    certs_issuer_hashes(issuer, nh, kh) < 0)
		return;
	if ((ci = issuer_find(c, nh, kh)) != NULL && ci->url[0] != '\0')
		return;
	if (config_crl_url_find(c->cfg, kh) != NULL)
		util_strlcpy(url, config_crl_url_find(c->cfg, kh), sizeof(url));
	else if (!cdp_url(c->cfg, subject, url, sizeof(url)))
		return;
	if (ci != NULL) {
		util_strlcpy(ci->url, url, sizeof(ci->url));
		return;
	}
	if ((ci = issuer_add(c, issuer, nh, kh, url)) == NULL)
		return;
	ci->next_poll = 0;
	log_info("crl_followed", "issuer=%s url=\"%s\"", ci->key_hex, ci->url);
	event_active(c->timer, EV_TIMEOUT, 0);
}

int
crl_check(const struct crl *c, const struct stapler_key *key, time_t *crl_this_update)
{
	const struct crl_issuer *ci;

	if (c == NULL || (ci = issuer_find(c, key->name_hash, key->key_hash)) == NULL ||
	    !crl_listed(&ci->list, key))
		return 0;
	*crl_this_update = ci->list.this_update;
	return 1;
}

/* The CRLs the database holds: verified again against their issuer (its certificate from the
 * issuer table) and put in force, so a restart withdraws at once what they list. */
static void
load(struct crl *c, time_t now)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(cache_db(c->cache), "SELECT c.issuer_name_hash, c.issuer_key_hash, "
	    "c.url, c.etag, c.last_modified, c.crl_der, i.cert_der FROM crl c JOIN issuer i ON "
	    "i.name_hash = c.issuer_name_hash AND i.key_hash = c.issuer_key_hash", -1, &st,
	    NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *crl = sqlite3_column_blob(st, 5), *cert = sqlite3_column_blob(st, 6);
		const char *url = (const char *)sqlite3_column_text(st, 2);
		const char *etag = (const char *)sqlite3_column_text(st, 3);
		const char *lm = (const char *)sqlite3_column_text(st, 4);
		size_t crl_len = (size_t)sqlite3_column_bytes(st, 5);
		unsigned char nh[STAPLER_SHA1_LEN], kh[STAPLER_SHA1_LEN];
		const unsigned char *p = cert;
		struct crl_issuer *ci;
		struct crl_list list;
		X509 *issuer;
		char why[256];

		if (cert == NULL || crl == NULL || url == NULL ||
		    (issuer = d2i_X509(NULL, &p, sqlite3_column_bytes(st, 6))) == NULL)
			continue;
		if (certs_issuer_hashes(issuer, nh, kh) < 0 || issuer_find(c, nh, kh) != NULL ||
		    (ci = issuer_add(c, issuer, nh, kh, url)) == NULL) {
			X509_free(issuer);
			continue;
		}
		X509_free(issuer);
		if (etag != NULL)
			util_strlcpy(ci->etag, etag, sizeof(ci->etag));
		if (lm != NULL)
			util_strlcpy(ci->last_modified, lm, sizeof(ci->last_modified));
		ci->next_poll = 0;
		/* Expired while staplerd was down: not applied, fetched again at once. */
		if (crl_parse_verify(crl, crl_len, SIZE_MAX, ci->issuer, now, &list, why,
		    sizeof(why)) < 0) {
			log_info("crl_not_loaded", "issuer=%s reason=\"%s\"", ci->key_hex, why);
			ci->etag[0] = ci->last_modified[0] = '\0';
			continue;
		}
		take(c, ci, &list, NULL, 0, now);
	}
	sqlite3_finalize(st);
}

/* The issuers of [crl] urls that the database knows (their certificate is in the issuer
 * table) and whose CRL is not held yet: followed from the start. */
static void
load_configured(struct crl *c)
{
	sqlite3_stmt *st;

	if (c->cfg->n_crl_urls == 0 || sqlite3_prepare_v2(cache_db(c->cache), "SELECT cert_der "
	    "FROM issuer WHERE key_hash = ?1", -1, &st, NULL) != SQLITE_OK)
		return;
	for (size_t i = 0; i < c->cfg->n_crl_urls; i++) {
		char hex[STAPLER_SHA1_HEX];

		util_hex(c->cfg->crl_urls[i].key_hash, STAPLER_SHA1_LEN, hex);
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const unsigned char *p = sqlite3_column_blob(st, 0);
			unsigned char nh[STAPLER_SHA1_LEN], kh[STAPLER_SHA1_LEN];
			X509 *issuer;

			if (p == NULL || (issuer = d2i_X509(NULL, &p, sqlite3_column_bytes(st, 0))) == NULL)
				continue;
			if (certs_issuer_hashes(issuer, nh, kh) == 0 && issuer_find(c, nh, kh) == NULL &&
			    issuer_add(c, issuer, nh, kh, c->cfg->crl_urls[i].url) != NULL)
				log_info("crl_followed", "issuer=%s url=\"%s\" from=config", hex,
				    c->cfg->crl_urls[i].url);
			X509_free(issuer);
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
}

struct crl *
crl_new(struct event_base *base, const struct stapler_config *cfg, struct cache *cache,
    struct fetcher *fetch, struct staple_service *svc, struct events *hub)
{
	struct crl *c = calloc(1, sizeof(*c));
	struct timeval tv = { CRL_TICK_S, 0 };

	if (c == NULL)
		return NULL;
	c->cfg = cfg;
	c->cache = cache;
	c->fetch = fetch;
	c->svc = svc;
	c->hub = hub;
	if ((c->timer = event_new(base, -1, EV_PERSIST, on_tick, c)) == NULL ||
	    (c->kick = event_new(base, -1, 0, on_refetch, c)) == NULL ||
	    event_add(c->timer, &tv) < 0) {
		crl_free(&c);
		return NULL;
	}
	if (cfg->crl_poll_interval > 0) {
		load(c, time(NULL));
		load_configured(c);
	}
	return c;
}

void
crl_free(struct crl **cp)
{
	struct crl *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct crl_issuer *ci = c->issuers[i];

		if (ci->job != NULL)
			fetch_cancel(c->fetch, ci->job);
		crl_list_clear(&ci->list);
		X509_free(ci->issuer);
		free(ci->der);
		free(ci);
	}
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->kick != NULL)
		event_free(c->kick);
	free(c->refetch);
	free(c);
	*cp = NULL;
}

void
crl_set_config(struct crl *c, const struct stapler_config *cfg)
{
	if (c != NULL)
		c->cfg = cfg;
}

void
crl_stats(const struct crl *c, struct crl_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c == NULL)
		return;
	out->issuers = c->n;
	out->withdrawn = staple_service_withdrawn(c->svc);
	out->fetched = c->fetched;
	out->not_modified = c->not_modified;
	out->rejected = c->rejected;
	out->failed = c->failed;
	out->withdrawals = c->withdrawals;
}

void
crl_metrics_write(const struct crl *c, FILE *fp)
{
	struct crl_stats st;
	static const char *const names[] = { "ok", "not_modified", "rejected", "failed" };

	if (c == NULL)
		return;
	crl_stats(c, &st);
	metrics_single(fp, "staplerd_staples_withdrawn", "gauge", "Staples withdrawn because their "
	    "issuer's CRL lists them while OCSP said good or unknown: not served until OCSP says "
	    "revoked or answers from after the CRL.",
	    (double)st.withdrawn);
	metrics_single(fp, "staplerd_crl_withdrawals_total", "counter", "Staples withdrawn by a "
	    "CRL, since the start.",
	    (double)st.withdrawals);
	metrics_single(fp, "staplerd_crl_issuers", "gauge", "Issuers whose CRL is followed.",
	    (double)st.issuers);
	metrics_family(fp, "staplerd_crl_fetches_total", "counter", "CRL downloads by outcome "
	    "(rejected: failed verification, ignored).");
	{
		const unsigned long long v[] = { st.fetched - st.rejected, st.not_modified, st.rejected,
		    st.failed };

		for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++) {
			const char *const labels[] = { "outcome", names[i], NULL };

			metrics_sample(fp, "staplerd_crl_fetches_total", labels, (double)v[i]);
		}
	}
}
