// Per-target fused attention over one work item: a tile of queries against a range of cached keys, for
// every KV head, with an online softmax. Included once per SIMD target by attention.cpp.
//
// Why the loops look like this (TinyLlama decode: 8 query heads share each KV head, head_dim 64):
// - K and V are decoded chunk by chunk into small f32 tiles (L1) and used by every query head of the group,
//   so each cached block is read from memory and decoded once per token, never once per query head.
// - Scores put query heads ("rows") along the vector lanes and broadcast key values: no horizontal sums.
//   With fewer rows than lanes, two tokens share a vector ("G = 2": lanes alternate token 2p, 2p + 1),
//   which keeps AVX-512 lanes full for 8-head groups. The key tile is then stored as token pairs
//   [pair][dim][2] so that one 64-bit broadcast feeds both tokens. The pairing permutes the dims of a
//   vector; the query tile uses the same permutation, and a dot product does not care about order.
// - K·q is computed as dequantize-then-FMA in f32, except in the decode layout on AVX-512 VNNI with q8_0,
//   q4_0, iq4_nl or head-scaled keys: there the query heads are rounded to 8-bit blocks once per item and
//   the scores are integer dot products on the cache's codes (attention_int8-inl.h, ~1.5-1.8x faster). In
//   that layout q8_0 values are decoded straight into the p·v registers, and q4_0 and nl2_h..nl4_h values take
//   an integer p·v with the probabilities rounded to 8 bits (attention_pv_int8-inl.h).

#ifndef KVQ_KERNELS_ATTENTION_SHARED_
#define KVQ_KERNELS_ATTENTION_SHARED_

#include "kv/kv_cache.h"

namespace kvq::attention_detail {

inline constexpr int kChunk = 64;  // keys decoded per step; a multiple of 8 (scores take 4 groups of <= 2 keys)

// What every item of one attention() call shares.
struct Work {
  KvLayerView kv;  // the layer's own rows (a part may read a kept view instead: Item::kv)
  int n_head = 0;
  int head_dim = 0;
  float scale = 0.0f;
  float softcap = 0.0f;      // 0 = none
  const float* q = nullptr;  // [n_tokens, n_head * head_dim] f32
  int n_tokens = 0;
  int pos0 = 0;
};

// Queries [t0, t1) against keys [k0, k1) of one view. Writes either the final rows of `out` or a partial
// softmax state. A query at position q sees key j when key_min <= j <= q - shift and, with a window,
// j > q - window: the layer's causal (sliding) mask, or one part of a cache with kept ranges.
struct Item {
  int t0 = 0, t1 = 0;
  int k0 = 0, k1 = 0;
  const KvLayerView* kv = nullptr;  // rows the keys are read from
  int shift = 0;                    // keys within `shift` of the query belong to another part
  int window = 0;                   // 0 = no lower bound but key_min
  int key_min = 0;
  float* out = nullptr;  // [n_tokens, n_head * head_dim] f32, or null to write the partial state
  float* acc = nullptr;  // [t1 - t0, n_head, head_dim] f32: unnormalised sum of p * v
  float* ml = nullptr;   // [t1 - t0, n_head, 2] f32: running max score m, sum of exp(score - m) l
};

}  // namespace kvq::attention_detail

#endif  // KVQ_KERNELS_ATTENTION_SHARED_

#if defined(KVQ_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_ATTENTION_INL_H_
#undef KVQ_KERNELS_ATTENTION_INL_H_
#else
#define KVQ_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/attention_dequant-inl.h"
#include "kernels/attention_int8-inl.h"
#include "kernels/attention_int8_neon-inl.h"
#include "kernels/attention_pv_int8-inl.h"
#include "kernels/attention_pv_int8_neon-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace ad = attention_detail;

// A float buffer aligned for full-vector loads and stores (cache-line splits cost a third of the
// pair-interleave time with malloc's 16-byte alignment). Grown on demand, zeroed when allocated, so that
// rows read past the valid keys are finite.
class AlignedFloats {
 public:
  float* Grow(size_t n) {
    if (n > size_) {
      data_ = hwy::AllocateAligned<float>(n);
      std::fill(data_.get(), data_.get() + n, 0.0f);
      size_ = n;
    }
    return data_.get();
  }

 private:
  hwy::AlignedFreeUniquePtr<float[]> data_;
  size_t size_ = 0;
};

