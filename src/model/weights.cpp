#include "model/weights.h"

#include <fmt/format.h>

namespace kvq {
namespace {

class Binder {
 public:
  explicit Binder(const gguf::File& file) : file_(file) {}

  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

  // A matrix of n_out rows of n_in, or rows [row0, row0 + n_out) of a fused one with total_rows rows.
  Result<WeightMatrix> matrix(const std::string& name, int64_t n_in, int64_t n_out, int64_t row0 = 0,
                              int64_t total_rows = 0) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) return make_error("{}: tensor '{}' is missing", file_.path(), name);
    if (total_rows == 0) total_rows = n_out;
    if (t->dims.size() != 2 || t->dims[0] != n_in || t->dims[1] != total_rows) {
      return make_error("{}: tensor '{}' has shape {}, expected [{}, {}]", file_.path(), name, shape_string(*t), n_in,
                        total_rows);
    }
    const TypeTraits* traits = find_type_traits(uint32_t(t->type));
    if (!traits || !traits->kernels || !matmul_supports(t->type)) {
      return make_error("{}: tensor '{}' has type {}, which kvq cannot multiply", file_.path(), name,
                        traits ? traits->name : "unknown");
    }
    return WeightMatrix{t->type, t->data + size_t(row0) * row_bytes(t->type, n_in), n_in, n_out};
  }

  Result<VectorView> vector(const std::string& name, int64_t n) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) return make_error("{}: tensor '{}' is missing", file_.path(), name);
    if (t->dims.size() != 1 || t->dims[0] != n) {
      return make_error("{}: tensor '{}' has shape {}, expected [{}]", file_.path(), name, shape_string(*t), n);
    }
    if (t->type != GgmlType::F32) {
      return make_error("{}: tensor '{}' must be f32, is {}", file_.path(), name, type_name(t->type));
    }
    return VectorView{reinterpret_cast<const float*>(t->data), n};
  }

  // Absent is fine; present must be right.
  Result<VectorView> optional_vector(const std::string& name, int64_t n) {
    return has(name) ? vector(name, n) : Result<VectorView>(VectorView{});
  }

 private:
  static std::string shape_string(const gguf::TensorInfo& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
    return s + "]";
  }
  const gguf::File& file_;
};

#define KVQ_BIND(dst, expr)   \
  do {                        \
    auto r = (expr);          \
    if (!r) return r.error(); \
    dst = *r;                 \
  } while (0)

