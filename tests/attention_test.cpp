// Fused attention against the f64 oracle for every (key type, value type) pair, head size, GQA ratio and
// context length; then the properties the model relies on: prefill-then-decode equals all-at-once,
// chunked prefill, thread count independence, and what quantizing K or V costs the output.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "hwy/targets.h"
#include "kernels/attention.h"
#include "kv/kv_cache.h"
#include "quant/quant.h"
#include "test_util.h"
#include "util/system.h"

namespace kvq {
namespace {

// Kernel vs oracle on the same dequantized K/V: only f32 accumulation order, the f32 exp polynomial and
// FMA rounding differ from f64, so the output NMSE stays ~1e-13; 1e-9 leaves room for 4096-key sums and
// any SIMD target while still catching a wrong key, head or mask (those give NMSE > 1e-4).
constexpr double kMaxNmseKernel = 1e-9;
// Two kernel runs that tile or split the keys differently (thread count, chunked prefill): same bound.
constexpr double kMaxNmseRetiled = 1e-9;
// Decode with q8_0 / q4_0 / iq4_nl keys on AVX-512 VNNI scores in integers: the kernel rounds each query head
// to 8-bit blocks of 32 (q8_0-style, as llama.cpp's flash attention converts Q to the key type's dot type).
// That adds the error of an 8-bit q8_0 operand: measured output NMSE vs the oracle 1.05-1.23e-4 on
// DecodeQueryRoundingWithinBound's data (2.5x queries against keys with a x6 outlier channel: a sharp
// softmax, the worst case; 0.8-2e-5 at 40 queries x 100 keys), bounded with 2x headroom. This bound only
// sizes the rounding: correctness of the integer path is held to kMaxNmseKernel by the oracle tests, which
// feed queries already on the q8_0 grid (q8_round_trip) so that the kernel's rounding is exact.
constexpr double kMaxNmseInt8Query = 2.5e-4;
// Decode with q4_0 or nl2_h..nl4_h values on AVX-512 VNNI rounds the p·v weights p * d_v to 8 bits on each
// row's grid per 32-value block and 64-key chunk (attention_pv_int8-inl.h): measured output NMSE vs the
// oracle 1.7-3.4e-5 on this file's sharp-softmax data, bounded with 2x headroom. A wrong token, block, sign or row
// there lands above 1e-2.
constexpr double kMaxNmseInt8Weights = 7e-5;

// Output NMSE against f32 K/V (attention_ref_f32) that quantizing one side adds, by bit width; a pair may add
// both. Measured on QuantizationErrorWithinBitWidthBound's Gaussian data (f16 5e-8, bf16 3e-6, q8_0 3e-5,
// q5 1.5-2e-3, 4-bit 5-8e-3 per side) with ~2x headroom. On such data keys and values cost alike; keys with
// outlier channels cost far more (at 4 bits the oracle test's data reaches NMSE 0.5), hence per-layer types.
constexpr double kMaxAttnNmseF16 = 2e-7;
constexpr double kMaxAttnNmseBF16 = 1e-5;
constexpr double kMaxAttnNmseQ8 = 8e-5;
constexpr double kMaxAttnNmseQ5 = 5e-3;
constexpr double kMaxAttnNmseQ4 = 1.6e-2;
constexpr double kMaxAttnNmseNl3 = 4.5e-2;  // Lloyd-Max 3-bit levels: MSE 0.0345 of a unit Gaussian
constexpr double kMaxAttnNmseNl2 = 1.5e-1;  // 2-bit: 0.1175

// The kernel's bound against the oracle on the same cache: kMaxNmseKernel, or kMaxNmseInt8Weights where the
// integer p·v may run (q4_0 and nl2_h..nl4_h values on the AVX3_DL target, and on NEON with i8mm; default:
// the best target of this CPU).
double kernel_bound(GgmlType v_type, int64_t target = hwy::SupportedAndGeneratedTargets().front()) {
  const bool int8_weights =
      v_type == GgmlType::Q4_0 || v_type == GgmlType::NL2_H || v_type == GgmlType::NL3_H || v_type == GgmlType::NL4_H;
  const bool int8_pv = target == HWY_AVX3_DL || (target == HWY_NEON && cpu_has_arm_i8mm());
  return int8_pv && int8_weights ? kMaxNmseInt8Weights : kMaxNmseKernel;
}

double max_attention_nmse(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return 0.0;
    case GgmlType::F16:
      return kMaxAttnNmseF16;
    case GgmlType::BF16:
      return kMaxAttnNmseBF16;
    case GgmlType::Q8_0:
    case GgmlType::Q8_H:
      return kMaxAttnNmseQ8;
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::NL5_H:
      return kMaxAttnNmseQ5;
    case GgmlType::NL3_H:
      return kMaxAttnNmseNl3;
    case GgmlType::NL2_H:
      return kMaxAttnNmseNl2;
    default:
      return kMaxAttnNmseQ4;
  }
}

double nmse(const std::vector<float>& out, const std::vector<float>& ref) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = double(out[i]) - double(ref[i]);
    err += e * e;
    norm += double(ref[i]) * double(ref[i]);
  }
  return err / norm;  // NaN (fails every bound) if the kernel left a NaN
}

