/* A small bounded DER reader for the shapes read on hot paths (an RFC 9919 request, a basic
 * response, a CertID's hash algorithm): anything it does not understand is left to OpenSSL's
 * full decoders. No allocation, no OpenSSL. */
#ifndef STAPLER_DER_H
#define STAPLER_DER_H

#include <stddef.h>

#include "stapler/types.h"

/* One DER TLV at *p, before end: its tag byte and contents; *p moves past it. Low tag numbers
 * and definite lengths of at most 4 bytes in their shortest form only (DER, and all an OCSP
 * request or response needs). Returns 0, or -1 otherwise. Inline: the /ocsp hit path reads a
 * request with a dozen of these. */
static inline int
der_tlv(const unsigned char **p, const unsigned char *end, unsigned char *tag,
    const unsigned char **val, size_t *len)
{
	const unsigned char *q = *p;
	size_t n, k;

	if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
		return -1;
	*tag = q[0];
	n = q[1];
	q += 2;
	if (n & 0x80) {
		k = n & 0x7f;
		if (k == 0 || k > 4 || (size_t)(end - q) < k || q[0] == 0)
			return -1;
		for (n = 0; k > 0; k--)
			n = (n << 8) | *q++;
		if (n < 0x80)
			return -1;     /* DER: the short form where it fits */
	}
	if ((size_t)(end - q) < n)
		return -1;
	*val = q;
	*len = n;
	*p = q + n;
	return 0;
}

/* Enters the TLV at *p, which must have tag want and fill [*p, *end) exactly: [*p, *end)
 * becomes its contents. Returns 0 or -1. */
static inline int
der_enter(const unsigned char **p, const unsigned char **end, unsigned char want)
{
	unsigned char tag;
	const unsigned char *v;
	size_t n;

	if (der_tlv(p, *end, &tag, &v, &n) < 0 || tag != want || *p != *end)
		return -1;
	*p = v;
	*end = v + n;
	return 0;
}

/* Reads the contents [p, end) of a CertID's hashAlgorithm AlgorithmIdentifier: the OID of
 * SHA-1, SHA-256, SHA-384 or SHA-512, then NULL parameters or none. Returns 0 with *alg and
 * *params, or -1 for another algorithm or other parameters. */
int der_hash_alg(const unsigned char *p, const unsigned char *end, enum stapler_hash_alg *alg,
    enum stapler_hash_params *params);

/* The hash algorithm and parameters' encoding of a DER CertID (the whole SEQUENCE). Returns 0,
 * or -1 when it is not one der_hash_alg() reads. */
int der_certid_alg(const unsigned char *der, size_t len, enum stapler_hash_alg *alg,
    enum stapler_hash_params *params);

#endif
