#!/usr/bin/env bash
# Scale: a cache of N entries (default 1,000,000), made by copying one real row under new
# serials straight into SQLite; measures how long staplerd takes from start to answering
# /healthz, to its first staple (the real row, moved to the end of the table so that the
# background load reaches it last: read by its key) and to fully loaded (/healthz
# "phase":"ready"), its resident memory then (against issue 19's target of 1.15 x the DER
# bytes + 64 MiB), and the DER bytes it holds.
#   bench/warm.sh [N]
source "$(dirname "$0")/common.sh"
n=${1:-1000000}
bench_deps sqlite3
bench_build

up=$(free_port)
start_upstream "$up"
sp=$(free_port)
start_staplerd "$sp" "$work/cache.db"
curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/staple.der" "http://127.0.0.1:$sp/v1/staple"
kill "$staplerd_pid"
wait "$staplerd_pid" || true

# Copies of the real row under serials 1..N; due far in the future, so no refresh runs.
sqlite3 "$work/cache.db" <<SQL
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $n)
INSERT INTO ocsp_response (serial, issuer_key_hash, issuer_name_hash, subject, ocsp_url, ocsp_urls,
	cert_status, revoked_at, revocation_reason, this_update, next_update, produced_at, fetched_at,
	cert_not_after, response_der, request_der, next_refresh_at, failures, last_error, created_at)
SELECT printf('%016X', i), r.issuer_key_hash, r.issuer_name_hash, r.subject, r.ocsp_url, r.ocsp_urls,
	r.cert_status, r.revoked_at, r.revocation_reason, r.this_update, r.next_update, r.produced_at,
	r.fetched_at, r.cert_not_after, r.response_der, r.request_der, 4102444800, 0, NULL, r.created_at
FROM seq, (SELECT * FROM ocsp_response LIMIT 1) AS r;
UPDATE ocsp_response SET id = (SELECT max(id) FROM ocsp_response) + 1 WHERE id = 1;
SQL
rows=$(sqlite3 "$work/cache.db" "SELECT count(*) FROM ocsp_response")
der=$(sqlite3 "$work/cache.db" "SELECT sum(length(response_der)) FROM ocsp_response")
dbsize=$(stat -c %s "$work/cache.db")

machine
t0=$(date +%s.%N)
# At level info the log has the daemon's own times (event=started, event=cache_loaded).
STAPLERD_EXTRA=$'[log]\nlevel = info' start_staplerd "$sp" "$work/cache.db"
t1=$(date +%s.%N)
# A staple loaded from the database is served without a fetch: the first staple.
curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/again.der" "http://127.0.0.1:$sp/v1/staple"
t2=$(date +%s.%N)
cmp "$work/staple.der" "$work/again.der"
curl -fsS "http://127.0.0.1:$sp/healthz"
until curl -fsS "http://127.0.0.1:$sp/healthz" | grep -q '"phase":"ready"'; do sleep 0.05; done
t3=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$staplerd_pid/status")
grep -E "event=(started|cache_loaded)" "$work/staplerd.log" || true
echo "RESULT rows=$rows db_bytes=$dbsize der_bytes=$der warm_start_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
	"first_staple_s=$(awk -v a="$t0" -v b="$t2" 'BEGIN {printf "%.3f", b - a}')" \
	"loaded_s=$(awk -v a="$t0" -v b="$t3" 'BEGIN {printf "%.2f", b - a}')" \
	"rss_kib=$rss rss_limit_kib=$(awk -v d="$der" 'BEGIN {printf "%.0f", (1.15 * d + 64 * 1048576) / 1024}')" \
	"rss_per_entry_b=$(awk -v r="$rss" -v n="$rows" 'BEGIN {printf "%.0f", r * 1024 / n}')" \
	"der_per_entry_b=$(awk -v d="$der" -v n="$rows" 'BEGIN {printf "%.0f", d / n}')"

# /healthz once loaded: the first answer after the 5-second cache of the health pass runs out
# starts a pass over every staple. Above 65,536 staples it runs in slices from the loop and
# the answer uses the last complete pass, so no answer waits for it (a whole pass held the
# loop about 60 ms a million). Three probes 5.5 s apart, with a staple asked for right after
# each: their times in milliseconds.
probe() { curl -fsS -o /dev/null -w '%{time_total}' "$@" | awk '{printf "%.1f", $1 * 1000}'; }
times=""
for _ in 1 2 3; do
	sleep 5.5
	h=$(probe "http://127.0.0.1:$sp/healthz")
	s=$(probe --data-binary @"$work/pki/meter1.pem" "http://127.0.0.1:$sp/v1/staple")
	times="$times healthz_ms=$h staple_after_ms=$s"
done
echo "RESULT health_probes:$times"
