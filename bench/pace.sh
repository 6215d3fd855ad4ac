#!/usr/bin/env bash
# Fill and refresh at the upstream's pace (issue 18): `openssl ocsp -multi` behind our
# latency-adding TCP proxy (bench/delay_proxy.c: DELAY ms per connection, i.e. per request),
# for each delay: a cold fill of N new certificates POSTed by wrk (a gateway: its address is in
# [limits] trusted_clients), then a refresh of the same N entries all made due, each timed and
# set against the capacity of the same upstream through the same proxy, measured by wrk in the
# same run; upstream requests per entry (counted by the proxy); cached staples served by wrk
# during the refresh against idle. staplerd at its defaults otherwise.
#   [DELAYS="0 50 200"] [MULTI=2] [CONNS=128] [UP_CONNS="64 128"] bench/pace.sh [N] [SECONDS]
source "$(dirname "$0")/common.sh"
n=${1:-10000}
secs=${2:-5}
multi=${MULTI:-2}
conns=${CONNS:-128}
read -r -a delays <<<"${DELAYS:-0 50 200}"
read -r -a up_conns <<<"${UP_CONNS:-64 128}"
bench_deps python3-cryptography sqlite3
bench_build
# The latency proxy in C on libevent: the Python one took most of a core at 1,000 requests/s.
cc -O2 -o "$work/delay_proxy" "$top/bench/delay_proxy.c" $(pkg-config --cflags --libs libevent)

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
proxied() { cat "$work/proxy.count" 2>/dev/null || echo 0; }

