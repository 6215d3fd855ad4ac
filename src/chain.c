/* Chain staples: the verified chain pairs each certificate with its issuer; every certificate
 * with a URL to ask becomes a staple_target, and all of them go through staple_ensure() at
 * once (memory hit, joined fetch or new fetch); the answer waits for the last one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "certs.h"
#include "log.h"
#include "util.h"

struct chain_part {
	struct chain_wait *cw;
	struct staple_wait *wait;   /* while its staple is fetched; NULL once it is answered */
	int owned;                  /* st.der is the part's own copy (malloc) */
	struct chain_staple st;     /* its outcome, and its staple or error */
};

struct chain_wait {
	chain_cb cb;
	void *arg;
	int n, left;
	struct chain_part part[CERTS_MAX_CHAIN];
};

static void
chain_free(struct chain_wait *cw)
{
	for (int i = 0; i < cw->n; i++) {
		if (cw->part[i].owned)
			free((void *)(uintptr_t)cw->part[i].st.der);
	}
	free(cw);
}

/* Records a part's answer; on STAPLE_OK its staple is borrowed (part_own() copies it). */
static void
part_set(struct chain_part *part, enum staple_outcome outcome, const struct staple *s,
    const char *error)
{
	part->st.outcome = outcome;
	if (outcome == STAPLE_OK) {
		part->st.der = s->der;
		part->st.der_len = s->der_len;
		part->st.status = s->status;
		part->st.this_update = s->this_update;
		part->st.next_update = s->next_update;
	} else {
		snprintf(part->st.error, sizeof(part->st.error), "%s: %.400s", part->st.serial,
		    error != NULL && error[0] != '\0' ? error : "failed");
	}
}

/* Makes a part's staple its own, for a chain that still waits for another part: the
 * service's may be replaced before then. */
static void
part_own(struct chain_part *part)
{
	unsigned char *der;

	if (part->wait != NULL || part->st.outcome != STAPLE_OK || part->owned)
		return;
	if ((der = malloc(part->st.der_len)) == NULL) {
		part->st.outcome = STAPLE_UNAVAILABLE;
		snprintf(part->st.error, sizeof(part->st.error), "%s: out of memory", part->st.serial);
		part->st.der = NULL;
		return;
	}
	memcpy(der, part->st.der, part->st.der_len);
	part->st.der = der;
	part->owned = 1;
}

/* The chain's answer from its parts: every entry when one staple at least could be had (a
 * failing intermediate responder does not withhold the leaf's staple, and its entry says
 * why), else the first failure in chain order. */
static void
chain_answer_of(const struct chain_wait *cw, struct chain_answer *ans)
{
	int any_ok = 0, first_failed = -1;

	ans->n = 0;
	ans->error[0] = '\0';
	ans->outcome = STAPLE_OK;
	for (int i = 0; i < cw->n; i++) {
		ans->staples[ans->n++] = cw->part[i].st;
		if (cw->part[i].st.outcome == STAPLE_OK)
			any_ok = 1;
		else if (first_failed < 0)
			first_failed = i;
	}
	if (!any_ok && first_failed >= 0) {
		/* Not one staple: the first certificate's failure is the answer. */
		ans->outcome = cw->part[first_failed].st.outcome;
		util_strlcpy(ans->error, cw->part[first_failed].st.error, sizeof(ans->error));
		ans->n = 0;
	}
}

static void
on_part(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct chain_part *part = arg;
	struct chain_wait *cw = part->cw;
	struct chain_answer ans;

	part->wait = NULL;
	part_set(part, outcome, s, error);
	part_own(part);
	if (--cw->left > 0)
		return;
	chain_answer_of(cw, &ans);
	cw->cb(ans.outcome, ans.outcome == STAPLE_OK ? ans.staples : NULL, ans.n,
	    ans.outcome == STAPLE_OK ? NULL : ans.error, cw->arg);
	chain_free(cw);
}

/* Builds one target per certificate of chain that has a URL to ask, into t[]; returns the
 * count, or -1 with err set (a CertID that cannot be made), or -2 with err set when a
 * certificate's AIA URLs were all refused (a newline, user information, a fragment...): its
 * staple cannot be had, and leaving it out would hide why. */
