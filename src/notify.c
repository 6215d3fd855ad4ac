/* The sd_notify(3) protocol spoken by hand: systemd's notification socket takes datagrams of
 * newline-separated VAR=value assignments, from the main process (NotifyAccess=main). The
 * socket is kept open for the life of the daemon and every send is non-blocking, so a stuck
 * or absent receiver never stalls the event loop. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

struct notify {
	int fd;
	struct sockaddr_un sa;
	socklen_t len;
};

int
notify_address(const char *name, struct sockaddr_un *sa, socklen_t *len, char *err,
    size_t errlen)
{
	size_t n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (name == NULL || name[0] == '\0') {
		snprintf(err, errlen, "NOTIFY_SOCKET is empty");
		return -1;
	}
	n = strlen(name);
	if (name[0] == '@') {
		/* Abstract: sun_path[0] is NUL and the name is exactly the bytes after it, no
		 * terminator counted in the length. */
		if (n < 2 || n > sizeof(sa->sun_path)) {
			snprintf(err, errlen, "NOTIFY_SOCKET abstract name is empty or too long");
			return -1;
		}
		memcpy(sa->sun_path + 1, name + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	if (name[0] != '/') {
		snprintf(err, errlen, "NOTIFY_SOCKET is neither an absolute path nor an abstract "
		    "name (@…): %.100s", name);
		return -1;
	}
	if (n >= sizeof(sa->sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET path longer than %zu bytes",
		    sizeof(sa->sun_path) - 1);
		return -1;
	}
	memcpy(sa->sun_path, name, n + 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int
notify_open(const char *name, struct notify **np, char *err, size_t errlen)
{
	struct notify *n;

	*np = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (name == NULL || name[0] == '\0')
		return 0;
	if ((n = calloc(1, sizeof(*n))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (notify_address(name, &n->sa, &n->len, err, errlen) < 0) {
		free(n);
		return -1;
	}
	if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(n);
		return -1;
	}
	*np = n;
	return 0;
}

void
notify_close(struct notify **np)
{
	struct notify *n;

	if (np == NULL || (n = *np) == NULL)
		return;
	close(n->fd);
	free(n);
	*np = NULL;
}

int
notify_format(char *buf, size_t cap, const char *head, const char *status)
{
	size_t off = 0, hl = head != NULL ? strlen(head) : 0;
	static const char key[] = "STATUS=";

	if (cap == 0 || hl >= cap)
		return -1;
	memcpy(buf, head != NULL ? head : "", hl);
	off = hl;
	/* The status only when "STATUS=" and one character of it fit after the head. */
	if (status != NULL && off + (off > 0) + sizeof(key) < cap) {
		if (off > 0)
			buf[off++] = '\n';
		memcpy(buf + off, key, sizeof(key) - 1);
		off += sizeof(key) - 1;
		for (const unsigned char *p = (const unsigned char *)status; *p != '\0' &&
		    off + 1 < cap; p++)
			buf[off++] = (char)(*p < 0x20 || *p == 0x7f ? ' ' : *p);
	}
	buf[off] = '\0';
	return (int)off;
}

int
notify_send(struct notify *n, const char *head, const char *status)
{
	char msg[NOTIFY_MSG_MAX];
	int len;

	if (n == NULL)
		return 0;
	if ((len = notify_format(msg, sizeof(msg), head, status)) <= 0)
		return -1;
	/* MSG_NOSIGNAL: a datagram socket raises no SIGPIPE, but say so; MSG_DONTWAIT as well
	 * as the non-blocking socket, in case the descriptor is ever shared. */
	if (sendto(n->fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL,
	    (const struct sockaddr *)&n->sa, n->len) != (ssize_t)len)
		return -1;
	return 0;
}

int
notify_reloading(struct notify *n, const char *status)
{
	struct timespec ts;
	char head[64];

	if (n == NULL)
		return 0;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -1;
	snprintf(head, sizeof(head), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	return notify_send(n, head, status);
}
