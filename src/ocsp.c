/* OCSP with OpenSSL only: request building and decoding, GET URLs, and the pure response verifier. */
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509_vfy.h>

#include "der.h"
#include "ocsp.h"
#include "util.h"

/* OpenSSL's lookups take non-const pointers for what they only read. */
#define OCSP_UNCONST(type, p) ((type *)(uintptr_t)(p))

const char *
ocsp_verdict_name(enum ocsp_verdict v)
{
	switch (v) {
	case OCSP_OK:
		return "ok";
	case OCSP_TRY_LATER:
		return "try_later";
	case OCSP_MALFORMED:
		return "malformed";
	case OCSP_REFUSED:
		return "refused";
	case OCSP_BAD_SIGNATURE:
		return "bad_signature";
	case OCSP_BAD_SIGNER:
		return "bad_signer";
	case OCSP_WRONG_CERTID:
		return "wrong_certid";
	case OCSP_NOT_YET_VALID:
		return "not_yet_valid";
	case OCSP_EXPIRED:
		return "expired";
	case OCSP_NO_NEXT_UPDATE:
		return "no_next_update";
	}
	return "invalid";
}

int
ocsp_verdict_is_temporary(enum ocsp_verdict v)
{
	return v == OCSP_TRY_LATER;
}

int
ocsp_request_build(const OCSP_CERTID *id, unsigned char **der, size_t *len)
{
	OCSP_REQUEST *req = NULL;
	OCSP_CERTID *cid = NULL;
	unsigned char *out = NULL;
	int n, rc = -1;

	*der = NULL;
	*len = 0;
	if (id == NULL)
		goto done;
	if ((req = OCSP_REQUEST_new()) == NULL || (cid = OCSP_CERTID_dup(id)) == NULL)
		goto done;
	if (OCSP_request_add0_id(req, cid) == NULL)
		goto done;
	cid = NULL;
	/* No nonce: cached responses cannot echo one (docs/contract.md §8.3). */
	if ((n = i2d_OCSP_REQUEST(req, &out)) <= 0)
		goto done;
	*der = out;
	*len = (size_t)n;
	rc = 0;

done:
	OCSP_CERTID_free(cid);
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	return rc;
}

const char *
ocsp_request_error_name(enum ocsp_request_error e)
{
	switch (e) {
	case OCSP_REQ_OK:
		return "ok";
	case OCSP_REQ_JUNK:
		return "junk";
	case OCSP_REQ_NO_ID:
		return "no_certid";
	case OCSP_REQ_MANY_IDS:
		return "several_certids";
	case OCSP_REQ_CRITICAL_EXT:
		return "critical_extension";
	}
	return "invalid";
}

/* 1 when a request extension is critical and not one staplerd understands. Only the nonce
 * is understood (and then ignored: a cached response cannot echo it); RFC 6960 §4.1.2 lets
 * no responder answer a request whose critical extension it does not know. */
static int
critical_unknown(X509_EXTENSION *ext)
{
	return X509_EXTENSION_get_critical(ext) > 0 &&
	    OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_id_pkix_OCSP_Nonce;
}

enum ocsp_request_error
ocsp_request_decode(const unsigned char *der, size_t len, OCSP_CERTID **id, int *has_nonce)
{
	enum ocsp_request_error e = OCSP_REQ_JUNK;
	OCSP_REQUEST *req = NULL;
	OCSP_ONEREQ *one;
	const unsigned char *p = der;
	int n;

	*id = NULL;
	if (has_nonce != NULL)
		*has_nonce = 0;
	if (der == NULL || len == 0 || len > LONG_MAX)
		goto done;
	if ((req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) == NULL || p != der + len)
		goto done;
	if ((n = OCSP_request_onereq_count(req)) != 1) {
		e = n == 0 ? OCSP_REQ_NO_ID : OCSP_REQ_MANY_IDS;
		goto done;
	}
	if ((one = OCSP_request_onereq_get0(req, 0)) == NULL)
		goto done;
	for (int i = 0; i < OCSP_REQUEST_get_ext_count(req); i++) {
		if (critical_unknown(OCSP_REQUEST_get_ext(req, i))) {
			e = OCSP_REQ_CRITICAL_EXT;
			goto done;
		}
	}
	for (int i = 0; i < OCSP_ONEREQ_get_ext_count(one); i++) {
		if (critical_unknown(OCSP_ONEREQ_get_ext(one, i))) {
			e = OCSP_REQ_CRITICAL_EXT;
			goto done;
		}
	}
	if ((*id = OCSP_CERTID_dup(OCSP_onereq_get0_id(one))) == NULL)
		goto done;
	if (has_nonce != NULL)
		*has_nonce = OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1) >= 0;
	e = OCSP_REQ_OK;

