// UTF-8 helpers with Python str semantics; see text.h.
#include "chat/text.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace kvq::chat {

namespace {

// The code point at s[pos], advancing pos: the tokenizer's lenient decoder, where a malformed
// byte is a code point of its own (U+FFFD), so no byte is ever dropped or skipped.
uint32_t next_code_point(std::string_view s, size_t& pos) { return unicode::decode_utf8(s, pos); }

// Python's str.isspace(): the White_Space property plus the separators U+001C..U+001F.
bool is_python_space(uint32_t cp) { return unicode::is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

// (offset, length) of each code point of `s`.
std::vector<std::pair<size_t, size_t>> code_points(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t pos = 0; pos < s.size();) {
    const size_t start = pos;
    next_code_point(s, pos);
    out.emplace_back(start, pos - start);
  }
  return out;
}

uint32_t decode_at(std::string_view s, size_t offset) { return next_code_point(s, offset); }

}  // namespace

std::vector<size_t> code_point_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t pos = 0; pos < s.size(); next_code_point(s, pos)) offsets.push_back(pos);
  offsets.push_back(s.size());
  return offsets;
}

size_t code_point_count(std::string_view s) {
  size_t count = 0;
  for (size_t pos = 0; pos < s.size(); next_code_point(s, pos)) ++count;
  return count;
}

std::string python_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const auto cps = code_points(s);
  // A code point is stripped when it is whitespace (no `chars`) or one of the code points of `chars`.
  std::vector<std::string_view> strip_set;
  if (chars) {
    for (const auto& [off, len] : code_points(*chars)) strip_set.push_back(std::string_view(*chars).substr(off, len));
  }
  auto strippable = [&](size_t k) {
    const auto [off, len] = cps[k];
    if (!chars) return is_python_space(decode_at(s, off));
    return std::find(strip_set.begin(), strip_set.end(), s.substr(off, len)) != strip_set.end();
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (left) {
    while (begin < end && strippable(begin)) ++begin;
  }
  if (right) {
    while (end > begin && strippable(end - 1)) --end;
  }
  if (begin == end) return {};
  const size_t first = cps[begin].first;
  const size_t last = cps[end - 1].first + cps[end - 1].second;
  return std::string(s.substr(first, last - first));
}

std::vector<std::string> python_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || int64_t(parts.size()) < maxsplit) {
      const size_t hit = s.find(*sep, start);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(start, hit - start));
      start = hit + sep->size();
    }
    parts.emplace_back(s.substr(start));
    return parts;
  }
  const auto cps = code_points(s);
  size_t k = 0;
  auto space_at = [&](size_t i) { return is_python_space(decode_at(s, cps[i].first)); };
  while (k < cps.size()) {
    while (k < cps.size() && space_at(k)) ++k;
    if (k == cps.size()) break;
    if (maxsplit >= 0 && int64_t(parts.size()) == maxsplit) {
      parts.emplace_back(s.substr(cps[k].first));  // the rest, trailing whitespace included
      break;
    }
    const size_t start = k;
    while (k < cps.size() && !space_at(k)) ++k;
    const size_t end = k < cps.size() ? cps[k].first : s.size();
    parts.emplace_back(s.substr(cps[start].first, end - cps[start].first));
  }
  return parts;
}

std::string python_replace(std::string_view s, std::string_view old_text, std::string_view new_text, int64_t count) {
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new` before every code point and at the end.
    const auto cps = code_points(s);
    int64_t done = 0;
    for (const auto& [off, len] : cps) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      out += s.substr(off, len);
    }
    if (count < 0 || done < count) out += new_text;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t hit = s.find(old_text, start);
    if (hit == std::string_view::npos) break;
    out += s.substr(start, hit - start);
    out += new_text;
    start = hit + old_text.size();
    ++done;
  }
  out += s.substr(start);
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  }
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return out;
}

std::string python_capitalize(std::string_view s) {
  std::string out = ascii_lower(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = char(out[0] - 'a' + 'A');
  return out;
}

std::string python_title(std::string_view s) {
  std::string out(s);
  bool previous_is_letter = false;
  for (char& c : out) {
    const bool lower = c >= 'a' && c <= 'z';
    const bool upper = c >= 'A' && c <= 'Z';
    if (lower && !previous_is_letter) c = char(c - 'a' + 'A');
    if (upper && previous_is_letter) c = char(c - 'A' + 'a');
    previous_is_letter = lower || upper;
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  std::string out(s);
  bool word_start = true;
  for (char& c : out) {
    const bool separator = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' || c == '\t' ||
                           c == '\n' || c == '\r' || c == '\v' || c == '\f';
    if (separator) {
      word_start = true;
      continue;
    }
    if (word_start && c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    if (!word_start && c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    word_start = false;
  }
  return out;
}

}  // namespace kvq::chat
