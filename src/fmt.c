/* Text for operators and the admin protocol: relative times, canonical keys, key=value lines. */
#include <ctype.h>
#include <string.h>

#include "fmt.h"
#include "util.h"

void
fmt_reltime(long long t, long long now, char *out, size_t cap)
{
	static const struct { long long secs; char unit; } units[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};
	unsigned long long d = t >= now ? (unsigned long long)(t - now) : (unsigned long long)(now - t);
	char parts[48] = "";
	size_t off = 0;
	int shown = 0;

	if (d == 0) {
		snprintf(out, cap, "now");
		return;
	}
	/* Two adjacent units at most: "6d 23h", not "6d 23h 59m 59s". */
	for (size_t i = 0; i < UTIL_ARRAY_LEN(units) && shown < 2; i++) {
		unsigned long long n = d / (unsigned long long)units[i].secs;

		if (n == 0 && shown == 0)
			continue;
		if (n > 0)
			off += (size_t)snprintf(parts + off, sizeof(parts) - off, "%s%llu%c",
			    off ? " " : "", n, units[i].unit);
		d -= n * (unsigned long long)units[i].secs;
		shown++;
	}
	if (t >= now)
		snprintf(out, cap, "in %s", parts);
	else
		snprintf(out, cap, "%s ago", parts);
}

int
fmt_serial(const char *in, char out[STAPLER_SERIAL_HEX_MAX])
{
	static const char zero_hash[] = "0000000000000000000000000000000000000000";
	char digits[2 * STAPLER_SERIAL_MAX + 3];
	struct stapler_key key;
	size_t n = 0;
	int neg = 0;

	if (*in == '-') {
		neg = 1;
		in++;
	}
	digits[n++] = '0';   /* room for padding an odd count */
	for (; *in != '\0'; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || n + 2 >= sizeof(digits))
			return -1;
		digits[n++] = (char)toupper((unsigned char)*in);
	}
	if (n == 1)
		return -1;
	digits[n] = '\0';
	/* Hex pairs are read from the left: an odd count gets its leading '0'. */
	{
		const char *hex = (n - 1) % 2 ? digits : digits + 1;
		char signed_hex[sizeof(digits) + 1];

		snprintf(signed_hex, sizeof(signed_hex), "%s%s", neg ? "-" : "", hex);
		if (stapler_key_from_hex(&key, STAPLER_HASH_SHA1, zero_hash, zero_hash, signed_hex) < 0)
			return -1;
	}
	stapler_key_serial_hex(&key, out);
	return 0;
}

int
fmt_key_hash(const char *in, char out[STAPLER_SHA1_HEX])
{
	unsigned char bin[STAPLER_SHA1_LEN + 1];

	if (util_unhex(in, bin, sizeof(bin)) != STAPLER_SHA1_LEN)
		return -1;
	util_hex(bin, STAPLER_SHA1_LEN, out);
	return 0;
}

/* The one JSON string escape: c as it stands inside a JSON string, into out (at most 6
 * bytes); returns the length. */
static size_t
json_char(unsigned char c, char out[6])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"':
	case '\\':
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	case '\n':
		memcpy(out, "\\n", 2);
		return 2;
	case '\t':
		memcpy(out, "\\t", 2);
		return 2;
	}
	if (c < 0x20 || c == 0x7f) {
		memcpy(out, "\\u00", 4);
		out[4] = hex[c >> 4];
		out[5] = hex[c & 15];
		return 6;
	}
	out[0] = (char)c;
	return 1;
}

void
fmt_json_str(FILE *fp, const char *s)
{
	char e[6];

	fputc('"', fp);
	for (; s != NULL && *s != '\0'; s++)
		fwrite(e, 1, json_char((unsigned char)*s, e), fp);
	fputc('"', fp);
}

size_t
fmt_json_escape(char *out, size_t n, size_t cap, const char *s)
{
	char e[6];

	for (; s != NULL && *s != '\0'; s++) {
		size_t k = json_char((unsigned char)*s, e);

		if (n + k >= cap)
			break;
		memcpy(out + n, e, k);
		n += k;
	}
	if (n < cap)
		out[n] = '\0';
	return n;
}

static int
bare_ok(const char *v)
{
	if (*v == '\0')
		return 0;
	for (; *v != '\0'; v++) {
		if (!isgraph((unsigned char)*v) || *v == '"' || *v == '\\' || *v == '=')
			return 0;
	}
	return 1;
}

int
fmt_kv_add(char *buf, size_t *len, size_t cap, const char *key, const char *value)
{
	size_t off = *len;
	int quote = !bare_ok(value);

#define PUT(ch) do { if (off + 1 >= cap) goto full; buf[off++] = (ch); } while (0)
	PUT(' ');
	for (const char *k = key; *k != '\0'; k++)
		PUT(*k);
	PUT('=');
	if (quote)
		PUT('"');
	for (const char *v = value; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\') {
			PUT('\\');
			PUT(*v);
		} else if (*v == '\n') {
			PUT('\\');
			PUT('n');
		} else if ((unsigned char)*v < 0x20) {
			PUT(' ');
		} else {
			PUT(*v);
		}
	}
	if (quote)
		PUT('"');
#undef PUT
	buf[off] = '\0';
	*len = off;
	return 0;
full:
	buf[*len] = '\0';
	return -1;
}

/* Reads one value at *pp into out (cap bytes, NULL to skip); advances *pp. 0 or -1. */
static int
kv_value(const char **pp, char *out, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;
	int quoted = *p == '"', fits = 1;

	if (quoted)
		p++;
	for (; *p != '\0'; p++) {
		char c = *p;

		if (!quoted && c == ' ')
			break;
		if (quoted && c == '"') {
			p++;
			quoted = 2;
			break;
		}
		if (quoted && c == '\\') {
			if (*++p == '\0')
				return -1;
			c = *p == 'n' ? '\n' : *p;
		}
		if (out != NULL && n + 1 < cap)
			out[n++] = c;
		else if (out != NULL)
			fits = 0;
	}
	if (quoted == 1)
		return -1;
	if (out != NULL && cap > 0)
		out[n] = '\0';
	*pp = p;
	return fits ? 0 : -1;
}

int
fmt_kv_get(const char *line, const char *key, char *out, size_t cap)
{
	const char *p = line;
	size_t klen = strlen(key);

	p += strcspn(p, " ");   /* the verb */
	while (*p != '\0') {
		const char *k, *eq;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		k = p;
		if ((eq = strchr(k, '=')) == NULL || memchr(k, ' ', (size_t)(eq - k)) != NULL)
			return -1;
		p = eq + 1;
		if ((size_t)(eq - k) == klen && memcmp(k, key, klen) == 0)
			return kv_value(&p, out, cap) == 0 ? 1 : -1;
		if (kv_value(&p, NULL, 0) < 0)
			return -1;
	}
	return 0;
}