done:
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	return e;
}

OCSP_CERTID *
ocsp_request_certid(const unsigned char *der, size_t len)
{
	OCSP_CERTID *id;

	(void)ocsp_request_decode(der, len, &id, NULL);
	return id;
}

/* A well-formed OBJECT IDENTIFIER body: not empty, each subidentifier in its shortest form
 * (no leading 0x80) and ended (the last byte without 0x80). */
static int
oid_ok(const unsigned char *p, size_t n)
{
	if (n == 0 || (p[n - 1] & 0x80))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] == 0x80 && (i == 0 || !(p[i - 1] & 0x80)))
			return 0;
	return 1;
}

/* The reader of ocsp_request_read(): the Extensions at [p, end) (the [n] EXPLICIT already
 * entered) are all understood (a critical one is the nonce) and well formed. */
static int
extensions_ok(const unsigned char *p, const unsigned char *end)
{
	static const unsigned char nonce[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01,
	    0x02 };
	const unsigned char *v;
	unsigned char tag;
	size_t n;

	if (der_enter(&p, &end, 0x30) < 0 || p == end)
		return -1;
	while (p < end) {
		const unsigned char *e, *eend, *oid;
		size_t oid_len;
		int critical = 0;

		if (der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x30)
			return -1;
		eend = v + n;
		e = v;
		if (der_tlv(&e, eend, &tag, &oid, &oid_len) < 0 || tag != 0x06 ||
		    !oid_ok(oid, oid_len) || der_tlv(&e, eend, &tag, &v, &n) < 0)
			return -1;
		if (tag == 0x01) {
			if (n != 1 || (v[0] != 0x00 && v[0] != 0xff))
				return -1;
			critical = v[0] == 0xff;
			if (der_tlv(&e, eend, &tag, &v, &n) < 0)
				return -1;
		}
		if (tag != 0x04 || e != eend)
			return -1;
		if (critical && (oid_len != sizeof(nonce) || memcmp(oid, nonce, oid_len) != 0))
			return -1;
	}
	return 0;
}

int
ocsp_request_read(const unsigned char *der, size_t len, struct ocsp_certid_view *v)
{
	const unsigned char *p = der, *end, *val, *list, *list_end, *ext, *alg;
	unsigned char tag;
	size_t n, ext_len;

	memset(v, 0, sizeof(*v));
	if (der == NULL)
		return -1;
	end = der + len;
	/* OCSPRequest: the TBSRequest alone (no optionalSignature), nothing after */
	if (der_enter(&p, &end, 0x30) < 0 || der_enter(&p, &end, 0x30) < 0)
		return -1;
	/* TBSRequest: no version (v1 is the default), no requestorName: requestList first,
	 * then the requestExtensions or nothing */
	if (der_tlv(&p, end, &tag, &list, &n) < 0 || tag != 0x30)
		return -1;
	list_end = list + n;
	if (p != end && (der_tlv(&p, end, &tag, &ext, &ext_len) < 0 || tag != 0xa2 ||
	    p != end || extensions_ok(ext, ext + ext_len) < 0))
		return -1;
	/* requestList: exactly one Request: its CertID, then its extensions or nothing */
	p = list;
	if (der_enter(&p, &list_end, 0x30) < 0)
		return -1;
	v->certid = p;
	if (der_tlv(&p, list_end, &tag, &val, &n) < 0 || tag != 0x30)
		return -1;
	v->certid_len = (size_t)(p - v->certid);
	if (p != list_end && (der_tlv(&p, list_end, &tag, &ext, &ext_len) < 0 || tag != 0xa0 ||
	    p != list_end || extensions_ok(ext, ext + ext_len) < 0))
		return -1;
	/* CertID */
	p = val;
	end = val + n;
	if (der_tlv(&p, end, &tag, &alg, &n) < 0 || tag != 0x30)
		return -1;
	if (der_hash_alg(alg, alg + n, &v->alg, &v->params) < 0)
		return -1;
	v->hash_len = stapler_hash_alg_len(v->alg);
	if (der_tlv(&p, end, &tag, &v->name_hash, &n) < 0 || tag != 0x04 || n != v->hash_len ||
	    der_tlv(&p, end, &tag, &v->key_hash, &n) < 0 || tag != 0x04 || n != v->hash_len ||
	    der_tlv(&p, end, &tag, &val, &n) < 0 || tag != 0x02 || p != end || n == 0)
		return -1;
	/* A positive INTEGER in its shortest form: its magnitude, as the key keeps it. Zero,
	 * negative and padded serials are left to OpenSSL. */
	if (val[0] & 0x80)
		return -1;
	if (val[0] == 0x00) {
		if (n == 1 || !(val[1] & 0x80))
			return -1;
		val++;
		n--;
	}
	if (n > STAPLER_SERIAL_MAX)
		return -1;
	v->serial = val;
	v->serial_len = n;
	return 0;
}

