// Pre-tokenizer matchers. Each splitter returns word lengths in code points; the regex alternatives
// are tried in order at each position, exactly as a backtracking regex engine would.
#include "tokenizer/pretokenize.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace kvq::tokenizer_detail {
namespace {

using unicode::is_letter;
using unicode::is_number;
using unicode::is_whitespace;

using Codepoints = std::vector<uint32_t>;  // [n] the text as code points

bool is_other(uint32_t cp) { return !is_whitespace(cp) && !is_letter(cp) && !is_number(cp); }
bool is_newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }
uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// 's 't 're 've 'm 'll 'd at `pos`: length matched, 0 if none.
size_t match_contraction(const Codepoints& c, size_t pos, bool ignore_case) {
  if (c[pos] != '\'' || pos + 1 >= c.size()) return 0;
  auto at = [&](size_t i) { return ignore_case ? ascii_lower(c[i]) : c[i]; };
  const uint32_t c1 = at(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= c.size()) return 0;
  const uint32_t c2 = at(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

template <typename Pred>
size_t run_length(const Codepoints& c, size_t pos, Pred pred) {
  size_t end = pos;
  while (end < c.size() && pred(c[end])) ++end;
  return end - pos;
}

// \s+(?!\S) falling back to \s+: a whitespace run keeps its last character for the next word
// unless the run ends the text.
size_t match_whitespace(const Codepoints& c, size_t pos) {
  const size_t run = run_length(c, pos, is_whitespace);
  if (run > 1 && pos + run < c.size()) return run - 1;
  return run;
}

// One word starting at `pos` under the GPT-2 pattern.
size_t match_gpt2(const Codepoints& c, size_t pos) {
  if (const size_t n = match_contraction(c, pos, /*ignore_case=*/false)) return n;
  // " ?X+" for X in letters, numbers, others: an optional ASCII space, then a run of one class.
  const size_t space = (c[pos] == ' ' && pos + 1 < c.size()) ? 1 : 0;
  for (auto pred : {is_letter, is_number, is_other}) {
    if (pred(c[pos])) return run_length(c, pos, pred);
    if (space && pred(c[pos + 1])) return 1 + run_length(c, pos + 1, pred);
  }
  return match_whitespace(c, pos);
}

// One word starting at `pos` under the Llama 3 pattern, or Qwen2's when `max_digits` is 1: the two
// regexes differ only in \p{N}{1,3} against \p{N}, which makes Qwen see every digit as a word.
size_t match_llama3_family(const Codepoints& c, size_t pos, size_t max_digits) {
  if (const size_t n = match_contraction(c, pos, /*ignore_case=*/true)) return n;
  const uint32_t cp = c[pos];
  const bool has_next = pos + 1 < c.size();
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (is_letter(cp)) return run_length(c, pos, is_letter);
  if (!is_newline(cp) && !is_number(cp) && has_next && is_letter(c[pos + 1])) {
    return 1 + run_length(c, pos + 1, is_letter);
  }
  // \p{N}{1,3} (Llama 3) or \p{N} (Qwen2)
  if (is_number(cp)) return std::min(max_digits, run_length(c, pos, is_number));
  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
  const size_t space = (cp == ' ' && has_next && is_other(c[pos + 1])) ? 1 : 0;
  if (space || is_other(cp)) {
    size_t n = space + run_length(c, pos + space, is_other);
    return n + run_length(c, pos + n, is_newline);
  }
  // \s*[\r\n]+ : the whitespace run up to and including its last newline.
  const size_t run = run_length(c, pos, is_whitespace);
  for (size_t n = run; n > 0; --n) {
    if (is_newline(c[pos + n - 1])) return n;
  }
  return match_whitespace(c, pos);
}

size_t match_llama3(const Codepoints& c, size_t pos) { return match_llama3_family(c, pos, 3); }
size_t match_qwen2(const Codepoints& c, size_t pos) { return match_llama3_family(c, pos, 1); }

template <typename Matcher>
std::vector<size_t> split_alternation(const Codepoints& c, Matcher match) {
  std::vector<size_t> lengths;  // [n_words] in code points
  for (size_t pos = 0; pos < c.size();) {
    const size_t n = match(c, pos);
    lengths.push_back(n);
    pos += n;
  }
  return lengths;
}

// ---- DeepSeek LLM: a sequence of "isolate every match" splits. ----

struct Range {
  uint32_t first, last;
};

// The character classes of DeepSeek LLM's regexes 2, 3 and 5 (its tokenizer.json), written as
// code points: several of them (U+1F7D, U+1FBE, U+2126, U+212A, ...) have canonical equivalents
// that a text editor's normalization would silently change in a literal.
const Range kDeepseekLetters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},       {0xD8, 0xF6},
    {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},     {0x295, 0x2AF},     {0x370, 0x373},
    {0x376, 0x377},     {0x37B, 0x37D},     {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},
    {0x38C, 0x38C},     {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},   {0x2102, 0x2102},   {0x2107, 0x2107},
    {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},
    {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},   {0xA680, 0xA69B},   {0xA722, 0xA76F},
    {0xA771, 0xA787},   {0xA78B, 0xA78E},   {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
const Range kDeepseekPunctuation[] = {
    // !-/ :-~ ！-／ ：-～ ‘-‟ 　-。
    {0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
};
const Range kDeepseekCjk[] = {
    // 一-龥 ࠀ-一 가-퟿
    {0x4E00, 0x9FA5},
    {0x800, 0x4E00},
    {0xAC00, 0xD7FF},
};

// Class membership as std::wregex sees it in llama.cpp: non-ASCII whitespace was replaced by \v
// first, so whitespace never matches a class (U+3000 is in the punctuation class, but not here).
template <size_t N>
bool in_class(const Range (&ranges)[N], uint32_t cp) {
  if (is_whitespace(cp)) return false;
  for (const Range& r : ranges) {
    if (cp >= r.first && cp <= r.last) return true;
  }
  return false;
}

// \s?[class]+ at pos.
template <size_t N>
size_t match_space_class(const Codepoints& c, size_t pos, size_t end, const Range (&cls)[N]) {
  size_t n = (is_whitespace(c[pos]) && pos + 1 < end && in_class(cls, c[pos + 1])) ? 1 : 0;
  if (!in_class(cls, c[pos + n])) return 0;
  while (pos + n < end && in_class(cls, c[pos + n])) ++n;
  return n;
}

// Re-splits every piece: each match of `match` (leftmost first) and each gap becomes a piece.
template <typename Matcher>
std::vector<size_t> isolate_matches(const Codepoints& c, const std::vector<size_t>& pieces, Matcher match) {
  std::vector<size_t> out;  // [n_pieces'] in code points
  out.reserve(pieces.size());
  size_t start = 0;
  for (const size_t length : pieces) {
    const size_t end = start + length;
    size_t gap = start;
    for (size_t pos = start; pos < end;) {
      const size_t n = match(c, pos, end);
      if (n == 0) {
        ++pos;
        continue;
      }
      if (pos > gap) out.push_back(pos - gap);
      out.push_back(n);
      pos += n;
      gap = pos;
    }
    if (end > gap) out.push_back(end - gap);
    start = end;
  }
  return out;
}

std::vector<size_t> split_deepseek_llm(const Codepoints& c) {
  std::vector<size_t> pieces{c.size()};
  // 1. [\r\n]
  pieces = isolate_matches(
      c, pieces, [](const Codepoints& t, size_t pos, size_t) { return is_newline(t[pos]) ? size_t(1) : size_t(0); });
  // 2. \s?[letters]+   3. \s?[punctuation]+
  pieces = isolate_matches(c, pieces, [](const Codepoints& t, size_t pos, size_t end) {
    return match_space_class(t, pos, end, kDeepseekLetters);
  });
  pieces = isolate_matches(c, pieces, [](const Codepoints& t, size_t pos, size_t end) {
    return match_space_class(t, pos, end, kDeepseekPunctuation);
  });
  // 4. \s+$ : the whitespace run ending the piece ($ is the end of the piece being searched).
  {
    std::vector<size_t> out;
    size_t start = 0;
    for (const size_t length : pieces) {
      const size_t end = start + length;
      size_t tail = end;
      while (tail > start && is_whitespace(c[tail - 1])) --tail;
      if (tail > start) out.push_back(tail - start);
      if (end > tail) out.push_back(end - tail);
      start = end;
    }
    pieces = std::move(out);
  }
  // 5. [CJK]+   6. \p{N}+
  pieces = isolate_matches(c, pieces, [](const Codepoints& t, size_t pos, size_t end) {
    size_t n = 0;
    while (pos + n < end && in_class(kDeepseekCjk, t[pos + n])) ++n;
    return n;
  });
  pieces = isolate_matches(c, pieces, [](const Codepoints& t, size_t pos, size_t end) {
    size_t n = 0;
    while (pos + n < end && is_number(t[pos + n])) ++n;
    return n;
  });
  return pieces;
}

}  // namespace

std::vector<std::string> pre_tokenize(PreTokenizer kind, std::string_view text) {
  const Codepoints cps = unicode::decode_utf8(text);
  std::vector<size_t> lengths;  // [n_words] in code points
  switch (kind) {
    case PreTokenizer::kGpt2:
      lengths = split_alternation(cps, match_gpt2);
      break;
    case PreTokenizer::kLlama3:
      lengths = split_alternation(cps, match_llama3);
      break;
    case PreTokenizer::kQwen2:
      lengths = split_alternation(cps, match_qwen2);
      break;
    case PreTokenizer::kDeepseekLlm:
      lengths = split_deepseek_llm(cps);
      break;
  }
  std::vector<std::string> words;
  words.reserve(lengths.size());
  size_t pos = 0;
  for (const size_t n : lengths) {
    std::string& word = words.emplace_back();
    for (size_t i = pos; i < pos + n; ++i) unicode::append_utf8(cps[i], word);
    pos += n;
  }
  return words;
}

}  // namespace kvq::tokenizer_detail
