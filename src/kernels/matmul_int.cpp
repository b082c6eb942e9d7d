// Integer matmul for quantized weights: activations quantized to 8 bits per 32 values, weights decoded
// to 8-bit panels (matmul_decode-inl.h), int8 dot products in a 4-row x up-to-4-token register tile.
//
// Per target: AVX-512 VNNI (vpdpbusd, u8 x s8 -> 4-value int32 lanes), AVX2 / AVX-512 without VNNI
// (vpmaddubsw + vpmaddwd, same lanes), NEON with the dot product (sdot; smmla for prompts where i8mm
// exists, matmul_mmla_neon-inl.h), and a portable Highway version (int16 promotion +
// ReorderWidenMulAccumulate) for SSE4, NEON without the dot product and the rest. Each int32 lane covers
// 4 values, so a lane's result is scaled by (weight scale x activation scale) of its own group: block
// scales of any size >= 4 fold in without horizontal sums. Mins (and offsets such as q4_0's 8) are applied
// once per 16 values at the end of a chunk: sum_g min_g * (activation scale * sum of 16 codes).
//
// Which kernel runs (AVX-512 VNNI target): n_tokens <= kMaxGemvTokens with q4_0 / q8_0 / q4_K / q6_K ->
// fused GEMV (matmul_gemv-inl.h); more tokens -> 16-row interleaved kernel (matmul_wide-inl.h); otherwise
// the 4-row panel kernel below, every target's fallback (what each target runs: docs/platforms.md).
//
// int8 vs dequantize + f32 FMA (matmul_float.cpp), 1 thread, CPU time, cache-resident 2048x2048, on
// this shared (noisy) machine: q4_0 GEMV 420 us (panel kernel) / 224 us (fused) vs 518 us, GEMM over
// 512 tokens 34.5 ms (4-row kernel) / 20-27 ms (wide) vs 52.3 ms; q8_0 GEMV 233 us (fused) vs 512 us,
// GEMM 36.8 ms (4-row) vs 38.9 ms; q4_K GEMM 36.9 ms (4-row) vs 64.5 ms. The int8 path wins everywhere,
// so matmul() uses it for every quantized type.

#include <algorithm>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_int.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target.h must come first.
#include "hwy/highway.h"
#include "kernels/matmul_decode-inl.h"
#include "kernels/matmul_gemv-inl.h"
#include "kernels/matmul_wide-inl.h"
#include "kernels/arm_dotprod.h"
#include "kernels/matmul_internal.h"
#include "util/system.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using matmul_detail::kIntChunk;
using matmul_detail::kPanelRows;

// Quantizes one token: per 32 values, scale = absmax / 127 and code = round(x / scale).
void QuantizeActivations(const float* x, int64_t n_in, int8_t* q, float* scale, float* sum16) {
  const hn::CappedTag<float, 16> df;  // at most 16 lanes: one vector never spans two 16-groups
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_in; b += kQK) {
    auto vmax = hn::Zero(df);
    for (size_t i = 0; i < size_t(kQK); i += n) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + b + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float d = amax / 127.0f;
    const auto inv = hn::Set(df, amax > 0.0f ? 127.0f / amax : 0.0f);
    for (int g = 0; g < 2; ++g) {
      auto isum = hn::Zero(di);
      for (size_t i = 0; i < 16; i += n) {
        const int64_t at = b + 16 * g + int64_t(i);
        const auto code = hn::NearestInt(hn::Mul(hn::LoadU(df, x + at), inv));
        isum = hn::Add(isum, code);
        hn::StoreU(hn::DemoteTo(d8, code), d8, q + at);
      }
      sum16[(b + 16 * g) / 16] = d * float(hn::GetLane(hn::SumOfLanes(di, isum)));
    }
    for (int i = 0; i < kQK / 4; ++i) scale[b / 4 + i] = d;
  }
}

