/* A relying party (e.g. a DLMS server) checking a stapled OCSP response with libstapler.
 * usage: verify_example CERT.pem ISSUER.pem STAPLE.der [MAX_AGE_SECONDS]
 * Exit status: 0 accept (good and fresh), 1 reject. Built with the project so it stays in step
 * with include/stapler/verify.h; docs/verify-api.md walks through it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/pem.h>

#include "stapler/verify.h"

static X509 *
read_cert(const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x;

	if (fp == NULL)
		return NULL;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	return x;
}

/* Reads at most 64 KiB: a staple is a few KiB. Returns a new buffer (free()) or NULL. */
static unsigned char *
read_staple(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *buf = malloc(65536);

	if (fp == NULL || buf == NULL) {
		if (fp != NULL)
			fclose(fp);
		free(buf);
		return NULL;
	}
	*len = fread(buf, 1, 65536, fp);
	fclose(fp);
	return buf;
}

int
main(int argc, char **argv)
{
	struct stapler_verify_result res;
	enum stapler_verify_code code;
	unsigned char *der = NULL;
	size_t len = 0;
	X509 *cert = NULL, *issuer = NULL;
	long max_age = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
	int rc = 1;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: verify_example CERT.pem ISSUER.pem STAPLE.der [MAX_AGE]\n");
		return 2;
	}
	if ((cert = read_cert(argv[1])) == NULL || (issuer = read_cert(argv[2])) == NULL ||
	    (der = read_staple(argv[3], &len)) == NULL) {
		fprintf(stderr, "verify_example: cannot read the inputs\n");
		goto out;
	}
	/* The relying party passes its own clock; tests pass any time they like. */
	code = stapler_verify_staple(der, len, cert, issuer, time(NULL), max_age, &res);
	printf("%s", stapler_verify_code_name(code));
	if (code == STAPLER_VERIFY_INVALID || code == STAPLER_VERIFY_STALE)
		printf(": %s", res.detail);
	printf("\n");
	/* Only a good, fresh staple lets the peer in. */
	rc = code == STAPLER_VERIFY_GOOD ? 0 : 1;
out:
	X509_free(cert);
	X509_free(issuer);
	free(der);
	return rc;
}
