/* The admin socket: staplerctl's actions on the daemon's loop. A line protocol over a Unix
 * stream socket (docs/admin-protocol.md): requests are answered when their outcome is known,
 * several may be in flight per connection, and everything is bounded (line length,
 * connections, requests in flight, entries refreshed at once). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "admin.h"
#include "fetch.h"
#include "refresh.h"
#include "staple.h"
#include "cache.h"
#include "cache_report.h"
#include "config.h"
#include "events.h"
#include "fmt.h"
#include "log.h"
#include "store.h"
#include "unixsock.h"
#include "util.h"

#define ADMIN_REPLY_MAX 2048
/* Upstreams a `pace` reply lists at most (as many as fit in a reply line). */
#define ADMIN_PACE_HOSTS 16

struct admin_req;

/* One staple operation of a request (a submission, one entry's refresh). */
struct admin_op {
	struct admin_req *r;
	struct staple_wait *w;
	TAILQ_ENTRY(admin_op) link;
};

struct admin_req {
	struct admin_conn *c;
	char id[ADMIN_ID_MAX + 1];
	int multi;              /* `refresh due=1`: reply with counts */
	int left;               /* operations not finished, +1 while they are being started */
	int ok, failed;
	enum staple_outcome outcome;   /* of the first failure, or of the single operation */
	char error[512];
	char serial[STAPLER_SERIAL_HEX_MAX], issuer[STAPLER_SHA1_HEX];
	enum stapler_hash_alg hash_alg;
	enum stapler_hash_params hash_params;
	enum stapler_cert_status status;
	long long this_update, next_update, fetched_at;
	TAILQ_HEAD(, admin_op) ops;
	TAILQ_ENTRY(admin_req) link;
};

struct admin_conn {
	struct admin *a;
	struct bufferevent *bev;
	int inflight;
	int eof;                /* close once every reply is written */
	TAILQ_HEAD(, admin_req) reqs;
	TAILQ_ENTRY(admin_conn) link;
};

struct admin {
	struct event_base *base;
	const struct stapler_config *cfg;
	struct cache *cache;
	struct staple_service *svc;
	const struct fetcher *fetch;        /* admin_set_pace(): for `pace`, or NULL */
	const struct refresher *refresh;
	struct evconnlistener *listener;
	char *path;             /* the socket file we created, until removed */
	dev_t dev;
	ino_t ino;
	int nconns;
	size_t waiting;
	TAILQ_HEAD(, admin_conn) conns;
};

static void conn_process(struct admin_conn *c);

static void
conn_free(struct admin_conn *c)
{
	struct admin_req *r;
	struct admin_op *op;

	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		while ((op = TAILQ_FIRST(&r->ops)) != NULL) {
			TAILQ_REMOVE(&r->ops, op, link);
			/* No callback may reach a freed request. */
			staple_wait_cancel(op->w);
			c->a->waiting--;
			free(op);
		}
		free(r);
	}
	TAILQ_REMOVE(&c->a->conns, c, link);
	c->a->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

/* Sends one reply line: verb, the request's id, then fields (already " k=v" formatted). */
static void
send_line(struct admin_conn *c, const char *verb, const char *id, const char *fields)
{
	char line[ADMIN_REPLY_MAX];
	size_t len;

	len = (size_t)snprintf(line, sizeof(line), "%s", verb);
	if (id != NULL && id[0] != '\0')
		fmt_kv_add(line, &len, sizeof(line), "id", id);
	evbuffer_add_printf(bufferevent_get_output(c->bev), "%s%s\n", line, fields);
}

static void
send_error(struct admin_conn *c, const char *id, const char *outcome, const char *error)
{
	char f[ADMIN_REPLY_MAX];
	size_t len = 0;

	f[0] = '\0';
	fmt_kv_add(f, &len, sizeof(f), "outcome", outcome);
	fmt_kv_add(f, &len, sizeof(f), "error", error);
	send_line(c, "error", id, f);
}

static void
add_ll(char *f, size_t *len, size_t cap, const char *key, long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%lld", v);
	fmt_kv_add(f, len, cap, key, num);
}