// Per-thread buffers, kept across calls (OpenMP threads persist).
struct AttentionScratch {
  AlignedFloats k_rows;   // [kChunk, cover] f32: decoded keys of one head
  AlignedFloats k_pairs;  // [kChunk / 2, head_dim, 2] f32: the same keys as token pairs (G = 2)
  AlignedFloats v_rows;   // [kChunk, cover] f32: decoded values of one head
  AlignedFloats qt;       // [n_head_kv, head_dim, lanes] f32: scaled queries, rows on lanes
  AlignedFloats s;        // [kChunk / G, lanes] f32: scores, then probabilities
  AlignedFloats acc;      // [n_head_kv, rows_pad, head_dim] f32
  AlignedFloats m, l;     // [n_head_kv, lanes] f32: running max, running sum
  AlignedFloats alpha;    // [lanes] f32: rescale factor of this chunk
  AlignedFloats lim;      // [lanes] f32: last key position each lane may see
  AlignedFloats lo;       // [lanes] f32: first key position each lane may see (sliding window)
  std::vector<int> perm;  // [head_dim]: dim order of the token-pair layout
  // Integer scores (attention_int8-inl.h), all as raw bytes:
  AlignedFloats q_int8;   // per KV head: [n_blocks, 8, 16, 4] s8 codes, [n_blocks, 16] i32 corr, [n_blocks, 16] f32 d
                          // (NEON: NeonInt8Queries, [n_blocks, 8, rows_pad / 4, 16] s8 codes, [n_blocks, rows_pad] d)
  AlignedFloats k_int8;   // [kChunk / 2, n_blocks, 64] u8: packed key codes of one head
  AlignedFloats v_scale;  // [kChunk, n_blocks] f32 value block scales, then the same count of f16 bits
  AlignedFloats k_scale;  // [kChunk / 2, n_blocks, 2] f32 block scales, then the same count of f16 bits
};

inline AttentionScratch& ThreadScratch() {
  static thread_local AttentionScratch scratch;
  return scratch;
}

// ---------------------------------------------------------------------------------------------------
// Token-pair layout: dst [n_pairs, hd, 2] from rows 2p, 2p + 1 of src. Interleaving works within each
// vector of `lanes` dims, so the dims come out permuted; Perm() replays it on indices.

#if HWY_TARGET != HWY_SCALAR
template <class DW>
HWY_INLINE void InterleavePairsT(DW dw, ad::F32RowsView src, int n_pairs, int hd, float* HWY_RESTRICT dst) {
  const int lanes = int(hn::Lanes(dw));
  for (int p = 0; p < n_pairs; ++p) {
    const float* a = src.data + size_t(2 * p) * src.stride;
    const float* b = a + src.stride;
    float* out = dst + size_t(p) * size_t(hd) * 2;
    for (int j = 0; j < hd; j += lanes) {
      const auto va = hn::LoadU(dw, a + j);
      const auto vb = hn::LoadU(dw, b + j);
      hn::StoreU(hn::InterleaveLower(dw, va, vb), dw, out + 2 * j);
      hn::StoreU(hn::InterleaveUpper(dw, va, vb), dw, out + 2 * j + lanes);
    }
  }
}
#endif

HWY_INLINE void InterleavePairs(ad::F32RowsView src, int n_pairs, int hd, float* HWY_RESTRICT dst) {
#if HWY_TARGET != HWY_SCALAR  // one lane: no interleave op (and no pairing either, see AttendItem)
  const int n = int(hn::Lanes(DFA()));
  if (hd % n == 0 && n >= 4) return InterleavePairsT(DFA(), src, n_pairs, hd, dst);
  if (hd % 8 == 0 && n >= 8) return InterleavePairsT(hn::CappedTag<float, 8>(), src, n_pairs, hd, dst);
  if (hd % 4 == 0 && n >= 4) return InterleavePairsT(hn::CappedTag<float, 4>(), src, n_pairs, hd, dst);
#endif
  for (int p = 0; p < n_pairs; ++p) {  // odd head sizes: plain order
    for (int j = 0; j < hd; ++j) {
      dst[(size_t(p) * hd + j) * 2 + 0] = src.data[size_t(2 * p) * src.stride + j];
      dst[(size_t(p) * hd + j) * 2 + 1] = src.data[size_t(2 * p + 1) * src.stride + j];
    }
  }
}

