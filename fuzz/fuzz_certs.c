/* Fuzz harness: certificate bodies as clients submit them (certs_parse) and what the daemon
 * then does with a parsed chain: AIA URLs, CertID, chain check against a fixed root. */
#include <openssl/err.h>

#include "fuzzpki.h"
#include "stapler/types.h"
#include "stapler/verify.h"

static void
use_chain(STACK_OF(X509) *certs)
{
	const struct certs_trust *trust = fuzz_trust();
	struct certs_urls urls;
	struct stapler_key key;
	STACK_OF(X509) *chain = NULL;
	OCSP_CERTID *id;
	X509 *subject = sk_X509_value(certs, 0), *issuer = NULL, *found;
	unsigned char md[STAPLER_SHA1_LEN];
	unsigned int mdlen = 0;
	char text[256], hash[STAPLER_SHA1_HEX];
	time_t t;
	size_t len;
	int i;

	for (i = 0; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);

		if (certs_ocsp_urls(c, &urls, NULL, 0) >= 0)
			certs_urls_free(&urls);
		(void)certs_not_after(c, &t);
		certs_subject(c, text, sizeof(text));
		OPENSSL_free(certs_der(c, &len));
	}
	/* The CertID under the next certificate, as for a chain, and under itself. */
	for (i = 0; i < 2; i++) {
		X509 *under = sk_X509_value(certs, sk_X509_num(certs) > 1 && i == 0 ? 1 : 0);

		if ((id = certs_certid(subject, under, STAPLER_HASH_SHA1)) != NULL) {
			(void)certs_certid_key(id, NULL, &key);
			certs_certid_name_hash_hex(id, hash);
			OCSP_CERTID_free(id);
		}
	}
	if ((found = stapler_verify_find_issuer(subject, certs)) != NULL)
		X509_free(found);
	if (certs_verify_chain(trust, certs, FUZZ_NOW, &issuer, &t, text, sizeof(text)) == 0) {
		if ((id = certs_certid(subject, issuer, STAPLER_HASH_SHA1)) != NULL)
			OCSP_CERTID_free(id);
		X509_free(issuer);
	}
	if (certs_verify_chain_get(trust, certs, FUZZ_NOW, &chain, &t, text, sizeof(text)) == 0)
		sk_X509_pop_free(chain, X509_free);
	/* The search of the bundle by key hash, with the subject's own hash. */
	if (X509_pubkey_digest(subject, EVP_sha1(), md, &mdlen) == 1 && mdlen == sizeof(md))
		(void)certs_trust_find(trust, STAPLER_HASH_SHA1, md, md);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *certs;
	char err[256];

	(void)fuzz_trust();
	if ((certs = certs_parse(data, size, err, sizeof(err))) != NULL) {
		if (sk_X509_num(certs) > 0)
			use_chain(certs);
		sk_X509_pop_free(certs, X509_free);
	}
	ERR_clear_error();
	return 0;
}