/* Replies to a finished request and frees it; reading resumes if it had paused. */
static void
req_reply(struct admin_req *r)
{
	struct admin_conn *c = r->c;
	char f[ADMIN_REPLY_MAX];
	size_t len = 0;

	f[0] = '\0';
	if (r->multi) {
		add_ll(f, &len, sizeof(f), "refreshed", r->ok);
		add_ll(f, &len, sizeof(f), "failed", r->failed);
		if (r->failed > 0)
			fmt_kv_add(f, &len, sizeof(f), "error", r->error);
		send_line(c, "ok", r->id, f);
	} else if (r->outcome == STAPLE_OK) {
		fmt_kv_add(f, &len, sizeof(f), "serial", r->serial);
		fmt_kv_add(f, &len, sizeof(f), "issuer", r->issuer);
		fmt_kv_add(f, &len, sizeof(f), "hash", stapler_hash_alg_name(r->hash_alg));
		fmt_kv_add(f, &len, sizeof(f), "params", stapler_hash_params_name(r->hash_params));
		fmt_kv_add(f, &len, sizeof(f), "status", stapler_status_name(r->status));
		add_ll(f, &len, sizeof(f), "this_update", r->this_update);
		add_ll(f, &len, sizeof(f), "next_update", r->next_update);
		add_ll(f, &len, sizeof(f), "fetched_at", r->fetched_at);
		send_line(c, "ok", r->id, f);
	} else {
		char http[8];

		fmt_kv_add(f, &len, sizeof(f), "outcome", staple_outcome_name(r->outcome));
		snprintf(http, sizeof(http), "%d", staple_outcome_http(r->outcome));
		fmt_kv_add(f, &len, sizeof(f), "http", http);
		if (r->serial[0] != '\0') {
			fmt_kv_add(f, &len, sizeof(f), "serial", r->serial);
			fmt_kv_add(f, &len, sizeof(f), "issuer", r->issuer);
			fmt_kv_add(f, &len, sizeof(f), "hash", stapler_hash_alg_name(r->hash_alg));
			fmt_kv_add(f, &len, sizeof(f), "params",
			    stapler_hash_params_name(r->hash_params));
		}
		fmt_kv_add(f, &len, sizeof(f), "error", r->error);
		send_line(c, "error", r->id, f);
	}
	TAILQ_REMOVE(&c->reqs, r, link);
	free(r);
	if (c->inflight-- == ADMIN_MAX_INFLIGHT && !c->eof) {
		bufferevent_enable(c->bev, EV_READ);
		conn_process(c);
	}
}

static void
req_left(struct admin_req *r)
{
	if (--r->left == 0)
		req_reply(r);
}

/* One operation's answer, counted into its request; op is freed. */
static void
op_finish(struct admin_op *op, enum staple_outcome outcome, const struct staple *s,
    const char *error)
{
	struct admin_req *r = op->r;

	r->c->a->waiting--;
	TAILQ_REMOVE(&r->ops, op, link);
	if (outcome == STAPLE_OK) {
		r->ok++;
		stapler_key_serial_hex(&s->key, r->serial);
		stapler_key_hash_hex(&s->key, r->issuer);
		r->hash_alg = (enum stapler_hash_alg)s->key.hash_alg;
		r->hash_params = (enum stapler_hash_params)s->key.hash_params;
		r->status = s->status;
		r->this_update = (long long)s->this_update;
		r->next_update = (long long)s->next_update;
		r->fetched_at = (long long)s->fetched_at;
	} else if (r->failed++ == 0) {
		/* A request of several operations reports its first failure. */
		r->outcome = outcome;
		util_strlcpy(r->error, error != NULL && error[0] != '\0' ? error :
		    staple_outcome_name(outcome), sizeof(r->error));
	}
	free(op);
	req_left(r);
}

static void
on_op_done(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	op_finish(arg, outcome, s, error);
}

static struct admin_op *
op_new(struct admin_req *r)
{
	struct admin_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->r = r;
	r->left++;
	r->c->a->waiting++;
	TAILQ_INSERT_TAIL(&r->ops, op, link);
	return op;
}

/* After the service call that took op: its callback comes later (w), or the call returned
 * the answer (staple.h's contract). */
static void
op_started(struct admin_op *op, struct staple_wait *w, const struct staple_answer *ans)
{
	if (w != NULL)
		op->w = w;
	else
		op_finish(op, ans->outcome, ans->staple, ans->error);
}

