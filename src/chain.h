/* Chain staples (POST /v1/staples): one verified staple per certificate of a submitted chain
 * that has an OCSP URL, leaf first, each fetched and verified against its own issuer. */
#ifndef STAPLER_CHAIN_H
#define STAPLER_CHAIN_H

#include <stddef.h>
#include <time.h>

#include "staple.h"

/* One entry of a chain answer: a staple, or why the certificate's staple cannot be had now. */
struct chain_staple {
	char serial[STAPLER_SERIAL_HEX_MAX];   /* uppercase hex */
	char issuer[STAPLER_SHA1_HEX];         /* issuer key hash, uppercase hex */
	enum staple_outcome outcome;           /* STAPLE_OK: the fields below; else error */
	enum stapler_cert_status status;
	time_t this_update, next_update;
	const unsigned char *der;              /* the DER OCSPResponse */
	size_t der_len;
	char error[512];
};

/* Called once. On STAPLE_OK staples[0..n-1] (valid during the call only) are the entries in
 * chain order, at least one of them a staple; a certificate whose staple cannot be had now
 * has its outcome and error instead (an answer in part). Otherwise no staple at all could be
 * had, and the first certificate in chain order decides the outcome and error. */
typedef void (*chain_cb)(enum staple_outcome outcome, const struct chain_staple *staples, int n,
    const char *error, void *arg);

/* An answer known at once (every staple a memory hit, or a refusal). */
struct chain_answer {
	enum staple_outcome outcome;
	struct chain_staple staples[CERTS_MAX_CHAIN];  /* on STAPLE_OK: der is the service's own,
	                                                * valid until control returns to the loop */
	int n;
	char error[512];
};

struct chain_wait;

/* Parses body (PEM subject-first chain or one DER certificate), verifies the whole chain
 * against the trust anchors (STAPLE_UNTRUSTED before anything is contacted), then gets a
 * staple for every certificate of the verified chain that has a URL to ask (AIA or a
 * [responders] override), all in parallel through staple_ensure(); STAPLE_NO_URL when none
 * has. The contract of staple.h: returns NULL with *ans set when the answer is known now;
 * otherwise returns a wait handle and calls cb, from the event loop, when the last staple is
 * there. */
struct chain_wait *chain_submit(struct staple_service *svc, const unsigned char *body, size_t len,
    time_t now, struct chain_answer *ans, chain_cb cb, void *arg);
/* Drops the callback and every wait of the chain (client gone); the fetches go on. */
void chain_wait_cancel(struct chain_wait *w);

#endif