std::vector<float> randn(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& value : x) value = normal(rng);
  return x;
}

// One-layer cache holding n_ctx random positions; keys get an outlier channel per head, as real keys do.
struct Filled {
  KvCache cache;
  std::vector<float> k, v;  // [n_ctx, n_head_kv * head_dim] f32: what was stored
};

Filled fill_cache(KvTypes types, int n_ctx, int n_head_kv, int head_dim, uint32_t seed, float outlier = 6.0f,
                  bool centred = false) {
  const int row = n_head_kv * head_dim;
  std::vector<float> k = randn(size_t(n_ctx) * row, seed, 1.0f);
  std::vector<float> v = randn(size_t(n_ctx) * row, seed + 1, 1.0f);
  for (size_t i = 0; i < k.size(); i += head_dim) k[i + size_t(head_dim) / 2] *= outlier;
  KvCacheShape shape{1, n_ctx, n_head_kv, head_dim};
  shape.centre_keys = shape.centre_values = centred;
  auto cache = KvCache::create(shape, {types});
  KVQ_CHECK(cache.ok());
  cache->store(0, 0, n_ctx, k.data(), v.data());
  return Filled{std::move(*cache), std::move(k), std::move(v)};
}

// q with each head's values replaced by their q8_0 round trip (blocks of 32 along the head), for head sizes
// that are a multiple of 32 (the only ones the integer score path takes).
std::vector<float> q8_round_trip(std::vector<float> q, int head_dim) {
  if (head_dim % kQK != 0) return q;
  std::vector<BlockQ8_0> blocks(q.size() / kQK);  // [n_tokens * n_head * head_dim / 32]
  quantize_row_ref(GgmlType::Q8_0, q.data(), blocks.data(), int64_t(q.size()));
  dequantize_row_ref(GgmlType::Q8_0, blocks.data(), q.data(), int64_t(q.size()));
  return q;
}

AttentionParams params_for(int n_head, int n_head_kv, int head_dim) {
  return AttentionParams{n_head, n_head_kv, head_dim, 1.0f / std::sqrt(float(head_dim))};
}

// q scaled up by default so that softmax is far from uniform (a flat softmax hides masking and key errors).
std::vector<float> make_queries(int n_tokens, int n_head, int head_dim, uint32_t seed, float scale = 2.5f) {
  return randn(size_t(n_tokens) * n_head * head_dim, seed, scale);
}

std::vector<float> run_kernel(const AttentionParams& p, const KvCache& cache, const std::vector<float>& q, int n_tokens,
                              int pos0) {
  std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
  attention(p, cache, 0, q.data(), n_tokens, pos0, out.data());
  return out;
}

