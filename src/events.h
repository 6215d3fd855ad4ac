/* Events pushed to the operator (docs/contract.md §8.13): the hub. Raising an event logs it
 * and hands it to the write-behind queue, riding in the write of the change that caused it
 * when there is one; webhook.c delivers what the outbox (outbox.h) holds. */
#ifndef STAPLER_EVENTS_H
#define STAPLER_EVENTS_H

#include <stddef.h>
#include <stdio.h>

#include "outbox.h"

struct persist;
struct stapler_config;

/* The hub: counts, the outbox bound, and the way into the write-behind queue. */
struct events;

/* A new hub, or NULL. cfg is read for [events] outbox_max; events_set_config() on reload. */
struct events *events_new(const struct stapler_config *cfg);
void events_free(struct events **ev);
void events_set_config(struct events *ev, const struct stapler_config *cfg);
/* Where standalone events are written (NULL: straight nowhere but the log, as in tools). */
void events_set_persist(struct events *ev, struct persist *p);
/* Sets the rows the outbox holds (read at start), for the bound. */
void events_set_outbox_rows(struct events *ev, long long rows);
/* A write that carried n events landed: their rows count against the bound. */
void events_written(struct events *ev, size_t n);
/* Rows pruned or delivered and deleted. */
void events_pruned(struct events *ev, long long n);

/* Admits an event about to be raised: 1 when it is to be logged and persisted, 0 when it is
 * a repeat of one raised moments ago (same id) or dropped because the outbox is full
 * (counted and logged; a revocation is never dropped). */
int events_admit(struct events *ev, const struct event_rec *rec);
/* Writes an admitted event on its own through the write-behind queue (the log line was
 * written by events_admit()). Takes rec over. */
void events_write(struct events *ev, struct event_rec *rec);
/* Who is told that events reached the outbox outside the write-behind queue (a CRL's write):
 * the deliverer. */
void events_set_kick(struct events *ev, void (*kick)(void *arg), void *arg);
void events_kick(struct events *ev);
/* Raises a standalone event (no row change carries it): admitted, logged, written on its own
 * through the write-behind queue. Takes rec over (frees it). */
void events_raise(struct events *ev, struct event_rec *rec);

/* What the webhooks did (webhook.c tells the hub, so /metrics needs the hub only): one
 * delivery acknowledged (ok) or failed, and what the slowest webhook has still to take. */
void events_note_delivery(struct events *ev, int ok, long long pending);

struct events_stats {
	unsigned long long raised[EV_TYPES];
	unsigned long long dropped;       /* refused because the outbox was full */
	long long outbox_rows;
	unsigned long long delivered, delivery_failures;
	long long pending;
	unsigned long long withdrawn_now; /* staples withdrawn by a CRL, held now (crl.c) */
};
void events_stats(const struct events *ev, struct events_stats *out);
/* The event families of /metrics (Prometheus text). ev may be NULL (nothing written). */
void events_metrics_write(const struct events *ev, FILE *fp);

#endif
