#include "model/config.h"

#include <cmath>
#include <string_view>

namespace kvq {
namespace {

// Typed reads of "<arch>.<key>" that name the file and key on error.
class KeyReader {
 public:
  KeyReader(const gguf::File& file, std::string prefix) : file_(file), prefix_(std::move(prefix)) {}

  bool has(const std::string& key) const { return file_.find(prefix_ + key) != nullptr; }

  Status positive_int(const std::string& key, int& out) const {
    auto v = file_.get_int(prefix_ + key);
    if (!v) return v.error();
    if (*v <= 0 || *v > (1 << 30)) return make_error("{}: {}{} = {} is out of range", file_.path(), prefix_, key, *v);
    out = int(*v);
    return Status::Ok();
  }
  Status optional_int(const std::string& key, int& out) const {
    return has(key) ? positive_int(key, out) : Status::Ok();
  }
  Status optional_float(const std::string& key, float& out) const {
    if (!has(key)) return Status::Ok();
    auto v = file_.get_float(prefix_ + key);
    if (!v) return v.error();
    if (!std::isfinite(*v)) return make_error("{}: {}{} is not finite", file_.path(), prefix_, key);
    out = float(*v);
    return Status::Ok();
  }
  std::string optional_string(const std::string& key) const {
    const gguf::Value* v = file_.find(prefix_ + key);
    return v && v->type == gguf::ValueType::STRING ? v->str : "";
  }

