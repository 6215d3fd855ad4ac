# Shared by the benchmarks: packages, a Release build, a demo PKI with `openssl ocsp`, and
# cleanup of every process started (by PID). Sourced, not run.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /tmp/staplerd-bench.XXXXXX)
pids=()

cleanup() {
	for pid in "${pids[@]}"; do
		# `openssl ocsp -multi` forks its responders: they go too.
		kill $(pgrep -P "$pid") "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	[[ ${KEEP:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT

bench_deps() {
	local missing=()
	for p in wrk nginx-light "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	bash "$top/scripts/deps.sh"
	if ((${#missing[@]})); then
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
}

bench_build() {
	cmake -S "$top" -B "$top/build-bench" -DCMAKE_BUILD_TYPE=Release -DSTAPLER_TESTS=OFF >/dev/null
	cmake --build "$top/build-bench" -j"$(nproc)" --target staplerd >/dev/null
	staplerd=$top/build-bench/staplerd
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts `openssl ocsp` for the demo PKI in $work/pki on port $1; waits for its log line (never
# probe its port: OpenSSL 3.0's responder hangs after a connection without a request).
start_upstream() {
	local port=$1
	bash "$top/scripts/demo-pki.sh" "$work/pki" "$port"
	serve_ocsp "$port" ocsp
}

# Starts `openssl ocsp` on the PKI already in $work/pki, on port $1, logging to $work/$2.log,
# with any further arguments (e.g. -multi 2), run under $OCSP_WRAP if set (e.g. stdbuf -oL);
# its PID in $ocsp_pid. Waits for its log line.
serve_ocsp() {
	local port=$1 name=$2
	shift 2
	${OCSP_WRAP:-} openssl ocsp -index "$work/pki/index.txt" -port "$port" -CA "$work/pki/root.pem" \
		-rsigner "$work/pki/ocsp.pem" -rkey "$work/pki/ocsp.key" -ndays 30 "$@" >"$work/$name.log" 2>&1 &
	ocsp_pid=$!
	pids+=($ocsp_pid)
	for _ in $(seq 300); do
		grep -qiE "waiting for OCSP client connections|^ACCEPT " "$work/$name.log" && return 0
		sleep 0.1
	done
	echo "openssl ocsp did not start" >&2
	return 1
}

# Writes a config for port $1 and database $2 (plus the lines in $STAPLERD_EXTRA), starts
# staplerd (binary $3, default the Release build; name $4 for its files), waits for /healthz.
start_staplerd() {
	local port=$1 db=$2 bin=${3:-$staplerd} name=${4:-staplerd}
	cat >"$work/$name.conf" <<CONF
[server]
listen = 127.0.0.1:$port
admin_socket = $work/$name.admin.sock
[cache]
database = $db
[trust]
ca_file = $work/pki/ca-bundle.pem
[upstream]
allow = 127.0.0.1
[log]
level = warn
${STAPLERD_EXTRA:-}
CONF
	"$bin" -c "$work/$name.conf" 2>"$work/$name.log" &
	staplerd_pid=$!
	pids+=($staplerd_pid)
	for _ in $(seq 6000); do
		curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$staplerd_pid" 2>/dev/null || break
		sleep 0.01
	done
	echo "$name did not start:" >&2
	cat "$work/$name.log" >&2
	return 1
}

# A cold fill: wrk POSTs every certificate of $work/pki/certs.pem once to staplerd on port $1
# over $2 connections (bench/fill.lua, which times it into $work/fill.out). fill_wait returns
# when every one is answered (wrk still running: read CPU counters then); fill_stop stops wrk.
fill_start() {
	rm -f "$work/fill.out"
	BENCH_CERTS=$work/pki/certs.pem BENCH_OUT=$work/fill.out wrk -t1 -c"$2" -d600s \
		-s "$top/bench/fill.lua" "http://127.0.0.1:$1" >"$work/fill.wrk" &
	wrk_pid=$!
	pids+=($wrk_pid)
}
fill_wait() {
	for _ in $(seq 6000); do
		[[ -s $work/fill.out ]] && return 0
		sleep 0.1
	done
}
fill_stop() {
	kill -INT "$wrk_pid"
	wait "$wrk_pid" || true
}

machine() {
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
		"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
}

# CPU seconds (user + system) used so far by the PIDs given.
cpu_s() {
	local clk
	clk=$(getconf CLK_TCK)
	for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done |
		awk -v t="$clk" '{ sub(/.*\) /, ""); s += $12 + $13 } END { printf "%.2f", s / t }'
}