# Starts the proxy on port $1 to upstream port $2 with delay $3 ms; PID in $proxy_pid.
start_proxy() {
	rm -f "$work/proxy.count"
	"$work/delay_proxy" "$1" "$2" "$3" "$work/proxy.count" >"$work/proxy.log" 2>&1 &
	proxy_pid=$!
	pids+=($proxy_pid)
	for _ in $(seq 100); do
		grep -q listening "$work/proxy.log" && [[ -s $work/proxy.count ]] && return 0
		sleep 0.05
	done
	echo "delay proxy did not start" >&2
	return 1
}
stop_pid() { kill "$1" $(pgrep -P "$1") 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

machine
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
echo "N=$n certificates; openssl ocsp -multi $multi -ndays 30; staplerd defaults ([upstream]" \
	"max_per_host 64, max_parallel 64), wrk's address in trusted_clients; fill client c=$conns"
for delay in "${delays[@]}"; do
	echo "== delay ${delay} ms per request"
	rm -rf "$work/pki" "$work/cache.db"*
	up=$(free_port)
	px=$(free_port)
	sp=$(free_port)
	bash "$top/scripts/demo-pki.sh" "$work/pki" "$px"
	python3 "$top/bench/rows.py" certs "$work/pki" "$n" 4800000000 "$px"
	serve_ocsp "$up" "ocsp-$delay" -multi "$multi"
	pid_up=$ocsp_pid
	start_proxy "$px" "$up" "$delay"

	# Cold fill.
	STAPLERD_EXTRA=$'[limits]\ntrusted_clients = 127.0.0.1' start_staplerd "$sp" "$work/cache.db"
	p0=$(proxied)
	c0=$(cpu_s "$staplerd_pid")
	fill_start "$sp" "$conns"
	fill_wait
	c1=$(cpu_s "$staplerd_pid")
	fill_stop
	fill=$(cat "$work/fill.out")
	fill_s=$(sed 's/.*seconds=//' <<<"$fill")
	fill_rate=$(awk -v n="$n" -v s="$fill_s" 'BEGIN {printf "%.0f", n / s}')
	fill_req=$(( $(proxied) - p0 ))
	limit=$(curl -fsS "http://127.0.0.1:$sp/metrics" | awk '/^staplerd_upstream_concurrency_limit/ {print $2}')
	echo "  fill: $fill ($fill_rate/s); upstream requests per entry $(ratio "$fill_req" "$n");" \
		"staplerd CPU $(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / n * 1e6}') us/staple;" \
		"limit in force after: $limit"
	stop_pid "$staplerd_pid"

	# Idle serving: the filled cache, no refresh due.
	path=/ocsp/$(head -1 "$work/pki/requests.hex" | xxd -r -p | base64 -w0 | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
	hits() { wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$sp$path" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
	STAPLERD_EXTRA=$'[refresh]\ncheck_interval = 1h' start_staplerd "$sp" "$work/cache.db"
	idle=$(hits)
	stop_pid "$staplerd_pid"

	# Refresh: every entry due at once, 3 s from now (due in the future, so the warm start
	# does not spread them); timed from then.
	due=$(( $(date +%s) + 3 ))
	sqlite3 "$work/cache.db" "UPDATE ocsp_response SET next_refresh_at = $due"
	refetched() {
		sqlite3 "$work/cache.db" "SELECT count(*) FROM ocsp_response WHERE next_refresh_at > $(date +%s) + 1800"
	}
	p0=$(proxied)
	STAPLERD_EXTRA=$'[refresh]\nwindow = 60d\nmin_interval = 1h\ncheck_interval = 1s' start_staplerd "$sp" "$work/cache.db"
	c0=$(cpu_s "$staplerd_pid")
	while (( $(date +%s) < due )); do sleep 0.05; done
	t0=$(date +%s.%N)
	sleep 1
	busy=$(hits)
	done_s=""
	for _ in $(seq 1200); do
		if (( $(refetched) >= n )); then
			done_s=$(since "$t0")
			break
		fi
		sleep 0.5
	done
	c1=$(cpu_s "$staplerd_pid")
	ref_limit=$(curl -fsS "http://127.0.0.1:$sp/metrics" |
		awk '/^staplerd_upstream_concurrency_(limit|cuts_total)\{|^staplerd_refresh_budget_holds_total / {sub(/\{.*\}/, ""); printf "%s=%s ", $1, $2}')
	ref_req=$(( $(proxied) - p0 ))
	ref_rate=$(awk -v n="$n" -v s="${done_s:-0}" 'BEGIN {printf "%.0f", s ? n / s : 0}')
	echo "  refresh of $n due at once: ${done_s:-not done in 600} s ($ref_rate/s; the first tick comes up to 1 s after they are due);" \
		"upstream requests per entry $(ratio "$ref_req" "$n"); staplerd CPU" \
		"$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / n * 1e6}') us/entry;" \
		"after: ${ref_limit:-?}"
	echo "  serving GET c=32 during the refresh: $busy req/s; idle: $idle req/s; ratio $(ratio "$busy" "$idle")"
	stop_pid "$staplerd_pid"

	# The upstream's capacity through the same proxy, measured straight by wrk (a fresh
	# responder: wrk ends by closing connections, which the proxy does not pass on).
	cap=0
	for c in "${up_conns[@]}"; do
		stop_pid "$pid_up"
		serve_ocsp "$up" "ocsp-$delay-c$c" -multi "$multi"
		pid_up=$ocsp_pid
		BENCH_REQUESTS=$work/pki/requests.hex wrk -t1 -c"$c" -d"${secs}s" -s "$top/bench/upstream.lua" \
			"http://127.0.0.1:$px/" >"$work/up.out"
		r=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/up.out")
		errs=$(grep -E 'Non-2xx|Socket errors' "$work/up.out" | tr -s ' ' | tr '\n' ';' || true)
		echo "  upstream through the proxy, wrk c=$c: $r req/s $errs"
		(( r > cap )) && cap=$r
	done
	stop_pid "$pid_up"
	stop_pid "$proxy_pid"
	echo "RESULT delay_ms=$delay n=$n fill_per_s=$fill_rate refresh_per_s=$ref_rate upstream_per_s=$cap" \
		"fill_ratio=$(ratio "$fill_rate" "$cap") refresh_ratio=$(ratio "$ref_rate" "$cap")" \
		"fill_req_per_entry=$(ratio "$fill_req" "$n") refresh_req_per_entry=$(ratio "$ref_req" "$n")" \
		"serve_busy=$busy serve_idle=$idle serve_ratio=$(ratio "$busy" "$idle")"
done
