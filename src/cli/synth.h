// kvq synth internals: the architectures it writes, the preset table of real model shapes, the weight-type
// rules and the GGUF writer. Split over synth.cpp (flags), synth_presets.cpp (shapes), synth_weights.cpp
// (random tensor contents, per-tensor types) and synth_writer.cpp (metadata and tensor list).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/blocks.h"
#include "util/result.h"

namespace kvq::cli {

// The GGUF architectures synth writes, with the keys and tensor names of llama.cpp's convert_hf_to_gguf.py.
enum class SynthArch { Llama, Qwen2, Qwen3, Gemma2, Gemma3, Phi3 };
std::string_view arch_name(SynthArch arch);  // the general.architecture string
std::optional<SynthArch> parse_arch(std::string_view name);

// Which tokenizer a model of this family ships with; resolved to a file under the shared data folder.
enum class SynthVocab { LlamaSpm, Llama3, Qwen, Gemma, Phi3 };
std::string vocab_path(SynthVocab vocab);

// Llama 3.1 style RoPE: frequency factors stored as rope_freqs.weight, computed as the converter does.
struct Llama3Rope {
  float factor = 0;  // 0 = none
  float low_freq_factor = 1;
  float high_freq_factor = 4;
  int original_context = 8192;
};

// Every hyper-parameter a written file carries. 0 means "derived" where the comment says so.
struct SynthShape {
  SynthArch arch = SynthArch::Llama;
  int n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0;
  int head_dim = 0;  // attention.key_length; 0 = n_embd / n_head
  int n_ff = 0;
  int n_ctx = 0;  // context_length (the trained maximum)
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  int n_vocab = 0;    // the real model's vocab_size: the vocabulary is padded or cut to it; 0 = as the file has
  bool tied = false;  // no output.weight: the output projection reuses token_embd
  SynthVocab vocab = SynthVocab::LlamaSpm;
  int n_rot = 0;  // rope.dimension_count; 0 = head_dim (partial rotary when smaller)
  Llama3Rope llama3_rope = {};
  int sliding_window = 0;                     // gemma2/gemma3/phi3 attention.sliding_window
  float attn_softcap = 0, final_softcap = 0;  // gemma2
  float rope_linear_factor = 0;               // gemma3 4B+: rope.scaling.type linear (global layers only); 0 = none
  int rope_original_context = 0;              // phi3: rope.scaling.original_context_length
  bool phi3_longrope = false;                 // Phi-3.5-mini 128k: rope_factors_long/short + rope.scaling.attn_factor

  int key_length() const { return head_dim ? head_dim : n_embd / n_head; }
  int rope_dims() const { return n_rot ? n_rot : key_length(); }
  int q_dim() const { return n_head * key_length(); }
  int kv_dim() const { return n_head_kv * key_length(); }
};

struct SynthPreset {
  const char* name;
  const char* source;  // where the numbers come from
  SynthShape shape;
};
std::span<const SynthPreset> synth_presets();
const SynthPreset* find_preset(std::string_view name);
// The shape `--arch X` starts from before the shape flags: small, with the family's features.
SynthShape custom_base_shape(SynthArch arch);
// One line per preset for --help: name, arch and every shape number.
std::string describe_presets();
std::string describe_shape(const SynthShape& s);

// Phi-3.5-mini's longrope factors (config.json rope_scaling, 48 = head_dim / 2 values each).
std::span<const float> phi35_long_factors();
std::span<const float> phi35_short_factors();
// Llama 3.1 frequency factors for n_rot rotated dims (n_rot / 2 values), as convert_hf_to_gguf.py computes them.
std::vector<float> llama3_rope_factors(const Llama3Rope& rope, float base, int n_rot);

// The weight types a file uses: one type for every matrix, or llama.cpp's Q4_K_M mix.
struct SynthTypes {
  GgmlType type = GgmlType::Q4_0;  // for the mix: q4_K, its base type
  bool q4_k_m = false;
};
// "q4_0", "f16", "q4_k_m", ...; errors list the supported names.
Result<SynthTypes> parse_synth_types(const std::string& name);
int file_type_id(const SynthTypes& types);  // general.file_type

// Where a matrix sits, for the per-role rules of the mix.
struct MatrixRole {
  std::string name;  // tensor name, e.g. "blk.3.attn_v.weight"
  int layer = -1;    // block index; -1 for token_embd / output
  int n_layer = 0;
  bool tied = false;  // the model has no output.weight (token_embd takes the output rule)
};
// The type llama.cpp's quantizer would give this matrix of rows n_in long, including its fallback when
// n_in is not a multiple of the chosen type's block (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, then f16).
GgmlType matrix_type(const SynthTypes& types, const MatrixRole& role, int64_t n_in);

// Fills one row of n values of `type` with deterministic random weights of standard deviation std_dev.
// k-quant rows get random codes (kvq has no k-quant quantizer); other types are quantized from N(0, std).
void fill_random_row(GgmlType type, uint64_t seed, float std_dev, uint8_t* dst, int64_t n, float* scratch);
void random_normal_row(uint64_t seed, float std_dev, float* row, int64_t n);
uint64_t tensor_seed(const std::string& name, uint64_t seed);

struct SynthOptions {
  std::string output;
  std::string vocab;  // tokenizer file whose tokenizer.* keys are copied
  std::string label;  // general.name suffix, e.g. "gemma-3-4b-q4_0"
  SynthTypes types;
  uint64_t seed = 42;
  float weight_std = 0.02f;
};
// Writes the model; errors name the file or the inconsistency. Prints a progress bar on a terminal.
Status write_synth_model(const SynthShape& shape, const SynthOptions& options);

}  // namespace kvq::cli
