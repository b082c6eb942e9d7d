// Scalar reference for the head-scaled KV formats (q8_h, nl5_h … nl2_h; quant/blocks.h), and the KV-row
// entry points that route every KV type (head records or zero-padded block rows).
//
// nl*_h quantizer, per head: the scale that gives the least squared error among multiples of the Gaussian
// fit (d = RMS / kNlGaussScale, the optimum if the head's values were Gaussian), codes the nearest levels.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/quant.h"
#include "util/half.h"
#include "util/result.h"

namespace kvq {
namespace {

// The scale search, in multiples of the Gaussian fit: 16 coarse steps over 0.6 .. 1.35, then +-2 fine
// steps around the best (`kvq sweep -m stories15M -c 256 --chunks 60 --keys nl4_h --vals f16 --rot kv`:
// KLD 7.6e-3; with alternating least-squares refits from the fit instead, 1.0e-2).
constexpr int kCoarseSteps = 16, kFineSteps = 2;
constexpr float kCoarseLow = 0.6f, kCoarseStep = 0.05f, kFineStep = 0.0125f;

// Nearest level of x (in int8 units) among n ascending levels: the first whose upper midpoint is >= x.
int nearest_level(const int8_t* levels, int n, float x) {
  int code = 0;
  while (code + 1 < n && x > 0.5f * (float(levels[code]) + float(levels[code + 1]))) ++code;
  return code;
}

// Levels are integers, so their midpoints are multiples of 0.5: the nearest level is constant on each
// half-unit bucket of [-128, 128), and one table lookup finds it.
struct NearestTable {
  uint8_t code[512];
  explicit NearestTable(const int8_t* levels, int n) : code() {
    for (int i = 0; i < 512; ++i) code[i] = uint8_t(nearest_level(levels, n, (float(i) + 0.5f) / 2.0f - 128.0f));
  }
  int operator()(float x) const {
    const float bucket = std::floor(2.0f * x) + 256.0f;
    return code[bucket <= 0.0f ? 0 : bucket >= 511.0f ? 511 : int(bucket)];
  }
};

const NearestTable& nearest_table(GgmlType type) {
  static const NearestTable nl5(kNl5Levels, 32), nl4(kNl4Levels, 16), nl3(kNl3Levels, 8), nl2(kNl2Levels, 4);
  switch (type) {
    case GgmlType::NL5_H:
      return nl5;
    case GgmlType::NL4_H:
      return nl4;
    case GgmlType::NL3_H:
      return nl3;
    default:
      return nl2;
  }
}

void pack_codes(const int* codes, int head_dim, int bits, uint8_t* out) {
  for (int g = 0; g < head_dim / kHeadGroup; ++g) {
    uint64_t word = 0;
    for (int j = 0; j < kHeadGroup; ++j) word |= uint64_t(codes[g * kHeadGroup + j]) << (bits * j);
    for (int b = 0; b < bits; ++b) out[g * bits + b] = uint8_t(word >> (8 * b));
  }
}

// Squared error of x quantized with scale d.
double head_error(const NearestTable& nearest, const int8_t* levels, const float* x, int head_dim, float d) {
  const float inv = 1.0f / d;
  double err = 0;
  for (int j = 0; j < head_dim; ++j) {
    const double e = x[j] - d * levels[nearest(x[j] * inv)];
    err += e * e;
  }
  return err;
}

void quantize_head_nl(GgmlType type, const float* x, int head_dim, uint8_t* out) {
  const int8_t* levels = head_levels(type);
  const int bits = head_bits(type);
  const NearestTable& nearest = nearest_table(type);
  double sum_sq = 0;
  for (int j = 0; j < head_dim; ++j) sum_sq += double(x[j]) * x[j];
  const float fit = float(std::sqrt(sum_sq / head_dim)) / kNlGaussScale[bits];
  // Coarse then fine search of the scale around the Gaussian fit, by squared error.
  float best = 1.0f;
  double best_err = -1;
  for (int c = 0; c < kCoarseSteps && fit > 0.0f; ++c) {
    const float f = kCoarseLow + kCoarseStep * float(c);
    const double err = head_error(nearest, levels, x, head_dim, fit * f);
    if (best_err < 0 || err < best_err) best_err = err, best = f;
  }
  const float centre = best;
  for (int c = -kFineSteps; c <= kFineSteps && fit > 0.0f; ++c) {
    const float f = centre + kFineStep * float(c);
    if (c == 0 || !(f > 0.0f)) continue;
    const double err = head_error(nearest, levels, x, head_dim, fit * f);
    if (err < best_err) best_err = err, best = f;
  }
  float d = fit * best;
  std::vector<int> codes(size_t(head_dim), 0);  // [head_dim] level index of each value
  if (d > 0.0f && std::isfinite(d)) {
    const float inv = 1.0f / d;
    for (int j = 0; j < head_dim; ++j) codes[size_t(j)] = nearest(x[j] * inv);
  } else {  // an all-zero head (or a non-finite one): zero scale, codes of the smallest level
    d = 0.0f;
    std::fill(codes.begin(), codes.end(), (1 << bits) / 2);
  }
  const fp16_bits d16 = f32_to_fp16(d);
  std::memcpy(out, &d16, 2);
  pack_codes(codes.data(), head_dim, bits, out + 2);
}

void quantize_head_q8(const float* x, int head_dim, uint8_t* out) {
  float amax = 0.0f;
  for (int j = 0; j < head_dim; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float inv = d > 0.0f ? 1.0f / d : 0.0f;
  const fp16_bits d16 = f32_to_fp16(d);
  std::memcpy(out, &d16, 2);
  for (int j = 0; j < head_dim; ++j)
    out[2 + j] = uint8_t(int8_t(std::lrint(std::fmin(127.0f, std::fmax(-127.0f, x[j] * inv)))));
}

}  // namespace

void quantize_head_row_ref(GgmlType type, const float* x, uint8_t* dst, int n_heads, int head_dim) {
  KVQ_CHECK(is_head_scaled(type) && head_dim % kHeadGroup == 0);
  const size_t record = head_record_bytes(type, head_dim);
  for (int h = 0; h < n_heads; ++h) {
    const float* xh = x + size_t(h) * head_dim;
    uint8_t* out = dst + size_t(h) * record;
    if (type == GgmlType::Q8_H) {
      quantize_head_q8(xh, head_dim, out);
    } else {
      quantize_head_nl(type, xh, head_dim, out);
    }
  }
}

void dequantize_head_row_ref(GgmlType type, const uint8_t* src, float* y, int n_heads, int head_dim) {
  KVQ_CHECK(is_head_scaled(type) && head_dim % kHeadGroup == 0);
  const size_t record = head_record_bytes(type, head_dim);
  const int bits = head_bits(type);
  const int8_t* levels = head_levels(type);
  for (int h = 0; h < n_heads; ++h) {
    const uint8_t* in = src + size_t(h) * record;
    fp16_bits d16;
    std::memcpy(&d16, in, 2);
    const float d = fp16_to_f32(d16);
    float* out = y + size_t(h) * head_dim;
    for (int g = 0; g < head_dim / kHeadGroup; ++g) {
      uint64_t word = 0;
      for (int b = 0; b < bits; ++b) word |= uint64_t(in[2 + g * bits + b]) << (8 * b);
      for (int j = 0; j < kHeadGroup; ++j) {
        const int code = int(word >> (bits * j)) & ((1 << bits) - 1);
        const float level = levels != nullptr ? float(levels[code]) : float(int8_t(uint8_t(code)));
        out[g * kHeadGroup + j] = d * level;
      }
    }
  }
}

void quantize_kv_rows(GgmlType type, const float* src, uint8_t* dst, int n_rows, int n_heads, int head_dim,
                      std::vector<float>& staging) {
  const int row_values = n_heads * head_dim;
  const size_t dst_row = kv_row_bytes(type, n_heads, head_dim);
  if (is_head_scaled(type)) {
    for (int t = 0; t < n_rows; ++t) {
      quantize_head_row_ref(type, src + size_t(t) * row_values, dst + size_t(t) * dst_row, n_heads, head_dim);
    }
    return;
  }
  const int block = type_traits(type).block_size;
  const int padded = (row_values + block - 1) / block * block;
  if (padded == row_values) {  // rows are contiguous on both sides: one call converts them all
    quantize_row_kv(type, src, dst, int64_t(n_rows) * row_values);
    return;
  }
  staging.assign(size_t(padded), 0.0f);
  for (int t = 0; t < n_rows; ++t) {
    std::memcpy(staging.data(), src + size_t(t) * size_t(row_values), size_t(row_values) * sizeof(float));
    quantize_row_kv(type, staging.data(), dst + size_t(t) * dst_row, padded);
  }
}

void dequantize_kv_row_ref(GgmlType type, const uint8_t* src, float* dst, int n_heads, int head_dim) {
  if (is_head_scaled(type)) return dequantize_head_row_ref(type, src, dst, n_heads, head_dim);
  const int row_values = n_heads * head_dim;
  const int block = type_traits(type).block_size;
  std::vector<float> padded(size_t((row_values + block - 1) / block * block));  // [padded values] f32
  dequantize_row_ref(type, src, padded.data(), int64_t(padded.size()));
  std::memcpy(dst, padded.data(), size_t(row_values) * sizeof(float));
}

}  // namespace kvq