// Kernel family of this target. kSignedCodes: 8-bit weight types decode to signed codes (maddubs would
// saturate on unsigned ones). kMaxTokens: tile width that keeps the accumulators in registers.
#if HWY_TARGET == HWY_AVX3_DL
constexpr bool kSignedCodes = false;
constexpr int kMaxTokens = 4;
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
constexpr bool kSignedCodes = true;
constexpr int kMaxTokens = HWY_TARGET == HWY_AVX3 ? 4 : 2;  // AVX2 has 16 vector registers, AVX3 32
#else
constexpr bool kSignedCodes = true;
constexpr int kMaxTokens = HWY_ARCH_X86 ? 2 : 4;
#endif

// kPanelRows decoded rows of one chunk; row r starts at q + r * kIntChunk, sc + r * kIntChunk / 4, ...
struct PanelIn {
  const uint8_t* q;
  const float* sc;
  const float* mn;
  int64_t len;  // values in this chunk, a multiple of 32
};
// Up to kMaxTokens tokens' activations, each pointing at the chunk start.
struct ActsIn {
  const int8_t* q[4];
  const float* sc[4];
  const float* s16[4];
};
constexpr int64_t kScStride = kIntChunk / 4;
constexpr int64_t kMnStride = kIntChunk / 16;

#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string names avxvnni (VEX) but not avx512vnni, although its run-time
// check for the target requires AVX-512 VNNI: enable it (on top of the target's own features, which
// clang would otherwise drop) for the functions that use vpdpbusd.
#define KVQ_AVX512_VNNI __attribute__((target(HWY_TARGET_STR ",avx512vnni")))

// GCC 12's _mm512_cvtepi32_ps and _mm512_reduce_add_ps pass deliberately undefined vectors that its own
// -Wuninitialized flags after inlining; these equivalents start from zero vectors instead.
HWY_INLINE __m512 ToFloat(__m512i v) { return _mm512_maskz_cvtepi32_ps(__mmask16(0xFFFF), v); }
HWY_INLINE float ReduceAdd(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// 64 values per step: one vpdpbusd per (row, token) gives 16 int32 lanes of 4 products each.
template <int T, bool kTail>
KVQ_AVX512_VNNI HWY_INLINE void VnniStep(const PanelIn& p, const ActsIn& a, int64_t k, __m512 (&acc)[kPanelRows][T]) {
  constexpr __mmask64 kBytes = kTail ? 0xFFFFFFFFull : ~0ull;  // the tail is 32 values
  constexpr __mmask16 kLanes = kTail ? 0x00FF : 0xFFFF;
  __m512i w[kPanelRows];
  __m512 sw[kPanelRows];
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    w[r] = _mm512_maskz_loadu_epi8(kBytes, p.q + r * kIntChunk + k);
    sw[r] = _mm512_maskz_loadu_ps(kLanes, p.sc + r * kScStride + k / 4);
  }
  KVQ_UNROLL for (int t = 0; t < T; ++t) {
    const __m512i x = _mm512_maskz_loadu_epi8(kBytes, a.q[t] + k);
    const __m512 sx = _mm512_maskz_loadu_ps(kLanes, a.sc[t] + k / 4);
    KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[r], x);
      acc[r][t] = _mm512_fmadd_ps(ToFloat(dot), _mm512_mul_ps(sw[r], sx), acc[r][t]);
    }
  }
}

template <int T, bool kSigned>
KVQ_AVX512_VNNI void MicroKernel(const PanelIn& p, const ActsIn& a, bool has_min, float (&out)[kPanelRows][4]) {
  static_assert(!kSigned, "the VNNI kernel takes unsigned codes");
  __m512 acc[kPanelRows][T];
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 64 <= p.len; k += 64) VnniStep<T, false>(p, a, k, acc);
  if (k < p.len) VnniStep<T, true>(p, a, k, acc);
  if (has_min) {
    const int64_t groups = p.len / 16;
    for (int64_t g = 0; g < groups; g += 16) {
      const __mmask16 m = groups - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (groups - g)) - 1);
      __m512 mn[kPanelRows];
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) mn[r] = _mm512_maskz_loadu_ps(m, p.mn + r * kMnStride + g);
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const __m512 s = _mm512_maskz_loadu_ps(m, a.s16[t] + g);
        KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) acc[r][t] = _mm512_fnmadd_ps(mn[r], s, acc[r][t]);
      }
    }
  }
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) out[r][t] = ReduceAdd(acc[r][t]);
  }
}

