/* Writes the generated part of the seed corpora (fuzz/corpus/<name>/) from the fixed fuzz PKI:
 * certificate bodies, OCSP responses for the fixed leaf and OCSP requests. Run it again when
 * testpki or the fuzz PKI changes: `fuzz_seeds fuzz/corpus`. Config and fmt seeds are written
 * by hand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "fuzzpki.h"
#include "ocsp.h"

static const char *outdir;

static void
put(const char *target, const char *name, const void *buf, size_t len)
{
	char dir[4096];
	char *path;

	snprintf(dir, sizeof(dir), "%s/%s", outdir, target);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		perror(dir);
		exit(1);
	}
	path = testpki_write_file(dir, name, buf, len);
	free(path);
}

static void
put_pem(const char *name, X509 *const *certs, int n)
{
	size_t len;
	unsigned char *pem = testpki_pem(certs, n, &len);

	put("certs", name, pem, len);
	free(pem);
}

static struct testpki_ent
cert(const char *cn, const struct testpki_ent *issuer, const unsigned char *serial,
    size_t serial_len, long not_before, long not_after, const char *const *urls, int n_urls)
{
	struct testpki_cert_opts o = {
		.cn = cn, .issuer = issuer, .serial = serial, .serial_len = serial_len,
		.base = FUZZ_NOW, .not_before = not_before, .not_after = not_after,
		.ocsp_urls = urls, .n_ocsp_urls = n_urls,
	};
	struct testpki_ent e;

	o.key = testpki_key_seeded(cn);
	e = testpki_cert(&o);
	EVP_PKEY_free(o.key);
	return e;
}

static void
certs_seeds(const struct fuzz_pki *p)
{
	static const unsigned char long_serial[33] = { 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	static const unsigned char one = 1;
	char long_url[1100];
	const char *urls[6];
	X509 *chain[CERTS_MAX_CHAIN + 1];
	struct testpki_ent many, old, big, self;
	unsigned char *buf;
	size_t len;
	int i;

	memset(long_url, 'a', sizeof(long_url) - 1);
	memcpy(long_url, "http://", 7);
	long_url[sizeof(long_url) - 1] = '\0';
	urls[0] = "http://ocsp.fuzz.test/a";
	urls[1] = long_url;
	urls[2] = "https://[::1]:8443/ocsp";
	urls[3] = "ldap://ocsp.fuzz.test/";
	urls[4] = "http://ocsp.fuzz.test/b";
	urls[5] = "http://ocsp.fuzz.test/c";
	many = cert("many-urls.fuzz.test", &p->ca, &one, 1, -86400, 86400, urls, 6);
	old = cert("expired.fuzz.test", &p->ca, &one, 1, -90L * 86400, -86400, urls, 1);
	big = cert("long-serial.fuzz.test", &p->ca, long_serial, sizeof(long_serial), -86400,
	    86400, NULL, 0);
	self = cert("self-signed.fuzz.test", NULL, &one, 1, -86400, 86400, urls, 1);

	chain[0] = p->leaf.cert;
	chain[1] = p->ca.cert;
	chain[2] = p->root.cert;
	put_pem("chain", chain, 2);
	put_pem("chain_with_root", chain, 3);
	put_pem("root", &p->root.cert, 1);
	put_pem("leaf_alone", &p->leaf.cert, 1);
	buf = testpki_der(p->leaf.cert, &len);
	put("certs", "leaf_der", buf, len);
	OPENSSL_free(buf);
	chain[0] = many.cert;
	put_pem("many_urls", chain, 2);
	chain[0] = old.cert;
	put_pem("expired", chain, 2);
	chain[0] = big.cert;
	put_pem("long_serial", chain, 2);
	put_pem("self_signed", &self.cert, 1);
	chain[0] = p->responder.cert;
	put_pem("responder", chain, 2);
	for (i = 0; i < CERTS_MAX_CHAIN + 1; i++)
		chain[i] = p->ca.cert;
	put_pem("too_many", chain, CERTS_MAX_CHAIN + 1);

	testpki_ent_free(&many);
	testpki_ent_free(&old);
	testpki_ent_free(&big);
	testpki_ent_free(&self);
}

static void
put_response(const char *name, const struct testpki_resp_opts *o)
{
	size_t len;
	unsigned char *der = testpki_ocsp_response(o, &len);

	put("ocsp_response", name, der, len);
	OPENSSL_free(der);
}

static void
response_seeds(const struct fuzz_pki *p)
{
	struct testpki_resp_opts o;
	static const int refusals[] = {
		OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, OCSP_RESPONSE_STATUS_INTERNALERROR,
		OCSP_RESPONSE_STATUS_TRYLATER, OCSP_RESPONSE_STATUS_SIGREQUIRED,
		OCSP_RESPONSE_STATUS_UNAUTHORIZED,
	};
	char name[32];
	size_t i;

#define RESP(n, ...) do { \
		o = testpki_resp_good(p->leaf.cert, &p->ca, FUZZ_NOW); \
		__VA_ARGS__; \
		put_response(n, &o); \
	} while (0)
	RESP("good");
	RESP("good_by_key", o.resp_id_by_key = 1);
	RESP("good_with_signer", o.include_signer = 1);
	RESP("revoked", o.cert_status = V_OCSP_CERTSTATUS_REVOKED,
	    o.revoked_at = FUZZ_NOW - 86400, o.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE);
	RESP("revoked_no_reason", o.cert_status = V_OCSP_CERTSTATUS_REVOKED,
	    o.revoked_at = FUZZ_NOW - 86400);
	RESP("unknown", o.cert_status = V_OCSP_CERTSTATUS_UNKNOWN);
	RESP("no_next_update", o.no_next_update = 1);
	RESP("expired", o.this_update = FUZZ_NOW - 8 * 86400, o.next_update = FUZZ_NOW - 60);
	RESP("not_yet_valid", o.this_update = FUZZ_NOW + 3600);
	RESP("stale", o.this_update = FUZZ_NOW - 2 * 86400);
	RESP("next_before_this", o.next_update = FUZZ_NOW - 7200);
	RESP("delegated", o.signer = &p->responder, o.include_signer = 1);
	RESP("delegated_by_key", o.signer = &p->responder, o.include_signer = 1,
	    o.resp_id_by_key = 1);
	RESP("delegated_without_cert", o.signer = &p->responder);
	RESP("signed_by_root", o.signer = &p->root, o.include_signer = 1);
	RESP("signed_by_leaf", o.signer = &p->leaf, o.include_signer = 1);
	RESP("other_certid", o.subject = p->responder.cert);
	RESP("certid_of_ca", o.subject = p->ca.cert, o.issuer = p->root.cert);
#undef RESP
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		o = testpki_resp_good(p->leaf.cert, &p->ca, FUZZ_NOW);
		o.response_status = refusals[i];
		snprintf(name, sizeof(name), "status_%d", refusals[i]);
		put_response(name, &o);
	}
}

static void
put_request(const char *name, OCSP_REQUEST *req)
{
	unsigned char *der = NULL;
	char *url;
	int n;

	if ((n = i2d_OCSP_REQUEST(req, &der)) <= 0)
		abort();
	put("ocsp_request", name, der, (size_t)n);
	/* The GET form of the same request, as what follows "/ocsp/". */
	if ((url = ocsp_get_url("/ocsp", der, (size_t)n)) != NULL) {
		char get[64];

		snprintf(get, sizeof(get), "%s_get", name);
		put("ocsp_request", get, url + strlen("/ocsp/"), strlen(url) - strlen("/ocsp/"));
		free(url);
	}
	OPENSSL_free(der);
	OCSP_REQUEST_free(req);
}

