// Typed views of a Llama model's tensors inside the mapped GGUF file (no copies).
#pragma once

#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/config.h"

namespace kvq {

// A 1-D f32 tensor (norm weights).
struct VectorView {
  const float* data = nullptr;  // [n]
  int64_t n = 0;
};

struct LayerWeights {
  VectorView attn_norm;  // [n_embd]
  WeightMatrix wq;       // [q_dim rows, n_embd]
  WeightMatrix wk;       // [kv_dim rows, n_embd]
  WeightMatrix wv;       // [kv_dim rows, n_embd]
  WeightMatrix wo;       // [n_embd rows, q_dim]
  VectorView ffn_norm;   // [n_embd]
  WeightMatrix w_gate;   // [n_ff rows, n_embd]
  WeightMatrix w_up;     // [n_ff rows, n_embd]
  WeightMatrix w_down;   // [n_embd rows, n_ff]
};

struct LlamaWeights {
  WeightMatrix token_embd;  // [n_vocab rows, n_embd]: rows are looked up, not multiplied
  std::vector<LayerWeights> layers;
  VectorView output_norm;  // [n_embd]
  WeightMatrix output;     // [n_vocab rows, n_embd]; token_embd when the file ties them
  bool tied_output = false;
  const float* rope_freq_factors = nullptr;  // [n_rot / 2] or null (Llama 3.1 style long-context rope)
  uint64_t total_bytes = 0;                  // all tensor bytes of the file
  uint64_t n_params = 0;
};

// Errors name the file and the tensor: missing, wrong shape, or a type kvq cannot multiply.
Result<LlamaWeights> bind_llama_weights(const gguf::File& file, const LlamaConfig& config);

}  // namespace kvq
