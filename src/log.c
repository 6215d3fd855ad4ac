/* The one logger: `ts=… level=… event=… key=value…` lines on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "log.h"
#include "util.h"

static enum log_level current = LOG_LVL_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
	current = level;
}

enum log_level
log_get_level(void)
{
	return current;
}

/* Appends n bytes of v to body at *at (of cap), with '"' and '\\' escaped when quoted: the
 * value stands between quotes in the format, and may come from a certificate or an upstream. */
static void
put(char *body, size_t *at, size_t cap, const char *v, size_t n, int quoted)
{
	for (size_t i = 0; i < n && *at + 2 < cap; i++) {
		if (quoted && (v[i] == '"' || v[i] == '\\'))
			body[(*at)++] = '\\';
		body[(*at)++] = v[i];
	}
	body[*at] = '\0';
}

/* One conversion's argument, taken as its type says, formatted by spec (star: the int that a
 * '*' width or precision took first, or -1 when spec has none). spec comes from a format the
 * compiler checked (log.h's format attribute), split at its conversions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
format_one(char *out, size_t cap, const char *spec, char conv, int longs, int sized, int star,
    va_list *ap)
{
#define ONE(type) (star >= 0 ? snprintf(out, cap, spec, star, va_arg(*ap, type)) : \
	snprintf(out, cap, spec, va_arg(*ap, type)))
	switch (conv) {
	case 's':
		ONE(const char *);
		break;
	case 'd': case 'i': case 'c':
		if (sized)
			ONE(ssize_t);
		else if (longs >= 2)
			ONE(long long);
		else if (longs == 1)
			ONE(long);
		else
			ONE(int);
		break;
	case 'u': case 'x': case 'X': case 'o':
		if (sized)
			ONE(size_t);
		else if (longs >= 2)
			ONE(unsigned long long);
		else if (longs == 1)
			ONE(unsigned long);
		else
			ONE(unsigned int);
		break;
	case 'f': case 'F': case 'e': case 'E': case 'g': case 'G':
		ONE(double);
		break;
	case 'p':
		ONE(void *);
		break;
	default:
		/* Not a conversion the loggers use: written as it stands. */
		snprintf(out, cap, "%s", spec);
		break;
	}
#undef ONE
}
#pragma GCC diagnostic pop

/* Formats fields as vsnprintf() would, one conversion at a time, so that a %s the format puts
 * between quotes (key="%s", the logfmt way) gets its '"' and '\\' escaped: a value from a
 * certificate or an upstream cannot end its quotes and forge a field. */
static void
format_fields(char *body, size_t cap, const char *fmt, va_list ap)
{
	const char *begin = fmt;
	size_t at = 0;
	va_list aq;

	va_copy(aq, ap);
	body[0] = '\0';
	while (*fmt != '\0' && at + 2 < cap) {
		const char *pct = fmt;
		char spec[32], piece[1024];
		int longs = 0, sized = 0, star = -1, quoted;
		size_t n = 0;

		if (*fmt != '%' || fmt[1] == '%') {
			put(body, &at, cap, fmt, 1, 0);
			fmt += *fmt == '%' ? 2 : 1;
			continue;
		}
		spec[n++] = *fmt++;
		while (*fmt != '\0' && n + 2 < sizeof(spec) && strchr("-+ #0123456789.*hlzjt", *fmt)) {
			if (*fmt == 'l')
				longs++;
			else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't')
				sized = 1;
			else if (*fmt == '*')
				star = va_arg(aq, int);   /* one star at most in the loggers' formats */
			spec[n++] = *fmt++;
		}
		if (*fmt == '\0')
			break;
		spec[n++] = *fmt;
		spec[n] = '\0';
		format_one(piece, sizeof(piece), spec, *fmt, longs, sized, star, &aq);
		quoted = *fmt == 's' && pct > begin && pct[-1] == '"' && fmt[1] == '"';
		put(body, &at, cap, piece, strlen(piece), quoted);
		fmt++;
	}
	va_end(aq);
}

void
log_msg(enum log_level level, const char *event, const char *fields, ...)
{
	char body[2048], line[4200], ts[21];
	va_list ap;
	size_t n = 0;
	int r;

	if (level > current)
		return;
	va_start(ap, fields);
	format_fields(body, sizeof(body), fields, ap);
	va_end(ap);
	util_iso_time(time(NULL), ts);
	r = snprintf(line, sizeof(line), "ts=%s level=%s event=%s ", ts, names[level], event);
	if (r < 0)
		return;
	n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;
	/* Fields may carry certificate subjects and upstream text: escape control bytes so one
	 * event is always one line. */
	for (const unsigned char *p = (const unsigned char *)body; *p != '\0' && n + 5 < sizeof(line); p++) {
		if (*p < 0x20 || *p == 0x7f)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "\\x%02x", *p);
		else
			line[n++] = (char)*p;
	}
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
}

int
log_limit_allow(struct log_limit *l, long long now, unsigned long *suppressed)
{
	long long seconds = l->seconds > 0 ? l->seconds : LOG_LIMIT_SECONDS;
	unsigned max_lines = l->max_lines > 0 ? l->max_lines : LOG_LIMIT_LINES;

	if (l->lines == 0 || now - l->window >= seconds || now < l->window) {
		l->window = now;
		l->lines = 0;
	}
	if (l->lines >= max_lines) {
		l->suppressed++;
		return 0;
	}
	l->lines++;
	if (suppressed != NULL)
		*suppressed = l->suppressed;
	l->suppressed = 0;
	return 1;
}

void
log_limit_reset(struct log_limit *l)
{
	l->window = 0;
	l->lines = 0;
	l->suppressed = 0;
}
