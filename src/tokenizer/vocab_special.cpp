// The special token ids of a vocabulary, the add-BOS/EOS flags and the end-of-generation set, as
// llama.cpp c392e50 derives them: ids from tokenizer.ggml.*_token_id keys, else found by their text,
// with the type of every such token forced to control.
#include <algorithm>
#include <array>
#include <initializer_list>
#include <string_view>

#include "tokenizer/vocab.h"

namespace kvq::tokenizer_detail {
namespace {

// An optional bool key; a present key of another type is an error.
Result<bool> get_bool_or(const gguf::File& file, std::string_view key, bool fallback) {
  if (file.find(key) == nullptr) return fallback;
  return file.get_bool(key);
}

// An optional token-id key; ids outside the vocabulary keep the default (as llama.cpp warns and does).
Status read_id(const gguf::File& file, std::string_view key, int32_t n_vocab, int32_t& id) {
  if (file.find(key) == nullptr) return Status::Ok();
  Result<int64_t> value = file.get_int(key);
  if (!value.ok()) return value.error();
  if (*value >= 0 && *value < n_vocab) id = int32_t(*value);
  return Status::Ok();
}

// A role without an id key takes the first token of `texts` present in the vocabulary. llama.cpp
// walks its hash map instead, so with two candidates present its pick is unspecified; the order
// here (the order of llama.cpp's list) makes ours deterministic. Either way the token becomes a
// control token, which also stops it being matched in raw text.
void find_by_text(Vocab& v, int32_t& id, std::initializer_list<std::string_view> texts) {
  if (id >= 0) return;
  for (const std::string_view text : texts) {
    const int32_t found = v.find(text);
    if (found < 0) continue;
    id = found;
    v.type[found] = TokenType::kControl;
    return;
  }
}

}  // namespace

Status load_special_tokens(const gguf::File& file, Vocab& v) {
  const int32_t n_vocab = v.n_vocab();
  struct IdKey {
    const char* key;
    int32_t* id;
  };
  // The deprecated prefix/suffix/middle keys come last, so they win when both are present.
  for (const IdKey& k :
       {IdKey{"tokenizer.ggml.bos_token_id", &v.bos}, IdKey{"tokenizer.ggml.eos_token_id", &v.eos},
        IdKey{"tokenizer.ggml.eot_token_id", &v.eot}, IdKey{"tokenizer.ggml.eom_token_id", &v.eom},
        IdKey{"tokenizer.ggml.unknown_token_id", &v.unk}, IdKey{"tokenizer.ggml.padding_token_id", &v.pad},
        IdKey{"tokenizer.ggml.fim_pre_token_id", &v.fim_pre}, IdKey{"tokenizer.ggml.fim_suf_token_id", &v.fim_suf},
        IdKey{"tokenizer.ggml.fim_mid_token_id", &v.fim_mid}, IdKey{"tokenizer.ggml.fim_pad_token_id", &v.fim_pad},
        IdKey{"tokenizer.ggml.fim_rep_token_id", &v.fim_rep}, IdKey{"tokenizer.ggml.fim_sep_token_id", &v.fim_sep},
        IdKey{"tokenizer.ggml.prefix_token_id", &v.fim_pre}, IdKey{"tokenizer.ggml.suffix_token_id", &v.fim_suf},
        IdKey{"tokenizer.ggml.middle_token_id", &v.fim_mid}}) {
    KVQ_RETURN_IF_ERROR(read_id(file, k.key, n_vocab, *k.id));
  }
  // Model defaults (SentencePiece 1/2/0, byte-level BPE 11/11) that a tiny vocabulary lacks.
  for (int32_t* id : {&v.bos, &v.eos, &v.unk}) {
    if (*id >= n_vocab) *id = -1;
  }

  // Absent flags keep the model's and pre-tokenizer's defaults: add_bos is on for SentencePiece
  // and for llama-bpe (Llama 3 files often have no add_bos_token key), off for the other BPEs.
  struct FlagKey {
    const char* key;
    bool* flag;
  };
  for (const FlagKey& k :
       {FlagKey{"tokenizer.ggml.add_bos_token", &v.add_bos}, FlagKey{"tokenizer.ggml.add_eos_token", &v.add_eos},
        FlagKey{"tokenizer.ggml.add_space_prefix", &v.add_space_prefix}}) {
    Result<bool> value = get_bool_or(file, k.key, *k.flag);
    if (!value.ok()) return value.error();
    *k.flag = *value;
  }
  if (v.add_bos && v.bos < 0) {
    return make_error("{}: add_bos_token is set but the vocabulary has no BOS token", file.path());
  }
  if (v.add_eos && v.eos < 0) {
    return make_error("{}: add_eos_token is set but the vocabulary has no EOS token", file.path());
  }

  // Roles llama.cpp recognizes by text when the file names no id (the ｜ and ▁ of DeepSeek's
  // names are U+FF5C and U+2581).
  find_by_text(
      v, v.eot,
      {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "<｜end▁of▁sentence｜>"});
  find_by_text(v, v.eom, {"<|eom_id|>"});
  find_by_text(v, v.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"});
  find_by_text(v, v.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"});
  find_by_text(v, v.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"});
  find_by_text(v, v.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<PAD>"});
  find_by_text(v, v.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"});
  find_by_text(v, v.fim_sep, {"<|file_sep|>"});

  // End of generation: every end-of-turn text present (all of them, not only the one picked as
  // eot: Qwen's <|endoftext|> and <|im_end|> both end generation), the FIM pad / repo / file
  // separators (a code model emitting one has finished its infill), and eos / eot / eom.
  v.eog_ids.clear();
  for (const std::string_view text :
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"}) {
    const int32_t id = v.find(text);
    if (id < 0) continue;
    v.eog_ids.push_back(id);
    v.type[id] = TokenType::kControl;
  }
  for (const int32_t id : {v.fim_pad, v.fim_rep, v.fim_sep, v.eos, v.eot, v.eom}) {
    if (id >= 0) v.eog_ids.push_back(id);
  }
  std::sort(v.eog_ids.begin(), v.eog_ids.end());
  v.eog_ids.erase(std::unique(v.eog_ids.begin(), v.eog_ids.end()), v.eog_ids.end());
  return Status::Ok();
}

}  // namespace kvq::tokenizer_detail
