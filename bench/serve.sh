#!/usr/bin/env bash
# Cache hits: staplerd answering POST /v1/staple and GET /ocsp/{request} from memory, against
# nginx serving the same DER bytes as a static file, on the same machine, in one run (compare
# the ratios, not absolute numbers: machines here are shared and noisy). Also: the same hits
# while 1,000 idle and 100 slowloris connections are held, and a plot of requests/s against
# connections (docs/bench-serve.png). With OLD_SRC=DIR, a second staplerd built from the
# source tree DIR (e.g. one still on evhttp) is measured in the same run; libmicrohttpd serving
# one prepared response (bench/mhd_static.c) is measured too.
#   [OLD_SRC=/work/main] [TABLE_CONNS="32 64"] [PLOT_CONNS="8 16 …"] bench/serve.sh [SECONDS]
source "$(dirname "$0")/common.sh"
secs=${1:-5}
read -r -a table_conns <<<"${TABLE_CONNS:-32 64}"
read -r -a plot_conns <<<"${PLOT_CONNS:-8 16 32 64 128 256}"
bench_deps gnuplot-nox libmicrohttpd-dev pkg-config
bench_build

old=""
if [[ -n ${OLD_SRC:-} ]]; then
	cmake -S "$OLD_SRC" -B "$work/old-build" -DCMAKE_BUILD_TYPE=Release -DSTAPLER_TESTS=OFF >/dev/null
	cmake --build "$work/old-build" -j"$(nproc)" --target staplerd >/dev/null
	old=$work/old-build/staplerd
fi

up=$(free_port)
start_upstream "$up"
sp=$(free_port)
start_staplerd "$sp" "$work/cache.db"
new_pid=$staplerd_pid
curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/staple.der" "http://127.0.0.1:$sp/v1/staple"
if [[ -n $old ]]; then
	op=$(free_port)
	start_staplerd "$op" "$work/old.db" "$old" old
	curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/old.der" "http://127.0.0.1:$op/v1/staple"
fi

mkdir -p "$work/www" "$work/nginx"
cp "$work/staple.der" "$work/www/staple.der"
# nginx workers run as www-data: let them read the file.
chmod 755 "$work" "$work/www"
chmod 644 "$work/www/staple.der"
np=$(free_port)
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx;
	proxy_temp_path $work/nginx;
	fastcgi_temp_path $work/nginx;
	uwsgi_temp_path $work/nginx;
	scgi_temp_path $work/nginx;
	types { application/ocsp-response der; }
	server {
		listen 127.0.0.1:$np;
		root $work/www;
		etag on;
	}
}
CONF
nginx -c "$work/nginx/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$np/staple.der" 2>/dev/null && break
	sleep 0.05
done
cmp "$work/staple.der" <(curl -fsS "http://127.0.0.1:$np/staple.der")

# libmicrohttpd's best case: one prepared response queued for every request (bench/mhd_static.c).
cc -O2 -o "$work/mhd_static" "$top/bench/mhd_static.c" $(pkg-config --cflags --libs libmicrohttpd)
mp=$(free_port)
"$work/mhd_static" "$mp" "$work/staple.der" &
pids+=($!)
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$mp/" 2>/dev/null && break
	sleep 0.05
done
cmp "$work/staple.der" <(curl -fsS "http://127.0.0.1:$mp/")

