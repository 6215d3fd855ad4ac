#!/usr/bin/env bash
# Would a second event-loop thread pay on this machine? Cached GET /ocsp/{req} hits measured
# three ways in one run, with the CPU used meanwhile (from /proc) by staplerd, by wrk and by
# the whole machine (other jobs included):
#   1. one staplerd (one loop), wrk -t1 -c64;
#   2. one staplerd, wrk -t2 -c64 (the load generator given both cores);
#   3. two staplerd on two ports (two loops with nothing shared: the best a second thread
#      could do), one wrk -t1 -c32 on each at once.
# ROUNDS times in turn.
#   [ROUNDS=3] bench/loops.sh [SECONDS]
source "$(dirname "$0")/common.sh"
secs=${1:-8}
bench_deps
bench_build

up=$(free_port)
start_upstream "$up"
pa=$(free_port)
start_staplerd "$pa" "$work/a.db" "$staplerd" a
sa=$staplerd_pid
pb=$(free_port)
start_staplerd "$pb" "$work/b.db" "$staplerd" b
sb=$staplerd_pid
for p in "$pa" "$pb"; do
	curl -fsS --data-binary @"$work/pki/meter1.pem" -o /dev/null "http://127.0.0.1:$p/v1/staple"
done
openssl ocsp -issuer "$work/pki/root.pem" -cert "$work/pki/meter1.pem" -no_nonce -reqout "$work/req.der" >/dev/null 2>&1
path=/ocsp/$(base64 -w0 "$work/req.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')

machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
pct() { awk -v a="$1" -v b="$2" -v s="$secs" 'BEGIN {printf "%.0f", (b - a) / s * 100}'; }
rps() { awk '/Requests\/sec/ {printf "%.0f", $2}' "$1"; }

# Runs the wrk jobs given as "threads conns port" at once; prints requests/s of each, then
# the CPU % (of one core) of staplerd A, B and of the wrk processes, and the machine's busy %.
run() {
	local wpids=() i=0 m0 m1 a0 b0 w
	read -r -a m0 < <(machine_busy)
	a0=$(cpu_s "$sa")
	b0=$(cpu_s "$sb")
	for job in "$@"; do
		read -r t c p <<<"$job"
		wrk -t"$t" -c"$c" -d"${secs}s" "http://127.0.0.1:$p$path" >"$work/w$i.out" &
		wpids+=($!)
		i=$((i + 1))
	done
	sleep "$((secs - 1))"
	w=$(cpu_s "${wpids[@]}")
	for pid in "${wpids[@]}"; do wait "$pid"; done
	read -r -a m1 < <(machine_busy)
	local out=""
	for ((j = 0; j < i; j++)); do out+="$(rps "$work/w$j.out") "; done
	# wrk's CPU is read a second before its end (its process is gone after): scaled up.
	echo "${out}cpu: staplerd_a $(pct "$a0" "$(cpu_s "$sa")")% staplerd_b $(pct "$b0" "$(cpu_s "$sb")")%" \
		"wrk $(awk -v w="$w" -v s="$secs" 'BEGIN {printf "%.0f", w / (s - 1) * 100}')%" \
		"machine $(awk -v b0="${m0[0]}" -v i0="${m0[1]}" -v b1="${m1[0]}" -v i1="${m1[1]}" \
			'BEGIN {printf "%.0f", (b1 - b0) / (b1 - b0 + i1 - i0) * 200}')% of 200%"
}

machine
echo "GET /ocsp/{req}, one key, ${secs} s each; CPU in % of one core"
for r in $(seq "${ROUNDS:-3}"); do
	echo "RESULT round=$r one_loop_wrk_t1: $(run "1 64 $pa")"
	echo "RESULT round=$r one_loop_wrk_t2: $(run "2 64 $pa")"
	echo "RESULT round=$r two_loops: $(run "1 32 $pa" "1 32 $pb")"
done