Status bind_layer(Binder& bind, const ModelConfig& c, const std::string& p, LayerWeights& L) {
  const int64_t embd = c.n_embd, q_dim = c.q_dim(), kv_dim = c.kv_dim(), ff = c.n_ff;
  KVQ_BIND(L.attn_norm, bind.vector(p + "attn_norm.weight", embd));
  if (bind.has(p + "attn_qkv.weight")) {  // Phi-3: q, k, v stacked by rows
    const int64_t rows = q_dim + 2 * kv_dim;
    KVQ_BIND(L.wq, bind.matrix(p + "attn_qkv.weight", embd, q_dim, 0, rows));
    KVQ_BIND(L.wk, bind.matrix(p + "attn_qkv.weight", embd, kv_dim, q_dim, rows));
    KVQ_BIND(L.wv, bind.matrix(p + "attn_qkv.weight", embd, kv_dim, q_dim + kv_dim, rows));
  } else {
    KVQ_BIND(L.wq, bind.matrix(p + "attn_q.weight", embd, q_dim));
    KVQ_BIND(L.wk, bind.matrix(p + "attn_k.weight", embd, kv_dim));
    KVQ_BIND(L.wv, bind.matrix(p + "attn_v.weight", embd, kv_dim));
  }
  if (c.arch->qkv_bias) {
    KVQ_BIND(L.bq, bind.vector(p + "attn_q.bias", q_dim));
    KVQ_BIND(L.bk, bind.vector(p + "attn_k.bias", kv_dim));
    KVQ_BIND(L.bv, bind.vector(p + "attn_v.bias", kv_dim));
  } else {
    KVQ_BIND(L.bq, bind.optional_vector(p + "attn_q.bias", q_dim));
    KVQ_BIND(L.bk, bind.optional_vector(p + "attn_k.bias", kv_dim));
    KVQ_BIND(L.bv, bind.optional_vector(p + "attn_v.bias", kv_dim));
  }
  if (c.arch->qk_norm) {
    KVQ_BIND(L.q_norm, bind.vector(p + "attn_q_norm.weight", c.head_dim));
    KVQ_BIND(L.k_norm, bind.vector(p + "attn_k_norm.weight", c.head_dim));
  }
  KVQ_BIND(L.wo, bind.matrix(p + "attn_output.weight", q_dim, embd));
  KVQ_BIND(L.ffn_norm, bind.vector(p + "ffn_norm.weight", embd));
  if (c.arch->post_norms) {
    KVQ_BIND(L.post_attn_norm, bind.vector(p + "post_attention_norm.weight", embd));
    KVQ_BIND(L.post_ffn_norm, bind.vector(p + "post_ffw_norm.weight", embd));
  }
  if (!bind.has(p + "ffn_gate.weight") && bind.has(p + "ffn_up.weight")) {  // Phi-3: gate and up stacked
    KVQ_BIND(L.w_gate, bind.matrix(p + "ffn_up.weight", embd, ff, 0, 2 * ff));
    KVQ_BIND(L.w_up, bind.matrix(p + "ffn_up.weight", embd, ff, ff, 2 * ff));
  } else {
    KVQ_BIND(L.w_gate, bind.matrix(p + "ffn_gate.weight", embd, ff));
    KVQ_BIND(L.w_up, bind.matrix(p + "ffn_up.weight", embd, ff));
  }
  KVQ_BIND(L.w_down, bind.matrix(p + "ffn_down.weight", ff, embd));
  return Status::Ok();
}

Result<const float*> rope_factors(Binder& bind, const std::string& name, const ModelConfig& c) {
  if (!bind.has(name)) return static_cast<const float*>(nullptr);
  auto v = bind.vector(name, c.n_rot / 2);
  if (!v) return v.error();
  return v->data;
}

}  // namespace

Result<ModelWeights> bind_model_weights(const gguf::File& file, const ModelConfig& c) {
  Binder bind(file);
  ModelWeights w;
  KVQ_BIND(w.token_embd, bind.matrix("token_embd.weight", c.n_embd, c.n_vocab));
  KVQ_BIND(w.output_norm, bind.vector("output_norm.weight", c.n_embd));
  if (bind.has("output.weight")) {
    KVQ_BIND(w.output, bind.matrix("output.weight", c.n_embd, c.n_vocab));
  } else {
    w.output = w.token_embd;
    w.tied_output = true;
  }
  KVQ_BIND(w.rope_freq_factors, rope_factors(bind, "rope_freqs.weight", c));
  if (!w.rope_freq_factors) {  // Phi-3 long rope: the short set up to the original context, else the long one
    KVQ_BIND(w.rope_freq_factors, rope_factors(bind, "rope_factors_short.weight", c));
    KVQ_BIND(w.rope_factors_long, rope_factors(bind, "rope_factors_long.weight", c));
  }
  w.layers.resize(size_t(c.n_layer));
  for (int l = 0; l < c.n_layer; ++l) {
    KVQ_RETURN_IF_ERROR(bind_layer(bind, c, fmt::format("blk.{}.", l), w.layers[size_t(l)]));
  }
  for (const gguf::TensorInfo& t : file.tensors()) {
    w.total_bytes += t.bytes;
    w.n_params += uint64_t(t.n_elements());
  }
  return w;
}

#undef KVQ_BIND

}  // namespace kvq
