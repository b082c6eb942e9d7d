#!/usr/bin/env bash
# The suite on 64-bit ARM: cross-built with Debian's aarch64 toolchain (cmake/aarch64-linux-gnu.cmake) and
# run under qemu-aarch64 with two CPU models (labels in CMakeLists.txt):
#   max         every extension qemu has (dot product, i8mm, fp16, SVE), so the sdot kernels: the tests
#               labelled `emulated` and `dotprod` — every kernel of every weight and KV type against its
#               oracle, whole models against reference logits, the parsers — less the two stories15M quality
#               measurements (RotatedModel, KvCentring: kernels covered here, 2.5 minutes under emulation);
#   neoverse-n1 the dot product without i8mm (Graviton 2, Ampere Altra; Apple M1 has the same extensions): the
#               `dotprod` tests (matmul and whole models of every weight type), whose prompts take the sdot
#               panel here and smmla under max;
#   cortex-a72  Armv8.0 without the dot product or i8mm (the Raspberry Pi 4's core): the `dotprod` tests
#               (matmul and whole models of every weight type) and attention tests of key and value types with
#               an sdot / sudot kernel (q8_0, q4_0, iq4_nl, nl4_h, nl2_h keys; q4_0, nl3_h values), on their
#               portable NEON fallbacks.
# The attention suite runs 66 of its 124 K/V pairs here (every decoder of each side: attention_test.cpp).
# Expects scripts/setup.sh to have run once.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVQ_WERROR=ON -DKVQ_BUILD_BENCH=OFF \
  -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
cmake --build build-arm64 --target emulated_tests -j"$jobs"
echo "test-arm64: the emulated suite under qemu-aarch64 -cpu max"
QEMU_CPU=max ctest --test-dir build-arm64 --no-tests=error -L '^(emulated|dotprod)$' \
  -E '^Shared/RotatedModel|^KvCentring' --output-on-failure -j"$jobs"
echo "test-arm64: the sdot kernels without i8mm under qemu-aarch64 -cpu neoverse-n1"
QEMU_CPU=neoverse-n1 ctest --test-dir build-arm64 --no-tests=error -L dotprod --output-on-failure -j"$jobs" \
  -E '^(FixturePairs/QuantizedCacheLogits|QuantizedCache|Stories260K|Prefill)\.'  # KV paths: max and cortex-a72
echo "test-arm64: the dot-product kernels' fallbacks under qemu-aarch64 -cpu cortex-a72"
QEMU_CPU=cortex-a72 ctest --test-dir build-arm64 --no-tests=error -L dotprod --output-on-failure -j"$jobs" \
  -E '^(FixturePairs/QuantizedCacheLogits|QuantizedCache|Stories260K|Prefill)\.'  # the next run covers attention
QEMU_CPU=cortex-a72 ctest --test-dir build-arm64 --no-tests=error --output-on-failure -j"$jobs" \
  -R '^(Attention\.|Representative/AttentionConsistency\.|AllKvPairs/AttentionPair\..*/(q8_0|q4_0|iq4_nl|nl4_h|nl2_h)_(f16|q8_0|q4_0|nl3_h)( |$))'