#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
// 32 values per step: vpmaddubsw (u8 x s8 -> pairs in int16) then vpmaddwd by 1 -> 8 lanes of 4
// products. Unsigned codes are <= 63 here (2 * 63 * 127 fits int16); signed 8-bit codes go through
// |w| x sign(x, w), whose pair sums stay <= 2 * 128 * 127.
template <int T, bool kSigned>
void MicroKernel(const PanelIn& p, const ActsIn& a, bool has_min, float (&out)[kPanelRows][4]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[kPanelRows][T];
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < p.len; k += 32) {
    __m256i w[kPanelRows], wabs[kPanelRows];
    __m256 sw[kPanelRows];
    KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
      w[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.q + r * kIntChunk + k));
      wabs[r] = kSigned ? _mm256_abs_epi8(w[r]) : w[r];
      sw[r] = _mm256_loadu_ps(p.sc + r * kScStride + k / 4);
    }
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q[t] + k));
      const __m256 sx = _mm256_loadu_ps(a.sc[t] + k / 4);
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
        const __m256i pairs = _mm256_maddubs_epi16(wabs[r], kSigned ? _mm256_sign_epi8(x, w[r]) : x);
        const __m256i dot = _mm256_madd_epi16(pairs, ones);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(sw[r], sx), acc[r][t]);
      }
    }
  }
  float tail[kPanelRows][4] = {};  // min terms of the groups past the last full 8
  if (has_min) {
    const int64_t groups = p.len / 16;
    int64_t g = 0;
    for (; g + 8 <= groups; g += 8) {
      __m256 mn[kPanelRows];
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) mn[r] = _mm256_loadu_ps(p.mn + r * kMnStride + g);
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const __m256 s = _mm256_loadu_ps(a.s16[t] + g);
        KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) acc[r][t] = _mm256_fnmadd_ps(mn[r], s, acc[r][t]);
      }
    }
    for (; g < groups; ++g) {
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
        KVQ_UNROLL for (int t = 0; t < T; ++t) tail[r][t] += p.mn[r * kMnStride + g] * a.s16[t][g];
      }
    }
  }
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[r][t]), _mm256_extractf128_ps(acc[r][t], 1));
      const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
      out[r][t] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2))) - tail[r][t];
    }
  }
}

#else
#if HWY_TARGET == HWY_NEON
// NEON with sdot (CPUs with FEAT_DotProd): as the AVX2 kernel, per-lane scales (each int32 lane covers 4
// values, whose weight and activation scales multiply its sum), 16 values per step. Unsigned codes are <= 63
// (kSignedCodes: 8-bit types decode signed), so they are valid s8 operands. Per (row, token) and 16 values:
// sdot + convert + scale product + FMA, against ~7 instructions for the portable kernel below (2 widening
// multiply-accumulates per 8 values and its share of the promotions, plus the group's rescale).
template <int T>
KVQ_TARGET_DOTPROD void DotMicroKernel(const PanelIn& p, const ActsIn& a, bool has_min, float (&out)[kPanelRows][4]) {
  float32x4_t acc[kPanelRows][T];
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = vdupq_n_f32(0.0f);
  }
  for (int64_t k = 0; k < p.len; k += 16) {
    int8x16_t w[kPanelRows];
    float32x4_t sw[kPanelRows];
    KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
      w[r] = vreinterpretq_s8_u8(vld1q_u8(p.q + r * kIntChunk + k));
      sw[r] = vld1q_f32(p.sc + r * kScStride + k / 4);
    }
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      const int8x16_t x = vld1q_s8(a.q[t] + k);
      const float32x4_t sx = vld1q_f32(a.sc[t] + k / 4);
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
        const int32x4_t dot = vdotq_s32(vdupq_n_s32(0), w[r], x);
        acc[r][t] = vfmaq_f32(acc[r][t], vcvtq_f32_s32(dot), vmulq_f32(sw[r], sx));
      }
    }
  }
  float tail[kPanelRows][4] = {};  // min terms of the groups past the last full 4
  if (has_min) {
    const int64_t groups = p.len / 16;
    int64_t g = 0;
    for (; g + 4 <= groups; g += 4) {  // lane sums: the groups' order is irrelevant
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
        const float32x4_t mn = vld1q_f32(p.mn + r * kMnStride + g);
        KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = vfmsq_f32(acc[r][t], mn, vld1q_f32(a.s16[t] + g));
      }
    }
    for (; g < groups; ++g) {
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
        KVQ_UNROLL for (int t = 0; t < T; ++t) tail[r][t] += p.mn[r * kMnStride + g] * a.s16[t][g];
      }
    }
  }
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) out[r][t] = vaddvq_f32(acc[r][t]) - tail[r][t];
  }
}