/* Refreshes one cached entry as part of r. */
static void
refresh_one(struct admin *a, struct admin_req *r, const struct stapler_key *key, time_t now)
{
	struct staple_answer ans;
	struct cache_row row;
	struct admin_op *op;
	int rc;

	if ((rc = cache_get(a->cache, key, &row)) != 1 || (op = op_new(r)) == NULL) {
		if (r->failed++ == 0) {
			r->outcome = STAPLE_UNAVAILABLE;
			snprintf(r->error, sizeof(r->error), "%s", rc == 0 ? "entry vanished" :
			    rc < 0 ? "cache error" : "out of memory");
		}
	} else {
		op_started(op, staple_refresh_row(a->svc, &row, now, &ans, on_op_done, op), &ans);
	}
	cache_row_clear(&row);
}

/* The keys the due query found. */
struct keys {
	struct cache_refresh item[ADMIN_REFRESH_DUE_MAX];
	int n;
};

/* Resolves serial=, issuer= (key or name hash), hash= and params= of a request line to exactly
 * one entry. Returns 0 with *key set, or -1 after replying with the error. */
static int
lookup(struct admin_conn *c, const char *id, const char *line, struct stapler_key *key)
{
	char sraw[2 * STAPLER_SERIAL_HEX_MAX], iraw[2 * STAPLER_SHA1_HEX], araw[16], praw[16];
	char serial[STAPLER_SERIAL_HEX_MAX], issuer[STAPLER_SHA1_HEX];
	struct cache_report_filter f = { .limit = 0 };
	struct cache_report_match m;
	enum stapler_hash_params params;
	enum stapler_hash_alg alg;
	int has_issuer, has_alg, has_params;

	if (fmt_kv_get(line, "serial", sraw, sizeof(sraw)) != 1 || fmt_serial(sraw, serial) < 0) {
		send_error(c, id, "bad_request", "serial= missing or not a hex serial");
		return -1;
	}
	if ((has_issuer = fmt_kv_get(line, "issuer", iraw, sizeof(iraw))) < 0 ||
	    (has_issuer && fmt_key_hash(iraw, issuer) < 0)) {
		send_error(c, id, "bad_request", "issuer= is not a 40-digit hex key or name hash");
		return -1;
	}
	if ((has_alg = fmt_kv_get(line, "hash", araw, sizeof(araw))) < 0 ||
	    (has_alg && stapler_hash_alg_parse(araw, &alg) < 0)) {
		send_error(c, id, "bad_request", "hash= is not sha1, sha256, sha384 or sha512");
		return -1;
	}
	if ((has_params = fmt_kv_get(line, "params", praw, sizeof(praw))) < 0 ||
	    (has_params && stapler_hash_params_parse(praw, &params) < 0)) {
		send_error(c, id, "bad_request", "params= is not null or absent");
		return -1;
	}
	f.serial = serial;
	f.issuer = has_issuer ? issuer : NULL;
	f.hash_alg = has_alg ? 1 + (int)alg : 0;
	f.hash_params = has_params ? 1 + (int)params : 0;
	f.now = (long long)time(NULL);
	if (cache_report_lookup(c->a->cache, &f, &m) < 0) {
		send_error(c, id, "unavailable", "cache error (see the daemon log)");
		return -1;
	}
	if (m.n == 0) {
		send_error(c, id, "not_found", "no cached entry with that serial");
		return -1;
	}
	if (m.n > 1) {
		char f2[ADMIN_REPLY_MAX];
		size_t len = 0;

		f2[0] = '\0';
		fmt_kv_add(f2, &len, sizeof(f2), "outcome", "ambiguous");
		fmt_kv_add(f2, &len, sizeof(f2), m.by_issuer ? "issuers" : m.by_params ? "params" :
		    "hashes", m.choices);
		fmt_kv_add(f2, &len, sizeof(f2), "error", m.by_issuer ?
		    "serial is cached for several issuers; give the issuer" : m.by_params ?
		    "serial is cached with the hash algorithm's parameters both NULL and absent; "
		    "give params=" :
		    "serial is cached for several CertID hash algorithms; give hash=");
		send_line(c, "error", id, f2);
		return -1;
	}
	*key = m.key;
	return 0;
}

