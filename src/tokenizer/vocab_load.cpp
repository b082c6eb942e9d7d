// Tokenizer::from_gguf: reads the tokenizer.ggml.* metadata into a Vocab, with llama.cpp's
// defaults for keys a file may omit.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace kvq {
namespace {

using tokenizer_detail::Model;
using tokenizer_detail::PreTokenizer;
using tokenizer_detail::TokenType;
using tokenizer_detail::Vocab;

constexpr const char* kSupportedModels = "\"llama\" (SentencePiece), \"gpt2\" (byte-level BPE)";
constexpr const char* kSupportedPre =
    "\"gpt-2\", \"llama-bpe\" (also \"llama3\", \"llama-v3\", \"falcon3\"), \"qwen2\" (also \"deepseek-r1-qwen\"), "
    "\"deepseek-llm\"";

Result<PreTokenizer> parse_pre(const gguf::File& file, Vocab& v) {
  const gguf::Value* value = file.find("tokenizer.ggml.pre");
  if (value == nullptr || value->type != gguf::ValueType::STRING) {
    return make_error("{}: byte-level BPE vocabulary without a tokenizer.ggml.pre string; supported: {}", file.path(),
                      kSupportedPre);
  }
  const std::string& pre = value->str;
  // Flags as llama.cpp sets them per pre-tokenizer (clean_spaces is on for BPE by default).
  v.clean_spaces = true;
  if (pre == "gpt-2") return PreTokenizer::kGpt2;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "falcon3") {
    v.ignore_merges = true;
    v.add_bos = true;
    return PreTokenizer::kLlama3;
  }
  // Qwen's tokenizer.json also has an NFC normalizer. llama.cpp applies no normalization, and its
  // output is what GGUF models were checked against, so none is applied here either: decomposed
  // text ("e" + U+0301) tokenizes as written (docs/tokenizers.md).
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    v.clean_spaces = false;
    return PreTokenizer::kQwen2;
  }
  if (pre == "deepseek-llm") {
    v.clean_spaces = false;
    return PreTokenizer::kDeepseekLlm;
  }
  return make_error("{}: unsupported tokenizer.ggml.pre \"{}\"; supported: {}", file.path(), pre, kSupportedPre);
}

