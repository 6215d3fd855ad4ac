#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang into build-fuzz/ and runs each for SECONDS (default
# 60), one after another, on a copy of its seed corpus fuzz/corpus/<name>/. Work corpora, logs
# and crash inputs stay in build-fuzz/fuzz-out/<name>/. Exits non-zero when a fuzzer failed.
# A crash input becomes a regression seed in fuzz/corpus/<name>/ once the bug is fixed.
#   fuzz/run.sh [SECONDS [NAME...]]      e.g. fuzz/run.sh 180 certs ocsp_response
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
all=(certs ocsp_response ocsp_request config fmt http http_reads)
names=("${@:-${all[@]}}")
# Inputs a little above what the daemon takes: certificate bodies and responses are tens of
# KiB at most, GET paths and admin fields much less.
declare -A max_len=([certs]=16384 [ocsp_response]=8192 [ocsp_request]=2048 [config]=4096
    [fmt]=512 [http]=8192 [http_reads]=32768)

bash scripts/deps.sh --fuzz
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER="${CC:-clang}" -DSTAPLER_FUZZ=ON \
    -DSTAPLER_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${names[@]/#/fuzz_}"

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
summary=()
for n in "${names[@]}"; do
  if [[ -z ${max_len[$n]:-} ]]; then
    echo "run.sh: no fuzzer named $n (one of: ${all[*]})" >&2
    exit 2
  fi
  work=build-fuzz/fuzz-out/$n
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/crashes" "$work/tmp"
  cp fuzz/corpus/"$n"/* "$work/corpus/"
  echo "=== fuzz_$n for ${secs}s (-max_len=${max_len[$n]})"
  rc=0
  STAPLER_TEST_TMP=$work/tmp build-fuzz/fuzz/fuzz_"$n" "$work/corpus" \
      -max_total_time="$secs" -max_len="${max_len[$n]}" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/crashes/" -print_final_stats=1 >"$work/log" 2>&1 || rc=$?
  last=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1 || true)
  execs=$(grep -m1 '^stat::number_of_executed_units' "$work/log" | awk '{print $2}' || true)
  crashes=$(find "$work/crashes" -type f | wc -l)
  if ((rc != 0 || crashes > 0)); then
    status=1
    echo "fuzz_$n FAILED (exit $rc); inputs in $work/crashes/, log $work/log:"
    grep -E 'ERROR|SUMMARY|runtime error|fuzz_[a-z_]+:' "$work/log" | head -n 20 || true
  fi
  summary+=("$n: exit $rc, ${execs:-?} runs, crashes $crashes, last: ${last:-?}")
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit $status
