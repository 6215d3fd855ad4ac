/* The event outbox: the transition names, event records and their stable ids, the SQLite
 * outbox table, the CloudEvents JSON and its HMAC signature. No event loop: the write-behind
 * queue (persist.c) writes records here, the hub (events.c) raises them, the deliverer
 * (webhook.c) and the admin socket read them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "fmt.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

static const char *const type_names[EV_TYPES] = {
	[EV_CERT_REVOKED] = "cert_revoked",
	[EV_CERT_WITHDRAWN] = "cert_withdrawn",
	[EV_CRL_OCSP_DISAGREE] = "crl_ocsp_disagree",
	[EV_STAPLE_DANGER] = "staple_danger",
	[EV_STAPLE_EXPIRED] = "staple_expired",
	[EV_UPSTREAM_FAILING] = "upstream_failing",
	[EV_UPSTREAM_RECOVERED] = "upstream_recovered",
	[EV_REFRESH_BEHIND] = "refresh_behind",
	[EV_REFRESH_CAUGHT_UP] = "refresh_caught_up",
	[EV_WRITES_FAILING] = "writes_failing",
	[EV_WRITES_RECOVERED] = "writes_recovered",
};


const char *
outbox_type_name(enum event_type type)
{
	return (unsigned)type < EV_TYPES ? type_names[type] : NULL;
}

int
outbox_type_parse(const char *name, enum event_type *out)
{
	for (int i = 0; i < EV_TYPES; i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*out = (enum event_type)i;
			return 0;
		}
	}
	return -1;
}

int
outbox_type_is_revocation(enum event_type type)
{
	return type == EV_CERT_REVOKED || type == EV_CERT_WITHDRAWN;
}

static struct event_rec *
rec_new(enum event_type type, const char *subject, long long now, const char *fields,
    const char *base_fields)
{
	struct event_rec *ev = calloc(1, sizeof(*ev));
	size_t n;

	if (ev == NULL)
		return NULL;
	ev->type = type;
	ev->time = now;
	util_strlcpy(ev->subject, subject, sizeof(ev->subject));
	n = strlen(base_fields) + (fields != NULL ? strlen(fields) : 0) + 4;
	if ((ev->data = malloc(n)) == NULL) {
		free(ev);
		return NULL;
	}
	snprintf(ev->data, n, "{%s%s%s}", base_fields,
	    fields != NULL && fields[0] != '\0' && base_fields[0] != '\0' ? "," : "",
	    fields != NULL ? fields : "");
	return ev;
}

/* The first 128 bits of SHA-256 over text, as lowercase hex. */
static void
id_of(const char *text, char out[EVENT_ID_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];

	memset(md, 0, sizeof(md));
	(void)util_sha256(text, strlen(text), md);
	for (int i = 0; i < EVENT_ID_HEX / 2; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[EVENT_ID_HEX] = '\0';
}

struct event_rec *
outbox_rec_cert(enum event_type type, const struct stapler_key *key, long long discriminator,
    long long now, const char *fields)
{
	char serial[STAPLER_SERIAL_HEX_MAX], kh[STAPLER_SHA1_HEX], nh[STAPLER_SHA1_HEX];
	char subject[EVENT_SUBJECT_MAX], base[400], idtext[300];
	const char *alg = stapler_hash_alg_name((enum stapler_hash_alg)key->hash_alg);
	struct event_rec *ev;

	stapler_key_serial_hex(key, serial);
	stapler_key_hash_hex(key, kh);
	stapler_key_name_hash_hex(key, nh);
	snprintf(subject, sizeof(subject), "%s/%s", kh, serial);
	snprintf(base, sizeof(base), "\"serial\":\"%s\",\"issuer_key_hash\":\"%s\","
	    "\"issuer_name_hash\":\"%s\",\"hash_alg\":\"%s\"", serial, kh, nh, alg);
	if ((ev = rec_new(type, subject, now, fields, base)) == NULL)
		return NULL;
	snprintf(idtext, sizeof(idtext), "%s|%s|%s|%s|%s|%lld", type_names[type], alg, nh, kh,
	    serial, discriminator);
	id_of(idtext, ev->id);
	return ev;
}

struct event_rec *
outbox_rec_other(enum event_type type, const char *subject, long long now, const char *fields)
{
	struct event_rec *ev = rec_new(type, subject, now, fields, "");
	unsigned char rnd[16];
	char idtext[EVENT_SUBJECT_MAX + 128], hex[33];

	if (ev == NULL)
		return NULL;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		outbox_rec_free(&ev);
		return NULL;
	}
	util_hex(rnd, sizeof(rnd), hex);
	snprintf(idtext, sizeof(idtext), "%s|%s|%lld|%s", type_names[type], subject, now, hex);
	id_of(idtext, ev->id);
	return ev;
}

struct event_rec *
outbox_rec_dup(const struct event_rec *src)
{
	struct event_rec *ev = malloc(sizeof(*ev));

	if (ev == NULL)
		return NULL;
	*ev = *src;
	if ((ev->data = strdup(src->data)) == NULL) {
		free(ev);
		return NULL;
	}
	return ev;
}

void
outbox_rec_free(struct event_rec **evp)
{
	if (evp == NULL || *evp == NULL)
		return;
	free((*evp)->data);
	free(*evp);
	*evp = NULL;
}

void
outbox_log(const struct event_rec *ev)
{
	enum log_level lvl = ev->type == EV_UPSTREAM_RECOVERED || ev->type == EV_REFRESH_CAUGHT_UP ||
	    ev->type == EV_WRITES_RECOVERED ? LOG_LVL_INFO : LOG_LVL_WARN;

	log_msg(lvl, type_names[ev->type], "id=%s subject=\"%s\" data=\"%s\"", ev->id, ev->subject,
	    ev->data);
}

