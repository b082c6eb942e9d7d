// Hyper-parameters of a decoder model, read from GGUF metadata: the architecture's features
// (model/arch.h) plus the numbers the file states, resolved per layer where layers differ.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/arch.h"
#include "util/result.h"

namespace kvq {

// What differs between the layers of one model (Gemma 2/3: sliding-window layers and global ones).
struct LayerConfig {
  int window = 0;  // sliding window: keys at positions p - window < k <= p are seen; 0 = all past keys
  float rope_base = 10000.0f;
  float rope_scale = 1.0f;  // 1 / linear scaling factor
};

enum class RopeScaling : uint8_t { kNone, kLinear, kYarn, kLongRope };

struct ModelConfig {
  std::string architecture;  // general.architecture
  const ArchFeatures* arch = nullptr;
  std::string name;  // general.name, may be empty
  int n_layer = 0;
  int n_embd = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;  // attention.key_length, else n_embd / n_head
  int n_ff = 0;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_rot = 0;  // rope.dimension_count: leading dims of each head that RoPE rotates
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / scaling factor (global layers)
  RopeScaling rope_scaling = RopeScaling::kNone;
  int rope_ctx_orig = 0;          // rope.scaling.original_context_length (YaRN, long rope)
  float rope_attn_factor = 1.0f;  // rope.scaling.attn_factor: cos/sin magnitude
  float rms_eps = 1e-5f;
  float attn_scale = 0.0f;          // multiplies q·k before softmax
  float attn_softcap = 0.0f;        // attention-logit softcap (0 = none)
  float final_softcap = 0.0f;       // output-logit softcap (0 = none)
  int sliding_window = 0;           // attention.sliding_window as the file states it (0 = none)
  std::vector<LayerConfig> layers;  // [n_layer]

  int n_gqa() const { return n_head / n_head_kv; }
  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
  // Returns the sliding window of every layer ([n_layer], 0 = global).
  std::vector<int> layer_windows() const;
  // RoPE of layer l; freq_factors is left for the caller (a tensor).
  RopeParams rope_params(int layer, int n_head_in_row) const;
};

// Errors name the file and the key: unsupported architecture or feature, missing or inconsistent values.
Result<ModelConfig> read_model_config(const gguf::File& file);

}  // namespace kvq
