// Scalar IEEE binary16 and bfloat16 conversions (the reference; SIMD code uses Highway's).
#pragma once

#include <cstdint>
#include <cstring>

namespace kvq {

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// Exact: every binary16 value is representable in binary32.
inline float fp16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mantissa << 13));  // inf / nan
  if (exponent != 0) return bits_to_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return bits_to_f32(sign);
  // Subnormal: value = mantissa * 2^-24.
  const float magnitude = float(mantissa) * (1.0f / 16777216.0f);
  return sign ? -magnitude : magnitude;
}

// Round to nearest even, overflow to inf, NaN preserved (same results as the F16C instruction).
inline uint16_t f32_to_fp16(float f) {
  const uint32_t bits = f32_to_bits(f);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return uint16_t(sign | 0x7e00 | ((abs_bits >> 13) & 0x3ff));  // nan
  if (abs_bits >= 0x477ff000u) return uint16_t(sign | 0x7c00);                              // rounds to >= 65520: inf
  if (abs_bits < 0x38800000u) {
    // Result is subnormal or zero: value / 2^-24 rounded to nearest even.
    if (abs_bits < 0x33000000u) return sign;  // < 2^-25 rounds to 0
    const uint32_t exponent = abs_bits >> 23;
    const uint32_t mantissa = (abs_bits & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - exponent;  // 14..24
    uint32_t result = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (result & 1))) result++;
    return uint16_t(sign | result);
  }
  uint32_t result = ((abs_bits - 0x38000000u) >> 13);
  const uint32_t remainder = abs_bits & 0x1fff;
  if (remainder > 0x1000 || (remainder == 0x1000 && (result & 1))) result++;
  return uint16_t(sign | result);
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

// Round to nearest even; NaN stays NaN (quiet), as ggml does.
inline uint16_t f32_to_bf16(float f) {
  const uint32_t bits = f32_to_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 64);
  return uint16_t((bits + (0x7fff + ((bits >> 16) & 1))) >> 16);
}

}  // namespace kvq