static struct admin_req *
req_new(struct admin_conn *c, const char *id)
{
	struct admin_req *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		send_error(c, id, "unavailable", "out of memory");
		return NULL;
	}
	r->c = c;
	util_strlcpy(r->id, id, sizeof(r->id));
	r->left = 1;     /* held while operations are being started */
	TAILQ_INIT(&r->ops);
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	c->inflight++;
	return r;
}

static void
do_submit(struct admin_conn *c, const char *id, const char *line)
{
	struct staple_answer ans;
	struct admin *a = c->a;
	struct admin_req *r;
	struct admin_op *op;
	unsigned char *body;
	size_t blen = strlen(line), len = 0;
	char *b64;

	if ((b64 = malloc(blen + 1)) == NULL) {
		send_error(c, id, "unavailable", "out of memory");
		return;
	}
	if (fmt_kv_get(line, "body", b64, blen + 1) != 1 ||
	    (body = util_unbase64(b64, strlen(b64), &len)) == NULL) {
		free(b64);
		send_error(c, id, "bad_input", "body= missing or not base64");
		return;
	}
	free(b64);
	if (len > a->cfg->max_request) {
		free(body);
		send_error(c, id, "bad_input", "certificate body larger than [server] max_request");
		return;
	}
	if ((r = req_new(c, id)) != NULL) {
		if ((op = op_new(r)) == NULL) {
			r->outcome = STAPLE_UNAVAILABLE;
			snprintf(r->error, sizeof(r->error), "out of memory");
		} else {
			op_started(op, staple_submit(a->svc, body, len, time(NULL), &ans, on_op_done, op),
			    &ans);
		}
		req_left(r);
	}
	free(body);
}

static void
do_refresh(struct admin_conn *c, const char *id, const char *line)
{
	struct admin *a = c->a;
	struct stapler_key key;
	struct admin_req *r;
	struct keys *k;
	char flag[8];
	time_t now = time(NULL);

	if (fmt_kv_get(line, "all", flag, sizeof(flag)) == 1 && strcmp(flag, "1") == 0) {
		long long n = cache_mark_all_due(a->cache, (long long)now);
		char f[64];
		size_t len = 0;

		if (n < 0) {
			send_error(c, id, "unavailable", "cache error (see the daemon log)");
			return;
		}
		f[0] = '\0';
		add_ll(f, &len, sizeof(f), "marked", n);
		log_info("admin_refresh_all", "marked=%lld", n);
		send_line(c, "ok", id, f);
		return;
	}
	if (fmt_kv_get(line, "due", flag, sizeof(flag)) == 1 && strcmp(flag, "1") == 0) {
		if ((k = calloc(1, sizeof(*k))) == NULL) {
			send_error(c, id, "unavailable", "out of memory");
			return;
		}
		if ((k->n = cache_due(a->cache, (long long)now, ADMIN_REFRESH_DUE_MAX, k->item)) < 0) {
			free(k);
			send_error(c, id, "unavailable", "cache error (see the daemon log)");
			return;
		}
		if ((r = req_new(c, id)) != NULL) {
			r->multi = 1;
			for (int i = 0; i < k->n; i++)
				refresh_one(a, r, &k->item[i].key, now);
			req_left(r);
		}
		free(k);
		return;
	}
	if (lookup(c, id, line, &key) < 0)
		return;
	if ((r = req_new(c, id)) != NULL) {
		stapler_key_serial_hex(&key, r->serial);
		stapler_key_hash_hex(&key, r->issuer);
		r->hash_alg = (enum stapler_hash_alg)key.hash_alg;
		r->hash_params = (enum stapler_hash_params)key.hash_params;
		refresh_one(a, r, &key, now);
		req_left(r);
	}
}

