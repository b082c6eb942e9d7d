#include "model/arch.h"

#include <string>

namespace kvq {
namespace {

constexpr ArchFeatures kArchitectures[] = {
    // Llama 2/3.x, Mistral, SmolLM, TinyLlama, ...: the base every row departs from.
    {.name = "llama"},
    {.name = "qwen2", .rope_layout = RopeLayout::kHalves, .qkv_bias = true},
    {.name = "qwen3", .rope_layout = RopeLayout::kHalves, .qk_norm = true},
    {.name = "gemma2",
     .rope_layout = RopeLayout::kHalves,
     .ffn_activation = FfnActivation::kGeluTanh,
     .post_norms = true,
     .embed_scale = true,
     .softcaps = true,
     .swa_period = 2,
     .wide_query_scale_layers = 46},
    {.name = "gemma3",
     .rope_layout = RopeLayout::kHalves,
     .ffn_activation = FfnActivation::kGeluTanh,
     .qk_norm = true,
     .post_norms = true,
     .embed_scale = true,
     .swa_period = 6,
     .swa_rope_base = 10000.0f,
     .wide_query_scale_layers = 62},
    {.name = "phi3", .rope_layout = RopeLayout::kHalves},
};

// Architectures users meet that kvq refuses, with the feature that stops it.
struct Refusal {
  std::string_view name;
  std::string_view reason;
};
constexpr Refusal kRefused[] = {
    {"qwen2moe", "mixture-of-experts layers"},     {"qwen3moe", "mixture-of-experts layers"},
    {"mixtral", "mixture-of-experts layers"},      {"dbrx", "mixture-of-experts layers"},
    {"olmoe", "mixture-of-experts layers"},        {"granitemoe", "mixture-of-experts layers"},
    {"deepseek", "mixture-of-experts layers"},     {"deepseek2", "multi-head latent attention (MLA)"},
    {"mamba", "state-space (SSM) layers"},         {"mamba2", "state-space (SSM) layers"},
    {"jamba", "state-space (SSM) layers"},         {"rwkv6", "recurrent (RWKV) layers"},
    {"rwkv7", "recurrent (RWKV) layers"},          {"clip", "a vision tower (multimodal projector file)"},
    {"mllama", "vision cross-attention layers"},   {"llama4", "mixture-of-experts layers"},
    {"gemma3n", "per-layer embeddings and AltUp"},
};

}  // namespace

std::string supported_architectures() {
  std::string s;
  for (const ArchFeatures& a : kArchitectures) s += (s.empty() ? "" : ", ") + std::string(a.name);
  return s;
}

Result<const ArchFeatures*> find_architecture(std::string_view name, std::string_view file) {
  for (const ArchFeatures& a : kArchitectures) {
    if (a.name == name) return &a;
  }
  for (const Refusal& r : kRefused) {
    if (r.name == name) {
      return make_error("{}: architecture '{}' uses {}, which kvq does not implement (supported: {})", file, name,
                        r.reason, supported_architectures());
    }
  }
  return make_error("{}: architecture '{}' is not supported (supported: {})", file, name, supported_architectures());
}

}  // namespace kvq
