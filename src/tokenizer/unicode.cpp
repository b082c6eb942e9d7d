// UTF-8 coding, category lookups and the GPT-2 byte mapping.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

#include "tokenizer/unicode_tables.h"

namespace kvq::unicode {
namespace {

bool in_ranges(uint32_t cp, const tables::CodepointRange* ranges, size_t count) {
  // First range whose last >= cp; cp is inside when that range also starts at or before it.
  const tables::CodepointRange* end = ranges + count;
  const tables::CodepointRange* it =
      std::lower_bound(ranges, end, cp, [](const tables::CodepointRange& r, uint32_t c) { return r.last < c; });
  return it != end && it->first <= cp;
}

bool is_continuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

struct ByteMapping {
  std::array<std::string, 256> to_unicode;  // [256] UTF-8 of the code point standing for each byte
  std::array<int16_t, 324> to_byte;         // [324] code point (< 0x100 + 68) -> byte, -1 if none
};

const ByteMapping& byte_mapping() {
  static const ByteMapping mapping = [] {
    ByteMapping m;
    m.to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next_extra = 0;  // bytes without a printable form get U+0100, U+0101, ... in byte order
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = printable(b) ? uint32_t(b) : uint32_t(0x100 + next_extra++);
      m.to_unicode[b].clear();
      append_utf8(cp, m.to_unicode[b]);
      m.to_byte[cp] = int16_t(b);
    }
    return m;
  }();
  return mapping;
}

}  // namespace

uint32_t decode_utf8(std::string_view text, size_t& pos) {
  const auto byte = [&](size_t i) { return uint8_t(text[i]); };
  const uint8_t lead = byte(pos);
  const size_t remaining = text.size() - pos;
  if (lead < 0x80) {
    pos += 1;
    return lead;
  }
  // Same acceptance as llama.cpp's unicode_cpt_from_utf8 (no overlong/surrogate checks), so the
  // pre-tokenizer sees the same code points it does.
  size_t length = 0;
  uint32_t cp = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    cp = lead & 0x07;
  } else {
    pos += 1;  // continuation byte or 0xF8..0xFF as a lead
    return kReplacementChar;
  }
  if (remaining < length) {
    pos += 1;
    return kReplacementChar;
  }
  for (size_t i = 1; i < length; ++i) {
    if (!is_continuation(byte(pos + i))) {
      pos += 1;
      return kReplacementChar;
    }
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  pos += length;
  return cp;
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> cps;  // [<= text.size()]
  cps.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) cps.push_back(decode_utf8(text, pos));
  return cps;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | ((cp >> 18) & 0x07));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(cp, tables::kLetterRanges, tables::kLetterRangeCount);
}

bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(cp, tables::kNumberRanges, tables::kNumberRangeCount);
}

bool is_whitespace(uint32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

const std::string& byte_to_unicode(uint8_t byte) { return byte_mapping().to_unicode[byte]; }

int unicode_to_byte(uint32_t cp) {
  const ByteMapping& m = byte_mapping();
  return cp < m.to_byte.size() ? m.to_byte[cp] : -1;
}

}  // namespace kvq::unicode