static int
chain_targets(struct staple_service *svc, STACK_OF(X509) *chain, struct staple_target **t,
    char *err, size_t errlen)
{
	time_t not_after = 0, na;
	int n = 0, refused = 0;

	/* The last certificate is a root, or an anchor whose issuer is known neither to the
	 * bundle nor to the request: nothing above it can sign its staple. The others each
	 * have their issuer next to them, anchors in the bundle included. */
	for (int i = sk_X509_num(chain) - 2; i >= 0; i--) {
		X509 *cert = sk_X509_value(chain, i);
		struct staple_target *one;

		/* Each staple is worth asking while its own part of the chain is valid. */
		if (certs_not_after(sk_X509_value(chain, i + 1), &na) == 0 &&
		    (not_after == 0 || na < not_after))
			not_after = na;
		if (certs_not_after(cert, &na) == 0 && (not_after == 0 || na < not_after))
			not_after = na;
		if ((one = staple_target_new(cert, sk_X509_value(chain, i + 1), not_after,
		    staple_service_certid_hash(svc), err, errlen)) == NULL)
			goto fail;
		/* A noRevAvail certificate stays in: its entry says why it has no staple. */
		if (staple_target_url_count(svc, one) == 0 && !one->no_rev_avail) {
			if (one->url_error[0] != '\0') {
				snprintf(err, errlen, "certificate %s has no usable OCSP URL: %s",
				    one->serial_hex, one->url_error);
				staple_target_free(&one);
				refused = 1;
				goto fail;
			}
			staple_target_free(&one);
			continue;
		}
		t[n++] = one;
	}
	/* Built from the top down; answered leaf first. */
	for (int i = 0; i < n / 2; i++) {
		struct staple_target *tmp = t[i];

		t[i] = t[n - 1 - i];
		t[n - 1 - i] = tmp;
	}
	return n;
fail:
	while (n > 0)
		staple_target_free(&t[--n]);
	return refused ? -2 : -1;
}

struct chain_wait *
chain_submit(struct staple_service *svc, const unsigned char *body, size_t len, time_t now,
    struct chain_answer *ans, chain_cb cb, void *arg)
{
	struct staple_target *t[CERTS_MAX_CHAIN];
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	struct chain_wait *cw = NULL;
	enum staple_outcome out = STAPLE_BAD_INPUT;
	char err[512] = "", why[256];
	time_t not_after;
	int n = 0;

	if ((certs = certs_parse(body, len, why, sizeof(why))) == NULL) {
		snprintf(err, sizeof(err), "%s", why);
		goto refuse;
	}
	if (certs_verify_chain_get(staple_service_trust(svc), certs, now, &chain, &not_after, why,
	    sizeof(why)) < 0) {
		snprintf(err, sizeof(err), "issuer not trusted: %s", why);
		out = STAPLE_UNTRUSTED;
		goto refuse;
	}
	if ((n = chain_targets(svc, chain, t, err, sizeof(err))) < 0) {
		if (n == -2)
			out = STAPLE_NO_URL;
		n = 0;
		goto refuse;
	}
	if (n == 0) {
		snprintf(err, sizeof(err), "no certificate of the chain has an OCSP URL");
		out = STAPLE_NO_URL;
		goto refuse;
	}
	if ((cw = calloc(1, sizeof(*cw))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		out = STAPLE_UNAVAILABLE;
		goto refuse;
	}
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	cw->cb = cb;
	cw->arg = arg;
	cw->n = cw->left = n;
	for (int i = 0; i < n; i++) {
		struct chain_part *part = &cw->part[i];
		struct staple_answer one;

		part->cw = cw;
		util_strlcpy(part->st.serial, t[i]->serial_hex, sizeof(part->st.serial));
		util_strlcpy(part->st.issuer, t[i]->key_hash_hex, sizeof(part->st.issuer));
		/* staple_ensure() takes the target. */
		if ((part->wait = staple_ensure(svc, t[i], NULL, now, &one, on_part, part)) == NULL) {
			part_set(part, one.outcome, one.staple, one.error);
			cw->left--;
		}
		t[i] = NULL;
	}
	if (cw->left == 0) {
		/* Every part known now: the staples are the service's, valid for the caller. */
		chain_answer_of(cw, ans);
		chain_free(cw);
		return NULL;
	}
	for (int i = 0; i < n; i++)
		part_own(&cw->part[i]);
	return cw;

refuse:
	while (n > 0)
		staple_target_free(&t[--n]);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	staple_service_log_refusal(svc, "staples", staple_outcome_http(out), err);
	ans->outcome = out;
	ans->n = 0;
	util_strlcpy(ans->error, err, sizeof(ans->error));
	return NULL;
}

void
chain_wait_cancel(struct chain_wait *cw)
{
	if (cw == NULL)
		return;
	/* Answered parts have no wait left (NULL is a no-op). */
	for (int i = 0; i < cw->n; i++)
		staple_wait_cancel(cw->part[i].wait);
	chain_free(cw);
}
