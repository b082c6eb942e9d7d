// Integer p·v on NEON with the int8 matrix-multiply extension (FEAT_I8MM: `sudot`, s8 x u8 by element), rows
// layout (attention-inl.h's AttendItemT with G = 1, 4 or 8 query rows), for q4_0 and nl2_h / nl3_h / nl4_h
// values. The numerics are the AVX-512 kernel's (attention_pv_int8-inl.h): per chunk, value block b and row
// r, the weights w(t) = p(r, t) * |d_v(t, b)| are rounded to u8 on the row's grid W = max_t w(t) / 255, and
// sum_t u(t) * code(t) runs in int32 against the signed codes (negated where d_v < 0), so the oracle tests
// hold it to the same bound (kMaxNmseInt8Weights). Plain `sdot` (s8 x s8) would leave 7 bits for the
// weights and about 4x that error, so without i8mm (Apple M1, Graviton 2, Cortex-A7x) the f32 p·v runs.
//
// Layout per token quad and value block: the codes as [8 dim groups][4 dims x 4 tokens] s8 (a zip tree per
// 16 dims), the weights as [row quad][4 rows x 4 tokens] u8. `sudot` by element adds the quad's 4 tokens for
// 4 dims and one row: acc[group][row] += codes[group] . u[row]; 16 per row quad and 16 dims, against 64 f32
// FMAs (plus the value decode) on the f32 path. Included once per SIMD target by attention-inl.h; the kernel
// exists for HWY_NEON only, and AttendItemT calls it where cpu_has_arm_i8mm().

#if defined(KVQ_KERNELS_ATTENTION_PV_INT8_NEON_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_ATTENTION_PV_INT8_NEON_INL_H_
#undef KVQ_KERNELS_ATTENTION_PV_INT8_NEON_INL_H_
#else
#define KVQ_KERNELS_ATTENTION_PV_INT8_NEON_INL_H_
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

#undef KVQ_NEON_INT8_PV
#if HWY_TARGET == HWY_NEON
#define KVQ_NEON_INT8_PV 1

inline bool NeonInt8ValueType(GgmlType t) {
  return t == GgmlType::Q4_0 || t == GgmlType::NL2_H || t == GgmlType::NL3_H || t == GgmlType::NL4_H;
}

// Rows r[0..3] (16 dims of tokens 0..3) into out[g] = dims 4g..4g+3 x tokens 0..3 (byte 4i + k = r[k][4g + i]).
KVQ_TARGET_I8MM HWY_INLINE void TransposeQuadNeon(const int8x16_t r[4], int8_t* HWY_RESTRICT out) {
  const int16x8_t lo01 = vreinterpretq_s16_s8(vzip1q_s8(r[0], r[1])),
                  lo23 = vreinterpretq_s16_s8(vzip1q_s8(r[2], r[3]));
  const int16x8_t hi01 = vreinterpretq_s16_s8(vzip2q_s8(r[0], r[1])),
                  hi23 = vreinterpretq_s16_s8(vzip2q_s8(r[2], r[3]));
  vst1q_s8(out, vreinterpretq_s8_s16(vzip1q_s16(lo01, lo23)));
  vst1q_s8(out + 16, vreinterpretq_s8_s16(vzip2q_s16(lo01, lo23)));
  vst1q_s8(out + 32, vreinterpretq_s8_s16(vzip1q_s16(hi01, hi23)));
  vst1q_s8(out + 48, vreinterpretq_s8_s16(vzip2q_s16(hi01, hi23)));
}

