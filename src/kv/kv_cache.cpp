#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>

#include "quant/quant.h"
#include "util/half.h"

namespace kvq {
namespace {

size_t row_bytes_of(GgmlType type, const KvCacheShape& shape) {
  return kv_row_bytes(type, shape.n_head_kv, shape.head_dim);
}

bool quantized(GgmlType type) { return type_traits(type).quantized; }

}  // namespace

int KvCache::padded_row_values(GgmlType type, int row_values) {
  const int block = type_traits(type).block_size;
  return (row_values + block - 1) / block * block;
}

int KvCacheShape::rows(int layer) const {
  const int w = window.empty() ? 0 : window[size_t(layer)];
  if (w <= 0) return n_ctx;
  const int64_t ring = (int64_t(w) + max_batch - 1 + kKvRingAlign - 1) / kKvRingAlign * kKvRingAlign;
  return int(std::min<int64_t>(n_ctx, ring));
}

bool keeps_side(const KvKept& kept, GgmlType type) { return quantized(type) && kept.any(); }

int kept_sink_rows(const KvKept& kept, int n_ctx) { return std::min(kept.sinks, n_ctx); }

int kept_recent_rows(const KvKept& kept, int n_ctx) {
  return kept.recent > 0 ? int(std::min<int64_t>(n_ctx, int64_t(kept.recent) + kKvRecentSlice - 1)) : 0;
}

bool KvCache::can_rewind(int written, int n) const {
  // A ring of `rows` holding a window w keeps the positions before n that n reads while fewer than rows - w
  // positions were written after them.
  const auto holds = [&](int rows, int w) { return rows >= shape_.n_ctx || written - n <= rows - w; };
  for (int l = 0; l < shape_.n_layer; ++l) {
    const int w = shape_.window.empty() ? 0 : shape_.window[size_t(l)];
    if (w > 0 && !holds(shape_.rows(l), w)) return false;
    const KvKeptViews kept = this->kept(l);
    if (kept.recent > 0 && !holds(kept.ring, kept.recent)) return false;
  }
  return true;
}

uint64_t KvCache::bytes_per_token(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  uint64_t bytes = 0;
  for (const KvTypes& t : per_layer) bytes += row_bytes_of(t.k, shape) + row_bytes_of(t.v, shape);
  return bytes;
}

bool KvCache::centred(const KvCacheShape& shape, KvSide side, GgmlType type) {
  return quantized(type) && (side == KvSide::kKey ? shape.centre_keys : shape.centre_values);
}

uint64_t KvCache::side_bytes(const KvCacheShape& shape, int layer, GgmlType type, KvSide side, const KvKept& kept) {
  const uint64_t mean = centred(shape, side, type) ? uint64_t(shape.n_head_kv) * shape.head_dim * sizeof(fp16_bits) : 0;
  const uint64_t kept_rows =
      keeps_side(kept, type) ? kept_sink_rows(kept, shape.n_ctx) + kept_recent_rows(kept, shape.n_ctx) : 0;
  return uint64_t(shape.rows(layer)) * row_bytes_of(type, shape) + mean + kept_rows * row_bytes_of(kept.type, shape);
}

uint64_t KvCache::key_bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  uint64_t bytes = 0;
  for (size_t l = 0; l < per_layer.size(); ++l)
    bytes += side_bytes(shape, int(l), per_layer[l].k, KvSide::kKey, per_layer[l].kept);
  return bytes;
}

uint64_t KvCache::value_bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  uint64_t bytes = 0;
  for (size_t l = 0; l < per_layer.size(); ++l)
    bytes += side_bytes(shape, int(l), per_layer[l].v, KvSide::kValue, per_layer[l].kept);
  return bytes;
}

uint64_t KvCache::bytes_attended(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer, int64_t n_keys) {
  uint64_t bytes = 0;
  for (size_t l = 0; l < per_layer.size(); ++l) {
    const int w = shape.window.empty() ? 0 : shape.window[l];
    const int64_t keys = w > 0 ? std::min<int64_t>(n_keys, w) : n_keys;
    // Kept keys (sinks, then the recent window) read at kept.type on a side that keeps them.
    const KvKept& keep = per_layer[l].kept;
    const int64_t sinks = w > 0 ? 0 : std::min<int64_t>(keys, keep.sinks);
    const int64_t kept = sinks + std::min<int64_t>(keys - sinks, keep.recent);
    for (GgmlType type : {per_layer[l].k, per_layer[l].v}) {
      const uint64_t kept_row = row_bytes_of(keeps_side(keep, type) ? keep.type : type, shape);
      bytes += uint64_t(keys - kept) * row_bytes_of(type, shape) + uint64_t(kept) * kept_row;
    }
  }
  return bytes;
}

