// The little Unicode a tokenizer needs: lenient UTF-8 coding (as llama.cpp does it), the general
// categories letter / number and the White_Space property, and GPT-2's byte <-> unicode mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvq::unicode {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence a lead byte announces; continuation and invalid bytes count as 1.
// Tokenizers cut symbols with it, so a broken sequence never makes them read past the text.
inline size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// Decodes the code point at `pos` and advances past it. A malformed sequence (bad lead byte,
// missing continuation, truncated) yields U+FFFD and advances by one byte.
uint32_t decode_utf8(std::string_view text, size_t& pos);
std::vector<uint32_t> decode_utf8(std::string_view text);  // [n_codepoints]
void append_utf8(uint32_t cp, std::string& out);

// General category L* (Lu Ll Lt Lm Lo) and N* (Nd Nl No); Unicode 14 tables.
bool is_letter(uint32_t cp);
bool is_number(uint32_t cp);
// The White_Space property (what \s matches in Unicode-aware regex engines).
bool is_whitespace(uint32_t cp);

// GPT-2 byte-level BPE: every byte maps to a printable code point (printable Latin-1 bytes map to
// themselves, the rest to U+0100 + n). Returns the UTF-8 encoding of that code point.
const std::string& byte_to_unicode(uint8_t byte);
// Inverse mapping; -1 when the code point stands for no byte.
int unicode_to_byte(uint32_t cp);

}  // namespace kvq::unicode
