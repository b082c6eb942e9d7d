// Typed views of a model's tensors inside the mapped GGUF file (no copies). Fused tensors (Phi-3's
// attn_qkv and gate+up ffn_up) are bound as row ranges, so the forward pass sees separate q/k/v and
// gate/up matrices whatever the file holds.
#pragma once

#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/config.h"

namespace kvq {

// A 1-D f32 tensor (norm weights, biases); data is null when the file does not have it.
struct VectorView {
  const float* data = nullptr;  // [n]
  int64_t n = 0;
  explicit operator bool() const { return data != nullptr; }
};

struct LayerWeights {
  VectorView attn_norm;       // [n_embd]
  WeightMatrix wq;            // [q_dim rows, n_embd]
  WeightMatrix wk;            // [kv_dim rows, n_embd]
  WeightMatrix wv;            // [kv_dim rows, n_embd]
  VectorView bq, bk, bv;      // [q_dim], [kv_dim], [kv_dim] or absent
  VectorView q_norm, k_norm;  // [head_dim] or absent
  WeightMatrix wo;            // [n_embd rows, q_dim]
  VectorView post_attn_norm;  // [n_embd] or absent
  VectorView ffn_norm;        // [n_embd]
  WeightMatrix w_gate;        // [n_ff rows, n_embd]
  WeightMatrix w_up;          // [n_ff rows, n_embd]
  WeightMatrix w_down;        // [n_embd rows, n_ff]
  VectorView post_ffn_norm;   // [n_embd] or absent
};

struct ModelWeights {
  WeightMatrix token_embd;  // [n_vocab rows, n_embd]: rows are looked up, not multiplied
  std::vector<LayerWeights> layers;
  VectorView output_norm;  // [n_embd]
  WeightMatrix output;     // [n_vocab rows, n_embd]; token_embd when the file ties them
  bool tied_output = false;
  // [n_rot / 2] RoPE angle divisors or null: Llama 3.1 rope_freqs; Phi-3 long rope's short and long sets.
  const float* rope_freq_factors = nullptr;
  const float* rope_factors_long = nullptr;
  uint64_t total_bytes = 0;  // all tensor bytes of the file
  uint64_t n_params = 0;
};

// Errors name the file and the tensor: missing, wrong shape, or a type kvq cannot multiply.
Result<ModelWeights> bind_model_weights(const gguf::File& file, const ModelConfig& config);

}  // namespace kvq