uint64_t KvCache::bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  return key_bytes(shape, per_layer) + value_bytes(shape, per_layer);
}

Result<KvCache> KvCache::create(const KvCacheShape& shape, std::vector<KvTypes> per_layer) {
  if (shape.n_layer <= 0 || shape.n_ctx <= 0 || shape.n_head_kv <= 0 || shape.head_dim <= 0) {
    return make_error("invalid KV cache shape: n_layer {}, n_ctx {}, n_head_kv {}, head_dim {} (all must be > 0)",
                      shape.n_layer, shape.n_ctx, shape.n_head_kv, shape.head_dim);
  }
  if (per_layer.size() != size_t(shape.n_layer)) {
    return make_error("KV cache has {} layers but {} per-layer type pairs were given", shape.n_layer, per_layer.size());
  }
  if (!shape.window.empty() && shape.window.size() != size_t(shape.n_layer)) {
    return make_error("KV cache has {} layers but {} sliding windows were given", shape.n_layer, shape.window.size());
  }
  if (shape.max_batch <= 0) return make_error("KV cache max_batch {} must be positive", shape.max_batch);
  for (int w : shape.window) {
    if (w < 0) return make_error("sliding window {} must not be negative", w);
  }
  for (size_t l = 0; l < per_layer.size(); ++l) {
    if (per_layer[l].rotation == KvRotation::kAuto) {
      return make_error("layer {}: rotation 'auto' must be resolved before the cache is made", l);
    }
    const KvKept& kept = per_layer[l].kept;
    if (kept.sinks < 0 || kept.recent < 0) {
      return make_error("layer {}: sinks {} and recent window {} must not be negative", l, kept.sinks, kept.recent);
    }
    for (GgmlType type : {per_layer[l].k, per_layer[l].v, kept.type}) {
      if (!is_kv_type(type)) {
        const TypeTraits* traits = find_type_traits(uint32_t(type));
        return make_error("layer {}: type {} cannot be stored in the KV cache", l,
                          traits ? traits->name : std::string_view("(unknown)"));
      }
      if (is_head_scaled(type) && shape.head_dim % kHeadGroup != 0) {
        return make_error("layer {}: {} needs a head_dim that is a multiple of {}; this model's is {}", l,
                          type_name(type), kHeadGroup, shape.head_dim);
      }
    }
  }
  KvCache cache;
  cache.shape_ = shape;
  cache.types_ = std::move(per_layer);
  for (const KvTypes& t : cache.types_) {
    if (t.rotation != KvRotation::kNone && !cache.rotation_) cache.rotation_.emplace(shape.head_dim);
  }
  const int row_values = shape.n_head_kv * shape.head_dim;
  cache.k_mean_.resize(cache.types_.size());
  cache.v_mean_.resize(cache.types_.size());
  for (size_t l = 0; l < cache.types_.size(); ++l) {
    const KvTypes& t = cache.types_[l];
    const size_t k_size = size_t(shape.rows(int(l))) * row_bytes_of(t.k, shape);
    const size_t v_size = size_t(shape.rows(int(l))) * row_bytes_of(t.v, shape);
    if (centred(shape, KvSide::kKey, t.k)) cache.k_mean_[l].assign(size_t(row_values), 0);
    if (centred(shape, KvSide::kValue, t.v)) cache.v_mean_[l].assign(size_t(row_values), 0);
    cache.k_.push_back(hwy::AllocateAligned<uint8_t>(k_size + kKvReadSlack));
    cache.v_.push_back(hwy::AllocateAligned<uint8_t>(v_size + kKvReadSlack));
    bool allocated = cache.k_.back() && cache.v_.back();
    // Kept stores, zeroed: small, and a part of a chunk they never wrote stays finite.
    const auto kept_store = [&](GgmlType type, int rows, std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>>& stores) {
      stores.emplace_back();
      if (!keeps_side(t.kept, type) || rows == 0) return;
      const size_t size = size_t(rows) * row_bytes_of(t.kept.type, shape) + kKvReadSlack;
      stores.back() = hwy::AllocateAligned<uint8_t>(size);
      if (stores.back()) std::memset(stores.back().get(), 0, size);
      allocated = allocated && stores.back();
    };
    const int sink_rows = kept_sink_rows(t.kept, shape.n_ctx), recent_rows = kept_recent_rows(t.kept, shape.n_ctx);
    kept_store(t.k, sink_rows, cache.k_sink_);
    kept_store(t.v, sink_rows, cache.v_sink_);
    kept_store(t.k, recent_rows, cache.k_recent_);
    kept_store(t.v, recent_rows, cache.v_recent_);
    if (!allocated) return make_error("cannot allocate {} bytes for the KV cache", cache.bytes());
  }
  return cache;
}

