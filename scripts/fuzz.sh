#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes the GGUF parser.
# Usage: scripts/fuzz.sh [seconds=60] [extra libFuzzer flags...]
# Seeds: every .gguf under ../shared, cut to its first 64 KiB (headers are what matter; the vocabularies
# are megabytes). Exit status is non-zero when the fuzzer finds a crash, leak, timeout or OOM;
# reproducers are left in fuzz-corpus/artifacts/.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$root/../shared"
build="$root/build-fuzz"
corpus="$root/fuzz-corpus/gguf"
artifacts="$root/fuzz-corpus/artifacts/"  # gitignored with the corpus
max_len=65536

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKVQ_FUZZ=ON -DKVQ_BUILD_TESTS=OFF -DKVQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target gguf_fuzz -j"${KVQ_FUZZ_JOBS:-2}"

mkdir -p "$corpus" "$artifacts"
while IFS= read -r -d '' file; do
  seed="$corpus/seed-$(basename "$file")"
  [[ -f "$seed" ]] || head -c "$max_len" "$file" >"$seed"
done < <(find "$shared" -name '*.gguf' -print0)

# UBSan findings are printed and skipped unless the runtime is told to stop: make them count.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
echo "fuzzing gguf_fuzz for ${seconds}s (corpus $corpus, $(ls "$corpus" | wc -l) inputs)"
"$build/gguf_fuzz" "$corpus" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"