void
outbox_row_clear(struct event_row *r)
{
	free(r->id);
	free(r->type);
	free(r->subject);
	free(r->data);
	memset(r, 0, sizeof(*r));
}

int
outbox_insert(sqlite3 *db, const struct event_rec *ev)
{
	static const char sql[] = "INSERT OR IGNORE INTO event_outbox (id, type, subject, time, "
	    "revocation, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type_names[ev->type], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ev->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, ev->time);
	sqlite3_bind_int(st, 5, outbox_type_is_revocation(ev->type));
	sqlite3_bind_text(st, 6, ev->data, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static char *
col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return strdup(t != NULL ? (const char *)t : "");
}

int
outbox_read(sqlite3 *db, long long after, int limit,
    void (*cb)(const struct event_row *r, void *arg), void *arg)
{
	static const char sql[] = "SELECT seq, id, type, subject, time, revocation, data, "
	    "coalesce(delivered_at, 0) FROM event_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2";
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct event_row r = { 0 };

		r.seq = sqlite3_column_int64(st, 0);
		r.id = col_dup(st, 1);
		r.type = col_dup(st, 2);
		r.subject = col_dup(st, 3);
		r.time = sqlite3_column_int64(st, 4);
		r.revocation = sqlite3_column_int(st, 5);
		r.data = col_dup(st, 6);
		r.delivered_at = sqlite3_column_int64(st, 7);
		if (r.id != NULL && r.type != NULL && r.subject != NULL && r.data != NULL) {
			cb(&r, arg);
			n++;
		}
		outbox_row_clear(&r);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -1;
}

int
outbox_stats(sqlite3 *db, long long *max_seq, long long *rows)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), 0), count(*) FROM event_outbox", -1,
	    &st, NULL) != SQLITE_OK)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*max_seq = sqlite3_column_int64(st, 0);
		*rows = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int
outbox_cursor_get(sqlite3 *db, const char *name, long long *seq)
{
	sqlite3_stmt *st;
	int rc;

	*seq = 0;
	if (sqlite3_prepare_v2(db, "SELECT seq FROM event_cursor WHERE name = ?1", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
exec_bound(sqlite3 *db, const char *sql, const char *text, long long a, long long b)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (text != NULL)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, a);
	sqlite3_bind_int64(st, 3, b);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
outbox_cursor_set(sqlite3 *db, const char *name, long long seq)
{
	return exec_bound(db, "INSERT INTO event_cursor (name, seq) VALUES (?1, ?2) "
	    "ON CONFLICT(name) DO UPDATE SET seq = max(seq, excluded.seq)", name, seq, 0);
}

int
outbox_mark_delivered(sqlite3 *db, long long from, long long upto, long long now)
{
	sqlite3_stmt *st;
	int rc;

	/* A range of the primary key: no scan of what was marked before. */
	if (sqlite3_prepare_v2(db, "UPDATE event_outbox SET delivered_at = ?3 WHERE seq > ?1 AND "
	    "seq <= ?2 AND delivered_at IS NULL", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, upto);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

long long
outbox_prune(sqlite3 *db, long long keep)
{
	if (exec_bound(db, "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM event_outbox "
	    "WHERE delivered_at IS NOT NULL ORDER BY seq LIMIT max(0, (SELECT count(*) FROM "
	    "event_outbox) - ?2)) AND ?1 IS NULL", NULL, keep, 0) < 0)
		return -1;
	return sqlite3_changes(db);
}

char *
outbox_cloudevent(const struct event_row *r, const char *source)
{
	char when[21], seq[24], type[96];
	char *out = NULL;
	size_t len = 0;
	json_t *data;
	json_error_t jerr;
	FILE *fp;
	int ok;

	/* The data member is the row's JSON object as stored (written by us); one that does not
	 * parse as an object (a row damaged on disk) goes out as {}. jansson only checks it: the
	 * document is written by the one JSON writer (fmt.c). */
	data = r->data != NULL ? json_loads(r->data, 0, &jerr) : NULL;
	ok = json_is_object(data);
	json_decref(data);
	util_iso_time((time_t)r->time, when);
	snprintf(seq, sizeof(seq), "%020lld", r->seq);
	snprintf(type, sizeof(type), "io.staplerd.%s", r->type != NULL ? r->type : "");
	if ((fp = open_memstream(&out, &len)) == NULL)
		return NULL;
	fputs("{\"specversion\":\"1.0\",\"id\":", fp);
	fmt_json_str(fp, r->id);
	fputs(",\"source\":", fp);
	fmt_json_str(fp, source);
	fputs(",\"type\":", fp);
	fmt_json_str(fp, type);
	fputs(",\"subject\":", fp);
	fmt_json_str(fp, r->subject);
	fprintf(fp, ",\"time\":\"%s\",\"datacontenttype\":\"application/json\","
	    "\"sequence\":\"%s\",\"data\":%s}", when, seq, ok ? r->data : "{}");
	if (ferror(fp) | fclose(fp)) {
		free(out);
		return NULL;
	}
	return out;
}

int
outbox_sign(const char *secret, const unsigned char *body, size_t len, char out[OUTBOX_SIG_LEN])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, md, &mdlen) == NULL ||
	    mdlen != 32)
		return -1;
	memcpy(out, "sha256=", 7);
	for (unsigned i = 0; i < mdlen; i++) {
		out[7 + 2 * i] = digits[md[i] >> 4];
		out[7 + 2 * i + 1] = digits[md[i] & 15];
	}
	out[7 + 64] = '\0';
	return 0;
}
