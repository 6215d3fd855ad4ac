/* The event outbox (docs/contract.md §8.13): the transitions that matter to a head-end, with
 * stable names and ids, their records, their table in SQLite, their CloudEvents 1.0 form and
 * signature. No event loop here: persist.c writes records in the write of the change that
 * caused them, events.c (the hub) raises them, webhook.c delivers what the outbox holds. */
#ifndef STAPLER_OUTBOX_H
#define STAPLER_OUTBOX_H

#include <stddef.h>
#include <stdio.h>

#include "stapler/types.h"

struct sqlite3;

/* The transition list; the names (outbox_type_name()) are the stable interface. */
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
const char *outbox_type_name(enum event_type type);
/* Parses a name; returns 0 or -1. */
int outbox_type_parse(const char *name, enum event_type *out);
/* 1 for the revocations (revoked, withdrawn): never dropped, journaled with their row. */
int outbox_type_is_revocation(enum event_type type);

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
 * braces; may be NULL). The caller frees with outbox_rec_free(). */
struct event_rec *outbox_rec_cert(enum event_type type, const struct stapler_key *key,
    long long discriminator, long long now, const char *fields);
/* A new event about anything else (an upstream host, the database), with subject and extra
 * fields; its id is unique (a random part). NULL when out of memory. */
struct event_rec *outbox_rec_other(enum event_type type, const char *subject, long long now,
    const char *fields);
struct event_rec *outbox_rec_dup(const struct event_rec *ev);
void outbox_rec_free(struct event_rec **ev);

/* Writes the `event=NAME id=… subject=… …` log line of ev. */
void outbox_log(const struct event_rec *ev);

/* One row of the outbox, as read back. Strings owned by the row (outbox_row_clear()). */
struct event_row {
	long long seq;
	char *id, *type, *subject, *data;
	long long time;
	int revocation;
	long long delivered_at;     /* 0: not yet */
};
void outbox_row_clear(struct event_row *r);

/* Inserts ev into the outbox, unless an event with its id is there (then nothing changes).
 * Runs inside the caller's transaction. Returns 0, or -1 with SQLite's error on db. */
int outbox_insert(struct sqlite3 *db, const struct event_rec *ev);
/* Calls cb with up to limit rows whose seq is after `after`, in seq order. Returns the count,
 * or -1. The row is valid during the call only. */
int outbox_read(struct sqlite3 *db, long long after, int limit,
    void (*cb)(const struct event_row *r, void *arg), void *arg);
/* The largest seq (0: none) and the number of rows, into *max_seq and *rows. 0 or -1. */
int outbox_stats(struct sqlite3 *db, long long *max_seq, long long *rows);
/* A webhook's cursor (0 when it has none yet, i.e. it gets everything held). 0 or -1. */
int outbox_cursor_get(struct sqlite3 *db, const char *name, long long *seq);
/* Sets a webhook's cursor. 0 or -1. */
int outbox_cursor_set(struct sqlite3 *db, const char *name, long long seq);
/* Marks delivered (delivered_at = now) the rows after from up to upto. 0 or -1. */
int outbox_mark_delivered(struct sqlite3 *db, long long from, long long upto, long long now);
/* Deletes the oldest delivered rows while more than keep rows are held. Returns the count
 * deleted, or -1. */
long long outbox_prune(struct sqlite3 *db, long long keep);

/* The CloudEvents 1.0 structured-mode JSON of r (specversion, id, source, type
 * "io.staplerd.NAME", subject, time RFC 3339, datacontenttype, the extension `sequence`,
 * data). Returns a new NUL-terminated string (free()), or NULL. */
char *outbox_cloudevent(const struct event_row *r, const char *source);
/* HMAC-SHA256 of body under secret, as "sha256=" and 64 lowercase hex digits (the header
 * value of X-Staplerd-Signature). out must hold OUTBOX_SIG_LEN bytes. 0 or -1. */
#define OUTBOX_SIG_LEN (7 + 64 + 1)
int outbox_sign(const char *secret, const unsigned char *body, size_t len,
    char out[OUTBOX_SIG_LEN]);

#endif
