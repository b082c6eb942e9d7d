// Scalar reference kernels for the plain types and the 32-value block formats (q4_0 … q8_1,
// iq4_nl), and the type-generic entry points. Bit-compatible with ggml's ggml-quants.c (see
// quant.h).
//
// No FP contraction in this file: ggml's reference computes `x * id + 8.5f` and `q * d + m` as two
// rounded operations; an FMA would change the bytes of the quantizers.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/quant.h"
#include "quant/quant_internal.h"
#include "util/half.h"
#include "util/result.h"

namespace kvq {

using quant_detail::best_index_int8;
using quant_detail::round_code;
using quant_detail::truncate_code;

namespace {

// Returns the value of largest magnitude in x[0, n), the first one on ties, as ggml's quantizers
// pick it
// (`if (amax < fabsf(v))`); +0 when all are zero, whatever their sign.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// ggml's running min/max (strict comparisons: the first of equal values wins, which fixes the sign
// of 0).
void min_max(const float* x, int n, float* min_out, float* max_out) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  *min_out = min;
  *max_out = max;
}

}  // namespace

// ---- 32-value blocks: dequantization ----

void dequantize_row_q4_0_ref(const BlockQ4_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = float((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1_ref(const BlockQ4_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    const float m = fp16_to_f32(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(x[i].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = float(x[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_row_q5_0_ref(const BlockQ5_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = int((qh >> j) & 1) << 4;         // bit 4 of value j
      const int hi1 = int((qh >> (j + 16)) & 1) << 4;  // bit 4 of value j + 16
      y[j] = float(((x[i].qs[j] & 0x0F) | hi0) - 16) * d;
      y[j + kQK / 2] = float(((x[i].qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

void dequantize_row_q5_1_ref(const BlockQ5_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    const float m = fp16_to_f32(x[i].m);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = int((qh >> j) & 1) << 4;
      const int hi1 = int((qh >> (j + 16)) & 1) << 4;
      y[j] = float((x[i].qs[j] & 0x0F) | hi0) * d + m;
      y[j + kQK / 2] = float((x[i].qs[j] >> 4) | hi1) * d + m;
    }
  }
}

void dequantize_row_q8_0_ref(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[i].qs[j]) * d;
  }
}

void dequantize_row_q8_1_ref(const BlockQ8_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[i].qs[j]) * d;
  }
}

void dequantize_row_iq4_nl_ref(const BlockIQ4_NL* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(kIq4nlValues[x[i].qs[j] & 0x0F]);
      y[j + kQK / 2] = d * float(kIq4nlValues[x[i].qs[j] >> 4]);
    }
  }
}

// ---- 32-value blocks: quantization ----

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8;  // the extreme value maps to code 0 exactly
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = truncate_code(x[j] * id + 8.5f, 15);
      const int q1 = truncate_code(x[j + kQK / 2] * id + 8.5f, 15);
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min, max;
    min_max(x, kQK, &min, &max);
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = truncate_code((x[j] - min) * id + 0.5f, 15);
      const int q1 = truncate_code((x[j + kQK / 2] - min) * id + 0.5f, 15);
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = truncate_code(x[j] * id + 16.5f, 31);
      const int q1 = truncate_code(x[j + kQK / 2] * id + 16.5f, 31);
      y[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void quantize_row_q5_1_ref(const float* x, BlockQ5_1* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min, max;
    min_max(x, kQK, &min, &max);
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = truncate_code((x[j] - min) * id + 0.5f, 31);
      const int q1 = truncate_code((x[j + kQK / 2] - min) * id + 0.5f, 31);
      y[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fabs(x[j]) > amax ? std::fabs(x[j]) : amax;
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(round_code(x[j] * id));
  }
}

void quantize_row_q8_1_ref(const float* x, BlockQ8_1* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fabs(x[j]) > amax ? std::fabs(x[j]) : amax;
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = int8_t(round_code(x[j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = f32_to_fp16(float(sum) * d);  // lets q4_1 / q5_1 dot products fold in their min term
  }
}

// ggml's quantize_iq4_nl without importance matrix: per block, weights w = x^2, an initial scale
// from the extreme value, then 15 candidate scales around it; the weighted least-squares scale of
// the best candidate is kept and every value re-snapped to the codebook with it.
void quantize_row_iq4_nl_ref(const float* x, BlockIQ4_NL* y, int64_t n) {
  constexpr int kNtry = 7;
  constexpr float kGroupMaxEps = 1e-15f;  // below this the block is treated as all zeros
  const int8_t* values = kIq4nlValues;
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float weight[kQK];  // [kQK] f32
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      weight[j] = x[j] * x[j];
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    float scale = 0.0f;
    if (amax >= kGroupMaxEps) {
      float id = 1.0f / (-max / float(values[0]));  // maps the extreme value to the codebook's end
      float sumqx = 0.0f, sumq2 = 0.0f;
      for (int j = 0; j < kQK; ++j) {
        const float q = float(values[best_index_int8(values, 16, id * x[j])]);
        sumqx += weight[j] * q * x[j];
        sumq2 += weight[j] * q * q;
      }
      scale = sumqx / sumq2;
      float best = scale * sumqx;
      for (int itry = -kNtry; itry <= kNtry; ++itry) {
        id = float(itry + values[0]) / max;
        sumqx = sumq2 = 0.0f;
        for (int j = 0; j < kQK; ++j) {
          const float q = float(values[best_index_int8(values, 16, id * x[j])]);
          sumqx += weight[j] * q * x[j];
          sumq2 += weight[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
          scale = sumqx / sumq2;
          best = scale * sumqx;
        }
      }
    }
    y[i].d = f32_to_fp16(scale);
    const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = best_index_int8(values, 16, id * x[j]);
      const int q1 = best_index_int8(values, 16, id * x[j + kQK / 2]);
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_row_iq4_nl_nosearch_ref(const float* x, BlockIQ4_NL* y, int64_t n) {
  constexpr float kGroupMaxEps = 1e-15f;
  const int8_t* values = kIq4nlValues;
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    uint8_t codes[kQK] = {};
    float scale = 0.0f;
    if (amax >= kGroupMaxEps) {
      const float id = float(values[0]) / max;  // the extreme value lands on the codebook's end
      float sumqx = 0.0f, sumq2 = 0.0f;
      for (int j = 0; j < kQK; ++j) {
        codes[j] = uint8_t(best_index_int8(values, 16, id * x[j]));
        const float q = float(values[codes[j]]), weight = x[j] * x[j];
        sumqx += weight * q * x[j];
        sumq2 += weight * q * q;
      }
      scale = sumqx / sumq2;
    }
    y[i].d = f32_to_fp16(scale);
    for (int j = 0; j < kQK / 2; ++j) y[i].qs[j] = uint8_t(codes[j] | (codes[j + kQK / 2] << 4));
  }
}

void quantize_row_kv(GgmlType type, const float* src, void* dst, int64_t n) {
  if (type == GgmlType::IQ4_NL) {
    return quantize_row_iq4_nl_nosearch_ref(src, static_cast<BlockIQ4_NL*>(dst), n);
  }
  quantize_row(type, src, dst, n);
}

// ---- type-generic entry points ----

bool is_kv_cache_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q5_1:
    case GgmlType::Q5_0:
    case GgmlType::Q4_1:
    case GgmlType::Q4_0:
    case GgmlType::IQ4_NL:
    case GgmlType::Q8_H:
    case GgmlType::NL5_H:
    case GgmlType::NL4_H:
    case GgmlType::NL3_H:
    case GgmlType::NL2_H:
      return true;
    default:
      return false;
  }
}

bool has_quantizer(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q8_1:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::IQ4_NL:
    case GgmlType::Q8_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row_ref(GgmlType type, const void* src, float* dst, int64_t n) {
  KVQ_CHECK(n >= 0 && n % type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * sizeof(float));
      return;
    case GgmlType::F16: {
      const auto* h = static_cast<const uint16_t*>(src);  // [n] binary16 bits
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(h[i]);
      return;
    }
    case GgmlType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);  // [n] bfloat16 bits
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    case GgmlType::Q4_0:
      return dequantize_row_q4_0_ref(static_cast<const BlockQ4_0*>(src), dst, n);
    case GgmlType::Q4_1:
      return dequantize_row_q4_1_ref(static_cast<const BlockQ4_1*>(src), dst, n);
    case GgmlType::Q5_0:
      return dequantize_row_q5_0_ref(static_cast<const BlockQ5_0*>(src), dst, n);
    case GgmlType::Q5_1:
      return dequantize_row_q5_1_ref(static_cast<const BlockQ5_1*>(src), dst, n);
    case GgmlType::Q8_0:
      return dequantize_row_q8_0_ref(static_cast<const BlockQ8_0*>(src), dst, n);
    case GgmlType::Q8_1:
      return dequantize_row_q8_1_ref(static_cast<const BlockQ8_1*>(src), dst, n);
    case GgmlType::IQ4_NL:
      return dequantize_row_iq4_nl_ref(static_cast<const BlockIQ4_NL*>(src), dst, n);
    case GgmlType::Q2_K:
      return dequantize_row_q2_K_ref(static_cast<const BlockQ2_K*>(src), dst, n);
    case GgmlType::Q3_K:
      return dequantize_row_q3_K_ref(static_cast<const BlockQ3_K*>(src), dst, n);
    case GgmlType::Q4_K:
      return dequantize_row_q4_K_ref(static_cast<const BlockQ4_K*>(src), dst, n);
    case GgmlType::Q5_K:
      return dequantize_row_q5_K_ref(static_cast<const BlockQ5_K*>(src), dst, n);
    case GgmlType::Q6_K:
      return dequantize_row_q6_K_ref(static_cast<const BlockQ6_K*>(src), dst, n);
    case GgmlType::Q8_K:
      return dequantize_row_q8_K_ref(static_cast<const BlockQ8_K*>(src), dst, n);
    case GgmlType::IQ4_XS:
      return dequantize_row_iq4_xs_ref(static_cast<const BlockIQ4_XS*>(src), dst, n);
    default:
      KVQ_CHECK(false && "dequantize_row_ref: type has no dequantizer");
  }
}

void quantize_row_ref(GgmlType type, const float* src, void* dst, int64_t n) {
  KVQ_CHECK(n >= 0 && n % type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * sizeof(float));
      return;
    case GgmlType::F16: {
      auto* h = static_cast<uint16_t*>(dst);  // [n] binary16 bits
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(src[i]);
      return;
    }
    case GgmlType::BF16: {
      auto* h = static_cast<uint16_t*>(dst);  // [n] bfloat16 bits
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
      return;
    }
    case GgmlType::Q4_0:
      return quantize_row_q4_0_ref(src, static_cast<BlockQ4_0*>(dst), n);
    case GgmlType::Q4_1:
      return quantize_row_q4_1_ref(src, static_cast<BlockQ4_1*>(dst), n);
    case GgmlType::Q5_0:
      return quantize_row_q5_0_ref(src, static_cast<BlockQ5_0*>(dst), n);
    case GgmlType::Q5_1:
      return quantize_row_q5_1_ref(src, static_cast<BlockQ5_1*>(dst), n);
    case GgmlType::Q8_0:
      return quantize_row_q8_0_ref(src, static_cast<BlockQ8_0*>(dst), n);
    case GgmlType::Q8_1:
      return quantize_row_q8_1_ref(src, static_cast<BlockQ8_1*>(dst), n);
    case GgmlType::IQ4_NL:
      return quantize_row_iq4_nl_ref(src, static_cast<BlockIQ4_NL*>(dst), n);
    case GgmlType::Q8_K:
      return quantize_row_q8_K_ref(src, static_cast<BlockQ8_K*>(dst), n);
    default:
      KVQ_CHECK(false && "quantize_row_ref: type has no quantizer");
  }
}

}  // namespace kvq
