#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>
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

uint64_t KvCache::bytes_per_token(const KvCacheShape& shape, const std::vector<KvTypes>& per_layer) {
  const int row_values = shape.n_head_kv * shape.head_dim;
  uint64_t bytes = 0;
  for (const KvTypes& t : per_layer) bytes += row_bytes_of(t.k, row_values) + row_bytes_of(t.v, row_values);
  return bytes;
}

Result<KvCache> KvCache::create(const KvCacheShape& shape, std::vector<KvTypes> per_layer) {
  if (shape.n_layer <= 0 || shape.n_ctx <= 0 || shape.n_head_kv <= 0 || shape.head_dim <= 0) {
    return make_error("invalid KV cache shape: n_layer {}, n_ctx {}, n_head_kv {}, head_dim {} (all must be > 0)",
                      shape.n_layer, shape.n_ctx, shape.n_head_kv, shape.head_dim);
  }
  if (per_layer.size() != size_t(shape.n_layer)) {
    return make_error("KV cache has {} layers but {} per-layer type pairs were given", shape.n_layer, per_layer.size());
  }
  for (size_t l = 0; l < per_layer.size(); ++l) {
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
  const int row_values = shape.n_head_kv * shape.head_dim;
  for (const KvTypes& t : cache.types_) {
    const size_t k_size = size_t(shape.n_ctx) * row_bytes_of(t.k, row_values);
    const size_t v_size = size_t(shape.n_ctx) * row_bytes_of(t.v, row_values);
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
  const int row_values = shape_.n_head_kv * shape_.head_dim;
  store_rows(view.k_type, k, n_tokens, row_values, k_[size_t(layer)].get() + size_t(pos) * view.k_row_bytes, pad_row_);
  store_rows(view.v_type, v, n_tokens, row_values, v_[size_t(layer)].get() + size_t(pos) * view.v_row_bytes, pad_row_);
}

uint64_t KvCache::k_bytes() const {
  uint64_t bytes = 0;
  for (const KvTypes& t : types_)
    bytes += uint64_t(shape_.n_ctx) * row_bytes_of(t.k, shape_.n_head_kv * shape_.head_dim);
  return bytes;
}

uint64_t KvCache::v_bytes() const {
  uint64_t bytes = 0;
  for (const KvTypes& t : types_)
    bytes += uint64_t(shape_.n_ctx) * row_bytes_of(t.v, shape_.n_head_kv * shape_.head_dim);
  return bytes;
}

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
  view.n_head_kv = shape_.n_head_kv;
  view.head_dim = shape_.head_dim;
  return view;
}

}  // namespace kvq
