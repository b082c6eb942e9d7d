#include "kernels/ops.h"

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

void rope(float* x, int64_t n_tokens, int64_t pos0, const RopeParams& p) {
  // Same angle recurrence as llama.cpp (theta *= base^(-2/n_rot) per pair) so results agree closely.
  const float theta_scale = std::pow(p.freq_base, -2.0f / float(p.n_rot));
  std::vector<float> cos_sin(size_t(p.n_rot));  // [n_rot / 2] (cos, sin) pairs for one position
  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = float(pos0 + t);
    for (int i = 0; i < p.n_rot / 2; ++i) {
      float angle = p.freq_scale * theta;
      if (p.freq_factors) angle /= p.freq_factors[i];
      cos_sin[2 * i] = std::cos(angle);
      cos_sin[2 * i + 1] = std::sin(angle);
      theta *= theta_scale;
    }
    float* row = x + t * int64_t(p.n_head) * p.head_dim;
    for (int h = 0; h < p.n_head; ++h) {
      float* head = row + int64_t(h) * p.head_dim;
      for (int i = 0; i < p.n_rot / 2; ++i) {
        const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
        const float x0 = head[2 * i], x1 = head[2 * i + 1];
        head[2 * i] = x0 * c - x1 * s;
        head[2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  // Parallel only for prompt batches: one token's n_ff values are not worth waking threads for.
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
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
