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

class Model {
 public:
  // Maps the file and binds every tensor; errors name the file and what is wrong.
  static Result<std::unique_ptr<Model>> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const gguf::File& file() const { return file_; }

  // The shape of this model's cache of n_ctx tokens: its sliding-window layers keep rings sized for
  // max_batch tokens per forward slice.
  KvCacheShape cache_shape(int n_ctx, int max_batch = kMaxBatch) const;
  // A cache shaped for this model; per_layer has n_layer entries.
  Result<KvCache> make_cache(int n_ctx, const std::vector<KvTypes>& per_layer, int max_batch = kMaxBatch) const;

  // Evaluates tokens at positions pos .. pos + n - 1 (the cache must hold 0 .. pos - 1) and appends
  // their keys and values to the cache. logits: [n, n_vocab] when all_logits, else [n_vocab] for the
  // last token. Large batches are processed in slices of the cache's max_batch tokens.
  Status forward(std::span<const int32_t> tokens, int pos, KvCache& cache, float* logits, bool all_logits);

  static constexpr int kMaxBatch = kKvDefaultMaxBatch;

 private:
  Model(gguf::File file, ModelConfig config, ModelWeights weights);
  void forward_batch(const int32_t* tokens, int n, int pos, KvCache& cache, float* logits, bool all_logits);
  void attention_block(int layer, int n, int pos, KvCache& cache);
  void ffn_block(int layer, int n);
  void ensure_scratch(int n);

  gguf::File file_;
  ModelConfig config_;
  ModelWeights weights_;

  // Scratch activations, sized for the largest batch seen so far.
  int scratch_tokens_ = 0;
  std::vector<float> x_;     // [n, n_embd] residual stream
  std::vector<float> xn_;    // [n, n_embd] normalised input of a block, then its output
  std::vector<float> q_;     // [n, q_dim]
  std::vector<float> k_;     // [n, kv_dim]
  std::vector<float> v_;     // [n, kv_dim]
  std::vector<float> attn_;  // [n, q_dim] attention output
  std::vector<float> gate_;  // [n, n_ff]
  std::vector<float> up_;    // [n, n_ff]
};

}  // namespace kvq