/* ocsp_get_decode()'s work, into the caller's buffers: b64 (b64cap bytes) holds the base64
 * once unescaped, der (dercap bytes) the DER. Returns 0 with *len, or -1. */
static int
get_decode(const char *path, size_t max, char *b64, size_t b64cap, unsigned char *der,
    size_t dercap, size_t *len)
{
	size_t plen, n = 0, i;
	int dlen;

	*len = 0;
	if (path == NULL || max == 0 || max > INT_MAX / 2 || b64cap < 4)
		return -1;
	plen = strlen(path);
	/* Each DER byte takes at most 4/3 base64 characters, each at most 3 escaped ones. */
	if (plen > 3 * (4 * (max / 3 + 1)) + 16)
		return -1;
	for (i = 0; i < plen; i++) {
		char c = path[i];

		if (c == '%') {
			int hi = i + 2 < plen ? util_hexval((unsigned char)path[i + 1]) : -1;
			int lo = hi >= 0 ? util_hexval((unsigned char)path[i + 2]) : -1;

			if (lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		switch (c) {
		case ' ':   /* '+' decoded as a space by a form decoder on the way */
		case '-':   /* URL-safe base64 */
			c = '+';
			break;
		case '_':
			c = '/';
			break;
		case '\r':
		case '\n':
			continue;
		case '/':
			/* A DER request starts with 0x30 ('M'): a leading '/' is a doubled slash. */
			if (n == 0)
				continue;
			break;
		default:
			break;
		}
		if (n + 4 >= b64cap)
			return -1;
		b64[n++] = c;
	}
	while (n % 4 != 0 && n % 4 != 1)
		b64[n++] = '=';
	b64[n] = '\0';
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > max + 2 || n / 4 * 3 > dercap)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)b64[i]) && b64[i] != '+' && b64[i] != '/' &&
		    !(b64[i] == '=' && i >= n - 2))
			return -1;
	}
	if (b64[n - 2] == '=' && b64[n - 1] != '=')
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes; take them off. */
	if ((dlen = EVP_DecodeBlock(der, (unsigned char *)b64, (int)n)) < 0)
		return -1;
	dlen -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	if (dlen <= 0 || (size_t)dlen > max)
		return -1;
	*len = (size_t)dlen;
	return 0;
}

unsigned char *
ocsp_get_decode(const char *path, size_t max, size_t *len)
{
	size_t plen = path != NULL ? strlen(path) : 0;
	unsigned char *der = NULL;
	char *b64 = NULL;

	*len = 0;
	if (path == NULL || plen > SIZE_MAX / 2 - 8 || (b64 = malloc(plen + 8)) == NULL ||
	    (der = malloc((plen + 8) / 4 * 3 + 1)) == NULL ||
	    get_decode(path, max, b64, plen + 8, der, (plen + 8) / 4 * 3 + 1, len) < 0) {
		free(der);
		der = NULL;
	}
	free(b64);
	return der;
}