#include "kernels/matmul_mmla_neon-inl.h"
#endif  // HWY_TARGET == HWY_NEON

// Portable: 16-value groups (one scale each) as int16 products summed into int32 lanes; lane order
// inside a group is irrelevant because the whole group shares one scale.
template <int T, bool kSigned>
void MicroKernel(const PanelIn& p, const ActsIn& a, bool has_min, float (&out)[kPanelRows][4]) {
  const hn::CappedTag<int16_t, 8> d16;  // <= 8 lanes, so a vector never spans two groups
  const hn::Rebind<int8_t, decltype(d16)> d8;
  const hn::Rebind<uint8_t, decltype(d16)> du8;
  const hn::Repartition<int32_t, decltype(d16)> d32;
  const hn::Rebind<float, decltype(d32)> df;
  const size_t n = hn::Lanes(d16);
  using VF = hn::Vec<decltype(df)>;
  using VI = hn::Vec<decltype(d32)>;
  VF acc[kPanelRows][T];
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) { KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = hn::Zero(df); }
  for (int64_t g = 0; g < p.len / 16; ++g) {
    VI sum0[kPanelRows][T], sum1[kPanelRows][T];
    KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
      KVQ_UNROLL for (int t = 0; t < T; ++t) sum0[r][t] = sum1[r][t] = hn::Zero(d32);
    }
    for (size_t i = 0; i < 16; i += n) {
      const int64_t k = 16 * g + int64_t(i);
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const auto x = hn::PromoteTo(d16, hn::LoadU(d8, a.q[t] + k));
        KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
          const uint8_t* wq = p.q + r * kIntChunk + k;
          const auto w =
              kSigned ? hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(wq)))
                      : hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<decltype(d16)>(), hn::LoadU(du8, wq)));
          sum0[r][t] = hn::ReorderWidenMulAccumulate(d32, w, x, sum0[r][t], sum1[r][t]);
        }
      }
    }
    KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const VF dot = hn::ConvertTo(df, hn::Add(sum0[r][t], sum1[r][t]));
        const float s = p.sc[r * kScStride + 4 * g] * a.sc[t][4 * g];
        acc[r][t] = hn::MulAdd(dot, hn::Set(df, s), acc[r][t]);
      }
    }
  }
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      float min_term = 0.0f;
      if (has_min) {
        for (int64_t g = 0; g < p.len / 16; ++g) min_term += p.mn[r * kMnStride + g] * a.s16[t][g];
      }
      out[r][t] = hn::GetLane(hn::SumOfLanes(df, acc[r][t])) - min_term;
    }
  }
}
#endif

template <bool kSigned>
void RunTile(int nt, const PanelIn& p, const ActsIn& a, bool has_min, float (&out)[kPanelRows][4]) {
#if HWY_TARGET == HWY_NEON
  static const bool dotprod = cpu_has_arm_dotprod();
  if (dotprod) {
    if (nt == 1) return DotMicroKernel<1>(p, a, has_min, out);
    if (nt == 2) return DotMicroKernel<2>(p, a, has_min, out);
    if (nt == 3) return DotMicroKernel<3>(p, a, has_min, out);
    if (nt == 4) return DotMicroKernel<4>(p, a, has_min, out);
  }
#endif
  if (nt == 1) return MicroKernel<1, kSigned>(p, a, has_min, out);
  if (nt == 2) return MicroKernel<2, kSigned>(p, a, has_min, out);
  if constexpr (kMaxTokens >= 4) {
    if (nt == 3) return MicroKernel<3, kSigned>(p, a, has_min, out);
    if (nt == 4) return MicroKernel<4, kSigned>(p, a, has_min, out);
  }
  KVQ_CHECK(false && "token tile wider than kMaxTokens");
}