// Returns perm with perm[j] = the dim that sits at position j of the token-pair layout.
HWY_INLINE void PairPerm(int hd, std::vector<int>& perm) {
  std::vector<float> iota(size_t(2 * hd)), pairs(size_t(2 * hd));  // [2, hd] rows, [1, hd, 2] pairs
  for (int j = 0; j < hd; ++j) iota[size_t(j)] = iota[size_t(hd + j)] = float(j);
  InterleavePairs(ad::F32RowsView{iota.data(), size_t(hd)}, 1, hd, pairs.data());
  perm.resize(size_t(hd));
  for (int j = 0; j < hd; ++j) perm[size_t(j)] = int(pairs[size_t(2 * j)]);
}

// ---------------------------------------------------------------------------------------------------
// Scores. s[group][lane] = sum_j qt[j][lane] * key(lane's token)[j]; qt already holds q * scale.

// G = 1, one key quad against kVecs (1 or 2) vectors of rows from row rv: s[t + i][rv ..] for i < 4.
template <int kVecs, class DQ>
HWY_INLINE void ScoresG1Quad(DQ dq, const float* HWY_RESTRICT qt, int rows_pad, int rv, ad::F32RowsView k, int t,
                             int hd, float* HWY_RESTRICT s) {
  const int lanes = int(hn::Lanes(dq));
  const float* k0 = k.data + size_t(t) * k.stride;
  const float* k1 = k0 + k.stride;
  const float* k2 = k1 + k.stride;
  const float* k3 = k2 + k.stride;
  auto a0 = hn::Zero(dq), a1 = hn::Zero(dq), a2 = hn::Zero(dq), a3 = hn::Zero(dq);  // rows rv ..
  auto b0 = hn::Zero(dq), b1 = hn::Zero(dq), b2 = hn::Zero(dq), b3 = hn::Zero(dq);  // rows rv + lanes .. (kVecs 2)
  for (int j = 0; j < hd; ++j) {
    const float* qj = qt + size_t(j) * rows_pad + rv;
    const auto x0 = hn::Set(dq, k0[j]), x1 = hn::Set(dq, k1[j]), x2 = hn::Set(dq, k2[j]), x3 = hn::Set(dq, k3[j]);
    const auto qa = hn::LoadU(dq, qj);
    a0 = hn::MulAdd(qa, x0, a0), a1 = hn::MulAdd(qa, x1, a1), a2 = hn::MulAdd(qa, x2, a2), a3 = hn::MulAdd(qa, x3, a3);
    if constexpr (kVecs == 2) {
      const auto qb = hn::LoadU(dq, qj + lanes);
      b0 = hn::MulAdd(qb, x0, b0), b1 = hn::MulAdd(qb, x1, b1), b2 = hn::MulAdd(qb, x2, b2),
      b3 = hn::MulAdd(qb, x3, b3);
    }
  }
  float* st = s + size_t(t) * rows_pad + rv;
  hn::StoreU(a0, dq, st), hn::StoreU(a1, dq, st + rows_pad);
  hn::StoreU(a2, dq, st + 2 * rows_pad), hn::StoreU(a3, dq, st + 3 * rows_pad);
  if constexpr (kVecs == 2) {
    hn::StoreU(b0, dq, st + lanes), hn::StoreU(b1, dq, st + rows_pad + lanes);
    hn::StoreU(b2, dq, st + 2 * rows_pad + lanes), hn::StoreU(b3, dq, st + 3 * rows_pad + lanes);
  }
}

// G = 1: lanes are rows; rows_pad is a multiple of the lanes; n_groups (= keys) a multiple of 4. Two row
// vectors at a time where there are two: 8 independent FMA chains cover the FMA latency, which 4 do not
// (prefill: 19 % of an 8K perplexity chunk in this function before, on one vector of rows).
template <class DQ>
HWY_NOINLINE void ScoresG1(DQ dq, const float* HWY_RESTRICT qt, int rows_pad, ad::F32RowsView k, int n_keys, int hd,
                           float* HWY_RESTRICT s) {
  const int lanes = int(hn::Lanes(dq));
  int rv = 0;
  for (; rv + 2 * lanes <= rows_pad; rv += 2 * lanes) {
    for (int t = 0; t < n_keys; t += 4) ScoresG1Quad<2>(dq, qt, rows_pad, rv, k, t, hd, s);
  }
  for (; rv < rows_pad; rv += lanes) {
    for (int t = 0; t < n_keys; t += 4) ScoresG1Quad<1>(dq, qt, rows_pad, rv, k, t, hd, s);
  }
}

