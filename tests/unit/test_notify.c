/* Unit tests for notify.c: message formatting, socket addresses (paths and abstract names),
 * and real datagrams to a socket of our own, as systemd's receiving end would get them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

static void
test_format(void **state)
{
	char buf[64];

	assert_int_equal(notify_format(buf, sizeof(buf), "READY=1", NULL), 7);
	assert_string_equal(buf, "READY=1");
	assert_int_equal(notify_format(buf, sizeof(buf), "READY=1", "serving 2"), 24);
	assert_string_equal(buf, "READY=1\nSTATUS=serving 2");
	/* A status alone, as the periodic update sends it. */
	notify_format(buf, sizeof(buf), NULL, "x");
	assert_string_equal(buf, "STATUS=x");
	/* Control characters would split the assignment: they become spaces. */
	notify_format(buf, sizeof(buf), "READY=1", "reload failed:\nline 3\tkey\x7f");
	assert_string_equal(buf, "READY=1\nSTATUS=reload failed: line 3 key ");
	/* A long status is cut to fit; the head never is. */
	memset(buf, 'z', sizeof(buf));
	assert_int_equal(notify_format(buf, 24, "STOPPING=1", "a long status line"), 23);
	assert_string_equal(buf, "STOPPING=1\nSTATUS=a lon");
	/* No room for any of the status: the head alone. */
	assert_int_equal(notify_format(buf, 19, "STOPPING=1", "a long status line"), 10);
	assert_string_equal(buf, "STOPPING=1");
	assert_int_equal(notify_format(buf, 20, "STOPPING=1", "a long status line"), 19);
	assert_string_equal(buf, "STOPPING=1\nSTATUS=a");
	assert_int_equal(notify_format(buf, 8, "STOPPING=1", NULL), -1);
	assert_int_equal(notify_format(buf, 0, NULL, NULL), -1);
}

static void
test_address(void **state)
{
	struct sockaddr_un sa;
	socklen_t len;
	char err[128], longname[200];

	assert_int_equal(notify_address("/run/systemd/notify", &sa, &len, err, sizeof(err)), 0);
	assert_int_equal(sa.sun_family, AF_UNIX);
	assert_string_equal(sa.sun_path, "/run/systemd/notify");
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);

	/* '@': the abstract namespace, a leading NUL and no terminator in the length. */
	assert_int_equal(notify_address("@sd-notify/42", &sa, &len, err, sizeof(err)), 0);
	assert_int_equal(sa.sun_path[0], '\0');
	assert_memory_equal(sa.sun_path + 1, "sd-notify/42", 12);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 1 + 12);

	assert_int_equal(notify_address("", &sa, &len, err, sizeof(err)), -1);
	assert_int_equal(notify_address("@", &sa, &len, err, sizeof(err)), -1);
	assert_int_equal(notify_address("relative/sock", &sa, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "absolute"));
	assert_int_equal(notify_address("vsock:2:1234", &sa, &len, err, sizeof(err)), -1);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	longname[0] = '/';
	assert_int_equal(notify_address(longname, &sa, &len, err, sizeof(err)), -1);
	longname[0] = '@';
	assert_int_equal(notify_address(longname, &sa, &len, err, sizeof(err)), -1);
	/* The longest abstract name that fits: sizeof(sun_path) - 1 bytes after the NUL. */
	longname[sizeof(sa.sun_path)] = '\0';
	assert_int_equal(notify_address(longname, &sa, &len, err, sizeof(err)), 0);
	assert_int_equal(len, sizeof(struct sockaddr_un));
}

static void
test_unset_sends_nothing(void **state)
{
	struct notify *n = (struct notify *)1;
	char err[64];

	assert_int_equal(notify_open(NULL, &n, err, sizeof(err)), 0);
	assert_null(n);
	assert_int_equal(notify_open("", &n, err, sizeof(err)), 0);
	assert_null(n);
	assert_int_equal(notify_send(n, "READY=1", NULL), 0);
	assert_int_equal(notify_reloading(n, NULL), 0);
	notify_close(&n);
	assert_int_equal(notify_open("not/absolute", &n, err, sizeof(err)), -1);
	assert_null(n);
}

/* A receiving socket bound to name (path or @abstract); returns its descriptor. */
static int
receiver(const char *name)
{
	struct sockaddr_un sa;
	socklen_t len;
	char err[128];
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(notify_address(name, &sa, &len, err, sizeof(err)), 0);
	if (name[0] == '/')
		unlink(name);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	return fd;
}

static void
roundtrip(const char *name)
{
	struct notify *n = NULL;
	struct timespec ts;
	char err[128], buf[NOTIFY_MSG_MAX + 1];
	unsigned long long usec, now;
	ssize_t got;
	int fd = receiver(name);

	assert_int_equal(notify_open(name, &n, err, sizeof(err)), 0);
	assert_non_null(n);
	assert_int_equal(notify_send(n, "READY=1", "serving 0 staples"), 0);
	got = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(got > 0);
	buf[got] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=serving 0 staples");

	assert_int_equal(notify_reloading(n, NULL), 0);
	got = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(got > 0);
	buf[got] = '\0';
	assert_int_equal(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
	assert_true(usec <= now && now - usec < 5000000ULL);
	notify_close(&n);
	assert_null(n);
	close(fd);
	if (name[0] == '/')
		unlink(name);
}

static void
test_send_path(void **state)
{
	const char *dir = getenv("STAPLER_TEST_TMP");
	char path[256];

	snprintf(path, sizeof(path), "%s/notify-%ld.sock", dir != NULL ? dir : "/tmp", (long)getpid());
	roundtrip(path);
}

static void
test_send_abstract(void **state)
{
	char name[64];

	snprintf(name, sizeof(name), "@staplerd-test-notify-%ld", (long)getpid());
	roundtrip(name);
}

static void
test_send_nobody_listening(void **state)
{
	struct notify *n = NULL;
	char err[64], name[64];

	/* systemd went away: the send fails, and fails at once. */
	snprintf(name, sizeof(name), "@staplerd-test-nobody-%ld", (long)getpid());
	assert_int_equal(notify_open(name, &n, err, sizeof(err)), 0);
	assert_int_equal(notify_send(n, "READY=1", NULL), -1);
	notify_close(&n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_unset_sends_nothing),
		cmocka_unit_test(test_send_path),
		cmocka_unit_test(test_send_abstract),
		cmocka_unit_test(test_send_nobody_listening),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
