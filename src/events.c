/* The event hub: admits a raised event (repeats and the outbox bound), logs it, counts it for
 * /metrics, and writes it on its own through the write-behind queue when no row change
 * carries it. The records and the outbox are outbox.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "persist.h"
#include "util.h"

/* Ids raised lately, to keep a transition seen again and again (a refresh failing every
 * minute inside the danger window) to one log line and one write. */
#define EVENTS_RECENT 4096

struct events {
	const struct stapler_config *cfg;
	struct persist *persist;
	void (*kick)(void *arg);
	void *kick_arg;
	long long outbox_rows;
	unsigned long long raised[EV_TYPES];
	unsigned long long dropped;
	unsigned long long delivered, delivery_failures;
	long long pending;
	char recent[EVENTS_RECENT][EVENT_ID_HEX + 1];
	size_t recent_next;
};

struct events *
events_new(const struct stapler_config *cfg)
{
	struct events *ev = calloc(1, sizeof(*ev));

	if (ev != NULL)
		ev->cfg = cfg;
	return ev;
}

void
events_free(struct events **evp)
{
	if (evp == NULL || *evp == NULL)
		return;
	free(*evp);
	*evp = NULL;
}

void
events_set_config(struct events *ev, const struct stapler_config *cfg)
{
	ev->cfg = cfg;
}

void
events_set_persist(struct events *ev, struct persist *p)
{
	ev->persist = p;
}

void
events_set_outbox_rows(struct events *ev, long long rows)
{
	ev->outbox_rows = rows;
}

void
events_written(struct events *ev, size_t n)
{
	ev->outbox_rows += (long long)n;
}

void
events_pruned(struct events *ev, long long n)
{
	ev->outbox_rows = ev->outbox_rows > n ? ev->outbox_rows - n : 0;
}

int
events_admit(struct events *ev, const struct event_rec *rec)
{
	for (size_t i = 0; i < EVENTS_RECENT; i++) {
		if (ev->recent[i][0] != '\0' && strcmp(ev->recent[i], rec->id) == 0)
			return 0;
	}
	if (!outbox_type_is_revocation(rec->type) && ev->outbox_rows >= ev->cfg->events_outbox_max) {
		ev->dropped++;
		if (ev->dropped == 1 || ev->dropped % 1000 == 0)
			log_error("event_dropped", "type=%s id=%s subject=\"%s\" dropped=%llu "
			    "outbox_rows=%lld outbox_max=%ld reason=\"the outbox is full of events no "
			    "webhook has taken: revocations are still kept\"", outbox_type_name(rec->type),
			    rec->id, rec->subject, ev->dropped, ev->outbox_rows,
			    ev->cfg->events_outbox_max);
		return 0;
	}
	util_strlcpy(ev->recent[ev->recent_next], rec->id, sizeof(ev->recent[0]));
	ev->recent_next = (ev->recent_next + 1) % EVENTS_RECENT;
	ev->raised[rec->type]++;
	outbox_log(rec);
	return 1;
}

void
events_write(struct events *ev, struct event_rec *rec)
{
	if (rec == NULL)
		return;
	if (ev == NULL || ev->persist == NULL || persist_event(ev->persist, rec) < 0)
		outbox_rec_free(&rec);
}

void
events_set_kick(struct events *ev, void (*kick)(void *arg), void *arg)
{
	ev->kick = kick;
	ev->kick_arg = arg;
}

void
events_kick(struct events *ev)
{
	if (ev != NULL && ev->kick != NULL)
		ev->kick(ev->kick_arg);
}

void
events_raise(struct events *ev, struct event_rec *rec)
{
	if (rec == NULL)
		return;
	if (ev == NULL || !events_admit(ev, rec)) {
		outbox_rec_free(&rec);
		return;
	}
	events_write(ev, rec);
}

void
events_stats(const struct events *ev, struct events_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (ev == NULL)
		return;
	memcpy(out->raised, ev->raised, sizeof(out->raised));
	out->dropped = ev->dropped;
	out->outbox_rows = ev->outbox_rows;
	out->delivered = ev->delivered;
	out->delivery_failures = ev->delivery_failures;
	out->pending = ev->pending;
}

void
events_note_delivery(struct events *ev, int ok, long long pending)
{
	if (ev == NULL)
		return;
	if (ok)
		ev->delivered++;
	else
		ev->delivery_failures++;
	ev->pending = pending;
}

void
events_metrics_write(const struct events *ev, FILE *fp)
{
	struct events_stats st;

	if (ev == NULL)
		return;
	events_stats(ev, &st);
	metrics_family(fp, "staplerd_events_raised_total", "counter", "Events raised (logged and "
	    "written to the outbox), by type.");
	for (int i = 0; i < EV_TYPES; i++) {
		const char *const labels[] = { "type", outbox_type_name((enum event_type)i), NULL };

		metrics_sample(fp, "staplerd_events_raised_total", labels, (double)st.raised[i]);
	}
	metrics_single(fp, "staplerd_events_dropped_total", "counter", "Events dropped because the "
	    "outbox held [events] outbox_max undelivered ones (never a revocation).",
	    (double)st.dropped);
	metrics_single(fp, "staplerd_events_outbox_rows", "gauge", "Events the outbox holds.",
	    (double)st.outbox_rows);
	metrics_single(fp, "staplerd_events_delivered_total", "counter", "Webhook deliveries "
	    "acknowledged with a 2xx.",
	    (double)st.delivered);
	metrics_single(fp, "staplerd_events_delivery_failures_total", "counter", "Webhook "
	    "deliveries that failed (retried with backoff).",
	    (double)st.delivery_failures);
	metrics_single(fp, "staplerd_events_undelivered", "gauge", "Events the slowest webhook has "
	    "still to take.",
	    (double)st.pending);
}