static void
do_evict(struct admin_conn *c, const char *id, const char *line)
{
	struct stapler_key key;
	char f[ADMIN_REPLY_MAX], serial[STAPLER_SERIAL_HEX_MAX], issuer[STAPLER_SHA1_HEX];
	size_t len = 0;

	if (lookup(c, id, line, &key) < 0)
		return;
	if (staple_service_evict(c->a->svc, &key) < 0) {
		send_error(c, id, "unavailable", "cache error (see the daemon log)");
		return;
	}
	stapler_key_serial_hex(&key, serial);
	stapler_key_hash_hex(&key, issuer);
	f[0] = '\0';
	fmt_kv_add(f, &len, sizeof(f), "serial", serial);
	fmt_kv_add(f, &len, sizeof(f), "issuer", issuer);
	fmt_kv_add(f, &len, sizeof(f), "hash", stapler_hash_alg_name((enum stapler_hash_alg)key.hash_alg));
	fmt_kv_add(f, &len, sizeof(f), "params",
	    stapler_hash_params_name((enum stapler_hash_params)key.hash_params));
	send_line(c, "ok", id, f);
}

/* `pace`: whether the refresh keeps up, and each upstream's limit in force (the daemon's
 * view; staplerctl stats adds it to what the database says). */
static void
do_pace(struct admin_conn *c, const char *id, const char *line)
{
	struct fetch_host_limit hl[ADMIN_PACE_HOSTS];
	struct refresh_pace pace = { 0 };
	char f[ADMIN_REPLY_MAX - 64], n[32], hosts[ADMIN_REPLY_MAX - 256];
	size_t len = 0, off = 0, nh = 0;
	time_t now = time(NULL);

	(void)line;
	f[0] = hosts[0] = '\0';
	if (c->a->refresh != NULL)
		refresh_pace(c->a->refresh, now, &pace);
	if (c->a->fetch != NULL)
		nh = fetch_host_limits(c->a->fetch, hl, ADMIN_PACE_HOSTS);
	snprintf(n, sizeof(n), "%lld", pace.behind);
	fmt_kv_add(f, &len, sizeof(f), "behind", n);
	snprintf(n, sizeof(n), "%llu", pace.done_last_hour);
	fmt_kv_add(f, &len, sizeof(f), "refreshed_last_hour", n);
	snprintf(n, sizeof(n), "%llu", pace.ok);
	fmt_kv_add(f, &len, sizeof(f), "refreshes_ok", n);
	snprintf(n, sizeof(n), "%llu", pace.failed);
	fmt_kv_add(f, &len, sizeof(f), "refreshes_failed", n);
	/* "host limit active queued paused_until", comma separated, as many as fit. */
	for (size_t i = 0; i < nh; i++) {
		int w = snprintf(hosts + off, sizeof(hosts) - off, "%s%s %d %d %d %lld", off ? "," : "",
		    hl[i].host, hl[i].limit, hl[i].active, hl[i].queued,
		    (long long)(hl[i].paused_until > now ? hl[i].paused_until : 0));

		if (w < 0 || (size_t)w >= sizeof(hosts) - off) {
			hosts[off] = '\0';
			break;
		}
		off += (size_t)w;
	}
	fmt_kv_add(f, &len, sizeof(f), "upstreams", hosts);
	send_line(c, "ok", id, f);
}

struct events_reply {
	struct admin_conn *c;
	const char *id, *source;
	int json;
	long long last;
};

/* One `event` line of an `events` reply. */
static void
send_event(const struct event_row *r, void *arg)
{
	struct events_reply *er = arg;
	char f[ADMIN_EVENT_LINE_MAX], *ce = NULL;
	size_t len = 0;

	f[0] = '\0';
	add_ll(f, &len, sizeof(f), "seq", r->seq);
	fmt_kv_add(f, &len, sizeof(f), "event_id", r->id);
	fmt_kv_add(f, &len, sizeof(f), "type", r->type);
	fmt_kv_add(f, &len, sizeof(f), "subject", r->subject);
	add_ll(f, &len, sizeof(f), "time", r->time);
	add_ll(f, &len, sizeof(f), "delivered_at", r->delivered_at);
	if (er->json && (ce = outbox_cloudevent(r, er->source)) != NULL)
		fmt_kv_add(f, &len, sizeof(f), "cloudevent", ce);
	else
		fmt_kv_add(f, &len, sizeof(f), "data", r->data);
	free(ce);
	send_line(er->c, "event", er->id, f);
	er->last = r->seq;
}

/* `events [since=SEQ] [limit=N] [json=1]`: the outbox after SEQ, oldest first, one `event`
 * line each, then `ok count=N last=SEQ` (the seq to ask after next: --follow polls with it). */
