// Writes a synth model: the metadata keys and tensor names llama.cpp's convert_hf_to_gguf.py writes for the
// architecture (checked against shared/fixtures/arch/models/synth-*.gguf), the tokenizer copied from a
// vocabulary file, and random weights produced one tensor at a time while the file is written.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "cli/common.h"
#include "cli/synth.h"
#include "gguf/gguf.h"
#include "util/progress.h"

namespace kvq::cli {
namespace {

constexpr int32_t kTokenTypeUnused = 5;      // llama.cpp's LLAMA_TOKEN_TYPE_UNUSED, for padding rows
constexpr float kPadTokenScore = -10000.0f;  // the converter's score for [PAD] pieces

// Bytes written so far, drawn as a bar on a terminal and as a line per quarter in logs of big files.
class WriteProgress {
 public:
  void start(double total) {
    total_ = total;
    bar_ = std::make_unique<ProgressBar>(total);
  }
  void advance(double bytes) {
    done_ += bytes;
    const std::string status = format_bytes(done_) + " / " + format_bytes(total_);
    if (bar_->enabled()) {
      bar_->update(done_, status);
    } else if (total_ > kLogThreshold && int(4 * done_ / total_) > quarters_logged_) {
      quarters_logged_ = int(4 * done_ / total_);
      std::fprintf(stderr, "kvq synth: %3d%% (%s)\n", 25 * quarters_logged_, status.c_str());
    }
  }
  void finish() { bar_->finish(); }

