/* The one logger: `ts=… level=… event=… key=value…` lines on stderr. */
#include <stdarg.h>
#include <stdio.h>
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
	vsnprintf(body, sizeof(body), fields, ap);
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
	if (now - l->window >= LOG_LIMIT_SECONDS || now < l->window) {
		l->window = now;
		l->lines = 0;
	}
	if (l->lines >= LOG_LIMIT_LINES) {
		l->suppressed++;
		return 0;
	}
	l->lines++;
	*suppressed = l->suppressed;
	l->suppressed = 0;
	return 1;
}
