// Text <-> token ids for the vocabularies GGUF files carry: SentencePiece-style ("llama": Llama 2,
// Phi-3, Gemma) and byte-level BPE ("gpt2") with the gpt-2, llama-bpe (Llama 3), qwen2 (Qwen2.5,
// Qwen3) and deepseek-llm pre-tokenizers. Matches llama.cpp's tokenizer id for id; like llama.cpp
// it applies no Unicode normalization (docs/tokenizers.md).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "util/result.h"

namespace kvq {

namespace tokenizer_detail {
struct Vocab;
}

class Tokenizer {
 public:
  // Builds from GGUF metadata: tokenizer.ggml.model ("llama" = SentencePiece-style, "gpt2" =
  // byte-level BPE), tokenizer.ggml.pre, tokens, scores, token_type, merges, the bos / eos /
  // unknown / padding ids, add_bos_token, add_eos_token, add_space_prefix.
  // An unsupported model or pre-tokenizer is an Error naming the file and the value and listing
  // the supported ones.
  static Result<Tokenizer> from_gguf(const gguf::File& file);

  // add_special: add BOS (and EOS) as the vocabulary's metadata says (llama.cpp's add_special).
  // parse_special: also turn control-token text such as "<s>" into that token; user-defined
  // tokens are always matched, as in llama.cpp and Hugging Face tokenizers.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special = false) const;

  // Decoded text of one token: byte tokens -> the byte, U+2581 -> space, the BPE byte mapping
  // undone. Control and unknown tokens decode to "" unless `special` (then to their text).
  std::string token_to_piece(int32_t id, bool special = false) const;

  // Concatenated pieces. A leading BOS is skipped and the space that add_space_prefix put before
  // the first word is removed, so decode(encode(text, true)) == text for SentencePiece
  // vocabularies. BPE vocabularies with clean_up_tokenization_spaces get llama.cpp's cleanup
  // (" ." -> ".", " 's" -> "'s", ...).
  std::string decode(std::span<const int32_t> ids) const;

  int32_t bos() const;
  int32_t eos() const;
  bool add_bos() const;
  int32_t n_vocab() const;
  // End of generation: eos, eot, eom, the end-of-turn tokens llama.cpp recognizes by text
  // (<|im_end|>, <|eot_id|>, <end_of_turn>, <|endoftext|>, ...) and the FIM pad / repo / file-separator tokens.
  bool is_eog(int32_t id) const;

 private:
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::Vocab> vocab);
  std::shared_ptr<const tokenizer_detail::Vocab> vocab_;  // immutable: copies share it
};

}  // namespace kvq
