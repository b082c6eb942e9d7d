#include "model/model.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "quant/quant.h"

namespace kvq {

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  auto file = gguf::File::open(path);
  if (!file) return file.error();
  auto config = read_model_config(*file);
  if (!config) return config.error();
  auto weights = bind_model_weights(*file, *config);
  if (!weights) return weights.error();
  return std::unique_ptr<Model>(new Model(std::move(*file), std::move(*config), std::move(*weights)));
}

Model::Model(gguf::File file, ModelConfig config, ModelWeights weights)
    : file_(std::move(file)), config_(std::move(config)), weights_(std::move(weights)) {}

KvCacheShape Model::cache_shape(int n_ctx, int max_batch) const {
  return KvCacheShape{config_.n_layer, n_ctx, config_.n_head_kv, config_.head_dim, config_.layer_windows(), max_batch};
}

Result<KvCache> Model::make_cache(int n_ctx, const std::vector<KvTypes>& per_layer, int max_batch) const {
  return KvCache::create(cache_shape(n_ctx, max_batch), per_layer);
}

void Model::ensure_scratch(int n) {
  if (n <= scratch_tokens_) return;
  const ModelConfig& c = config_;
  scratch_tokens_ = n;
  x_.resize(size_t(n) * c.n_embd);
  xn_.resize(size_t(n) * c.n_embd);
  q_.resize(size_t(n) * c.q_dim());
  k_.resize(size_t(n) * c.kv_dim());
  v_.resize(size_t(n) * c.kv_dim());
  attn_.resize(size_t(n) * c.q_dim());
  gate_.resize(size_t(n) * c.n_ff);
  up_.resize(size_t(n) * c.n_ff);
}

Status Model::forward(std::span<const int32_t> tokens, int pos, KvCache& cache, float* logits, bool all_logits) {
  const ModelConfig& c = config_;
  if (tokens.empty()) return make_error("forward: no tokens");
  if (pos < 0 || pos + int64_t(tokens.size()) > cache.shape().n_ctx) {
    return make_error("context full: positions {}..{} do not fit a cache of {} tokens", pos, pos + tokens.size() - 1,
                      cache.shape().n_ctx);
  }
  if (cache.shape().n_layer != c.n_layer || cache.shape().head_dim != c.head_dim ||
      cache.shape().n_head_kv != c.n_head_kv || cache.shape().window != c.layer_windows()) {
    return make_error("forward: the cache was not made for this model");
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= c.n_vocab) {
      return make_error("token id {} is outside the vocabulary (0..{})", id, c.n_vocab - 1);
    }
  }
  const int n_total = int(tokens.size());
  const int slice = std::min(kMaxBatch, cache.shape().max_batch);
  for (int start = 0; start < n_total; start += slice) {
    const int n = std::min(slice, n_total - start);
    const bool last_slice = start + n == n_total;
    float* out = nullptr;
    if (all_logits)
      out = logits + size_t(start) * c.n_vocab;
    else if (last_slice)
      out = logits;
    forward_batch(tokens.data() + start, n, pos + start, cache, out, all_logits);
  }
  return Status::Ok();
}

