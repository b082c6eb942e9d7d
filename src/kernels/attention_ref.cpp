// Scalar f64 attention: the oracle of tests/attention_test.cpp. Deliberately the textbook form
// (scores, max, exp, normalise, weighted sum) with no tiling, so that it shares no logic with the kernel.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "quant/quant.h"
#include "util/half.h"
#include "util/result.h"

namespace kvq {
namespace {

// k, v: [n_kv, row_stride] f32 rows; head h of a row starts at h * head_dim.
void naive_attention(const AttentionParams& p, const float* k, const float* v, int row_stride, int n_kv, const float* q,
                     int n_tokens, int pos0, float* out) {
  KVQ_CHECK(p.n_head > 0 && p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0);
  KVQ_CHECK(pos0 >= 0 && pos0 + n_tokens <= n_kv);
  const int hd = p.head_dim;
  const int group = p.n_head / p.n_head_kv;
  std::vector<double> scores(static_cast<size_t>(n_kv));  // [n_keys] of one (query, head)
  std::vector<double> acc(static_cast<size_t>(hd));       // [head_dim]
  for (int t = 0; t < n_tokens; ++t) {
    const int n_keys = pos0 + t + 1;                                      // causal: keys 0 .. pos0 + t
    const int first = p.window > 0 ? std::max(0, n_keys - p.window) : 0;  // the window's oldest key
    for (int h = 0; h < p.n_head; ++h) {
      const int kh = h / group;
      const float* qh = q + size_t(t) * size_t(p.n_head) * hd + size_t(h) * hd;
      double max_score = -INFINITY;
      for (int j = first; j < n_keys; ++j) {
        const float* kj = k + size_t(j) * row_stride + size_t(kh) * hd;
        double dot = 0.0;
        for (int d = 0; d < hd; ++d) dot += double(qh[d]) * double(kj[d]);
        scores[size_t(j)] = dot * double(p.scale);
        if (p.softcap > 0.0f) scores[size_t(j)] = p.softcap * std::tanh(scores[size_t(j)] / p.softcap);
        max_score = std::max(max_score, scores[size_t(j)]);
      }
      double sum = 0.0;
      for (int j = first; j < n_keys; ++j) {
        scores[size_t(j)] = std::exp(scores[size_t(j)] - max_score);
        sum += scores[size_t(j)];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = first; j < n_keys; ++j) {
        const float* vj = v + size_t(j) * row_stride + size_t(kh) * hd;
        for (int d = 0; d < hd; ++d) acc[size_t(d)] += scores[size_t(j)] * double(vj[d]);
      }
      float* oh = out + size_t(t) * size_t(p.n_head) * hd + size_t(h) * hd;
      for (int d = 0; d < hd; ++d) oh[d] = float(acc[size_t(d)] / sum);
    }
  }
}

// Returns rows 0 .. n_rows - 1 of a cache buffer dequantized by the scalar reference, with the centring
// mean added back. [n_rows, n_heads * head_dim] f32
std::vector<float> dequantize_rows(GgmlType type, const uint8_t* rows, size_t row_bytes, int n_rows, int n_heads,
                                   int head_dim, const uint16_t* mean) {
  const size_t row_values = size_t(n_heads) * head_dim;
  std::vector<float> out(size_t(n_rows) * row_values);
  for (int t = 0; t < n_rows; ++t) {
    float* row = out.data() + size_t(t) * row_values;
    dequantize_kv_row_ref(type, rows + size_t(t) * row_bytes, row, n_heads, head_dim);
    if (mean != nullptr) {
      for (size_t i = 0; i < row_values; ++i) row[i] += fp16_to_f32(mean[i]);
    }
  }
  return out;
}

// Returns the keys and values of positions 0 .. n_kv - 1 as `view` holds them, indexed by position:
// [n_kv, row_values] f32 each. In a ring, positions older than what it holds read whichever newer position
// took their row; no caller looks at them.
std::pair<std::vector<float>, std::vector<float>> rows_by_position(const KvLayerView& view, int n_kv) {
  const int row_values = view.n_head_kv * view.head_dim;
  const std::vector<float> k_rows = dequantize_rows(view.k_type, view.k, view.k_row_bytes, std::min(n_kv, view.n_rows),
                                                    view.n_head_kv, view.head_dim, view.k_mean);
  const std::vector<float> v_rows = dequantize_rows(view.v_type, view.v, view.v_row_bytes, std::min(n_kv, view.v_rows),
                                                    view.n_head_kv, view.head_dim, view.v_mean);
  std::vector<float> k_plain(size_t(n_kv) * row_values), v_plain(size_t(n_kv) * row_values);
  for (int t = 0; t < n_kv; ++t) {
    std::memcpy(&k_plain[size_t(t) * row_values], &k_rows[size_t(t % view.n_rows) * row_values],
                sizeof(float) * row_values);
    std::memcpy(&v_plain[size_t(t) * row_values], &v_rows[size_t(t % view.v_rows) * row_values],
                sizeof(float) * row_values);
  }
  return {std::move(k_plain), std::move(v_plain)};
}

}  // namespace

void attention_ref(const AttentionParams& p, const KvCache& cache, int layer, const float* q, int n_tokens, int pos0,
                   float* out) {
  const KvLayerView view = cache.layer(layer);
  KVQ_CHECK(p.n_head_kv == view.n_head_kv && p.head_dim == view.head_dim);
  const int n_kv = pos0 + n_tokens;
  KVQ_CHECK(n_kv <= view.n_ctx);
  const int row_values = view.n_head_kv * view.head_dim;
  auto [k_plain, v_plain] = rows_by_position(view, n_kv);
  const KvKeptViews kept = cache.kept(layer);
  if (!kept.any()) return naive_attention(p, k_plain.data(), v_plain.data(), row_values, n_kv, q, n_tokens, pos0, out);
  // Kept ranges (kv_cache.h): each query composes its own keys, sinks and its recent window from the kept rows.
  const auto sink = rows_by_position(kept.sink, std::min(n_kv, kept.sinks));
  const auto recent = rows_by_position(kept.window, n_kv);
  const size_t row = size_t(row_values);
  for (int t = 0; t < n_tokens; ++t) {
    const int q_pos = pos0 + t;
    std::vector<float> k_q(k_plain.begin(), k_plain.begin() + ptrdiff_t((q_pos + 1) * row));
    std::vector<float> v_q(v_plain.begin(), v_plain.begin() + ptrdiff_t((q_pos + 1) * row));
    for (int j = 0; j <= q_pos; ++j) {
      const auto* src = j < kept.sinks ? &sink : j > q_pos - kept.recent ? &recent : nullptr;
      if (!src) continue;
      std::copy_n(src->first.begin() + ptrdiff_t(j * row), row, k_q.begin() + ptrdiff_t(j * row));
      std::copy_n(src->second.begin() + ptrdiff_t(j * row), row, v_q.begin() + ptrdiff_t(j * row));
    }
    naive_attention(p, k_q.data(), v_q.data(), row_values, q_pos + 1, q + size_t(t) * p.n_head * p.head_dim, 1, q_pos,
                    out + size_t(t) * p.n_head * p.head_dim);
  }
}

void attention_ref_f32(const AttentionParams& p, const float* k, const float* v, int n_kv, const float* q, int n_tokens,
                       int pos0, float* out) {
  naive_attention(p, k, v, p.n_head_kv * p.head_dim, n_kv, q, n_tokens, pos0, out);
}

}  // namespace kvq
