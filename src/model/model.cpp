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

KvCacheShape cache_shape_of(const ModelConfig& config, int n_ctx, const KvCacheLayout& layout, int max_batch) {
  KvCacheShape shape{config.n_layer, n_ctx, config.n_head_kv, config.head_dim, config.layer_windows(), max_batch};
  shape.centre_keys = layout.centre && config.attn_softcap == 0.0f;
  shape.centre_values = layout.centre;
  return shape;
}

KvCacheShape Model::cache_shape(int n_ctx, int max_batch) const {
  return cache_shape_of(config_, n_ctx, kv_layout_, max_batch);
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

Status Model::check_step(std::span<const int32_t> tokens, int pos, const KvCache& cache) const {
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
    if (id < 0 || id >= c.n_vocab)
      return make_error("token id {} is outside the vocabulary (0..{})", id, c.n_vocab - 1);
  }
  return Status::Ok();
}

Status Model::forward(std::span<const int32_t> tokens, int pos, KvCache& cache, float* logits, bool all_logits) {
  KVQ_RETURN_IF_ERROR(check_step(tokens, pos, cache));
  const int n_total = int(tokens.size());
  const int slice = std::min(kMaxBatch, cache.shape().max_batch);
  std::vector<int> out_rows;
  for (int start = 0; start < n_total; start += slice) {
    const int n = std::min(slice, n_total - start);
    const bool last_slice = start + n == n_total;
    out_rows.clear();
    float* out = nullptr;
    if (all_logits) {
      for (int i = 0; i < n; ++i) out_rows.push_back(i);
      out = logits + size_t(start) * config_.n_vocab;
    } else if (last_slice) {
      out_rows.push_back(n - 1);
      out = logits;
    }
    const Segment whole{0, n, pos + start, &cache};
    forward_rows(tokens.data() + start, n, {&whole, 1}, out_rows, out);
  }
  return Status::Ok();
}

Status Model::forward_batched(std::span<const SequenceStep> steps) {
  std::vector<int32_t> tokens;  // [n_rows] all sequences' tokens, one after the other
  std::vector<Segment> segments;
  std::vector<int> out_rows;
  for (const SequenceStep& step : steps) {
    if (!step.cache) return make_error("forward_batched: a step has no cache");
    KVQ_RETURN_IF_ERROR(check_step(step.tokens, step.pos, *step.cache));
    if (int(step.tokens.size()) > step.cache->shape().max_batch) {
      return make_error("forward_batched: {} tokens exceed the cache's batch of {}", step.tokens.size(),
                        step.cache->shape().max_batch);
    }
    for (const Segment& other : segments) {
      if (other.cache == step.cache) return make_error("forward_batched: two steps share one cache");
    }
    segments.push_back({int(tokens.size()), int(step.tokens.size()), step.pos, step.cache});
    tokens.insert(tokens.end(), step.tokens.begin(), step.tokens.end());
    if (step.logits) out_rows.push_back(int(tokens.size()) - 1);
  }
  if (tokens.empty()) return Status::Ok();
  if (tokens.size() > size_t(kMaxBatch)) {
    return make_error("forward_batched: {} tokens exceed the batch of {}", tokens.size(), kMaxBatch);
  }
  batch_logits_.resize(out_rows.size() * size_t(config_.n_vocab));
  forward_rows(tokens.data(), int(tokens.size()), segments, out_rows, batch_logits_.data());
  size_t next = 0;
  for (const SequenceStep& step : steps) {
    if (!step.logits) continue;
    std::copy_n(batch_logits_.data() + next++ * config_.n_vocab, config_.n_vocab, step.logits);
  }
  return Status::Ok();
}