int
ocsp_get_decode_into(const char *path, unsigned char *out, size_t cap, size_t *len)
{
	char b64[4 * (OCSP_GET_DECODE_INTO_MAX / 3 + 1) + 8];
	/* EVP_DecodeBlock also writes the padding's zero bytes: up to 2 past the DER. */
	unsigned char der[OCSP_GET_DECODE_INTO_MAX + 2];

	if (cap > OCSP_GET_DECODE_INTO_MAX)
		cap = OCSP_GET_DECODE_INTO_MAX;
	if (get_decode(path, cap, b64, sizeof(b64), der, cap + 2, len) < 0)
		return -1;
	memcpy(out, der, *len);
	return 0;
}

int
ocsp_response_status_build(int status, unsigned char **der, size_t *len)
{
	OCSP_RESPONSE *resp = NULL;
	unsigned char *out = NULL;
	int n, rc = -1;

	*der = NULL;
	*len = 0;
	/* A successful response needs a signed body: not what this builds. */
	if (status == OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (resp = OCSP_response_create(status, NULL)) == NULL)
		goto done;
	if ((n = i2d_OCSP_RESPONSE(resp, &out)) <= 0)
		goto done;
	*der = out;
	*len = (size_t)n;
	rc = 0;
done:
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return rc;
}

char *
ocsp_get_url(const char *base, const unsigned char *der, size_t len)
{
	unsigned char *b64 = NULL;
	char *url = NULL;
	size_t blen, need, i, o;
	int slash, n;

	if (base == NULL || der == NULL || len == 0 || len > OCSP_GET_MAX)
		goto done;
	blen = strlen(base);
	if ((b64 = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
		goto done;
	n = EVP_EncodeBlock(b64, der, (int)len);
	if (n <= 0)
		goto done;
	slash = blen == 0 || base[blen - 1] != '/';
	need = blen + (size_t)slash;
	for (i = 0; i < (size_t)n; i++)
		need += (b64[i] == '+' || b64[i] == '/' || b64[i] == '=') ? 3 : 1;
	if (need > OCSP_GET_MAX || (url = malloc(need + 1)) == NULL)
		goto done;
	memcpy(url, base, blen);
	o = blen;
	if (slash)
		url[o++] = '/';
	for (i = 0; i < (size_t)n; i++) {
		switch (b64[i]) {
		case '+':
			memcpy(url + o, "%2B", 3);
			o += 3;
			break;
		case '/':
			memcpy(url + o, "%2F", 3);
			o += 3;
			break;
		case '=':
			memcpy(url + o, "%3D", 3);
			o += 3;
			break;
		default:
			url[o++] = (char)b64[i];
		}
	}
	url[o] = '\0';

done:
	free(b64);
	return url;
}

/* Classifies a failed OCSP_basic_verify from the error queue, which it empties. A signature
 * that does not verify under the signer's key is BAD_SIGNATURE; everything else (no signer,
 * signer not certified by the issuer, no OCSPSigning EKU, CertIDs of another issuer) is
 * BAD_SIGNER. */
static enum ocsp_verdict
classify_verify_failure(char *detail, size_t cap)
{
	enum ocsp_verdict v = OCSP_BAD_SIGNER;
	const char *data = NULL, *reason = NULL;
	char extra[128] = "";
	unsigned long e;
	int flags = 0;

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (ERR_GET_LIB(e) != ERR_LIB_OCSP)
			continue;
		if (ERR_GET_REASON(e) == OCSP_R_SIGNATURE_FAILURE)
			v = OCSP_BAD_SIGNATURE;
		/* OpenSSL raises the OCSP reason last; it is the most specific one. */
		reason = ERR_reason_error_string(e);
		extra[0] = '\0';
		if ((flags & ERR_TXT_STRING) != 0 && data != NULL)
			snprintf(extra, sizeof(extra), "%s", data);
	}
	if (reason == NULL)
		reason = v == OCSP_BAD_SIGNATURE ? "signature does not verify" :
		    "responder is not authorised by the issuer";
	if (extra[0] != '\0')
		snprintf(detail, cap, "%s: %s", reason, extra);
	else
		snprintf(detail, cap, "%s", reason);
	return v;
}

/* ---- responder certificates already proven (the fast path of ocsp_verify_cached) ---- */

/* A responder certificate that one full verification proved for an issuer: the issuer itself,
 * or a delegate it certified for OCSPSigning. Both are valid in [not_before, not_after]. */
struct ocsp_signer {
	X509 *issuer;                 /* a reference */
	X509 *signer;                 /* a reference; the issuer itself when self */
	unsigned char digest[32];     /* SHA-256 of the signer's DER */
	int self;
	time_t not_before, not_after;
};

struct ocsp_signers {
	struct ocsp_signer v[OCSP_SIGNERS_MAX];
	size_t n;
	unsigned long long hits, misses;
};

struct ocsp_signers *
ocsp_signers_new(void)
{
	return calloc(1, sizeof(struct ocsp_signers));
}

void
ocsp_signers_clear(struct ocsp_signers *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		X509_free(s->v[i].issuer);
		X509_free(s->v[i].signer);
	}
	s->n = 0;
}