static void
do_events(struct admin_conn *c, const char *id, const char *line)
{
	struct events_reply er = { c, id, c->a->cfg->events_source, 0, 0 };
	char v[32], f[128];
	long limit = ADMIN_EVENTS_MAX;
	size_t len = 0;
	int n;

	if (fmt_kv_get(line, "since", v, sizeof(v)) == 1) {
		long since;

		if (util_parse_long(v, 0, LONG_MAX, &since) < 0) {
			send_error(c, id, "bad_request", "since must be an event seq");
			return;
		}
		er.last = since;
	}
	if (fmt_kv_get(line, "limit", v, sizeof(v)) == 1 &&
	    util_parse_long(v, 1, ADMIN_EVENTS_MAX, &limit) < 0) {
		send_error(c, id, "bad_request", "limit must be 1 to 1000");
		return;
	}
	er.json = fmt_kv_get(line, "json", v, sizeof(v)) == 1 && strcmp(v, "1") == 0;
	if ((n = outbox_read(cache_db(c->a->cache), er.last, (int)limit, send_event,
	    &er)) < 0) {
		send_error(c, id, "unavailable", "the event outbox cannot be read now");
		return;
	}
	f[0] = '\0';
	add_ll(f, &len, sizeof(f), "count", n);
	add_ll(f, &len, sizeof(f), "last", er.last);
	send_line(c, "ok", id, f);
}

static void
do_ping(struct admin_conn *c, const char *id, const char *line)
{
	char f[64];
	size_t len = 0;

	(void)line;
	f[0] = '\0';
	fmt_kv_add(f, &len, sizeof(f), "version", STAPLER_VERSION);
	send_line(c, "ok", id, f);
}

/* The commands of the protocol (docs/admin-protocol.md), as staplerctl's are a table. */
static const struct admin_command {
	const char *verb;
	void (*run)(struct admin_conn *c, const char *id, const char *line);
} commands[] = {
	{ "ping", do_ping },
	{ "submit", do_submit },
	{ "refresh", do_refresh },
	{ "evict", do_evict },
	{ "pace", do_pace },
	{ "events", do_events },
};

static void
handle_line(struct admin_conn *c, const char *line)
{
	char verb[16], id[ADMIN_ID_MAX + 1] = "";
	size_t vlen = strcspn(line, " ");

	if (fmt_kv_get(line, "id", id, sizeof(id)) < 0) {
		send_error(c, NULL, "bad_request", "malformed line or id longer than 32 characters");
		return;
	}
	if (vlen == 0 || vlen >= sizeof(verb)) {
		send_error(c, id, "bad_request", "unknown command");
		return;
	}
	memcpy(verb, line, vlen);
	verb[vlen] = '\0';
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(verb, commands[i].verb) == 0) {
			commands[i].run(c, id, line);
			return;
		}
	}
	send_error(c, id, "bad_request", "unknown command");
}

