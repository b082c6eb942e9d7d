// Fused attention entry point: splits the work into items (query tiles x key ranges), runs them on the
// OpenMP threads through the best SIMD target (attention-inl.h), and merges split softmax states.
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/attention-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {

// One item with the score layout fixed: kG tokens per score vector of tag DQ, rows_pad rows on the lanes.
template <class DQ, int kG>
void AttendItemT(DQ dq, const ad::Work& w, const ad::Item& it, int rows, int rows_pad) {
  const KvLayerView& kv = w.kv;
  const int hd = w.head_dim;
  const int n_kv = kv.n_head_kv;
  const int group = w.n_head / n_kv;
  const int lanes_total = rows_pad * kG;  // score lanes per token group
  const size_t cover_max = size_t(hd) + 2 * kQK;

  AttentionScratch& sc = ThreadScratch();
  float* k_rows = Grow(sc.k_rows, ad::kChunk * cover_max);
  float* k_pairs = Grow(sc.k_pairs, size_t(ad::kChunk) * hd);
  float* v_rows = Grow(sc.v_rows, ad::kChunk * cover_max);
  float* qt = Grow(sc.qt, size_t(n_kv) * hd * lanes_total);
  float* s = Grow(sc.s, size_t(ad::kChunk / kG) * lanes_total);
  float* acc = Grow(sc.acc, size_t(n_kv) * rows_pad * hd);
  float* m = Grow(sc.m, size_t(n_kv) * lanes_total);
  float* l = Grow(sc.l, size_t(n_kv) * lanes_total);
  float* alpha = Grow(sc.alpha, size_t(lanes_total));
  float* lim = Grow(sc.lim, size_t(lanes_total));
  if constexpr (kG == 2) PairPerm(hd, sc.perm);

  // Row r of KV head kh = query it.t0 + r / group, query head kh * group + r % group. Padding rows are zero
  // queries: finite, ignored at the end.
  const size_t q_stride = size_t(w.n_head) * hd;
  for (int kh = 0; kh < n_kv; ++kh) {
    float* qt_kh = qt + size_t(kh) * hd * lanes_total;  // [hd, lanes_total]
    for (int lane = 0; lane < lanes_total; ++lane) {
      const int r = lane / kG;
      const float* qrow = r < rows ? w.q + size_t(it.t0 + r / group) * q_stride + size_t(kh * group + r % group) * hd
                                   : nullptr;
      for (int j = 0; j < hd; ++j) {
        const int dim = kG == 2 ? sc.perm[size_t(j)] : j;
        qt_kh[size_t(j) * lanes_total + lane] = qrow ? qrow[dim] * w.scale : 0.0f;
      }
    }
  }
  for (int lane = 0; lane < lanes_total; ++lane) {
    const int r = lane / kG;
    const int q_pos = r < rows ? w.pos0 + it.t0 + r / group : it.k1 - 1;
    lim[lane] = float(std::min(q_pos + 1, it.k1 - 1) - lane % kG);  // causal and end-of-range mask
  }
  std::fill(m, m + size_t(n_kv) * lanes_total, -std::numeric_limits<float>::infinity());
  std::fill(l, l + size_t(n_kv) * lanes_total, 0.0f);
  std::fill(acc, acc + size_t(n_kv) * rows_pad * hd, 0.0f);

  for (int c0 = it.k0; c0 < it.k1; c0 += ad::kChunk) {
    const int n = std::min(ad::kChunk, it.k1 - c0);
    const int n_groups = ((n + kG - 1) / kG + 3) / 4 * 4;  // scores run 4 groups at a time
    const int keys_read = n_groups * kG;                   // rows past n are masked by select, never summed
    for (int kh = 0; kh < n_kv; ++kh) {
      const ad::HeadSlice ks = ad::head_slice(kv.k_type, kh, hd);
      const ad::F32RowsView k = DecodeHeadRows(kv.k_type, kv.k + size_t(c0) * kv.k_row_bytes, kv.k_row_bytes, n, ks,
                                               keys_read == n, k_rows);
      const float* qt_kh = qt + size_t(kh) * hd * lanes_total;
      if constexpr (kG == 2) {
        InterleavePairs(k, n_groups, hd, k_pairs);
        ScoresG2(dq, qt_kh, k_pairs, n_groups, hd, s);
      } else {
        ScoresG1(dq, qt_kh, rows_pad, k, n_groups, hd, s);
      }
      float* m_kh = m + size_t(kh) * lanes_total;
      float* l_kh = l + size_t(kh) * lanes_total;
      SoftmaxChunk<kG>(dq, s, n_groups, lanes_total, c0, lim, m_kh, l_kh, alpha);

      float* acc_kh = acc + size_t(kh) * rows_pad * hd;  // [rows_pad, hd]
      for (int r = 0; r < rows_pad; ++r) {
        const float a = alpha[r * kG];
        if (a != 1.0f) {
          for (int d = 0; d < hd; ++d) acc_kh[size_t(r) * hd + d] *= a;
        }
      }
      const ad::HeadSlice vs = ad::head_slice(kv.v_type, kh, hd);
      const ad::F32RowsView v =
          DecodeHeadRows(kv.v_type, kv.v + size_t(c0) * kv.v_row_bytes, kv.v_row_bytes, n, vs, true, v_rows);
      AccumulatePVAnyWidth<kG>(s, lanes_total, rows_pad, v, n, hd, acc_kh);
    }
  }

  for (int kh = 0; kh < n_kv; ++kh) {
    for (int r = 0; r < rows; ++r) {
      const int i = r / group;
      const int h = kh * group + r % group;
      const float* a = acc + (size_t(kh) * rows_pad + r) * hd;
      const float row_m = m[size_t(kh) * lanes_total + r * kG];
      const float row_l = l[size_t(kh) * lanes_total + r * kG];
      if (it.out != nullptr) {
        float* o = it.out + size_t(it.t0 + i) * q_stride + size_t(h) * hd;
        const float inv = 1.0f / row_l;
        for (int d = 0; d < hd; ++d) o[d] = a[d] * inv;
      } else {
        const size_t slot = size_t(i) * w.n_head + h;
        std::copy(a, a + hd, it.acc + slot * hd);
        it.ml[slot * 2 + 0] = row_m;
        it.ml[slot * 2 + 1] = row_l;
      }
    }
  }
}

void AttendItem(const ad::Work& w, const ad::Item& it) {
  const int rows = (it.t1 - it.t0) * (w.n_head / w.kv.n_head_kv);
  const int n = int(hn::Lanes(DFA()));
#if HWY_TARGET != HWY_SCALAR
  if (n >= 4 && 2 * rows <= n) {
    // Fewer rows than half the lanes: two tokens per vector, rows padded to a power of two.
    int rows_pad = 2;
    while (rows_pad < rows) rows_pad *= 2;
    switch (2 * rows_pad) {
      case 4: return AttendItemT<hn::CappedTag<float, 4>, 2>(hn::CappedTag<float, 4>(), w, it, rows, rows_pad);
      case 8: return AttendItemT<hn::CappedTag<float, 8>, 2>(hn::CappedTag<float, 8>(), w, it, rows, rows_pad);
      default: return AttendItemT<DFA, 2>(DFA(), w, it, rows, rows_pad);  // 16 = all lanes of DFA
    }
  }
#endif
  const int rows_pad = (rows + n - 1) / n * n;
  AttendItemT<DFA, 1>(DFA(), w, it, rows, rows_pad);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {
HWY_EXPORT(AttendItem);

namespace {

constexpr int kTileRows = 32;       // query rows (queries x heads of a group) per prefill tile
constexpr int kMinSplitKeys = 256;  // flash-decoding: fewer keys per split cost more to merge than they save

// Output rows from the partial states of `n_splits` items over the same queries; slot = query * n_head + head.
// acc: [n_splits, split_stride, hd], ml: [n_splits, split_stride, 2], out: [n_slots, hd]
void merge_splits(const float* acc, const float* ml, int n_splits, size_t split_stride, int n_slots, int hd,
                  float* out) {
  for (int slot = 0; slot < n_slots; ++slot) {
    float max_m = -std::numeric_limits<float>::infinity();
    for (int sp = 0; sp < n_splits; ++sp) max_m = std::max(max_m, ml[(sp * split_stride + slot) * 2]);
    float* o = out + size_t(slot) * hd;
    std::fill(o, o + hd, 0.0f);
    float sum = 0.0f;
    for (int sp = 0; sp < n_splits; ++sp) {
      const float* st = ml + (sp * split_stride + slot) * 2;
      const float weight = st[1] > 0.0f ? std::exp(st[0] - max_m) : 0.0f;  // a split may see only masked keys
      sum += weight * st[1];
      const float* a = acc + (sp * split_stride + slot) * hd;
      for (int d = 0; d < hd; ++d) o[d] += weight * a[d];
    }
    const float inv = 1.0f / sum;
    for (int d = 0; d < hd; ++d) o[d] *= inv;
  }
}

}  // namespace

void attention(const AttentionParams& p, const KvCache& cache, int layer, const float* q, int n_tokens, int pos0,
               float* out) {
  const KvLayerView kv = cache.layer(layer);
  KVQ_CHECK(p.n_head_kv == kv.n_head_kv && p.head_dim == kv.head_dim);
  KVQ_CHECK(p.n_head > 0 && p.n_head % p.n_head_kv == 0);
  KVQ_CHECK(pos0 >= 0 && n_tokens >= 0 && pos0 + n_tokens <= kv.n_ctx);
  if (n_tokens == 0) return;

  attention_detail::Work w;
  w.kv = kv;
  w.n_head = p.n_head;
  w.head_dim = p.head_dim;
  w.scale = p.scale;
  w.q = q;
  w.n_tokens = n_tokens;
  w.pos0 = pos0;

  const int group = p.n_head / p.n_head_kv;
  const int tile = std::max(1, kTileRows / group);
  const int n_tiles = (n_tokens + tile - 1) / tile;
  const int n_threads = omp_get_max_threads();
  const int n_keys = pos0 + n_tokens;
  // Few tiles (decode): split each tile's keys so that every thread has work (flash-decoding).
  int n_splits = 1;
  if (n_tiles < 2 * n_threads) {
    n_splits = std::clamp((2 * n_threads + n_tiles - 1) / n_tiles, 1, std::max(1, n_keys / kMinSplitKeys));
  }

  const size_t part_slots = size_t(tile) * p.n_head;
  static thread_local std::vector<float> part_acc, part_ml;  // [n_tiles * n_splits, tile, n_head, hd | 2]
  if (n_splits > 1) {
    part_acc.resize(size_t(n_tiles) * n_splits * part_slots * p.head_dim);
    part_ml.resize(size_t(n_tiles) * n_splits * part_slots * 2);
  }
  std::vector<attention_detail::Item> items;
  items.reserve(size_t(n_tiles) * n_splits);
  for (int ti = 0; ti < n_tiles; ++ti) {
    const int t0 = ti * tile;
    const int t1 = std::min(n_tokens, t0 + tile);
    const int tile_keys = pos0 + t1;  // keys the last query of the tile sees
    const int chunks = (tile_keys + attention_detail::kChunk - 1) / attention_detail::kChunk;
    for (int sp = 0; sp < n_splits; ++sp) {
      attention_detail::Item it;
      it.t0 = t0;
      it.t1 = t1;
      it.k0 = std::min(tile_keys, chunks * sp / n_splits * attention_detail::kChunk);
      it.k1 = std::min(tile_keys, chunks * (sp + 1) / n_splits * attention_detail::kChunk);
      if (n_splits == 1) {
        it.out = out;
      } else {
        const size_t base = (size_t(ti) * n_splits + sp) * part_slots;
        it.acc = part_acc.data() + base * p.head_dim;
        it.ml = part_ml.data() + base * 2;
      }
      items.push_back(it);
    }
  }

#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < items.size(); ++i) HWY_DYNAMIC_DISPATCH(AttendItem)(w, items[i]);

  if (n_splits > 1) {
#pragma omp parallel for schedule(static)
    for (int ti = 0; ti < n_tiles; ++ti) {
      const int t0 = ti * tile;
      const size_t base = size_t(ti) * n_splits * part_slots;
      merge_splits(part_acc.data() + base * p.head_dim, part_ml.data() + base * 2, n_splits, part_slots,
                   (std::min(n_tokens, t0 + tile) - t0) * p.n_head, p.head_dim, out + size_t(t0) * p.n_head * p.head_dim);
    }
  }
}

}  // namespace kvq
#endif  // HWY_ONCE
