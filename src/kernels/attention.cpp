// Fused attention entry point: splits the work into items (query tiles x key ranges), runs them on the
// OpenMP threads through the best SIMD target (attention-inl.h), and merges split softmax states.
#include "kernels/attention.h"

#include "util/half.h"
#include "util/system.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/attention-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {

// Prefetches part `part` of `parts` equal parts of bytes [p, p + n).
HWY_INLINE void PrefetchPart(const uint8_t* p, size_t n, int part, int parts) {
  const size_t end = n * size_t(part + 1) / size_t(parts);
  for (size_t i = n * size_t(part) / size_t(parts) / 64 * 64; i < end; i += 64) hwy::Prefetch(p + i);
}

// x[0 .. n) *= a
HWY_INLINE void ScaleRow(float a, float* HWY_RESTRICT x, int n) {
  const DFA df;
  const int lanes = int(hn::Lanes(df));
  int i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), hn::Set(df, a)), df, x + i);
  for (; i < n; ++i) x[i] *= a;
}

// Byte offset of KV head kh in a token row of whole blocks: its first block, or its record for the "_h" types.
inline size_t HeadOffset(GgmlType type, int kh, int hd) {
  return size_t(kh) * (is_head_scaled(type) ? head_record_bytes(type, hd) : row_bytes(type, hd));
}

