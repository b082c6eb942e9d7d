#include "model/llama.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "quant/quant.h"

namespace kvq {

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const std::string& path) {
  auto file = gguf::File::open(path);
  if (!file) return file.error();
  auto config = read_llama_config(*file);
  if (!config) return config.error();
  auto weights = bind_llama_weights(*file, *config);
  if (!weights) return weights.error();
  return std::unique_ptr<LlamaModel>(new LlamaModel(std::move(*file), std::move(*config), std::move(*weights)));
}

LlamaModel::LlamaModel(gguf::File file, LlamaConfig config, LlamaWeights weights)
    : file_(std::move(file)), config_(std::move(config)), weights_(std::move(weights)) {}

Result<KvCache> LlamaModel::make_cache(int n_ctx, const std::vector<KvTypes>& per_layer) const {
  KvCacheShape shape{config_.n_layer, n_ctx, config_.n_head_kv, config_.head_dim};
  return KvCache::create(shape, per_layer);
}

void LlamaModel::ensure_scratch(int n) {
  if (n <= scratch_tokens_) return;
  const LlamaConfig& c = config_;
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

Status LlamaModel::forward(std::span<const int32_t> tokens, int pos, KvCache& cache, float* logits, bool all_logits) {
  const LlamaConfig& c = config_;
  if (tokens.empty()) return make_error("forward: no tokens");
  if (pos < 0 || pos + int64_t(tokens.size()) > cache.shape().n_ctx) {
    return make_error("context full: positions {}..{} do not fit a cache of {} tokens", pos, pos + tokens.size() - 1,
                      cache.shape().n_ctx);
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= c.n_vocab) {
      return make_error("token id {} is outside the vocabulary (0..{})", id, c.n_vocab - 1);
    }
  }
  const int n_total = int(tokens.size());
  for (int start = 0; start < n_total; start += kMaxBatch) {
    const int n = std::min(kMaxBatch, n_total - start);
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

// logits: null (no output wanted), [n, n_vocab] when all_logits, else [n_vocab].
void LlamaModel::forward_batch(const int32_t* tokens, int n, int pos, KvCache& cache, float* logits, bool all_logits) {
  const LlamaConfig& c = config_;
  const LlamaWeights& w = weights_;
  ensure_scratch(n);
  const int64_t embd = c.n_embd;

  const size_t embd_row_bytes = row_bytes(w.token_embd.type, embd);
  for (int t = 0; t < n; ++t) {
    dequantize_row(w.token_embd.type, w.token_embd.data + size_t(tokens[t]) * embd_row_bytes, x_.data() + t * embd,
                   embd);
  }

  const RopeParams rope_q{c.n_head, c.head_dim, c.n_rot, c.rope_freq_base, c.rope_freq_scale, w.rope_freq_factors};
  RopeParams rope_k = rope_q;
  rope_k.n_head = c.n_head_kv;
  const AttentionParams attention_params{c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};

  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w.layers[l];
    // Attention block.
    rms_norm(x_.data(), L.attn_norm.data, xn_.data(), n, embd, c.rms_eps);
    const Projection qkv[] = {{L.wq, q_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}};
    matmul_shared_input(qkv, xn_.data(), n);
    rope(q_.data(), n, pos, rope_q);
    rope(k_.data(), n, pos, rope_k);
    cache.store(l, pos, n, k_.data(), v_.data());  // quantized on write
    attention(attention_params, cache, l, q_.data(), n, pos, attn_.data());
    matmul(L.wo, attn_.data(), xn_.data(), n);
    add_inplace(x_.data(), xn_.data(), int64_t(n) * embd);

    // Feed-forward block (SwiGLU).
    rms_norm(x_.data(), L.ffn_norm.data, xn_.data(), n, embd, c.rms_eps);
    const Projection gate_up[] = {{L.w_gate, gate_.data()}, {L.w_up, up_.data()}};
    matmul_shared_input(gate_up, xn_.data(), n);
    swiglu(gate_.data(), up_.data(), gate_.data(), int64_t(n) * c.n_ff);
    matmul(L.w_down, gate_.data(), xn_.data(), n);
    add_inplace(x_.data(), xn_.data(), int64_t(n) * embd);
  }
  if (!logits) return;
  // Only the rows whose logits are wanted go through the (vocabulary-sized) output matmul.
  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  rms_norm(x_.data() + first * embd, w.output_norm.data, xn_.data(), rows, embd, c.rms_eps);
  matmul(w.output, xn_.data(), logits, rows);
}

}  // namespace kvq
