// Every tensor and KV-cache element type kvq reads or writes, defined once.
// Layouts are bit-compatible with GGUF files (ggml's block formats): a row of n values is n / block_size
// consecutive blocks. Scales `d` / mins `m` are IEEE binary16 stored as raw bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kvq {

// Numeric ids as stored in GGUF tensor infos (ggml_type). Gaps are ids ggml retired.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
};

inline constexpr int kQK = 32;     // values per block of the "_0/_1/nl" formats
inline constexpr int kQK_K = 256;  // values per super-block of the k-quants and iq4_xs

using fp16_bits = uint16_t;

// value = d * (q - 8), q in 0..15; qs[j] holds values j (low nibble) and j + 16 (high nibble).
struct BlockQ4_0 {
  fp16_bits d;
  uint8_t qs[kQK / 2];
};
// value = d * q + m, q in 0..15; nibble layout as q4_0.
struct BlockQ4_1 {
  fp16_bits d;
  fp16_bits m;
  uint8_t qs[kQK / 2];
};
// value = d * (q - 16), q in 0..31; low nibbles as q4_0, bit 4 of value j is bit j of qh.
struct BlockQ5_0 {
  fp16_bits d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// value = d * q + m, q in 0..31; bit layout as q5_0.
struct BlockQ5_1 {
  fp16_bits d;
  fp16_bits m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// value = d * q, q in -127..127.
struct BlockQ8_0 {
  fp16_bits d;
  int8_t qs[kQK];
};
// q8_0 plus s = d * sum(qs): the activation format for dot products with q4_1 / q5_1.
struct BlockQ8_1 {
  fp16_bits d;
  fp16_bits s;
  int8_t qs[kQK];
};
// value = d * kIq4nlValues[q], q in 0..15; nibble layout as q4_0.
struct BlockIQ4_NL {
  fp16_bits d;
  uint8_t qs[kQK / 2];
};

// k-quants: a 256-value super-block of 16 or 8 sub-blocks with quantized scales.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // low 4 bits scale, high 4 bits min, per 16 values
  uint8_t qs[kQK_K / 4];       // 2-bit quants
  fp16_bits d;                 // super-block scale for the scales
  fp16_bits dmin;              // super-block scale for the mins
};
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];  // high bit of each 3-bit quant
  uint8_t qs[kQK_K / 4];     // low 2 bits
  uint8_t scales[12];        // 16 scales of 6 bits
  fp16_bits d;
};
struct BlockQ4_K {
  fp16_bits d;
  fp16_bits dmin;
  uint8_t scales[12];  // 8 scales and 8 mins of 6 bits
  uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
  fp16_bits d;
  fp16_bits dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // 8-bit scales per 16 values
  fp16_bits d;
};
// The activation format for k-quant dot products (f32 scale, never stored in files).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of groups of 16 quants
};
struct BlockIQ4_XS {
  fp16_bits d;
  uint16_t scales_h;             // high 2 bits of the 8 6-bit sub-block scales
  uint8_t scales_l[kQK_K / 64];  // low 4 bits of the scales
  uint8_t qs[kQK_K / 2];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_XS) == 136);

// The non-linear 4-bit codebook shared by iq4_nl and iq4_xs.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

struct TypeTraits {
  GgmlType type;
  std::string_view name;  // as ggml and llama.cpp spell it: "q8_0", "f16", ...
  int block_size;         // values per block (1 for plain types)
  int type_size;          // bytes per block
  bool quantized;
  bool kernels;  // kvq can dequantize it (and so use it as weights)
};

// Returns nullptr for ids kvq has no layout for (retired, or formats it does not implement).
const TypeTraits* find_type_traits(uint32_t id);
// For a type known to be supported; aborts otherwise (an invariant, not user input).
const TypeTraits& type_traits(GgmlType type);
std::optional<GgmlType> parse_type_name(std::string_view name);
inline std::string_view type_name(GgmlType type) { return type_traits(type).name; }

// Bytes of a row of n values; n must be a multiple of the block size.
inline size_t row_bytes(GgmlType type, int64_t n) {
  const TypeTraits& t = type_traits(type);
  return size_t(n / t.block_size) * size_t(t.type_size);
}
inline double bits_per_value(GgmlType type) {
  const TypeTraits& t = type_traits(type);
  return 8.0 * t.type_size / t.block_size;
}

}  // namespace kvq
