#!/usr/bin/env bash
# Set-up on a fresh Debian 12 machine: installs every dependency from Debian packages (idempotent),
# builds kvq (Release) into build/, then runs the main job on the shipped real model.
#   scripts/setup.sh            install + build + main job
#   scripts/setup.sh --no-run   install + build only
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
# Installs those of the Debian packages "$@" that are missing (name:arm64 ones through multiarch).
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing ${missing[*]}" >&2
  if [[ " ${missing[*]}" == *":arm64"* ]]; then $sudo dpkg --add-architecture arm64; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

install_missing build-essential cmake ninja-build clang libclang-rt-14-dev libomp-dev \
  libhwy-dev libcli11-dev nlohmann-json3-dev libfmt-dev \
  libgtest-dev libgmock-dev libbenchmark-dev gnuplot-nox libcpp-httplib-dev pkg-config
# 64-bit ARM: Debian's cross compiler, qemu-user and the arm64 builds of the libraries (multiarch), for the
# suite's emulated aarch64 run (scripts/test-arm64.sh).
install_missing g++-aarch64-linux-gnu qemu-user libhwy-dev:arm64 libfmt-dev:arm64 libgtest-dev:arm64 \
  libgmock-dev:arm64 libcpp-httplib-dev:arm64 libgomp1:arm64 libstdc++6:arm64
# Node.js for the official openai client test (tests/openai, pinned by its package-lock.json).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  install_missing nodejs npm
fi
if [ ! -d tests/openai/node_modules/openai ]; then
  npm ci --prefix tests/openai --no-audit --no-fund >&2
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVQ_WERROR=ON >&2
cmake --build build -j"$(nproc)" >&2

[ "${1:-}" = "--no-run" ] && exit 0
# The main job: the shipped real model with realistic heads (stories15M: 6 heads of 48), then what each
# K/V precision costs it in quality and memory (perplexity and KL-divergence against the f16 cache at 2
# context lengths, 12 chunks of each: 3k and 6k tokens; a few minutes on 2 cores): ggml's types unrotated
# and rotated, then kvq's head-scaled non-linear types (rotated), then the best of those with every query's
# last 16 positions kept at q8_0 (kv/kv_cache.h). Tables on stdout; CSV, JSON and charts in build/sweep/,
# build/sweep-nl/ and build/sweep-window/.
model=../shared/data/models/stories15M/stories15M.gguf
text=../shared/data/text/tinystories_val.txt
./build/kvq info "$model" --kv-types f16,q8_0,q4_0,nl5_h,nl4_h
./build/kvq sweep -m "$model" -f "$text" --keys f16,q8_0,q4_0 --vals f16,q8_0,q4_0 --rot none,kv -c 256,512 \
  --chunks 12 -o build/sweep
./build/kvq sweep -m "$model" -f "$text" --keys q8_0,nl5_h,nl4_h --vals q4_0,nl4_h,nl3_h --rot kv -c 256,512 \
  --chunks 12 -o build/sweep-nl
./build/kvq sweep -m "$model" -f "$text" --keys nl4_h --vals nl4_h,nl3_h --rot kv --kvq-window 16 --kvq-keep q8_0 \
  -c 256,512 --chunks 12 -o build/sweep-window