void
ocsp_signers_free(struct ocsp_signers **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	ocsp_signers_clear(*sp);
	free(*sp);
	*sp = NULL;
}

void
ocsp_signers_stats(const struct ocsp_signers *s, unsigned long long *hits,
    unsigned long long *misses)
{
	*hits = s != NULL ? s->hits : 0;
	*misses = s != NULL ? s->misses : 0;
}

#define OCSP_MAX_RESPONSE_CERTS 8

/* The parts of a BasicOCSPResponse, as slices of the DER received. */
struct basic_parts {
	const unsigned char *tbs;       /* tbsResponseData, signatureAlgorithm and signature: */
	size_t tbs_len;                 /* one run, as the response holds them */
	const unsigned char *cert[OCSP_MAX_RESPONSE_CERTS];
	size_t cert_len[OCSP_MAX_RESPONSE_CERTS];
	int ncerts;
};

/* Splits a successful OCSPResponse of type id-pkix-ocsp-basic; -1 for anything else (the
 * full path then decides what it is). */
static int
basic_split(const unsigned char *der, size_t len, struct basic_parts *b)
{
	static const unsigned char basic_oid[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30,
	    0x01, 0x01 };
	const unsigned char *p = der, *end = der + len, *v;
	unsigned char tag;
	size_t n;

	memset(b, 0, sizeof(*b));
	if (der_enter(&p, &end, 0x30) < 0)                          /* OCSPResponse */
		return -1;
	/* responseStatus successful (0) */
	if (der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x0a || n != 1 || v[0] != 0)
		return -1;
	if (der_enter(&p, &end, 0xa0) < 0 || der_enter(&p, &end, 0x30) < 0)  /* responseBytes */
		return -1;
	if (der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x06 || n != sizeof(basic_oid) ||
	    memcmp(v, basic_oid, n) != 0)
		return -1;
	if (der_enter(&p, &end, 0x04) < 0 || der_enter(&p, &end, 0x30) < 0)  /* BasicOCSPResponse */
		return -1;
	b->tbs = p;
	if (der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x30 ||     /* tbsResponseData */
	    der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x30 ||     /* signatureAlgorithm */
	    der_tlv(&p, end, &tag, &v, &n) < 0 || tag != 0x03)       /* signature */
		return -1;
	b->tbs_len = (size_t)(p - b->tbs);
	if (p == end)
		return 0;
	if (der_enter(&p, &end, 0xa0) < 0 || der_enter(&p, &end, 0x30) < 0)  /* certs */
		return -1;
	while (p < end) {
		const unsigned char *start = p;

		if (b->ncerts == OCSP_MAX_RESPONSE_CERTS || der_tlv(&p, end, &tag, &v, &n) < 0 ||
		    tag != 0x30)
			return -1;
		b->cert[b->ncerts] = start;
		b->cert_len[b->ncerts++] = (size_t)(p - start);
	}
	return 0;
}

/* The proven signer for issuer among the certificates the response carries (or the issuer
 * itself), valid at now; NULL when none. Every certificate the response carries must be one
 * already decoded and proven (a signer's or the issuer's, byte for byte): the full path
 * decodes them all and refuses a response with one that does not parse. */
