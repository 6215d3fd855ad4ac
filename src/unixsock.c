/* Unix stream socket addresses, including paths longer than sun_path. */
#define _GNU_SOURCE   /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unixsock.h"
#include "util.h"

int
unixsock_addr(const char *path, struct sockaddr_un *sun, int *dirfd, char *err, size_t errlen)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	size_t dlen;
	int fd;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	*dirfd = -1;
	if (util_strlcpy(sun->sun_path, path, sizeof(sun->sun_path)) == 0)
		return 0;
	/* Deep directories (build trees, containers) exceed 108 bytes: go through the directory. */
	if (slash == NULL || (dlen = (size_t)(slash - path)) >= sizeof(dir))
		goto toolong;
	memcpy(dir, path, dlen);
	dir[dlen] = '\0';
	if ((fd = open(dlen ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "/proc/self/fd/%d/%s", fd,
	    slash + 1) >= sizeof(sun->sun_path)) {
		close(fd);
		goto toolong;
	}
	*dirfd = fd;
	return 0;
toolong:
	snprintf(err, errlen, "%s: socket path too long", path);
	errno = ENAMETOOLONG;
	return -1;
}

int
unixsock_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd, dirfd, saved;

	if (unixsock_addr(path, &sun, &dirfd, err, errlen) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		if (fd >= 0)
			close(fd);
		fd = -1;
		errno = saved;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
}