/* Handles every complete line while the connection may take more requests. */
static void
conn_process(struct admin_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char *line;
	size_t n;

	while (!c->eof && c->inflight < ADMIN_MAX_INFLIGHT &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		if (n > 0 && line[n - 1] == '\r')
			line[n - 1] = '\0';
		handle_line(c, line);
		free(line);
	}
	if (c->inflight >= ADMIN_MAX_INFLIGHT) {
		bufferevent_disable(c->bev, EV_READ);
	} else if (!c->eof && evbuffer_get_length(in) > ADMIN_LINE_MAX) {
		send_error(c, NULL, "bad_request", "line too long");
		c->eof = 1;
		bufferevent_disable(c->bev, EV_READ);
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	/* Everything written: a client that has hung up its side is done once nothing waits. */
	if (c->eof && TAILQ_EMPTY(&c->reqs))
		conn_free(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct admin_conn *c = arg;

	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		/* Quiet while waiting for its answers is fine; quiet with nothing asked is idle. */
		if (!TAILQ_EMPTY(&c->reqs)) {
			bufferevent_enable(bev, EV_READ);
			return;
		}
		log_info("admin_idle_closed", "after_seconds=%d", ADMIN_IDLE_TIMEOUT);
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* Half-closed: answer what was asked, then close. */
		c->eof = 1;
		if (TAILQ_EMPTY(&c->reqs) && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
		return;
	}
	conn_free(c);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct admin *a = arg;
	struct admin_conn *c;
	const struct timeval idle = { ADMIN_IDLE_TIMEOUT, 0 };
	static const char busy[] = "error outcome=busy error=\"too many admin connections\"\n";

	if (a->nconns >= ADMIN_MAX_CONNS || (c = calloc(1, sizeof(*c))) == NULL) {
		if (write(fd, busy, sizeof(busy) - 1) < 0) {
			/* Nothing more to tell a client that cannot be written to. */
		}
		evutil_closesocket(fd);
		return;
	}
	if ((c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->a = a;
	TAILQ_INIT(&c->reqs);
	TAILQ_INSERT_TAIL(&a->conns, c, link);
	a->nconns++;
	/* Reading stops at one over the line bound, so a client cannot make us buffer more. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_LINE_MAX + 1);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &idle, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Removes a socket file left by a daemon that is gone; a live one is an error. */
static int
clear_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char why[256];
	int fd;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "admin_socket %s: exists and is not a socket", path);
		return -1;
	}
	if ((fd = unixsock_connect(path, why, sizeof(why))) >= 0) {
		close(fd);
		snprintf(err, errlen, "admin_socket %s: another process is listening on it", path);
		return -1;
	}
	unlink(path);
	return 0;
}

static void
remove_socket(struct admin *a)
{
	struct stat st;

	if (a->listener != NULL)
		evconnlistener_free(a->listener);
	a->listener = NULL;
	/* Only our own file: a newer daemon may have replaced it. */
	if (a->path != NULL && lstat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
		unlink(a->path);
	free(a->path);
	a->path = NULL;
}

static int
listen_socket(struct admin *a, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd = -1, dirfd = -1, rc;

	if (clear_stale(path, err, errlen) < 0)
		return -1;
	if (unixsock_addr(path, &sun, &dirfd, err, errlen) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		goto fail;
	/* Created 0660 from the start: no moment where others may connect. */
	old = umask(0117);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0 || lstat(path, &st) < 0)
		goto fail;
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	if ((a->path = strdup(path)) == NULL)
		goto fail;
	if ((a->listener = evconnlistener_new(a->base, on_accept, a, LEV_OPT_CLOSE_ON_FREE, 0,
	    fd)) == NULL)
		goto fail;
	if (dirfd >= 0)
		close(dirfd);
	return 0;
fail:
	snprintf(err, errlen, "admin_socket %s: %s", path, errno ? strerror(errno) : "cannot listen");
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	if (a->path != NULL)
		remove_socket(a);
	return -1;
}

struct admin *
admin_new(struct event_base *base, const struct stapler_config *cfg, struct cache *cache,
    struct staple_service *svc, char *err, size_t errlen)
{
	struct admin *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->base = base;
	a->cfg = cfg;
	a->cache = cache;
	a->svc = svc;
	TAILQ_INIT(&a->conns);
	if (cfg->admin_socket == NULL || cfg->admin_socket[0] == '\0')
		return a;
	errno = 0;
	if (listen_socket(a, cfg->admin_socket, err, errlen) < 0) {
		free(a);
		return NULL;
	}
	log_info("admin_listening", "path=\"%s\"", cfg->admin_socket);
	return a;
}

void
admin_set_pace(struct admin *a, const struct fetcher *f, const struct refresher *r)
{
	a->fetch = f;
	a->refresh = r;
}

void
admin_shutdown(struct admin *a)
{
	if (a != NULL)
		remove_socket(a);
}

void
admin_free(struct admin **ap)
{
	struct admin *a;
	struct admin_conn *c;

	if (ap == NULL || (a = *ap) == NULL)
		return;
	while ((c = TAILQ_FIRST(&a->conns)) != NULL)
		conn_free(c);
	remove_socket(a);
	free(a);
	*ap = NULL;
}

void
admin_set_config(struct admin *a, const struct stapler_config *cfg)
{
	a->cfg = cfg;
}

size_t
admin_waiting(const struct admin *a)
{
	return a != NULL ? a->waiting : 0;
}
