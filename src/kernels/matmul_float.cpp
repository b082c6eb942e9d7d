// Float matmul: f32 / f16 / bf16 weights (the only path for them), and dequantize + FMA for quantized
// weights (exact to f32 accumulation; kept for comparison with the int8 path and as its oracle in tests).
// Weights are widened to f32 one chunk of 4 rows at a time; f32 weights are read in place.

#include <algorithm>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_float.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target.h must come first.
#include "hwy/highway.h"
#include "kernels/matmul_internal.h"
#include "quant/quant.h"
#include "util/half.h"
#include "util/result.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using matmul_detail::kFloatChunk;
using matmul_detail::kPanelRows;

// Token tile width that keeps 4 x T accumulators + 4 weight vectors in registers.
constexpr int kMaxTokens = (HWY_ARCH_X86 && HWY_TARGET != HWY_AVX3 && HWY_TARGET != HWY_AVX3_DL) ? 2 : 4;

// out[r][t] = dot(w[r][0..len), x[t][0..len)).
template <int T>
void FloatKernel(const float* const (&w)[kPanelRows], const float* const (&x)[4], int64_t len,
                 float (&out)[kPanelRows][4]) {
  const hn::ScalableTag<float> df;
  const int64_t n = int64_t(hn::Lanes(df));
  using V = hn::Vec<decltype(df)>;
  V acc[kPanelRows][T];
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) { KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = hn::Zero(df); }
  int64_t k = 0;
  for (; k + n <= len; k += n) {
    V wv[kPanelRows];
    KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) wv[r] = hn::LoadU(df, w[r] + k);
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      const V xv = hn::LoadU(df, x[t] + k);
      KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) acc[r][t] = hn::MulAdd(wv[r], xv, acc[r][t]);
    }
  }
  KVQ_UNROLL for (int r = 0; r < kPanelRows; ++r) {
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
      for (int64_t i = k; i < len; ++i) sum += w[r][i] * x[t][i];  // only for vectors wider than 32 floats
      out[r][t] = sum;
    }
  }
}

// The raw 16 bits of value i of an f16 / bf16 row.
uint16_t row_bits(const uint8_t* row, int64_t i) {
  uint16_t bits;
  std::memcpy(&bits, row + 2 * i, 2);
  return bits;
}

// Widens `len` values of one weight row, starting at value k0, into dst; returns where they are (f32
// weights are not copied).
const float* WidenRow(GgmlType type, const uint8_t* row, int64_t k0, int64_t len, float* dst) {
  const hn::ScalableTag<float> df;
  const size_t n = hn::Lanes(df);
  switch (type) {
    case GgmlType::F32:
      return reinterpret_cast<const float*>(row) + k0;
    case GgmlType::F16: {
      const hn::Rebind<hwy::float16_t, decltype(df)> dh;
      const auto* src = reinterpret_cast<const hwy::float16_t*>(row) + k0;
      int64_t i = 0;
      for (; i + int64_t(n) <= len; i += int64_t(n)) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, src + i)), df, dst + i);
      for (; i < len; ++i) dst[i] = fp16_to_f32(row_bits(row, k0 + i));
      return dst;
    }
    case GgmlType::BF16: {
      const hn::Rebind<hwy::bfloat16_t, decltype(df)> db;
      const auto* src = reinterpret_cast<const hwy::bfloat16_t*>(row) + k0;
      int64_t i = 0;
      for (; i + int64_t(n) <= len; i += int64_t(n)) hn::StoreU(hn::PromoteTo(df, hn::LoadU(db, src + i)), df, dst + i);
      for (; i < len; ++i) dst[i] = bf16_to_f32(row_bits(row, k0 + i));
      return dst;
    }
    default: {
      const TypeTraits& t = type_traits(type);
      dequantize_row(type, row + size_t(k0 / t.block_size) * size_t(t.type_size), dst, len);
      return dst;
    }
  }
}

void MatmulFloatRows(const WeightMatrix& w, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                     const matmul_detail::PanelScratch& s) {
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  const int64_t block = matmul_detail::token_block(w.n_in * int64_t(sizeof(float)));
  for (int64_t tb0 = 0; tb0 < n_tokens; tb0 += block) {
    const int64_t tb1 = std::min(n_tokens, tb0 + block);
    for (int64_t r = r0; r < r1; r += kPanelRows) {
      const int64_t nr = std::min(kPanelRows, r1 - r);
      for (int64_t k0 = 0; k0 < w.n_in; k0 += kFloatChunk) {
        const int64_t len = std::min(kFloatChunk, w.n_in - k0);
        const float* rows[kPanelRows];  // [kPanelRows][len] f32 weights of this chunk
        for (int64_t i = 0; i < kPanelRows; ++i) {
          float* dst = s.f + i * kFloatChunk;
          if (i < nr) {
            rows[i] = WidenRow(w.type, w.data + size_t(r + i) * w_row_bytes, k0, len, dst);
          } else {  // padding row: zeros, its results are dropped
            std::memset(dst, 0, sizeof(float) * size_t(len));
            rows[i] = dst;
          }
        }
        for (int64_t t = tb0; t < tb1; t += kMaxTokens) {
          const int nt = int(std::min<int64_t>(kMaxTokens, tb1 - t));
          const float* xs[4] = {};  // token rows of x at the chunk start
          for (int j = 0; j < nt; ++j) xs[j] = x + (t + j) * w.n_in + k0;
          float out[kPanelRows][4];
          if (nt == 1) FloatKernel<1>(rows, xs, len, out);
          if (nt == 2) FloatKernel<2>(rows, xs, len, out);
          if constexpr (kMaxTokens >= 4) {
            if (nt == 3) FloatKernel<3>(rows, xs, len, out);
            if (nt == 4) FloatKernel<4>(rows, xs, len, out);
          }
          for (int j = 0; j < nt; ++j) {
            float* dst = y + (t + j) * w.n_out + r;  // [n_tokens, n_out] row of token t + j
            for (int64_t i = 0; i < nr; ++i) dst[i] = (k0 == 0 ? 0.0f : dst[i]) + out[i][j];
          }
        }
      }
    }
  }
}

}  // namespace
// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {
HWY_EXPORT(MatmulFloatRows);

namespace matmul_detail {

void matmul_float_rows(const WeightMatrix& w, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                       const PanelScratch& scratch) {
  HWY_DYNAMIC_DISPATCH(MatmulFloatRows)(w, x, n_tokens, r0, r1, y, scratch);
}

}  // namespace matmul_detail
}  // namespace kvq
#endif  // HWY_ONCE
