/* A TCP proxy that adds latency, for benchmarks against an upstream "far away" (this kernel has
 * no netem), on libevent so that it costs the 2-core machine little CPU (the Python one it
 * replaces took most of a core at a thousand requests a second, CPU the upstream and staplerd
 * then lacked). Each connection waits DELAY_MS after its client's first bytes before it is
 * passed to the upstream, then bytes flow both ways unchanged: with `openssl ocsp`, which
 * closes each connection after its answer, DELAY_MS per request, like a WAN round trip. A
 * connection that closes before sending anything never reaches the upstream (OpenSSL 3.0's
 * responder spins after an empty connection). Counts the connections passed on, writing the
 * count to COUNT_FILE every 0.2 s; prints "listening" when ready.
 *
 *   delay_proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS COUNT_FILE
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

struct conn {
	struct bufferevent *client, *upstream;
	struct event *delay;
	int passed;
};

static struct event_base *base;
static struct sockaddr_in up;
static struct timeval delay_tv;
static unsigned long long passed;
static const char *count_file;

static void
conn_free(struct conn *c)
{
	if (c->client != NULL)
		bufferevent_free(c->client);
	if (c->upstream != NULL)
		bufferevent_free(c->upstream);
	if (c->delay != NULL)
		event_free(c->delay);
	free(c);
}

/* Moves what one side sent to the other. */
static void
on_read(struct bufferevent *from, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *to = from == c->client ? c->upstream : c->client;

	if (to == NULL) {
		/* The client's first bytes: the delay starts, the bytes wait in its buffer. */
		if (c->delay != NULL && !evtimer_pending(c->delay, NULL) && !c->passed)
			evtimer_add(c->delay, &delay_tv);
		return;
	}
	evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
}

/* The last bytes reached the side still open (or it failed): the connection ends. */
static void
on_drained(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_free(arg);
}

static void
on_drain_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

/* One side closed or failed: the other gets what is left of its output, then the close. */
static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *other = bev == c->client ? c->upstream : c->client;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (other != NULL && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		evbuffer_add_buffer(bufferevent_get_output(other), bufferevent_get_input(bev));
	if (other == NULL || evbuffer_get_length(bufferevent_get_output(other)) == 0) {
		conn_free(c);
		return;
	}
	/* Flush to the other side, then free (on_drained). */
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(other, NULL, NULL, NULL, NULL);
	if (bev == c->client)
		c->client = NULL;
	else
		c->upstream = NULL;
	bufferevent_free(bev);
	bufferevent_setcb(other, NULL, on_drained, on_drain_event, c);
	bufferevent_setwatermark(other, EV_WRITE, 0, 0);
}

static void
on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	c->passed = 1;
	if ((c->upstream = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    bufferevent_socket_connect(c->upstream, (struct sockaddr *)&up, sizeof(up)) < 0) {
		conn_free(c);
		return;
	}
	passed++;
	bufferevent_setcb(c->upstream, on_read, NULL, on_event, c);
	bufferevent_enable(c->upstream, EV_READ | EV_WRITE);
	evbuffer_add_buffer(bufferevent_get_output(c->upstream), bufferevent_get_input(c->client));
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct conn *c = calloc(1, sizeof(*c));

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	if (c == NULL ||
	    (c->client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (c->delay = evtimer_new(base, on_delay, c)) == NULL) {
		if (c != NULL && c->client == NULL)
			evutil_closesocket(fd);
		if (c != NULL)
			conn_free(c);
		return;
	}
	bufferevent_setcb(c->client, on_read, NULL, on_event, c);
	bufferevent_enable(c->client, EV_READ | EV_WRITE);
}

static void
on_report(evutil_socket_t fd, short what, void *arg)
{
	char tmp[4096];
	FILE *f;

	(void)fd;
	(void)what;
	(void)arg;
	snprintf(tmp, sizeof(tmp), "%s.tmp", count_file);
	if ((f = fopen(tmp, "w")) != NULL) {
		fprintf(f, "%llu\n", passed);
		if (fclose(f) == 0)
			rename(tmp, count_file);
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct evconnlistener *l;
	struct event *report;
	struct timeval every = { 0, 200 * 1000 };
	long ms;

	if (argc != 5) {
		fprintf(stderr, "usage: delay_proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS COUNT_FILE\n");
		return 2;
	}
	ms = strtol(argv[3], NULL, 10);
	delay_tv.tv_sec = ms / 1000;
	delay_tv.tv_usec = (ms % 1000) * 1000;
	count_file = argv[4];
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	up = sin;
	sin.sin_port = htons((unsigned short)strtol(argv[1], NULL, 10));
	up.sin_port = htons((unsigned short)strtol(argv[2], NULL, 10));
	if ((base = event_base_new()) == NULL ||
	    (l = evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 1024, (struct sockaddr *)&sin, sizeof(sin))) == NULL ||
	    (report = event_new(base, -1, EV_PERSIST, on_report, NULL)) == NULL) {
		perror("delay_proxy");
		return 1;
	}
	event_add(report, &every);
	on_report(-1, 0, NULL);
	printf("listening\n");
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}
