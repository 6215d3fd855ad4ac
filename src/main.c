/* staplerd: options, configuration, `-t`; the daemon itself lives in daemon.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "cache.h"
#include "certs.h"
#include "config.h"

#define DEFAULT_CONFIG "/etc/staplerd/staplerd.conf"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: staplerd [-c FILE] [-t] [-V] [-h]\n"
	    "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
	    "  -t       check the configuration and the trust bundle, then exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n");
}

/* -t: everything startup would refuse, without listening or touching the cache. */
static int
check_config(struct stapler_config *cfg)
{
	struct certs_trust *trust;
	char err[512];

	if ((trust = certs_trust_load(cfg->ca_file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "staplerd: %s\n", err);
		return 1;
	}
	printf("staplerd: configuration %s is ok (%d trust anchors from %s)\n", cfg->path,
	    certs_trust_count(trust), cfg->ca_file);
	certs_trust_free(&trust);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	struct stapler_config *cfg;
	char err[512];
	int test = 0, ch, rc;

	while ((ch = getopt(argc, argv, "c:tVh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("staplerd %s\n", STAPLER_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((cfg = config_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "staplerd: %s\n", err);
		return 1;
	}
	if (daemon_apply_log_level(cfg) < 0) {
		fprintf(stderr, "staplerd: %s: bad [log] level\n", path);
		config_free(&cfg);
		return 1;
	}
	if (test) {
		rc = check_config(cfg);
		config_free(&cfg);
		return rc;
	}
	return daemon_run(cfg);
}
