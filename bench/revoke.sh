#!/usr/bin/env bash
# Revocation latency end to end (issue 20, item 3): a fleet of N cached staples (default
# 100,000), one of them (meter1) revoked at the test CA, which publishes its CRL; times until
# POST /v1/staple stops answering good for it, until it answers revoked (the OCSP refetch the
# withdrawal starts), and until the webhook receiver has cert_withdrawn and cert_revoked.
#   bench/revoke.sh [N] [POLL] [M]  POLL: [crl] poll_interval (default 1s; the product's is 5m);
#                                   M: fleet serials the CRL lists too (a mass revocation)
source "$(dirname "$0")/common.sh"
n=${1:-100000}
poll=${2:-1s}
m=${3:-0}
bench_deps sqlite3
bench_build

up=$(free_port)
start_upstream "$up"
crlport=$(free_port)
hookport=$(free_port)
python3 "$top/bench/revoke.py" crl "$work/pki" "$work/ca.crl"
python3 "$top/bench/revoke.py" serve "$work" "$crlport" "$hookport" &
pids+=($!)
STAPLERD_EXTRA="[crl]
poll_interval = $poll
[events]
webhooks = http://127.0.0.1:$hookport/hook
[refresh]
check_interval = 1h"
sp=$(free_port)
start_staplerd "$sp" "$work/cache.db"
curl -fsS --data-binary @"$work/pki/meter1.pem" -o /dev/null "http://127.0.0.1:$sp/v1/staple"
kill "$staplerd_pid"
wait "$staplerd_pid" || true

# The fleet: the real row copied under N more serials, not due for a day; the CRL held is the
# empty one, at the URL served above.
python3 "$top/bench/rows.py" rows "$work/cache.db" "$n" 1000000000 $(( $(date +%s) + 86400 )) \
	"$work/paths.txt"
python3 "$top/bench/revoke.py" crlrow "$work/cache.db" "$work/ca.crl" "http://127.0.0.1:$crlport/ca.crl"
start_staplerd "$sp" "$work/cache.db"
cached=$(curl -fsS "http://127.0.0.1:$sp/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["staples"])')

# The CA revokes meter1: its OCSP responder knows at once (restarted on its index) ...
serial=$(openssl x509 -in "$work/pki/meter1.pem" -noout -serial | cut -d= -f2)
sed -i "s/^V\(\t[0-9Z]*\t\)\t\($serial\t\)/R\1$(date -u +%y%m%d%H%M%SZ)\t\2/" "$work/pki/index.txt"
kill "$ocsp_pid"
wait "$ocsp_pid" 2>/dev/null || true
serve_ocsp "$up" ocsp2
sleep 1    # the CRL's thisUpdate (whole seconds) after the staple held
# ... and publishes its CRL; staplerd learns it at its next poll.
machine
echo "fleet: $cached staples cached; [crl] poll_interval = $poll; the CRL lists meter1 and $m of the fleet"
cpu0=$(cpu_s "$staplerd_pid")
python3 "$top/bench/revoke.py" measure "$work" "$sp" "$work/pki/meter1.pem" "$serial" "$m"
echo "staplerd CPU from the publication to the last event delivered: $(echo "$(cpu_s "$staplerd_pid") - $cpu0" | bc) s"
echo "withdrawn: $(grep -c event=staple_withdrawn "$work/staplerd.log") staples; events delivered: $(wc -l <"$work/hooks.jsonl")" 