static OCSP_REQUEST *
request(X509 *subject, X509 *issuer, int n_ids, int nonce)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	OCSP_CERTID *id;
	int i;

	for (i = 0; req != NULL && i < n_ids; i++) {
		if ((id = OCSP_cert_to_id(i == 0 ? EVP_sha1() : EVP_sha256(), subject, issuer)) ==
		    NULL || OCSP_request_add0_id(req, id) == NULL)
			abort();
		id = NULL;
	}
	if (req == NULL || (nonce && !OCSP_request_add1_nonce(req, NULL, 16)))
		abort();
	return req;
}

static void
request_seeds(const struct fuzz_pki *p)
{
	static const char quirky[] = "/MEMwQTA%2fMD0wOzAJBgUrDgMCGgUABBQ-p_e+a";
	OCSP_REQUEST *req;
	OCSP_CERTID *id;
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	unsigned char big[33];

	put_request("leaf", request(p->leaf.cert, p->ca.cert, 1, 0));
	put_request("leaf_nonce", request(p->leaf.cert, p->ca.cert, 1, 1));
	put_request("ca_under_root", request(p->ca.cert, p->root.cert, 1, 0));
	put_request("unknown_issuer", request(p->ca.cert, p->leaf.cert, 1, 0));
	put_request("two_ids", request(p->leaf.cert, p->ca.cert, 2, 0));
	put_request("no_ids", request(p->leaf.cert, p->ca.cert, 0, 0));
	/* SHA-384 and SHA-512 CertIDs, and SHA-256 and SHA-1 ones with the hash parameters
	 * absent (Bouncy Castle's form): each its own cache key. */
	{
		static const struct {
			const char *name;
			const EVP_MD *(*md)(void);
			int absent;
		} forms[] = {
			{ "leaf_sha384", EVP_sha384, 0 }, { "leaf_sha512_absent", EVP_sha512, 1 },
			{ "leaf_sha256_absent", EVP_sha256, 1 }, { "leaf_sha1_absent", EVP_sha1, 1 },
		};

		for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
			if ((req = OCSP_REQUEST_new()) == NULL ||
			    (id = testpki_certid(p->leaf.cert, p->ca.cert, forms[i].md(),
			    forms[i].absent)) == NULL || OCSP_request_add0_id(req, id) == NULL)
				abort();
			put_request(forms[i].name, req);
		}
	}
	/* A serial of 33 octets: longer than STAPLER_SERIAL_MAX. */
	memset(big, 0x5a, sizeof(big));
	if (serial == NULL || !ASN1_STRING_set(serial, big, sizeof(big)) ||
	    (id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(p->ca.cert),
	    X509_get0_pubkey_bitstr(p->ca.cert), serial)) == NULL ||
	    (req = OCSP_REQUEST_new()) == NULL || OCSP_request_add0_id(req, id) == NULL)
		abort();
	put_request("long_serial", req);
	ASN1_INTEGER_free(serial);
	put("ocsp_request", "quirky_get", quirky, strlen(quirky));
}

int
main(int argc, char **argv)
{
	const struct fuzz_pki *p;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	p = fuzz_pki();
	certs_seeds(p);
	response_seeds(p);
	request_seeds(p);
	ERR_clear_error();
	return 0;
}