// Both floats of a token pair in every 64-bit lane: [k(2p)[j], k(2p+1)[j], k(2p)[j], ...].
template <class DQ>
HWY_INLINE hn::Vec<DQ> PairBroadcast(DQ dq, const float* pair) {
  double bits;
  std::memcpy(&bits, pair, sizeof(bits));
  return hn::BitCast(dq, hn::Set(hn::Repartition<double, DQ>(), bits));
}

// G = 2: lane 2r + o holds row r, token 2p + o; the vector is exactly the lanes; n_pairs a multiple of 4.
template <class DQ>
HWY_NOINLINE void ScoresG2(DQ dq, const float* HWY_RESTRICT qt, const float* HWY_RESTRICT kp, int n_pairs, int hd,
                           float* HWY_RESTRICT s) {
  const int lanes = int(hn::Lanes(dq));
  const size_t pair_stride = size_t(hd) * 2;
  for (int p = 0; p < n_pairs; p += 4) {
    const float* k0 = kp + size_t(p) * pair_stride;
    const float* k1 = k0 + pair_stride;
    const float* k2 = k1 + pair_stride;
    const float* k3 = k2 + pair_stride;
    auto a0 = hn::Zero(dq), a1 = hn::Zero(dq), a2 = hn::Zero(dq), a3 = hn::Zero(dq);
    for (int j = 0; j < hd; ++j) {
      const auto qv = hn::LoadU(dq, qt + size_t(j) * lanes);
      a0 = hn::MulAdd(qv, PairBroadcast(dq, k0 + 2 * j), a0);
      a1 = hn::MulAdd(qv, PairBroadcast(dq, k1 + 2 * j), a1);
      a2 = hn::MulAdd(qv, PairBroadcast(dq, k2 + 2 * j), a2);
      a3 = hn::MulAdd(qv, PairBroadcast(dq, k3 + 2 * j), a3);
    }
    hn::StoreU(a0, dq, s + size_t(p + 0) * lanes);
    hn::StoreU(a1, dq, s + size_t(p + 1) * lanes);
    hn::StoreU(a2, dq, s + size_t(p + 2) * lanes);
    hn::StoreU(a3, dq, s + size_t(p + 3) * lanes);
  }
}

// ---------------------------------------------------------------------------------------------------
// exp(x) for x <= 0 (-inf included), the only arguments softmax has after subtracting the max: 2^n *
// e^r with n = round(x / ln 2), r = x - n ln 2 in two parts (Cody-Waite), e^r by a degree-6 Taylor
// polynomial (relative error < 2e-7 on |r| <= ln 2 / 2), 2^n built in the exponent bits. Results below
// 2^-126 flush to 0. About half the operations of hn::Exp, which also serves positive and huge x.
template <class D>
HWY_INLINE hn::Vec<D> ExpNonPositive(D d, hn::Vec<D> x) {
  const hn::RebindToSigned<D> di;
  const auto tiny = hn::Lt(x, hn::Set(d, -87.0f));  // also -inf and below the normal range
  x = hn::Max(x, hn::Set(d, -87.0f));
  const auto n = hn::Round(hn::Mul(x, hn::Set(d, 1.44269504088896341f)));
  auto r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), x);
  r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
  auto p = hn::Set(d, 1.0f / 720.0f);
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 120.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 24.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 6.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  const auto two_n = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127))));
  return hn::IfThenZeroElse(tiny, hn::Mul(p, two_n));
}

