#include "model/config.h"

#include <string_view>

namespace kvq {
namespace {

// Architectures that share the Llama graph (RMSNorm, RoPE "normal", SwiGLU, GQA).
constexpr std::string_view kSupportedArchitectures[] = {"llama"};

}  // namespace

Result<LlamaConfig> read_llama_config(const gguf::File& file) {
  LlamaConfig c;
  auto arch = file.get_string("general.architecture");
  if (!arch) return arch.error();
  c.architecture = *arch;
  bool supported = false;
  for (std::string_view a : kSupportedArchitectures) supported |= (a == c.architecture);
  if (!supported) {
    return make_error("{}: architecture '{}' is not supported (supported: llama)", file.path(), c.architecture);
  }
  if (const gguf::Value* v = file.find("general.name"); v && v->type == gguf::ValueType::STRING) {
    c.name = v->str;
  }
  const std::string p = c.architecture + ".";
  auto get_int = [&](const char* key, int& out) -> Status {
    auto v = file.get_int(p + key);
    if (!v) return v.error();
    if (*v <= 0 || *v > (1 << 30)) {
      return make_error("{}: {}{} = {} is out of range", file.path(), p, key, *v);
    }
    out = int(*v);
    return Status::Ok();
  };
  KVQ_RETURN_IF_ERROR(get_int("block_count", c.n_layer));
  KVQ_RETURN_IF_ERROR(get_int("embedding_length", c.n_embd));
  KVQ_RETURN_IF_ERROR(get_int("feed_forward_length", c.n_ff));
  KVQ_RETURN_IF_ERROR(get_int("attention.head_count", c.n_head));
  KVQ_RETURN_IF_ERROR(get_int("context_length", c.n_ctx_train));
  c.n_head_kv = c.n_head;
  if (file.find(p + "attention.head_count_kv")) KVQ_RETURN_IF_ERROR(get_int("attention.head_count_kv", c.n_head_kv));
  c.head_dim = c.n_embd / c.n_head;
  if (file.find(p + "attention.key_length")) KVQ_RETURN_IF_ERROR(get_int("attention.key_length", c.head_dim));
  if (file.find(p + "attention.value_length")) {
    int value_length = 0;
    KVQ_RETURN_IF_ERROR(get_int("attention.value_length", value_length));
    if (value_length != c.head_dim) {
      return make_error("{}: key_length {} != value_length {} is not supported", file.path(), c.head_dim, value_length);
    }
  }
  if (c.n_head % c.n_head_kv != 0) {
    return make_error("{}: head_count {} is not a multiple of head_count_kv {}", file.path(), c.n_head, c.n_head_kv);
  }
  if (c.head_dim % 2 != 0) return make_error("{}: head dimension {} is odd", file.path(), c.head_dim);
  c.n_rot = c.head_dim;
  if (file.find(p + "rope.dimension_count")) KVQ_RETURN_IF_ERROR(get_int("rope.dimension_count", c.n_rot));
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    return make_error("{}: rope.dimension_count {} does not fit head dimension {}", file.path(), c.n_rot, c.head_dim);
  }

  auto base = file.get_float_or(p + "rope.freq_base", 10000.0);
  if (!base) return base.error();
  c.rope_freq_base = float(*base);
  auto eps = file.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5);
  if (!eps) return eps.error();
  c.rms_eps = float(*eps);

  // RoPE scaling: linear only (older files say rope.scale_linear, newer rope.scaling.type/factor).
  double linear_factor = 1.0;
  if (file.find(p + "rope.scale_linear")) {
    auto f = file.get_float(p + "rope.scale_linear");
    if (!f) return f.error();
    linear_factor = *f;
  }
  if (const gguf::Value* t = file.find(p + "rope.scaling.type")) {
    const std::string type = t->type == gguf::ValueType::STRING ? t->str : "";
    if (type == "linear") {
      auto f = file.get_float(p + "rope.scaling.factor");
      if (!f) return f.error();
      linear_factor = *f;
    } else if (type != "none") {
      return make_error("{}: rope scaling type '{}' is not supported (supported: none, linear)", file.path(), type);
    }
  }
  if (!(linear_factor > 0.0)) {
    return make_error("{}: rope scaling factor {} must be positive", file.path(), linear_factor);
  }
  c.rope_freq_scale = float(1.0 / linear_factor);
  if (file.find(p + "attention.sliding_window")) {
    auto w = file.get_int(p + "attention.sliding_window");
    if (!w) return w.error();
    c.sliding_window = int(*w);
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
