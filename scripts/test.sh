#!/usr/bin/env bash
# Installs what is missing, builds staplerd twice (plain with -Werror, then ASan+UBSan) and
# runs the whole test suite on each build. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
status=0

run_suite() {
  local dir=$1; shift
  echo "=== build $dir ($*)"
  cmake -S . -B "$dir" -DSTAPLER_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "=== test $dir"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600) || status=1
}

run_suite build
if [[ ${STAPLER_SKIP_SANITIZE:-0} != 1 ]]; then
  # Leak checks stay on; halt on the first UBSan report so it fails the test.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_suite build-asan -DSTAPLER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
fi
exit $status
