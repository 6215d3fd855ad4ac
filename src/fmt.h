/* Text for operators and the admin protocol: relative times, canonical serials and issuer
 * hashes as typed by people, and logfmt-style key=value lines. No I/O beyond a FILE *. */
#ifndef STAPLER_FMT_H
#define STAPLER_FMT_H

#include <stddef.h>
#include <stdio.h>

#include "stapler/types.h"

/* t relative to now in at most two units: "in 6d 23h", "3m ago", "now" (|t - now| < 1 s).
 * Always terminates out. */
void fmt_reltime(long long t, long long now, char *out, size_t cap);

/* Canonical serial as `openssl x509 -serial` prints it: uppercase hex of the magnitude, with
 * any case, ':' separators, an odd digit count and leading zero octets accepted
 * ("0a:ff" -> "0AFF", "00FF" -> "FF"). Returns 0, or -1 when in is not a serial. */
int fmt_serial(const char *in, char out[STAPLER_SERIAL_HEX_MAX]);
/* Canonical issuer key hash: 40 uppercase hex digits (any case, ':' allowed). 0 or -1. */
int fmt_key_hash(const char *in, char out[STAPLER_SHA1_HEX]);

/* Writes s as a JSON string (quotes included). The one JSON string writer: every JSON staplerd
 * and staplerctl write goes through it or fmt_json_escape(), which share one escape. */
void fmt_json_str(FILE *fp, const char *s);
/* Appends s JSON-escaped (no quotes) to out, which holds n bytes of cap, as far as whole
 * characters fit, and keeps it terminated (cap > n). Returns the new length. */
size_t fmt_json_escape(char *out, size_t n, size_t cap, const char *s);

/* Appends ` key=value` to buf (length *len, capacity cap): the value bare when it is a
 * non-empty run of printable characters without spaces, '"' or '\\', else double-quoted with
 * \" \\ \n escapes. Returns 0, or -1 when it does not fit (buf then unchanged). */
int fmt_kv_add(char *buf, size_t *len, size_t cap, const char *key, const char *value);
/* Finds key in a key=value line (the first word, e.g. "ok", is not a key) and copies its
 * unescaped value into out. Returns 1 when found, 0 when absent, -1 when the value does not
 * fit or the line is malformed. */
int fmt_kv_get(const char *line, const char *key, char *out, size_t cap);

#endif
