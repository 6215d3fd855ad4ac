/* The OCSP responder's service decisions, without HTTP: which CertID staplerd answers for,
 * from memory or through a fetch, and that a miss from anyone but the operator's own hosts is
 * anonymous (docs/design.md "Anonymous /ocsp misses cannot poison the cache"). The HTTP routes
 * of /ocsp and OCPP (http_ocsp.c, http_ocpp.c) only decode and reply. */
#include <string.h>

#include "staple.h"
#include "certs.h"
#include "config.h"
#include "issuers.h"
#include "log.h"
#include "ocsp.h"
#include "store.h"
#include "util.h"

const struct staple *
staple_ocsp_hit(struct staple_service *svc, const unsigned char *der, size_t len, time_t now)
{
	struct ocsp_certid_view v;
	struct stapler_key key;
	const struct staple *s;
	int trusted = 0;

	memset(&key, 0, sizeof(key));
	if (ocsp_request_read(der, len, &v) < 0 ||
	    issuers_key(staple_service_issuers(svc), v.alg, v.name_hash, v.key_hash, &key) < 0)
		return NULL;
	key.hash_params = (unsigned char)v.params;
	key.serial_len = (unsigned char)v.serial_len;
	memcpy(key.serial, v.serial, v.serial_len);
	if ((s = staple_service_get(svc, &key)) == NULL || !staple_servable(s, now))
		return NULL;
	if (issuers_get(staple_service_issuers(svc), &key, staple_service_trust(svc), now,
	    &trusted) == NULL || !trusted)
		return NULL;
	store_used(s, now);
	return s;
}

/* A refusal known now, with its stable token. */
static struct staple_wait *
refuse(struct staple_answer *ans, enum staple_outcome outcome, const char *token)
{
	ans->outcome = outcome;
	ans->staple = NULL;
	util_strlcpy(ans->error, token, sizeof(ans->error));
	return NULL;
}

/* A hit known now. */
static struct staple_wait *
hit(struct staple_answer *ans, const struct staple *s)
{
	ans->outcome = STAPLE_OK;
	ans->staple = s;
	ans->error[0] = '\0';
	return NULL;
}

struct staple_wait *
staple_ocsp(struct staple_service *svc, OCSP_CERTID *id, int trusted, time_t now,
    struct staple_answer *ans, staple_cb cb, void *arg)
{
	const struct certs_urls *urls;
	const struct staple *s;
	struct staple_target *t;
	struct staple_wait *w = NULL;
	struct stapler_key key;
	enum issuers_miss miss;
	time_t not_after;
	char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];
	X509 *issuer;

	/* The key is the client's whole CertID as encoded: a SHA-256 request is answered from
	 * (or fetched into) a SHA-256 entry, one with absent parameters from an entry fetched
	 * with absent parameters, since the response must echo the CertID asked for. */
	issuer = issuers_resolve(staple_service_issuers(svc), staple_service_trust(svc), now, id,
	    &key, &urls, &miss);
	if (issuer == NULL) {
		log_debug("ocsp_refused", "status=unauthorized reason=%s", issuers_miss_name(miss));
		w = refuse(ans, STAPLE_UNTRUSTED, miss == ISSUERS_HASH_ALG ? "hash_algorithm" :
		    miss == ISSUERS_BAD_SERIAL ? "serial_too_long" : "unknown_issuer");
		goto out;
	}
	if ((s = staple_service_get(svc, &key)) != NULL && staple_servable(s, now)) {
		store_used(s, now);
		w = hit(ans, s);
		goto out;
	}
	/* Answered already for another anonymous client: a hit, not counted against a rate. */
	if (s == NULL && (s = staple_service_anonymous(svc, &key, now)) != NULL) {
		w = hit(ans, s);
		goto out;
	}
	if (urls->n == 0 && config_responder_find(staple_service_config(svc), key.key_hash) == NULL) {
		stapler_key_serial_hex(&key, serial);
		stapler_key_hash_hex(&key, hash);
		log_debug("ocsp_refused", "status=unauthorized reason=no_upstream serial=%s issuer=%s",
		    serial, hash);
		w = refuse(ans, STAPLE_NO_URL, "no_upstream");
		goto out;
	}
	/* The certificate itself is unknown here: the issuer's validity bounds the target's. */
	if (certs_not_after(issuer, &not_after) < 0)
		not_after = now;
	if ((t = staple_target_from_certid(id, issuer, urls, "", not_after)) == NULL) {
		w = refuse(ans, STAPLE_UNAVAILABLE, "out_of_memory");
		goto out;
	}
	/* Nobody proved that the certificate exists: its answer is held apart, never stored.
	 * An edge staplerd of the operator's (trusted) asks for certificates it verified itself:
	 * its misses are stored and refreshed here like submissions, so N edges cost the
	 * upstream one fetch per certificate. */
	t->anonymous = !trusted;
	w = staple_ensure(svc, t, NULL, now, ans, cb, arg);
out:
	OCSP_CERTID_free(id);
	return w;
}