using Pair = std::tuple<GgmlType, GgmlType>;

// Every pair of ggml's block types; the head-scaled types (one decoder each, independent of the other side's)
// against the other side's distinct paths (f32 decode, the AVX-512 q8_0 / q4_0 value paths, integer keys), with
// themselves, and in the mixes users pick. Under the sanitizers and under emulation (the 40-100x slower
// runs; each side's decoder is its own code) only the pairs in which a key type meets f16, q4_0 or its own
// type, or a value type f16 or q8_0 keys: every decoder on both sides, 66 of the 124 pairs.
std::vector<Pair> all_pairs() {
  const bool reduced = test::sanitized() || *test::kvq_emulator();
  const auto keep = [reduced](GgmlType k, GgmlType v) {
    return !reduced || k == v || v == GgmlType::F16 || v == GgmlType::Q4_0 || k == GgmlType::F16 || k == GgmlType::Q8_0;
  };
  std::vector<Pair> pairs;
  for (GgmlType k : kKvCacheTypes) {
    for (GgmlType v : kKvCacheTypes) {
      if (!is_head_scaled(k) && !is_head_scaled(v) && keep(k, v)) pairs.emplace_back(k, v);
    }
  }
  for (GgmlType h : kKvCacheTypes) {
    if (!is_head_scaled(h)) continue;
    for (GgmlType v : {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, h}) {
      if (keep(h, v)) pairs.emplace_back(h, v);
    }
    for (GgmlType k : {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::IQ4_NL}) {
      if (keep(k, h)) pairs.emplace_back(k, h);
    }
  }
  for (const Pair& mix : {Pair{GgmlType::NL5_H, GgmlType::NL4_H}, Pair{GgmlType::NL4_H, GgmlType::NL3_H},
                          Pair{GgmlType::Q8_H, GgmlType::NL2_H}}) {
    pairs.push_back(mix);
  }
  return pairs;
}

// The 4096-key contexts run for these pairs only (the oracle is O(context) per query in f64): same type on
// both sides, plus the mixed pairs users pick. Every head size and GQA ratio still meets 4096 keys.
bool runs_long_context(GgmlType k, GgmlType v) {
  return k == v || (k == GgmlType::Q8_0 && (v == GgmlType::Q4_0 || v == GgmlType::Q5_0 || v == GgmlType::IQ4_NL)) ||
         (k == GgmlType::F16 && v == GgmlType::Q4_0) || (k == GgmlType::Q4_0 && v == GgmlType::Q8_0);
}

class AttentionPair : public testing::TestWithParam<Pair> {};

TEST_P(AttentionPair, MatchesF64OracleOnSameValues) {
  const auto [k_type, v_type] = GetParam();
  for (int head_dim : {8, 64, 128}) {
    for (int gqa : {1, 4, 8}) {
      for (int ctx : {1, 31, 32, 33, 1000, 4096}) {
        if (ctx == 4096 && !runs_long_context(k_type, v_type)) continue;
        // Two KV heads for short contexts: with head_dim 8 they share one 32-value block.
        const int n_head_kv = ctx <= 33 ? 2 : 1;
        const int n_head = n_head_kv * gqa;
        // Some contexts centred (kv/kv_cache.h): the kernel adds the value mean back, the oracle both means.
        const bool centred = ctx == 33 || ctx == 1000;
        const Filled f =
            fill_cache({k_type, v_type}, ctx, n_head_kv, head_dim, uint32_t(ctx * 31 + head_dim), 6.0f, centred);
        // The last queries: causal masks differ per row. gqa 4 x 2 queries = 8 rows takes the decode layout
        // (and integer scores) with two different masks.
        const int n_tokens = std::min(ctx, gqa == 4 ? 2 : 3);
        const int pos0 = ctx - n_tokens;
        const AttentionParams p = params_for(n_head, n_head_kv, head_dim);
        const std::vector<float> q =
            q8_round_trip(make_queries(n_tokens, n_head, head_dim, uint32_t(gqa + ctx)), head_dim);
        const std::vector<float> out = run_kernel(p, f.cache, q, n_tokens, pos0);
        std::vector<float> ref(q.size());
        attention_ref(p, f.cache, 0, q.data(), n_tokens, pos0, ref.data());
        EXPECT_LE(nmse(out, ref), kernel_bound(v_type))
            << "head_dim " << head_dim << ", gqa " << gqa << ", context " << ctx;
      }
    }
  }
}