void KvCache::store(int layer, int pos, int n_tokens, const float* k, const float* v) {
  KVQ_CHECK(layer >= 0 && layer < shape_.n_layer);
  KVQ_CHECK(pos >= 0 && n_tokens >= 0 && pos + n_tokens <= shape_.n_ctx);
  if (n_tokens == 0) return;
  const KvLayerView view = this->layer(layer);
  KVQ_CHECK(view.n_rows == view.n_ctx || n_tokens <= shape_.max_batch);
  const int row_values = shape_.n_head_kv * shape_.head_dim;
  const size_t row_floats = size_t(row_values);
  // Quantized sides store x - mean (see kv_cache.h): the mean is set by the store of position 0.
  const auto centred = [&](const float* x, std::vector<uint16_t>& mean, std::vector<float>& out) {
    if (mean.empty()) return x;
    if (pos == 0) {
      std::vector<double> sum(row_floats, 0.0);  // [row_values] f64
      for (int t = 0; t < n_tokens; ++t) {
        for (size_t i = 0; i < row_floats; ++i) sum[i] += x[size_t(t) * row_floats + i];
      }
      for (size_t i = 0; i < row_floats; ++i) mean[i] = f32_to_fp16(float(sum[i] / n_tokens));
    }
    std::vector<float> mean_f32(row_floats);  // [row_values] the stored mean, exactly
    for (size_t i = 0; i < row_floats; ++i) mean_f32[i] = fp16_to_f32(mean[i]);
    out.resize(size_t(n_tokens) * row_floats);  // [n_tokens, row_values] f32
    for (int t = 0; t < n_tokens; ++t) {
      for (size_t i = 0; i < row_floats; ++i) {
        out[size_t(t) * row_floats + i] = x[size_t(t) * row_floats + i] - mean_f32[i];
      }
    }
    return static_cast<const float*>(out.data());
  };
  const float* k_store = centred(k, k_mean_[size_t(layer)], centred_k_);
  const float* v_store = centred(v, v_mean_[size_t(layer)], centred_v_);
  // A ring wraps at most once per store: rows pos % n_rows .. end, then from row 0.
  const auto store_rows = [&](GgmlType type, const float* rows, int first_pos, int count, uint8_t* dst, int n_rows) {
    const size_t row_bytes = row_bytes_of(type, shape_);
    const int first_row = first_pos % n_rows;
    const int head = std::min(count, n_rows - first_row);
    for (const auto& [start, n, row] : {std::tuple{0, head, first_row}, std::tuple{head, count - head, 0}}) {
      if (n == 0) continue;
      quantize_kv_rows(type, rows + size_t(start) * row_floats, dst + size_t(row) * row_bytes, n, shape_.n_head_kv,
                       shape_.head_dim, pad_row_);
    }
  };
  store_rows(view.k_type, k_store, pos, n_tokens, k_[size_t(layer)].get(), view.n_rows);
  store_rows(view.v_type, v_store, pos, n_tokens, v_[size_t(layer)].get(), view.n_rows);
  // The kept copies of the same rows: positions below the sink rows, and the last ring rows of this store.
  const KvKept& kept = types_[size_t(layer)].kept;
  const int sink_rows = kept_sink_rows(kept, shape_.n_ctx);
  const int sink_count = std::clamp(sink_rows - pos, 0, n_tokens);
  const int ring = kept_recent_rows(kept, shape_.n_ctx);
  const int recent_skip = std::max(0, n_tokens - ring);
  const auto keep = [&](const float* x, uint8_t* sink, uint8_t* recent) {
    if (sink && sink_count > 0) store_rows(kept.type, x, pos, sink_count, sink, sink_rows);
    if (recent) {
      store_rows(kept.type, x + size_t(recent_skip) * row_floats, pos + recent_skip, n_tokens - recent_skip, recent,
                 ring);
    }
  };
  keep(k_store, k_sink_[size_t(layer)].get(), k_recent_[size_t(layer)].get());
  keep(v_store, v_sink_[size_t(layer)].get(), v_recent_[size_t(layer)].get());
}

