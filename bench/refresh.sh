#!/usr/bin/env bash
# Refresh: N (default 100,000) cached entries all due at once, each with its own CertID known
# to `openssl ocsp` (bench/rows.py rows); [refresh] set so that they are refetched at once and
# then not again for an hour. Measures the time until every one was refetched, the upstream
# requests per entry (counted by the upstream itself), and cached staples served by wrk
# meanwhile against the same cache served with no refresh due (idle), in one run. Stops
# waiting after REFRESH_LIMIT seconds and then reports the rate reached.
#   [MULTI=2] [REFRESH_LIMIT=600] bench/refresh.sh [N] [SECONDS]
source "$(dirname "$0")/common.sh"
n=${1:-100000}
secs=${2:-5}
multi=${MULTI:-2}
limit=${REFRESH_LIMIT:-600}
bench_deps sqlite3 python3-cryptography
bench_build

up=$(free_port)
bash "$top/scripts/demo-pki.sh" "$work/pki" "$up"
serve_ocsp "$up" ocsp0
sp=$(free_port)
start_staplerd "$sp" "$work/cache.db"
curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/staple.der" "http://127.0.0.1:$sp/v1/staple"
kill "$staplerd_pid" "$ocsp_pid"
wait "$staplerd_pid" "$ocsp_pid" || true
python3 "$top/bench/rows.py" rows "$work/cache.db" "$n" 4700000000 0 "$work/paths.txt" "$work/pki/index.txt"
# -req_text prints every request the upstream gets (line-buffered): its own count of fetches.
OCSP_WRAP="stdbuf -oL" serve_ocsp "$up" ocsp -multi "$multi" -req_text
pid_up=$ocsp_pid

openssl ocsp -issuer "$work/pki/root.pem" -cert "$work/pki/meter1.pem" -no_nonce -reqout "$work/req.der" >/dev/null 2>&1
path=/ocsp/$(base64 -w0 "$work/req.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
fetches() { grep -c "OCSP Request Data" "$work/ocsp.log" || true; }
# Rows refetched: a refetch sets next_refresh_at about min_interval (1 h) ahead; a lease only
# upstream timeout x 5 + 30 s.
refetched() {
	sqlite3 "$work/cache.db" "SELECT count(*) FROM ocsp_response WHERE serial LIKE '47%' AND next_refresh_at > $(date +%s) + 1800"
}
hits() {
	wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$sp$path" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}

machine
echo "entries due: $n; openssl ocsp -multi $multi; [refresh] window 60d, min_interval 1h, check_interval 1s"
# Idle: the same cache with the scheduler's first tick an hour away.
STAPLERD_EXTRA=$'[refresh]\ncheck_interval = 1h'
start_staplerd "$sp" "$work/cache.db"
idle=$(hits)
kill "$staplerd_pid"
wait "$staplerd_pid" || true
STAPLERD_EXTRA=$'[refresh]\nwindow = 60d\nmin_interval = 1h\nmax_interval = 1d\ncheck_interval = 1s'
t0=$(date +%s.%N)
start_staplerd "$sp" "$work/cache.db"
echo "  warm start with $n rows: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}') s"
cmp "$work/staple.der" <(curl -fsS "http://127.0.0.1:$sp$path")
f0=$(fetches)
# Serving while the refresh runs: wrk starts with the first tick.
sleep 1.5
c0s=$(cpu_s "$staplerd_pid")
c0u=$(cpu_s "$pid_up" $(pgrep -P "$pid_up"))
busy=$(hits)
done_at=""
f=0
while :; do
	now=$(date +%s.%N)
	f=$(refetched)
	if ((f >= n)); then
		done_at=$now
		break
	fi
	awk -v a="$t0" -v b="$now" -v l="$limit" 'BEGIN {exit !(b - a > l)}' && break
	sleep 0.5
done
t_end=$(date +%s.%N)
c1s=$(cpu_s "$staplerd_pid")
c1u=$(cpu_s "$pid_up" $(pgrep -P "$pid_up"))
elapsed=$(awk -v a="$t0" -v b="$t_end" 'BEGIN {printf "%.1f", b - a}')
rate=$(awk -v f="$f" -v e="$elapsed" 'BEGIN {printf "%.0f", f / e}')
echo "  rows refetched in ${elapsed} s: $f ($rate/s); CPU seconds: staplerd" \
	"$(awk -v a="$c0s" -v b="$c1s" 'BEGIN {print b - a}'), openssl ocsp $(awk -v a="$c0u" -v b="$c1u" 'BEGIN {print b - a}')"
if [[ -z $done_at ]]; then
	echo "  not all refreshed within ${limit} s: at $rate/s the $n would take $(awk -v r="$rate" -v n="$n" 'BEGIN {printf "%.0f", n / r}') s"
fi
sleep 2
refreshed=$(refetched)
f2=$(fetches)
echo "  rows refetched (next_refresh_at in the future): $refreshed of $n; fetches per refetched row:" \
	"$(awk -v f="$((f2 - f0))" -v r="$refreshed" 'BEGIN {printf "%.3f", r ? f / r : 0}')"
echo "  GET c=32 during the refresh: $busy req/s; idle (before, no refresh tick): $idle req/s; ratio $(awk -v a="$busy" -v b="$idle" 'BEGIN {printf "%.2f", a / b}')"
echo "RESULT n=$n elapsed_s=$elapsed complete=$([[ -n $done_at ]] && echo yes || echo no) fetches=$((f2 - f0)) refreshed=$refreshed" \
	"rate_per_s=$rate serve_busy=$busy serve_idle=$idle"
