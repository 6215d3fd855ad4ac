/* CRL-assisted withdrawal (docs/contract.md §8.13, issue 20): for each issuer staplerd holds
 * staples for, its CRL is fetched on a poll interval, verified like an OCSP response, and a
 * staple it contradicts (held good or unknown, the CRL newer and listing the serial) is
 * withdrawn at once (no longer served) and fetched again from OCSP ahead of other work. A CRL
 * never makes staplerd serve anything: only OCSP answers are served. */
#ifndef STAPLER_CRL_H
#define STAPLER_CRL_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#include "crl_list.h"
#include "stapler/types.h"

struct event_base;
struct stapler_config;
struct cache;
struct fetcher;
struct events;
struct staple_service;

/* Issuers whose CRLs are followed at most. */
#define CRL_ISSUERS_MAX 4096
/* How often the poller looks for CRLs due (seconds). */
#define CRL_TICK_S 1
/* Withdrawn staples whose refetch starts per loop turn. */
#define CRL_REFETCH_BATCH 256
/* Longest CRL URL taken from a certificate. */
#define CRL_URL_MAX 1024

/* The poller. */
struct crl;

/* Returns a new poller on base, or NULL. The parts are used, not owned. Loads the CRLs the
 * database holds (verified again against their issuers) and applies them to the staples
 * held. */
struct crl *crl_new(struct event_base *base, const struct stapler_config *cfg,
    struct cache *cache, struct fetcher *fetch, struct staple_service *svc, struct events *hub);
void crl_free(struct crl **c);
void crl_set_config(struct crl *c, const struct stapler_config *cfg);
/* A certificate of a trusted chain was seen (subject under issuer): its CRL Distribution
 * Points (http/https URIs) are learned for issuer, whose CRL is then followed. */
void crl_learn(struct crl *c, X509 *subject, X509 *issuer);
/* 1 when the CRL held for key's issuer lists key's serial, with that CRL's thisUpdate. */
int crl_check(const struct crl *c, const struct stapler_key *key, time_t *crl_this_update);

struct crl_stats {
	size_t issuers;               /* issuers followed */
	size_t withdrawn;             /* staples withdrawn now */
	unsigned long long fetched, not_modified, rejected, failed, withdrawals;
};
void crl_stats(const struct crl *c, struct crl_stats *out);
/* The CRL families of /metrics. c may be NULL. */
void crl_metrics_write(const struct crl *c, FILE *fp);

#endif
