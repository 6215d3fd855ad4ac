/* Token buckets per client address: how many upstream fetches one address may cause, so one
 * client cannot turn made-up serials into a flood of fetches. A bounded table of addresses;
 * the least recently seen is forgotten first. No libevent: time is passed in. */
#ifndef STAPLER_RATELIMIT_H
#define STAPLER_RATELIMIT_H

#include <stddef.h>

/* Bytes of an address: a family byte and up to 16 address bytes (http_req_client()). */
#define RATELIMIT_ADDR_LEN 17

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit **rl);

/* Takes one token from addr's bucket at now_ms (milliseconds, any monotonic origin): the
 * bucket holds at most burst tokens and refills at rate per second; an address seen for the
 * first time starts full. An IPv6 address counts by its /64 prefix. At most max_clients
 * addresses are tracked. Returns 0 when taken;
 * -1 when the bucket is empty (or memory ran out), with *retry_after the whole seconds until
 * a token is there (at least 1). rate 0 means no limit. */
int ratelimit_take(struct ratelimit *rl, const unsigned char addr[RATELIMIT_ADDR_LEN], long rate,
    long burst, size_t max_clients, long long now_ms, long *retry_after);
/* Addresses tracked. */
size_t ratelimit_clients(const struct ratelimit *rl);

#endif
