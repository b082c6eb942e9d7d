#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kvq {

void rms_norm(const float* x, const float* weight, float* out, int64_t n_tokens, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (n_tokens > 1)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = x + t * n;
    float* dst = out + t * n;
    double sum_sq = 0.0;  // double: n_embd up to 8192 squares of activations that reach 1e3
    for (int64_t i = 0; i < n; ++i) sum_sq += double(row[i]) * row[i];
    const float scale = float(1.0 / std::sqrt(sum_sq / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) dst[i] = row[i] * scale * weight[i];
  }
}

RopeYarn rope_yarn_corrections(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow) {
  // The pair index whose wavelength fits `rotations` turns into the trained context.
  const auto corr_dim = [&](float rotations) {
    return float(n_rot) * std::log(float(n_ctx_orig) / (rotations * 2.0f * float(M_PI))) / (2.0f * std::log(freq_base));
  };
  RopeYarn y;
  y.ext_factor = 1.0f;
  y.corr_low = std::max(0.0f, std::floor(corr_dim(beta_fast)));
  y.corr_high = std::min(float(n_rot - 1), std::ceil(corr_dim(beta_slow)));
  return y;
}

void rope(float* x, int64_t n_tokens, int64_t pos0, const RopeParams& p) {
  // Same angle recurrence as llama.cpp (theta *= base^(-2/n_rot) per pair) so results agree closely.
  const float theta_scale = std::pow(p.freq_base, -2.0f / float(p.n_rot));
  const int half = p.n_rot / 2;
  // YaRN raises the magnitude with the interpolation: ggml folds 1 + 0.1 ln(1 / freq_scale) into cos/sin.
  const float mscale = p.attn_factor * (p.yarn.ext_factor != 0.0f ? 1.0f + 0.1f * std::log(1.0f / p.freq_scale) : 1.0f);
  std::vector<float> cos_sin(size_t(p.n_rot));  // [n_rot / 2] (cos, sin) pairs for one position
  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = float(pos0 + t);
    for (int i = 0; i < half; ++i) {
      float extrap = theta;
      if (p.freq_factors) extrap /= p.freq_factors[i];
      float angle = p.freq_scale * extrap;
      if (p.yarn.ext_factor != 0.0f) {
        const float y = (float(i) - p.yarn.corr_low) / std::max(0.001f, p.yarn.corr_high - p.yarn.corr_low);
        const float ramp = (1.0f - std::min(1.0f, std::max(0.0f, y))) * p.yarn.ext_factor;
        angle = angle * (1.0f - ramp) + extrap * ramp;
      }
      cos_sin[2 * i] = std::cos(angle) * mscale;
      cos_sin[2 * i + 1] = std::sin(angle) * mscale;
      theta *= theta_scale;
    }
    // Pair i is (2i, 2i + 1) or (i, i + half); dims past n_rot pass through.
    const int stride = p.layout == RopeLayout::kHalves ? 1 : 2;
    const int offset = p.layout == RopeLayout::kHalves ? half : 1;
    float* row = x + t * int64_t(p.n_head) * p.head_dim;
    for (int h = 0; h < p.n_head; ++h) {
      float* head = row + int64_t(h) * p.head_dim;
      for (int i = 0; i < half; ++i) {
        const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
        float* a = head + i * stride;
        const float x0 = a[0], x1 = a[offset];
        a[0] = x0 * c - x1 * s;
        a[offset] = x0 * s + x1 * c;
      }
    }
  }
}

void softcap_inplace(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

void add_bias(float* x, const float* bias, int64_t n_tokens, int64_t n) {
  for (int64_t t = 0; t < n_tokens; ++t) add_inplace(x + t * n, bias, n);
}

void scale_inplace(float* x, int64_t n, float a) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

double softmax_inplace(float* x, int64_t n) {
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return std::log(sum) + max;
}

}  // namespace kvq
