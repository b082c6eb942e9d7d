// Prompt-processing kernel for AVX-512 VNNI: 16 weight rows interleaved so that int32 lane r of a
// vector belongs to row r. One vpdpbusd multiplies 4 consecutive values of 16 rows by the same 4
// activation codes (broadcast), and 4 of them accumulate a 16-value group in int32 with no horizontal
// work; the float work (convert, scale, min) is then done once per 16 values for 16 rows at a time,
// instead of once per 64 values per row as in the 4-row panel kernel. Lanes are rows, so results are
// stored to y directly.
// Measured (1 thread, q4_0 2048x2048 x 512 tokens, CPU time): 34.5 ms with the 4-row kernel, 20-27 ms
// with this one (~160-220 GFLOP/s per core; the machine is shared, so the spread is noise).
// Included by matmul_int.cpp inside its HWY_NAMESPACE.

#if defined(KVQ_KERNELS_MATMUL_WIDE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_MATMUL_WIDE_INL_H_
#undef KVQ_KERNELS_MATMUL_WIDE_INL_H_
#else
#define KVQ_KERNELS_MATMUL_WIDE_INL_H_
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "kernels/matmul_decode-inl.h"
#include "kernels/matmul_internal.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace matmul_wide {

using matmul_detail::kWideChunk;
using matmul_detail::kWideRows;

#if HWY_TARGET == HWY_AVX3_DL
#define KVQ_WIDE_TARGET __attribute__((target(HWY_TARGET_STR ",avx512vnni")))

using matmul_detail::kWideTokens;
constexpr int64_t kMinTokens = 4;  // below this the 4-row kernel (or the fused GEMV) is used

// One tile of kWideTokens tokens in s.wide_acts (see PanelScratch), for a chunk of len values.
struct TileActs {
  const uint8_t* q;  // [len / 4][kWideTokens] 4-byte groups of codes
  const float* sc;   // [len / 16][kWideTokens] activation scale of each 16-group
  const float* s16;  // [len / 16][kWideTokens] scale * sum of the 16 codes
};
inline TileActs TileAt(const matmul_detail::PanelScratch& s, int64_t tile, int64_t len) {
  uint8_t* base = s.wide_acts + tile * matmul_detail::kWideTileBytes;
  const float* sc = reinterpret_cast<const float*>(base + kWideTokens * len);
  return TileActs{base, sc, sc + kWideTokens * len / 16};
}

// Regroups tokens [t0, t1) of values [k0, k0 + len) into tiles (tokens past t1 are zero).
inline void PackTiles(const matmul_detail::QuantizedActs& a, int64_t t0, int64_t t1, int64_t k0, int64_t len,
                      const matmul_detail::PanelScratch& s) {
  for (int64_t tile = 0; t0 + tile * kWideTokens < t1; ++tile) {
    const TileActs dst = TileAt(s, tile, len);
    for (int64_t j = 0; j < kWideTokens; ++j) {
      const int64_t t = t0 + tile * kWideTokens + j;
      const int64_t at = t * a.n_in + k0;  // value offset of token t's chunk
      auto* q = const_cast<uint8_t*>(dst.q);
      auto* sc = const_cast<float*>(dst.sc);
      auto* s16 = const_cast<float*>(dst.s16);
      for (int64_t g = 0; g < len / 4; ++g) {
        if (t < t1) {
          std::memcpy(q + (g * kWideTokens + j) * 4, a.q + at + 4 * g, 4);
        } else {
          std::memset(q + (g * kWideTokens + j) * 4, 0, 4);
        }
      }
      for (int64_t g = 0; g < len / 16; ++g) {
        sc[g * kWideTokens + j] = t < t1 ? a.scale[at / 4 + 4 * g] : 0.0f;
        s16[g * kWideTokens + j] = t < t1 ? a.sum16[at / 16 + g] : 0.0f;
      }
    }
  }
}

// out[t] (16 rows) = sum over the chunk of weight * activation of token t of the tile. Each kSpan values
// (panel_scale_span: the weight's and the activations' scales are constant there) sum in int32 and are
// converted and scaled once; the mins are applied per 16 values.
template <int T, int kSpan>
KVQ_WIDE_TARGET void WideKernel(const matmul_detail::PanelScratch& s, int64_t len, const TileActs& a,
                                __m512 (&out)[kWideTokens]) {
  __m512 acc[T];
  KVQ_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const uint8_t* wq = s.wide_q;
  const float* wsc = s.wide_scale;
  const float* wmn = s.wide_min;
  const uint8_t* xq = a.q;
  const float* xsc = a.sc;
  const float* xs16 = a.s16;
  for (int64_t j = 0; j < len / 16; j += kSpan / 16) {
    __m512i isum[T];
    KVQ_UNROLL for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
    KVQ_UNROLL for (int g = 0; g < kSpan / 4; ++g) {  // 4 values of 16 rows per vpdpbusd
      const __m512i w = _mm512_load_si512(wq + g * 64);
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        int32_t x4;  // 4 codes of token t, broadcast to the 16 rows
        std::memcpy(&x4, xq + (g * kWideTokens + t) * 4, 4);
        isum[t] = _mm512_dpbusd_epi32(isum[t], w, _mm512_set1_epi32(x4));
      }
    }
    const __m512 sc = _mm512_load_ps(wsc);
    KVQ_UNROLL for (int t = 0; t < T; ++t) {  // maskz convert: GCC 12 warns on the unmasked form
      const __m512 scale = _mm512_mul_ps(sc, _mm512_set1_ps(xsc[t]));
      acc[t] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(__mmask16(0xFFFF), isum[t]), scale, acc[t]);
    }
    KVQ_UNROLL for (int h = 0; h < kSpan / 16; ++h) {
      const __m512 mn = _mm512_load_ps(wmn + h * kWideRows);
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        acc[t] = _mm512_fnmadd_ps(mn, _mm512_set1_ps(xs16[h * kWideTokens + t]), acc[t]);
      }
    }
    wq += kSpan / 4 * 64;
    wsc += kSpan / 16 * kWideRows;
    wmn += kSpan / 16 * kWideRows;
    xq += kSpan / 4 * kWideTokens * 4;
    xsc += kSpan / 16 * kWideTokens;
    xs16 += kSpan / 16 * kWideTokens;
  }
  KVQ_UNROLL for (int t = 0; t < T; ++t) out[t] = acc[t];
}

