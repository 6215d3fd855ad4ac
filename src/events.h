/* Events pushed to the operator (PRODUCT.md §8.13): the transitions that matter to a head-end,
 * with stable names and ids, their outbox in SQLite, their CloudEvents 1.0 form and signature.
 * Raising one logs it and hands it to the write-behind queue, riding in the write of the change
 * that caused it when there is one; webhook.c delivers what the outbox holds. */
#ifndef STAPLER_EVENTS_H
#define STAPLER_EVENTS_H

#include <stddef.h>
#include <stdio.h>

#include "stapler/types.h"

struct sqlite3;
struct persist;
struct stapler_config;

/* The transition list; the names (events_type_name()) are the stable interface. */
enum event_type {
	EV_CERT_REVOKED = 0,      /* OCSP answered revoked for a staple held good or unknown */
	EV_CERT_WITHDRAWN,        /* a CRL lists it: its good/unknown staple is no longer served */
	EV_CRL_OCSP_DISAGREE,     /* OCSP still says good, from before the CRL that lists it */
	EV_STAPLE_DANGER,         /* inside [health] danger_window and its refresh failing */
	EV_STAPLE_EXPIRED,        /* past nextUpdate (less the margin), nothing fresh: not served */
	EV_UPSTREAM_FAILING,      /* an upstream failing for [health] upstream_failing */
	EV_UPSTREAM_RECOVERED,
	EV_REFRESH_BEHIND,        /* the most overdue entry [health] refresh_behind late */
	EV_REFRESH_CAUGHT_UP,
	EV_WRITES_FAILING,        /* the database refuses writes */
	EV_WRITES_RECOVERED,
	EV_TYPES
};

/* The stable name ("cert_revoked"); NULL for a value out of range. */
const char *events_type_name(enum event_type type);
/* Parses a name; returns 0 or -1. */
int events_type_parse(const char *name, enum event_type *out);
/* 1 for the revocations (revoked, withdrawn): never dropped, journaled with their row. */
int events_type_is_revocation(enum event_type type);

/* Hex digits of an event id (the first 128 bits of a SHA-256). */
#define EVENT_ID_HEX 32
#define EVENT_SUBJECT_MAX 160

/* One event, in memory until its write lands. */
struct event_rec {
	enum event_type type;
	char id[EVENT_ID_HEX + 1];
	char subject[EVENT_SUBJECT_MAX];
	long long time;
	char *data;                 /* a JSON object, owned */
};

/* A new event about one certificate (key), or NULL (out of memory). Its id is derived from the
 * type, the whole key and discriminator (what makes this occurrence this one, e.g. the
 * revocation's thisUpdate), so raising the same transition again, after a crash, names the
 * same event. fields: extra JSON members, already encoded (`"status":"good","url":"…"`, no
 * braces; may be NULL). The caller frees with events_rec_free(). */
struct event_rec *events_rec_cert(enum event_type type, const struct stapler_key *key,
    long long discriminator, long long now, const char *fields);
/* A new event about anything else (an upstream host, the database), with subject and extra
 * fields; its id is unique (a random part). NULL when out of memory. */
struct event_rec *events_rec_other(enum event_type type, const char *subject, long long now,
    const char *fields);
struct event_rec *events_rec_dup(const struct event_rec *ev);
void events_rec_free(struct event_rec **ev);

/* Writes the `event=NAME id=… subject=… …` log line of ev. */
void events_log(const struct event_rec *ev);

/* One row of the outbox, as read back. Strings owned by the row (events_row_clear()). */
struct event_row {
	long long seq;
	char *id, *type, *subject, *data;
	long long time;
	int revocation;
	long long delivered_at;     /* 0: not yet */
};
void events_row_clear(struct event_row *r);

/* Inserts ev into the outbox, unless an event with its id is there (then nothing changes).
 * Runs inside the caller's transaction. Returns 0, or -1 with SQLite's error on db. */
int events_outbox_insert(struct sqlite3 *db, const struct event_rec *ev);
/* Calls cb with up to limit rows whose seq is after `after`, in seq order. Returns the count,
 * or -1. The row is valid during the call only. */
int events_outbox_read(struct sqlite3 *db, long long after, int limit,
    void (*cb)(const struct event_row *r, void *arg), void *arg);
/* The largest seq (0: none) and the number of rows, into *max_seq and *rows. 0 or -1. */
int events_outbox_stats(struct sqlite3 *db, long long *max_seq, long long *rows);
/* A webhook's cursor (0 when it has none yet, i.e. it gets everything held). 0 or -1. */
int events_cursor_get(struct sqlite3 *db, const char *name, long long *seq);
/* Sets a webhook's cursor. 0 or -1. */
int events_cursor_set(struct sqlite3 *db, const char *name, long long seq);
/* Marks delivered (delivered_at = now) the rows after from up to upto. 0 or -1. */
int events_mark_delivered(struct sqlite3 *db, long long from, long long upto, long long now);
/* Deletes the oldest delivered rows while more than keep rows are held. Returns the count
 * deleted, or -1. */
long long events_outbox_prune(struct sqlite3 *db, long long keep);

/* The CloudEvents 1.0 structured-mode JSON of r (specversion, id, source, type
 * "io.staplerd.NAME", subject, time RFC 3339, datacontenttype, the extension `sequence`,
 * data). Returns a new NUL-terminated string (free()), or NULL. */
char *events_cloudevent(const struct event_row *r, const char *source);
/* HMAC-SHA256 of body under secret, as "sha256=" and 64 lowercase hex digits (the header
 * value of X-Staplerd-Signature). out must hold EVENTS_SIG_LEN bytes. 0 or -1. */
#define EVENTS_SIG_LEN (7 + 64 + 1)
int events_sign(const char *secret, const unsigned char *body, size_t len,
    char out[EVENTS_SIG_LEN]);

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
