// Helpers shared by the scalar quantizers (quant_ref.cpp, quant_ref_k.cpp); not part of the API.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "util/half.h"

namespace kvq::quant_detail {

// Rounds to nearest, ties to even, as ggml's nearest_int: exact for |v| <= 2^22 (adding 1.5 * 2^23
// puts the integer in the low mantissa bits). Larger or non-finite v give a garbage int, never UB.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// ggml's `MIN(hi, (int8_t)v)` / `(uint8_t)v` for a code v that is in [0, hi + 1) whenever the input
// is finite and not extreme: truncation toward zero. Out-of-range and NaN v (which are UB casts in
// ggml) are clamped to [0, hi] instead, so that any input is safe under UBSan.
inline int truncate_code(float v, int hi) {
  if (!(v >= 0.0f)) return 0;  // also NaN
  if (v >= float(hi)) return hi;
  return int(v);
}

// ggml's `(int8_t)roundf(v)` for v in [-127, 127]: halves away from zero. NaN -> 0, outside ->
// clamped.
inline int round_code(float v) {
  if (!(v == v)) return 0;
  const float r = std::round(v);
  if (r >= 127.0f) return 127;
  if (r <= -127.0f) return -127;
  return int(r);
}

// ggml's best_index_int8: the index of the codebook value (sorted ascending) nearest to v, ties to
// the upper one. ggml binary-searches for the bracket val[hi - 1] <= v < val[hi]; for strictly
// increasing values hi is simply the count of entries <= v, which a branch-free loop finds ~3x
// faster (the search's branches are unpredictable, and iq4_nl's scale search calls this 500 times
// per block). NaN -> n - 1.
inline int best_index_int8(const int8_t* values, int n, float v) {
  if (v <= values[0]) return 0;
  if (v >= values[n - 1]) return n - 1;
  int hi = 0;
  for (int j = 0; j < n; ++j) hi += float(values[j]) <= v ? 1 : 0;
  if (!(v == v)) hi = n - 1;  // NaN: the binary search ends on the last bracket
  return v - float(values[hi - 1]) < float(values[hi]) - v ? hi - 1 : hi;
}

}  // namespace kvq::quant_detail
