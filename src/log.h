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

#define log_error(ev, ...) log_msg(LOG_LVL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_LVL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_LVL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_msg(LOG_LVL_DEBUG, ev, __VA_ARGS__)

#endif