TEST_P(AttentionPair, QuantizationErrorWithinBitWidthBound) {
  const auto [k_type, v_type] = GetParam();
  const int ctx = 1000, n_head_kv = 2, head_dim = 64, n_head = 8, n_tokens = 4;
  // Gaussian keys without the outlier channel and unit queries: the bound then tracks the bit width rather
  // than one outlier's effect on its block's scale (which the oracle test's data exercises).
  const Filled f = fill_cache({k_type, v_type}, ctx, n_head_kv, head_dim, 11, 1.0f);
  const AttentionParams p = params_for(n_head, n_head_kv, head_dim);
  const std::vector<float> q = make_queries(n_tokens, n_head, head_dim, 12, 1.0f);
  const std::vector<float> out = run_kernel(p, f.cache, q, n_tokens, ctx - n_tokens);
  std::vector<float> exact(q.size());
  attention_ref_f32(p, f.k.data(), f.v.data(), ctx, q.data(), n_tokens, ctx - n_tokens, exact.data());
  const double bound = std::max(max_attention_nmse(k_type) + max_attention_nmse(v_type), kMaxNmseKernel);
  const double err = nmse(out, exact);
  EXPECT_LE(err, bound);
  // And not suspiciously small: the cache really holds the types it claims.
  if (k_type != GgmlType::F32 || v_type != GgmlType::F32) {
    EXPECT_GE(err, bound / 20);
  }
  RecordProperty("nmse_vs_f32", std::to_string(err));
}

std::string pair_name(const testing::TestParamInfo<Pair>& info) {
  return std::string(type_name(std::get<0>(info.param))) + "_" + std::string(type_name(std::get<1>(info.param)));
}

// Gemma's features inside the fused kernel: a sliding window (lower mask per query row) and logit
// softcapping, on a ring cache that has wrapped many times, against the oracle on the same ring and against
// a cache holding every position. Decode (1-2 queries: split keys, integer paths) and prefill (40 queries
// whose windows start at different keys) for every pair.
TEST_P(AttentionPair, WindowSoftcapAndRingMatchOracle) {
  const auto [k_type, v_type] = GetParam();
  constexpr int kCtx = 300, kWindow = 70;
  for (int head_dim : {8, 48, 64}) {
    for (int gqa : {1, 8}) {
      for (int n_tokens : {1, 2, 40}) {
        const int n_head_kv = 2, n_head = n_head_kv * gqa, row = n_head_kv * head_dim;
        const KvCacheShape ring_shape{1, kCtx, n_head_kv, head_dim, {kWindow}, n_tokens};
        const KvCacheShape full_shape{1, kCtx, n_head_kv, head_dim};
        auto ring = KvCache::create(ring_shape, {{k_type, v_type}});
        auto full = KvCache::create(full_shape, {{k_type, v_type}});
        ASSERT_TRUE(ring.ok() && full.ok());
        ASSERT_LT(ring->shape().rows(0), kCtx);
        const std::vector<float> k = randn(size_t(kCtx) * row, uint32_t(head_dim + n_tokens), 1.0f);
        const std::vector<float> v = randn(size_t(kCtx) * row, uint32_t(head_dim + n_tokens + 1), 1.0f);
        for (int pos = 0; pos < kCtx; pos += n_tokens) {  // slices no larger than the ring was sized for
          const int count = std::min(n_tokens, kCtx - pos);
          ring->store(0, pos, count, k.data() + size_t(pos) * row, v.data() + size_t(pos) * row);
        }
        full->store(0, 0, kCtx, k.data(), v.data());
        AttentionParams p = params_for(n_head, n_head_kv, head_dim);
        p.window = kWindow;
        p.softcap = 2.0f;  // queries of scale 2.5 give scores beyond it: the cap changes the softmax
        const int pos0 = kCtx - n_tokens;
        const std::vector<float> q =
            q8_round_trip(make_queries(n_tokens, n_head, head_dim, uint32_t(gqa + n_tokens)), head_dim);
        const std::vector<float> out = run_kernel(p, *ring, q, n_tokens, pos0);
        std::vector<float> ref(q.size()), uncapped(q.size());
        attention_ref(p, *ring, 0, q.data(), n_tokens, pos0, ref.data());
        const std::string where = "head_dim " + std::to_string(head_dim) + ", gqa " + std::to_string(gqa) +
                                  ", queries " + std::to_string(n_tokens);
        EXPECT_LE(nmse(out, ref), kernel_bound(v_type)) << where;
        EXPECT_LE(nmse(run_kernel(p, *full, q, n_tokens, pos0), out), kernel_bound(v_type)) << where;
        // The features matter on this data (else the test could not fail).
        AttentionParams plain = p;
        plain.softcap = 0.0f;
        attention_ref(plain, *full, 0, q.data(), n_tokens, pos0, uncapped.data());
        EXPECT_GT(nmse(uncapped, ref), 1e-3) << where;
      }
    }
  }
}