static const struct ocsp_signer *
signer_find(const struct ocsp_signers *s, const struct basic_parts *b, X509 *issuer,
    time_t now)
{
	unsigned char d[OCSP_MAX_RESPONSE_CERTS][32];
	const struct ocsp_signer *self = NULL, *carried = NULL;
	int known[OCSP_MAX_RESPONSE_CERTS] = { 0 };

	for (int k = 0; k < b->ncerts; k++)
		if (util_sha256(b->cert[k], b->cert_len[k], d[k]) < 0)
			return NULL;
	for (size_t i = 0; i < s->n; i++) {
		const struct ocsp_signer *e = &s->v[i];

		if (now < e->not_before || now > e->not_after || X509_cmp(e->issuer, issuer) != 0)
			continue;
		if (e->self)
			self = e;
		for (int k = 0; k < b->ncerts; k++) {
			if (memcmp(d[k], e->digest, 32) == 0) {
				known[k] = 1;
				if (!e->self)
					carried = e;
			}
		}
	}
	for (int k = 0; k < b->ncerts; k++)
		if (!known[k])
			return NULL;
	return self != NULL ? self : carried;
}

/* What the full path's issuer check (OpenSSL's ocsp_check_issuer) also demands: at least one
 * SingleResponse, and every one for a certificate of id's issuer. */
static int
same_issuer(OCSP_BASICRESP *bs, const OCSP_CERTID *id)
{
	int n = OCSP_resp_count(bs);

	for (int i = 0; i < n; i++) {
		const OCSP_CERTID *cid = OCSP_SINGLERESP_get0_id(OCSP_resp_get0(bs, i));

		if (cid == NULL || OCSP_id_issuer_cmp(cid, id) != 0)
			return 0;
	}
	return n > 0;
}

/* The fast path: a response signed by a responder already proven for issuer is decoded
 * without the certificates it carries (decoding a certificate's key is most of OpenSSL 3.0's
 * cost) and checked with one signature verification, the responderID matched against the
 * proven signer alone. Returns the basic response, or NULL: the full path then decides. */
static OCSP_BASICRESP *
fast_basic(struct ocsp_signers *s, const unsigned char *der, size_t len, const OCSP_CERTID *id,
    X509 *issuer, time_t now)
{
	const struct ocsp_signer *e;
	struct basic_parts b;
	OCSP_BASICRESP *bs = NULL;
	STACK_OF(X509) *certs = NULL;
	unsigned char *buf = NULL, *w;
	const unsigned char *p;
	size_t total;

	if (s == NULL || s->n == 0 || issuer == NULL || basic_split(der, len, &b) < 0 ||
	    (e = signer_find(s, &b, issuer, now)) == NULL)
		return NULL;
	/* SEQUENCE { tbsResponseData, signatureAlgorithm, signature }, its length in DER's
	 * shortest form */
	if (b.tbs_len > 0xffffff || (buf = malloc(5 + b.tbs_len)) == NULL)
		return NULL;
	w = buf;
	*w++ = 0x30;
	if (b.tbs_len >= 0x10000) {
		*w++ = 0x83;
		*w++ = (unsigned char)(b.tbs_len >> 16);
		*w++ = (unsigned char)(b.tbs_len >> 8);
	} else if (b.tbs_len >= 0x100) {
		*w++ = 0x82;
		*w++ = (unsigned char)(b.tbs_len >> 8);
	} else if (b.tbs_len >= 0x80) {
		*w++ = 0x81;
	}
	*w++ = (unsigned char)b.tbs_len;
	memcpy(w, b.tbs, b.tbs_len);
	total = (size_t)(w - buf) + b.tbs_len;
	p = buf;
	if ((bs = d2i_OCSP_BASICRESP(NULL, &p, (long)total)) == NULL || p != buf + total ||
	    (certs = sk_X509_new_null()) == NULL || !sk_X509_push(certs, e->signer) ||
	    OCSP_basic_verify(bs, certs, NULL, OCSP_NOINTERN | OCSP_NOVERIFY) != 1 ||
	    !same_issuer(bs, id)) {
		OCSP_BASICRESP_free(bs);
		bs = NULL;
	}
	ERR_clear_error();
	sk_X509_free(certs);
	free(buf);
	return bs;
}

