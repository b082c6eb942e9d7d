#!/usr/bin/env bash
# The whole test suite: Release build under ctest, the same suite under ASan+UBSan, the kernel suite
# cross-built for aarch64 under qemu (scripts/test-arm64.sh), then a bounded fuzz run of every parser.
# Warnings are errors. Expects scripts/setup.sh to have run once.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVQ_WERROR=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

# The sanitized suite and the fuzzers in one clang tree: clang builds and runs it in about half of GCC's time.
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVQ_WERROR=ON \
  -DKVQ_SANITIZE=ON -DKVQ_FUZZ=ON -DKVQ_BUILD_BENCH=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 KVQ_TEST_SANITIZED=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

# The emulated aarch64 suite (both ARM CPU models); KVQ_SKIP_ARM64=1 skips it.
if [ "${KVQ_SKIP_ARM64:-0}" != 1 ]; then
  scripts/test-arm64.sh
fi

if [ -x scripts/fuzz.sh ]; then
  KVQ_FUZZ_BUILD="$PWD/build-asan" scripts/fuzz.sh "${KVQ_FUZZ_SECONDS:-90}"
fi
