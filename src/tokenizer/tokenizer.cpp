// Tokenizer::encode / decode: special-token splitting, BOS/EOS, dispatch to the model, and the
// decode-side space handling.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <bitset>
#include <cctype>

#include "tokenizer/vocab.h"

namespace kvq {

using tokenizer_detail::Model;
using tokenizer_detail::TokenType;
using tokenizer_detail::Vocab;

namespace {

// A run of text still to be tokenized, or a token already decided.
struct Fragment {
  int32_t token;  // -1 for text
  size_t offset;  // text fragments: byte range of the input
  size_t length;
};

bool is_c_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Splits the text fragments around every occurrence of each special token, longest tokens first
// (llama.cpp's tokenizer_st_partition). Without parse_special, only user-defined tokens split.
std::vector<Fragment> partition(const Vocab& v, std::string_view text, bool parse_special) {
  std::vector<Fragment> fragments;  // [n_fragments] in text order
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  // The byte pairs the text contains, made when the first token needs them. A token whose first two
  // bytes never occur together cannot occur: one bit test instead of a scan of the text, for most
  // of Gemma's 6,400 special tokens.
  std::bitset<65536> pairs;  // [first byte << 8 | second byte]
  bool pairs_made = false;
  const auto pair_occurs = [&](const std::string& needle) {
    if (!pairs_made) {
      for (size_t i = 0; i + 1 < text.size(); ++i) pairs.set(size_t(uint8_t(text[i])) << 8 | uint8_t(text[i + 1]));
      pairs_made = true;
    }
    return pairs.test(size_t(uint8_t(needle[0])) << 8 | uint8_t(needle[1]));
  };
  std::vector<Fragment> next;
  for (const int32_t id : v.special_tokens) {
    const TokenType type = v.type[id];
    if (!parse_special && (type == TokenType::kControl || type == TokenType::kUnknown)) continue;
    const std::string& needle = v.text[id];
    // Cheap rejects: most special tokens never occur.
    if (needle.size() >= 2 && !pair_occurs(needle)) continue;
    if (text.find(needle) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t start = f.offset;
      const size_t end = f.offset + f.length;
      while (start < end) {
        const size_t match = text.substr(0, end).find(needle, start);
        if (match == std::string_view::npos) break;
        if (match > start) next.push_back({-1, start, match - start});
        next.push_back({id, 0, 0});
        start = match + needle.size();
        if (v.rstrip[id]) {
          while (start < end && is_c_space(text[start])) ++start;
        }
      }
      if (start < end) next.push_back({-1, start, end - start});
    }
    fragments.swap(next);
  }
  return fragments;
}

// U+2581 for every ASCII space, as SentencePiece's whitespace escaping.
std::string escape_spaces(std::string_view text, bool prefix_space) {
  std::string out;
  out.reserve(text.size() + text.size() / 2 + 3);
  if (prefix_space) out += "\xE2\x96\x81";
  for (const char c : text) {
    if (c == ' ') {
      out += "\xE2\x96\x81";
    } else {
      out += c;
    }
  }
  return out;
}

// llama.cpp's clean_up_tokenization_spaces: " ?" " !" " ." " ," lose the space, " ' " becomes
// "'", and " 's" " 'm" " 're" " 've" lose the space.
std::string clean_spaces(const std::string& in) {
  std::string a;
  for (size_t i = 0; i < in.size(); ++i) {
    const char x = in[i];
    if (i > 0 && in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a += x;
  }
  std::string b;
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i];
    if (i > 0 && x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();  // the space before
      b += x;
      ++i;  // and the one after
      continue;
    }
    b += x;
  }
  std::string c;
  for (size_t i = 0; i < b.size(); ++i) {
    const char x = b[i];
    if (i > 0 && b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const char x2 = i + 2 < b.size() ? b[i + 2] : '\0';
      if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
        c.pop_back();
      }
    }
    c += x;
  }
  return c;
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Vocab> vocab) : vocab_(std::move(vocab)) {}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Vocab& v = *vocab_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && v.add_bos) out.push_back(v.bos);
  const std::vector<Fragment> fragments = partition(v, text, parse_special);
  bool after_special = true;  // SentencePiece prefixes a space to text that starts or follows a special token
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string_view part = text.substr(f.offset, f.length);
    if (v.model == Model::kSentencePiece) {
      tokenizer_detail::spm_encode(v, escape_spaces(part, v.add_space_prefix && after_special), out);
    } else {
      tokenizer_detail::bpe_encode(v, part, out);
    }
    after_special = false;
  }
  if (add_special && v.add_eos) out.push_back(v.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
  const Vocab& v = *vocab_;
  if (id < 0 || id >= v.n_vocab()) return "";
  if (special && (v.type[id] == TokenType::kControl || v.type[id] == TokenType::kUnknown)) {
    return v.text[id];
  }
  return v.piece[id];
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  const Vocab& v = *vocab_;
  if (!ids.empty() && v.add_bos && ids.front() == v.bos) ids = ids.subspan(1);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = token_to_piece(ids[i]);
    // The space add_space_prefix put before the first word is not part of the text.
    if (i == 0 && v.add_space_prefix && !piece.empty() && piece[0] == ' ') {
      out.append(piece, 1);
    } else {
      out += piece;
    }
  }
  return v.clean_spaces ? clean_spaces(out) : out;
}

int32_t Tokenizer::bos() const { return vocab_->bos; }
int32_t Tokenizer::eos() const { return vocab_->eos; }
bool Tokenizer::add_bos() const { return vocab_->add_bos; }
int32_t Tokenizer::n_vocab() const { return vocab_->n_vocab(); }

bool Tokenizer::is_eog(int32_t id) const {
  return std::binary_search(vocab_->eog_ids.begin(), vocab_->eog_ids.end(), id);
}

}  // namespace kvq