bool IsEightBitType(GgmlType type) {
  return type == GgmlType::Q8_0 || type == GgmlType::IQ4_NL || type == GgmlType::IQ4_XS;
}

void MatmulInt8Rows(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t n_tokens, int64_t r0,
                    int64_t r1, float* y, const matmul_detail::PanelScratch& s) {
  if (n_tokens <= matmul_detail::kMaxGemvTokens && matmul_gemv::FusedGemvTokens(w, a, n_tokens, r0, r1, y)) return;
  // Batched decode stays on the kernels a single token takes (the panel below computes each token alone):
  // a sequence's logits do not depend on which others share its step.
  if (n_tokens > matmul_detail::kMaxGemvTokens && matmul_wide::WideGemm(w, a, n_tokens, r0, r1, y, s)) return;
  const TypeTraits& traits = type_traits(w.type);
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  const bool signed_panel = kSignedCodes && IsEightBitType(w.type);
  const bool has_min = !signed_panel;
  const int64_t block = matmul_detail::token_block(w.n_in * matmul_detail::kActBytesPerValue4 / 4);
#if HWY_TARGET == HWY_NEON
  // Prompts on CPUs with i8mm take smmla; batched decode keeps a single token's kernels (see above).
  static const bool i8mm = cpu_has_arm_i8mm();
  const bool mmla = i8mm && n_tokens > matmul_detail::kMaxGemvTokens;
  thread_local MmlaPanel mmla_panel_storage;  // 16 KiB
  MmlaPanel* mmla_panel = &mmla_panel_storage;
#endif
  for (int64_t tb0 = 0; tb0 < n_tokens; tb0 += block) {
    const int64_t tb1 = std::min(n_tokens, tb0 + block);
    for (int64_t r = r0; r < r1; r += kPanelRows) {
      const int64_t nr = std::min(kPanelRows, r1 - r);
      for (int64_t k0 = 0; k0 < w.n_in; k0 += kIntChunk) {
        const int64_t len = std::min(kIntChunk, w.n_in - k0);
        // Decode the panel: weight rows beyond r1 get zero scales and mins, so they add nothing.
        for (int64_t i = 0; i < kPanelRows; ++i) {
          matmul_decode::PanelRowOut o{s.q + i * kIntChunk, s.scale + i * kScStride, s.min + i * kMnStride};
          if (i < nr) {
            const uint8_t* blocks =
                w.data + size_t(r + i) * w_row_bytes + size_t(k0 / traits.block_size) * size_t(traits.type_size);
            if (signed_panel) {
              matmul_decode::DecodeRow<true>(w.type, blocks, len / traits.block_size, o);
            } else {
              matmul_decode::DecodeRow<false>(w.type, blocks, len / traits.block_size, o);
            }
          } else {
            std::memset(o.q, 0, size_t(len));
            std::memset(o.sc, 0, sizeof(float) * size_t(len / 4));
            std::memset(o.mn, 0, sizeof(float) * size_t(len / 16));
          }
        }
        const PanelIn panel{s.q, s.scale, s.min, len};
#if HWY_TARGET == HWY_NEON
        if (mmla) LayOutMmlaPanel(panel, *mmla_panel);
#endif
        for (int64_t t = tb0; t < tb1; t += kMaxTokens) {
          const int nt = int(std::min<int64_t>(kMaxTokens, tb1 - t));
          ActsIn acts{};
          for (int j = 0; j < nt; ++j) {
            const int64_t at = (t + j) * a.n_in + k0;  // value offset of this token's chunk
            acts.q[j] = a.q + at;
            acts.sc[j] = a.scale + at / 4;
            acts.s16[j] = a.sum16 + at / 16;
          }
          float out[kPanelRows][4];
          [&] {
#if HWY_TARGET == HWY_NEON
            if (mmla && nt >= 2) return RunMmlaTile(w.type, nt, *mmla_panel, len, acts, has_min, out);
#endif
            if constexpr (kSignedCodes) {
              if (signed_panel) return RunTile<true>(nt, panel, acts, has_min, out);
            }
            RunTile<false>(nt, panel, acts, has_min, out);
          }();
          for (int j = 0; j < nt; ++j) {
            float* dst = y + (t + j) * w.n_out + r;  // [n_tokens, n_out] row of token t + j
            for (int64_t i = 0; i < nr; ++i) dst[i] = (k0 == 0 ? 0.0f : dst[i]) + out[i][j];
          }
        }
      }
    }
  }
}

