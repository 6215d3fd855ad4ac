/* The fixed world of the fuzz harnesses: deterministic PKI, trust store, scratch directory. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzzpki.h"

static struct fuzz_pki pki;
static int pki_built;
static struct certs_trust *trust;
static char *tmpdir;

void
fuzz_check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz: %s\n", what);
		abort();
	}
}

static struct testpki_ent
seeded(const char *cn, const struct testpki_ent *issuer, unsigned char serial, int ca,
    int ocsp_signing)
{
	static const char *const url = FUZZ_OCSP_URL;
	struct testpki_cert_opts o = {
		.cn = cn, .issuer = issuer, .serial = &serial, .serial_len = 1, .ca = ca,
		.base = FUZZ_NOW, .not_before = -30L * 86400, .not_after = 365L * 86400,
		.ocsp_signing = ocsp_signing,
	};
	struct testpki_ent e;

	o.key = testpki_key_seeded(cn);
	if (!ca && !ocsp_signing) {
		o.ocsp_urls = &url;
		o.n_ocsp_urls = 1;
	}
	e = testpki_cert(&o);
	EVP_PKEY_free(o.key);
	return e;
}

const struct fuzz_pki *
fuzz_pki(void)
{
	if (!pki_built) {
		pki.root = seeded("staplerd fuzz root", NULL, 1, 1, 0);
		pki.ca = seeded("staplerd fuzz CA", &pki.root, 2, 1, 0);
		pki.leaf = seeded("leaf.fuzz.test", &pki.ca, FUZZ_LEAF_SERIAL, 0, 0);
		pki.responder = seeded("staplerd fuzz OCSP responder", &pki.ca, 3, 0, 1);
		pki_built = 1;
	}
	return &pki;
}

static void
remove_tmpdir(void)
{
	testpki_tmpdir_remove(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
}

const char *
fuzz_tmpdir(void)
{
	if (tmpdir == NULL) {
		tmpdir = testpki_tmpdir();
		atexit(remove_tmpdir);
	}
	return tmpdir;
}

const struct certs_trust *
fuzz_trust(void)
{
	unsigned char *pem;
	char *path, err[256];
	size_t len;

	if (trust != NULL)
		return trust;
	pem = testpki_pem(&fuzz_pki()->root.cert, 1, &len);
	path = testpki_write_file(fuzz_tmpdir(), "trust.pem", pem, len);
	if ((trust = certs_trust_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz: trust store: %s\n", err);
		abort();
	}
	free(path);
	free(pem);
	return trust;
}
