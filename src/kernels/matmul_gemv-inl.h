// Fused decode kernels (1 token, or up to kMaxGemvTokens of batched decode): q4_0, q8_0, q4_K and q6_K
// weights on x86 AVX2 / AVX-512 targets (q4_K / q6_K: matmul_gemv_k-inl.h). Each block is unpacked in
// registers and dotted with the 8-bit activations at once, with no panel round trip. Decode streams every weight once,
// so the cost per block must stay below the time memory takes to deliver it, with room to spare: a core that computes
// for most of that time no longer keeps enough reads in flight. 256-bit kernel: ~12 ops per 32 weights,
// against ~25 for decode-to-panel + panel kernel. q4_0 on AVX-512 VNNI + GFNI: ~8.5 ops per 96 weights
// (Q4TripleStep). Measured with `OMP_NUM_THREADS=1 matmul_bench --benchmark_filter=gemv_warm/q4_0/512x2048`
// (0.59 MB, L2-resident): 256-bit kernel 53 us, two blocks per 512-bit step with vpermb 41 us, triple
// kernel 30 us (18 GB/s). TinyLlama-shaped q4_K / q6_K projections (`matmul_bench
// --benchmark_filter=tinyllama_projections/tg1`, 2 threads): panel path 7.6 / 9.3 GB/s, these kernels
// 16.9-17.2 / 18-19.5 GB/s (q4_0: 18.4-18.7 in the same runs).
// Included by matmul_int.cpp inside its HWY_NAMESPACE. NEON with the dot product: q4_0 and q8_0 in
// matmul_gemv_neon-inl.h; other targets use the panel path.

#if defined(KVQ_KERNELS_MATMUL_GEMV_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_MATMUL_GEMV_INL_H_
#undef KVQ_KERNELS_MATMUL_GEMV_INL_H_
#else
#define KVQ_KERNELS_MATMUL_GEMV_INL_H_
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "hwy/highway.h"
#include "kernels/matmul_internal.h"
#include "quant/blocks.h"
#include "util/system.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif
#if HWY_ARCH_ARM_A64
#include "kernels/arm_dotprod.h"
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace matmul_gemv {

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string lacks avx512vnni (see matmul_int.cpp).
#define KVQ_GEMV_TARGET __attribute__((target(HWY_TARGET_STR ",avx512vnni,gfni")))  // GFNI: checked at run time
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

// Software prefetch of kLines cache lines 512 bytes past `block` (the distance every decode kernel here
// measured best): the k-quant kernels issue it once per block and row stream.
template <int kLines>
HWY_INLINE void PrefetchAhead(const uint8_t* block) {
  const char* ahead = reinterpret_cast<const char*>(block) + 512;
  KVQ_UNROLL for (int i = 0; i < kLines; ++i) _mm_prefetch(ahead + 64 * i, _MM_HINT_T0);
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

#if HWY_TARGET == HWY_AVX3_DL
KVQ_GEMV_TARGET HWY_INLINE float HorizontalSum(__m512 v) {
  return HorizontalSum(_mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1)));
}

// q4_0 on AVX-512 VNNI + GFNI: three raw blocks (96 values, 54 bytes) of 4 rows per step, dotted in place
// against activations laid out to match (matmul_detail::Q4Triple), so no byte shuffle is needed. Per row
// and step: vpand keeps the low nibbles, gf2p8affineqb moves the high ones down, two vpdpbusd (their
// accumulator starts at q4_0's offset, -8 x the codes), one int -> float and one FMA whose per-lane
// scale is picked (vpermps) from the 12 products dw x dx of the 4 rows, gathered (vpermt2w), converted
// and multiplied once per step. ~8.5 vector ops per 96 values and row, against ~12 per 32 for the
// 256-bit kernel above, which ran at ~1.7 ns per block per row in cache: too slow to keep up with memory.
// GCC 12's plain forms of these intrinsics pass undefined vectors that its -Wuninitialized flags after
// inlining; the zero-masking forms with every lane selected compile to the same instructions.
constexpr __mmask64 kAll64 = ~__mmask64(0);
constexpr __mmask32 kAll32 = ~__mmask32(0);
constexpr __mmask16 kAll16 = ~__mmask16(0);
constexpr int kTripleBytes = 3 * int(sizeof(BlockQ4_0));

struct Q4TripleConsts {
  __m512i high_nibble;   // gf2p8affineqb matrix: result bits 0-3 = source bits 4-7
  __m512i pick_d;        // vpermt2w: words d_0, d_1, d_2 of row A, then of row B
  __m512i join_d;        // vpermt2w: the 6 words of rows 0-1, then those of rows 2-3
  __m512i row_scale[4];  // vpermps: row r's scale of each lane (lanes 0-4: block 0, 5-8: 1, 9-15: 2)
};

