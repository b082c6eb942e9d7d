#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes every parser: GGUF files (and the model
# binder behind them), tokenizer input, KV-type flags, chat templates, server request bodies, the JSON files of
# kvq tune (spec and measurements). GGUF gets a third of the time, the others a sixth each (7/6 in all).
# Usage: scripts/fuzz.sh [seconds=60] [extra libFuzzer flags...]
# KVQ_FUZZ_BUILD=DIR fuzzes in a tree already configured with -DKVQ_FUZZ=ON (scripts/test.sh's sanitized
# suite tree); otherwise build-fuzz/ is configured here.
# Seeds: every .gguf under ../shared, cut to its first 64 KiB (headers are what matter; the vocabularies
# are megabytes), and the tiny models the test suite writes. Exit status is non-zero when the fuzzer finds
# a crash, leak, timeout or OOM; reproducers are left in fuzz-corpus/artifacts/.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$root/../shared"
build="${KVQ_FUZZ_BUILD:-$root/build-fuzz}"
corpus="$root/fuzz-corpus/gguf"
artifacts="$root/fuzz-corpus/artifacts/"  # gitignored with the corpus
max_len=65536

if [ -z "${KVQ_FUZZ_BUILD:-}" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKVQ_FUZZ=ON -DKVQ_BUILD_TESTS=OFF -DKVQ_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" --target gguf_fuzz tokenizer_fuzz kv_spec_fuzz chat_template_fuzz request_fuzz \
  kv_spec_file_fuzz -j"${KVQ_FUZZ_JOBS:-2}"

mkdir -p "$corpus" "$artifacts"
while IFS= read -r -d '' file; do
  seed="$corpus/seed-$(basename "$file")"
  [[ -f "$seed" ]] || head -c "$max_len" "$file" >"$seed"
done < <(find "$shared" -name '*.gguf' -print0)
# Whole tiny models of every architecture and their broken variants, written by tests/arch_errors_test.cpp
# (when the test suite ran first): complete files under max_len reach the model binder.
for file in "$root"/build/broken-models/*.gguf; do
  [[ -f "$file" ]] && cp -n "$file" "$corpus/model-$(basename "$file")"
done

# UBSan findings are printed and skipped unless the runtime is told to stop: make them count.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
echo "fuzzing gguf_fuzz for $((seconds * 2 / 6))s (corpus $corpus, $(ls "$corpus" | wc -l) inputs)"
"$build/gguf_fuzz" "$corpus" -max_total_time="$((seconds * 2 / 6))" -max_len="$max_len" -rss_limit_mb=2048 \
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
for spec in "q8_0" "4" "16" "iq4_nl" "0-1:f16/f16,2-21:q8_0/q4_0" "5:q8_0/q4_0" "0-0:8/4" "3-1:f16/f16" \
  "0-1:f16/f16+r0,2-5:q4_0/q4_0+rkv" "1:q8_0/q4_0+rk"; do
  printf '%s' "$spec" >"$spec_corpus/seed-$i"; i=$((i + 1))
done
for target in tokenizer_fuzz:"$text_corpus" kv_spec_fuzz:"$spec_corpus"; do
  name="${target%%:*}" dir="${target#*:}"
  echo "fuzzing $name for $((seconds / 6))s"
  "$build/$name" "$dir" -max_total_time="$((seconds / 6))" -max_len=4096 -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"
done

# Chat templates: seeds are the real templates (up to 17 KiB); the dictionary holds the tags,
# keywords and filters they are made of, so mutations stay close to templates.
chat_corpus="$root/fuzz-corpus/chat-template" chat_dict="$root/fuzz-corpus/chat-template.dict"
mkdir -p "$chat_corpus"
for f in "$shared"/data/chat-templates/templates/*.jinja; do cp "$f" "$chat_corpus/seed-$(basename "$f")"; done
chmod u+w "$chat_corpus"/seed-* 2>/dev/null || true
: >"$chat_dict"
for word in '{{' '}}' '{%' '%}' '{{-' '-}}' '{%-' '-%}' '{#' '#}' '{%+' 'for ' ' in ' 'endfor' 'if ' 'elif ' 'else' \
  'endif' 'set ' 'endset' 'macro ' 'endmacro' 'filter ' 'endfilter' 'raw' 'endraw' 'break' 'continue' 'namespace(' \
  'loop.index' 'loop.first' 'loop.last' 'loop.length' 'messages' 'message.content' "message['role']" 'tools' \
  'add_generation_prompt' 'bos_token' 'raise_exception(' 'strftime_now(' 'range(' ' is defined' ' is not none' \
  ' is string' ' is mapping' ' and ' ' or ' ' not ' '|tojson' '|trim' '|length' '|join(' '|map(' '|selectattr(' \
  '|dictsort' '|default(' '|items' '|list' '|string' '.split(' '.strip()' '.items()' '.get(' '[::-1]' '[-1]' ' ~ '; do
  printf '"%s"\n' "$(printf '%s' "$word" | sed 's/\\/\\\\/g; s/"/\\"/g')" >>"$chat_dict"
done
echo "fuzzing chat_template_fuzz for $((seconds / 6))s"
"$build/chat_template_fuzz" "$chat_corpus" -dict="$chat_dict" -max_total_time="$((seconds / 6))" -max_len=20000 \
  -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"

# Server request bodies: seeds are valid and near-valid OpenAI requests of both endpoints.
request_corpus="$root/fuzz-corpus/request"
mkdir -p "$request_corpus"
i=0
for body in '{"model":"m","prompt":"Once upon a time","max_tokens":16,"temperature":0,"stop":["\n"],"seed":7}' \
  '{"messages":[{"role":"system","content":"hi"},{"role":"user","content":[{"type":"text","text":"x"}]}],"stream":true,"stream_options":{"include_usage":true}}' \
  '{"prompt":["a"],"top_p":0.5,"top_k":40,"min_p":0.05,"n":1,"max_completion_tokens":null}' '{"prompt":1e999}' '[]'; do
  printf '%s' "$body" >"$request_corpus/seed-$i"; i=$((i + 1))
done
echo "fuzzing request_fuzz for $((seconds / 6))s"
"$build/request_fuzz" "$request_corpus" -max_total_time="$((seconds / 6))" -max_len=4096 -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"

# kvq tune's JSON files: seeds are a valid spec and a valid measurements file (the fuzz target's key) and
# near-valid variants of both.
spec_file_corpus="$root/fuzz-corpus/kv-spec-file"
mkdir -p "$spec_file_corpus"
i=0
for body in '{"kvq_spec":1,"model":{"name":"m","n_layer":2,"fingerprint":"0123456789abcdef"},"layers":[{"layer":0,"k":"q8_0","v":"q4_0"},{"layer":1,"k":"f16","v":"iq4_nl"}],"tuned":{"bytes":1}}' \
  '{"kvq_spec":1,"model":{"name":"","n_layer":1,"fingerprint":"ffffffffffffffff"},"layers":[{"layer":0,"k":"8","v":"4"}]}' \
  '{"kvq_tune_measurements":1,"model_bytes":1000,"model_hash":"000000000000feed","text_bytes":77,"text_hash":"000000000000beef","n_ctx":64,"calib_chunks":3,"n_layer":2,"measurements":[{"layer":1,"side":"v","type":"q4_0","kld":0.25,"ln_ppl_ratio":0.125},{"layer":0,"side":"k","type":"q8_0","kld":1e-5,"ln_ppl_ratio":-2e-6}]}' \
  '{"kvq_spec":1,"model":{"n_layer":-1}}' '{"layers":[{"layer":99999999999999999999}]}'; do
  printf '%s' "$body" >"$spec_file_corpus/seed-$i"; i=$((i + 1))
done
echo "fuzzing kv_spec_file_fuzz for $((seconds / 6))s"
"$build/kv_spec_file_fuzz" "$spec_file_corpus" -max_total_time="$((seconds / 6))" -max_len=4096 -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@"