// acc [4 kQuads, n_blocks * 32] f32 += sum_t p(r, t) * v(t) for tokens 0 .. n - 1 of the chunk (rows of
// row_bytes, the head's first block or record at byte `first`), p(r, t) = s[t * 4 kQuads + r], which holds
// zeros for t >= n up to a multiple of 4.
template <GgmlType kType, int kQuads>
KVQ_TARGET_I8MM void AccumulatePVInt8NeonT(const uint8_t* rows, size_t row_bytes, size_t first, int n, int n_blocks,
                                           const float* HWY_RESTRICT s, float* HWY_RESTRICT acc) {
  constexpr int kRows = 4 * kQuads;
  constexpr int kMaxQuads = attention_detail::kChunk / 4;
  const int n_quads = (n + 3) / 4;
  const size_t hd = size_t(n_blocks) * kQK;
  alignas(16) int8_t codes[kMaxQuads][8][16];    // [token quad][dim group][4 dims x 4 tokens]
  alignas(16) uint8_t u[kMaxQuads][kQuads][16];  // [token quad][row quad][4 rows x 4 tokens]
  alignas(16) float scale[kMaxQuads * 4];        // |d_v(t, b)|, 0 for t >= n
  static constexpr uint8_t kRowMajor[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
  const uint8x16_t row_major = vld1q_u8(kRowMajor);  // [token][row] bytes -> [row][token]
  for (int b = 0; b < n_blocks; ++b) {
    for (int q = 0; q < n_quads; ++q) {
      int8x16_t lo[4], hi[4];
      KVQ_NEON_UNROLL4 for (int k = 0; k < 4; ++k) {
        const int t = 4 * q + k;  // padding tokens repeat the last one: their weights are 0
        const float d = BlockCodesNeon<kType>(rows + size_t(std::min(t, n - 1)) * row_bytes + first, b, &lo[k], &hi[k]);
        scale[t] = t < n ? std::fabs(d) : 0.0f;
        if (d < 0.0f) lo[k] = vnegq_s8(lo[k]), hi[k] = vnegq_s8(hi[k]);  // the sign goes to the codes
      }
      TransposeQuadNeon(lo, codes[q][0]);
      TransposeQuadNeon(hi, codes[q][4]);
    }
    // Each row's largest weight, then the weights on its grid, rounded to nearest even as on x86.
    float32x4_t wmax[kQuads], to_u8[kQuads];
    for (int i = 0; i < kQuads; ++i) wmax[i] = vdupq_n_f32(0.0f);
    for (int t = 0; t < 4 * n_quads; ++t) {
      for (int i = 0; i < kQuads; ++i)
        wmax[i] = vmaxq_f32(wmax[i], vmulq_n_f32(vld1q_f32(s + t * kRows + 4 * i), scale[t]));
    }
    for (int i = 0; i < kQuads; ++i) {
      const uint32x4_t live = vcgtq_f32(wmax[i], vdupq_n_f32(0.0f));
      to_u8[i] = vbslq_f32(live, vdivq_f32(vdupq_n_f32(255.0f), wmax[i]), vdupq_n_f32(0.0f));
    }
    for (int q = 0; q < n_quads; ++q) {
      for (int i = 0; i < kQuads; ++i) {
        uint16x4_t c[4];
        KVQ_NEON_UNROLL4 for (int k = 0; k < 4; ++k) {
          const int t = 4 * q + k;
          c[k] =
              vmovn_u32(vcvtnq_u32_f32(vmulq_f32(vmulq_n_f32(vld1q_f32(s + t * kRows + 4 * i), scale[t]), to_u8[i])));
        }
        const uint8x16_t by_token =
            vcombine_u8(vmovn_u16(vcombine_u16(c[0], c[1])), vmovn_u16(vcombine_u16(c[2], c[3])));
        vst1q_u8(u[q][i], vqtbl1q_u8(by_token, row_major));
      }
    }
    for (int i = 0; i < kQuads; ++i) {
      for (int half = 0; half < 2; ++half) {
        int32x4_t sum[4][4];  // [dim group of the half][row of the quad]: 4 dims, in registers once unrolled
        KVQ_NEON_UNROLL4 for (int g = 0; g < 4; ++g) {
          KVQ_NEON_UNROLL4 for (int r = 0; r < 4; ++r) sum[g][r] = vdupq_n_s32(0);
        }
        for (int q = 0; q < n_quads; ++q) {
          const uint8x16_t w = vld1q_u8(u[q][i]);
          KVQ_NEON_UNROLL4 for (int g = 0; g < 4; ++g) {
            const int8x16_t c = vld1q_s8(codes[q][4 * half + g]);
            sum[g][0] = vsudotq_laneq_s32(sum[g][0], c, w, 0);
            sum[g][1] = vsudotq_laneq_s32(sum[g][1], c, w, 1);
            sum[g][2] = vsudotq_laneq_s32(sum[g][2], c, w, 2);
            sum[g][3] = vsudotq_laneq_s32(sum[g][3], c, w, 3);
          }
        }
        alignas(16) float grid[4];  // W of each row: a u8 step in weight units
        vst1q_f32(grid, vdivq_f32(wmax[i], vdupq_n_f32(255.0f)));
        KVQ_NEON_UNROLL4 for (int r = 0; r < 4; ++r) {
          float* out = acc + size_t(4 * i + r) * hd + size_t(b) * kQK + 16 * half;
          KVQ_NEON_UNROLL4 for (int g = 0; g < 4; ++g) {
            vst1q_f32(out + 4 * g, vfmaq_n_f32(vld1q_f32(out + 4 * g), vcvtq_f32_s32(sum[g][r]), grid[r]));
          }
        }
      }
    }
  }
}

// Dispatch by value type and row count (4 or 8); `first` is the head's byte offset in a row.
inline void AccumulatePVInt8Neon(GgmlType v_type, int rows_pad, const uint8_t* rows, size_t row_bytes, size_t first,
                                 int n, int n_blocks, const float* s, float* acc) {
  const auto run = [&](auto type_tag) {
    constexpr GgmlType kType = decltype(type_tag)::value;
    return rows_pad == 8 ? AccumulatePVInt8NeonT<kType, 2>(rows, row_bytes, first, n, n_blocks, s, acc)
                         : AccumulatePVInt8NeonT<kType, 1>(rows, row_bytes, first, n, n_blocks, s, acc);
  };
  WithTypeTag<GgmlType::Q4_0, GgmlType::NL2_H, GgmlType::NL3_H, GgmlType::NL4_H>(v_type, run);
}

#else
#define KVQ_NEON_INT8_PV 0
#endif  // HWY_TARGET == HWY_NEON

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_ATTENTION_PV_INT8_NEON_INL_H_
