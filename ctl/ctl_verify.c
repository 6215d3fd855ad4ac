/* staplerctl verify: a relying party's check of a staple, offline (stapler_verify_staple()).
 * Needs neither the daemon nor the configuration. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "certs.h"
#include "fmt.h"
#include "util.h"
#include "stapler/verify.h"

/* Certificate and chain files are small; a staple is a few KiB. */
#define VERIFY_FILE_MAX (1024 * 1024)

/* Certificates of a PEM or DER file; NULL after printing why. */
static STACK_OF(X509) *
read_certs(const char *path)
{
	STACK_OF(X509) *sk;
	unsigned char *buf;
	size_t len;
	char err[512];

	if ((buf = ctl_read_file(path, VERIFY_FILE_MAX, &len, err, sizeof(err))) == NULL) {
		ctl_err("%s", err);
		return NULL;
	}
	if ((sk = certs_parse(buf, len, err, sizeof(err))) == NULL)
		ctl_err("%s: %s", path, err);
	free(buf);
	return sk;
}

/* The issuer of cert: through the trust bundle (the chain must reach it) when ca is given,
 * else from the chain. Returns a new reference, or NULL after printing why. */
static X509 *
find_issuer(X509 *cert, STACK_OF(X509) *chain, const char *ca, time_t now)
{
	STACK_OF(X509) *all = NULL;
	struct certs_trust *trust = NULL;
	X509 *issuer = NULL;
	time_t not_after;
	char err[512];

	if (ca == NULL) {
		if (chain == NULL || (issuer = stapler_verify_find_issuer(cert, chain)) == NULL)
			ctl_err("the issuer of the certificate is not in --chain (give --chain or --ca)");
		return issuer;
	}
	if ((trust = certs_trust_load(ca, err, sizeof(err))) == NULL) {
		ctl_err("%s", err);
		return NULL;
	}
	if ((all = sk_X509_new_null()) == NULL || !sk_X509_push(all, cert))
		goto out;
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		if (!sk_X509_push(all, sk_X509_value(chain, i)))
			goto out;
	}
	if (certs_verify_chain(trust, all, now, &issuer, &not_after, err, sizeof(err)) < 0)
		ctl_err("the certificate does not chain to %s: %s", ca, err);
out:
	sk_X509_free(all);     /* the certificates belong to the callers' stacks */
	certs_trust_free(&trust);
	return issuer;
}

static void
print_result(struct ctl *ctl, const struct stapler_verify_result *r)
{
	char t[64];

	if (ctl->json) {
		printf("{\"verdict\":\"%s\",\"status\":\"%s\",\"this_update\":%lld,"
		    "\"next_update\":%lld,\"produced_at\":%lld,\"revoked_at\":%lld,"
		    "\"revocation_reason\":%d,\"detail\":", stapler_verify_code_name(r->code),
		    stapler_status_name(r->status), (long long)r->this_update,
		    (long long)r->next_update, (long long)r->produced_at, (long long)r->revoked_at,
		    r->revocation_reason);
		if (r->detail[0] != '\0')
			fmt_json_str(stdout, r->detail);
		else
			printf("null");
		printf("}\n");
		return;
	}
	printf("verdict       %s\n", stapler_verify_code_name(r->code));
	if (r->code == STAPLER_VERIFY_INVALID)
		return;
	printf("status        %s\n", stapler_status_name(r->status));
	if (r->status == STAPLER_REVOKED) {
		ctl_time(r->revoked_at, ctl->now, t, sizeof(t));
		printf("revoked at    %s\n", t);
	}
	ctl_time(r->this_update, ctl->now, t, sizeof(t));
	printf("this update   %s\n", t);
	ctl_time(r->next_update, ctl->now, t, sizeof(t));
	printf("next update   %s\n", t);
	ctl_time(r->produced_at, ctl->now, t, sizeof(t));
	printf("produced at   %s\n", t);
}

int
ctl_cmd_verify(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "chain", required_argument, NULL, 'C' },
		{ "staple", required_argument, NULL, 's' },
		{ "ca", required_argument, NULL, 'a' },
		{ "max-age", required_argument, NULL, 'm' },
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *cert_path = NULL, *chain_path = NULL, *staple_path = NULL, *ca = NULL;
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	struct stapler_verify_result res;
	unsigned char *der = NULL;
	long long max_age = 0;
	X509 *issuer = NULL;
	size_t len;
	char err[512];
	int ch, rc;

	while ((ch = getopt_long(argc, argv, ":hj", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cert_path = optarg;
			break;
		case 'C':
			chain_path = optarg;
			break;
		case 's':
			staple_path = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 'm':
			if (util_parse_duration(optarg, &max_age) < 0 || max_age <= 0 ||
			    max_age > 100L * 365 * 86400)
				return ctl_usage_error("verify", "--max-age takes a duration such as 90s, "
				    "1h or 7d");
			break;
		default:
			if ((rc = ctl_common_opt(ctl, "verify", ch, argv)) >= 0)
				return rc;
		}
	}
	if (optind != argc)
		return ctl_usage_error("verify", "unexpected argument %s", argv[optind]);
	if (cert_path == NULL || staple_path == NULL)
		return ctl_usage_error("verify", "--cert and --staple are required");
	rc = CTL_USAGE;
	if ((certs = read_certs(cert_path)) == NULL ||
	    (chain_path != NULL && (chain = read_certs(chain_path)) == NULL))
		goto out;
	if ((issuer = find_issuer(sk_X509_value(certs, 0), chain, ca, ctl->now)) == NULL)
		goto out;
	if ((der = ctl_read_file(staple_path, VERIFY_FILE_MAX, &len, err, sizeof(err))) == NULL) {
		ctl_err("%s", err);
		goto out;
	}
	switch (stapler_verify_staple(der, len, sk_X509_value(certs, 0), issuer, ctl->now,
	    (long)max_age, &res)) {
	case STAPLER_VERIFY_GOOD:
		rc = CTL_OK;
		break;
	case STAPLER_VERIFY_REVOKED:
		rc = CTL_BAD;
		break;
	default:
		rc = CTL_USAGE;
		break;
	}
	print_result(ctl, &res);
	if (res.detail[0] != '\0')
		ctl_err("staple %s: %s", stapler_verify_code_name(res.code), res.detail);
out:
	free(der);
	X509_free(issuer);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}
