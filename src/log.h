/* The one logger: a timestamp, a level, an event name and key=value fields per line, on stderr. */
#ifndef STAPLER_LOG_H
#define STAPLER_LOG_H

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Logs one line: `ts=… level=… event=EVENT FIELDS`. fields is a printf format of key=value
 * pairs; control characters in the result are escaped so one event stays one line. */
void log_msg(enum log_level level, const char *event, const char *fields, ...)
	__attribute__((format(printf, 3, 4)));

/* The one bound on repeated log lines (refusals outsiders cause, a fault that lasts, a failing
 * accept): at most max_lines per window of seconds per limiter, LOG_LIMIT_LINES per
 * LOG_LIMIT_SECONDS when both are 0 (a zeroed limiter); the rest are counted and the next line
 * written says how many were left out (its `suppressed=` field). LOG_LIMIT_ONCE_PER(s) is one
 * line per s seconds, the first at once. */
#define LOG_LIMIT_LINES 10
#define LOG_LIMIT_SECONDS 10
struct log_limit {
	unsigned max_lines;         /* per window; 0: LOG_LIMIT_LINES */
	long long seconds;          /* the window; 0: LOG_LIMIT_SECONDS */
	long long window;           /* start of the current window, Unix seconds */
	unsigned lines;             /* written in it */
	unsigned long suppressed;   /* left out since the last line written */
};
#define LOG_LIMIT_ONCE_PER(s) ((struct log_limit){ .max_lines = 1, .seconds = (s) })
/* 1 when a line may be written at now; *suppressed (may be NULL) then receives the count left
 * out before it (and is reset). 0 when it is to be left out (counted). */
int log_limit_allow(struct log_limit *l, long long now, unsigned long *suppressed);
/* Starts over: the next line is written at once (a fault ended; the next is news). */
void log_limit_reset(struct log_limit *l);

#define log_error(ev, ...) log_msg(LOG_LVL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_LVL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_LVL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_msg(LOG_LVL_DEBUG, ev, __VA_ARGS__)

#endif