// Decoded text of each token for decode(): what llama.cpp's token_to_piece gives with special=false.
std::string make_piece(const Vocab& v, int32_t id) {
  const std::string& text = v.text[id];
  switch (v.type[id]) {
    case TokenType::kUserDefined:
      return text;
    case TokenType::kNormal: {
      std::string out;
      if (v.model == Model::kSentencePiece) {
        // U+2581 (e2 96 81) stands for a space.
        for (size_t i = 0; i < text.size(); ++i) {
          if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
            out += ' ';
            i += 2;
          } else {
            out += text[i];
          }
        }
        return out;
      }
      for (size_t pos = 0; pos < text.size();) {
        const uint32_t cp = unicode::decode_utf8(text, pos);
        const int byte = unicode::unicode_to_byte(cp);
        if (byte >= 0) {
          out += char(byte);
        } else {
          unicode::append_utf8(cp, out);  // not a byte-level code point: keep it as written
        }
      }
      return out;
    }
    case TokenType::kByte: {
      unsigned byte = 0;
      if (v.model == Model::kSentencePiece && std::sscanf(text.c_str(), "<0x%2X>", &byte) == 1) {
        return std::string(1, char(byte));
      }
      return text;
    }
    default:
      return "";  // control, unknown, unused, undefined
  }
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  auto v = std::make_shared<Vocab>();
  Result<std::string> model = file.get_string("tokenizer.ggml.model");
  if (!model.ok()) return model.error();
  if (*model == "llama") {
    v->model = Model::kSentencePiece;
    v->bos = 1;  // llama.cpp's SentencePiece defaults
    v->eos = 2;
    v->unk = 0;
    v->add_bos = true;
    v->add_space_prefix = true;
  } else if (*model == "gpt2") {
    v->model = Model::kBytePairEncoding;
    v->bos = 11;  // llama.cpp's byte-level BPE defaults, for files without the id keys
    v->eos = 11;
    Result<PreTokenizer> pre = parse_pre(file, *v);
    if (!pre.ok()) return pre.error();
    v->pre = *pre;
  } else {
    return make_error("{}: unsupported tokenizer.ggml.model \"{}\"; supported: {}", file.path(), *model,
                      kSupportedModels);
  }

  Result<std::vector<std::string>> tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.error();
  v->text = std::move(*tokens);
  const size_t n = v->text.size();
  if (n == 0 || n > size_t(INT32_MAX)) {
    return make_error("{}: tokenizer.ggml.tokens has {} entries", file.path(), n);
  }
  const int32_t n_vocab = int32_t(n);

  v->score.assign(n, 0.0f);
  if (file.find("tokenizer.ggml.scores") != nullptr) {
    Result<std::vector<float>> scores = file.get_float_array("tokenizer.ggml.scores");
    if (!scores.ok()) return scores.error();
    if (scores->size() != n) {
      return make_error("{}: tokenizer.ggml.scores has {} entries for {} tokens", file.path(), scores->size(), n);
    }
    v->score = std::move(*scores);
  }
  v->type.assign(n, TokenType::kNormal);
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    Result<std::vector<int64_t>> types = file.get_int_array("tokenizer.ggml.token_type");
    if (!types.ok()) return types.error();
    if (types->size() != n) {
      return make_error("{}: tokenizer.ggml.token_type has {} entries for {} tokens", file.path(), types->size(), n);
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      v->type[i] = (t >= 1 && t <= 6) ? TokenType(t) : TokenType::kUndefined;
    }
  }

  for (int32_t id = 0; id < n_vocab; ++id) {
    // An empty text would match everywhere when splitting out special tokens (llama.cpp renames too).
    if (v->text[id].empty()) v->text[id] = "[EMPTY_" + std::to_string(id) + "]";
  }
  v->token_index.build(v->text, /*last_wins=*/true);

  if (v->model == Model::kBytePairEncoding) {
    Result<std::vector<std::string>> merges = file.get_string_array("tokenizer.ggml.merges");
    if (!merges.ok()) return merges.error();
    if (merges->size() > size_t(INT32_MAX)) {
      return make_error("{}: tokenizer.ggml.merges has {} entries", file.path(), merges->size());
    }
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const std::string& merge = (*merges)[rank];
      // "left right": split at the first space after the first byte, as llama.cpp does.
      if (merge.find(' ', 1) == std::string::npos) {
        return make_error("{}: tokenizer.ggml.merges[{}] \"{}\" is not \"left right\"", file.path(), rank, merge);
      }
    }
    v->merges = std::move(*merges);
    v->merge_index.build(v->merges, /*last_wins=*/false);
  }

  KVQ_RETURN_IF_ERROR(tokenizer_detail::load_special_tokens(file, *v));

  // Byte fallback of SentencePiece: "<0xXX>", else the one-byte token, else unknown.
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    int32_t id = v->find(name);
    const char byte = char(b);
    if (id < 0) id = v->find(std::string_view(&byte, 1));
    v->byte_token[b] = id >= 0 ? id : v->unk;
  }

  // Tokens matched in the raw text before the model tokenizer runs, longest first.
  v->rstrip.assign(n, 0);
  for (int32_t id = 0; id < n_vocab; ++id) {
    const TokenType t = v->type[id];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      v->special_tokens.push_back(id);
    }
  }
  std::stable_sort(v->special_tokens.begin(), v->special_tokens.end(),
                   [&](int32_t a, int32_t b) { return v->text[a].size() > v->text[b].size(); });
  // llama.cpp's Phi-3 rule (by model name): special tokens swallow the whitespace after them,
  // except <unk>, <s> and <|endoftext|>.
  std::string name;
  if (const gguf::Value* value = file.find("general.name");
      value != nullptr && value->type == gguf::ValueType::STRING) {
    name = value->str;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  }
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (const int32_t id : v->special_tokens) v->rstrip[id] = 1;
    if (const int32_t id = v->find("</s>"); id >= 0) v->rstrip[id] = 1;
    for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (const int32_t id = v->find(text); id >= 0) v->rstrip[id] = 0;
    }
  }

  v->piece.resize(n);
  for (int32_t id = 0; id < n_vocab; ++id) v->piece[id] = make_piece(*v, id);
  return Tokenizer(std::move(v));
}

}  // namespace kvq
