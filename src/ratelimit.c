/* Token buckets per client address, in a table with a least-recently-seen list. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>


#include "ratelimit.h"
#include "table.h"

struct bucket {
	unsigned char addr[RATELIMIT_ADDR_LEN];
	double tokens;
	long long at_ms;               /* when tokens was last brought up to date */
	TAILQ_ENTRY(bucket) link;
};

struct ratelimit {
	struct table t;
	uint64_t seed;                 /* keeps bucket placement unpredictable to clients */
	TAILQ_HEAD(, bucket) lru;      /* least recently seen first */
};

static uint64_t
addr_hash(const void *key, uint64_t seed)
{
	return table_fnv(TABLE_FNV_BASIS ^ seed, key, RATELIMIT_ADDR_LEN);
}

static int
addr_match(const void *entry, const void *key)
{
	return memcmp(((const struct bucket *)entry)->addr, key, RATELIMIT_ADDR_LEN) == 0;
}

static const void *
addr_key_of(const void *entry)
{
	return ((const struct bucket *)entry)->addr;
}

struct ratelimit *
ratelimit_new(void)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));

	if (rl == NULL)
		return NULL;
	rl->t.hash = addr_hash;
	rl->t.match = addr_match;
	rl->t.key_of = addr_key_of;
	rl->seed = table_seed();
	TAILQ_INIT(&rl->lru);
	return rl;
}

void
ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl;
	struct bucket *b;

	if (rlp == NULL || (rl = *rlp) == NULL)
		return;
	while ((b = TAILQ_FIRST(&rl->lru)) != NULL) {
		TAILQ_REMOVE(&rl->lru, b, link);
		free(b);
	}
	table_clear(&rl->t, 0);
	free(rl);
	*rlp = NULL;
}

/* The bucket of addr, made (full) when new; the least recently seen goes when full. */
static struct bucket *
bucket_get(struct ratelimit *rl, const unsigned char *addr, long burst, size_t max_clients,
    long long now_ms)
{
	struct bucket *b = table_get(&rl->t, addr, rl->seed), *old;
	void *replaced;

	if (b != NULL) {
		TAILQ_REMOVE(&rl->lru, b, link);
		TAILQ_INSERT_TAIL(&rl->lru, b, link);
		return b;
	}
	while (rl->t.count >= max_clients && (old = TAILQ_FIRST(&rl->lru)) != NULL) {
		table_remove(&rl->t, old->addr, rl->seed);
		TAILQ_REMOVE(&rl->lru, old, link);
		free(old);
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	memcpy(b->addr, addr, RATELIMIT_ADDR_LEN);
	b->tokens = (double)burst;
	b->at_ms = now_ms;
	if (table_put(&rl->t, b, rl->seed, &replaced) < 0) {
		free(b);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&rl->lru, b, link);
	return b;
}

int
ratelimit_take(struct ratelimit *rl, const unsigned char addr[RATELIMIT_ADDR_LEN], long rate,
    long burst, size_t max_clients, long long now_ms, long *retry_after)
{
	unsigned char key[RATELIMIT_ADDR_LEN];
	struct bucket *b;
	double wait;

	*retry_after = 1;
	if (rate <= 0)
		return 0;
	/* One IPv6 host usually holds a whole /64: its addresses share one bucket. */
	memcpy(key, addr, RATELIMIT_ADDR_LEN);
	if (key[0] == AF_INET6)
		memset(key + 9, 0, RATELIMIT_ADDR_LEN - 9);
	if ((b = bucket_get(rl, key, burst, max_clients, now_ms)) == NULL)
		return -1;
	if (now_ms > b->at_ms) {
		b->tokens += (double)(now_ms - b->at_ms) * (double)rate / 1000.0;
		if (b->tokens > (double)burst)
			b->tokens = (double)burst;
	}
	/* A clock that went back refills nothing, and later time counts from here. */
	b->at_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	wait = (1.0 - b->tokens) / (double)rate;
	*retry_after = (long)wait + ((double)(long)wait < wait ? 1 : 0);
	if (*retry_after < 1)
		*retry_after = 1;
	return -1;
}

size_t
ratelimit_clients(const struct ratelimit *rl)
{
	return rl->t.count;
}
