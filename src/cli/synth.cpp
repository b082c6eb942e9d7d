// kvq synth: writes a GGUF with deterministic random weights in the shape of a real model (a preset) or of
// any custom shape, for the architectures llama, qwen2, qwen3, gemma2, gemma3 and phi3, in any weight type.
// For speed and memory work only: random weights say nothing about quality.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/synth.h"

namespace kvq::cli {
namespace {

constexpr const char* kDefaultPreset = "tinyllama-1.1b";

struct SynthArgs {
  std::string preset;  // empty: kDefaultPreset, or the --arch base shape when --arch is given
  std::string arch;
  std::string output;
  std::string type = "q4_0";
  std::string vocab;  // empty: the preset's (or arch's) vocabulary
  uint64_t seed = 42;
  int threads = 0;
  float weight_std = 0.02f;
  // Shape overrides; 0 (or empty) keeps the preset's value.
  int n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_ctx = 0, n_rot = 0;
  int n_vocab = 0, sliding_window = 0;
  float rope_base = 0;
  bool tied = false, untied = false;
};

std::string arch_names() { return "llama, qwen2, qwen3, gemma2, gemma3, phi3"; }

std::string preset_names() {
  std::string names;
  for (const SynthPreset& p : synth_presets()) names += std::string(names.empty() ? "" : ", ") + p.name;
  return names;
}

// The shape the flags describe: a preset (which implies its arch), or an arch's base shape, then overrides.
Result<SynthShape> resolve_shape(const SynthArgs& args, std::string& label) {
  std::optional<SynthArch> arch;
  if (!args.arch.empty()) {
    arch = parse_arch(args.arch);
    if (!arch) return make_error("--arch '{}' unknown (architectures: {})", args.arch, arch_names());
  }
  SynthShape s;
  if (!args.preset.empty() || !arch) {
    const std::string name = args.preset.empty() ? kDefaultPreset : args.preset;
    const SynthPreset* preset = find_preset(name);
    if (!preset) return make_error("--preset '{}' unknown (presets: {})", name, preset_names());
    if (arch && *arch != preset->shape.arch) {
      return make_error("--preset {} is a {} model, not --arch {}", name, arch_name(preset->shape.arch), args.arch);
    }
    s = preset->shape;
    label = name;
  } else {
    s = custom_base_shape(*arch);
    label = "custom-" + args.arch;
  }
  if (args.n_layer) s.n_layer = args.n_layer;
  if (args.n_embd) s.n_embd = args.n_embd;
  if (args.n_head) s.n_head = args.n_head;
  if (args.n_head_kv) s.n_head_kv = args.n_head_kv;
  if (args.n_head_kv == 0 && args.n_head && s.n_head_kv > s.n_head) s.n_head_kv = s.n_head;
  if (args.head_dim) s.head_dim = args.head_dim;
  if (args.n_ff) s.n_ff = args.n_ff;
  if (args.n_ctx) s.n_ctx = args.n_ctx;
  if (args.n_rot) s.n_rot = args.n_rot;
  if (args.rope_base > 0) s.rope_base = args.rope_base;
  if (args.sliding_window) s.sliding_window = args.sliding_window;
  if (args.tied) s.tied = true;
  if (args.untied) s.tied = false;
  // A custom phi3 has no long-context scaling and a window as long as its context (no effective SWA).
  if (s.arch == SynthArch::Phi3 && !s.phi3_longrope) s.rope_original_context = s.n_ctx;
  if (s.arch == SynthArch::Phi3 && s.sliding_window == 0) s.sliding_window = s.n_ctx;

  if (s.n_layer <= 0 || s.n_embd <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 || s.n_ctx <= 0) {
    return make_error("inconsistent shape: layers, n_embd, heads, KV heads, n_ff and n_ctx must all be positive");
  }
  if (s.n_head % s.n_head_kv != 0) {
    return make_error("inconsistent shape: n_head {} is not a multiple of n_head_kv {}", s.n_head, s.n_head_kv);
  }
  if (s.head_dim == 0 && s.n_embd % s.n_head != 0) {
    return make_error("inconsistent shape: n_embd {} is not a multiple of n_head {} (or give --head-dim)", s.n_embd,
                      s.n_head);
  }
  if (s.key_length() % 2 != 0 || s.rope_dims() % 2 != 0 || s.rope_dims() > s.key_length()) {
    return make_error("inconsistent shape: head_dim {} and rotated dims {} must be even, rotated <= head_dim",
                      s.key_length(), s.rope_dims());
  }
  const bool needs_window = s.arch == SynthArch::Gemma2 || s.arch == SynthArch::Gemma3 || s.arch == SynthArch::Phi3;
  if (needs_window && s.sliding_window <= 0) {
    return make_error("--arch {} needs a positive --sliding-window", arch_name(s.arch));
  }
  if (s.phi3_longrope && s.n_ctx <= s.rope_original_context) {
    return make_error("the longrope preset needs --n-ctx above its original context {}", s.rope_original_context);
  }
  return s;
}

// Shapes that load in kvq but that llama.cpp-based peers refuse or abort on.
void warn_about_peers(const SynthShape& s) {
  if (s.arch == SynthArch::Gemma2 && s.n_layer != 26 && s.n_layer != 42 && s.n_layer != 46) {
    std::fprintf(stderr,
                 "kvq synth: warning: llama.cpp picks gemma2's attention scale from the layer count "
                 "and aborts unless it is 26, 42 or 46\n");
  }
  if (s.arch == SynthArch::Gemma3 && s.n_layer < 6) {
    std::fprintf(stderr,
                 "kvq synth: warning: gemma3 with fewer than 6 layers has no global-attention layer; "
                 "ik_llama.cpp aborts on it\n");
  }
}

int run_synth(const SynthArgs& args) {
  set_threads(args.threads);
  if (args.tied && args.untied) return report_error(make_error("--tied and --untied contradict each other")), 1;
  std::string label;
  auto shape = resolve_shape(args, label);
  if (!shape) return report_error(shape.error()), 1;
  warn_about_peers(*shape);
  auto types = parse_synth_types(args.type);
  if (!types) return report_error(types.error()), 1;
  if (args.output.empty()) return report_error(make_error("-o/--output is required")), 1;

  SynthOptions options;
  options.output = args.output;
  options.types = *types;
  options.seed = args.seed;
  options.weight_std = args.weight_std;
  options.label = label + "-" + args.type;
  if (args.vocab.empty()) {
    options.vocab = vocab_path(shape->vocab);
  } else {
    // Another vocabulary than the model's: its own token count, unless --n-vocab says otherwise.
    options.vocab = args.vocab;
    shape->n_vocab = 0;
  }
  if (args.n_vocab) shape->n_vocab = args.n_vocab;
  if (Status st = write_synth_model(*shape, options); !st) return report_error(st.error()), 1;
  return 0;
}

}  // namespace

void register_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "write a GGUF with random weights in a real model's shape (speed/memory work only, never quality)");
  cmd->add_option(
      "--preset", args->preset,
      std::string("real model shape (default ") + kDefaultPreset + " unless --arch is given); the list is below");
  cmd->add_option("--arch", args->arch,
                  "architecture of a custom shape: " + arch_names() +
                      " (starts from 4 layers, n_embd 256, 4 heads of 64, 2 KV heads, ff 768)");
  cmd->add_option("-o,--output", args->output, "output GGUF path")->required();
  cmd->add_option("--type", args->type,
                  "weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl, or q4_k_m (llama.cpp's mix of "
                  "q4_K/q5_K/q6_K with its fallbacks for rows 256 does not divide; random codes)")
      ->capture_default_str();
  cmd->add_option("--vocab", args->vocab,
                  "GGUF whose tokenizer.* keys are copied (default: the model family's vocabulary in ../shared/data)");
  cmd->add_option("--seed", args->seed, "random seed")->capture_default_str();
  cmd->add_option("--std", args->weight_std, "standard deviation of the weights and biases")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores); output does not depend on it");
  cmd->add_option("--n-layer", args->n_layer, "override: layers");
  cmd->add_option("--n-embd", args->n_embd, "override: embedding width");
  cmd->add_option("--n-head", args->n_head, "override: attention heads");
  cmd->add_option("--n-head-kv", args->n_head_kv, "override: KV heads");
  cmd->add_option("--head-dim", args->head_dim, "override: head dimension (attention.key_length)");
  cmd->add_option("--n-ff", args->n_ff, "override: feed-forward width");
  cmd->add_option("--n-ctx", args->n_ctx, "override: trained context length");
  cmd->add_option("--n-rot", args->n_rot, "override: rotated dims per head (rope.dimension_count)");
  cmd->add_option("--n-vocab", args->n_vocab, "override: pad (unused [PAD] tokens) or cut the vocabulary to this");
  cmd->add_option("--rope-base", args->rope_base, "override: rope.freq_base");
  cmd->add_option("--sliding-window", args->sliding_window, "override: attention.sliding_window (gemma2/3, phi3)");
  cmd->add_flag("--tied", args->tied, "override: no output.weight (the output reuses token_embd)");
  cmd->add_flag("--untied", args->untied, "override: write output.weight");
  cmd->footer(describe_presets());
  cmd->callback([args] { set_exit_code(run_synth(*args)); });
}

}  // namespace kvq::cli
