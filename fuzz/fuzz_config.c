/* Fuzz harness: configuration files (config_load, [responders] included), written to a file of
 * this process's scratch directory because config_load() reads a path; then the lookups the
 * daemon makes in a loaded configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzpki.h"
#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *path;
	static const unsigned char zero_hash[20];
	struct stapler_config *cfg;
	unsigned short port;
	char err[512], host[256];
	FILE *f;

	if (path == NULL)
		path = testpki_write_file(fuzz_tmpdir(), "staplerd.conf", "", 0);
	if ((f = fopen(path, "wb")) == NULL || (size > 0 && fwrite(data, 1, size, f) != size) ||
	    fclose(f) != 0) {
		perror(path);
		abort();
	}
	if ((cfg = config_load(path, err, sizeof(err))) == NULL)
		return 0;
	(void)config_host_allowed(cfg, "ocsp.fuzz.test");
	(void)config_responder_find(cfg, zero_hash);
	for (size_t i = 0; i < cfg->n_responders; i++) {
		const struct config_responder *r = &cfg->responders[i];

		if (config_responder_find(cfg, r->key_hash) == NULL) {
			fprintf(stderr, "fuzz_config: responder of line %d not found\n", r->line);
			abort();
		}
		for (int u = 0; u < r->n; u++)
			(void)strlen(r->url[u]);
	}
	(void)config_split_listen(cfg->listen, host, sizeof(host), &port);
	config_free(&cfg);
	return 0;
}
