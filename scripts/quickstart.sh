#!/usr/bin/env bash
# One command from nothing to a running staplerd:
#   scripts/quickstart.sh            installs what is missing, builds, makes a demo PKI, starts
#                                    OpenSSL's OCSP responder for it and staplerd, in the background
#   scripts/quickstart.sh -c FILE    installs, builds and runs staplerd with your config (foreground)
#   scripts/quickstart.sh stop       stops the demo processes
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
demo=$top/demo
upstream_port=${STAPLER_DEMO_UPSTREAM_PORT:-8888}
listen_port=${STAPLER_DEMO_PORT:-8080}

stop_demo() {
  local name pid
  for name in staplerd ocsp; do
    if [[ -f $demo/$name.pid ]]; then
      pid=$(cat "$demo/$name.pid")
      kill "$pid" 2>/dev/null || true
      # Wait (bounded) until it is gone, so a new demo can bind the same ports.
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      rm -f "$demo/$name.pid"
    fi
  done
}

if [[ ${1:-} == stop ]]; then
  stop_demo
  echo "demo stopped"
  exit 0
fi

bash scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target staplerd staplerctl >/dev/null

if [[ ${1:-} == -c ]]; then
  exec build/staplerd -c "${2:?-c needs a file}"
fi

stop_demo
rm -rf "$demo"
bash scripts/demo-pki.sh "$demo/pki" "$upstream_port"
cat > "$demo/staplerd.conf" <<CONF
; Demo configuration written by scripts/quickstart.sh
[server]
listen = 127.0.0.1:$listen_port
admin_socket = $demo/admin.sock
max_request = 64k
[cache]
database = $demo/cache.db
[trust]
ca_file = $demo/pki/ca-bundle.pem
[upstream]
timeout = 10s
max_parallel = 64
allow = 127.0.0.1
CONF

# The upstream: OpenSSL's own OCSP responder, signing with the delegated responder cert.
# Every background process gets its own stdin and stdout, so that a caller reading this
# script's output (a pipe, CI) sees it end. Readiness comes from its log line: OpenSSL 3.0's
# responder misbehaves after a connection that closes without a request, so no probing.
openssl ocsp -index "$demo/pki/index.txt" -port "$upstream_port" -CA "$demo/pki/root.pem" \
  -rsigner "$demo/pki/ocsp.pem" -rkey "$demo/pki/ocsp.key" -ndays 7 \
  </dev/null >"$demo/ocsp.log" 2>&1 &
echo $! > "$demo/ocsp.pid"
for _ in $(seq 100); do
  grep -q "waiting for OCSP client connections" "$demo/ocsp.log" 2>/dev/null && break
  sleep 0.1
done
if ! grep -q "waiting for OCSP client connections" "$demo/ocsp.log" 2>/dev/null; then
  echo "openssl ocsp did not start on port $upstream_port; see $demo/ocsp.log" >&2
  cat "$demo/ocsp.log" >&2
  stop_demo
  exit 1
fi

build/staplerd -c "$demo/staplerd.conf" </dev/null >"$demo/staplerd.log" 2>&1 &
echo $! > "$demo/staplerd.pid"
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$listen_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$listen_port/healthz" >/dev/null || {
  echo "staplerd did not start; see $demo/staplerd.log" >&2
  cat "$demo/staplerd.log" >&2
  stop_demo
  exit 1
}

cat <<MSG
staplerd is running on http://127.0.0.1:$listen_port (log: demo/staplerd.log), with OpenSSL's
OCSP responder as its upstream on port $upstream_port (log: demo/ocsp.log). Try, in $top:

  curl --data-binary @demo/pki/meter1.pem -o staple.der http://127.0.0.1:$listen_port/v1/staple
  openssl ocsp -respin staple.der -issuer demo/pki/root.pem -CAfile demo/pki/root.pem -cert demo/pki/meter1.pem

meter2.pem is revoked: its staple says so. Stop the demo with: scripts/quickstart.sh stop
MSG
