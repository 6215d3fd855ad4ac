#!/usr/bin/env bash
# Cache hits: staplerd answering POST /v1/staple from memory, against nginx serving the same
# DER bytes as a static file, on the same machine, in one run (compare the ratio, not the
# absolute numbers: machines here are shared and noisy).
#   bench/serve.sh [SECONDS] [CONNECTIONS]
source "$(dirname "$0")/common.sh"
secs=${1:-10}
conns=${2:-32}
bench_deps
bench_build

up=$(free_port)
start_upstream "$up"
sp=$(free_port)
start_staplerd "$sp" "$work/cache.db"
curl -fsS --data-binary @"$work/pki/meter1.pem" -o "$work/staple.der" "http://127.0.0.1:$sp/v1/staple"

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
events { worker_connections 1024; }
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

cat >"$work/post.lua" <<LUA
local f = io.open("$work/pki/meter1.pem", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/x-pem-file"
LUA

machine
echo "staple: $(stat -c %s "$work/staple.der") bytes; wrk -t1 -c$conns -d${secs}s; one worker each"
rps() { awk '/Requests\/sec/ {print $2}'; }
echo "--- staplerd POST /v1/staple (cache hit)"
s=$(wrk -t1 -c"$conns" -d"${secs}s" -s "$work/post.lua" "http://127.0.0.1:$sp/v1/staple" | tee /dev/stderr | rps)
echo "--- staplerd GET /ocsp/{request} (RFC 5019 GET, cache hit)"
openssl ocsp -issuer "$work/pki/root.pem" -cert "$work/pki/meter1.pem" -no_nonce -reqout "$work/req.der" >/dev/null 2>&1
path=/ocsp/$(base64 -w0 "$work/req.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
cmp "$work/staple.der" <(curl -fsS "http://127.0.0.1:$sp$path")
g=$(wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$sp$path" | tee /dev/stderr | rps)
echo "--- nginx GET /staple.der (static file)"
n=$(wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$np/staple.der" | tee /dev/stderr | rps)
echo "RESULT staplerd_post_rps=$s staplerd_get_ocsp_rps=$g nginx_rps=$n" \
	"post_ratio=$(awk -v a="$s" -v b="$n" 'BEGIN {printf "%.2f", a / b}')" \
	"get_ratio=$(awk -v a="$g" -v b="$n" 'BEGIN {printf "%.2f", a / b}')"
grep -c . "$work/staplerd.log" >/dev/null && tail -3 "$work/staplerd.log" >&2 || true