inline Q4TripleConsts MakeQ4TripleConsts() {
  constexpr uint16_t kW = uint16_t(sizeof(BlockQ4_0) / 2);  // words per raw block
  alignas(64) uint16_t pick_d[32] = {0, kW, 2 * kW, 32, 32 + kW, 32 + 2 * kW};
  alignas(64) uint16_t join_d[32] = {0, 1, 2, 3, 4, 5, 32, 33, 34, 35, 36, 37};
  alignas(64) int32_t row_scale[4][16];
  for (int r = 0; r < 4; ++r) {
    for (int l = 0; l < 16; ++l) row_scale[r][l] = 3 * r + (l < 5 ? 0 : l < 9 ? 1 : 2);
  }
  Q4TripleConsts c;
  // Row i of an affine matrix (byte 7 - i of its qword) selects the source bits of result bit i.
  c.high_nibble = _mm512_set1_epi64(0x1020408000000000);
  c.pick_d = _mm512_load_si512(pick_d);
  c.join_d = _mm512_load_si512(join_d);
  for (int r = 0; r < 4; ++r) c.row_scale[r] = _mm512_load_si512(row_scale[r]);
  return c;
}

// acc[r] += per-lane dw x dx x dot for the blocks of triple `t`, whose raw bytes `mask` selects. Rows
// beyond R repeat row 0 (their scales are computed and unused).
template <int R>
KVQ_GEMV_TARGET HWY_INLINE void Q4TripleStep(const uint8_t* const (&rows)[4], const matmul_detail::Q4Triple& act,
                                             int64_t t, __mmask64 mask, const Q4TripleConsts& c, __m512 (&acc)[R]) {
  const __m512i x_lo = _mm512_load_si512(act.lo);
  const __m512i x_hi = _mm512_load_si512(act.hi);
  const __m512i init = _mm512_load_si512(act.neg8);
  __m512i raw[4];
  KVQ_UNROLL for (int r = 0; r < 4; ++r) {
    if (r >= R) {
      raw[r] = raw[0];
      continue;
    }
    const uint8_t* triple = rows[r] + kTripleBytes * size_t(t);
    _mm_prefetch(reinterpret_cast<const char*>(triple) + 512, _MM_HINT_T0);
    raw[r] = _mm512_maskz_loadu_epi8(mask, triple);  // masked: never reads past the row
  }
  const __m512i d01 = _mm512_maskz_permutex2var_epi16(kAll32, raw[0], c.pick_d, raw[1]);
  const __m512i d23 = _mm512_maskz_permutex2var_epi16(kAll32, raw[2], c.pick_d, raw[3]);
  const __m512i d = _mm512_maskz_permutex2var_epi16(kAll32, d01, c.join_d, d23);  // 12 f16 scales
  const __m512 scales =
      _mm512_mul_ps(_mm512_maskz_cvtph_ps(kAll16, _mm512_extracti32x8_epi32(d, 0)), _mm512_load_ps(act.scale));
  KVQ_UNROLL for (int r = 0; r < R; ++r) {
    const __m512i lo = _mm512_and_si512(raw[r], _mm512_set1_epi8(0x0F));
    const __m512i hi = _mm512_maskz_gf2p8affine_epi64_epi8(kAll64, raw[r], c.high_nibble, 0);
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, x_lo), hi, x_hi);
    const __m512 scale = _mm512_maskz_permutexvar_ps(kAll16, c.row_scale[r], scales);
    acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll16, dot), scale, acc[r]);
  }
}

// kGroups groups of R rows, the groups interleaved step by step. More row streams in flight per thread
// keep more of memory's latency covered: 16 rows (4 groups of 4) ran the TinyLlama-shaped q4_0
// projections at 34-35 tok/s against 27-29.5 with 4 rows, 31-32 with 8 and worse again with 24 or 32
// (`matmul_bench --benchmark_filter=tinyllama_projections/tg1/q4_0`, 2 threads, runs interleaved).
template <int kGroups, int R>
KVQ_GEMV_TARGET void GemvRowsQ4_0Triples(const uint8_t* const (&rows)[kGroups][4],
                                         const matmul_detail::QuantizedActs& a, const Q4TripleConsts& c, float* out) {
  const int64_t nb = a.n_in / kQK;
  const int64_t full = nb / 3;
  __m512 acc[kGroups][R];
  KVQ_UNROLL for (int g = 0; g < kGroups; ++g) {
    KVQ_UNROLL for (int r = 0; r < R; ++r) acc[g][r] = _mm512_setzero_ps();
  }
  for (int64_t t = 0; t < full; ++t) {
    KVQ_UNROLL for (int g = 0; g < kGroups; ++g) {
      Q4TripleStep<R>(rows[g], a.q4_triples[t], t, (uint64_t(1) << kTripleBytes) - 1, c, acc[g]);
    }
  }
  if (nb % 3 != 0) {  // the last 1 or 2 blocks
    const __mmask64 mask = (uint64_t(1) << (int(sizeof(BlockQ4_0)) * (nb % 3))) - 1;
    KVQ_UNROLL for (int g = 0; g < kGroups; ++g) Q4TripleStep<R>(rows[g], a.q4_triples[full], full, mask, c, acc[g]);
  }
  KVQ_UNROLL for (int g = 0; g < kGroups; ++g) {
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const __m512 v = acc[g][r];
      out[R * g + r] = HorizontalSum(v);
    }
  }
}

