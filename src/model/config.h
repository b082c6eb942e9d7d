// Hyper-parameters of a Llama-family model, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "util/result.h"

namespace kvq {

struct LlamaConfig {
  std::string architecture;  // "llama"
  std::string name;          // general.name, may be empty
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
  float rope_freq_scale = 1.0f;  // 1 / linear scaling factor
  float rms_eps = 1e-5f;
  int sliding_window = 0;  // 0 = none

  int n_gqa() const { return n_head / n_head_kv; }
  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
};

// Errors name the file and the key: unsupported architecture, missing or inconsistent values.
Result<LlamaConfig> read_llama_config(const gguf::File& file);

}  // namespace kvq