// Sinks and a recent window kept at a higher precision (kv/kv_cache.h): the kernel's three parts against the
// oracle, which composes each query's keys on its own; in decode and in prefill slices (every query its own
// window), with a sliding window over them, and kept in f16 or q8_0. Where a side is quantized, keeping
// must also bring the result closer to exact f32 attention (else the kept rows were not read).
TEST_P(AttentionPair, SinksAndRecentWindowMatchOracle) {
  const auto [k_type, v_type] = GetParam();
  // Emulated and sanitized runs: the integer and non-linear key paths, a float side that keeps nothing; the
  // parts are the same for every type, whose decoders the other tests cover.
  const Pair reduced[] = {{GgmlType::Q8_0, GgmlType::Q4_0}, {GgmlType::F16, GgmlType::Q4_0},
                          {GgmlType::Q4_0, GgmlType::Q4_0}, {GgmlType::NL4_H, GgmlType::NL4_H},
                          {GgmlType::Q8_0, GgmlType::Q8_0}, {GgmlType::IQ4_NL, GgmlType::F32}};
  if ((test::sanitized() || *test::kvq_emulator()) && std::ranges::find(reduced, GetParam()) == std::end(reduced)) {
    GTEST_SKIP();
  }
  constexpr int kCtx = 300;
  struct Case {
    int head_dim, sinks, recent, window;
    GgmlType keep;
  };
  for (const Case& c : {Case{64, 4, 40, 0, GgmlType::F16}, Case{8, 1, 0, 0, GgmlType::F16},
                        Case{48, 0, 20, 0, GgmlType::Q8_0}, Case{64, 2, 33, 70, GgmlType::F16}}) {
    for (int gqa : {1, 8}) {
      for (int n_tokens : {1, 3, kKvRecentSlice}) {
        const int n_head_kv = 2, n_head = n_head_kv * gqa, row = n_head_kv * c.head_dim;
        const KvCacheShape shape{1, kCtx, n_head_kv, c.head_dim};
        const KvKept keep{c.sinks, c.recent, c.keep};
        auto plain = KvCache::create(shape, {{k_type, v_type}});
        auto kept = KvCache::create(shape, {{k_type, v_type, KvRotation::kNone, keep}});
        ASSERT_TRUE(kept.ok() && plain.ok());
        std::vector<float> k = randn(size_t(kCtx) * row, uint32_t(c.head_dim + n_tokens), 1.0f);
        std::vector<float> v = randn(size_t(kCtx) * row, uint32_t(c.head_dim + n_tokens + 1), 1.0f);
        for (size_t i = 0; i < k.size(); i += size_t(c.head_dim)) k[i + size_t(c.head_dim) / 2] *= 6.0f;
        // Sink-like first positions: large keys and values, whose rounding would dominate the output.
        for (size_t i = 0; i < size_t(c.sinks) * row; ++i) k[i] *= 3.0f, v[i] *= 30.0f;
        for (int pos = 0; pos < kCtx; pos += 100) {  // the ring wraps inside stores
          kept->store(0, pos, 100, k.data() + size_t(pos) * row, v.data() + size_t(pos) * row);
        }
        AttentionParams p = params_for(n_head, n_head_kv, c.head_dim);
        p.window = c.window;
        const int pos0 = kCtx - n_tokens;
        const std::vector<float> q =
            q8_round_trip(make_queries(n_tokens, n_head, c.head_dim, uint32_t(gqa + n_tokens)), c.head_dim);
        const std::vector<float> out = run_kernel(p, *kept, q, n_tokens, pos0);
        std::vector<float> ref(q.size());
        attention_ref(p, *kept, 0, q.data(), n_tokens, pos0, ref.data());
        const std::string where = "head_dim " + std::to_string(c.head_dim) + ", sinks " + std::to_string(c.sinks) +
                                  ", recent " + std::to_string(c.recent) + ", gqa " + std::to_string(gqa) +
                                  ", queries " + std::to_string(n_tokens);
        EXPECT_LE(nmse(out, ref), kernel_bound(v_type)) << where;
        // Where a side keeps rows more precise than its own, the kernel is far closer to the oracle of the kept
        // rows than to the result without them: it read the kept rows.
        const auto keeps_finer = [&](GgmlType side) {
          return keeps_side(keep, side) && type_traits(c.keep).type_size * type_traits(side).block_size >
                                               type_traits(side).type_size * type_traits(c.keep).block_size;
        };
        if (!keeps_finer(k_type) && !keeps_finer(v_type)) continue;
        plain->store(0, 0, kCtx, k.data(), v.data());
        EXPECT_GT(nmse(out, run_kernel(p, *plain, q, n_tokens, pos0)), 10 * nmse(out, ref)) << where;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllKvPairs, AttentionPair, testing::ValuesIn(all_pairs()), pair_name);

// TinyLlama's attention shape (32 query heads on 4 KV heads, head_dim 64).
class AttentionConsistency : public testing::TestWithParam<Pair> {
 protected:
  static constexpr int kCtx = 300, kHeadKv = 4, kHead = 32, kHeadDim = 64;
};

TEST_P(AttentionConsistency, PrefillThenDecodeEqualsAllAtOnce) {
  const auto [k_type, v_type] = GetParam();
  const Filled f = fill_cache({k_type, v_type}, kCtx, kHeadKv, kHeadDim, 21);
  const AttentionParams p = params_for(kHead, kHeadKv, kHeadDim);
  const size_t row = size_t(kHead) * kHeadDim;
  const std::vector<float> q = q8_round_trip(make_queries(kCtx, kHead, kHeadDim, 22), kHeadDim);
  const std::vector<float> all = run_kernel(p, f.cache, q, kCtx, 0);

  std::vector<float> stepwise(q.size());
  const int prefill = 200;
  attention(p, f.cache, 0, q.data(), prefill, 0, stepwise.data());
  for (int t = prefill; t < kCtx; ++t) attention(p, f.cache, 0, &q[t * row], 1, t, &stepwise[t * row]);
  // Decode steps, and tiles of one query (8 rows), may take the integer p·v where all-at-once does not.
  const double bound = std::max(kMaxNmseRetiled, kernel_bound(v_type));
  EXPECT_LE(nmse(stepwise, all), bound);

  // Chunked prefill: n_tokens > 1 at pos0 > 0, chunk sizes that do not divide the tiles.
  std::vector<float> chunked(q.size());
  for (int t = 0; t < kCtx; t += 37) {
    const int n = std::min(37, kCtx - t);
    attention(p, f.cache, 0, &q[t * row], n, t, &chunked[t * row]);
  }
  EXPECT_LE(nmse(chunked, all), bound);

  // Spot-check against the oracle: the last 2 queries.
  std::vector<float> ref(2 * row);
  attention_ref(p, f.cache, 0, &q[(kCtx - 2) * row], 2, kCtx - 2, ref.data());
  const std::vector<float> tail(all.end() - long(2 * row), all.end());
  EXPECT_LE(nmse(tail, ref), kMaxNmseKernel);
}

TEST_P(AttentionConsistency, ThreadCountDoesNotChangeTheResult) {
  const auto [k_type, v_type] = GetParam();
  const Filled f = fill_cache({k_type, v_type}, 2048, kHeadKv, kHeadDim, 31);
  const AttentionParams p = params_for(kHead, kHeadKv, kHeadDim);
  const std::vector<float> q = make_queries(1, kHead, kHeadDim, 32);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = run_kernel(p, f.cache, q, 1, 2047);  // decode: no split
  omp_set_num_threads(5);
  const std::vector<float> five = run_kernel(p, f.cache, q, 1, 2047);  // decode: keys split 8 ways
  omp_set_num_threads(saved);
  EXPECT_LE(nmse(five, one), kMaxNmseRetiled);
}

// A few queries after a long context: fewer tiles than 2 x threads (keys split) but more than one tile, so
// the partial states merge on several threads (each must read the calling thread's buffers).
TEST_P(AttentionConsistency, SplitKeysOfSeveralTilesMatchOracle) {
  const auto [k_type, v_type] = GetParam();
  const Filled f = fill_cache({k_type, v_type}, 1024, kHeadKv, kHeadDim, 33);
  const AttentionParams p = params_for(kHead, kHeadKv, kHeadDim);
  const int n_tokens = 9;  // 3 tiles of 4 queries x 8 heads on 4 threads: 2 splits per tile
  const std::vector<float> q = q8_round_trip(make_queries(n_tokens, kHead, kHeadDim, 34), kHeadDim);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(4);
  const std::vector<float> out = run_kernel(p, f.cache, q, n_tokens, 1024 - n_tokens);
  omp_set_num_threads(saved);
  std::vector<float> ref(q.size());
  attention_ref(p, f.cache, 0, q.data(), n_tokens, 1024 - n_tokens, ref.data());
  EXPECT_LE(nmse(out, ref), kernel_bound(v_type));
}

INSTANTIATE_TEST_SUITE_P(Representative, AttentionConsistency,
                         testing::Values(Pair{GgmlType::F16, GgmlType::F16}, Pair{GgmlType::Q8_0, GgmlType::Q4_0},
                                         Pair{GgmlType::Q4_0, GgmlType::IQ4_NL}, Pair{GgmlType::BF16, GgmlType::Q5_1}),
                         pair_name);

// stories260K: head_dim 8, 4 KV heads, 8 query heads. llama.cpp refuses to quantize this cache; kvq's rows
// are one 32-value block per token for all four heads.
TEST(Attention, Stories260kShapeQuantized) {
  const Filled f = fill_cache({GgmlType::Q8_0, GgmlType::Q4_0}, 256, 4, 8, 41);
  EXPECT_EQ(f.cache.k_bytes(), 256u * 34u);
  const AttentionParams p = params_for(8, 4, 8);
  const std::vector<float> q = make_queries(256, 8, 8, 42);
  const std::vector<float> out = run_kernel(p, f.cache, q, 256, 0);
  std::vector<float> ref(q.size());
  attention_ref(p, f.cache, 0, q.data(), 256, 0, ref.data());
  EXPECT_LE(nmse(out, ref), kMaxNmseKernel);
}

// Every SIMD target compiled in (and available on this CPU), including the scalar one: each layout choice
// (two tokens per vector or one, head sizes not a multiple of the vector or of 4, multi-tile prefill).
TEST(Attention, EveryCompiledTargetMatchesOracle) {
  const Pair pairs[] = {{GgmlType::Q8_0, GgmlType::Q4_0},  {GgmlType::F16, GgmlType::IQ4_NL},
                        {GgmlType::Q5_1, GgmlType::BF16},  {GgmlType::F32, GgmlType::Q5_0},
                        {GgmlType::Q4_1, GgmlType::F32},   {GgmlType::NL4_H, GgmlType::NL3_H},
                        {GgmlType::NL5_H, GgmlType::Q8_H}, {GgmlType::NL2_H, GgmlType::NL4_H}};
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const auto& [k_type, v_type] : pairs) {
      for (const auto& [head_dim, n_head_kv] :
           {std::pair{6, 3}, std::pair{8, 4}, std::pair{64, 2}, std::pair{128, 1}}) {
        if (head_dim % kHeadGroup != 0 && (is_head_scaled(k_type) || is_head_scaled(v_type))) continue;
        for (int gqa : {1, 2, 8}) {
          const int ctx = 100, n_tokens = 40;  // 40 queries: more than one tile when gqa = 1
          const int n_head = n_head_kv * gqa;
          const Filled f = fill_cache({k_type, v_type}, ctx, n_head_kv, head_dim, uint32_t(head_dim + gqa));
          const AttentionParams p = params_for(n_head, n_head_kv, head_dim);
          const std::vector<float> q = q8_round_trip(make_queries(n_tokens, n_head, head_dim, 61), head_dim);
          const std::vector<float> out = run_kernel(p, f.cache, q, n_tokens, ctx - n_tokens);
          std::vector<float> ref(q.size());
          attention_ref(p, f.cache, 0, q.data(), n_tokens, ctx - n_tokens, ref.data());
          EXPECT_LE(nmse(out, ref), kernel_bound(v_type, target))
              << hwy::TargetName(target) << " " << type_name(k_type) << "/" << type_name(v_type) << " head_dim "
              << head_dim << " gqa " << gqa;
        }
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Decode with raw (off-grid) queries, TinyLlama shape: what the integer scores' query rounding costs, for
// every key type (those that score in f32 stay at kMaxNmseKernel).
TEST(Attention, DecodeQueryRoundingWithinBound) {
  for (GgmlType k_type : kKvCacheTypes) {
    const Filled f = fill_cache({k_type, GgmlType::Q4_0}, 2000, 4, 64, 71);
    const AttentionParams p = params_for(32, 4, 64);
    const std::vector<float> q = make_queries(1, 32, 64, 72);
    const std::vector<float> out = run_kernel(p, f.cache, q, 1, 1999);
    std::vector<float> ref(q.size());
    attention_ref(p, f.cache, 0, q.data(), 1, 1999, ref.data());
    const bool int8 =
        k_type == GgmlType::Q8_0 || k_type == GgmlType::Q4_0 || k_type == GgmlType::IQ4_NL || is_head_scaled(k_type);
    const double err = nmse(out, ref);
    EXPECT_LE(err, (int8 ? kMaxNmseInt8Query : 0.0) + kernel_bound(GgmlType::Q4_0)) << type_name(k_type);
    RecordProperty(std::string("nmse_") + std::string(type_name(k_type)), std::to_string(err));
  }
}

TEST(Attention, NoTokensIsANoOp) {
  const Filled f = fill_cache({GgmlType::F16, GgmlType::F16}, 4, 1, 64, 51);
  std::vector<float> out(64, 7.0f);
  attention(params_for(1, 1, 64), f.cache, 0, nullptr, 0, 4, out.data());
  EXPECT_EQ(out, std::vector<float>(64, 7.0f));
}

}  // namespace
}  // namespace kvq