// Online softmax over one chunk: softcaps the scores, masks keys outside each lane's [lo, lim] range,
// turns s into exp(s - m_new) and updates (m, l); alpha = exp(m_old - m_new) is what the accumulators must
// be rescaled by. lo is null when no lane has a lower limit.
template <int kG, class DQ>
HWY_INLINE void SoftmaxChunk(DQ dq, float* HWY_RESTRICT s, int n_groups, int lanes_total, int c0,
                             const float* HWY_RESTRICT lim, const float* HWY_RESTRICT lo, float softcap,
                             float* HWY_RESTRICT m, float* HWY_RESTRICT l, float* HWY_RESTRICT alpha) {
  const auto neg_inf = hn::Set(dq, -std::numeric_limits<float>::infinity());
  const int lanes = int(hn::Lanes(dq));
  // Chunks inside every lane's range (all but the last, in decode) need no mask.
  float min_limit = std::numeric_limits<float>::infinity();
  float max_low = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < lanes_total; ++i) {
    min_limit = std::min(min_limit, lim[i]);
    if (lo) max_low = std::max(max_low, lo[i]);
  }
  const bool unmasked = float(c0 + n_groups * kG - 1) <= min_limit && float(c0) >= max_low;
  for (int v = 0; v < lanes_total; v += lanes) {
    if (softcap > 0.0f) {  // before the mask: capped scores of masked keys are replaced anyway
      const auto cap = hn::Set(dq, softcap);
      const auto inv_cap = hn::Set(dq, 1.0f / softcap);
      for (int g = 0; g < n_groups; ++g) {
        float* sg = s + size_t(g) * lanes_total + v;
        hn::StoreU(hn::Mul(cap, hn::Tanh(dq, hn::Mul(hn::LoadU(dq, sg), inv_cap))), dq, sg);
      }
    }
    const auto limit = hn::LoadU(dq, lim + v);
    const auto low = lo ? hn::LoadU(dq, lo + v) : neg_inf;
    auto mx = neg_inf;
    if (unmasked) {
      for (int g = 0; g < n_groups; ++g) mx = hn::Max(mx, hn::LoadU(dq, s + size_t(g) * lanes_total + v));
    } else {
      for (int g = 0; g < n_groups; ++g) {
        float* sg = s + size_t(g) * lanes_total + v;
        const auto key = hn::Set(dq, float(c0 + g * kG));
        const auto outside = hn::Or(hn::Gt(key, limit), hn::Lt(key, low));
        const auto masked = hn::IfThenElse(outside, neg_inf, hn::LoadU(dq, sg));
        hn::StoreU(masked, dq, sg);
        mx = hn::Max(mx, masked);
      }
    }
#if HWY_TARGET != HWY_SCALAR
    if constexpr (kG == 2) mx = hn::Max(mx, hn::Shuffle2301(mx));  // both tokens of a row
#endif
    const auto m_old = hn::LoadU(dq, m + v);
    const auto m_new = hn::Max(m_old, mx);
    // A row that has seen only masked keys keeps m = -inf; subtract 0 instead so exp gives 0, not NaN.
    const auto m_use = hn::IfThenZeroElse(hn::Eq(m_new, neg_inf), m_new);
    const auto a = ExpNonPositive(dq, hn::Sub(m_old, m_use));
    auto sum = hn::Zero(dq);
    for (int g = 0; g < n_groups; ++g) {
      float* sg = s + size_t(g) * lanes_total + v;
      const auto p = ExpNonPositive(dq, hn::Sub(hn::LoadU(dq, sg), m_use));
      hn::StoreU(p, dq, sg);
      sum = hn::Add(sum, p);
    }
#if HWY_TARGET != HWY_SCALAR
    if constexpr (kG == 2) sum = hn::Add(sum, hn::Shuffle2301(sum));
#endif
    hn::StoreU(m_new, dq, m + v);
    hn::StoreU(hn::MulAdd(hn::LoadU(dq, l + v), a, sum), dq, l + v);
    hn::StoreU(a, dq, alpha + v);
  }
}

