// Fused decode kernels (n_tokens = 1) for q4_0 and q8_0 weights on x86 AVX2 / AVX-512 targets: each
// 32-value block is unpacked in registers and dotted with the 8-bit activations at once, with no panel
// round trip. Decode streams every weight once, so the cost per block must stay below the time memory
// takes to deliver it (~0.2 cycles per weight per core here): this is ~12 ops per 32 weights, against
// ~25 for decode-to-panel + panel kernel (measured, cache-resident q4_0 2048x2048, 1 thread, CPU time:
// 420 -> 224 us, i.e. 5.6 -> 10.5 GB/s per core, above what memory delivers to one core).
// Included by matmul_int.cpp inside its HWY_NAMESPACE; other targets use the panel path.

#if defined(KVQ_KERNELS_MATMUL_GEMV_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_MATMUL_GEMV_INL_H_
#undef KVQ_KERNELS_MATMUL_GEMV_INL_H_
#else
#define KVQ_KERNELS_MATMUL_GEMV_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "kernels/matmul_internal.h"
#include "quant/blocks.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace matmul_gemv {

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string lacks avx512vnni (see matmul_int.cpp).
#define KVQ_GEMV_TARGET __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define KVQ_GEMV_TARGET
#endif

// u8 x s8 dot product of 32 values -> 8 int32 lanes of 4 products each.
KVQ_GEMV_TARGET HWY_INLINE __m256i DotU8S8(__m256i u, __m256i s) {
#if HWY_TARGET == HWY_AVX3_DL
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  // Pair sums fit int16: codes here are <= 15 (q4_0) or |w| <= 128 against |x| <= 127.
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

HWY_INLINE float HorizontalSum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

HWY_INLINE float BlockScale(const uint8_t* block) {
  uint16_t bits;
  std::memcpy(&bits, block, 2);  // d is the first field of both block types
  return _cvtsh_ss(bits);
}

// out[r] = dot(row r, token) for R rows of q4_0 or q8_0 blocks; `a` holds the one token.
template <int R, GgmlType kType>
KVQ_GEMV_TARGET void GemvRows(const uint8_t* const (&rows)[4], const matmul_detail::QuantizedActs& a, float (&out)[4]) {
  static_assert(kType == GgmlType::Q4_0 || kType == GgmlType::Q8_0);
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  constexpr int64_t kPrefetchBytes = 512;
  const int64_t nb = a.n_in / kQK;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc[R];
  float offset_term[R];  // q4_0: sum over blocks of d_w * (activation scale * sum of codes)
  KVQ_UNROLL for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    offset_term[r] = 0.0f;
  }
  for (int64_t b = 0; b < nb; ++b) {
    if ((b & 3) == 0) {
      // Software prefetch 512 bytes ahead on every row stream: TinyLlama-shaped q4_0 decode went from
      // 15.1 to 21.5 tok/s with it (1 KiB: 16 tok/s; measured with `kvq bench -p 0 -n 64`, 2 threads).
      KVQ_UNROLL for (int r = 0; r < R; ++r) {
        const char* ahead = reinterpret_cast<const char*>(rows[r] + kBlockBytes * size_t(b)) + kPrefetchBytes;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
        if constexpr (kType == GgmlType::Q8_0) _mm_prefetch(ahead + 128, _MM_HINT_T0);
      }
    }
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + kQK * b));
    const float dx = a.scale[kQK / 4 * b];
    const float sum_x = a.sum16[2 * b] + a.sum16[2 * b + 1];
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + kBlockBytes * size_t(b);
      const float dw = BlockScale(block);
      __m256i dot;
      if constexpr (kType == GgmlType::Q4_0) {
        // [16 low nibbles = values 0..15, 16 high nibbles = values 16..31] as unsigned codes 0..15.
        const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
        const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(qs), _mm_srli_epi16(qs, 4), 1);
        dot = DotU8S8(_mm256_and_si256(both, low4), x);
        offset_term[r] += dw * sum_x;
      } else {
        // Signed codes: |w| x sign(x, w) keeps the unsigned operand unsigned.
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
        dot = DotU8S8(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * dx), acc[r]);
    }
  }
  KVQ_UNROLL for (int r = 0; r < R; ++r) {
    // q4_0 value = d * (code - 8): the offset costs 8 * d * sum(x) per block.
    out[r] = HorizontalSum(acc[r]) - (kType == GgmlType::Q4_0 ? 8.0f * offset_term[r] : 0.0f);
  }
}

template <GgmlType kType>
void GemvAllRows(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t r0, int64_t r1, float* y) {
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  for (int64_t r = r0; r < r1; r += 4) {
    const int64_t nr = r1 - r < 4 ? r1 - r : 4;
    const uint8_t* rows[4];
    for (int64_t i = 0; i < 4; ++i) rows[i] = w.data + size_t(r + (i < nr ? i : 0)) * w_row_bytes;
    float out[4];
    if (nr == 4) {
      GemvRows<4, kType>(rows, a, out);
    } else {
      for (int64_t i = 0; i < nr; ++i) {  // the last 1..3 rows, one at a time
        const uint8_t* one[4] = {rows[i], rows[i], rows[i], rows[i]};
        float o[4];
        GemvRows<1, kType>(one, a, o);
        out[i] = o[0];
      }
    }
    for (int64_t i = 0; i < nr; ++i) y[r + i] = out[i];
  }
}

// Returns false when the type has no fused kernel (the caller then uses the panel path).
inline bool FusedGemv(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t r0, int64_t r1, float* y) {
  if (w.type == GgmlType::Q4_0) {
    GemvAllRows<GgmlType::Q4_0>(w, a, r0, r1, y);
    return true;
  }
  if (w.type == GgmlType::Q8_0) {
    GemvAllRows<GgmlType::Q8_0>(w, a, r0, r1, y);
    return true;
  }
  return false;
}

#undef KVQ_GEMV_TARGET
#else
inline bool FusedGemv(const WeightMatrix&, const matmul_detail::QuantizedActs&, int64_t, int64_t, float*) {
  return false;
}
#endif

}  // namespace matmul_gemv
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_MATMUL_GEMV_INL_H_