bool GemvUsesQ4Triples() {
#if HWY_TARGET == HWY_AVX3_DL
  // Highway's AVX3_DL target does not require GFNI; every CPU with it so far has it.
  static const bool gfni = __builtin_cpu_supports("gfni");
  return gfni;
#else
  return false;
#endif
}

bool GemvUsesQ4KPairs() { return HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2; }  // the targets with q4_K kernels

// What MatmulInt8Rows runs for `type` at n_tokens on this CPU, for kvq bench's report (it follows the
// dispatch above: fused GEMV types of x86, the 16-row kernel of AVX-512 VNNI, the 4-row panel kernel).
const char* Int8KernelName(GgmlType type, int64_t n_tokens) {
  const bool decode = n_tokens <= matmul_detail::kMaxGemvTokens;
  [[maybe_unused]] const bool fused =  // the types with a fused decode kernel on x86 and on NEON with sdot
      decode && (type == GgmlType::Q4_0 || type == GgmlType::Q8_0 || type == GgmlType::Q4_K || type == GgmlType::Q6_K);
#if HWY_TARGET == HWY_AVX3_DL
  if (fused && type == GgmlType::Q4_0 && GemvUsesQ4Triples()) return "fused GEMV on raw q4_0 block triples, vpdpbusd";
  if (fused) return "fused GEMV, vpdpbusd";
  return decode ? "4-row panel, vpdpbusd" : "16-row interleaved GEMM, vpdpbusd";
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
  return fused ? "fused GEMV, vpmaddubsw" : "4-row panel, vpmaddubsw";
#elif HWY_TARGET == HWY_NEON
  if (!cpu_has_arm_dotprod()) return "4-row panel, portable int16 (Highway)";
  if (!decode && cpu_has_arm_i8mm()) return "4-row panel, smmla";
  return fused ? "fused GEMV, sdot" : "4-row panel, sdot";
#else
  (void)decode;
  return "4-row panel, portable int16 (Highway)";
#endif
}

}  // namespace
// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {
HWY_EXPORT(QuantizeActivations);
HWY_EXPORT(MatmulInt8Rows);
HWY_EXPORT(GemvUsesQ4Triples);
HWY_EXPORT(GemvUsesQ4KPairs);
HWY_EXPORT(Int8KernelName);

namespace matmul_detail {

void quantize_activations(const float* x, int64_t n_in, int8_t* q, float* scale, float* sum16) {
  HWY_DYNAMIC_DISPATCH(QuantizeActivations)(x, n_in, q, scale, sum16);
}

bool gemv_uses_q4_triples() { return HWY_DYNAMIC_DISPATCH(GemvUsesQ4Triples)(); }
bool gemv_uses_q4k_pairs() { return HWY_DYNAMIC_DISPATCH(GemvUsesQ4KPairs)(); }
const char* int8_kernel_name(GgmlType type, int64_t n_tokens) {
  return HWY_DYNAMIC_DISPATCH(Int8KernelName)(type, n_tokens);
}

void matmul_int8_rows(const WeightMatrix& w, const QuantizedActs& a, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                      const PanelScratch& scratch) {
  HWY_DYNAMIC_DISPATCH(MatmulInt8Rows)(w, a, n_tokens, r0, r1, y, scratch);
}

}  // namespace matmul_detail
}  // namespace kvq
#endif  // HWY_ONCE
