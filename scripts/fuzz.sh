#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes every parser: GGUF files,
# tokenizer input, KV-type flags. The time is shared: GGUF gets half, the others a quarter each.
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
cmake --build "$build" --target gguf_fuzz tokenizer_fuzz kv_spec_fuzz -j"${KVQ_FUZZ_JOBS:-2}"

mkdir -p "$corpus" "$artifacts"
while IFS= read -r -d '' file; do
  seed="$corpus/seed-$(basename "$file")"
  [[ -f "$seed" ]] || head -c "$max_len" "$file" >"$seed"
done < <(find "$shared" -name '*.gguf' -print0)

# UBSan findings are printed and skipped unless the runtime is told to stop: make them count.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
echo "fuzzing gguf_fuzz for $((seconds / 2))s (corpus $corpus, $(ls "$corpus" | wc -l) inputs)"
"$build/gguf_fuzz" "$corpus" -max_total_time="$((seconds / 2))" -max_len="$max_len" -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"

# Text seeds: the tokenizer test strings (upstream and the Qwen3 / Llama 3 / Gemma 3 ones), each whole
# file and each case on its own, so short inputs reach the special-token, digit and byte-fallback paths
# quickly; flag seeds: valid and near-valid specs.
text_corpus="$root/fuzz-corpus/text" spec_corpus="$root/fuzz-corpus/kv-spec"
mkdir -p "$text_corpus" "$spec_corpus"
for f in "$shared"/data/llama.cpp-vocab/*.inp "$shared"/data/vocab/*.inp; do
  name="$(basename "$f")"
  head -c 4096 "$f" >"$text_corpus/seed-$name"
  awk -v RS='\n__ggml_vocab_test__\n' -v dir="$text_corpus" -v name="$name" \
    '{ printf "%s", $0 > (dir "/seed-" name "-" NR); close(dir "/seed-" name "-" NR) }' "$f"
done
printf '%s' '<start_of_turn>user<table>  x</s><|im_start|><think>12345</think><|eot_id|>' >"$text_corpus/seed-specials"
head -c 4096 "$shared/data/text/wiki.test.raw" >"$text_corpus/seed-wiki"
i=0
for spec in "q8_0" "4" "16" "iq4_nl" "0-1:f16/f16,2-21:q8_0/q4_0" "5:q8_0/q4_0" "0-0:8/4" "3-1:f16/f16"; do
  printf '%s' "$spec" >"$spec_corpus/seed-$i"; i=$((i + 1))
done
for target in tokenizer_fuzz:"$text_corpus" kv_spec_fuzz:"$spec_corpus"; do
  name="${target%%:*}" dir="${target#*:}"
  echo "fuzzing $name for $((seconds / 4))s"
  "$build/$name" "$dir" -max_total_time="$((seconds / 4))" -max_len=4096 -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"
done