// Reads xn_ (the normalised input), leaves the block's output in xn_.
void Model::attention_block(int l, int n_rows, std::span<const Segment> segments) {
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_.layers[size_t(l)];
  const Projection qkv[] = {{L.wq, q_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}};
  matmul_shared_input(qkv, xn_.data(), n_rows);
  if (L.bq) add_bias(q_.data(), L.bq.data, n_rows, c.q_dim());
  if (L.bk) add_bias(k_.data(), L.bk.data, n_rows, c.kv_dim());
  if (L.bv) add_bias(v_.data(), L.bv.data, n_rows, c.kv_dim());
  if (L.q_norm) {  // over each head: rows of head_dim
    rms_norm(q_.data(), L.q_norm.data, q_.data(), int64_t(n_rows) * c.n_head, c.head_dim, c.rms_eps);
    rms_norm(k_.data(), L.k_norm.data, k_.data(), int64_t(n_rows) * c.n_head_kv, c.head_dim, c.rms_eps);
  }
  AttentionParams ap{c.n_head, c.n_head_kv, c.head_dim, c.attn_scale};
  ap.softcap = c.attn_softcap;
  ap.window = c.layers[size_t(l)].window;
  for (const Segment& seg : segments) {
    float* q = q_.data() + size_t(seg.row0) * c.q_dim();
    float* k = k_.data() + size_t(seg.row0) * c.kv_dim();
    RopeParams rope_q = c.rope_params(l, c.n_head);
    // Phi-3 long rope: the long factors once the cache reaches past the original context (as Hugging Face).
    const bool long_rope = weights_.rope_factors_long && seg.cache->shape().n_ctx > c.rope_ctx_orig;
    rope_q.freq_factors = long_rope ? weights_.rope_factors_long : weights_.rope_freq_factors;
    RopeParams rope_k = rope_q;
    rope_k.n_head = c.n_head_kv;
    rope(q, seg.n, seg.pos, rope_q);
    rope(k, seg.n, seg.pos, rope_k);
    float* v = v_.data() + size_t(seg.row0) * c.kv_dim();
    float* out = attn_.data() + size_t(seg.row0) * c.q_dim();
    // Rotated layers (kv/rotation.h): q and k by the same orthogonal R per head, so scores are unchanged;
    // v too when asked, the output then turned back below.
    const KvRotation rotation = seg.cache->types()[size_t(l)].rotation;
    const HeadRotation* rot = seg.cache->rotation();
    if (rotation != KvRotation::kNone) {
      rot->forward(q, int64_t(seg.n) * c.n_head);
      rot->forward(k, int64_t(seg.n) * c.n_head_kv);
      if (rotation == KvRotation::kKeysValues) rot->forward(v, int64_t(seg.n) * c.n_head_kv);
    }
    // A kept recent window (kv/kv_cache.h) holds the keys of kKvRecentSlice queries per attention call.
    const int slice = seg.cache->kept(l).recent > 0 ? kKvRecentSlice : seg.n;
    for (int s0 = 0; s0 < seg.n; s0 += slice) {
      const int n = std::min(slice, seg.n - s0);
      const size_t kv_off = size_t(s0) * c.kv_dim(), q_off = size_t(s0) * c.q_dim();
      seg.cache->store(l, seg.pos + s0, n, k + kv_off, v + kv_off);  // quantized on write
      attention(ap, *seg.cache, l, q + q_off, n, seg.pos + s0, out + q_off);
    }
    if (rotation == KvRotation::kKeysValues) rot->inverse(out, int64_t(seg.n) * c.n_head);
  }
  matmul(L.wo, attn_.data(), xn_.data(), n_rows);
  if (L.post_attn_norm) rms_norm(xn_.data(), L.post_attn_norm.data, xn_.data(), n_rows, c.n_embd, c.rms_eps);
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

void Model::forward_rows(const int32_t* tokens, int n, std::span<const Segment> segments, std::span<const int> out_rows,
                         float* logits) {
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
    attention_block(l, n, segments);
    add_inplace(x_.data(), xn_.data(), int64_t(n) * embd);
    rms_norm(x_.data(), L.ffn_norm.data, xn_.data(), n, embd, c.rms_eps);
    ffn_block(l, n);
    add_inplace(x_.data(), xn_.data(), int64_t(n) * embd);
  }
  if (out_rows.empty()) return;
  // Only the rows whose logits are wanted go through the (vocabulary-sized) output matmul.
  const int rows = int(out_rows.size());
  out_.resize(size_t(rows) * embd);
  if (out_rows.back() - out_rows.front() == rows - 1) {  // one run of rows (a prompt's last, or all)
    rms_norm(x_.data() + size_t(out_rows.front()) * embd, w.output_norm.data, out_.data(), rows, embd, c.rms_eps);
  } else {
    for (int i = 0; i < rows; ++i) {
      rms_norm(x_.data() + size_t(out_rows[size_t(i)]) * embd, w.output_norm.data, out_.data() + size_t(i) * embd, 1,
               embd, c.rms_eps);
    }
  }
  matmul(w.output, out_.data(), logits, rows);
  if (c.final_softcap > 0.0f) softcap_inplace(logits, int64_t(rows) * c.n_vocab, c.final_softcap);
}

}  // namespace kvq
