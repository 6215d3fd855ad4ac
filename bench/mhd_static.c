/* Benchmark helper, not part of staplerd: libmicrohttpd's best case for a cache hit. One
 * response (the staple's DER and RFC 5019-like headers) is built once and queued for every
 * request, from MHD's own epoll thread: no lookup, no per-request work of ours. If this does
 * not beat staplerd's own front end, driving MHD from our loop (external epoll plus
 * suspend/resume for answers that wait on fetches) would not either.
 *   mhd_static PORT FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>

#include <microhttpd.h>

static struct MHD_Response *staple;

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **state)
{
	(void)cls;
	(void)url;
	(void)version;
	(void)data;
	(void)size;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return MHD_NO;
	/* MHD's protocol: the first call only sees the head; answering then makes it close the
	 * connection. The answer is queued on the second call. */
	if (*state == NULL) {
		*state = conn;
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_OK, staple);
}

int
main(int argc, char **argv)
{
	static unsigned char der[65536];
	struct MHD_Daemon *d;
	size_t n;
	FILE *f;

	if (argc != 3 || (f = fopen(argv[2], "rb")) == NULL) {
		fprintf(stderr, "usage: mhd_static PORT FILE\n");
		return 2;
	}
	n = fread(der, 1, sizeof(der), f);
	fclose(f);
	staple = MHD_create_response_from_buffer(n, der, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(staple, "Content-Type", "application/ocsp-response");
	MHD_add_response_header(staple, "Cache-Control",
	    "max-age=600000, public, no-transform, must-revalidate");
	MHD_add_response_header(staple, "Last-Modified", "Wed, 02 Dec 2026 06:00:00 GMT");
	MHD_add_response_header(staple, "Expires", "Wed, 09 Dec 2026 06:00:00 GMT");
	MHD_add_response_header(staple, "ETag", "\"0123456789abcdef0123456789abcdef\"");
	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO,
	    (uint16_t)strtol(argv[1], NULL, 10), NULL, NULL, on_request, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, 4096U, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "mhd_static: cannot start\n");
		return 1;
	}
	for (;;)
		pause();
}
