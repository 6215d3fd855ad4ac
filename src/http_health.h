/* What an operator and a load balancer watch: GET|HEAD /healthz and /metrics. */
#ifndef STAPLER_HTTP_HEALTH_H
#define STAPLER_HTTP_HEALTH_H

#include "http_kit.h"

/* The state both routes share (the start time, the cached pass over the staples). */
extern const struct http_route_state http_health_state;

/* GET|HEAD /healthz: ok, or degraded with reasons (staples near expiry that could not be
 * refreshed, an upstream failing longer than [health] upstream_failing, the refresh behind,
 * a database that refuses writes), as JSON; 200, [health] degraded_code when degraded, 503
 * when shutting down. state: http_health_state's. */
void http_health_handle(struct http_kit *kit, struct http_req *req, void *state);
/* GET|HEAD /metrics: Prometheus text format. state: http_health_state's. */
void http_metrics_handle(struct http_kit *kit, struct http_req *req, void *state);

#endif
