/* POST /v1/ocpp/certificate-status: OCPP 2.0.1's GetCertificateStatusRequest (or its
 * ocspRequestData object alone) in, GetCertificateStatusResponse out, for EV charging central
 * systems asking on their stations' behalf. The CertID comes as hex fields; it is answered
 * from the same cache, through the same fetches and per-client limits as the OCSP interface
 * (http_ocsp_answer()). A responderURL a station names is never fetched as given: staplerd
 * asks the responders it knows for the issuer (AIA URLs it learned, [responders]), so a URL
 * equal to one of them changes nothing and any other is ignored. JSON is parsed by jansson
 * and written by fmt.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/ocsp.h>

#include "config.h"
#include "fmt.h"
#include "http_kit.h"
#include "http_ocpp.h"
#include "http_ocsp.h"
#include "http_server.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* OCPP 2.0.1's bounds: the serial's hex (serialNumber maxLength), a hash's hex (maxLength of
 * issuerNameHash/issuerKeyHash), the base64 answer (ocspResult), statusInfo's fields. */
#define OCPP_SERIAL_HEX_MAX 40
#define OCPP_HASH_HEX_MAX 128
#define OCPP_RESULT_MAX 5500
#define OCPP_INFO_MAX 512

static const struct {
	const char *name;
	unsigned char oid[9];
	size_t len;
} ocpp_algs[] = {
	{ "SHA256", { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01 }, 32 },
	{ "SHA384", { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02 }, 48 },
	{ "SHA512", { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03 }, 64 },
};

/* A hex field into out (exactly len bytes, at most 64), whatever its case, the leading
 * zeros a writer dropped put back. Returns 0 or -1. */
static int
hex_field(const char *hex, unsigned char *out, size_t len)
{
	char padded[2 * 64 + 1];
	size_t n = strlen(hex);

	if (n == 0 || n > 2 * len || 2 * len >= sizeof(padded))
		return -1;
	memset(padded, '0', 2 * len - n);
	memcpy(padded + 2 * len - n, hex, n + 1);
	return util_unhex(padded, out, len) == (int)len ? 0 : -1;
}

/* Appends a DER TLV (definite length, up to 0xffff bytes) to out[at..cap); returns the new
 * end, or 0 when it does not fit. */
static size_t
der_put(unsigned char *out, size_t at, size_t cap, unsigned char tag, const unsigned char *v,
    size_t n)
{
	if (n > 0xffff || at + 4 + n > cap)
		return 0;
	out[at++] = tag;
	if (n >= 0x100) {
		out[at++] = 0x82;
		out[at++] = (unsigned char)(n >> 8);
	} else if (n >= 0x80) {
		out[at++] = 0x81;
	}
	out[at++] = (unsigned char)n;
	memcpy(out + at, v, n);
	return at + n;
}

/* The CertID the fields name, with NULL hash parameters (as OpenSSL writes them): a new
 * OCSP_CERTID, or NULL with *why set. */
static OCSP_CERTID *
certid_of(json_t *data, const char **why)
{
	const char *alg, *nh, *kh, *sn;
	unsigned char name_hash[64], key_hash[64], serial[OCPP_SERIAL_HEX_MAX / 2 + 1];
	unsigned char algid[16], inner[256], der[300];
	const unsigned char *p = der;
	size_t i, hl, sl, n, m;
	const char *s;

	alg = json_string_value(json_object_get(data, "hashAlgorithm"));
	nh = json_string_value(json_object_get(data, "issuerNameHash"));
	kh = json_string_value(json_object_get(data, "issuerKeyHash"));
	sn = json_string_value(json_object_get(data, "serialNumber"));
	if (alg == NULL || nh == NULL || kh == NULL || sn == NULL) {
		*why = "hashAlgorithm, issuerNameHash, issuerKeyHash and serialNumber are required "
		    "strings";
		return NULL;
	}
	for (i = 0; i < sizeof(ocpp_algs) / sizeof(ocpp_algs[0]); i++)
		if (strcasecmp(alg, ocpp_algs[i].name) == 0)
			break;
	if (i == sizeof(ocpp_algs) / sizeof(ocpp_algs[0])) {
		*why = "hashAlgorithm is not SHA256, SHA384 or SHA512";
		return NULL;
	}
	if ((hl = ocpp_algs[i].len) > sizeof(name_hash))
		return NULL;
	if (strlen(nh) > OCPP_HASH_HEX_MAX || strlen(kh) > OCPP_HASH_HEX_MAX ||
	    hex_field(nh, name_hash, hl) < 0 || hex_field(kh, key_hash, hl) < 0) {
		*why = "issuerNameHash and issuerKeyHash must be hex of the algorithm's length";
		return NULL;
	}
	/* The serial as OCPP writes it: hex, any case, with or without leading zeros; as an
	 * INTEGER, its shortest positive form. */
	for (s = sn; *s == '0' && s[1] != '\0'; s++)
		;
	if (strlen(sn) > OCPP_SERIAL_HEX_MAX || (sl = (strlen(s) + 1) / 2) == 0 ||
	    hex_field(s, serial + 1, sl) < 0) {
		*why = "serialNumber must be at most 40 hex characters";
		return NULL;
	}
	serial[0] = 0;
	m = serial[1] & 0x80 ? 0 : 1;    /* a sign byte only when the top bit is set */
	if ((n = der_put(algid, 0, sizeof(algid) - 2, 0x06, ocpp_algs[i].oid,
	    sizeof(ocpp_algs[i].oid))) == 0)
		return NULL;
	algid[n++] = 0x05;
	algid[n++] = 0x00;
	if ((n = der_put(inner, 0, sizeof(inner), 0x30, algid, n)) == 0 ||
	    (n = der_put(inner, n, sizeof(inner), 0x04, name_hash, hl)) == 0 ||
	    (n = der_put(inner, n, sizeof(inner), 0x04, key_hash, hl)) == 0 ||
	    (n = der_put(inner, n, sizeof(inner), 0x02, serial + m, sl + 1 - m)) == 0 ||
	    (n = der_put(der, 0, sizeof(der), 0x30, inner, n)) == 0) {
		*why = "CertID too long";
		return NULL;
	}
	return d2i_OCSP_CERTID(NULL, &p, (long)n);
}

