#!/usr/bin/env bash
# Installs the Debian 12 packages staplerd needs to build, test and run (only what is missing).
# With --fuzz, also clang and libFuzzer for fuzz/run.sh (docs/fuzzing.md).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libssl-dev openssl libcurl4-openssl-dev libsqlite3-dev sqlite3 libevent-dev libinih-dev
  libjansson-dev libcmocka-dev
  curl python3 python3-cryptography iproute2 util-linux ca-certificates
  prometheus faketime # test_ops_observe.py: promtool check metrics/rules; /healthz in the future
  nginx haproxy       # tests/integration/test_scaleout.py runs examples/scaleout/ with them
  systemd             # test_ops_service.py: systemd-analyze security checks the unit's sandbox
  openjdk-17-jdk-headless libbcpkix-java  # test_service_certid.py: Bouncy Castle as an OCSP client
)
if [[ ${1:-} == --fuzz ]]; then
  PACKAGES+=(clang libclang-rt-dev)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (tests/integration/test_service_ocpp.py checks against OCPP's JSON schemas) are
# looked for as commands: a machine may have another Node.js build that carries its own npm
# and conflicts with Debian's npm package.
if ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
