/* A small bounded DER reader (der.h holds the TLV reader, inline): a CertID's hash
 * AlgorithmIdentifier, the algorithm and how its parameters are encoded (part of the key). */
#include <string.h>

#include "der.h"

int
der_hash_alg(const unsigned char *p, const unsigned char *end, enum stapler_hash_alg *alg,
    enum stapler_hash_params *params)
{
	/* id-sha1 (1.3.14.3.2.26), id-sha256/384/512 (2.16.840.1.101.3.4.2.1/2/3) */
	static const struct {
		unsigned char oid[9];
		size_t oid_len;
		enum stapler_hash_alg alg;
	} algs[] = {
		{ { 0x2b, 0x0e, 0x03, 0x02, 0x1a }, 5, STAPLER_HASH_SHA1 },
		{ { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01 }, 9, STAPLER_HASH_SHA256 },
		{ { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02 }, 9, STAPLER_HASH_SHA384 },
		{ { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03 }, 9, STAPLER_HASH_SHA512 },
	};
	const unsigned char *oid, *v;
	unsigned char tag;
	size_t oid_len, n, i;

	if (der_tlv(&p, end, &tag, &oid, &oid_len) < 0 || tag != 0x06)
		return -1;
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (oid_len == algs[i].oid_len && memcmp(oid, algs[i].oid, oid_len) == 0)
			break;
	if (i == sizeof(algs) / sizeof(algs[0]))
		return -1;
	*alg = algs[i].alg;
	/* parameters: absent, or NULL; nothing else is a hash algorithm's */
	*params = STAPLER_PARAMS_ABSENT;
	if (p != end) {
		if (der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x05 || n != 0 || p != end)
			return -1;
		*params = STAPLER_PARAMS_NULL;
	}
	return 0;
}

int
der_certid_alg(const unsigned char *der, size_t len, enum stapler_hash_alg *alg,
    enum stapler_hash_params *params)
{
	const unsigned char *p = der, *end, *v;
	unsigned char tag;
	size_t n;

	if (der == NULL)
		return -1;
	end = der + len;
	if (der_enter(&p, &end, 0x30) < 0 || der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x30)
		return -1;
	return der_hash_alg(v, v + n, alg, params);
}
