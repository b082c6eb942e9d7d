// A decoder-only transformer (Llama, Qwen2/3, Gemma 2/3, Phi-3): one forward pass over a batch of tokens
// that reads the architecture's features (model/arch.h), weights from the mapped GGUF file, and keys and
// values through the (possibly quantized, possibly windowed) KvCache.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/weights.h"

namespace kvq {

// One sequence's part of a batched step (continuous batching: several sequences, each with its own cache,
// share one pass so that every weight is read once for all of them).
struct SequenceStep {
  std::span<const int32_t> tokens;  // at positions pos .. pos + n - 1 of this sequence
  int pos = 0;
  KvCache* cache = nullptr;
  float* logits = nullptr;  // [n_vocab] for the last token, or null
};

// The cache of a model of `config` at n_ctx tokens: sliding-window layers keep rings sized for max_batch
// tokens per forward slice; centring as `layout` says (kept rows come with the per-layer types), except that keys are
// never centred where scores are soft-capped (capped scores are not shift-invariant). kvq info counts memory by it.
KvCacheShape cache_shape_of(const ModelConfig& config, int n_ctx, const KvCacheLayout& layout,
                            int max_batch = kKvDefaultMaxBatch);

class Model {
 public:
  // Maps the file and binds every tensor; errors name the file and what is wrong.
  static Result<std::unique_ptr<Model>> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const gguf::File& file() const { return file_; }

  // The shape of this model's cache of n_ctx tokens (cache_shape_of with the layout set here).
  KvCacheShape cache_shape(int n_ctx, int max_batch = kMaxBatch) const;
  // Centring of the caches made from now on (kv/kv_cache.h); default none.
  void set_kv_layout(const KvCacheLayout& layout) { kv_layout_ = layout; }
  // A cache shaped for this model; per_layer has n_layer entries.
  Result<KvCache> make_cache(int n_ctx, const std::vector<KvTypes>& per_layer, int max_batch = kMaxBatch) const;

  // Evaluates tokens at positions pos .. pos + n - 1 (the cache must hold 0 .. pos - 1) and appends
  // their keys and values to the cache. logits: [n, n_vocab] when all_logits, else [n_vocab] for the
  // last token. Large batches are processed in slices of the cache's max_batch tokens.
  Status forward(std::span<const int32_t> tokens, int pos, KvCache& cache, float* logits, bool all_logits);

  // Evaluates several sequences in one pass: the matmuls run over all their tokens together, attention and
  // the cache are per sequence. At most kMaxBatch tokens in all; each cache must be a distinct one of this
  // model, and each step's tokens fit its cache's max_batch.
  Status forward_batched(std::span<const SequenceStep> steps);

  static constexpr int kMaxBatch = kKvDefaultMaxBatch;

 private:
  KvCacheLayout kv_layout_;
  // Rows [row0, row0 + n) of a batch belong to one sequence at positions pos ...
  struct Segment {
    int row0 = 0, n = 0, pos = 0;
    KvCache* cache = nullptr;
  };

  Model(gguf::File file, ModelConfig config, ModelWeights weights);
  Status check_step(std::span<const int32_t> tokens, int pos, const KvCache& cache) const;
  // tokens: [n_rows]; logits rows [n_out, n_vocab] for batch rows out_rows (sorted).
  void forward_rows(const int32_t* tokens, int n_rows, std::span<const Segment> segments, std::span<const int> out_rows,
                    float* logits);
  void attention_block(int layer, int n_rows, std::span<const Segment> segments);
  void ffn_block(int layer, int n);
  void ensure_scratch(int n);

  gguf::File file_;
  ModelConfig config_;
  ModelWeights weights_;

  // Scratch activations, sized for the largest batch seen so far.
  int scratch_tokens_ = 0;
  std::vector<float> x_;             // [n, n_embd] residual stream
  std::vector<float> xn_;            // [n, n_embd] normalised input of a block, then its output
  std::vector<float> q_;             // [n, q_dim]
  std::vector<float> k_;             // [n, kv_dim]
  std::vector<float> v_;             // [n, kv_dim]
  std::vector<float> attn_;          // [n, q_dim] attention output
  std::vector<float> gate_;          // [n, n_ff]
  std::vector<float> up_;            // [n, n_ff]
  std::vector<float> out_;           // [n_out, n_embd] rows gathered for the output matmul
  std::vector<float> batch_logits_;  // [n_out, n_vocab] forward_batched's logits before they go to each step
};

}  // namespace kvq