// ---------------------------------------------------------------------------------------------------
// acc[0..3][:] += sum_t p(r, t) * v[t][:]: 4 rows x 4 vectors (16 accumulators), each value vector loaded
// once per 4 rows. hd is a multiple of 4 vectors.
template <int kG, class DV>
HWY_INLINE void AccumulatePV4Rows(DV dv, const float* HWY_RESTRICT p, int lanes_total, ad::F32RowsView v, int n_keys,
                                  int hd, float* HWY_RESTRICT acc) {
  const int lanes = int(hn::Lanes(dv));
  for (int d = 0; d < hd; d += 4 * lanes) {
    float* a0p = acc + d;
    float* a1p = a0p + hd;
    float* a2p = a1p + hd;
    float* a3p = a2p + hd;
    auto a00 = hn::Load(dv, a0p), a01 = hn::Load(dv, a0p + lanes), a02 = hn::Load(dv, a0p + 2 * lanes),
         a03 = hn::Load(dv, a0p + 3 * lanes);
    auto a10 = hn::Load(dv, a1p), a11 = hn::Load(dv, a1p + lanes), a12 = hn::Load(dv, a1p + 2 * lanes),
         a13 = hn::Load(dv, a1p + 3 * lanes);
    auto a20 = hn::Load(dv, a2p), a21 = hn::Load(dv, a2p + lanes), a22 = hn::Load(dv, a2p + 2 * lanes),
         a23 = hn::Load(dv, a2p + 3 * lanes);
    auto a30 = hn::Load(dv, a3p), a31 = hn::Load(dv, a3p + lanes), a32 = hn::Load(dv, a3p + 2 * lanes),
         a33 = hn::Load(dv, a3p + 3 * lanes);
    for (int t = 0; t < n_keys; ++t) {
      const float* pt = p + size_t(t / kG) * lanes_total + size_t(t % kG);
      const float* vt = v.data + size_t(t) * v.stride + d;
      const auto x0 = hn::LoadU(dv, vt), x1 = hn::LoadU(dv, vt + lanes);
      const auto x2 = hn::LoadU(dv, vt + 2 * lanes), x3 = hn::LoadU(dv, vt + 3 * lanes);
      const auto w0 = hn::Set(dv, pt[0]);
      a00 = hn::MulAdd(w0, x0, a00);
      a01 = hn::MulAdd(w0, x1, a01);
      a02 = hn::MulAdd(w0, x2, a02);
      a03 = hn::MulAdd(w0, x3, a03);
      const auto w1 = hn::Set(dv, pt[kG]);
      a10 = hn::MulAdd(w1, x0, a10);
      a11 = hn::MulAdd(w1, x1, a11);
      a12 = hn::MulAdd(w1, x2, a12);
      a13 = hn::MulAdd(w1, x3, a13);
      const auto w2 = hn::Set(dv, pt[2 * kG]);
      a20 = hn::MulAdd(w2, x0, a20);
      a21 = hn::MulAdd(w2, x1, a21);
      a22 = hn::MulAdd(w2, x2, a22);
      a23 = hn::MulAdd(w2, x3, a23);
      const auto w3 = hn::Set(dv, pt[3 * kG]);
      a30 = hn::MulAdd(w3, x0, a30);
      a31 = hn::MulAdd(w3, x1, a31);
      a32 = hn::MulAdd(w3, x2, a32);
      a33 = hn::MulAdd(w3, x3, a33);
    }
    hn::Store(a00, dv, a0p), hn::Store(a01, dv, a0p + lanes), hn::Store(a02, dv, a0p + 2 * lanes),
        hn::Store(a03, dv, a0p + 3 * lanes);
    hn::Store(a10, dv, a1p), hn::Store(a11, dv, a1p + lanes), hn::Store(a12, dv, a1p + 2 * lanes),
        hn::Store(a13, dv, a1p + 3 * lanes);
    hn::Store(a20, dv, a2p), hn::Store(a21, dv, a2p + lanes), hn::Store(a22, dv, a2p + 2 * lanes),
        hn::Store(a23, dv, a2p + 3 * lanes);
    hn::Store(a30, dv, a3p), hn::Store(a31, dv, a3p + lanes), hn::Store(a32, dv, a3p + 2 * lanes),
        hn::Store(a33, dv, a3p + 3 * lanes);
  }
}