// A tile of nt in [1, kWideTokens] tokens.
template <int kSpan>
KVQ_WIDE_TARGET void RunWideTile(int nt, const matmul_detail::PanelScratch& s, int64_t len, const TileActs& a,
                                 __m512 (&out)[kWideTokens]) {
  switch (nt) {
    case 1:
      return WideKernel<1, kSpan>(s, len, a, out);
    case 2:
      return WideKernel<2, kSpan>(s, len, a, out);
    case 3:
      return WideKernel<3, kSpan>(s, len, a, out);
    case 4:
      return WideKernel<4, kSpan>(s, len, a, out);
    case 5:
      return WideKernel<5, kSpan>(s, len, a, out);
    case 6:
      return WideKernel<6, kSpan>(s, len, a, out);
    case 7:
      return WideKernel<7, kSpan>(s, len, a, out);
    default:
      return WideKernel<8, kSpan>(s, len, a, out);
  }
}

// Decodes rows [r, r + nr) (nr <= 16), values [k0, k0 + len), into the interleaved panel; the 4-row
// panel of `s` serves as the one-row staging buffer. Rows past nr get zero codes, scales and mins.
inline void DecodeWidePanel(const WeightMatrix& w, int64_t r, int64_t nr, int64_t k0, int64_t len,
                            const matmul_detail::PanelScratch& s) {
  const TypeTraits& traits = type_traits(w.type);
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  for (int64_t i = 0; i < kWideRows; ++i) {
    if (i < nr) {
      const uint8_t* blocks =
          w.data + size_t(r + i) * w_row_bytes + size_t(k0 / traits.block_size) * size_t(traits.type_size);
      matmul_decode::DecodeRow<false>(w.type, blocks, len / traits.block_size,
                                      matmul_decode::PanelRowOut{s.q, s.scale, s.min});
      for (int64_t g = 0; g < len / 4; ++g) std::memcpy(s.wide_q + g * 64 + i * 4, s.q + 4 * g, 4);
      for (int64_t j = 0; j < len / 16; ++j) {
        s.wide_scale[j * kWideRows + i] = s.scale[4 * j];
        s.wide_min[j * kWideRows + i] = s.min[j];
      }
    } else {
      for (int64_t g = 0; g < len / 4; ++g) std::memset(s.wide_q + g * 64 + i * 4, 0, 4);
      for (int64_t j = 0; j < len / 16; ++j) s.wide_scale[j * kWideRows + i] = s.wide_min[j * kWideRows + i] = 0.0f;
    }
  }
}

// Returns false when the call is not for this kernel (too few tokens).
KVQ_WIDE_TARGET inline bool WideGemm(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t n_tokens,
                                     int64_t r0, int64_t r1, float* y, const matmul_detail::PanelScratch& s) {
  if (n_tokens < kMinTokens) return false;
  // The tokens whose packed chunk (kWideTileBytes per tile) fits the L2 budget share each decoded panel: a
  // 512-token prompt decodes every weight once.
  const int64_t block = matmul_detail::token_block(matmul_detail::kWideTileBytes / kWideTokens);
  const bool span32 = matmul_detail::panel_scale_span(w.type) == 32;
  for (int64_t tb0 = 0; tb0 < n_tokens; tb0 += block) {
    const int64_t tb1 = std::min(n_tokens, tb0 + block);
    for (int64_t k0 = 0; k0 < w.n_in; k0 += kWideChunk) {
      const int64_t len = std::min(kWideChunk, w.n_in - k0);
      PackTiles(a, tb0, tb1, k0, len, s);
      for (int64_t r = r0; r < r1; r += kWideRows) {
        const int64_t nr = std::min(kWideRows, r1 - r);
        const __mmask16 rows_mask = __mmask16((1u << nr) - 1);
        DecodeWidePanel(w, r, nr, k0, len, s);
        for (int64_t t = tb0; t < tb1; t += kWideTokens) {
          const int nt = int(std::min<int64_t>(kWideTokens, tb1 - t));
          const TileActs tile = TileAt(s, (t - tb0) / kWideTokens, len);
          __m512 acc[kWideTokens];
          if (span32) {
            RunWideTile<32>(nt, s, len, tile, acc);
          } else {
            RunWideTile<16>(nt, s, len, tile, acc);
          }
          for (int j = 0; j < nt; ++j) {
            float* dst = y + (t + j) * w.n_out + r;  // [n_tokens, n_out]: rows r.. of token t + j
            const __m512 prev = k0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(rows_mask, dst);
            _mm512_mask_storeu_ps(dst, rows_mask, _mm512_add_ps(prev, acc[j]));
          }
        }
      }
    }
  }
  return true;
}

#undef KVQ_WIDE_TARGET
#else
inline bool WideGemm(const WeightMatrix&, const matmul_detail::QuantizedActs&, int64_t, int64_t, int64_t, float*,
                     const matmul_detail::PanelScratch&) {
  return false;
}
#endif

}  // namespace matmul_wide
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_MATMUL_WIDE_INL_H_
