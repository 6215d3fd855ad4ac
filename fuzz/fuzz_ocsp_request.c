/* Fuzz harness: what the /ocsp responder interface reads from clients: a DER OCSPRequest
 * (POST body) and the same bytes as the path of a GET, then the lookup of the issuer the
 * CertID names. Checks that a decoded CertID survives request building and GET encoding. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "fuzzpki.h"
#include "issuers.h"
#include "ocsp.h"
#include "stapler/types.h"

/* [server] max_request's default. */
#define FUZZ_MAX_REQUEST (64 * 1024)

static struct issuers *learned;

/* A request built for id decodes back to the same CertID, by POST and by GET. */
static void
round_trip(const OCSP_CERTID *id)
{
	unsigned char *der = NULL, *back = NULL;
	OCSP_CERTID *id2 = NULL;
	char *url = NULL;
	size_t len, blen;

	if (ocsp_request_build(id, &der, &len) < 0)
		return;
	fuzz_check(ocsp_request_decode(der, len, &id2, NULL) == OCSP_REQ_OK,
	    "built request rejected");
	fuzz_check(OCSP_id_cmp(id, id2) == 0, "built request names another CertID");
	if ((url = ocsp_get_url("http://ocsp.fuzz.test", der, len)) != NULL) {
		back = ocsp_get_decode(url + strlen("http://ocsp.fuzz.test/"), FUZZ_MAX_REQUEST,
		    &blen);
		fuzz_check(back != NULL && blen == len && memcmp(back, der, len) == 0,
		    "GET URL does not decode to the request");
	}
	free(back);
	free(url);
	OCSP_CERTID_free(id2);
	OPENSSL_free(der);
}

static void
answer(const unsigned char *der, size_t len)
{
	const struct certs_urls *urls;
	struct stapler_key key;
	enum issuers_miss miss;
	OCSP_CERTID *id = NULL, *id2;
	char serial[STAPLER_SERIAL_HEX_MAX], hash[STAPLER_SHA1_HEX];
	int nonce;

	(void)ocsp_request_error_name(ocsp_request_decode(der, len, &id, &nonce));
	id2 = ocsp_request_certid(der, len);
	fuzz_check((id == NULL) == (id2 == NULL), "ocsp_request_certid disagrees with decode");
	OCSP_CERTID_free(id2);
	if (id == NULL)
		return;
	if (issuers_resolve(learned, fuzz_trust(), FUZZ_NOW, id, &key, &urls, &miss) == NULL)
		(void)issuers_miss_name(miss);
	if (certs_certid_key(id, NULL, &key) == 0) {
		stapler_key_serial_hex(&key, serial);
		stapler_key_hash_hex(&key, hash);
	}
	certs_certid_name_hash_hex(id, hash);
	round_trip(id);
	OCSP_CERTID_free(id);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_pki *p = fuzz_pki();
	unsigned char *der;
	char *path;
	size_t len;

	if (learned == NULL) {
		struct certs_urls urls;

		fuzz_check((learned = issuers_new()) != NULL, "issuers_new");
		fuzz_check(certs_ocsp_urls(p->leaf.cert, &urls, NULL, 0) == 1, "leaf AIA");
		fuzz_check(issuers_learn(learned, p->ca.cert, &urls) == 0, "issuers_learn");
		certs_urls_free(&urls);
	}
	answer(data, size);
	/* The same bytes as what follows "/ocsp/" in a GET (evhttp hands over a C string). */
	fuzz_check((path = malloc(size + 1)) != NULL, "malloc");
	memcpy(path, data, size);
	path[size] = '\0';
	if ((der = ocsp_get_decode(path, FUZZ_MAX_REQUEST, &len)) != NULL) {
		answer(der, len);
		free(der);
	}
	free(path);
	ERR_clear_error();
	return 0;
}
