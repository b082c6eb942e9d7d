// Integer K·q on NEON with the dot product (ARM CPUs with FEAT_DotProd; attention-inl.h's AttendItemT, rows
// layout G = 1, at most 8 query rows: decode of 3-8 query heads per KV head, or 4 heads x 2 tokens). The
// query rows are rounded to 8-bit blocks of 32 (one scale per row and block) once per item; the keys' codes
// are read from the cache as they are (q8_0, q8_h), or unpacked to signed bytes in registers (q4_0: nibble
// - 8, iq4_nl: its table, nl*_h: a tbl gather of 16-bit windows, a shift per lane, then the level table),
// and `sdot` by element multiplies 4 query rows x 4 dims by 4 codes of one key:
//   acc[row quad] += Q[block][dim group g][4 rows x 4 dims] . key[4 dims of group g]
// so a key costs 8 `sdot` per 32 dims and row quad, then one convert and FMA with d_key x d_query. No key
// is decoded to f32, no horizontal sum: the scores land with rows on lanes, as the f32 path's do. Included
// once per SIMD target by attention-inl.h; the kernel exists for HWY_NEON only, and AttendItemT calls it
// where cpu_has_arm_dotprod().

#if defined(KVQ_KERNELS_ATTENTION_INT8_NEON_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_ATTENTION_INT8_NEON_INL_H_
#undef KVQ_KERNELS_ATTENTION_INT8_NEON_INL_H_
#else
#define KVQ_KERNELS_ATTENTION_INT8_NEON_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "hwy/highway.h"
#include "quant/blocks.h"

#if HWY_ARCH_ARM_A64
#include "kernels/arm_dotprod.h"
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {

#undef KVQ_NEON_INT8_SCORES
#if HWY_TARGET == HWY_NEON
#define KVQ_NEON_INT8_SCORES 1

inline constexpr int kNeonInt8MaxRows = 8;  // two row quads: 16 accumulators' worth of registers at most

inline bool NeonInt8KeyType(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::IQ4_NL || is_head_scaled(t);
}

// Quantized query rows of one KV head.
//   codes: [n_blocks, 8 dim groups, rows_pad / 4, 16] s8: 4 rows x 4 dims per 16 bytes (row-major)
//   scale: [n_blocks, rows_pad] f32 = d_query (0 for padding rows)
struct NeonInt8Queries {
  int8_t* codes;
  float* scale;
};

// Row r of the item: q (already times the softmax scale) or nullptr for a padding row (zero codes and scale).
// Per 32 dims: d = amax / 127, code = round-to-nearest-even(x / d), as the AVX-512 kernel does.
inline void QuantizeQueryRowNeon(const float* q, int r, int rows_pad, int hd, const NeonInt8Queries& out) {
  const int quads = rows_pad / 4;
  for (int b = 0; b < hd / kQK; ++b) {
    float amax = 0.0f;
    if (q != nullptr) {
      for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(q[b * kQK + j]));
    }
    const float d = amax / 127.0f, inv = d > 0.0f ? 1.0f / d : 0.0f;
    out.scale[b * rows_pad + r] = d;
    for (int j = 0; j < kQK; ++j) {
      const float x = q != nullptr ? std::clamp(q[b * kQK + j] * inv, -127.0f, 127.0f) : 0.0f;
      const int g = j / 4;
      out.codes[((size_t(b) * 8 + g) * quads + r / 4) * 16 + (r % 4) * 4 + j % 4] = int8_t(std::nearbyint(x));
    }
  }
}

// For the 32 codes of a head-scaled block (4 * kBits bytes, kBits 2 .. 5): tbl indices that put the 16-bit
// window holding dim j's code in u16 lane j % 8 of part j / 8, the right shifts (as negative left shifts)
// that bring it down, and the levels as a 32-entry table.
template <int kBits>
struct NeonNlTables {
  uint8_t gather[4][16];
  int16_t shift[4][8];
  int8_t levels[32];
  constexpr NeonNlTables() : gather(), shift(), levels() {
    for (int i = 0; i < 32; ++i) levels[i] = nl_levels(kBits)[i % (1 << kBits)];
    for (int j = 0; j < kQK; ++j) {
      const int bit = kBits * j;
      gather[j / 8][2 * (j % 8)] = uint8_t(bit / 8);
      gather[j / 8][2 * (j % 8) + 1] = uint8_t(bit / 8 + 1);
      shift[j / 8][j % 8] = int16_t(-(bit % 8));
    }
  }
};
template <int kBits>
inline constexpr NeonNlTables<kBits> kNeonNl{};

