// UTF-8 helpers with Python str semantics; see text.h.
#include "chat/text.h"

#include <algorithm>

namespace kvq::chat {

namespace {

// Length of the UTF-8 sequence starting at s[i], or 1 for a byte that does not start a valid one.
size_t sequence_length(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}

uint32_t decode_at(std::string_view s, size_t i, size_t n) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (n == 1) return c;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

// Python's str.isspace() code points.
bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Splits `s` into code points as (offset, length) pairs.
std::vector<std::pair<size_t, size_t>> code_points(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = sequence_length(s, i);
    out.emplace_back(i, n);
    i += n;
  }
  return out;
}

}  // namespace

std::vector<size_t> code_point_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); i += sequence_length(s, i)) offsets.push_back(i);
  offsets.push_back(s.size());
  return offsets;
}

size_t code_point_count(std::string_view s) {
  size_t count = 0;
  for (size_t i = 0; i < s.size(); i += sequence_length(s, i)) ++count;
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
    if (!chars) return is_python_space(decode_at(s, off, len));
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
  auto space_at = [&](size_t i) { return is_python_space(decode_at(s, cps[i].first, cps[i].second)); };
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
