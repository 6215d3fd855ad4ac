/* Component tests of fetch.c on the test's own event base, against HTTP servers of the test
 * (evhttp) on 127.0.0.1: free slots go to clients before refreshes, one stalled upstream does
 * not hold up another, cancelled fetches never call back and free their slots, no callback
 * runs inside fetch_start(), and the limit per upstream follows it: it grows against a fast
 * one, is cut by timeouts, 429 and 503, and a Retry-After pauses the upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "fetch.h"
#include "util.h"
#include "pace.h"

static const unsigned char REQ[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };

struct world {
	struct event_base *base;
	struct evhttp *fast, *slow;
	unsigned short fast_port, slow_port;
	struct stapler_config *cfg;
	struct fetcher *f;
	char order[64];          /* callbacks, in order: one letter per fetch */
	size_t n_order;
	int in_start;            /* set while fetch_start runs */
	int called_inside;
	int slow_seen;           /* requests the stalled server received */
	int fast_seen;           /* requests the answering server received */
	int code;                /* what it answers: 200 (default), 429, 503... */
	const char *retry_after; /* with this Retry-After, or NULL */
	size_t peak;             /* most transfers seen running at once */
};

struct call {
	struct world *w;
	char tag;
	enum fetch_status status;
	int done;
};

static void
on_fast(struct evhttp_request *req, void *arg)
{
	struct world *w = arg;
	struct evbuffer *out = evbuffer_new();

	w->fast_seen++;
	if (fetch_active(w->f) > w->peak)
		w->peak = fetch_active(w->f);
	evbuffer_add(out, "ocsp", 4);
	if (w->retry_after != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", w->retry_after);
	evhttp_send_reply(req, w->code != 0 ? w->code : 200, w->code != 0 ? "Busy" : "OK", out);
	evbuffer_free(out);
}

/* Never answers: the request stays with evhttp until the client goes away. */
static void
on_slow(struct evhttp_request *req, void *arg)
{
	((struct world *)arg)->slow_seen++;
}

static unsigned short
listen_on(struct evhttp *http)
{
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_non_null(s);
	assert_int_equal(getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	w->base = event_base_new();
	w->fast = evhttp_new(w->base);
	w->slow = evhttp_new(w->base);
	evhttp_set_gencb(w->fast, on_fast, w);
	evhttp_set_gencb(w->slow, on_slow, w);
	w->fast_port = listen_on(w->fast);
	w->slow_port = listen_on(w->slow);
	w->cfg = config_default();
	w->cfg->upstream_timeout = 30;
	w->f = fetch_new(w->base, w->cfg);
	assert_non_null(w->f);
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	fetch_free(&w->f);
	evhttp_free(w->fast);
	evhttp_free(w->slow);
	event_base_free(w->base);
	config_free(&w->cfg);
	free(w);
	return 0;
}

static void
on_done(const struct fetch_result *res, void *arg)
{
	struct call *c = arg;

	if (c->w->in_start)
		c->w->called_inside = 1;
	c->status = res->status;
	c->done = 1;
	if (c->w->n_order < sizeof(c->w->order) - 1)
		c->w->order[c->w->n_order++] = c->tag;
}

static void
start(struct world *w, unsigned short port, enum fetch_priority prio, struct call *c, char tag,
    struct fetch_job **job)
{
	char url[64], err[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
	c->w = w;
	c->tag = tag;
	w->in_start = 1;
	assert_int_equal(fetch_start(w->f, url, REQ, sizeof(REQ), prio, on_done, c, job, err,
	    sizeof(err)), 0);
	w->in_start = 0;
}

/* Runs the loop until pred holds or a few seconds passed. */
static int
run_until(struct world *w, int (*pred)(struct world *w, void *arg), void *arg)
{
	struct timeval tick = { 0, 10 * 1000 };

	for (int i = 0; i < 500; i++) {
		if (pred(w, arg))
			return 1;
		event_base_loopexit(w->base, &tick);
		event_base_dispatch(w->base);
	}
	return pred(w, arg);
}

static int
all_done(struct world *w, void *arg)
{
	struct call *calls = arg;

	for (size_t i = 0; calls[i].w != NULL; i++) {
		if (!calls[i].done)
			return 0;
	}
	return 1;
}

static int
slow_has(struct world *w, void *arg)
{
	return w->slow_seen >= *(int *)arg;
}

static void
test_clients_go_before_refreshes(void **state)
{
	struct world *w = *state;
	struct call c[5] = { 0 };

	/* One slot: the order the queued fetches end in is the order they were started in. */
	w->cfg->max_parallel = 1;
	start(w, w->fast_port, FETCH_PRIO_REFRESH, &c[0], 'r', NULL);
	start(w, w->fast_port, FETCH_PRIO_ANONYMOUS, &c[1], 'a', NULL);
	start(w, w->fast_port, FETCH_PRIO_REFRESH, &c[2], 's', NULL);
	start(w, w->fast_port, FETCH_PRIO_CLIENT, &c[3], 'c', NULL);
	assert_int_equal(w->called_inside, 0);
	assert_int_equal(fetch_queued(w->f), 4);
	assert_int_equal(fetch_queued_prio(w->f, FETCH_PRIO_REFRESH), 2);
	assert_true(run_until(w, all_done, c));
	assert_int_equal(w->called_inside, 0);
	assert_string_equal(w->order, "cars");
	for (int i = 0; i < 4; i++)
		assert_int_equal(c[i].status, FETCH_OK);
}

static void
test_stalled_host_does_not_block_another(void **state)
{
	struct world *w = *state;
	struct call slow[20] = { 0 }, fast[2] = { 0 };
	int running = PACE_START;

	/* Twenty client fetches to a host that never answers, queued first... */
	for (int i = 0; i < 20; i++)
		start(w, w->slow_port, FETCH_PRIO_CLIENT, &slow[i], 'x', NULL);
	/* ...then a refresh to another host: it is not stuck behind them. */
	start(w, w->fast_port, FETCH_PRIO_REFRESH, &fast[0], 'f', NULL);
	assert_true(run_until(w, all_done, fast));
	assert_int_equal(fast[0].status, FETCH_OK);
	assert_true(run_until(w, slow_has, &running));
	/* The stalled host holds its own cap and no more. */
	assert_int_equal(fetch_active(w->f), PACE_START);
	assert_int_equal(fetch_queued(w->f), 20 - PACE_START);
	for (int i = 0; i < 20; i++)
		assert_int_equal(slow[i].done, 0);
	/* Their callbacks point into this frame: end them here. */
	fetch_free(&w->f);
}

static void
test_cancel_frees_slots_and_never_calls_back(void **state)
{
	struct world *w = *state;
	struct call slow[12] = { 0 }, fast[2] = { 0 };
	struct fetch_job *job[12];
	int running = PACE_START;

	for (int i = 0; i < 12; i++)
		start(w, w->slow_port, FETCH_PRIO_ANONYMOUS, &slow[i], 'x', &job[i]);
	assert_true(run_until(w, slow_has, &running));
	assert_int_equal(fetch_active(w->f), PACE_START);
	/* Running and queued ones alike. */
	for (int i = 0; i < 12; i++)
		fetch_cancel(w->f, job[i]);
	assert_int_equal(fetch_active(w->f), 0);
	assert_int_equal(fetch_queued(w->f), 0);
	assert_int_equal(fetch_cancelled(w->f), 12);
	/* The host is usable at once: a new fetch to it starts (the stall server sees it). */
	running = PACE_START + 1;
	start(w, w->slow_port, FETCH_PRIO_CLIENT, &fast[0], 'n', &job[0]);
	assert_true(run_until(w, slow_has, &running));
	fetch_cancel(w->f, job[0]);
	for (int i = 0; i < 12; i++)
		assert_int_equal(slow[i].done, 0);
	assert_int_equal(fast[0].done, 0);
}

static void
test_free_cancels_with_callbacks(void **state)
{
	struct world *w = *state;
	struct call slow[10] = { 0 };
	int running = PACE_START;

	for (int i = 0; i < 10; i++)
		start(w, w->slow_port, i % 2 ? FETCH_PRIO_REFRESH : FETCH_PRIO_CLIENT, &slow[i], 'x', NULL);
	assert_true(run_until(w, slow_has, &running));
	fetch_free(&w->f);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(slow[i].done, 1);
		assert_int_equal(slow[i].status, FETCH_CANCELLED);
	}
}

/* A closed port: connections are refused at once (FETCH_NETWORK). */
static unsigned short
closed_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void
test_backoff_deepens_per_round_not_per_transfer(void **state)
{
	struct world *w = *state;
	struct call c[9] = { 0 };     /* the last one ends the list for all_done() */
	unsigned short port = closed_port();
	char url[64];
	struct fetch_host_info info;

	/* Eight transfers fail together: one round, so the first step of the backoff. */
	for (int i = 0; i < 8; i++)
		start(w, port, FETCH_PRIO_REFRESH, &c[i], 'x', NULL);
	assert_true(run_until(w, all_done, c));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
	assert_int_equal(fetch_host_state(w->f, url, time(NULL), &info), 0);
	assert_true(info.retry_at > 0);
	assert_true(info.retry_at - time(NULL) <= FETCH_HOST_BACKOFF_BASE);
	fetch_free(&w->f);
}

/* Refreshes queued for a host in failure backoff wait it out; a client's fetch does not. */
static void
test_refreshes_wait_out_a_backoff(void **state)
{
	struct world *w = *state;
	struct call first[2] = { 0 }, later[4] = { 0 }, client[2] = { 0 };
	unsigned short port = closed_port();
	struct timeval tick = { 0, 300 * 1000 };

	start(w, port, FETCH_PRIO_REFRESH, &first[0], 'x', NULL);
	assert_true(run_until(w, all_done, first));
	assert_int_equal(fetch_hosts_failing(w->f), 1);
	for (int i = 0; i < 3; i++)
		start(w, port, FETCH_PRIO_REFRESH, &later[i], 'r', NULL);
	start(w, port, FETCH_PRIO_CLIENT, &client[0], 'c', NULL);
	assert_true(run_until(w, all_done, client));
	event_base_loopexit(w->base, &tick);
	event_base_dispatch(w->base);
	for (int i = 0; i < 3; i++)
		assert_int_equal(later[i].done, 0);
	assert_int_equal(fetch_queued_prio(w->f, FETCH_PRIO_REFRESH), 3);
	assert_int_equal(fetch_active(w->f), 0);
	fetch_free(&w->f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(later[i].status, FETCH_CANCELLED);
}

/* A serving probe: answers at a thousand a second (the monotonic clock in ms), or no more
 * (the count stays where it was). */
static int serving_now;

static unsigned long long
serving_probe(void *arg)
{
	static unsigned long long count;
	struct timespec ts;

	if (serving_now) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		count = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
	}
	return count;
}

/* Answers whose callback costs the loop a millisecond of CPU, like a verification and a row. */
static void
on_done_busy(const struct fetch_result *res, void *arg)
{
	long long t0 = util_cpu_ns();

	while (util_cpu_ns() - t0 < 1000000)
		;
	on_done(res, arg);
}

static void
start_busy(struct world *w, unsigned short port, enum fetch_priority prio, struct call *c)
{
	char url[64], err[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
	c->w = w;
	c->tag = 'b';
	assert_int_equal(fetch_start(w->f, url, REQ, sizeof(REQ), prio, on_done_busy, c, NULL, err,
	    sizeof(err)), 0);
}

/* [refresh] max_cpu: while clients are served, refresh transfers wait once the upstream work
 * has had its share (they all still end); client fetches never wait; with nobody served
 * nothing waits. */
static void
test_refresh_budget_while_serving(void **state)
{
	struct world *w = *state;
	struct call *c = calloc(401, sizeof(*c)), *d = calloc(41, sizeof(*d));
	struct call client[2] = { 0 };
	unsigned long long holds;

	w->cfg->refresh_max_cpu = 20;
	fetch_set_config(w->f, w->cfg);
	fetch_set_serving_probe(w->f, serving_probe, NULL);
	serving_now = 1;
	/* 400 ms of answers: past the first 200 ms the budget judges the window. */
	for (int i = 0; i < 400; i++)
		start_busy(w, w->fast_port, FETCH_PRIO_REFRESH, &c[i]);
	/* Held refreshes do not hold a client's fetch. */
	start(w, w->fast_port, FETCH_PRIO_CLIENT, &client[0], 'c', NULL);
	assert_true(run_until(w, all_done, client));
	assert_true(run_until(w, all_done, c));
	for (int i = 0; i < 400; i++)
		assert_int_equal(c[i].status, FETCH_OK);
	assert_true((holds = fetch_budget_holds(w->f)) > 0);
	/* Nobody served (two windows for it to show): the budget does not apply. */
	serving_now = 0;
	{
		struct timeval second = { 2, 200 * 1000 };

		event_base_loopexit(w->base, &second);
		event_base_dispatch(w->base);
	}
	holds = fetch_budget_holds(w->f);
	for (int i = 0; i < 40; i++)
		start_busy(w, w->fast_port, FETCH_PRIO_REFRESH, &d[i]);
	assert_true(run_until(w, all_done, d));
	assert_int_equal(fetch_budget_holds(w->f), holds);
	free(c);
	free(d);
}

/* The limit in force for the test's host on port. */
static int
limit_of(struct world *w, unsigned short port)
{
	struct fetch_host_info info;
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
	assert_int_equal(fetch_host_state(w->f, url, time(NULL), &info), 0);
	return info.limit;
}

static void
test_limit_grows_against_fast_upstream(void **state)
{
	struct world *w = *state;
	struct call *c = calloc(401, sizeof(*c));
	struct fetch_host_limit hl[4];

	w->cfg->max_parallel = 64;
	w->cfg->max_per_host = 32;
	fetch_set_config(w->f, w->cfg);
	for (int i = 0; i < 400; i++)
		start(w, w->fast_port, FETCH_PRIO_REFRESH, &c[i], 'f', NULL);
	assert_true(run_until(w, all_done, c));
	for (int i = 0; i < 400; i++)
		assert_int_equal(c[i].status, FETCH_OK);
	/* From PACE_START to the configured most, and it was used. */
	assert_int_equal(limit_of(w, w->fast_port), 32);
	assert_true(w->peak > PACE_START);
	assert_true(w->peak <= 32);
	assert_int_equal(fetch_host_limits(w->f, hl, 4), 1);
	assert_int_equal(hl[0].limit, 32);
	free(c);
}

static void
test_limit_cut_by_timeouts(void **state)
{
	struct world *w = *state;
	struct call c[PACE_START + 1] = { 0 };

	w->cfg->upstream_timeout = 1;
	for (int i = 0; i < PACE_START; i++)
		start(w, w->slow_port, FETCH_PRIO_REFRESH, &c[i], 'x', NULL);
	assert_true(run_until(w, all_done, c));
	for (int i = 0; i < PACE_START; i++)
		assert_int_equal(c[i].status, FETCH_TIMEOUT);
	/* The transfers that timed out together are one round: one cut, by half. */
	assert_int_equal(limit_of(w, w->slow_port), PACE_START / 2);
}

/* An upstream that answers code with "Retry-After: 2": the limit is cut, the host is paused
 * (a client is refused at once, a refresh waits), and it is asked again after the pause. */
static void
overload_pauses(struct world *w, int code)
{
	struct call c[PACE_START + 1] = { 0 }, later[2] = { 0 }, client = { 0 };
	struct fetch_host_info info;
	char url[64], err[256];
	time_t t0;
	int seen;

	w->code = code;
	w->retry_after = "2";
	for (int i = 0; i < PACE_START; i++)
		start(w, w->fast_port, FETCH_PRIO_REFRESH, &c[i], 'x', NULL);
	assert_true(run_until(w, all_done, c));
	for (int i = 0; i < PACE_START; i++)
		assert_int_equal(c[i].status, FETCH_HTTP);
	assert_int_equal(limit_of(w, w->fast_port), PACE_START / 2);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", w->fast_port);
	t0 = time(NULL);
	assert_int_equal(fetch_host_state(w->f, url, t0, &info), 0);
	assert_true(info.retry_at >= t0 + 1 && info.retry_at <= t0 + 2);
	/* A client is refused during the pause, and never called back. */
	client.w = w;
	assert_int_equal(fetch_start(w->f, url, REQ, sizeof(REQ), FETCH_PRIO_CLIENT, on_done, &client,
	    NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Retry-After"));
	/* A refresh waits for the pause: the upstream sees nothing until it ends. */
	w->code = 0;
	w->retry_after = NULL;
	seen = w->fast_seen;
	start(w, w->fast_port, FETCH_PRIO_REFRESH, &later[0], 'l', NULL);
	assert_true(run_until(w, all_done, later));
	assert_int_equal(later[0].status, FETCH_OK);
	assert_int_equal(w->fast_seen, seen + 1);
	assert_true(time(NULL) >= info.retry_at);
	assert_int_equal(client.done, 0);
}

static void
test_limit_cut_and_paused_by_429(void **state)
{
	overload_pauses(*state, 429);
}

static void
test_limit_cut_and_paused_by_503(void **state)
{
	overload_pauses(*state, 503);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clients_go_before_refreshes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_host_does_not_block_another, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_frees_slots_and_never_calls_back, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_cancels_with_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_deepens_per_round_not_per_transfer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refreshes_wait_out_a_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_grows_against_fast_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_budget_while_serving, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_cut_by_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_cut_and_paused_by_429, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_cut_and_paused_by_503, setup, teardown),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