// Reads xn_ (the normalised input), leaves the block's output in xn_.
void Model::attention_block(int l, int n, int pos, KvCache& cache) {
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_.layers[size_t(l)];
  const Projection qkv[] = {{L.wq, q_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}};
  matmul_shared_input(qkv, xn_.data(), n);
  if (L.bq) add_bias(q_.data(), L.bq.data, n, c.q_dim());
  if (L.bk) add_bias(k_.data(), L.bk.data, n, c.kv_dim());
  if (L.bv) add_bias(v_.data(), L.bv.data, n, c.kv_dim());
  if (L.q_norm) {  // over each head: rows of head_dim
    rms_norm(q_.data(), L.q_norm.data, q_.data(), int64_t(n) * c.n_head, c.head_dim, c.rms_eps);
    rms_norm(k_.data(), L.k_norm.data, k_.data(), int64_t(n) * c.n_head_kv, c.head_dim, c.rms_eps);
  }
  RopeParams rope_q = c.rope_params(l, c.n_head);
  // Phi-3 long rope: the long factors once the cache reaches past the original context (as Hugging Face).
  const bool long_rope = weights_.rope_factors_long && cache.shape().n_ctx > c.rope_ctx_orig;
  rope_q.freq_factors = long_rope ? weights_.rope_factors_long : weights_.rope_freq_factors;
  RopeParams rope_k = rope_q;
  rope_k.n_head = c.n_head_kv;
  rope(q_.data(), n, pos, rope_q);
  rope(k_.data(), n, pos, rope_k);
  cache.store(l, pos, n, k_.data(), v_.data());  // quantized on write
  AttentionParams ap{c.n_head, c.n_head_kv, c.head_dim, c.attn_scale};
  ap.softcap = c.attn_softcap;
  ap.window = c.layers[size_t(l)].window;
  attention(ap, cache, l, q_.data(), n, pos, attn_.data());
  matmul(L.wo, attn_.data(), xn_.data(), n);
  if (L.post_attn_norm) rms_norm(xn_.data(), L.post_attn_norm.data, xn_.data(), n, c.n_embd, c.rms_eps);
}

// Reads xn_, leaves the block's output in xn_.
void Model::ffn_block(int l, int n) {
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_.layers[size_t(l)];
  const Projection gate_up[] = {{L.w_gate, gate_.data()}, {L.w_up, up_.data()}};
  matmul_shared_input(gate_up, xn_.data(), n);
  if (c.arch->ffn_activation == FfnActivation::kGeluTanh) {
    geglu(gate_.data(), up_.data(), gate_.data(), int64_t(n) * c.n_ff);
  } else {
    swiglu(gate_.data(), up_.data(), gate_.data(), int64_t(n) * c.n_ff);
  }
  matmul(L.w_down, gate_.data(), xn_.data(), n);
  if (L.post_ffn_norm) rms_norm(xn_.data(), L.post_ffn_norm.data, xn_.data(), n, c.n_embd, c.rms_eps);
}

// logits: null (no output wanted), [n, n_vocab] when all_logits, else [n_vocab].
void Model::forward_batch(const int32_t* tokens, int n, int pos, KvCache& cache, float* logits, bool all_logits) {
  const ModelConfig& c = config_;
  const ModelWeights& w = weights_;
  ensure_scratch(n);
  const int64_t embd = c.n_embd;

  const size_t embd_row_bytes = row_bytes(w.token_embd.type, embd);
  for (int t = 0; t < n; ++t) {
    dequantize_row(w.token_embd.type, w.token_embd.data + size_t(tokens[t]) * embd_row_bytes, x_.data() + t * embd,
                   embd);
  }
  if (c.arch->embed_scale) scale_inplace(x_.data(), int64_t(n) * embd, std::sqrt(float(embd)));

  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w.layers[size_t(l)];
    rms_norm(x_.data(), L.attn_norm.data, xn_.data(), n, embd, c.rms_eps);
    attention_block(l, n, pos, cache);
    add_inplace(x_.data(), xn_.data(), int64_t(n) * embd);
    rms_norm(x_.data(), L.ffn_norm.data, xn_.data(), n, embd, c.rms_eps);
    ffn_block(l, n);
    add_inplace(x_.data(), xn_.data(), int64_t(n) * embd);
  }
  if (!logits) return;
  // Only the rows whose logits are wanted go through the (vocabulary-sized) output matmul.
  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  rms_norm(x_.data() + first * embd, w.output_norm.data, xn_.data(), rows, embd, c.rms_eps);
  matmul(w.output, xn_.data(), logits, rows);
  if (c.final_softcap > 0.0f) softcap_inplace(logits, int64_t(rows) * c.n_vocab, c.final_softcap);
}

}  // namespace kvq
