// kvq synth: writes a Llama GGUF with deterministic random weights at any shape and weight type.
// For speed and memory work only: random weights say nothing about quality.
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace kvq::cli {
namespace {

struct SynthShape {
  int n_layer, n_embd, n_head, n_head_kv, n_ff, n_ctx;
  float rope_base;
};

struct SynthPreset {
  const char* name;
  SynthShape shape;
};

constexpr SynthPreset kPresets[] = {
    {"mini", {4, 256, 4, 2, 768, 2048, 10000.0f}},
    {"tinyllama-1.1b", {22, 2048, 32, 4, 5632, 2048, 10000.0f}},
    {"llama-2-7b", {32, 4096, 32, 32, 11008, 4096, 10000.0f}},
    {"llama-3-8b", {32, 4096, 32, 8, 14336, 8192, 500000.0f}},
    {"mistral-7b", {32, 4096, 32, 8, 14336, 32768, 10000.0f}},
};

struct SynthArgs {
  std::string preset = "tinyllama-1.1b";
  std::string output;
  std::string type = "q4_0";
  std::string vocab = KVQ_DEFAULT_VOCAB;
  uint64_t seed = 42;
  int threads = 0;
  float weight_std = 0.02f;
  int n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
};

// ggml's general.file_type ids for files whose tensors are all one type.
int file_type_id(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q4_0:
      return 2;
    case GgmlType::Q4_1:
      return 3;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::Q5_0:
      return 8;
    case GgmlType::Q5_1:
      return 9;
    case GgmlType::IQ4_NL:
      return 25;
    case GgmlType::BF16:
      return 32;
    default:
      return -1;
  }
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Fills one row with N(0, std) values; each row has its own stream so threads don't change results.
void random_row(uint64_t seed, float std_dev, float* row, int64_t n) {
  uint64_t state = seed;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (double(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * std_dev;
    row[i] = float(r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < n) row[i + 1] = float(r * std::sin(2.0 * M_PI * u2));
  }
}

int run_synth(SynthArgs args) {
  set_threads(args.threads);
  const SynthPreset* preset = nullptr;
  std::string names;
  for (const SynthPreset& p : kPresets) {
    names += std::string(names.empty() ? "" : ", ") + p.name;
    if (args.preset == p.name) preset = &p;
  }
  if (!preset) return report_error(make_error("--preset '{}' unknown (presets: {})", args.preset, names)), 1;
  SynthShape s = preset->shape;
  if (args.n_layer) s.n_layer = args.n_layer;
  if (args.n_embd) s.n_embd = args.n_embd;
  if (args.n_head) s.n_head = args.n_head;
  if (args.n_head_kv) s.n_head_kv = args.n_head_kv;
  if (args.n_ff) s.n_ff = args.n_ff;
  if (args.n_ctx) s.n_ctx = args.n_ctx;
  if (args.n_head_kv == 0 && args.n_head && s.n_head_kv > s.n_head) s.n_head_kv = s.n_head;

  auto type = parse_type_name(args.type);
  if (!type || !has_quantizer(*type) || file_type_id(*type) < 0) {
    return report_error(make_error("--type '{}' unsupported (supported: f32 f16 bf16 q8_0 q4_0 q4_1 "
                                   "q5_0 q5_1 iq4_nl)",
                                   args.type)),
           1;
  }
  const int block = type_traits(*type).block_size;
  if (s.n_embd % s.n_head || s.n_head % s.n_head_kv || (s.n_embd / s.n_head) % 2) {
    return report_error(
               make_error("inconsistent shape: n_embd {} / n_head {} / n_head_kv {}", s.n_embd, s.n_head, s.n_head_kv)),
           1;
  }
  if (s.n_embd % block || s.n_ff % block) {
    return report_error(make_error("{} needs n_embd and n_ff multiples of {}", args.type, block)), 1;
  }
  if (args.output.empty()) return report_error(make_error("-o/--output is required")), 1;

  auto vocab = gguf::File::open(args.vocab);
  if (!vocab) return report_error(vocab.error()), 1;
  const gguf::Value* tokens = vocab->find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != gguf::ValueType::ARRAY || tokens->array.empty()) {
    return report_error(make_error("{}: no tokenizer.ggml.tokens to copy", args.vocab)), 1;
  }
  const int n_vocab = int(tokens->array.size());
  const int head_dim = s.n_embd / s.n_head;

  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "kvq-synth-" + args.preset + "-" + args.type);
  w.set_u32("general.file_type", uint32_t(file_type_id(*type)));
  w.set_u32("llama.block_count", s.n_layer);
  w.set_u32("llama.context_length", s.n_ctx);
  w.set_u32("llama.embedding_length", s.n_embd);
  w.set_u32("llama.feed_forward_length", s.n_ff);
  w.set_u32("llama.attention.head_count", s.n_head);
  w.set_u32("llama.attention.head_count_kv", s.n_head_kv);
  w.set_u32("llama.rope.dimension_count", head_dim);
  w.set_f32("llama.rope.freq_base", s.rope_base);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("llama.vocab_size", n_vocab);
  for (const auto& [key, value] : vocab->metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set_value(key, value);
  }

  auto add_matrix = [&](const std::string& name, int64_t n_in, int64_t n_out) {
    const uint64_t seed = hash_name(name) ^ (args.seed * 0x9e3779b97f4a7c15ull);
    const GgmlType t = *type;
    const float std_dev = args.weight_std;
    const size_t bytes_per_row = row_bytes(t, n_in);
    return w.add_tensor(name, t, {n_in, n_out}, [=](std::span<uint8_t> dst) {
#pragma omp parallel
      {
        std::vector<float> row(static_cast<size_t>(n_in));  // [n_in] one weight row before quantization
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_out; ++r) {
          random_row(seed + uint64_t(r) * 0x632be59bd9b4e019ull, std_dev, row.data(), n_in);
          quantize_row(t, row.data(), dst.data() + size_t(r) * bytes_per_row, n_in);
        }
      }
    });
  };
  auto add_norm = [&](const std::string& name, int64_t n) {
    return w.add_tensor(name, GgmlType::F32, {n}, [](std::span<uint8_t> dst) {
      const float one = 1.0f;
      for (size_t i = 0; i < dst.size(); i += 4) std::memcpy(dst.data() + i, &one, 4);
    });
  };
  const int q_dim = s.n_embd, kv_dim = s.n_head_kv * head_dim;
  KVQ_CHECK(add_matrix("token_embd.weight", s.n_embd, n_vocab).ok());
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    KVQ_CHECK(add_norm(p + "attn_norm.weight", s.n_embd).ok());
    KVQ_CHECK(add_matrix(p + "attn_q.weight", s.n_embd, q_dim).ok());
    KVQ_CHECK(add_matrix(p + "attn_k.weight", s.n_embd, kv_dim).ok());
    KVQ_CHECK(add_matrix(p + "attn_v.weight", s.n_embd, kv_dim).ok());
    KVQ_CHECK(add_matrix(p + "attn_output.weight", q_dim, s.n_embd).ok());
    KVQ_CHECK(add_norm(p + "ffn_norm.weight", s.n_embd).ok());
    KVQ_CHECK(add_matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff).ok());
    KVQ_CHECK(add_matrix(p + "ffn_up.weight", s.n_embd, s.n_ff).ok());
    KVQ_CHECK(add_matrix(p + "ffn_down.weight", s.n_ff, s.n_embd).ok());
  }
  KVQ_CHECK(add_norm("output_norm.weight", s.n_embd).ok());
  KVQ_CHECK(add_matrix("output.weight", s.n_embd, n_vocab).ok());

  std::fprintf(stderr, "kvq synth: %s, %d layers, n_embd %d, %d heads (%d kv), ff %d, vocab %d, %s -> %s\n",
               args.preset.c_str(), s.n_layer, s.n_embd, s.n_head, s.n_head_kv, s.n_ff, n_vocab, args.type.c_str(),
               args.output.c_str());
  if (Status st = w.write(args.output); !st) return report_error(st.error()), 1;
  std::fprintf(stderr, "kvq synth: wrote %s (%s)\n", args.output.c_str(),
               format_bytes(double(std::filesystem::file_size(args.output))).c_str());
  return 0;
}

}  // namespace

void register_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd =
      app.add_subcommand("synth", "write a Llama GGUF with random weights (speed/memory work only, never quality)");
  cmd->add_option("--preset", args->preset, "shape: mini, tinyllama-1.1b, llama-2-7b, llama-3-8b, mistral-7b")
      ->capture_default_str();
  cmd->add_option("-o,--output", args->output, "output GGUF path")->required();
  cmd->add_option("--type", args->type, "weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl")
      ->capture_default_str();
  cmd->add_option("--vocab", args->vocab, "GGUF whose tokenizer is copied")->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed")->capture_default_str();
  cmd->add_option("--std", args->weight_std, "standard deviation of the weights")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores); output does not depend on it");
  cmd->add_option("--n-layer", args->n_layer, "override: layers");
  cmd->add_option("--n-embd", args->n_embd, "override: embedding width");
  cmd->add_option("--n-head", args->n_head, "override: attention heads");
  cmd->add_option("--n-head-kv", args->n_head_kv, "override: KV heads");
  cmd->add_option("--n-ff", args->n_ff, "override: feed-forward width");
  cmd->add_option("--n-ctx", args->n_ctx, "override: trained context length");
  cmd->callback([args] { set_exit_code(run_synth(*args)); });
}

}  // namespace kvq::cli
