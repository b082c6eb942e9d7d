// libFuzzer target for the tokenizers: any byte string (valid UTF-8 or not) must encode without
// crashing, every id must be in the vocabulary, and decoding must not crash either. Where the
// vocabulary neither normalizes nor cleans up spaces, valid text must also decode back exactly.
// Real vocabularies, each loaded once per process (the large ones take ~0.1 s, far too slow per
// input): SentencePiece stories260K, and Gemma 3 (no space prefix, raw-text user-defined tokens,
// byte fallback); byte-level BPE GPT-2, Llama 3 (llama-bpe, whole-word tokens) and Qwen3 (qwen2
// digits). Then a tiny vocabulary made from the input itself, for what malformed metadata does to
// from_gguf (an error, never a crash) and to the encoders (no byte tokens, merges that make no token).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

struct FuzzVocab {
  std::unique_ptr<kvq::Tokenizer> tokenizer;
  bool round_trips;  // decode(encode(text)) == text for canonical UTF-8 (see below)
};

FuzzVocab load(const char* relative, bool round_trips) {
  auto file = kvq::gguf::File::open(std::string(KVQ_SHARED_DIR) + "/" + relative);
  if (!file.ok()) std::abort();
  auto tokenizer = kvq::Tokenizer::from_gguf(*file);
  if (!tokenizer.ok()) std::abort();
  return {std::make_unique<kvq::Tokenizer>(std::move(*tokenizer)), round_trips};
}

// True when `text` is UTF-8 that the tokenizers' lenient decoder reads back byte for byte (no
// malformed sequence turned into U+FFFD) and has no U+2581, which SentencePiece reads as a space.
bool is_canonical_text(std::string_view text) {
  std::string again;
  for (size_t pos = 0; pos < text.size();) kvq::unicode::append_utf8(kvq::unicode::decode_utf8(text, pos), again);
  return again == text && text.find("\xE2\x96\x81") == std::string_view::npos;
}

void check_ids(const kvq::Tokenizer& t, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (id < 0 || id >= t.n_vocab()) __builtin_trap();
  }
}

// Input layout: byte 0 picks the model, pre-tokenizer and which keys exist; the bytes up to the first
// '\n' are the tokens, separated by ' ' (empty ones included); the rest is the text to encode.
void fuzz_tiny_vocabulary(std::string_view input) {
  if (input.size() < 2) return;
  const uint8_t keys = uint8_t(input[0]);
  const size_t newline = input.find('\n', 1);
  const std::string_view header = input.substr(1, newline == std::string_view::npos ? input.size() : newline - 1);
  const std::string_view text = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  std::vector<std::string> tokens;
  for (size_t start = 0; tokens.size() < 64;) {
    const size_t space = header.find(' ', start);
    tokens.emplace_back(header.substr(start, space == std::string_view::npos ? header.size() - start : space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  static const char* const kPre[] = {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "unknown-pre"};
  kvq::gguf::Writer w;
  w.set_string("tokenizer.ggml.model", (keys & 1) ? "gpt2" : "llama");
  w.set_string("tokenizer.ggml.pre", kPre[(keys >> 1) % 5]);
  if (keys & 0x10) {  // types 0..7: 0 and 7 are not valid GGUF token types
    std::vector<int32_t> types;
    for (size_t i = 0; i < tokens.size(); ++i) types.push_back(int32_t((tokens[i].size() + i) % 8));
    w.set_i32_array("tokenizer.ggml.token_type", types);
  }
  if (keys & 0x20) {
    std::vector<float> scores;
    for (size_t i = 0; i < tokens.size(); ++i) scores.push_back(-float(tokens[i].size() * 7 % 5) - float(i));
    w.set_f32_array("tokenizer.ggml.scores", scores);
  }
  std::vector<std::string> merges;  // every adjacent pair: some merge into no token at all
  for (size_t i = 0; i + 1 < tokens.size(); ++i) merges.push_back(tokens[i] + " " + tokens[i + 1]);
  if (keys & 0x40) w.set_string_array("tokenizer.ggml.merges", merges);
  if (keys & 0x80) {
    w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(keys % 5));
    w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(keys % 3));
    w.set_bool("tokenizer.ggml.add_bos_token", true);
  }
  w.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("kvq-tokenizer-fuzz-" + std::to_string(getpid()) + ".gguf")).string();
  if (!w.write(path).ok()) std::abort();
  auto file = kvq::gguf::File::open(path);
  if (!file.ok()) std::abort();
  std::error_code ignored;
  std::filesystem::remove(path, ignored);  // the mapping stays valid; no file is left behind
  auto tokenizer = kvq::Tokenizer::from_gguf(*file);
  if (!tokenizer.ok()) {
    if (tokenizer.error().message.rfind(path, 0) != 0) __builtin_trap();  // errors name the file
    return;
  }
  for (bool parse_special : {false, true}) {
    const auto ids = tokenizer->encode(text, true, parse_special);
    check_ids(*tokenizer, ids);
    volatile size_t sink = tokenizer->decode(ids).size();
    (void)sink;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const FuzzVocab vocabs[] = {
      load("data/models/stories260K/stories260K.gguf", false),    // add_space_prefix: the first space is lost
      load("data/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", false),  // space cleanup
      load("data/vocab/ggml-vocab-llama3.gguf", false),           // space cleanup
      load("data/vocab/ggml-vocab-qwen3.gguf", true),
      load("data/vocab/ggml-vocab-gemma3.gguf", true),
  };
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool canonical = is_canonical_text(text);
  for (const FuzzVocab& vocab : vocabs) {
    const kvq::Tokenizer& t = *vocab.tokenizer;
    for (bool parse_special : {false, true}) {
      const auto ids = t.encode(text, true, parse_special);
      check_ids(t, ids);
      const std::string decoded = t.decode(ids);
      // Parsed control tokens decode to nothing, so only plain-text encodings must come back.
      if (vocab.round_trips && canonical && !parse_special && decoded != text) __builtin_trap();
    }
  }
  fuzz_tiny_vocabulary(text);
  return 0;
}