// One item with the score layout fixed: kG tokens per score vector of tag DQ, rows_pad rows on the lanes.
template <class DQ, int kG>
void AttendItemT(DQ dq, const ad::Work& w, const ad::Item& it, int rows, int rows_pad) {
  const KvLayerView& kv = *it.kv;
  const int hd = w.head_dim;
  const int n_kv = kv.n_head_kv;
  const int group = w.n_head / n_kv;
  const int lanes_total = rows_pad * kG;  // score lanes per token group
  const size_t cover_max = size_t(hd) + 2 * kQK;

  AttentionScratch& sc = ThreadScratch();
  float* k_rows = sc.k_rows.Grow(ad::kChunk * cover_max);
  float* k_pairs = sc.k_pairs.Grow(size_t(ad::kChunk) * hd);
  float* v_rows = sc.v_rows.Grow(ad::kChunk * cover_max);
  float* qt = sc.qt.Grow(size_t(n_kv) * hd * lanes_total);
  float* s = sc.s.Grow(size_t(ad::kChunk / kG) * lanes_total);
  float* acc = sc.acc.Grow(size_t(n_kv) * rows_pad * hd);
  float* m = sc.m.Grow(size_t(n_kv) * lanes_total);
  float* l = sc.l.Grow(size_t(n_kv) * lanes_total);
  float* alpha = sc.alpha.Grow(size_t(lanes_total));
  float* lim = sc.lim.Grow(size_t(lanes_total));
  float* lo = it.window > 0 || it.key_min > 0 ? sc.lo.Grow(size_t(lanes_total)) : nullptr;
  if constexpr (kG == 2) PairPerm(hd, sc.perm);

  const size_t q_stride = size_t(w.n_head) * hd;
#if KVQ_INT8_SCORES
  // Integer K·q (attention_int8-inl.h): decode layout with 16 lanes, whole blocks per head, an int8 key type.
  const bool use_int8 = kG == 2 && int(hn::Lanes(dq)) == kInt8Lanes && hd % kQK == 0 && Int8KeyType(kv.k_type);
#else
  const bool use_int8 = false;
#endif
#if KVQ_NEON_INT8_SCORES
  // Integer K·q on NEON with the dot product (attention_int8_neon-inl.h): rows layout, up to 8 rows.
  static const bool dotprod = cpu_has_arm_dotprod();
  const bool use_neon_int8 =
      dotprod && kG == 1 && rows_pad <= kNeonInt8MaxRows && hd % kQK == 0 && NeonInt8KeyType(kv.k_type);
  std::vector<NeonInt8Queries> qn;  // [n_kv]: views into sc.q_int8
  if (use_neon_int8) {
    const size_t codes_bytes = size_t(hd) * rows_pad, head_bytes = codes_bytes + sizeof(float) * hd / kQK * rows_pad;
    auto* q_bytes = reinterpret_cast<uint8_t*>(sc.q_int8.Grow(size_t(n_kv) * head_bytes / 4));
    std::vector<float> scaled(static_cast<size_t>(hd));  // [hd] f32: one query head times the softmax scale
    for (int kh = 0; kh < n_kv; ++kh) {
      uint8_t* base = q_bytes + size_t(kh) * head_bytes;
      qn.push_back({reinterpret_cast<int8_t*>(base), reinterpret_cast<float*>(base + codes_bytes)});
      for (int r = 0; r < rows_pad; ++r) {
        const float* src =
            r < rows ? w.q + size_t(it.t0 + r / group) * q_stride + size_t(kh * group + r % group) * hd : nullptr;
        for (int j = 0; src && j < hd; ++j) scaled[size_t(j)] = src[j] * w.scale;
        QuantizeQueryRowNeon(src ? scaled.data() : nullptr, r, rows_pad, hd, qn.back());
      }
    }
  }
#else
  const bool use_neon_int8 = false;
#endif
#if KVQ_NEON_INT8_PV
  // Integer p·v on NEON with i8mm (attention_pv_int8_neon-inl.h): rows layout, up to 8 rows.
  static const bool i8mm = cpu_has_arm_i8mm();
  const bool use_neon_pv =
      i8mm && kG == 1 && rows_pad <= kNeonInt8MaxRows && hd % kQK == 0 && NeonInt8ValueType(kv.v_type);
#endif
  // f32 scores: row r of KV head kh = query it.t0 + r / group, query head kh * group + r % group, on the
  // lanes of qt. Padding rows are zero queries: finite, ignored at the end.
  for (int kh = 0; kh < n_kv && !use_int8 && !use_neon_int8; ++kh) {
    float* qt_kh = qt + size_t(kh) * hd * lanes_total;  // [hd, lanes_total]
    for (int lane = 0; lane < lanes_total; ++lane) {
      const int r = lane / kG;
      const float* qrow =
          r < rows ? w.q + size_t(it.t0 + r / group) * q_stride + size_t(kh * group + r % group) * hd : nullptr;
      for (int j = 0; j < hd; ++j) {
        const int dim = kG == 2 ? sc.perm[size_t(j)] : j;
        qt_kh[size_t(j) * lanes_total + lane] = qrow ? qrow[dim] * w.scale : 0.0f;
      }
    }
  }
#if KVQ_INT8_SCORES
  const int n_blocks = hd / kQK;
  const size_t q_int8_bytes = size_t(n_blocks) * (kInt8Steps * kInt8Lanes * 4 + 2 * kInt8Lanes * 4);
  std::vector<Int8Queries> qi;  // [n_kv]: views into sc.q_int8
  uint8_t* k_packed = nullptr;
  float* k_scales = nullptr;
  uint16_t* k_half_scales = nullptr;
  // q4_0 / q8_0 values through the AVX-512 decoder (attention_int8-inl.h), whatever the layout.
  const bool fast_v = hd % kQK == 0 && (kv.v_type == GgmlType::Q4_0 || kv.v_type == GgmlType::Q8_0);
  // nl2_h / nl3_h / nl4_h values: the integer p·v of attention_pv_int8-inl.h, in the decode layout only.
  const bool nl_pv = hd % kQK == 0 && is_head_scaled(kv.v_type) && head_bits(kv.v_type) <= 4;
  float* v_scales = nullptr;  // [kChunk * n_kv * n_blocks + 16] f32, then as many f16 bits
  uint16_t* v_half_scales = nullptr;
  if (fast_v || nl_pv) {
    const size_t n_scales = size_t(ad::kChunk) * n_kv * n_blocks + 16;
    v_scales = sc.v_scale.Grow(n_scales + (n_scales + 1) / 2);
    v_half_scales = reinterpret_cast<uint16_t*>(v_scales + n_scales);
  }
  if (use_int8) {
    auto* q_bytes = reinterpret_cast<uint8_t*>(sc.q_int8.Grow(size_t(n_kv) * q_int8_bytes / 4));
    // Keys of all heads, packed once per chunk in one pass over the rows: [kChunk / 2, n_kv * n_blocks, 64] u8.
    k_packed = reinterpret_cast<uint8_t*>(sc.k_int8.Grow(size_t(ad::kChunk / 2) * n_kv * n_blocks * 64 / 4));
    // [kChunk / 2, n_kv * n_blocks, 2] f32 scales, then as many f16 bits; 16 spare entries each for whole vectors.
    const size_t n_scales = size_t(ad::kChunk / 2) * n_kv * n_blocks * 2 + 16;
    k_scales = sc.k_scale.Grow(n_scales + (n_scales + 1) / 2);
    k_half_scales = reinterpret_cast<uint16_t*>(k_scales + n_scales);
    std::vector<float> scaled(static_cast<size_t>(hd));  // [hd] f32: one query head times the softmax scale
    for (int kh = 0; kh < n_kv; ++kh) {
      uint8_t* base = q_bytes + size_t(kh) * q_int8_bytes;
      const size_t codes_bytes = size_t(n_blocks) * kInt8Steps * kInt8Lanes * 4;
      const Int8Queries view{reinterpret_cast<int8_t*>(base), reinterpret_cast<int32_t*>(base + codes_bytes),
                             reinterpret_cast<float*>(base + codes_bytes + size_t(n_blocks) * kInt8Lanes * 4)};
      qi.push_back(view);
      for (int r = 0; r < rows_pad; ++r) {
        const float* qrow = nullptr;
        if (r < rows) {
          const float* src = w.q + size_t(it.t0 + r / group) * q_stride + size_t(kh * group + r % group) * hd;
          for (int j = 0; j < hd; ++j) scaled[size_t(j)] = src[j] * w.scale;
          qrow = scaled.data();
        }
        QuantizeQueryRow(qrow, r, hd, kv.k_type, view);
      }
    }
  }
#endif
  for (int lane = 0; lane < lanes_total; ++lane) {
    const int r = lane / kG;
    const int q_pos = r < rows ? w.pos0 + it.t0 + r / group : it.k1 - 1;
    lim[lane] = float(std::min(q_pos - it.shift, it.k1 - 1) - lane % kG);  // causal and end-of-range mask
    const int low = std::max(it.window > 0 ? q_pos - it.window + 1 : 0, it.key_min);
    if (lo) lo[lane] = float(low - lane % kG);  // sliding window, or the first key of this part
  }
  std::fill(m, m + size_t(n_kv) * lanes_total, -std::numeric_limits<float>::infinity());
  std::fill(l, l + size_t(n_kv) * lanes_total, 0.0f);
  std::fill(acc, acc + size_t(n_kv) * rows_pad * hd, 0.0f);

  for (int c0 = it.k0; c0 < it.k1; c0 += ad::kChunk) {
    const int n = std::min(ad::kChunk, it.k1 - c0);
    // Position c0 sits in row c0 % n_rows: a ring never splits a chunk (a layer's ring has whole chunks; an
    // item on a kept ring stops where it wraps).
    const uint8_t* k_chunk = kv.k + size_t(c0 % kv.n_rows) * kv.k_row_bytes;
    const uint8_t* v_chunk = kv.v + size_t(c0 % kv.v_rows) * kv.v_row_bytes;
    // Ask for the next chunk's rows while this chunk computes (the decode would otherwise stall on every
    // line: a third of single-thread time at 8K), a share before each KV head: issued in one burst, the
    // prefetches filled the line-fill buffers and stalled (12% of q8_0/q4_0 decode time).
    const int n_next = std::min(ad::kChunk, it.k1 - c0 - n);
    const uint8_t* k_next = kv.k + size_t((c0 + n) % kv.n_rows) * kv.k_row_bytes;
    const uint8_t* v_next = kv.v + size_t((c0 + n) % kv.v_rows) * kv.v_row_bytes;
    const int n_groups = ((n + kG - 1) / kG + 3) / 4 * 4;  // scores run 4 groups at a time
    const int keys_read = n_groups * kG;                   // rows past n are masked by select, never summed
    for (int kh = 0; kh < n_kv; ++kh) {
      // Three shares per KV head, one before each phase (scores, softmax, p·v).
      const auto prefetch_share = [&](int phase) {
        if (n_next == 0) return;
        PrefetchPart(k_next, size_t(n_next) * kv.k_row_bytes, 3 * kh + phase, 3 * n_kv);
        PrefetchPart(v_next, size_t(n_next) * kv.v_row_bytes, 3 * kh + phase, 3 * n_kv);
      };
      prefetch_share(0);
      bool scored = false;
#if KVQ_INT8_SCORES
      if (use_int8) {
        const int all_blocks = n_kv * n_blocks;
        if (kh == 0 && is_head_scaled(kv.k_type)) {
          PackHeadKeysInt8Any(kv.k_type, k_chunk, kv.k_row_bytes, n, n_groups, n_kv, hd, k_packed, k_scales);
        } else if (kh == 0) {  // contiguous rows in one stream: the prefetchers keep up, unlike 4 strided passes
          PackKeysInt8Any(kv.k_type, k_chunk, kv.k_row_bytes, 0, n, n_groups, all_blocks, k_packed, k_half_scales,
                          k_scales);
        }
        ScoresInt8(qi[size_t(kh)], k_packed + size_t(kh) * n_blocks * 64, k_scales + size_t(kh) * n_blocks * 2,
                   n_groups, n_blocks, all_blocks, s);
        scored = true;
      }
#endif
#if KVQ_NEON_INT8_SCORES
      if (use_neon_int8) {
        ScoresInt8Neon(kv.k_type, qn[size_t(kh)], rows_pad, k_chunk, kv.k_row_bytes, HeadOffset(kv.k_type, kh, hd), n,
                       n_groups, hd / kQK, s);
        scored = true;
      }
#endif
      if (!scored) {
        const ad::HeadSlice ks = ad::head_slice(kv.k_type, kh, hd);
        const ad::F32RowsView k = DecodeHeadRows(kv.k_type, k_chunk, kv.k_row_bytes, n, ks, keys_read == n, k_rows);
        const float* qt_kh = qt + size_t(kh) * hd * lanes_total;
        if constexpr (kG == 2) {
          InterleavePairs(k, n_groups, hd, k_pairs);
          ScoresG2(dq, qt_kh, k_pairs, n_groups, hd, s);
        } else {
          ScoresG1(dq, qt_kh, rows_pad, k, n_groups, hd, s);
        }
      }
      float* m_kh = m + size_t(kh) * lanes_total;
      float* l_kh = l + size_t(kh) * lanes_total;
      prefetch_share(1);
      SoftmaxChunk<kG>(dq, s, n_groups, lanes_total, c0, lim, lo, w.softcap, m_kh, l_kh, alpha);
      prefetch_share(2);

      float* acc_kh = acc + size_t(kh) * rows_pad * hd;  // [rows_pad, hd]
      for (int r = 0; r < rows_pad; ++r) {
        const float a = alpha[r * kG];
        if (a != 1.0f) ScaleRow(a, acc_kh + size_t(r) * hd, hd);
      }
      ad::F32RowsView v;
#if KVQ_NEON_INT8_PV
      if (use_neon_pv) {
        AccumulatePVInt8Neon(kv.v_type, rows_pad, v_chunk, kv.v_row_bytes, HeadOffset(kv.v_type, kh, hd), n, hd / kQK,
                             s, acc_kh);
        continue;
      }
#endif
#if KVQ_INT8_SCORES
      if (nl_pv && kG == 2 && rows_pad == 8 && int(hn::Lanes(dq)) == kInt8Lanes) {  // decode layout
        const size_t record = head_record_bytes(kv.v_type, hd);
        const int n_pad = (n + 3) / 4 * 4;
        if (kh == 0) GatherHeadScales(v_chunk, kv.v_row_bytes, record, n, n_kv, v_half_scales);
        const int bits = head_bits(kv.v_type);
        const auto pv = bits == 2 ? AccumulatePVNl<2> : bits == 3 ? AccumulatePVNl<3> : AccumulatePVNl<4>;
        pv(v_chunk, kv.v_row_bytes, HeadOffset(kv.v_type, kh, hd), n, n_blocks, s, v_half_scales + size_t(kh) * n_pad,
           v_scales, acc_kh);
        continue;
      }
      if (fast_v && kG == 2 && rows_pad == 8 && int(hn::Lanes(dq)) == kInt8Lanes) {  // decode layout: fused
        const size_t block_bytes = size_t(type_traits(kv.v_type).type_size);
        const size_t first = HeadOffset(kv.v_type, kh, hd);
        const int n_pad = (n + 3) / 4 * 4;
        if (kh == 0) GatherValueScales(v_chunk, kv.v_row_bytes, block_bytes, n, n_kv * n_blocks, v_half_scales);
        const uint16_t* head_half_scales = v_half_scales + size_t(kh) * n_blocks * n_pad;
        if (kv.v_type == GgmlType::Q4_0) {
          AccumulatePVQ4_0(v_chunk, kv.v_row_bytes, first, n, n_blocks, s, head_half_scales, v_scales, acc_kh);
        } else {
          AccumulatePVQ8_0(v_chunk, kv.v_row_bytes, first, n, n_blocks, s, head_half_scales, v_scales, acc_kh);
        }
        continue;
      }
      if (fast_v) {
        const size_t first = HeadOffset(kv.v_type, kh, hd);
        if (kv.v_type == GgmlType::Q4_0) {
          DecodeValuesInt<GgmlType::Q4_0>(v_chunk, kv.v_row_bytes, first, n, n_blocks, v_half_scales, v_scales, v_rows);
        } else {
          DecodeValuesInt<GgmlType::Q8_0>(v_chunk, kv.v_row_bytes, first, n, n_blocks, v_half_scales, v_scales, v_rows);
        }
        v = ad::F32RowsView{v_rows, size_t(hd)};
      }
#endif
      if (v.data == nullptr) {
        const ad::HeadSlice vs = ad::head_slice(kv.v_type, kh, hd);
        v = DecodeHeadRows(kv.v_type, v_chunk, kv.v_row_bytes, n, vs, true, v_rows);
      }
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
      case 4:
        return AttendItemT<hn::CappedTag<float, 4>, 2>(hn::CappedTag<float, 4>(), w, it, rows, rows_pad);
      case 8:
        return AttendItemT<hn::CappedTag<float, 8>, 2>(hn::CappedTag<float, 8>(), w, it, rows, rows_pad);
      default:
        return AttendItemT<DFA, 2>(DFA(), w, it, rows, rows_pad);  // 16 = all lanes of DFA
    }
  }
#endif
  const int rows_pad = (rows + n - 1) / n * n;
  AttendItemT<DFA, 1>(DFA(), w, it, rows, rows_pad);
}

