// The KV cache: per layer, keys and values of every position, each in its own element type.
//
// Layout (docs/kv-cache.md): token-major. Layer l keeps K as [n_ctx, k_row_bytes] and V as
// [n_ctx, v_row_bytes]; the row of a token is its n_head_kv * head_dim values (all KV heads concatenated)
// converted as one row of the layer's type: 32-value blocks for the quantized types, padded with zeros to a
// multiple of 32 only when n_head_kv * head_dim is not one. Blocks may therefore span heads when
// head_dim < 32; attention decodes whichever blocks cover a head.
//
// The "_h" types (quant/blocks.h) store a row as one record per head instead: a scale per head, never
// shared by two heads (kv_row_bytes).
//
// Centring (opt-in, `--kvq-centre on`): a quantized side (K or V) of a layer stores x - mean, where mean
// [n_head_kv * head_dim] f16 is the average row of the store that wrote position 0 (the prompt, usually),
// fixed until position 0 is stored again. It is exact: a query's scores all shift by q·mean, which softmax
// ignores, and the attention output of centred values is the true one minus mean (attention adds it back).
// Soft-capped scores (Gemma 2) are not shift-invariant: such models never centre their keys. What it buys
// depends on the prompt: with a long first batch it lowers what 4-bit caches cost (docs/results.md), with a
// mean of only the first few tokens it does worse than none, and results then depend on how the prompt was
// split. Hence off by default.
// The means are counted in bytes() (2 bytes per value per centred side and layer).
//
// Sinks and a recent window (opt-in per layer, KvTypes::kept: `--kvq-sinks N`, `--kvq-window R`, or "+sN+wR" in a
// layer spec): a quantized side also keeps
// positions 0 .. N - 1 and the last R + kKvRecentSlice - 1 positions (a ring) at kept.type (f16 by default),
// written by the same store from the same (rotated, centred) rows. A query at position p reads a key j from
// the sinks when j < N, from the ring when p - R < j <= p, else from the quantized rows: every query sees its
// own last R positions at kept.type, in prefill as in decode, and a position "leaves the window" by being read
// from the quantized row written when it was stored (from f32, never from the f16 copy). An attention call
// then takes at most kKvRecentSlice queries (the model slices). Attention runs the three ranges as parts of
// one softmax (kernels/attention.h). The kept rows are counted in bytes(); the quantized rows of kept
// positions are kept too (2 bytes per value and position at most, for N + R positions).
//
// Sliding-window layers (Gemma 2/3) keep a ring: position p lives in row p % rows, where rows covers the
// window plus the tokens stored before one attention call (a batch slice may overwrite only positions
// no query of that slice can see), rounded up to kKvRingAlign so that no attention chunk wraps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "kv/kv_types.h"
#include "util/result.h"

namespace kvq {

inline constexpr int kKvRingAlign = 64;         // ring rows are a multiple of this (attention's key chunk)
inline constexpr int kKvDefaultMaxBatch = 512;  // tokens stored per step unless the shape says otherwise
inline constexpr int kKvReadSlack = 64;         // bytes past the last row a decoder may read (never used)
inline constexpr int kKvRecentSlice = 4;        // most queries per attention call when a recent window is kept

enum class KvSide { kKey = 0, kValue = 1 };

// What a cache stores beside its per-layer types (--kvq-centre; above).
struct KvCacheLayout {
  bool centre = false;
};

// Whether a side of this type keeps the layer's sinks and recent window (quantized types only).
bool keeps_side(const KvKept& kept, GgmlType type);
int kept_sink_rows(const KvKept& kept, int n_ctx);    // rows of a side's sink store: min(sinks, n_ctx)
int kept_recent_rows(const KvKept& kept, int n_ctx);  // rows of its recent ring: recent + kKvRecentSlice - 1, at most
                                                      // n_ctx; 0 = none

struct KvCacheShape {
  int n_layer = 0;
  int n_ctx = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  std::vector<int> window = {};        // [n_layer] sliding window of each layer (0 = global), or empty: all global
  int max_batch = kKvDefaultMaxBatch;  // most tokens stored between two attention calls of a layer
  bool centre_keys = false;            // quantized keys store k - mean (below); never where scores are soft-capped
  bool centre_values = false;          // quantized values store v - mean

