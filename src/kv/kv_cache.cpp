#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>

#include "quant/quant.h"

namespace kvq {
namespace {

size_t row_bytes_of(GgmlType type, int row_values) {
  return row_bytes(type, KvCache::padded_row_values(type, row_values));
}

// Quantizes n_rows rows of row_values f32 into dst rows of `type`, zero-padding each row to its block size.
void store_rows(GgmlType type, const float* src, int n_rows, int row_values, uint8_t* dst,
                std::vector<float>& staging) {
  const int padded = KvCache::padded_row_values(type, row_values);
  const size_t dst_row = row_bytes(type, padded);
  if (padded == row_values) {
    // Rows are contiguous on both sides: one call converts them all.
    quantize_row_kv(type, src, dst, int64_t(n_rows) * row_values);
    return;
  }
  staging.assign(size_t(padded), 0.0f);
  for (int t = 0; t < n_rows; ++t) {
    std::memcpy(staging.data(), src + size_t(t) * size_t(row_values), size_t(row_values) * sizeof(float));
    quantize_row_kv(type, staging.data(), dst + size_t(t) * dst_row, padded);
  }
}

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

uint64_t KvCache::bytes_per_token(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  const int row_values = shape.n_head_kv * shape.head_dim;
  uint64_t bytes = 0;
  for (const KvTypes& t : per_layer) bytes += row_bytes_of(t.k, row_values) + row_bytes_of(t.v, row_values);
  return bytes;
}

uint64_t KvCache::side_bytes(const KvCacheShape& shape, int layer, GgmlType type) {
  return uint64_t(shape.rows(layer)) * row_bytes_of(type, shape.n_head_kv * shape.head_dim);
}

uint64_t KvCache::key_bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  uint64_t bytes = 0;
  for (size_t l = 0; l < per_layer.size(); ++l) bytes += side_bytes(shape, int(l), per_layer[l].k);
  return bytes;
}

uint64_t KvCache::value_bytes(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  std::vector<KvTypes> values_as_keys;  // [n_layer] each layer's value type in the key's place
  for (const KvTypes& t : per_layer) values_as_keys.push_back({t.v, t.v});
  return key_bytes(shape, values_as_keys);
}

uint64_t KvCache::bytes_attended(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer, int64_t n_keys) {
  const int row_values = shape.n_head_kv * shape.head_dim;
  uint64_t bytes = 0;
  for (size_t l = 0; l < per_layer.size(); ++l) {
    const int w = shape.window.empty() ? 0 : shape.window[l];
    const int64_t keys = w > 0 ? std::min<int64_t>(n_keys, w) : n_keys;
    bytes += uint64_t(keys) * (row_bytes_of(per_layer[l].k, row_values) + row_bytes_of(per_layer[l].v, row_values));
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
    for (GgmlType type : {per_layer[l].k, per_layer[l].v}) {
      if (!is_kv_type(type)) {
        const TypeTraits* traits = find_type_traits(uint32_t(type));
        return make_error("layer {}: type {} cannot be stored in the KV cache", l,
                          traits ? traits->name : std::string_view("(unknown)"));
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
  for (size_t l = 0; l < cache.types_.size(); ++l) {
    const KvTypes& t = cache.types_[l];
    const size_t k_size = size_t(shape.rows(int(l))) * row_bytes_of(t.k, row_values);
    const size_t v_size = size_t(shape.rows(int(l))) * row_bytes_of(t.v, row_values);
    cache.k_.push_back(hwy::AllocateAligned<uint8_t>(k_size));
    cache.v_.push_back(hwy::AllocateAligned<uint8_t>(v_size));
    if (!cache.k_.back() || !cache.v_.back()) {
      return make_error("cannot allocate {} bytes for the KV cache", cache.k_bytes() + cache.v_bytes());
    }
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
  // A ring wraps at most once per store: rows pos % n_rows .. end, then from row 0.
  const int first_row = pos % view.n_rows;
  const int head = std::min(n_tokens, view.n_rows - first_row);
  const size_t row_floats = size_t(row_values);
  for (const auto& [start, count, row] : {std::tuple{0, head, first_row}, std::tuple{head, n_tokens - head, 0}}) {
    if (count == 0) continue;
    store_rows(view.k_type, k + size_t(start) * row_floats, count, row_values,
               k_[size_t(layer)].get() + size_t(row) * view.k_row_bytes, pad_row_);
    store_rows(view.v_type, v + size_t(start) * row_floats, count, row_values,
               v_[size_t(layer)].get() + size_t(row) * view.v_row_bytes, pad_row_);
  }
}

bool KvCache::copy_from(const KvCache& other) {
  if (other.types_ != types_ || other.shape_.n_layer != shape_.n_layer || other.shape_.n_ctx != shape_.n_ctx ||
      other.shape_.window != shape_.window || other.shape_.max_batch != shape_.max_batch ||
      other.shape_.n_head_kv != shape_.n_head_kv || other.shape_.head_dim != shape_.head_dim) {
    return false;
  }
  for (int l = 0; l < shape_.n_layer; ++l) {
    const KvLayerView view = layer(l);
    std::memcpy(k_[size_t(l)].get(), other.k_[size_t(l)].get(), size_t(view.n_rows) * view.k_row_bytes);
    std::memcpy(v_[size_t(l)].get(), other.v_[size_t(l)].get(), size_t(view.n_rows) * view.v_row_bytes);
  }
  return true;
}

uint64_t KvCache::bytes_holding(int n_positions) const {
  uint64_t bytes = 0;
  for (int l = 0; l < shape_.n_layer; ++l) {
    const KvLayerView view = layer(l);
    bytes += uint64_t(std::min(n_positions, view.n_rows)) * (view.k_row_bytes + view.v_row_bytes);
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
  const int row_values = shape_.n_head_kv * shape_.head_dim;
  view.k_row_bytes = row_bytes_of(view.k_type, row_values);
  view.v_row_bytes = row_bytes_of(view.v_type, row_values);
  view.n_ctx = shape_.n_ctx;
  view.n_rows = shape_.rows(layer);
  view.window = shape_.window.empty() ? 0 : shape_.window[size_t(layer)];
  view.n_head_kv = shape_.n_head_kv;
  view.head_dim = shape_.head_dim;
  return view;
}

}  // namespace kvq
