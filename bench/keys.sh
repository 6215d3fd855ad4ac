#!/usr/bin/env bash
# Many keys: N (default 1,000,000) cached entries, each with its own CertID (bench/rows.py
# rows: copies of one real row, not due), hit by `GET /ocsp/{req}` with a request picked at
# random for every request (bench/paths.lua), against the same script over one key, and over
# MID keys (default 50,000: a working set that fits the CPU caches better), in one run, ROUNDS
# times in turn.
#   [ROUNDS=3] [MID=50000] [CONNS=32] bench/keys.sh [N] [SECONDS]
source "$(dirname "$0")/common.sh"
n=${1:-1000000}
secs=${2:-5}
rounds=${ROUNDS:-3}
mid=${MID:-50000}
conns=${CONNS:-32}
bench_deps sqlite3 python3-cryptography
bench_build

up=$(free_port)
start_upstream "$up"
sp=$(free_port)
start_staplerd "$sp" "$work/cache.db"
curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/staple.der" "http://127.0.0.1:$sp/v1/staple"
kill "$staplerd_pid"
wait "$staplerd_pid" || true
python3 "$top/bench/rows.py" rows "$work/cache.db" "$n" 4800000000 4102444800 "$work/paths.txt"
shuf -n 1 "$work/paths.txt" >"$work/one.txt"
shuf -n "$mid" "$work/paths.txt" >"$work/mid.txt"

machine
t0=$(date +%s.%N)
start_staplerd "$sp" "$work/cache.db"
echo "entries: $(sqlite3 "$work/cache.db" "SELECT count(*) FROM ocsp_response"); warm start" \
	"$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}') s;" \
	"wrk -t1 -c$conns -d${secs}s -s bench/paths.lua"
# Every key answers (a sample): 200 and a staple.
while read -r p; do
	curl -fsS -o /dev/null "http://127.0.0.1:$sp$p"
done < <(shuf -n 20 "$work/paths.txt")

# Prints requests/s; $work/cpu gets staplerd's CPU use meanwhile (% of one core).
hits() {
	local c0
	c0=$(cpu_s "$staplerd_pid")
	BENCH_PATHS=$1 wrk -t1 -c"$conns" -d"${secs}s" -s "$top/bench/paths.lua" "http://127.0.0.1:$sp" >"$work/wrk.out"
	awk -v a="$c0" -v b="$(cpu_s "$staplerd_pid")" -v s="$secs" 'BEGIN {printf "%.0f", (b - a) / s * 100}' >"$work/cpu"
	awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/wrk.out"
	grep -q 'Non-2xx' "$work/wrk.out" && echo " (non-2xx answers: $(grep Non-2xx "$work/wrk.out"))" >&2
	return 0
}
for r in $(seq "$rounds"); do
	one=$(hits "$work/one.txt")
	c1=$(cat "$work/cpu")
	many=$(hits "$work/paths.txt")
	c2=$(cat "$work/cpu")
	some=$(hits "$work/mid.txt")
	c3=$(cat "$work/cpu")
	echo "RESULT round=$r one_key=$one (cpu $c1%) random_${n}=$many (cpu $c2%)" \
		"ratio=$(awk -v a="$many" -v b="$one" 'BEGIN {printf "%.2f", a / b}')" \
		"random_${mid}=$some (cpu $c3%) ratio=$(awk -v a="$some" -v b="$one" 'BEGIN {printf "%.2f", a / b}')"
done
echo "staplerd RSS: $(awk '/VmRSS/ {print $2}' "/proc/$staplerd_pid/status") KiB"
