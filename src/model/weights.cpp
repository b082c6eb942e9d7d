#include "model/weights.h"

#include <fmt/format.h>

namespace kvq {
namespace {

class Binder {
 public:
  Binder(const gguf::File& file) : file_(file) {}

  Result<WeightMatrix> matrix(const std::string& name, int64_t n_in, int64_t n_out) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) return make_error("{}: tensor '{}' is missing", file_.path(), name);
    if (t->dims.size() != 2 || t->dims[0] != n_in || t->dims[1] != n_out) {
      return make_error("{}: tensor '{}' has shape {}, expected [{}, {}]", file_.path(), name, shape_string(*t), n_in,
                        n_out);
    }
    const TypeTraits* traits = find_type_traits(uint32_t(t->type));
    if (!traits || !traits->kernels || !matmul_supports(t->type)) {
      return make_error("{}: tensor '{}' has type {}, which kvq cannot multiply", file_.path(), name,
                        traits ? traits->name : "unknown");
    }
    return WeightMatrix{t->type, t->data, n_in, n_out};
  }

  Result<VectorView> vector(const std::string& name, int64_t n) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) return make_error("{}: tensor '{}' is missing", file_.path(), name);
    if (t->n_elements() != n || t->dims[0] != n) {
      return make_error("{}: tensor '{}' has shape {}, expected [{}]", file_.path(), name, shape_string(*t), n);
    }
    if (t->type != GgmlType::F32) {
      return make_error("{}: tensor '{}' must be f32, is {}", file_.path(), name, type_name(t->type));
    }
    return VectorView{reinterpret_cast<const float*>(t->data), n};
  }

 private:
  static std::string shape_string(const gguf::TensorInfo& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
    return s + "]";
  }
  const gguf::File& file_;
};

}  // namespace

Result<LlamaWeights> bind_llama_weights(const gguf::File& file, const LlamaConfig& c) {
  Binder bind(file);
  LlamaWeights w;
#define KVQ_BIND(dst, expr)   \
  do {                        \
    auto r = (expr);          \
    if (!r) return r.error(); \
    dst = *r;                 \
  } while (0)
  KVQ_BIND(w.token_embd, bind.matrix("token_embd.weight", c.n_embd, c.n_vocab));
  KVQ_BIND(w.output_norm, bind.vector("output_norm.weight", c.n_embd));
  if (file.find_tensor("output.weight")) {
    KVQ_BIND(w.output, bind.matrix("output.weight", c.n_embd, c.n_vocab));
  } else {
    w.output = w.token_embd;
    w.tied_output = true;
  }
  if (const gguf::TensorInfo* t = file.find_tensor("rope_freqs.weight")) {
    if (t->type != GgmlType::F32 || t->n_elements() != c.n_rot / 2) {
      return make_error("{}: tensor 'rope_freqs.weight' must be f32 [{}]", file.path(), c.n_rot / 2);
    }
    w.rope_freq_factors = reinterpret_cast<const float*>(t->data);
  }
  w.layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = fmt::format("blk.{}.", l);
    KVQ_BIND(L.attn_norm, bind.vector(p + "attn_norm.weight", c.n_embd));
    KVQ_BIND(L.wq, bind.matrix(p + "attn_q.weight", c.n_embd, c.q_dim()));
    KVQ_BIND(L.wk, bind.matrix(p + "attn_k.weight", c.n_embd, c.kv_dim()));
    KVQ_BIND(L.wv, bind.matrix(p + "attn_v.weight", c.n_embd, c.kv_dim()));
    KVQ_BIND(L.wo, bind.matrix(p + "attn_output.weight", c.q_dim(), c.n_embd));
    KVQ_BIND(L.ffn_norm, bind.vector(p + "ffn_norm.weight", c.n_embd));
    KVQ_BIND(L.w_gate, bind.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff));
    KVQ_BIND(L.w_up, bind.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff));
    KVQ_BIND(L.w_down, bind.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd));
  }
#undef KVQ_BIND
  for (const gguf::TensorInfo& t : file.tensors()) {
    w.total_bytes += t.bytes;
    w.n_params += uint64_t(t.n_elements());
  }
  return w;
}

}  // namespace kvq
