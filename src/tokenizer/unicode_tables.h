// Range tables behind unicode::is_letter / is_number (generated data, see unicode_tables.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvq::unicode::tables {

struct CodepointRange {
  uint32_t first;
  uint32_t last;  // inclusive
};

extern const CodepointRange kLetterRanges[];
extern const size_t kLetterRangeCount;
extern const CodepointRange kNumberRanges[];
extern const size_t kNumberRangeCount;

}  // namespace kvq::unicode::tables
