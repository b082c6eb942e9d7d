// The loaded vocabulary shared by the tokenizer implementation files (not a public header).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/string_index.h"
#include "util/result.h"

namespace kvq::tokenizer_detail {

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class Model { kSentencePiece, kBytePairEncoding };

struct Vocab {
  Model model = Model::kSentencePiece;
  PreTokenizer pre = PreTokenizer::kGpt2;  // BPE only

  std::vector<std::string> text;          // [n_vocab] token text as stored (U+2581 / byte-mapped)
  std::vector<float> score;               // [n_vocab] SentencePiece merge priority
  std::vector<TokenType> type;            // [n_vocab]
  std::vector<uint8_t> rstrip;            // [n_vocab] 1: whitespace after this token's text is dropped
  std::vector<std::string> piece;         // [n_vocab] decoded text (control/unknown -> "")
  StringIndex token_index;                // text -> id (the last id wins on duplicates, as llama.cpp)
  std::vector<std::string> merges;        // [n_merges] "left right", by rank (BPE)
  StringIndex merge_index;                // "left right" -> rank (the first rank wins on duplicates)
  std::array<int32_t, 256> byte_token{};  // SentencePiece byte fallback "<0xXX>", else unk
  std::vector<int32_t> special_tokens;    // control/user-defined/unknown ids, longest text first
  std::vector<int32_t> eog_ids;           // sorted

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
  // Fill-in-the-middle roles: prefix, suffix, middle, pad, repository name, file separator.
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;   // clean_up_tokenization_spaces on decode
  bool ignore_merges = false;  // Llama 3: a word that is a token is taken whole

  int32_t n_vocab() const { return int32_t(text.size()); }
  int32_t find(std::string_view s) const { return token_index.find(s, text); }
  int32_t merge_rank(std::string_view left_space_right) const { return merge_index.find(left_space_right, merges); }
};

// Reads the special token ids and the add_bos / add_eos / add_space_prefix flags (absent keys keep
// the defaults already in `v`), finds the roles llama.cpp recognizes by text and fills eog_ids.
Status load_special_tokens(const gguf::File& file, Vocab& v);

// Appends the ids of `text` (spaces already escaped to U+2581) by SentencePiece bigram merging.
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);
// Appends the ids of raw `text`: pre-tokenize, byte-map, then ranked BPE merges per word.
void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace kvq::tokenizer_detail