/* Sends a GetCertificateStatusResponse: {"status":status,"ocspResult":result} when result is
 * set, else {"status":status,"statusInfo":{"reasonCode":reason,"additionalInfo":info}}; HTTP
 * status 200 unless code says otherwise. Written by the one JSON writer (fmt.c); jansson only
 * parses. */
static void
send_doc(struct http_kit *kit, struct http_req *req, int code, const char *status,
    const char *result, const char *reason, const char *info)
{
	char *text = NULL, secs[24];
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL) {
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	fputs("{\"status\":", fp);
	fmt_json_str(fp, status);
	if (result != NULL) {
		fputs(",\"ocspResult\":", fp);
		fmt_json_str(fp, result);
	} else {
		fputs(",\"statusInfo\":{\"reasonCode\":", fp);
		fmt_json_str(fp, reason);
		fputs(",\"additionalInfo\":", fp);
		fmt_json_str(fp, info);
		fputc('}', fp);
	}
	fputc('}', fp);
	if (ferror(fp) | fclose(fp)) {
		free(text);
		http_kit_send_error(req, 503, "out of memory");
		return;
	}
	http_reply_begin(req, code);
	http_reply_header(req, "Cache-Control", 13, "no-store", 8);
	if (code == 429) {
		secs[http_u64((unsigned long long)http_kit_retry_after(kit), secs)] = '\0';
		http_reply_header(req, "Retry-After", 11, secs, strlen(secs));
	}
	http_reply_end(req, "application/json", text, len);
	free(text);
}

static void
send_failed(struct http_kit *kit, struct http_req *req, int code, const char *reason,
    const char *info)
{
	char buf[OCPP_INFO_MAX + 1];

	snprintf(buf, sizeof(buf), "%s", info != NULL && info[0] != '\0' ? info : reason);
	send_doc(kit, req, code, "Failed", NULL, reason, buf);
}

/* The answer for a staple outcome (http_certid_reply). */
static void
reply_ocpp(struct http_kit *kit, struct http_req *req, enum staple_outcome outcome,
    const struct staple *s, const char *why)
{
	const struct stapler_config *cfg = http_kit_config(kit);
	time_t now = time(NULL);
	char info[128];
	char *b64;

	if (outcome != STAPLE_OK) {
		/* Every hashAlgorithm OCPP names is one staplerd serves: untrusted is the issuer. */
		send_failed(kit, req, outcome == STAPLE_LIMITED ? 429 : 200,
		    staple_outcome_ocpp(outcome), why);
		return;
	}
	/* A station keeps what it gets until its next check: too little left is no answer. */
	if (s->next_update - now < cfg->ocpp_min_validity) {
		snprintf(info, sizeof(info), "nextUpdate in %lld s, under [ocpp] min_validity %lld s",
		    (long long)(s->next_update - now), cfg->ocpp_min_validity);
		send_failed(kit, req, 200, "ValidityTooShort", info);
		return;
	}
	if ((b64 = util_base64(s->der, s->der_len)) == NULL) {
		send_failed(kit, req, 200, "Unavailable", "out of memory");
		return;
	}
	if (strlen(b64) > OCPP_RESULT_MAX) {
		snprintf(info, sizeof(info), "the response is %zu base64 characters, over OCPP's %d",
		    strlen(b64), OCPP_RESULT_MAX);
		free(b64);
		send_failed(kit, req, 200, "ResponseTooLarge", info);
		return;
	}
	send_doc(kit, req, 200, "Accepted", b64, NULL, NULL);
	free(b64);
}

static void
on_staple(enum staple_outcome outcome, const struct staple *s, const char *error, void *arg)
{
	struct http_kit *kit;
	struct http_req *req = http_kit_end(arg, &kit);

	reply_ocpp(kit, req, outcome, s, error);
}

void
http_ocpp_handle(struct http_kit *kit, struct http_req *req, void *state)
{
	const unsigned char *body;
	json_t *root = NULL, *data;
	json_error_t jerr;
	OCSP_CERTID *id;
	const char *why = NULL;
	char msg[256];
	size_t len;

	if (http_kit_body(kit, req, &body, &len) < 0)
		return;
	if (body == NULL || (root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL) {
		snprintf(msg, sizeof(msg), "not JSON: %s", body == NULL ? "empty body" : jerr.text);
		http_kit_send_error(req, 400, msg);
		return;
	}
	/* GetCertificateStatusRequest, or its ocspRequestData object alone. */
	data = json_object_get(root, "ocspRequestData");
	if (data == NULL)
		data = root;
	if (!json_is_object(data) || (id = certid_of(data, &why)) == NULL) {
		http_kit_send_error(req, 400, why != NULL ? why :
		    "expected a GetCertificateStatusRequest (OCPP 2.0.1)");
		json_decref(root);
		return;
	}
	json_decref(root);
	http_ocsp_answer(kit, req, id, reply_ocpp, on_staple);
}
