/* Readiness and status for systemd (the sd_notify(3) protocol) without libsystemd: one
 * datagram per message to the AF_UNIX socket that $NOTIFY_SOCKET names. No libevent here. */
#ifndef STAPLER_NOTIFY_H
#define STAPLER_NOTIFY_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Longest message sent; ours are a few hundred bytes (STATUS= is cut to fit). */
#define NOTIFY_MSG_MAX 1024

struct notify;

/* Fills *sa and *len with the address name stands for: an absolute path ("/run/…"), or an
 * abstract name when it starts with '@' (the '@' becomes the leading NUL). Returns 0, or -1
 * with err set (empty, relative, too long). */
int notify_address(const char *name, struct sockaddr_un *sa, socklen_t *len, char *err,
    size_t errlen);

/* Opens a sender for the socket name (the value of $NOTIFY_SOCKET; NULL or "" when unset).
 * Returns 0 with *n set, or with *n NULL when name is unset: then nothing is ever sent; or
 * -1 with err set when name is unusable. Caller frees with notify_close(). */
int notify_open(const char *name, struct notify **n, char *err, size_t errlen);
void notify_close(struct notify **n);

/* Formats one message into buf: head (newline-separated assignments such as "READY=1"; may
 * be NULL), then "STATUS=" and status when status is not NULL, with control characters in
 * status turned into spaces (a newline would end the assignment) and status cut so that the
 * message fits. Returns the length (< cap), or -1 when head alone does not fit. */
int notify_format(char *buf, size_t cap, const char *head, const char *status);

/* Sends head and status (as notify_format()) as one datagram; never blocks. Returns 0, or -1
 * when it could not be sent. n may be NULL (nothing is sent; returns 0). */
int notify_send(struct notify *n, const char *head, const char *status);

/* "RELOADING=1" with "MONOTONIC_USEC=" the CLOCK_MONOTONIC time in microseconds, then the
 * status (may be NULL), as systemd expects before a reload; READY=1 follows when it is done. */
int notify_reloading(struct notify *n, const char *status);

#endif