cat >"$work/post.lua" <<LUA
local f = io.open("$work/pki/meter1.pem", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/x-pem-file"
LUA
openssl ocsp -issuer "$work/pki/root.pem" -cert "$work/pki/meter1.pem" -no_nonce -reqout "$work/req.der" >/dev/null 2>&1
path=/ocsp/$(base64 -w0 "$work/req.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
cmp "$work/staple.der" <(curl -fsS "http://127.0.0.1:$sp$path")

# One wrk run: prints "rps p50_ms p99_ms".
measure() {
	local conns=$1 url=$2 script=${3:-}
	local args=(-t1 -c"$conns" -d"${secs}s" --latency)
	[[ -n $script ]] && args+=(-s "$script")
	wrk "${args[@]}" "$url" >"$work/wrk.out"
	awk '
		function ms(v) {
			if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
			if (v ~ /s$/) return v * 1000; return v
		}
		/Requests\/sec/ { rps = $2 }
		$1 == "50%" { p50 = ms($2) }
		$1 == "99%" { p99 = ms($2) }
		END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$work/wrk.out"
}

targets=("staplerd POST /v1/staple|http://127.0.0.1:$sp/v1/staple|$work/post.lua"
	"staplerd GET /ocsp/{req}|http://127.0.0.1:$sp$path|"
	"nginx GET /staple.der|http://127.0.0.1:$np/staple.der|"
	"libmicrohttpd GET (prepared response)|http://127.0.0.1:$mp/staple|")
if [[ -n $old ]]; then
	targets+=("old staplerd POST /v1/staple|http://127.0.0.1:$op/v1/staple|$work/post.lua"
		"old staplerd GET /ocsp/{req}|http://127.0.0.1:$op$path|")
fi

machine
echo "staple: $(stat -c %s "$work/staple.der") bytes; wrk -t1 -cN -d${secs}s --latency; one worker each"
declare -A rps p50 p99
for c in "${table_conns[@]}"; do
	for t in "${targets[@]}"; do
		IFS='|' read -r name url script <<<"$t"
		read -r r a b < <(measure "$c" "$url" "$script")
		rps[$name,$c]=$r p50[$name,$c]=$a p99[$name,$c]=$b
		echo "  $name c=$c: $r req/s p50 ${a} ms p99 ${b} ms"
	done
done

# Requests/s against connections, for the plot.
: >"$work/plot.dat"
for c in "${plot_conns[@]}"; do
	read -r g _ _ < <(measure "$c" "http://127.0.0.1:$sp$path")
	read -r p _ _ < <(measure "$c" "http://127.0.0.1:$sp/v1/staple" "$work/post.lua")
	read -r n _ _ < <(measure "$c" "http://127.0.0.1:$np/staple.der")
	echo "$c $g $p $n" >>"$work/plot.dat"
	echo "  plot c=$c: GET $g POST $p nginx $n"
done

# Under attack: 1,000 idle and 100 slowloris connections from another address.
read -r base _ _ < <(measure 32 "http://127.0.0.1:$sp$path")
python3 "$top/bench/hold.py" 127.0.0.1 "$sp" 1000 100 127.0.0.2 >"$work/hold.log" 2>&1 &
hold_pid=$!
pids+=($hold_pid)
sleep 3
clk=$(getconf CLK_TCK)
cpu() { awk -v t="$clk" '{ print ($14 + $15) / t }' "/proc/$new_pid/stat"; }
# Over 12 s the slowloris heads pass their 10 s deadline: the cutting is measured too.
c0=$(cpu)
sleep 12
c1=$(cpu)
idle_cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 12 * 100 }')
conns_held=$(curl -fsS "http://127.0.0.1:$sp/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])')
read -r attacked ap50 ap99 < <(measure 32 "http://127.0.0.1:$sp$path")
log_lines=$(wc -l <"$work/staplerd.log")
kill "$hold_pid" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "| server | conns | requests/s | p50 ms | p99 ms | ratio to nginx |"
echo "|---|---|---|---|---|---|"
for c in "${table_conns[@]}"; do
	for t in "${targets[@]}"; do
		IFS='|' read -r name _ _ <<<"$t"
		echo "| $name | $c | ${rps[$name,$c]} | ${p50[$name,$c]} | ${p99[$name,$c]} |" \
			"$(ratio "${rps[$name,$c]}" "${rps[nginx GET /staple.der,$c]}") |"
	done
done
echo
echo "held: 1,000 idle + 100 slowloris from 127.0.0.2 ($conns_held connections open):" \
	"staplerd CPU with only those ${idle_cpu}%; GET c=32 $attacked req/s (p50 $ap50 ms," \
	"p99 $ap99 ms) vs $base without: $(ratio "$attacked" "$base"); log lines in the whole run: $log_lines;" \
	"$(tail -1 "$work/hold.log")"

out=$top/docs/bench-serve.png
gnuplot <<GP
set terminal pngcairo size 800,500 noenhanced
set output "$out"
set title "Cache hits: requests/s against connections (wrk -t1, one worker each)"
set xlabel "connections"
set ylabel "requests/s"
set logscale x 2
set key top right
set grid
plot "$work/plot.dat" using 1:2 with linespoints title "staplerd GET /ocsp/{req}", \
     "$work/plot.dat" using 1:3 with linespoints title "staplerd POST /v1/staple", \
     "$work/plot.dat" using 1:4 with linespoints title "nginx static file"
GP
echo "plot: $out"
cp "$work/plot.dat" "$top/docs/bench-serve.dat"
