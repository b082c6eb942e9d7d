// Element-wise and per-row operations of the forward pass. They are O(n_embd) per token, a rounding
// error next to the matmuls and attention, so they stay plain loops the compiler vectorises.
#pragma once

#include <cstdint>

namespace kvq {

// out[t, :] = x[t, :] / rms(x[t, :]) * weight.   x, out: [n_tokens, n] (may alias); weight: [n].
// Per-head norms (q/k norm) pass n_tokens * n_head rows of head_dim.
void rms_norm(const float* x, const float* weight, float* out, int64_t n_tokens, int64_t n, float eps);

// Which dims of a head RoPE rotates together.
enum class RopeLayout : uint8_t {
  kAdjacentPairs,  // (x[2i], x[2i+1]): llama.cpp's "normal" rope, for which Llama converters permute q/k
  kHalves,         // (x[i], x[i + n_rot/2]): GPT-NeoX style (Qwen, Gemma, Phi-3)
};

// YaRN (arXiv 2309.00071) as ggml computes it: per rotated pair, a ramp between interpolated
// (freq_scale * theta) and extrapolated (theta) angles, and cos/sin scaled by the attention factor.
struct RopeYarn {
  float ext_factor = 0.0f;  // 0: plain interpolation; 1: YaRN ramp
  float corr_low = 0.0f;    // pair index below which angles extrapolate
  float corr_high = 0.0f;   // pair index above which angles interpolate
};

struct RopeParams {
  int n_head = 0;  // heads in the row
  int head_dim = 0;
  int n_rot = 0;  // leading dims of each head that rotate (partial rotary: n_rot < head_dim)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;              // 1 / linear (or YaRN) scaling factor
  const float* freq_factors = nullptr;  // [n_rot / 2] angle divisors (Llama 3.1 rope_freqs, Phi-3 long rope) or null
  RopeLayout layout = RopeLayout::kAdjacentPairs;
  float attn_factor = 1.0f;  // multiplies cos and sin (YaRN / long-rope magnitude correction)
  RopeYarn yarn;
};

// Returns YaRN's correction range for n_ctx_orig trained positions (beta_fast / beta_slow rotations).
RopeYarn rope_yarn_corrections(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow);

// Rotates each head's first n_rot dims, pair i by angle pos * base^(-2i / n_rot) (scaled as the params
// say). x: [n_tokens, n_head * head_dim], token t at position pos0 + t.
void rope(float* x, int64_t n_tokens, int64_t pos0, const RopeParams& p);

// out = silu(gate) * up.   All [n] (out may alias gate). Vectorised (kernels/activations.cpp).
void swiglu(const float* gate, const float* up, float* out, int64_t n);
// out = gelu(gate) * up with GELU's tanh form (Gemma's gelu_pytorch_tanh).   All [n].
void geglu(const float* gate, const float* up, float* out, int64_t n);
// The scalar references of both.
void swiglu_ref(const float* gate, const float* up, float* out, int64_t n);
void geglu_ref(const float* gate, const float* up, float* out, int64_t n);

// Walsh–Hadamard transform with signs of each row (kv/rotation.h): x_i <- H (s ⊙ x_i), or s ⊙ (H x_i) when
// `inverse`. x: [n_vectors, dim], dim a power of two; signs: [dim]. H unnormalised (fold 1/√dim into s).
// Vectorised (kernels/hadamard.cpp), threaded from 256 rows; the scalar form is the reference.
void hadamard_rows(float* x, int64_t n_vectors, int dim, const float* signs, bool inverse);
void hadamard_rows_ref(float* x, int64_t n_vectors, int dim, const float* signs, bool inverse);

// x = cap * tanh(x / cap) (Gemma 2's logit softcapping).   [n]
void softcap_inplace(float* x, int64_t n, float cap);

// x[t, :] += bias for every token.   x: [n_tokens, n], bias: [n]
void add_bias(float* x, const float* bias, int64_t n_tokens, int64_t n);

// x += y.   [n]
void add_inplace(float* x, const float* y, int64_t n);

// x *= a.   [n]
void scale_inplace(float* x, int64_t n, float a);

// Numerically stable in-place softmax of [n]; returns log(sum(exp(x - max))) + max (the log-partition).
double softmax_inplace(float* x, int64_t n);

}  // namespace kvq
