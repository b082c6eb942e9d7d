// kvq synth: writes a Llama GGUF with deterministic random weights at any shape and weight type.
// For speed and memory work only: random weights say nothing about quality.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "util/half.h"

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

// The weight types of llama.cpp's Q4_K_M mix, the format most local models are downloaded in: q6_K for the
// output matrix and, in the first and last eighth of the layers and every third layer between, for
// attn_v and ffn_down; q4_K elsewhere. On the tinyllama preset this gives the comparison engine's 636 MiB.
constexpr int kFileTypeQ4_K_M = 15;
GgmlType q4_k_m_type(const std::string& name, int layer, int n_layer) {
  if (name == "output.weight") return GgmlType::Q6_K;
  const bool more_bits =
      layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
  const bool sensitive = name.find("attn_v.") != std::string::npos || name.find("ffn_down.") != std::string::npos;
  return layer >= 0 && sensitive && more_bits ? GgmlType::Q6_K : GgmlType::Q4_K;
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

// q4_K / q6_K have no quantizer here (ggml's needs an iterative scale search): their rows get random codes
// with fixed sub-block scales chosen so that the values have mean ~0 and standard deviation ~std_dev,
// which is all a speed measurement needs.
void random_k_row(GgmlType type, uint64_t seed, float std_dev, uint8_t* dst, int64_t n) {
  uint64_t state = seed;
  const auto random_bytes = [&](uint8_t* p, size_t count) {
    for (size_t i = 0; i < count; i += 8) {
      const uint64_t r = splitmix64(state);
      std::memcpy(p + i, &r, std::min<size_t>(8, count - i));
    }
  };
  constexpr int kScale = 32;  // 6-bit q4_K scale and min; q6_K's 8-bit scales use 2 x kScale
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    if (type == GgmlType::Q4_K) {
      BlockQ4_K& x = reinterpret_cast<BlockQ4_K*>(dst)[b];
      random_bytes(x.qs, sizeof(x.qs));
      // Codes uniform in 0..15: mean 7.5, standard deviation 4.61; the min cancels the mean.
      const float d = std_dev / (4.61f * kScale);
      x.d = f32_to_fp16(d);
      x.dmin = f32_to_fp16(7.5f * d);
      // Scales and mins 0-3 in bytes 0-3 and 4-7; those of 4-7 split into the low and high nibbles of
      // bytes 8-11 (low 4 bits) and the top 2 bits of bytes 0-3 and 4-7 (high 2 bits).
      std::memset(x.scales, kScale | ((kScale >> 4) << 6), 8);
      std::memset(x.scales + 8, (kScale & 0x0F) | ((kScale & 0x0F) << 4), 4);
    } else {
      BlockQ6_K& x = reinterpret_cast<BlockQ6_K*>(dst)[b];
      random_bytes(x.ql, sizeof(x.ql));
      random_bytes(x.qh, sizeof(x.qh));
      std::memset(x.scales, 2 * kScale, sizeof(x.scales));
      x.d = f32_to_fp16(std_dev / (18.5f * 2 * kScale));  // codes - 32 uniform in -32..31: deviation 18.5
    }
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

  const bool q4_k_m = args.type == "q4_k_m" || args.type == "Q4_K_M";
  auto type = q4_k_m ? std::optional<GgmlType>(GgmlType::Q4_K) : parse_type_name(args.type);
  if (!type || (!q4_k_m && (!has_quantizer(*type) || file_type_id(*type) < 0))) {
    return report_error(make_error("--type '{}' unsupported (supported: f32 f16 bf16 q8_0 q4_0 q4_1 "
                                   "q5_0 q5_1 iq4_nl q4_k_m)",
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
  w.set_u32("general.file_type", uint32_t(q4_k_m ? kFileTypeQ4_K_M : file_type_id(*type)));
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

  // layer: the block index, or -1 for the embedding and output matrices.
  auto add_matrix = [&](const std::string& name, int64_t n_in, int64_t n_out, int layer = -1) {
    const uint64_t seed = hash_name(name) ^ (args.seed * 0x9e3779b97f4a7c15ull);
    const GgmlType t = q4_k_m ? q4_k_m_type(name, layer, s.n_layer) : *type;
    const float std_dev = args.weight_std;
    const size_t bytes_per_row = row_bytes(t, n_in);
    return w.add_tensor(name, t, {n_in, n_out}, [=](std::span<uint8_t> dst) {
#pragma omp parallel
      {
        std::vector<float> row(static_cast<size_t>(n_in));  // [n_in] one weight row before quantization
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_out; ++r) {
          const uint64_t row_seed = seed + uint64_t(r) * 0x632be59bd9b4e019ull;
          uint8_t* out = dst.data() + size_t(r) * bytes_per_row;
          if (q4_k_m) {
            random_k_row(t, row_seed, std_dev, out, n_in);
          } else {
            random_row(row_seed, std_dev, row.data(), n_in);
            quantize_row(t, row.data(), out, n_in);
          }
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
    KVQ_CHECK(add_matrix(p + "attn_q.weight", s.n_embd, q_dim, l).ok());
    KVQ_CHECK(add_matrix(p + "attn_k.weight", s.n_embd, kv_dim, l).ok());
    KVQ_CHECK(add_matrix(p + "attn_v.weight", s.n_embd, kv_dim, l).ok());
    KVQ_CHECK(add_matrix(p + "attn_output.weight", q_dim, s.n_embd, l).ok());
    KVQ_CHECK(add_norm(p + "ffn_norm.weight", s.n_embd).ok());
    KVQ_CHECK(add_matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, l).ok());
    KVQ_CHECK(add_matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, l).ok());
    KVQ_CHECK(add_matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, l).ok());
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
  cmd->add_option("--type", args->type, "weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl, or q4_k_m (llama.cpp's mix of "
                  "q4_K and q6_K, random codes)")
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
