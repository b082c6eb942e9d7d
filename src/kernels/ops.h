// Element-wise and per-row operations of the forward pass. They are O(n_embd) per token, a rounding
// error next to the matmuls and attention, so they stay plain loops the compiler vectorises.
#pragma once

#include <cstdint>

namespace kvq {

// out[t, :] = x[t, :] / rms(x[t, :]) * weight.   x, out: [n_tokens, n] (may alias); weight: [n].
void rms_norm(const float* x, const float* weight, float* out, int64_t n_tokens, int64_t n, float eps);

struct RopeParams {
  int n_head;  // heads in the row
  int head_dim;
  int n_rot;  // leading dims of each head that rotate
  float freq_base;
  float freq_scale;           // 1 / linear scaling factor
  const float* freq_factors;  // [n_rot / 2] or null
};
// Rotates pairs (x[2i], x[2i+1]) of each head by pos * freq_scale * base^(-2i / n_rot) (llama.cpp's
// "normal" layout, which Llama GGUF converters permute q/k weights for).
// x: [n_tokens, n_head * head_dim], token t at position pos0 + t.
void rope(float* x, int64_t n_tokens, int64_t pos0, const RopeParams& p);

// out = silu(gate) * up.   All [n].
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// x += y.   [n]
void add_inplace(float* x, const float* y, int64_t n);

// Numerically stable in-place softmax of [n]; returns log(sum(exp(x - max))) + max (the log-partition).
double softmax_inplace(float* x, int64_t n);

}  // namespace kvq