// The K·q and p·v kernels AttendItem runs for one decode token of a GQA group of `group` query heads (kvq
// bench's report; it follows the layout choice above and AttendItemT's use_int8 / fast_v / nl_pv /
// use_neon_int8 / use_neon_pv).
std::string AttentionDecodeKernelName(GgmlType k, GgmlType v, int group, int head_dim) {
  const int lanes = int(hn::Lanes(DFA()));
  int rows_pad = 2;
  while (rows_pad < group) rows_pad *= 2;
  const bool pair_layout = HWY_TARGET != HWY_SCALAR && lanes >= 4 && 2 * group <= lanes;
  const bool blocks = head_dim % kQK == 0;
#if KVQ_INT8_SCORES
  const bool int8_layout = pair_layout && 2 * rows_pad == kInt8Lanes;
  const std::string scores = int8_layout && blocks && Int8KeyType(k) ? "K·q int8 (vpdpbusd)" : "K·q f32 FMA";
  std::string pv = "p·v f32 FMA";
  if (blocks && int8_layout && (v == GgmlType::Q4_0 || (is_head_scaled(v) && head_bits(v) <= 4))) {
    pv = "p·v int8 (vpdpbusd)";
  } else if (blocks && int8_layout && v == GgmlType::Q8_0) {
    pv = "p·v f32, values decoded into registers";
  } else if (blocks && (v == GgmlType::Q4_0 || v == GgmlType::Q8_0)) {
    pv = "p·v f32, AVX-512 value decoder";
  }
  return scores + ", " + pv;
#elif KVQ_NEON_INT8_SCORES
  const bool rows_int8 = !pair_layout && rows_pad <= kNeonInt8MaxRows && blocks;
  const bool int8 = rows_int8 && NeonInt8KeyType(k) && cpu_has_arm_dotprod();
  return std::string(int8          ? "K·q int8 (sdot)"
                     : pair_layout ? "K·q f32 FMA (token pairs)"
                                   : "K·q f32 FMA") +
         (rows_int8 && NeonInt8ValueType(v) && cpu_has_arm_i8mm() ? ", p·v int8 (sudot)" : ", p·v f32 FMA");
#else
  (void)k, (void)v, (void)blocks;
  return std::string(pair_layout ? "K·q f32 FMA (token pairs)" : "K·q f32 FMA") + ", p·v f32 FMA";
#endif
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {
HWY_EXPORT(AttendItem);
HWY_EXPORT(AttentionDecodeKernelName);

std::string attention_decode_kernel_name(GgmlType k_type, GgmlType v_type, int group, int head_dim) {
  return HWY_DYNAMIC_DISPATCH(AttentionDecodeKernelName)(k_type, v_type, group, head_dim);
}

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
  const KvKeptViews kept = cache.kept(layer);
  KVQ_CHECK(p.n_head_kv == kv.n_head_kv && p.head_dim == kv.head_dim);
  KVQ_CHECK(p.n_head > 0 && p.n_head % p.n_head_kv == 0);
  KVQ_CHECK(pos0 >= 0 && n_tokens >= 0 && pos0 + n_tokens <= kv.n_ctx);
  // A ring must still hold every key the first query of the call sees.
  KVQ_CHECK(kv.n_rows == kv.n_ctx || (p.window > 0 && p.window + n_tokens - 1 <= kv.n_rows));
  KVQ_CHECK(kept.recent == 0 || n_tokens <= kKvRecentSlice);  // the kept ring holds recent + slice - 1 rows
  static_assert(kKvRingAlign % attention_detail::kChunk == 0, "ring rows must be whole chunks");
  if (n_tokens == 0) return;

  attention_detail::Work w;
  w.kv = kv;
  w.n_head = p.n_head;
  w.head_dim = p.head_dim;
  w.scale = p.scale;
  w.softcap = p.softcap;
  w.q = q;
  w.n_tokens = n_tokens;
  w.pos0 = pos0;

  constexpr int kChunk = attention_detail::kChunk;
  const int group = p.n_head / p.n_head_kv;
  const int tile = std::max(1, kTileRows / group);
  const int n_tiles = (n_tokens + tile - 1) / tile;
  const int n_threads = omp_get_max_threads();
  // Keys of the first chunk a query at position q_pos can see (a window starts past 0).
  const auto first_key = [&](int q_pos) {
    return p.window > 0 ? std::max(0, q_pos - p.window + 1) / kChunk * kChunk : 0;
  };
  const int n_keys = pos0 + n_tokens - first_key(pos0);
  // Few tiles (decode): split each tile's keys so that every thread has work (flash-decoding).
  int n_splits = 1;
  if (n_tiles < 2 * n_threads) {
    n_splits = std::clamp((2 * n_threads + n_tiles - 1) / n_tiles, 1, std::max(1, n_keys / kMinSplitKeys));
  }
  // Kept ranges (kv_cache.h) add parts: the sinks, and the recent window in at most two pieces (its ring
  // wraps at most once over one tile's keys). Parts of one tile merge like splits.
  const int n_parts = n_splits + (kept.any() ? 3 : 0);

  const size_t part_slots = size_t(tile) * p.n_head;
  static thread_local std::vector<float> part_acc, part_ml;  // [n_tiles * n_parts, tile, n_head, hd | 2]
  if (n_parts > 1) {
    part_acc.resize(size_t(n_tiles) * n_parts * part_slots * p.head_dim);
    part_ml.resize(size_t(n_tiles) * n_parts * part_slots * 2);
  }
  std::vector<attention_detail::Item> items;
  std::vector<int> tile_parts(size_t(n_tiles), 0);  // parts each tile has
  items.reserve(size_t(n_tiles) * n_parts);
  for (int ti = 0; ti < n_tiles; ++ti) {
    const int t0 = ti * tile;
    const int t1 = std::min(n_tokens, t0 + tile);
    const int q_first = pos0 + t0, q_last = pos0 + t1 - 1;
    const auto add = [&](const KvLayerView* view, int k0, int k1, int shift, int window, int key_min) {
      if (k0 >= k1) return;
      attention_detail::Item it;
      it.t0 = t0, it.t1 = t1, it.k0 = k0, it.k1 = k1;
      it.kv = view, it.shift = shift, it.window = window, it.key_min = key_min;
      if (n_parts == 1) {
        it.out = out;
      } else {
        const size_t base = (size_t(ti) * n_parts + tile_parts[size_t(ti)]) * part_slots;
        it.acc = part_acc.data() + base * p.head_dim;
        it.ml = part_ml.data() + base * 2;
      }
      ++tile_parts[size_t(ti)];
      items.push_back(it);
    };
    // The quantized rows: keys older than the recent window and past the sinks (masks keep the others out).
    const int key0 = first_key(q_first);
    const int key_end = q_last + 1 - kept.recent;
    const int chunks = (key_end - key0 + kChunk - 1) / kChunk;
    for (int sp = 0; sp < n_splits && chunks > 0; ++sp) {
      add(&w.kv, std::min(key_end, key0 + chunks * sp / n_splits * kChunk),
          std::min(key_end, key0 + chunks * (sp + 1) / n_splits * kChunk), kept.recent, p.window, kept.sinks);
    }
    if (!kept.any()) continue;
    add(&kept.sink, 0, std::min(kept.sinks, q_last + 1), 0, p.window, 0);
    if (kept.recent == 0) continue;
    const int window = p.window > 0 ? std::min(p.window, kept.recent) : kept.recent;
    const int recent0 = std::max({kept.sinks, q_first - window + 1, 0});
    const int ring = kept.ring;  // the kept side's ring (the other side holds n_ctx rows)
    const int wrap = std::min(q_last + 1, (recent0 / ring + 1) * ring);  // the ring's next row 0
    add(&kept.window, recent0, wrap, 0, window, kept.sinks);
    add(&kept.window, wrap, q_last + 1, 0, window, kept.sinks);
  }

#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < items.size(); ++i) HWY_DYNAMIC_DISPATCH(AttendItem)(w, items[i]);

  if (n_parts > 1) {
    // This thread's buffers: inside the parallel region part_acc would name each worker's own (empty) one.
    const float* acc_all = part_acc.data();
    const float* ml_all = part_ml.data();
#pragma omp parallel for schedule(static) if (n_tiles > 1)  // decode: one tile, merged without a fork
    for (int ti = 0; ti < n_tiles; ++ti) {
      const int t0 = ti * tile;
      const size_t base = size_t(ti) * n_parts * part_slots;
      merge_splits(acc_all + base * p.head_dim, ml_all + base * 2, tile_parts[size_t(ti)], part_slots,
                   (std::min(n_tokens, t0 + tile) - t0) * p.n_head, p.head_dim,
                   out + size_t(t0) * p.n_head * p.head_dim);
    }
  }
  if (kv.v_mean != nullptr) {  // centred values (kv_cache.h): the softmax weights sum to 1, so add the mean once
    for (int t = 0; t < n_tokens; ++t) {
      for (int h = 0; h < p.n_head; ++h) {
        float* o = out + (size_t(t) * p.n_head + h) * p.head_dim;
        const uint16_t* mean = kv.v_mean + size_t(h / group) * p.head_dim;
        for (int d = 0; d < p.head_dim; ++d) o[d] += fp16_to_f32(mean[d]);
      }
    }
  }
}

}  // namespace kvq
#endif  // HWY_ONCE