#endif

// q4_K and q6_K (the types of Q4_K_M files).
#include "kernels/matmul_gemv_k-inl.h"

template <GgmlType kType>
void GemvAllRows(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t r0, int64_t r1, float* y) {
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  const auto row = [&](int64_t i) { return w.data + size_t(i) * w_row_bytes; };
  int64_t r = r0;
#if HWY_TARGET == HWY_AVX3_DL
  const bool triples = kType == GgmlType::Q4_0 && a.q4_triples != nullptr;
  const Q4TripleConsts consts = MakeQ4TripleConsts();
  if (triples) {
    for (; r + 16 <= r1; r += 16) {
      const uint8_t* rows[4][4];
      for (int g = 0; g < 4; ++g) {
        for (int i = 0; i < 4; ++i) rows[g][i] = row(r + 4 * g + i);
      }
      GemvRowsQ4_0Triples<4, 4>(rows, a, consts, y + r);
    }
  }
#endif
  // 4 rows at a time, then the last 1..3 one at a time (the unused row slots repeat the row).
  const auto run = [&](auto n_rows, int64_t at) {
    constexpr int kRows = decltype(n_rows)::value;
    const uint8_t* rows[1][4];
    for (int j = 0; j < 4; ++j) rows[0][j] = row(at + (j < kRows ? j : 0));
#if HWY_TARGET == HWY_AVX3_DL
    if (triples) return GemvRowsQ4_0Triples<1, kRows>(rows, a, consts, y + at);
#endif
    float out[4];
    GemvRows<kRows, kType>(rows[0], a, out);
    for (int j = 0; j < kRows; ++j) y[at + j] = out[j];
  };
  for (; r + 4 <= r1; r += 4) run(std::integral_constant<int, 4>(), r);
  for (; r < r1; ++r) run(std::integral_constant<int, 1>(), r);
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
  if (w.type == GgmlType::Q4_K) {
    GemvAllRowsK<GgmlType::Q4_K>(w, a, r0, r1, y);
    return true;
  }
  if (w.type == GgmlType::Q6_K) {
    GemvAllRowsK<GgmlType::Q6_K>(w, a, r0, r1, y);
    return true;
  }
  return false;
}

// n_tokens in [1, kMaxGemvTokens] (batched decode); false when the type has no fused kernel. q4_K (and
// q6_K on AVX-512 VNNI) unpack each block once for all tokens; the other types run the one-token kernel
// per token on the same rows, which the first token has brought into cache.
inline bool FusedGemvTokens(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t n_tokens, int64_t r0,
                            int64_t r1, float* y) {
  if (n_tokens == 1) return FusedGemv(w, a, r0, r1, y);
  if (w.type == GgmlType::Q4_K && a.q4k_dx_sums != nullptr) {
    GemvAllRowsKTokens<GgmlType::Q4_K>(w, a, n_tokens, r0, r1, y);
    return true;
  }
#if HWY_TARGET == HWY_AVX3_DL
  if (w.type == GgmlType::Q6_K) {
    GemvAllRowsKTokens<GgmlType::Q6_K>(w, a, n_tokens, r0, r1, y);
    return true;
  }
#endif
  const int64_t n_in = a.n_in, n_triples = (n_in + matmul_detail::kTripleValues - 1) / matmul_detail::kTripleValues;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const matmul_detail::QuantizedActs one{a.q + t * n_in, a.scale + t * n_in / 4, a.sum16 + t * n_in / 16, n_in,
                                           a.q4_triples ? a.q4_triples + t * n_triples : nullptr};
    if (!FusedGemv(w, one, r0, r1, y + t * w.n_out)) return false;  // the type has none: on the first token
  }
  return true;
}

#undef KVQ_GEMV_TARGET
#elif HWY_TARGET == HWY_NEON
#include "kernels/matmul_gemv_neon-inl.h"
#else
inline bool FusedGemvTokens(const WeightMatrix&, const matmul_detail::QuantizedActs&, int64_t, int64_t, int64_t,
                            float*) {
  return false;
}
#endif

}  // namespace matmul_gemv
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_MATMUL_GEMV_INL_H_
