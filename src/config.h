/* Configuration: the key table, defaults, and `file:line: key: message` errors. */
#ifndef STAPLER_CONFIG_H
#define STAPLER_CONFIG_H

#include <stddef.h>

#include "stapler/types.h"

#define CONFIG_MAX_ALLOW 64
/* [limits] trusted_clients: addresses at most, and their size (family byte + 16). */
#define CONFIG_MAX_TRUSTED 64
#define CONFIG_ADDR_LEN 17
/* [responders]: issuers with an override, and URLs per issuer (tried in order). */
#define CONFIG_MAX_RESPONDERS 1024
#define CONFIG_MAX_RESPONDER_URLS 4
#define CONFIG_MAX_URL_LEN 1024

/* One [responders] entry: every fetch for certificates of this issuer goes to these URLs
 * instead of the certificates' AIA URLs. */
struct config_responder {
	unsigned char key_hash[20];     /* SHA-1 of the issuer's public key, as in the CertID */
	int line;                       /* where it was configured, for later errors */
	int n;
	char *url[CONFIG_MAX_RESPONDER_URLS];
};

struct stapler_config {
	char *path;              /* file it was read from, or NULL for defaults */
	/* [server] */
	char *listen;            /* "host:port" */
	char *admin_socket;
	size_t max_request;      /* bytes */
	long long drain_timeout; /* seconds a stop waits for clients' fetches */
	/* [health] */
	long long health_danger_window;     /* seconds before nextUpdate a staple is in danger */
	long long health_upstream_failing;  /* seconds an upstream fails before it degrades */
	long health_degraded_code;          /* HTTP status of a degraded /healthz */
	long long health_refresh_behind; /* /healthz degraded when the most overdue entry is
	                                  * this far behind its refresh time (0: never) */
	size_t max_header;       /* bytes of a request head */
	long max_connections;    /* 0: sized from the descriptor limit */
	long max_connections_per_client; /* 0: a quarter of max_connections */
	long long header_timeout;  /* seconds from a request's first byte to its blank line */
	long long request_timeout; /* seconds from a request's first byte to its last */
	long long idle_timeout;    /* seconds a connection may wait for a request */
	/* [cache] */
	char *database;
	enum stapler_hash_alg certid_hash;  /* CertID of /v1/staple(s) staples: SHA-1/256/384/512 */
	long max_entries;        /* staples held at most; new work beyond gets 503 */
	size_t max_bytes;        /* DER bytes of the staples held at most */
	long long unused_ttl;    /* seconds without a request after which an entry is dropped */
	long anonymous_entries;  /* answers to anonymous /ocsp misses held in memory at most */
	size_t anonymous_bytes;  /* their DER bytes at most */
	long long anonymous_ttl; /* seconds one is held at most */
	long load_batch;         /* warm start: rows per slice of the background load */
	long load_max_cpu;       /* warm start: % of the loop the background load may take */
	/* [trust] */
	char *ca_file;
	/* [upstream] */
	long long upstream_timeout; /* seconds */
	long long accept_no_next_update; /* seconds a response without nextUpdate is kept; 0: refused */
	long max_parallel;
	long max_per_host;          /* transfers at once per upstream host at most (the adaptive
	                             * limit of pace.c moves below it) */
	size_t n_allow;
	char *allow[CONFIG_MAX_ALLOW]; /* lowercase host names; empty list = any host */
	/* [refresh] */
	long long refresh_window;       /* seconds */
	long long refresh_min_interval; /* seconds */
	long long refresh_max_interval; /* seconds */
	long long refresh_upstream_max_age; /* an upstream's max-age postpones a refresh at most
	                                     * this long (seconds); 0: ignored */
	long long refresh_check_interval; /* seconds */
	long refresh_max_cpu;           /* % of a core refreshes may take of a saturated loop */
	/* [limits] */
	long fetches_per_client; /* fetch-triggering requests per second per address; 0: no limit */
	size_t n_trusted;        /* [limits] trusted_clients: family byte + address, as http_req_client() */
	unsigned char trusted[CONFIG_MAX_TRUSTED][CONFIG_ADDR_LEN];
	long fetch_burst;        /* the token bucket's depth */
	long limit_clients;      /* client addresses tracked (least recently seen forgotten) */
	/* [ocpp] */
	long long ocpp_min_validity; /* seconds a staple must have left to be Accepted */
	/* [log] */
	char *log_level;         /* error|warn|info|debug */
	/* [responders] */
	size_t n_responders;
	struct config_responder *responders;
};

/* Returns a new configuration holding the defaults; NULL on allocation failure. */
struct stapler_config *config_default(void);
/* Reads path over the defaults. Returns a new configuration, or NULL with err set to
 * "path:line: key: message" (or "path: message" when the file cannot be read). */
struct stapler_config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct stapler_config **cfg);
/* A reload: every restart-only key (listen, admin_socket, database) that ncfg changes gets
 * old's value back, so the running configuration never holds a value it does not use; names
 * receives them as "section.key ..." (truncated to cap). Returns how many, or -1 (memory). */
int config_keep_restart_only(const struct stapler_config *old, struct stapler_config *ncfg,
    char *names, size_t cap);
/* The key table, for the documentation test: 1 when section.name takes effect at restart
 * only, 0 when SIGHUP applies it, -1 when there is no such key. */
int config_key_restart_only(const char *section, const char *name);
/* The number of keys, and the i-th key's section and name; returns its restart flag, or -1
 * past the end. */
size_t config_key_count(void);
int config_key_at(size_t i, const char **section, const char **name);

/* Returns 1 when host may be contacted under the [upstream] allow list, else 0. */
int config_host_allowed(const struct stapler_config *cfg, const char *host);

/* Returns the [responders] override for an issuer key hash (20 bytes), or NULL. */
const struct config_responder *config_responder_find(const struct stapler_config *cfg,
    const unsigned char *key_hash);

/* Splits "host:port" ("[v6]:port" too) into host (cap bytes) and port; returns 0 or -1. */
int config_split_listen(const char *listen, char *host, size_t cap, unsigned short *port);

/* 1 when addr (the 17-byte form of http_req_client()) is one of [limits] trusted_clients. */
int config_client_trusted(const struct stapler_config *cfg, const unsigned char *addr);

#endif