// The signed codes of value block b (dims 0-15 and 16-31) of one head of a token row, `head` pointing at the
// head's first block (q8_0, q4_0, iq4_nl) or at its record (q8_h, nl*_h); returns the scale that multiplies
// them. The head-scaled reads run up to 32 bytes past the block (kKvReadSlack).
template <GgmlType kType>
KVQ_TARGET_DOTPROD HWY_INLINE float BlockCodesNeon(const uint8_t* head, int b, int8x16_t* lo, int8x16_t* hi) {
  constexpr int kBits = attention_detail::head_code_bits(kType);
  const uint8_t* scale = head;
  if constexpr (kType == GgmlType::Q8_0) {
    const uint8_t* block = head + size_t(b) * sizeof(BlockQ8_0);
    *lo = vld1q_s8(reinterpret_cast<const int8_t*>(block + 2));
    *hi = vld1q_s8(reinterpret_cast<const int8_t*>(block + 18));
    scale = block;
  } else if constexpr (kType == GgmlType::Q4_0 || kType == GgmlType::IQ4_NL) {
    const uint8_t* block = head + size_t(b) * sizeof(BlockQ4_0);
    const uint8x16_t qs = vld1q_u8(block + 2), low = vandq_u8(qs, vdupq_n_u8(0x0F)), high = vshrq_n_u8(qs, 4);
    if constexpr (kType == GgmlType::Q4_0) {
      *lo = vsubq_s8(vreinterpretq_s8_u8(low), vdupq_n_s8(8));
      *hi = vsubq_s8(vreinterpretq_s8_u8(high), vdupq_n_s8(8));
    } else {
      const int8x16_t table = vld1q_s8(kIq4nlValues);
      *lo = vqtbl1q_s8(table, low);
      *hi = vqtbl1q_s8(table, high);
    }
    scale = block;
  } else if constexpr (kBits == 8) {  // q8_h: the codes are the levels
    *lo = vld1q_s8(reinterpret_cast<const int8_t*>(head + 2 + kQK * b));
    *hi = vld1q_s8(reinterpret_cast<const int8_t*>(head + 18 + kQK * b));
  } else {  // nl*_h: code j of the block in bits kBits * j of its 4 * kBits bytes
    const auto& t = kNeonNl<kBits>;
    const uint8_t* codes = head + 2 + 4 * kBits * b;
    const uint8x16x2_t bytes = {vld1q_u8(codes), vld1q_u8(codes + 16)};
    const uint16x8_t mask = vdupq_n_u16((1 << kBits) - 1);
    uint8x8_t code[4];
    KVQ_NEON_UNROLL4 for (int p = 0; p < 4; ++p) {
      const uint16x8_t window = vreinterpretq_u16_u8(vqtbl2q_u8(bytes, vld1q_u8(t.gather[p])));
      code[p] = vmovn_u16(vandq_u16(vshlq_u16(window, vld1q_s16(t.shift[p])), mask));
    }
    const int8x16x2_t levels = {vld1q_s8(t.levels), vld1q_s8(t.levels + 16)};
    *lo = vqtbl2q_s8(levels, vcombine_u8(code[0], code[1]));
    *hi = vqtbl2q_s8(levels, vcombine_u8(code[2], code[3]));
  }
  __fp16 d;
  std::memcpy(&d, scale, sizeof d);
  return float(d);
}

// s[t][r] = sum over blocks of d_k(t) * d_q(r) * sum(k codes * q codes) for keys t < n of the chunk (rows of
// row_bytes, the head's first block at byte `first`), 0 for t in [n, n_keys). rows_pad is 4 or 8.
template <GgmlType kType, int kQuads>
KVQ_TARGET_DOTPROD void ScoresInt8NeonT(const NeonInt8Queries& q, const uint8_t* rows, size_t row_bytes, size_t first,
                                        int n, int n_keys, int n_blocks, float* s) {
  constexpr int kRowsPad = 4 * kQuads;
  for (int t = 0; t < n; ++t) {
    const uint8_t* key = rows + size_t(t) * row_bytes + first;
    float32x4_t score[kQuads];
    for (int i = 0; i < kQuads; ++i) score[i] = vdupq_n_f32(0.0f);
    for (int b = 0; b < n_blocks; ++b) {
      int8x16_t lo, hi;
      const float d_key = BlockCodesNeon<kType>(key, b, &lo, &hi);
      const int8_t* qb = q.codes + size_t(b) * 8 * kQuads * 16;
      for (int i = 0; i < kQuads; ++i) {
        int32x4_t dot = vdupq_n_s32(0);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (0 * kQuads + i) * 16), lo, 0);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (1 * kQuads + i) * 16), lo, 1);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (2 * kQuads + i) * 16), lo, 2);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (3 * kQuads + i) * 16), lo, 3);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (4 * kQuads + i) * 16), hi, 0);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (5 * kQuads + i) * 16), hi, 1);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (6 * kQuads + i) * 16), hi, 2);
        dot = vdotq_laneq_s32(dot, vld1q_s8(qb + (7 * kQuads + i) * 16), hi, 3);
        const float32x4_t d = vmulq_n_f32(vld1q_f32(q.scale + b * kRowsPad + 4 * i), d_key);
        score[i] = vfmaq_f32(score[i], vcvtq_f32_s32(dot), d);
      }
    }
    for (int i = 0; i < kQuads; ++i) vst1q_f32(s + size_t(t) * kRowsPad + 4 * i, score[i]);
  }
  std::fill(s + size_t(n) * kRowsPad, s + size_t(n_keys) * kRowsPad, 0.0f);  // masked by the softmax
}

// Dispatch by key type and row count (4 or 8); `first` is the head's byte offset in a row.
inline void ScoresInt8Neon(GgmlType k_type, const NeonInt8Queries& q, int rows_pad, const uint8_t* rows,
                           size_t row_bytes, size_t first, int n, int n_keys, int n_blocks, float* s) {
  const auto run = [&](auto type_tag) {
    constexpr GgmlType kType = decltype(type_tag)::value;
    return rows_pad == 8 ? ScoresInt8NeonT<kType, 2>(q, rows, row_bytes, first, n, n_keys, n_blocks, s)
                         : ScoresInt8NeonT<kType, 1>(q, rows, row_bytes, first, n, n_keys, n_blocks, s);
  };
  WithTypeTag<GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::IQ4_NL, GgmlType::Q8_H, GgmlType::NL5_H, GgmlType::NL4_H,
              GgmlType::NL3_H, GgmlType::NL2_H>(k_type, run);
}

#else
#define KVQ_NEON_INT8_SCORES 0
#endif  // HWY_TARGET == HWY_NEON

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_ATTENTION_INT8_NEON_INL_H_
