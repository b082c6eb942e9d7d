// Causal multi-head attention (with grouped-query heads) that reads the KV cache's quantized blocks
// directly: one fused path for every (key type, value type) pair of kKvCacheTypes (docs/kv-cache.md).
#pragma once

#include <string>

#include "kv/kv_cache.h"

namespace kvq {

struct AttentionParams {
  int n_head = 0;  // query heads; a multiple of n_head_kv (query head h reads KV head h / (n_head / n_head_kv))
  int n_head_kv = 0;
  int head_dim = 0;
  float scale = 0.0f;    // usually 1 / sqrt(head_dim)
  float softcap = 0.0f;  // scores become softcap * tanh(score / softcap) (Gemma 2); 0 = none
  int window = 0;        // sliding window: query p sees keys p - window < k <= p; 0 = all keys <= p
};

// q: [n_tokens, n_head * head_dim] f32 (roped); query t sits at position pos0 + t and attends to cached
// positions 0 .. pos0 + t (causal), or the last p.window of them. The cache already holds positions
// 0 .. pos0 + n_tokens - 1 of `layer` (a ring layer: the ones a query of this call can see).
// out: [n_tokens, n_head * head_dim] f32. Multi-threaded inside (OpenMP, omp_get_max_threads()).
// Decode (few queries) splits the keys across threads and merges partial softmax states
// (flash-decoding); prefill tiles queries and keys with an online softmax.
void attention(const AttentionParams& p, const KvCache& cache, int layer, const float* q, int n_tokens, int pos0,
               float* out);

// The kernels attention() runs on this CPU for one decode token of a group of `group` query heads per KV
// head (kvq bench prints it beside its figures).
std::string attention_decode_kernel_name(GgmlType k_type, GgmlType v_type, int group, int head_dim);

// The naive oracle: dequantizes K and V with the scalar reference (dequantize_row_ref) and computes
// softmax(q·k * scale)·v in f64, one query head at a time. Same contract as attention(). Slow; tests only.
void attention_ref(const AttentionParams& p, const KvCache& cache, int layer, const float* q, int n_tokens, int pos0,
                   float* out);

// The same oracle over plain f32 keys and values (no cache, no quantization): the "what the model meant"
// baseline that quantization error is measured against.
// k, v: [n_kv, n_head_kv * head_dim] f32 for positions 0 .. n_kv - 1.
void attention_ref_f32(const AttentionParams& p, const float* k, const float* v, int n_kv, const float* q, int n_tokens,
                       int pos0, float* out);

}  // namespace kvq
