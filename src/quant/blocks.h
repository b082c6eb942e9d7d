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
  // kvq's own KV-cache formats (never in GGUF files): one scale per KV head, below.
  Q8_H = 1000,
  NL5_H = 1001,
  NL4_H = 1002,
  NL3_H = 1003,
  NL2_H = 1004,
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

// Head-scaled KV-cache formats ("_h"): the scale never spans two heads, whatever head_dim is (48, 80, 8 …).
// A token row of n_head_kv heads is n_head_kv head records, each
//   fp16_bits d;                      the head's scale
//   uint8_t codes[head_dim / 8 * b];  b-bit codes, 8 per group of b bytes, little-endian: code j of a group
//                                     is bits b*j .. b*j + b - 1 of the group's 8b-bit integer
// value = d * level[code]. q8_h: b = 8, level = code as int8 (-127..127). nl*_h: levels of the Lloyd-Max
// quantizer of a unit Gaussian (what a rotated head looks like: kv/rotation.h) scaled to int8, so that the
// scale is the head's RMS divided by kNlGaussScale[b]. head_dim must be a multiple of 8.
inline constexpr int kHeadGroup = 8;  // codes per packed group
inline constexpr int8_t kNl2Levels[4] = {-127, -38, 38, 127};
inline constexpr int8_t kNl3Levels[8] = {-127, -79, -45, -14, 14, 45, 79, 127};
inline constexpr int8_t kNl4Levels[16] = {-127, -96, -75, -58, -44, -31, -18, -6, 6, 18, 31, 44, 58, 75, 96, 127};
inline constexpr int8_t kNl5Levels[32] = {-127, -105, -90, -79, -70, -61, -54, -47, -41, -35, -29,
                                          -24,  -18,  -13, -8,  -3,  3,   8,   13,  18,  24,  29,
                                          35,   41,   47,  54,  61,  70,  79,  90,  105, 127};
// The nl*_h table of a bit width (2 .. 5).
constexpr const int8_t* nl_levels(int bits) {
  return bits == 2 ? kNl2Levels : bits == 3 ? kNl3Levels : bits == 4 ? kNl4Levels : kNl5Levels;
}
// int8 units per standard deviation of each table: level / kNlGaussScale is the Gaussian level in sigmas.
inline constexpr float kNlGaussScale[6] = {0, 0, 127 / 1.5104f, 127 / 2.1519f, 127 / 2.7326f, 127 / 3.2607f};

struct TypeTraits {
  GgmlType type;
  std::string_view name;  // as ggml and llama.cpp spell it: "q8_0", "f16", ...
  int block_size;         // values per block (1 for plain types)
  int type_size;          // bytes per block
  bool quantized;
  bool kernels;              // kvq can dequantize it (and so use it as weights)
  bool head_scaled = false;  // a "_h" KV format: block_size 8 codes of type_size bytes, plus a scale per head
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
// Of the block format alone: a "_h" type's per-head scale is not in it (kv_row_bytes counts it).
inline double bits_per_value(GgmlType type) {
  const TypeTraits& t = type_traits(type);
  return 8.0 * t.type_size / t.block_size;
}
inline bool is_head_scaled(GgmlType type) { return type_traits(type).head_scaled; }
// The code bits of a "_h" type, and its levels (nullptr for q8_h, whose level is the code itself).
inline int head_bits(GgmlType type) { return type_traits(type).type_size; }
inline const int8_t* head_levels(GgmlType type) {
  return type == GgmlType::Q8_H ? nullptr : nl_levels(head_bits(type));
}
// Bytes of one head record of a "_h" type: the scale and head_dim codes.
inline size_t head_record_bytes(GgmlType type, int head_dim) {
  return 2 + size_t(head_dim / kHeadGroup) * size_t(head_bits(type));
}
// Bytes of one KV-cache token row of n_heads heads: head records for the "_h" types, otherwise the row of
// n_heads * head_dim values zero-padded to the type's block size.
size_t kv_row_bytes(GgmlType type, int n_heads, int head_dim);

}  // namespace kvq