// acc[r][:] += sum_t p(r, t) * v[t][:] for rows_pad (even) rows; p(r, t) = s[(t / G) * lanes + r * G + t % G].
template <int kG, class DV>
HWY_NOINLINE void AccumulatePV(DV dv, const float* HWY_RESTRICT s, int lanes_total, int rows_pad, ad::F32RowsView v,
                               int n_keys, int hd, float* HWY_RESTRICT acc) {
  const int lanes = int(hn::Lanes(dv));
  int r = 0;
  if (hd % (4 * lanes) == 0) {
    for (; r + 4 <= rows_pad; r += 4)
      AccumulatePV4Rows<kG>(dv, s + r * kG, lanes_total, v, n_keys, hd, acc + size_t(r) * hd);
  }
  for (; r < rows_pad; r += 2) {
    const float* p0 = s + r * kG;
    const float* p1 = p0 + kG;
    float* acc0 = acc + size_t(r) * hd;
    float* acc1 = acc0 + hd;
    int d = 0;
    for (; d + 4 * lanes <= hd; d += 4 * lanes) {  // 2 rows x 4 vectors: 8 accumulators in registers
      auto a00 = hn::LoadU(dv, acc0 + d), a01 = hn::LoadU(dv, acc0 + d + lanes);
      auto a02 = hn::LoadU(dv, acc0 + d + 2 * lanes), a03 = hn::LoadU(dv, acc0 + d + 3 * lanes);
      auto a10 = hn::LoadU(dv, acc1 + d), a11 = hn::LoadU(dv, acc1 + d + lanes);
      auto a12 = hn::LoadU(dv, acc1 + d + 2 * lanes), a13 = hn::LoadU(dv, acc1 + d + 3 * lanes);
      for (int t = 0; t < n_keys; ++t) {
        const size_t idx = size_t(t / kG) * lanes_total + size_t(t % kG);
        const auto w0 = hn::Set(dv, p0[idx]);
        const auto w1 = hn::Set(dv, p1[idx]);
        const float* vt = v.data + size_t(t) * v.stride + d;
        const auto x0 = hn::LoadU(dv, vt), x1 = hn::LoadU(dv, vt + lanes);
        const auto x2 = hn::LoadU(dv, vt + 2 * lanes), x3 = hn::LoadU(dv, vt + 3 * lanes);
        a00 = hn::MulAdd(w0, x0, a00);
        a01 = hn::MulAdd(w0, x1, a01);
        a02 = hn::MulAdd(w0, x2, a02);
        a03 = hn::MulAdd(w0, x3, a03);
        a10 = hn::MulAdd(w1, x0, a10);
        a11 = hn::MulAdd(w1, x1, a11);
        a12 = hn::MulAdd(w1, x2, a12);
        a13 = hn::MulAdd(w1, x3, a13);
      }
      hn::StoreU(a00, dv, acc0 + d);
      hn::StoreU(a01, dv, acc0 + d + lanes);
      hn::StoreU(a02, dv, acc0 + d + 2 * lanes);
      hn::StoreU(a03, dv, acc0 + d + 3 * lanes);
      hn::StoreU(a10, dv, acc1 + d);
      hn::StoreU(a11, dv, acc1 + d + lanes);
      hn::StoreU(a12, dv, acc1 + d + 2 * lanes);
      hn::StoreU(a13, dv, acc1 + d + 3 * lanes);
    }
    for (; d < hd; d += lanes) {  // the rest one vector at a time
      auto a0 = hn::LoadU(dv, acc0 + d), a1 = hn::LoadU(dv, acc1 + d);
      for (int t = 0; t < n_keys; ++t) {
        const size_t idx = size_t(t / kG) * lanes_total + size_t(t % kG);
        const auto x = hn::LoadU(dv, v.data + size_t(t) * v.stride + d);
        a0 = hn::MulAdd(hn::Set(dv, p0[idx]), x, a0);
        a1 = hn::MulAdd(hn::Set(dv, p1[idx]), x, a1);
      }
      hn::StoreU(a0, dv, acc0 + d);
      hn::StoreU(a1, dv, acc1 + d);
    }
  }
}

// Picks the widest vector that divides head_dim.
template <int kG>
HWY_INLINE void AccumulatePVAnyWidth(const float* s, int lanes_total, int rows_pad, ad::F32RowsView v, int n_keys,
                                     int hd, float* acc) {
  const int n = int(hn::Lanes(DFA()));
  if (hd % n == 0) return AccumulatePV<kG>(DFA(), s, lanes_total, rows_pad, v, n_keys, hd, acc);
  if (hd % 8 == 0 && n >= 8)
    return AccumulatePV<kG>(hn::CappedTag<float, 8>(), s, lanes_total, rows_pad, v, n_keys, hd, acc);
  if (hd % 4 == 0 && n >= 4)
    return AccumulatePV<kG>(hn::CappedTag<float, 4>(), s, lanes_total, rows_pad, v, n_keys, hd, acc);
  return AccumulatePV<kG>(hn::CappedTag<float, 1>(), s, lanes_total, rows_pad, v, n_keys, hd, acc);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_ATTENTION_INL_H_
