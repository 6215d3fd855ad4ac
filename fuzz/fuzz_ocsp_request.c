/* Fuzz harness: what the /ocsp responder interface reads from clients: a DER OCSPRequest
 * (POST body) and the same bytes as the path of a GET, then the lookup of the issuer the
 * CertID names. Checks that a decoded CertID survives request building and GET encoding, and
 * that the small reader of the hit path agrees with OpenSSL (same CertID, same key) whenever
 * it takes a request. */
#include <stdint.h>
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

/* The small reader of the /ocsp hit path (ocsp_request_read) takes only what OpenSSL accepts,
 * and reads the same CertID from it: byte for byte, and the same cache key. */
static void
reader_agrees(const unsigned char *der, size_t len, const OCSP_CERTID *id)
{
	const struct certs_urls *urls;
	struct ocsp_certid_view v;
	struct stapler_key key, rkey;
	enum stapler_hash_params params;
	enum stapler_hash_alg alg;
	enum issuers_miss miss;
	unsigned char *enc = NULL;
	int n;

	if (ocsp_request_read(der, len, &v) < 0)
		return;
	fuzz_check(id != NULL, "reader took a request OpenSSL refuses");
	fuzz_check(certs_certid_alg(id, &alg, &params) == 0 && alg == v.alg && params == v.params,
	    "reader: another algorithm or parameters' encoding");
	n = i2d_OCSP_CERTID((OCSP_CERTID *)(uintptr_t)id, &enc);
	fuzz_check(n > 0 && (size_t)n == v.certid_len && memcmp(enc, v.certid, v.certid_len) == 0,
	    "reader: another CertID");
	OPENSSL_free(enc);
	memset(&key, 0, sizeof(key));
	if (issuers_key(learned, v.alg, v.name_hash, v.key_hash, &key) == 0) {
		key.hash_params = (unsigned char)v.params;
		key.serial_len = (unsigned char)v.serial_len;
		memcpy(key.serial, v.serial, v.serial_len);
		if (issuers_resolve(learned, fuzz_trust(), FUZZ_NOW, id, &rkey, &urls, &miss) != NULL)
			fuzz_check(stapler_key_equal(&key, &rkey), "reader: another cache key");
	}
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
	reader_agrees(der, len, id);
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
		unsigned char small[OCSP_GET_DECODE_INTO_MAX];
		size_t slen;

		answer(der, len);
		/* The allocation-free decoder of the hit path gives the same bytes, or refuses
		 * only for length. */
		if (ocsp_get_decode_into(path, small, sizeof(small), &slen) == 0)
			fuzz_check(slen == len && memcmp(small, der, len) == 0, "decode_into differs");
		else
			fuzz_check(len > sizeof(small) ||
			    strlen(path) > 3 * (4 * (OCSP_GET_DECODE_INTO_MAX / 3 + 1)) + 16,
			    "decode_into refused a short request");
		free(der);
	} else {
		unsigned char small[OCSP_GET_DECODE_INTO_MAX];
		size_t slen;

		fuzz_check(ocsp_get_decode_into(path, small, sizeof(small), &slen) < 0,
		    "decode_into took what ocsp_get_decode refuses");
	}
	free(path);
	ERR_clear_error();
	return 0;
}
