// libFuzzer target for the tokenizers: any byte string (valid UTF-8 or not) must encode without
// crashing, every id must be in the vocabulary, and decoding must not crash either. Where the
// vocabulary neither normalizes nor cleans up spaces, valid text must also decode back exactly.
// Vocabularies, each loaded once per process (the large ones take ~0.1 s, far too slow per input):
// SentencePiece stories260K, and Gemma 3 (no space prefix, raw-text user-defined tokens, byte
// fallback); byte-level BPE GPT-2, Llama 3 (llama-bpe, whole-word tokens) and Qwen3 (qwen2 digits).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

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
      for (int32_t id : ids) {
        if (id < 0 || id >= t.n_vocab()) __builtin_trap();
      }
      const std::string decoded = t.decode(ids);
      // Parsed control tokens decode to nothing, so only plain-text encodings must come back.
      if (vocab.round_trips && canonical && !parse_special && decoded != text) __builtin_trap();
    }
  }
  return 0;
}