/* After a full verification: remembers who signed for issuer, for as long as both are valid. */
static void
signer_learn(struct ocsp_signers *s, OCSP_BASICRESP *bs, X509 *issuer)
{
	STACK_OF(X509) *extra = NULL;
	struct ocsp_signer *e;
	X509 *signer = NULL;
	unsigned char *der = NULL, digest[32];
	time_t nb_i, na_i, nb_s, na_s;
	int n;

	if (s == NULL || (extra = sk_X509_new_null()) == NULL || !sk_X509_push(extra, issuer) ||
	    OCSP_resp_get0_signer(bs, &signer, extra) != 1 || signer == NULL ||
	    util_asn1_time(X509_get0_notBefore(issuer), &nb_i) != 0 ||
	    util_asn1_time(X509_get0_notAfter(issuer), &na_i) != 0 ||
	    util_asn1_time(X509_get0_notBefore(signer), &nb_s) != 0 ||
	    util_asn1_time(X509_get0_notAfter(signer), &na_s) != 0 ||
	    (n = i2d_X509(signer, &der)) <= 0)
		goto out;
	if (util_sha256(der, (size_t)n, digest) < 0)
		goto out;
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->v[i].digest, digest, 32) == 0 && X509_cmp(s->v[i].issuer, issuer) == 0)
			goto out;
	/* Full: start over; a handful of responders sign for all the issuers of a fleet. */
	if (s->n == OCSP_SIGNERS_MAX)
		ocsp_signers_clear(s);
	e = &s->v[s->n];
	memcpy(e->digest, digest, 32);
	if (!X509_up_ref(issuer))
		goto out;
	if (!X509_up_ref(signer)) {
		X509_free(issuer);
		goto out;
	}
	e->issuer = issuer;
	e->signer = signer;
	e->self = X509_cmp(signer, issuer) == 0;
	e->not_before = nb_i > nb_s ? nb_i : nb_s;
	e->not_after = na_i < na_s ? na_i : na_s;
	s->n++;
out:
	OPENSSL_free(der);
	sk_X509_free(extra);
	ERR_clear_error();
}

enum ocsp_verdict
ocsp_verify(const unsigned char *der, size_t len, const OCSP_CERTID *id, X509 *issuer,
    time_t now, struct ocsp_result *res)
{
	return ocsp_verify_cached(der, len, id, issuer, now, NULL, res);
}

