// libFuzzer target for the tokenizers: any byte string (valid UTF-8 or not) must encode without
// crashing, every id must be in the vocabulary, and decoding must not crash either.
// Vocabularies: the SentencePiece one of stories260K and the byte-level BPE one of GPT-2.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

std::unique_ptr<kvq::Tokenizer> load(const char* relative) {
  auto file = kvq::gguf::File::open(std::string(KVQ_SHARED_DIR) + "/" + relative);
  if (!file.ok()) std::abort();
  auto tokenizer = kvq::Tokenizer::from_gguf(*file);
  if (!tokenizer.ok()) std::abort();
  return std::make_unique<kvq::Tokenizer>(std::move(*tokenizer));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto spm = load("data/models/stories260K/stories260K.gguf");
  static const auto bpe = load("data/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const kvq::Tokenizer* t : {spm.get(), bpe.get()}) {
    for (bool parse_special : {false, true}) {
      const auto ids = t->encode(text, true, parse_special);
      for (int32_t id : ids) {
        if (id < 0 || id >= t->n_vocab()) __builtin_trap();
      }
      volatile size_t sink = t->decode(ids).size();
      (void)sink;
    }
  }
  return 0;
}
