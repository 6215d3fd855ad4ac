#!/usr/bin/env bash
# Line coverage of libstapler reached by the corpora that fuzz/run.sh left in
# build-fuzz/fuzz-out/<name>/corpus (or, without a run, the seeds in fuzz/corpus/<name>):
# builds the replay drivers with clang source-based coverage into build-cov/ and prints
# llvm-cov's report for the files the harnesses drive.   fuzz/coverage.sh [NAME...]
set -euo pipefail
cd "$(dirname "$0")/.."

all=(certs ocsp_response ocsp_request config fmt)
names=("${@:-${all[@]}}")
bash scripts/deps.sh --fuzz
flags="-fprofile-instr-generate -fcoverage-mapping"
cmake -S . -B build-cov -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build build-cov -j"$(nproc)" --target "${names[@]/#/replay_}"

rm -rf build-cov/profiles
mkdir -p build-cov/profiles build-cov/tmp
objects=()
for n in "${names[@]}"; do
  corpus=build-fuzz/fuzz-out/$n/corpus
  [[ -d $corpus ]] || corpus=fuzz/corpus/$n
  LLVM_PROFILE_FILE=build-cov/profiles/$n.profraw STAPLER_TEST_TMP=build-cov/tmp \
      build-cov/fuzz/replay_"$n" "$corpus"
  objects+=(-object build-cov/fuzz/replay_"$n")
done
llvm-profdata merge -sparse build-cov/profiles/*.profraw -o build-cov/profiles/all.profdata
# The first -object is positional in llvm-cov's syntax.
llvm-cov report "${objects[@]:1}" -instr-profile=build-cov/profiles/all.profdata \
    src/certs.c src/ocsp.c src/verify.c src/issuers.c src/config.c src/fmt.c src/util.c \
    src/types.c
