/* Unix stream socket addresses for the admin socket, shared by staplerd and staplerctl. */
#ifndef STAPLER_UNIXSOCK_H
#define STAPLER_UNIXSOCK_H

#include <stddef.h>
#include <sys/un.h>

/* Fills *sun for path. A path too long for sun_path (108 bytes) is reached through
 * /proc/self/fd/N/NAME with N an O_PATH descriptor of its directory (Linux): *dirfd is then
 * that descriptor, to close after bind() or connect(); else -1. Returns 0, or -1 with err set. */
int unixsock_addr(const char *path, struct sockaddr_un *sun, int *dirfd, char *err, size_t errlen);

/* A blocking, close-on-exec connection to the stream socket at path. Returns the descriptor,
 * or -1 with errno kept and err set ("PATH: reason"). */
int unixsock_connect(const char *path, char *err, size_t errlen);

#endif
