// The shapes of the models users run, as their Hugging Face config.json files give them (num_hidden_layers,
// hidden_size, num_attention_heads, num_key_value_heads, head_dim, intermediate_size,
// max_position_embeddings, rope_theta, rms_norm_eps, vocab_size, tie_word_embeddings, sliding_window,
// softcaps, rope_scaling). Each row names its source repository.
#include <cmath>

#include "cli/synth.h"

namespace kvq::cli {
namespace {

using A = SynthArch;
using V = SynthVocab;

// Llama 3.1 / 3.2 rope_scaling: {"rope_type": "llama3", factor, low_freq_factor 1, high_freq_factor 4,
// original_max_position_embeddings 8192}.
constexpr Llama3Rope kLlama31Rope{8.0f, 1.0f, 4.0f, 8192};
constexpr Llama3Rope kLlama32Rope{32.0f, 1.0f, 4.0f, 8192};

// clang-format off
constexpr SynthPreset kPresets[] = {
    // Llama family. mini is the shape of the synth-mini fixtures; the others are real models.
    {"mini", "kvq fixtures (fixtures/README.md)",
     {.arch = A::Llama, .n_layer = 4, .n_embd = 256, .n_head = 4, .n_head_kv = 2, .n_ff = 768, .n_ctx = 2048}},
    {"tinyllama-1.1b", "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
     {.arch = A::Llama, .n_layer = 22, .n_embd = 2048, .n_head = 32, .n_head_kv = 4, .n_ff = 5632, .n_ctx = 2048}},
    {"llama-2-7b", "meta-llama/Llama-2-7b-hf",
     {.arch = A::Llama, .n_layer = 32, .n_embd = 4096, .n_head = 32, .n_head_kv = 32, .n_ff = 11008,
      .n_ctx = 4096}},
    {"llama-3-8b", "meta-llama/Meta-Llama-3-8B",
     {.arch = A::Llama, .n_layer = 32, .n_embd = 4096, .n_head = 32, .n_head_kv = 8, .n_ff = 14336, .n_ctx = 8192,
      .rope_base = 500000.0f, .n_vocab = 128256, .vocab = V::Llama3}},
    {"llama-3.1-8b", "meta-llama/Llama-3.1-8B",
     {.arch = A::Llama, .n_layer = 32, .n_embd = 4096, .n_head = 32, .n_head_kv = 8, .n_ff = 14336,
      .n_ctx = 131072, .rope_base = 500000.0f, .n_vocab = 128256, .vocab = V::Llama3, .llama3_rope = kLlama31Rope}},
    {"llama-3.2-1b", "meta-llama/Llama-3.2-1B",
     {.arch = A::Llama, .n_layer = 16, .n_embd = 2048, .n_head = 32, .n_head_kv = 8, .head_dim = 64, .n_ff = 8192,
      .n_ctx = 131072, .rope_base = 500000.0f, .n_vocab = 128256, .tied = true, .vocab = V::Llama3,
      .llama3_rope = kLlama32Rope}},
    {"llama-3.2-3b", "meta-llama/Llama-3.2-3B",
     {.arch = A::Llama, .n_layer = 28, .n_embd = 3072, .n_head = 24, .n_head_kv = 8, .head_dim = 128, .n_ff = 8192,
      .n_ctx = 131072, .rope_base = 500000.0f, .n_vocab = 128256, .tied = true, .vocab = V::Llama3,
      .llama3_rope = kLlama32Rope}},
    {"mistral-7b", "mistralai/Mistral-7B-v0.1",
     {.arch = A::Llama, .n_layer = 32, .n_embd = 4096, .n_head = 32, .n_head_kv = 8, .n_ff = 14336,
      .n_ctx = 32768}},
    // Mistral-Nemo's tekken vocabulary is not in shared/data: the Llama-2 one padded to its 131072 rows.
    {"mistral-nemo-12b", "mistralai/Mistral-Nemo-Instruct-2407",
     {.arch = A::Llama, .n_layer = 40, .n_embd = 5120, .n_head = 32, .n_head_kv = 8, .head_dim = 128,
      .n_ff = 14336, .n_ctx = 1024000, .rope_base = 1000000.0f, .n_vocab = 131072}},
    // Qwen: the Qwen3 vocabulary (151669 tokens) padded to the models' vocab_size, as the converter pads.
    {"qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct",
     {.arch = A::Qwen2, .n_layer = 24, .n_embd = 896, .n_head = 14, .n_head_kv = 2, .head_dim = 64, .n_ff = 4864,
      .n_ctx = 32768, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 151936, .tied = true, .vocab = V::Qwen}},
    {"qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct",
     {.arch = A::Qwen2, .n_layer = 28, .n_embd = 3584, .n_head = 28, .n_head_kv = 4, .head_dim = 128,
      .n_ff = 18944, .n_ctx = 32768, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 152064,
      .vocab = V::Qwen}},
    {"qwen3-0.6b", "Qwen/Qwen3-0.6B",
     {.arch = A::Qwen3, .n_layer = 28, .n_embd = 1024, .n_head = 16, .n_head_kv = 8, .head_dim = 128, .n_ff = 3072,
      .n_ctx = 40960, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 151936, .tied = true, .vocab = V::Qwen}},
    {"qwen3-8b", "Qwen/Qwen3-8B",
     {.arch = A::Qwen3, .n_layer = 36, .n_embd = 4096, .n_head = 32, .n_head_kv = 8, .head_dim = 128,
      .n_ff = 12288, .n_ctx = 40960, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 151936,
      .vocab = V::Qwen}},
    // Gemma: the Gemma 3 vocabulary (262145 tokens) cut or padded to each model's vocab_size. Gemma 2's own
    // 256000-token vocabulary is not in shared/data; the cut Gemma 3 one gives its shape.
    {"gemma-2-2b", "google/gemma-2-2b-it",
     {.arch = A::Gemma2, .n_layer = 26, .n_embd = 2304, .n_head = 8, .n_head_kv = 4, .head_dim = 256, .n_ff = 9216,
      .n_ctx = 8192, .rms_eps = 1e-6f, .n_vocab = 256000, .tied = true, .vocab = V::Gemma, .sliding_window = 4096,
      .attn_softcap = 50.0f, .final_softcap = 30.0f}},
    {"gemma-3-1b", "google/gemma-3-1b-it",
     {.arch = A::Gemma3, .n_layer = 26, .n_embd = 1152, .n_head = 4, .n_head_kv = 1, .head_dim = 256, .n_ff = 6912,
      .n_ctx = 32768, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 262144, .tied = true, .vocab = V::Gemma,
      .sliding_window = 512}},
    {"gemma-3-4b", "google/gemma-3-4b-it (text_config)",
     {.arch = A::Gemma3, .n_layer = 34, .n_embd = 2560, .n_head = 8, .n_head_kv = 4, .head_dim = 256,
      .n_ff = 10240, .n_ctx = 131072, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 262208, .tied = true,
      .vocab = V::Gemma, .sliding_window = 1024, .rope_linear_factor = 8.0f}},
    {"gemma-3-12b", "google/gemma-3-12b-it (text_config)",
     {.arch = A::Gemma3, .n_layer = 48, .n_embd = 3840, .n_head = 16, .n_head_kv = 8, .head_dim = 256,
      .n_ff = 15360, .n_ctx = 131072, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 262208, .tied = true,
      .vocab = V::Gemma, .sliding_window = 1024, .rope_linear_factor = 8.0f}},
    {"gemma-3-27b", "google/gemma-3-27b-it (text_config)",
     {.arch = A::Gemma3, .n_layer = 62, .n_embd = 5376, .n_head = 32, .n_head_kv = 16, .head_dim = 128,
      .n_ff = 21504, .n_ctx = 131072, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .n_vocab = 262208, .tied = true,
      .vocab = V::Gemma, .sliding_window = 1024, .rope_linear_factor = 8.0f}},
    {"phi-3.5-mini", "microsoft/Phi-3.5-mini-instruct",
     {.arch = A::Phi3, .n_layer = 32, .n_embd = 3072, .n_head = 32, .n_head_kv = 32, .head_dim = 96, .n_ff = 8192,
      .n_ctx = 131072, .n_vocab = 32064, .vocab = V::Phi3, .sliding_window = 262144,
      .rope_original_context = 4096, .phi3_longrope = true}},
};

// microsoft/Phi-3.5-mini-instruct config.json, rope_scaling (type longrope).
constexpr float kPhi35LongFactors[48] = {
    1.08f,  1.11f,  1.14f,  1.34f,  1.59f,  1.60f,  1.62f,  2.62f,  3.23f,  3.23f,  4.79f,  7.40f,
    7.70f,  9.09f,  12.20f, 17.67f, 24.46f, 28.57f, 30.42f, 30.84f, 32.59f, 32.93f, 42.32f, 44.96f,
    50.34f, 50.45f, 57.55f, 57.93f, 58.21f, 60.14f, 62.61f, 62.62f, 62.71f, 63.14f, 63.14f, 63.77f,
    63.93f, 63.96f, 63.97f, 64.03f, 64.07f, 64.08f, 64.12f, 64.41f, 64.48f, 64.51f, 64.53f, 64.84f};
constexpr float kPhi35ShortFactors[48] = {
    1.00f, 1.02f, 1.03f, 1.03f, 1.05f, 1.05f, 1.05f, 1.05f, 1.05f, 1.07f, 1.10f, 1.11f,
    1.16f, 1.16f, 1.17f, 1.29f, 1.34f, 1.68f, 1.79f, 1.82f, 1.85f, 1.88f, 1.91f, 1.94f,
    1.99f, 2.02f, 2.02f, 2.02f, 2.02f, 2.02f, 2.02f, 2.03f, 2.03f, 2.03f, 2.03f, 2.03f,
    2.03f, 2.03f, 2.03f, 2.03f, 2.08f, 2.09f, 2.19f, 2.22f, 2.59f, 2.73f, 2.75f, 2.84f};
// clang-format on

}  // namespace

std::string_view arch_name(SynthArch arch) {
  switch (arch) {
    case SynthArch::Llama:
      return "llama";
    case SynthArch::Qwen2:
      return "qwen2";
    case SynthArch::Qwen3:
      return "qwen3";
    case SynthArch::Gemma2:
      return "gemma2";
    case SynthArch::Gemma3:
      return "gemma3";
    case SynthArch::Phi3:
      return "phi3";
  }
  return "?";
}

std::optional<SynthArch> parse_arch(std::string_view name) {
  for (SynthArch a :
       {SynthArch::Llama, SynthArch::Qwen2, SynthArch::Qwen3, SynthArch::Gemma2, SynthArch::Gemma3, SynthArch::Phi3}) {
    if (arch_name(a) == name) return a;
  }
  return std::nullopt;
}

std::string vocab_path(SynthVocab vocab) {
  const std::string data = KVQ_SHARED_DATA_DIR;
  switch (vocab) {
    case SynthVocab::LlamaSpm:
      return KVQ_DEFAULT_VOCAB;
    case SynthVocab::Llama3:
      return data + "/vocab/ggml-vocab-llama3.gguf";
    case SynthVocab::Qwen:
      return data + "/vocab/ggml-vocab-qwen3.gguf";
    case SynthVocab::Gemma:
      return data + "/vocab/ggml-vocab-gemma3.gguf";
    case SynthVocab::Phi3:
      return data + "/llama.cpp-vocab/ggml-vocab-phi-3.gguf";
  }
  return KVQ_DEFAULT_VOCAB;
}

std::span<const SynthPreset> synth_presets() { return kPresets; }

const SynthPreset* find_preset(std::string_view name) {
  for (const SynthPreset& p : kPresets) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

SynthShape custom_base_shape(SynthArch arch) {
  // The mini shape (4 layers, n_embd 256, 4 heads of 64, 2 KV heads, ff 768) with each family's features
  // at the values of its small real models.
  SynthShape s{.arch = arch, .n_layer = 4, .n_embd = 256, .n_head = 4, .n_head_kv = 2, .n_ff = 768, .n_ctx = 2048};
  switch (arch) {
    case SynthArch::Llama:
      break;
    case SynthArch::Qwen2:
    case SynthArch::Qwen3:
      s.rope_base = 1000000.0f;
      s.rms_eps = 1e-6f;
      s.tied = true;
      s.vocab = SynthVocab::Qwen;
      break;
    case SynthArch::Gemma2:
      s.n_layer = 26;  // llama.cpp derives gemma2's attention scale from the layer count: 26, 42 or 46
      s.rms_eps = 1e-6f;
      s.tied = true;
      s.vocab = SynthVocab::Gemma;
      s.sliding_window = 4096;
      s.attn_softcap = 50.0f;
      s.final_softcap = 30.0f;
      break;
    case SynthArch::Gemma3:
      s.n_layer = 6;  // every sixth layer is global: fewer layers would have none
      s.rope_base = 1000000.0f;
      s.rms_eps = 1e-6f;
      s.tied = true;
      s.vocab = SynthVocab::Gemma;
      s.sliding_window = 512;
      break;
    case SynthArch::Phi3:
      s.n_head_kv = s.n_head;      // Phi-3-mini has no GQA
      s.vocab = SynthVocab::Phi3;  // sliding_window and original context follow --n-ctx (see synth.cpp)
      break;
  }
  return s;
}

std::string describe_shape(const SynthShape& s) {
  std::string text =
      fmt::format("{}, {} layers, n_embd {}, {} heads ({} kv) x {}, ff {}, ctx {}, rope {:.0f}", arch_name(s.arch),
                  s.n_layer, s.n_embd, s.n_head, s.n_head_kv, s.key_length(), s.n_ff, s.n_ctx, s.rope_base);
  if (s.rope_dims() != s.key_length()) text += fmt::format(" on {} dims", s.rope_dims());
  if (s.n_vocab) text += fmt::format(", vocab {}", s.n_vocab);
  if (s.tied) text += ", tied";
  if (s.llama3_rope.factor > 0) text += fmt::format(", llama3 rope x{:g}", s.llama3_rope.factor);
  if (s.sliding_window) text += fmt::format(", swa {}", s.sliding_window);
  if (s.attn_softcap > 0) text += fmt::format(", softcap {:g}/{:g}", s.attn_softcap, s.final_softcap);
  if (s.rope_linear_factor > 0) text += fmt::format(", rope linear x{:g}", s.rope_linear_factor);
  if (s.phi3_longrope) text += fmt::format(", longrope from {}", s.rope_original_context);
  return text;
}

std::string describe_presets() {
  std::string text = "Presets (--preset; each implies its --arch; shape flags override):\n";
  for (const SynthPreset& p : kPresets) text += fmt::format("  {:<17} {}\n", p.name, describe_shape(p.shape));
  return text;
}

std::span<const float> phi35_long_factors() { return kPhi35LongFactors; }
std::span<const float> phi35_short_factors() { return kPhi35ShortFactors; }

std::vector<float> llama3_rope_factors(const Llama3Rope& rope, float base, int n_rot) {
  // Each rotated pair's frequency is divided by its factor: 1 for wavelengths shorter than
  // original_context / high_freq_factor, `factor` for those longer than original_context / low_freq_factor,
  // and a smooth blend between.
  const double low_wavelen = rope.original_context / double(rope.low_freq_factor);
  const double high_wavelen = rope.original_context / double(rope.high_freq_factor);
  std::vector<float> factors;  // [n_rot / 2]
  for (int i = 0; i < n_rot; i += 2) {
    const double freq = 1.0 / std::pow(double(base), double(i) / n_rot);
    const double wavelen = 2.0 * M_PI / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(rope.factor);
    } else {
      const double smooth =
          (rope.original_context / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
      factors.push_back(float(1.0 / ((1.0 - smooth) / rope.factor + smooth)));
    }
  }
  return factors;
}

}  // namespace kvq::cli