enum ocsp_verdict
ocsp_verify_cached(const unsigned char *der, size_t len, const OCSP_CERTID *id, X509 *issuer,
    time_t now, struct ocsp_signers *signers, struct ocsp_result *res)
{
	enum ocsp_verdict v = OCSP_MALFORMED;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	X509_STORE *store = NULL;
	STACK_OF(X509) *certs = NULL;
	ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
	const unsigned char *p = der;
	int rstatus, status = -1, reason = -1;

	memset(res, 0, sizeof(*res));
	res->revocation_reason = -1;
	res->status = STAPLER_UNKNOWN;
	ERR_clear_error();

	if (der != NULL && len > 0 && len <= LONG_MAX && id != NULL &&
	    (bs = fast_basic(signers, der, len, id, issuer, now)) != NULL) {
		signers->hits++;
		goto signed_ok;
	}
	if (signers != NULL)
		signers->misses++;
	if (der == NULL || len == 0 || len > LONG_MAX ||
	    (resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL) {
		snprintf(res->detail, sizeof(res->detail), "not a DER OCSPResponse");
		goto done;
	}
	if (p != der + len) {
		snprintf(res->detail, sizeof(res->detail), "%zu trailing bytes after the response",
		    (size_t)(der + len - p));
		goto done;
	}
	rstatus = OCSP_response_status(resp);
	switch (rstatus) {
	case OCSP_RESPONSE_STATUS_SUCCESSFUL:
		break;
	case OCSP_RESPONSE_STATUS_TRYLATER:
	case OCSP_RESPONSE_STATUS_INTERNALERROR:
		v = OCSP_TRY_LATER;
		snprintf(res->detail, sizeof(res->detail), "responseStatus %s",
		    OCSP_response_status_str(rstatus));
		goto done;
	case OCSP_RESPONSE_STATUS_MALFORMEDREQUEST:
	case OCSP_RESPONSE_STATUS_SIGREQUIRED:
	case OCSP_RESPONSE_STATUS_UNAUTHORIZED:
		v = OCSP_REFUSED;
		snprintf(res->detail, sizeof(res->detail), "responseStatus %s",
		    OCSP_response_status_str(rstatus));
		goto done;
	default:
		snprintf(res->detail, sizeof(res->detail), "unknown responseStatus %d", rstatus);
		goto done;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		snprintf(res->detail, sizeof(res->detail), "not a basic OCSP response");
		goto done;
	}

	if (id == NULL) {
		v = OCSP_WRONG_CERTID;
		snprintf(res->detail, sizeof(res->detail), "no CertID to look for");
		goto done;
	}
	/* Only the issuer is trusted, and only at now: the signer is the issuer itself or a
	 * delegate the issuer certified for OCSPSigning (OCSP_NOEXPLICIT). */
	if (issuer == NULL || (store = X509_STORE_new()) == NULL ||
	    !X509_STORE_add_cert(store, issuer) || (certs = sk_X509_new_null()) == NULL ||
	    !sk_X509_push(certs, issuer)) {
		v = OCSP_BAD_SIGNER;
		snprintf(res->detail, sizeof(res->detail), "no issuer to verify against");
		goto done;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), now);
	ERR_clear_error();
	if (OCSP_basic_verify(bs, certs, store, OCSP_NOEXPLICIT) != 1) {
		v = classify_verify_failure(res->detail, sizeof(res->detail));
		goto done;
	}
	signer_learn(signers, bs, issuer);

signed_ok:

	if (!OCSP_resp_find_status(bs, OCSP_UNCONST(OCSP_CERTID, id), &status, &reason, &rev,
	    &thisupd, &nextupd)) {
		v = OCSP_WRONG_CERTID;
		snprintf(res->detail, sizeof(res->detail), "no SingleResponse for the CertID asked for");
		goto done;
	}
	/* The status is reported even when the times refuse the response (a relying party says
	 * "expired response saying good"); the verdict still decides. */
	switch (status) {
	case V_OCSP_CERTSTATUS_GOOD:
		res->status = STAPLER_GOOD;
		break;
	case V_OCSP_CERTSTATUS_REVOKED:
		res->status = STAPLER_REVOKED;
		res->revocation_reason = reason;
		if (util_asn1_time(rev, &res->revoked_at) != 0) {
			v = OCSP_MALFORMED;
			snprintf(res->detail, sizeof(res->detail), "bad revocationTime");
			goto done;
		}
		break;
	default:
		res->status = STAPLER_UNKNOWN;
		break;
	}
	if (util_asn1_time(thisupd, &res->this_update) != 0 ||
	    util_asn1_time(OCSP_resp_get0_produced_at(bs), &res->produced_at) != 0) {
		v = OCSP_MALFORMED;
		snprintf(res->detail, sizeof(res->detail), "bad thisUpdate or producedAt");
		goto done;
	}
	if (nextupd == NULL) {
		v = OCSP_NO_NEXT_UPDATE;
		snprintf(res->detail, sizeof(res->detail), "no nextUpdate");
		goto done;
	}
	if (util_asn1_time(nextupd, &res->next_update) != 0) {
		v = OCSP_MALFORMED;
		snprintf(res->detail, sizeof(res->detail), "bad nextUpdate");
		goto done;
	}
	if (res->next_update < res->this_update) {
		v = OCSP_MALFORMED;
		snprintf(res->detail, sizeof(res->detail), "nextUpdate before thisUpdate");
		goto done;
	}
	if (res->this_update > now + OCSP_SKEW) {
		v = OCSP_NOT_YET_VALID;
		snprintf(res->detail, sizeof(res->detail), "thisUpdate %lld s in the future",
		    (long long)(res->this_update - now));
		goto done;
	}
	if (res->next_update <= now) {
		v = OCSP_EXPIRED;
		snprintf(res->detail, sizeof(res->detail), "nextUpdate passed %lld s ago",
		    (long long)(now - res->next_update));
		goto done;
	}
	res->detail[0] = '\0';
	v = OCSP_OK;

done:
	sk_X509_free(certs);
	X509_STORE_free(store);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return v;
}
