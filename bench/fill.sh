#!/usr/bin/env bash
# Cold fill: N (default 10,000) certificates staplerd has never seen, each POSTed once to
# /v1/staple by wrk (bench/fill.lua), so every one is a fetch from `openssl ocsp`; the time to
# have them all answered, against the capacity of the same upstream measured straight by wrk
# (bench/upstream.lua, the same OCSP requests) in the same run. Two identical responders on two
# ports: staplerd fills from one; wrk measures a fresh one after the first is stopped.
#   [MULTI=2] [CONNS=64] [UP_CONNS="8 64"] [PERF_OUT=FILE] bench/fill.sh [N] [SECONDS]
source "$(dirname "$0")/common.sh"
n=${1:-10000}
secs=${2:-10}
multi=${MULTI:-2}
conns=${CONNS:-64}
read -r -a up_conns <<<"${UP_CONNS:-8 64}"
bench_deps python3-cryptography sqlite3 ${PERF_OUT:+linux-perf}
bench_build

ua=$(free_port)
ub=$(free_port)
bash "$top/scripts/demo-pki.sh" "$work/pki" "$ua"
t0=$(date +%s.%N)
python3 "$top/bench/rows.py" certs "$work/pki" "$n" 4600000000 "$ua"
t1=$(date +%s.%N)
serve_ocsp "$ua" ocsp-a -multi "$multi"
pid_a=$ocsp_pid
sp=$(free_port)
# wrk stands for a head-end gateway submitting its fleet: the operator lists such hosts in
# [limits] trusted_clients, so the per-client fetch limit (meant for strangers) is not what
# the fill measures.
STAPLERD_EXTRA="[limits]
trusted_clients = 127.0.0.1
${STAPLERD_EXTRA:-}" start_staplerd "$sp" "$work/cache.db"

machine
echo "certificates: $n made in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s (python3-cryptography);" \
	"openssl ocsp -multi $multi; staplerd [upstream] defaults (adaptive limit per host, max_per_host 64);" \
	"wrk's address in [limits] trusted_clients"
ocsp_procs() { echo "$pid_a" $(pgrep -P "$pid_a"); }
c0s=$(cpu_s "$staplerd_pid")
c0u=$(cpu_s $(ocsp_procs))
# PERF_OUT=FILE: staplerd's profile during the fill (perf record), for `perf report -i FILE`.
if [[ -n ${PERF_OUT:-} ]]; then
	perf record -q -F 999 -g -p "$staplerd_pid" -o "$PERF_OUT" 2>/dev/null &
	perf_pid=$!
	pids+=($perf_pid)
fi
fill_start "$sp" "$conns"
fill_wait
c1s=$(cpu_s "$staplerd_pid")
c1u=$(cpu_s $(ocsp_procs))
fill_stop
if [[ -n ${PERF_OUT:-} ]]; then
	kill -INT "$perf_pid"
	wait "$perf_pid" || true
fi
fill=$(cat "$work/fill.out")
echo "  fill c=$conns: $fill; CPU seconds meanwhile: staplerd" \
	"$(awk -v a="$c0s" -v b="$c1s" 'BEGIN {print b - a}'), openssl ocsp $(awk -v a="$c0u" -v b="$c1u" 'BEGIN {print b - a}')"
secs_fill=$(sed 's/.*seconds=//' <<<"$fill")
rows=$(sqlite3 "$work/cache.db" "SELECT count(*) FROM ocsp_response" 2>/dev/null || echo "?")
echo "  rows in the database after the fill: $rows"
kill $(pgrep -P "$pid_a") "$pid_a"
wait "$pid_a" 2>/dev/null || true
fill_rate=$(awk -v n="$n" -v s="$secs_fill" 'BEGIN {printf "%.0f", n / s}')

for c in "${up_conns[@]}"; do
	# A fresh responder for each measurement: wrk ends a run by closing connections that may
	# carry no request, which leaves OpenSSL 3.0's responder spinning.
	serve_ocsp "$ub" "ocsp-b$c" -multi "$multi"
	pid_b=$ocsp_pid
	BENCH_REQUESTS=$work/pki/requests.hex wrk -t1 -c"$c" -d"${secs}s" -s "$top/bench/upstream.lua" \
		"http://127.0.0.1:$ub/" >"$work/up.out"
	cap=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/up.out")
	errs=$(grep -E 'Non-2xx|Socket errors' "$work/up.out" | tr -s ' ' | tr '\n' ';' || true)
	echo "  upstream direct c=$c: $cap req/s $errs"
	echo "RESULT fill_n=$n fill_s=$secs_fill fill_per_s=$fill_rate upstream_c=$c upstream_per_s=$cap" \
		"ratio=$(awk -v a="$fill_rate" -v b="$cap" 'BEGIN {printf "%.2f", a / b}')"
	kill $(pgrep -P "$pid_b") "$pid_b"
	wait "$pid_b" 2>/dev/null || true
done