bool KvCache::copy_from(const KvCache& other) {
  if (other.types_ != types_ || other.shape_.n_layer != shape_.n_layer || other.shape_.n_ctx != shape_.n_ctx ||
      other.shape_.window != shape_.window || other.shape_.max_batch != shape_.max_batch ||
      other.shape_.n_head_kv != shape_.n_head_kv || other.shape_.head_dim != shape_.head_dim ||
      other.shape_.centre_keys != shape_.centre_keys || other.shape_.centre_values != shape_.centre_values) {
    return false;
  }
  for (int l = 0; l < shape_.n_layer; ++l) {
    const KvLayerView view = layer(l);
    std::memcpy(k_[size_t(l)].get(), other.k_[size_t(l)].get(), size_t(view.n_rows) * view.k_row_bytes);
    std::memcpy(v_[size_t(l)].get(), other.v_[size_t(l)].get(), size_t(view.n_rows) * view.v_row_bytes);
    const KvKept& kept = types_[size_t(l)].kept;
    const size_t keep_row = row_bytes_of(kept.type, shape_);
    const auto copy_kept = [&](const auto& mine, const auto& theirs, int rows) {
      if (mine[size_t(l)]) std::memcpy(mine[size_t(l)].get(), theirs[size_t(l)].get(), size_t(rows) * keep_row);
    };
    copy_kept(k_sink_, other.k_sink_, kept_sink_rows(kept, shape_.n_ctx));
    copy_kept(v_sink_, other.v_sink_, kept_sink_rows(kept, shape_.n_ctx));
    copy_kept(k_recent_, other.k_recent_, kept_recent_rows(kept, shape_.n_ctx));
    copy_kept(v_recent_, other.v_recent_, kept_recent_rows(kept, shape_.n_ctx));
  }
  k_mean_ = other.k_mean_;
  v_mean_ = other.v_mean_;
  return true;
}

uint64_t KvCache::bytes_holding(int n_positions) const {
  uint64_t bytes = 0;
  for (int l = 0; l < shape_.n_layer; ++l) {
    const KvLayerView view = layer(l);
    bytes += uint64_t(std::min(n_positions, view.n_rows)) * (view.k_row_bytes + view.v_row_bytes);
    const KvKept& kept = types_[size_t(l)].kept;
    const int kept_rows = std::min(n_positions, kept_sink_rows(kept, shape_.n_ctx)) +
                          std::min(n_positions, kept_recent_rows(kept, shape_.n_ctx));
    const int kept_sides = int(keeps_side(kept, view.k_type)) + int(keeps_side(kept, view.v_type));
    bytes += uint64_t(kept_rows) * kept_sides * row_bytes_of(kept.type, shape_);
  }
  return bytes;
}

uint64_t KvCache::k_bytes() const { return key_bytes(shape_, types_); }

uint64_t KvCache::v_bytes() const { return value_bytes(shape_, types_); }

KvLayerView KvCache::layer(int layer) const {
  KVQ_CHECK(layer >= 0 && layer < shape_.n_layer);
  KvLayerView view;
  view.k_type = types_[size_t(layer)].k;
  view.v_type = types_[size_t(layer)].v;
  view.k = k_[size_t(layer)].get();
  view.v = v_[size_t(layer)].get();
  view.k_row_bytes = row_bytes_of(view.k_type, shape_);
  view.v_row_bytes = row_bytes_of(view.v_type, shape_);
  view.k_mean = k_mean_[size_t(layer)].empty() ? nullptr : k_mean_[size_t(layer)].data();
  view.v_mean = v_mean_[size_t(layer)].empty() ? nullptr : v_mean_[size_t(layer)].data();
  view.n_ctx = shape_.n_ctx;
  view.n_rows = shape_.rows(layer);
  view.v_rows = view.n_rows;
  view.window = shape_.window.empty() ? 0 : shape_.window[size_t(layer)];
  view.n_head_kv = shape_.n_head_kv;
  view.head_dim = shape_.head_dim;
  return view;
}

KvKeptViews KvCache::kept(int layer) const {
  KvKeptViews kept;
  const KvLayerView own = this->layer(layer);
  const KvKept& keep = types_[size_t(layer)].kept;
  if (!keeps_side(keep, own.k_type) && !keeps_side(keep, own.v_type)) return kept;
  kept.sinks = kept_sink_rows(keep, shape_.n_ctx);
  kept.recent = keep.recent;
  kept.ring = kept_recent_rows(keep, shape_.n_ctx);
  const size_t keep_row = row_bytes_of(keep.type, shape_);
  const auto view_of = [&](const auto& k_store, const auto& v_store, int rows) {
    KvLayerView view = own;
    if (k_store[size_t(layer)]) {
      view.k_type = keep.type, view.k = k_store[size_t(layer)].get(), view.k_row_bytes = keep_row;
      view.n_rows = rows;
    }
    if (v_store[size_t(layer)]) {
      view.v_type = keep.type, view.v = v_store[size_t(layer)].get(), view.v_row_bytes = keep_row;
      view.v_rows = rows;
    }
    return view;
  };
  kept.sink = view_of(k_sink_, v_sink_, kept.sinks);
  kept.window = view_of(k_recent_, v_recent_, kept.ring);
  return kept;
}

}  // namespace kvq