 private:
  static constexpr double kLogThreshold = 1024.0 * 1024 * 1024;
  double total_ = 0, done_ = 0;
  int quarters_logged_ = 0;
  std::unique_ptr<ProgressBar> bar_;
};

// Copies every tokenizer.* key, padding the token arrays with unused [PAD<id>] tokens (as the converter
// does when vocab_size exceeds the tokenizer) or cutting them to n_vocab. Returns the final token count.
Result<int> copy_tokenizer(const gguf::File& vocab, int n_vocab, gguf::Writer& w) {
  const gguf::Value* tokens = vocab.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != gguf::ValueType::ARRAY || tokens->array.empty()) {
    return make_error("{}: no tokenizer.ggml.tokens to copy", vocab.path());
  }
  const int n_file = int(tokens->array.size());
  if (n_vocab == 0) n_vocab = n_file;
  if (n_vocab < n_file) {
    // Cutting is safe only without merges (they would name missing tokens) and with every special id kept.
    if (vocab.find("tokenizer.ggml.merges")) {
      return make_error("{}: cannot cut a BPE vocabulary of {} tokens to {}", vocab.path(), n_file, n_vocab);
    }
    for (const auto& [key, value] : vocab.metadata()) {
      if (key.ends_with("_token_id") && value.is_integer() && value.as_int() >= n_vocab &&
          value.as_int() < int64_t(INT32_MAX)) {
        return make_error("{}: {} = {} does not fit a vocabulary cut to {}", vocab.path(), key, value.as_int(),
                          n_vocab);
      }
    }
  }
  for (const auto& [key, value] : vocab.metadata()) {
    if (!key.starts_with("tokenizer.")) continue;
    const bool per_token =
        key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.token_type" || key == "tokenizer.ggml.scores";
    if (!per_token || int(value.array.size()) != n_file) {
      w.set_value(key, value);
      continue;
    }
    gguf::Value resized = value;
    resized.array.resize(size_t(std::min(n_vocab, n_file)));
    for (int id = n_file; id < n_vocab; ++id) {
      gguf::Value pad = value.array.back();  // keeps the element type
      if (key == "tokenizer.ggml.tokens") pad.str = "[PAD" + std::to_string(id) + "]";
      if (key == "tokenizer.ggml.token_type") pad.i64 = pad.u64 = kTokenTypeUnused;
      if (key == "tokenizer.ggml.scores") pad.f64 = kPadTokenScore;
      resized.array.push_back(std::move(pad));
    }
    w.set_value(key, std::move(resized));
  }
  return n_vocab;
}

void set_hparams(gguf::Writer& w, const SynthShape& s, int n_vocab) {
  const std::string p = std::string(arch_name(s.arch)) + ".";
  w.set_u32(p + "context_length", s.n_ctx);
  w.set_u32(p + "embedding_length", s.n_embd);
  w.set_u32(p + "block_count", s.n_layer);
  w.set_u32(p + "feed_forward_length", s.n_ff);
  w.set_u32(p + "attention.head_count", s.n_head);
  w.set_u32(p + "attention.head_count_kv", s.n_head_kv);
  w.set_u32(p + "attention.key_length", s.key_length());
  w.set_u32(p + "attention.value_length", s.key_length());
  w.set_f32(p + "attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(p + "rope.freq_base", s.rope_base);  // gemma3: the global layers' base; local ones use 10000
  w.set_u32(p + "rope.dimension_count", s.rope_dims());
  switch (s.arch) {
    case SynthArch::Llama:
      w.set_u32(p + "vocab_size", n_vocab);
      break;
    case SynthArch::Qwen2:
    case SynthArch::Qwen3:
      break;
    case SynthArch::Gemma2:
      w.set_f32(p + "attn_logit_softcapping", s.attn_softcap);
      w.set_f32(p + "final_logit_softcapping", s.final_softcap);
      w.set_u32(p + "attention.sliding_window", s.sliding_window);
      break;
    case SynthArch::Gemma3:
      w.set_u32(p + "attention.sliding_window", s.sliding_window);
      if (s.rope_linear_factor > 0) {
        w.set_string(p + "rope.scaling.type", "linear");
        w.set_f32(p + "rope.scaling.factor", s.rope_linear_factor);
      }
      break;
    case SynthArch::Phi3:
      w.set_u32(p + "rope.scaling.original_context_length", s.rope_original_context);
      w.set_u32(p + "attention.sliding_window", s.sliding_window);
      if (s.phi3_longrope) {
        // The converter's longrope attention factor: sqrt(1 + ln(scale) / ln(original context)).
        const double scale = double(s.n_ctx) / s.rope_original_context;
        const double attn_factor =
            scale > 1.0 ? std::sqrt(1.0 + std::log(scale) / std::log(double(s.rope_original_context))) : 1.0;
        w.set_f32(p + "rope.scaling.attn_factor", float(attn_factor));
      }
      break;
  }
}

}  // namespace

Status write_synth_model(const SynthShape& s, const SynthOptions& opt) {
  auto vocab = gguf::File::open(opt.vocab);
  if (!vocab) return vocab.error();
  gguf::Writer w;
  w.set_string("general.architecture", std::string(arch_name(s.arch)));
  w.set_string("general.name", "kvq-synth-" + opt.label);
  w.set_u32("general.file_type", uint32_t(file_type_id(opt.types)));
  // Hyper-parameters first and the tokenizer last, as in converted files; llama.vocab_size is set again (in
  // place) once the padded or cut token count is known.
  set_hparams(w, s, 0);
  auto n_vocab_result = copy_tokenizer(*vocab, s.n_vocab, w);
  if (!n_vocab_result) return n_vocab_result.error();
  const int n_vocab = *n_vocab_result;  // rows of token_embd and output
  if (s.arch == SynthArch::Llama) w.set_u32("llama.vocab_size", n_vocab);

  WriteProgress progress;                  // started once the total is known; the fills run inside w.write
  double total_bytes = 0;                  // of the matrices, which are what takes time to write
  std::map<std::string, int> type_counts;  // "q4_K" -> matrices of that type, for the summary
  std::vector<std::string> fallbacks;      // matrices whose rows don't fit the mix's k-quant

  const auto add_matrix = [&](const std::string& name, int64_t n_in, int64_t n_out, int layer) -> Status {
    const GgmlType t = matrix_type(opt.types, {name, layer, s.n_layer, s.tied}, n_in);
    const int block = type_traits(t).block_size;
    if (n_in % block != 0) {
      return make_error("--type {} needs rows that are multiples of {}: {} has rows of {}", type_name(t), block, name,
                        n_in);
    }
    if (opt.types.q4_k_m && type_traits(t).block_size != kQK_K) {
      fallbacks.push_back(fmt::format("{} ({} wide) -> {}", name, n_in, type_name(t)));
    }
    ++type_counts[std::string(type_name(t))];
    const uint64_t seed = tensor_seed(name, opt.seed);
    const size_t bytes_per_row = row_bytes(t, n_in);
    total_bytes += double(bytes_per_row) * double(n_out);
    const float std_dev = opt.weight_std;
    return w.add_tensor(name, t, {n_in, n_out}, [=, &progress](std::span<uint8_t> dst) {
#pragma omp parallel
      {
        std::vector<float> row(static_cast<size_t>(n_in));  // [n_in] one weight row before quantization
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_out; ++r) {
          const uint64_t row_seed = seed + uint64_t(r) * 0x632be59bd9b4e019ull;
          fill_random_row(t, row_seed, std_dev, dst.data() + size_t(r) * bytes_per_row, n_in, row.data());
        }
      }
      progress.advance(double(dst.size()));
    });
  };
  // f32 vectors: norms (ones: gemma's converter stores 1 + weight, so 1 is also a plain gain there),
  // biases (random) and RoPE factor tables (given values).
  const auto add_vector = [&](const std::string& name, std::vector<float> values) -> Status {
    const int64_t n = int64_t(values.size());
    std::vector<uint8_t> bytes(values.size() * 4);  // [n] f32
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return w.add_tensor(name, GgmlType::F32, {n}, std::move(bytes));
  };
  const auto ones = [](int64_t n) { return std::vector<float>(size_t(n), 1.0f); };
  const auto bias = [&](const std::string& name, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));  // [n]
    random_normal_row(tensor_seed(name, opt.seed), opt.weight_std, v.data(), n);
    return v;
  };

  const int q_dim = s.q_dim(), kv_dim = s.kv_dim(), head_dim = s.key_length();
  if (s.llama3_rope.factor > 0) {
    KVQ_RETURN_IF_ERROR(
        add_vector("rope_freqs.weight", llama3_rope_factors(s.llama3_rope, s.rope_base, s.rope_dims())));
  }
  if (s.phi3_longrope) {
    const auto long_f = phi35_long_factors(), short_f = phi35_short_factors();
    if (int(long_f.size()) * 2 != s.rope_dims()) {
      return make_error("Phi-3.5 longrope factors cover {} rotated dims, the shape rotates {}", 2 * long_f.size(),
                        s.rope_dims());
    }
    KVQ_RETURN_IF_ERROR(add_vector("rope_factors_long.weight", {long_f.begin(), long_f.end()}));
    KVQ_RETURN_IF_ERROR(add_vector("rope_factors_short.weight", {short_f.begin(), short_f.end()}));
  }
  KVQ_RETURN_IF_ERROR(add_matrix("token_embd.weight", s.n_embd, n_vocab, -1));
  const bool gemma = s.arch == SynthArch::Gemma2 || s.arch == SynthArch::Gemma3;
  const bool qk_norm = s.arch == SynthArch::Qwen3 || s.arch == SynthArch::Gemma3;
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    KVQ_RETURN_IF_ERROR(add_vector(p + "attn_norm.weight", ones(s.n_embd)));
    if (s.arch == SynthArch::Phi3) {
      KVQ_RETURN_IF_ERROR(add_matrix(p + "attn_qkv.weight", s.n_embd, q_dim + 2 * kv_dim, l));
    } else {
      KVQ_RETURN_IF_ERROR(add_matrix(p + "attn_q.weight", s.n_embd, q_dim, l));
      KVQ_RETURN_IF_ERROR(add_matrix(p + "attn_k.weight", s.n_embd, kv_dim, l));
      KVQ_RETURN_IF_ERROR(add_matrix(p + "attn_v.weight", s.n_embd, kv_dim, l));
    }
    if (s.arch == SynthArch::Qwen2) {
      KVQ_RETURN_IF_ERROR(add_vector(p + "attn_q.bias", bias(p + "attn_q.bias", q_dim)));
      KVQ_RETURN_IF_ERROR(add_vector(p + "attn_k.bias", bias(p + "attn_k.bias", kv_dim)));
      KVQ_RETURN_IF_ERROR(add_vector(p + "attn_v.bias", bias(p + "attn_v.bias", kv_dim)));
    }
    if (qk_norm) {
      KVQ_RETURN_IF_ERROR(add_vector(p + "attn_q_norm.weight", ones(head_dim)));
      KVQ_RETURN_IF_ERROR(add_vector(p + "attn_k_norm.weight", ones(head_dim)));
    }
    KVQ_RETURN_IF_ERROR(add_matrix(p + "attn_output.weight", q_dim, s.n_embd, l));
    if (gemma) KVQ_RETURN_IF_ERROR(add_vector(p + "post_attention_norm.weight", ones(s.n_embd)));
    KVQ_RETURN_IF_ERROR(add_vector(p + "ffn_norm.weight", ones(s.n_embd)));
    if (s.arch == SynthArch::Phi3) {
      // gate and up fused in one matrix, gate rows first.
      KVQ_RETURN_IF_ERROR(add_matrix(p + "ffn_up.weight", s.n_embd, 2 * int64_t(s.n_ff), l));
    } else {
      KVQ_RETURN_IF_ERROR(add_matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, l));
      KVQ_RETURN_IF_ERROR(add_matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, l));
    }
    KVQ_RETURN_IF_ERROR(add_matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, l));
    if (gemma) KVQ_RETURN_IF_ERROR(add_vector(p + "post_ffw_norm.weight", ones(s.n_embd)));
  }
  KVQ_RETURN_IF_ERROR(add_vector("output_norm.weight", ones(s.n_embd)));
  if (!s.tied) KVQ_RETURN_IF_ERROR(add_matrix("output.weight", s.n_embd, n_vocab, -1));

  std::string types;
  for (const auto& [name, count] : type_counts)
    types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", name, count);
  SynthShape written_shape = s;
  written_shape.n_vocab = n_vocab;
  std::fprintf(stderr, "kvq synth: %s; tokenizer from %s\n", describe_shape(written_shape).c_str(), opt.vocab.c_str());
  std::fprintf(stderr, "kvq synth: matrices %s; %s -> %s\n", types.c_str(), format_bytes(total_bytes).c_str(),
               opt.output.c_str());
  if (!fallbacks.empty()) {
    std::fprintf(stderr,
                 "kvq synth: %zu matrices have rows that 256-value k-quant blocks don't tile; like "
                 "llama.cpp they use a fallback type, e.g. %s\n",
                 fallbacks.size(), fallbacks.front().c_str());
  }
  progress.start(total_bytes);
  Status written = w.write(opt.output);
  progress.finish();
  if (!written) return written;
  std::fprintf(stderr, "kvq synth: wrote %s (%s)\n", opt.output.c_str(),
               format_bytes(double(std::filesystem::file_size(opt.output))).c_str());
  return Status::Ok();
}

}  // namespace kvq::cli