  // Returns the token rows layer l keeps: n_ctx, or the ring of a windowed layer when that is smaller.
  int rows(int layer) const;
};

// Read access to one layer for the attention kernels.
struct KvLayerView {
  GgmlType k_type = GgmlType::F16;
  GgmlType v_type = GgmlType::F16;
  const uint8_t* k = nullptr;  // [n_rows, k_row_bytes]: token rows of k_type
  const uint8_t* v = nullptr;  // [v_rows, v_row_bytes]: token rows of v_type
  size_t k_row_bytes = 0;
  size_t v_row_bytes = 0;
  int n_ctx = 0;
  int n_rows = 0;  // K rows held: n_ctx, or fewer for a ring (position p in row p % n_rows)
  int v_rows = 0;  // V rows held, the same way (differs from n_rows only in a kept view whose V is not kept)
  int window = 0;  // sliding window (0 = global)
  int n_head_kv = 0;
  int head_dim = 0;
  const uint16_t* k_mean = nullptr;  // [n_head_kv * head_dim] f16 bits subtracted from the stored keys, or null
  const uint16_t* v_mean = nullptr;  // [n_head_kv * head_dim] f16 bits subtracted from the stored values, or null
};

// The kept ranges of one layer (Sinks and recent window, above), as views of the same form as the layer's:
// a side that keeps nothing (a float type) reads its own rows there.
struct KvKeptViews {
  int sinks = 0;   // positions 0 .. sinks - 1 read from `sink`
  int recent = 0;  // a query at p reads p - recent < j <= p from `window`; 0 = no window
  int ring = 0;    // rows of the kept side's recent ring (position p in row p % ring)
  KvLayerView sink, window;
  bool any() const { return sinks > 0 || recent > 0; }
};

class KvCache {
 public:
  // Allocates exactly what the types need (pages are touched on first store, not here).
  // Errors: a non-positive dimension, per_layer.size() != n_layer, a type the cache does not store.
  static Result<KvCache> create(const KvCacheShape& shape, std::vector<KvTypes> per_layer);
  // Returns the K + V bytes one token row takes in all layers (what a token costs without windows).
  static uint64_t bytes_per_token(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer);
  // Returns the exact K + V bytes create() allocates for this shape (rings and centring means included).
  static uint64_t bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer);
  // Returns the bytes one side (K or V) of one layer takes in `type`: its rows times the row of that type, plus
  // its centring mean (2 bytes per value of a row) when centred and its kept rows. key_bytes and value_bytes
  // are sums of it, so a per-layer search can add these up exactly.
  static uint64_t side_bytes(const KvCacheShape& shape, int layer, GgmlType type, KvSide side, const KvKept& kept = {});
  // Whether that side stores rows minus a mean (Centring, above).
  static bool centred(const KvCacheShape& shape, KvSide side, GgmlType type);
  // Returns the K (or V) bytes only.
  static uint64_t key_bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer);
  static uint64_t value_bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer);
  // Returns the K + V bytes attention reads for one query at position n_keys - 1 (windows included).
  static uint64_t bytes_attended(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer, int64_t n_keys);
  // Returns the values stored per token row: n_head_kv * head_dim rounded up to the type's block size.
  static int padded_row_values(GgmlType type, int row_values);

  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

  // k, v: [n_tokens, n_head_kv * head_dim] f32 rows for positions pos .. pos + n_tokens - 1 (k already
  // rotated by RoPE, and by rotation() where the layer's types say so: the model applies it, with the query). Quantizes
  // on append; positions may be rewritten (e.g. after a rewind). A ring layer takes at most shape().max_batch tokens
  // per store. One store at a time: padded rows go through a staging buffer of the cache.
  void store(int layer, int pos, int n_tokens, const float* k, const float* v);

  // Copies every row of `other`, a cache of the same shape and types (benchmarks start many sequences
  // at one depth without filling each). Returns false, copying nothing, when they differ.
  bool copy_from(const KvCache& other);

  uint64_t bytes() const { return bytes(shape_, types_); }  // allocated: rows and centring means
  uint64_t k_bytes() const;                                 // allocated key rows, all layers
  // Returns the bytes of the rows that positions 0 .. n_positions - 1 occupy (a ring reuses its rows).
  uint64_t bytes_holding(int n_positions) const;
  uint64_t v_bytes() const;
  const KvCacheShape& shape() const { return shape_; }
  const std::vector<KvTypes>& types() const { return types_; }
  KvLayerView layer(int layer) const;
  // The layer's sinks and recent window; any() is false when it keeps none.
  KvKeptViews kept(int layer) const;
  // Whether, after positions 0 .. written - 1 were stored, every ring (sliding-window layers, the recent
  // windows) still holds what queries from position n on read: rewinding to n is then exact.
  bool can_rewind(int written, int n) const;
  // The transform of layers whose types rotate (kv/rotation.h); nullptr when no layer does.
  const HeadRotation* rotation() const { return rotation_ ? &*rotation_ : nullptr; }

 private:
  KvCache() = default;

  KvCacheShape shape_;
  std::vector<KvTypes> types_;
  std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>> k_;  // per layer: [n_ctx, k row bytes]
  std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>> v_;  // per layer: [n_ctx, v row bytes]
  std::vector<std::vector<uint16_t>> k_mean_, v_mean_;   // per layer: [row values] f16, empty when uncentred
  // per layer: [sink rows, row bytes of kept.type] and [recent rows, ...]; null where the side keeps none
  std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>> k_sink_, v_sink_, k_recent_, v_recent_;
  std::vector<float> pad_row_;                // [padded row values] f32 staging for padded rows
  std::vector<float> centred_k_, centred_v_;  // [n_tokens, row values] f32 staging of a store
  std::optional<HeadRotation> rotation_;
};

}  // namespace kvq
