/* The watch: compares the upstreams failing and the refresh's lag with what it saw last and
 * raises an event for each change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "events.h"
#include "fetch.h"
#include "fmt.h"
#include "refresh.h"
#include "url.h"
#include "watch.h"

struct watch {
	const struct stapler_config *cfg;
	const struct fetcher *fetch;
	const struct refresher *refresh;
	struct events *hub;
	struct event *timer;
	size_t n_failing;
	char failing[WATCH_UPSTREAMS_MAX][URL_AUTHORITY_MAX];
	int behind;
};

static int
listed(const char *names, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = names; (p = strstr(p, name)) != NULL; p += len) {
		if ((p == names || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
			return 1;
	}
	return 0;
}

static void
raise_upstream(struct watch *w, enum event_type type, const char *host, time_t now)
{
	static const char head[] = "\"upstream\":\"";
	char fields[6 * URL_AUTHORITY_MAX + 32];
	size_t n = sizeof(head) - 1;

	memcpy(fields, head, n);
	n = fmt_json_escape(fields, n, sizeof(fields) - 2, host);
	memcpy(fields + n, "\"", 2);
	events_raise(w->hub, outbox_rec_other(type, host, (long long)now, fields));
}

static void
check_upstreams(struct watch *w, time_t now)
{
	char names[WATCH_UPSTREAMS_MAX * URL_AUTHORITY_MAX];
	size_t kept = 0;

	(void)fetch_upstreams_failing(w->fetch, now, w->cfg->health_upstream_failing, names,
	    sizeof(names));
	for (size_t i = 0; i < w->n_failing; i++) {
		if (!listed(names, w->failing[i])) {
			raise_upstream(w, EV_UPSTREAM_RECOVERED, w->failing[i], now);
			continue;
		}
		if (kept != i)
			memcpy(w->failing[kept], w->failing[i], sizeof(w->failing[0]));
		kept++;
	}
	w->n_failing = kept;
	for (char *p = names; *p != '\0';) {
		size_t len = strcspn(p, " ");
		char host[URL_AUTHORITY_MAX];
		int known = 0;

		snprintf(host, sizeof(host), "%.*s", (int)len, p);
		p += len;
		while (*p == ' ')
			p++;
		for (size_t i = 0; i < w->n_failing && !known; i++)
			known = strcmp(w->failing[i], host) == 0;
		if (known || w->n_failing == WATCH_UPSTREAMS_MAX)
			continue;
		memcpy(w->failing[w->n_failing++], host, sizeof(host));
		raise_upstream(w, EV_UPSTREAM_FAILING, host, now);
	}
}

static void
check_refresh(struct watch *w, time_t now)
{
	struct refresh_pace pace;
	char fields[128];
	int behind;

	if (w->refresh == NULL || w->cfg->health_refresh_behind <= 0)
		return;
	refresh_pace(w->refresh, now, &pace);
	behind = pace.behind >= w->cfg->health_refresh_behind;
	if (behind == w->behind)
		return;
	w->behind = behind;
	snprintf(fields, sizeof(fields), "\"behind_seconds\":%lld,\"threshold_seconds\":%lld",
	    pace.behind, w->cfg->health_refresh_behind);
	events_raise(w->hub, outbox_rec_other(behind ? EV_REFRESH_BEHIND : EV_REFRESH_CAUGHT_UP,
	    "refresh", (long long)now, fields));
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	time_t now = time(NULL);

	check_upstreams(w, now);
	check_refresh(w, now);
}

struct watch *
watch_new(struct event_base *base, const struct stapler_config *cfg, const struct fetcher *fetch,
    const struct refresher *refresh, struct events *hub)
{
	struct watch *w = calloc(1, sizeof(*w));
	struct timeval tv = { WATCH_INTERVAL_S, 0 };

	if (w == NULL)
		return NULL;
	w->cfg = cfg;
	w->fetch = fetch;
	w->refresh = refresh;
	w->hub = hub;
	if ((w->timer = event_new(base, -1, EV_PERSIST, on_tick, w)) == NULL ||
	    event_add(w->timer, &tv) < 0) {
		watch_free(&w);
		return NULL;
	}
	return w;
}

void
watch_set_config(struct watch *w, const struct stapler_config *cfg)
{
	w->cfg = cfg;
}

void
watch_set_refresher(struct watch *w, const struct refresher *refresh)
{
	if (w != NULL)
		w->refresh = refresh;
}

void
watch_free(struct watch **wp)
{
	if (wp == NULL || *wp == NULL)
		return;
	if ((*wp)->timer != NULL)
		event_free((*wp)->timer);
	free(*wp);
	*wp = NULL;
}
