#!/usr/bin/env bash
# Many keys: N (default 1,000,000) cached entries, each with its own CertID (bench/rows.py
# rows: copies of one real row, not due). The warm start on them: to the first answer (a
# random key's `GET /ocsp/{req}`, read from the database when the load has not reached it) and
# to fully loaded (/healthz "phase":"ready"), RSS and database bytes per entry. Then requests
# with a key picked at random for every request (bench/paths.lua), GET `/ocsp/{req}` and POST
# `/ocsp`, against the same script over one key, and over MID keys (default 50,000: a working
# set that fits the CPU caches better), in one run, ROUNDS times in turn; staplerd's CPU per
# request from /proc.
# SAMPLE=K draws the random keys from K rows picked at random (every row when unset): at ten
# million, wrk's Lua holds K paths instead of all of them.
#   [ROUNDS=3] [MID=50000] [CONNS=32] [SAMPLE=K] bench/keys.sh [N] [SECONDS]
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
if [[ -n ${SAMPLE:-} ]]; then
	shuf -n "$SAMPLE" "$work/paths.txt" >"$work/random.txt"
else
	ln -s paths.txt "$work/random.txt"
fi

rows=$(sqlite3 "$work/cache.db" "SELECT count(*) FROM ocsp_response")
der=$(sqlite3 "$work/cache.db" "SELECT sum(length(response_der)) FROM ocsp_response")
dbsize=$(stat -c %s "$work/cache.db")
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}'; }

machine
sync
t0=$(date +%s.%N)
start_staplerd "$sp" "$work/cache.db"
t_health=$(since "$t0")
# A key near the end of the table: the load reaches it last, so it is read by its key.
curl -fsS -o /dev/null "http://127.0.0.1:$sp$(tail -n 1 "$work/paths.txt")"
t_first=$(since "$t0")
curl -fsS "http://127.0.0.1:$sp/healthz" | grep -o '"phase":"[a-z]*","rows_loaded":[0-9]*' || true
until curl -fsS "http://127.0.0.1:$sp/healthz" | grep -q '"phase":"ready"'; do sleep 0.05; done
t_loaded=$(since "$t0")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$staplerd_pid/status")
echo "RESULT warm rows=$rows db_bytes=$dbsize db_per_entry_b=$(awk -v d="$dbsize" -v n="$rows" 'BEGIN {printf "%.0f", d / n}')" \
	"der_per_entry_b=$(awk -v d="$der" -v n="$rows" 'BEGIN {printf "%.0f", d / n}')" \
	"to_healthz_s=$t_health first_staple_s=$t_first loaded_s=$t_loaded rss_kib=$rss" \
	"rss_per_entry_b=$(awk -v r="$rss" -v n="$rows" 'BEGIN {printf "%.0f", r * 1024 / n}')" \
	"rss_target_kib=$(awk -v d="$der" 'BEGIN {printf "%.0f", (1.15 * d + 64 * 1048576) / 1024}')"
grep -E "event=(started|cache_loaded)" "$work/staplerd.log" || true
echo "wrk -t1 -c$conns -d${secs}s -s bench/paths.lua"
# Every key answers (a sample): 200 and a staple.
while read -r p; do
	curl -fsS -o /dev/null "http://127.0.0.1:$sp$p"
done < <(shuf -n 20 "$work/paths.txt")

# Prints requests/s; $work/cpu gets staplerd's CPU use meanwhile (% of one core). With $2 = 1
# the requests are POST /ocsp.
hits() {
	local c0
	c0=$(cpu_s "$staplerd_pid")
	BENCH_POST=${2:-0} BENCH_PATHS=$1 wrk -t1 -c"$conns" -d"${secs}s" -s "$top/bench/paths.lua" "http://127.0.0.1:$sp" >"$work/wrk.out"
	awk -v a="$c0" -v b="$(cpu_s "$staplerd_pid")" -v s="$secs" 'BEGIN {printf "%.0f", (b - a) / s * 100}' >"$work/cpu"
	awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/wrk.out"
	grep -q 'Non-2xx' "$work/wrk.out" && echo " (non-2xx answers: $(grep Non-2xx "$work/wrk.out"))" >&2
	return 0
}
# "RATE (cpu C%, U us/req)"
show() { awk -v r="$1" -v c="$2" 'BEGIN {printf "%s (cpu %s%%, %.1f us/req)", r, c, (r > 0 ? c / 100 / r * 1e6 : 0)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
for r in $(seq "$rounds"); do
	for method in GET POST; do
		post=0
		[[ $method == POST ]] && post=1
		one=$(hits "$work/one.txt" $post)
		c1=$(cat "$work/cpu")
		many=$(hits "$work/random.txt" $post)
		c2=$(cat "$work/cpu")
		some=$(hits "$work/mid.txt" $post)
		c3=$(cat "$work/cpu")
		echo "RESULT round=$r $method one_key=$(show "$one" "$c1") random_${n}=$(show "$many" "$c2")" \
			"ratio=$(ratio "$many" "$one") random_${mid}=$(show "$some" "$c3") ratio=$(ratio "$some" "$one")"
	done
done
echo "staplerd RSS: $(awk '/VmRSS/ {print $2}' "/proc/$staplerd_pid/status") KiB"
