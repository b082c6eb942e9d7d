// UTF-8 string helpers with Python's str semantics (lengths, indexes and slices count code points;
// strip/split use Python's Unicode whitespace), as template authors write Python-minded code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvq::chat {

// Byte offsets where each code point starts, plus the total size at the end: `result.size() - 1`
// code points. Invalid UTF-8 bytes count as one code point each, so nothing is ever dropped.
std::vector<size_t> code_point_offsets(std::string_view s);
size_t code_point_count(std::string_view s);

// str.strip / lstrip / rstrip: `chars` absent means whitespace.
std::string python_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split: `sep` absent splits on runs of whitespace and drops empty pieces; maxsplit < 0: no limit.
std::vector<std::string> python_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
// str.replace; count < 0: all.
std::string python_replace(std::string_view s, std::string_view old_text, std::string_view new_text, int64_t count);

// ASCII case mapping; other characters pass through unchanged.
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);
std::string python_capitalize(std::string_view s);
std::string python_title(std::string_view s);  // str.title(): a letter after a non-letter is upper
// Jinja2's `title` filter: a letter is upper only at the start or after one of - space ( { [ <.
std::string jinja_title(std::string_view s);

}  // namespace kvq::chat