 private:
  const gguf::File& file_;
  std::string prefix_;
};

Status read_rope_scaling(const gguf::File& file, const KeyReader& keys, ModelConfig& c) {
  // Older files say rope.scale_linear, newer rope.scaling.type / factor.
  float factor = 1.0f;
  KVQ_RETURN_IF_ERROR(keys.optional_float("rope.scale_linear", factor));
  if (factor != 1.0f) c.rope_scaling = RopeScaling::kLinear;
  const std::string type = keys.optional_string("rope.scaling.type");
  if (type == "linear" || type == "yarn") {
    c.rope_scaling = type == "linear" ? RopeScaling::kLinear : RopeScaling::kYarn;
    KVQ_RETURN_IF_ERROR(keys.optional_float("rope.scaling.factor", factor));
  } else if (type == "longrope") {
    c.rope_scaling = RopeScaling::kLongRope;  // factors come as tensors (rope_factors_long/short)
  } else if (!type.empty() && type != "none") {
    return make_error("{}: rope scaling type '{}' is not supported (supported: none, linear, yarn, longrope)",
                      file.path(), type);
  }
  if (!(factor > 0.0f)) return make_error("{}: rope scaling factor {} must be positive", file.path(), factor);
  c.rope_freq_scale = c.rope_scaling == RopeScaling::kLongRope ? 1.0f : 1.0f / factor;
  c.rope_ctx_orig = c.n_ctx_train;
  KVQ_RETURN_IF_ERROR(keys.optional_int("rope.scaling.original_context_length", c.rope_ctx_orig));
  KVQ_RETURN_IF_ERROR(keys.optional_float("rope.scaling.attn_factor", c.rope_attn_factor));
  return Status::Ok();
}

}  // namespace

std::vector<int> ModelConfig::layer_windows() const {
  std::vector<int> w;
  for (const LayerConfig& l : layers) w.push_back(l.window);
  return w;
}

RopeParams ModelConfig::rope_params(int layer, int n_head_in_row) const {
  const LayerConfig& l = layers[size_t(layer)];
  RopeParams p;
  p.n_head = n_head_in_row;
  p.head_dim = head_dim;
  p.n_rot = n_rot;
  p.freq_base = l.rope_base;
  p.freq_scale = l.rope_scale;
  p.layout = arch->rope_layout;
  const bool global = l.window == 0 || arch->swa_rope_base == 0.0f;
  if (global) {
    p.attn_factor = rope_attn_factor;
    if (rope_scaling == RopeScaling::kYarn) {
      p.yarn = rope_yarn_corrections(n_rot, rope_ctx_orig, l.rope_base, 32.0f, 1.0f);
    }
  }
  return p;
}

Result<ModelConfig> read_model_config(const gguf::File& file) {
  ModelConfig c;
  auto arch_name = file.get_string("general.architecture");
  if (!arch_name) return arch_name.error();
  c.architecture = *arch_name;
  auto arch = find_architecture(c.architecture, file.path());
  if (!arch) return arch.error();
  c.arch = *arch;
  if (const gguf::Value* v = file.find("general.name"); v && v->type == gguf::ValueType::STRING) c.name = v->str;

  const std::string p = c.architecture + ".";
  const KeyReader keys(file, p);
  int n_expert = 0;
  KVQ_RETURN_IF_ERROR(keys.optional_int("expert_count", n_expert));
  if (n_expert > 0) {
    return make_error("{}: {}expert_count = {}: mixture-of-experts layers are not implemented (supported: {})",
                      file.path(), p, n_expert, supported_architectures());
  }
  KVQ_RETURN_IF_ERROR(keys.positive_int("block_count", c.n_layer));
  // Every block has tensors of its own: a count beyond the file's tensors is corrupt, and checking it here
  // keeps the per-layer tables below from allocating whatever a damaged header claims.
  if (size_t(c.n_layer) > file.tensors().size()) {
    return make_error("{}: {}block_count = {} but the file holds only {} tensors", file.path(), p, c.n_layer,
                      file.tensors().size());
  }
  KVQ_RETURN_IF_ERROR(keys.positive_int("embedding_length", c.n_embd));
  KVQ_RETURN_IF_ERROR(keys.positive_int("feed_forward_length", c.n_ff));
  KVQ_RETURN_IF_ERROR(keys.positive_int("attention.head_count", c.n_head));
  KVQ_RETURN_IF_ERROR(keys.positive_int("context_length", c.n_ctx_train));
  c.n_head_kv = c.n_head;
  KVQ_RETURN_IF_ERROR(keys.optional_int("attention.head_count_kv", c.n_head_kv));
  if (c.n_embd % c.n_head != 0 && !keys.has("attention.key_length")) {
    return make_error("{}: embedding_length {} is not a multiple of head_count {} and there is no key_length",
                      file.path(), c.n_embd, c.n_head);
  }
  c.head_dim = c.n_embd / c.n_head;
  KVQ_RETURN_IF_ERROR(keys.optional_int("attention.key_length", c.head_dim));
  int value_length = c.head_dim;
  KVQ_RETURN_IF_ERROR(keys.optional_int("attention.value_length", value_length));
  if (value_length != c.head_dim) {
    return make_error("{}: key_length {} != value_length {} is not supported", file.path(), c.head_dim, value_length);
  }
  // Widths multiply (q_dim, fused projections, buffer sizes): beyond any real model they only come from a
  // damaged file, and refusing them here keeps every product in range.
  constexpr int64_t kMaxWidth = int64_t(1) << 24;
  if (int64_t(c.n_head) * c.head_dim > kMaxWidth || c.n_embd > kMaxWidth || c.n_ff > kMaxWidth) {
    return make_error("{}: widths (embedding {}, feed-forward {}, {} heads x {}) are beyond any model ({} max)",
                      file.path(), c.n_embd, c.n_ff, c.n_head, c.head_dim, kMaxWidth);
  }
  if (c.n_head % c.n_head_kv != 0) {
    return make_error("{}: head_count {} is not a multiple of head_count_kv {}", file.path(), c.n_head, c.n_head_kv);
  }
  if (c.head_dim % 2 != 0) return make_error("{}: head dimension {} is odd", file.path(), c.head_dim);
  c.n_rot = c.head_dim;
  KVQ_RETURN_IF_ERROR(keys.optional_int("rope.dimension_count", c.n_rot));
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    return make_error("{}: rope.dimension_count {} does not fit head dimension {}", file.path(), c.n_rot, c.head_dim);
  }
  KVQ_RETURN_IF_ERROR(keys.optional_float("rope.freq_base", c.rope_freq_base));
  if (!(c.rope_freq_base > 1.0f)) return make_error("{}: {}rope.freq_base must be > 1", file.path(), p);
  KVQ_RETURN_IF_ERROR(keys.optional_float("attention.layer_norm_rms_epsilon", c.rms_eps));
  KVQ_RETURN_IF_ERROR(read_rope_scaling(file, keys, c));
  KVQ_RETURN_IF_ERROR(keys.optional_int("attention.sliding_window", c.sliding_window));
  if (c.arch->softcaps) {
    KVQ_RETURN_IF_ERROR(keys.optional_float("attn_logit_softcapping", c.attn_softcap));
    KVQ_RETURN_IF_ERROR(keys.optional_float("final_logit_softcapping", c.final_softcap));
    if (c.attn_softcap < 0.0f || c.final_softcap < 0.0f) {
      return make_error("{}: softcapping values must be positive", file.path());
    }
  }
  const bool wide = c.arch->wide_query_scale_layers == c.n_layer;
  c.attn_scale = 1.0f / std::sqrt(float(wide ? c.n_embd / c.n_head : c.head_dim));

  const int period = c.arch->swa_period;
  if (period > 0 && c.sliding_window <= 0) {
    return make_error("{}: {}attention.sliding_window is missing ({} uses sliding-window layers)", file.path(), p,
                      c.architecture);
  }
  c.layers.resize(size_t(c.n_layer));
  for (int l = 0; l < c.n_layer; ++l) {
    LayerConfig& layer = c.layers[size_t(l)];
    layer.window = period > 0 && l % period < period - 1 ? c.sliding_window : 0;
    const bool own_rope = layer.window > 0 && c.arch->swa_rope_base > 0.0f;
    layer.rope_base = own_rope ? c.arch->swa_rope_base : c.rope_freq_base;
    layer.rope_scale = own_rope ? 1.0f : c.rope_freq_scale;
  }

  auto tokens = file.find("tokenizer.ggml.tokens");
  if (const gguf::TensorInfo* embd = file.find_tensor("token_embd.weight"); embd && embd->dims.size() == 2) {
    c.n_vocab = int(embd->dims[1]);
  } else if (tokens && tokens->type == gguf::ValueType::ARRAY) {
    c.n_vocab = int(tokens->array.size());
  }
  return c;
}

}  // namespace kvq
