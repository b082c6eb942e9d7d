// The decoder architectures kvq runs, each described by the features that set it apart from Llama.
// One forward pass (model/model.cpp) reads these flags; adding an architecture is a row of kArchitectures
// plus whatever feature it brings that no row has yet.
#pragma once

#include <string_view>

#include "kernels/ops.h"
#include "util/result.h"

namespace kvq {

enum class FfnActivation : uint8_t { kSilu, kGeluTanh };

struct ArchFeatures {
  std::string_view name;  // general.architecture
  RopeLayout rope_layout = RopeLayout::kAdjacentPairs;
  FfnActivation ffn_activation = FfnActivation::kSilu;
  bool qkv_bias = false;     // attn_{q,k,v}.bias required (Qwen2); any architecture may carry them
  bool qk_norm = false;      // attn_q_norm / attn_k_norm: RMSNorm over each head before RoPE (Qwen3, Gemma 3)
  bool post_norms = false;   // post_attention_norm / post_ffw_norm before each residual add (Gemma 2/3)
  bool embed_scale = false;  // embeddings multiplied by sqrt(n_embd) (Gemma)
  bool softcaps = false;     // reads attn_logit_softcapping / final_logit_softcapping (Gemma 2)
  // Sliding-window layers: in every period of swa_period layers all but the last are windowed
  // (Gemma 2: 2, Gemma 3: 6); 0 = no layer is (a file's sliding_window key is then ignored, as llama.cpp
  // does for Phi-3, whose converters write the key but whose window llama.cpp disables).
  int swa_period = 0;
  float swa_rope_base = 0.0f;  // RoPE base on windowed layers, unscaled (Gemma 3: 10,000); 0 = the global one
  // 1 / sqrt(n_embd / n_head) instead of 1 / sqrt(head_dim) for these layer counts (Gemma 27B's
  // query_pre_attn_scalar, which llama.cpp also keys on the layer count).
  int wide_query_scale_layers = 0;
};

// Returns the features of `name`, or an error that says why it is refused (a family kvq does not run,
// e.g. mixture-of-experts, state-space, latent attention or vision towers) and lists the supported ones.
Result<const ArchFeatures*> find_architecture(std::string_view name, std::string_view file);

// "llama, qwen2, qwen3, gemma2, gemma3, phi3"
std::string supported_architectures();

}  // namespace kvq
