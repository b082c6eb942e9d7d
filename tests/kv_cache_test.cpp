// KV cache: type and per-layer spec parsing, exact memory figures, where store() puts each row, and the
// quantization error each cache type adds to the f32 rows it is given.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/kv_types.h"
#include "quant/quant.h"
#include "util/half.h"

namespace kvq {
namespace {

// Quantization error of one row type on N(0, 1) data with an outlier channel, as NMSE = |x' - x|^2 / |x|^2.
// Expected: f16 ~ 2^-22 / 3, bf16 ~ 2^-16 / 3; q8_0 step max/127, q5 step ~max/16, q4 step ~max/8 (with
// the outlier channel widening the step of its block); iq4_nl's codebook is finer near zero than q4_0's.
constexpr double kMaxNmseF32 = 0.0;
constexpr double kMaxNmseF16 = 2e-7;
constexpr double kMaxNmseBF16 = 1.2e-5;
constexpr double kMaxNmseQ8 = 1e-4;
constexpr double kMaxNmseQ5 = 4e-3;
constexpr double kMaxNmseQ4 = 1.6e-2;
// nl*_h on Gaussian rows (what rotated heads look like): the MSE of the Lloyd-Max quantizer of a unit
// Gaussian at 2, 3, 4, 5 bits, which the per-head scale search may beat a little (it adapts to each head) but
// must not exceed by more than kNlSlack (int8 levels, f16 scale).
constexpr double kLloydMaxMse[6] = {0, 0, 0.1175, 0.03455, 0.009497, 0.002499};
constexpr double kNlSlack = 1.15, kNlAdaptive = 0.55;

double max_quant_nmse(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return kMaxNmseF32;
    case GgmlType::F16:
      return kMaxNmseF16;
    case GgmlType::BF16:
      return kMaxNmseBF16;
    case GgmlType::Q8_0:
      return kMaxNmseQ8;
    case GgmlType::Q8_H:
      return kMaxNmseQ8;
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
      return kMaxNmseQ5;
    default:
      return kMaxNmseQ4;
  }
}

std::vector<float> random_rows(int n_rows, int row_values, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(n_rows) * row_values);  // [n_rows, row_values]
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i % size_t(row_values) == 3 ? 8.0f : 1.0f);
  return x;
}

TEST(KvTypes, ParsesBitsAndNames) {
  EXPECT_EQ(*parse_kv_type("16"), GgmlType::F16);
  EXPECT_EQ(*parse_kv_type("8"), GgmlType::Q8_0);
  EXPECT_EQ(*parse_kv_type("5"), GgmlType::Q5_0);
  EXPECT_EQ(*parse_kv_type("4"), GgmlType::Q4_0);
  EXPECT_EQ(*parse_kv_type("Q8_0"), GgmlType::Q8_0);
  EXPECT_EQ(*parse_kv_type("IQ4_NL"), GgmlType::IQ4_NL);
  for (GgmlType type : kKvCacheTypes) {
    const Result<GgmlType> parsed = parse_kv_type(type_name(type));
    ASSERT_TRUE(parsed.ok()) << type_name(type);
    EXPECT_EQ(*parsed, type);
    EXPECT_TRUE(is_kv_cache_type(type)) << "quant layer disagrees about " << type_name(type);
  }
}

TEST(KvTypes, RejectsOthersAndListsValidValues) {
  for (const char* bad : {"", "3", "q4_K", "q8_1", "f64", "fp16", "q8"}) {
    const Result<GgmlType> parsed = parse_kv_type(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find("q8_0"), std::string::npos) << parsed.error().message;
    EXPECT_NE(parsed.error().message.find("iq4_nl"), std::string::npos) << parsed.error().message;
  }
}

TEST(KvTypes, ParsesLayerSpecs) {
  const KvTypes defaults{GgmlType::F16, GgmlType::F16};
  const auto layers = parse_kv_layers("0-1:f16/f16,2-21:q8_0/q4_0", 22, defaults);
  ASSERT_TRUE(layers.ok()) << layers.error().message;
  ASSERT_EQ(layers->size(), 22u);
  EXPECT_EQ((*layers)[1], defaults);
  for (int l = 2; l < 22; ++l) EXPECT_EQ((*layers)[size_t(l)], (KvTypes{GgmlType::Q8_0, GgmlType::Q4_0}));

  const auto single = parse_kv_layers("5:8/4, 7 : Q5_1/iq4_nl", 10, defaults);
  ASSERT_TRUE(single.ok()) << single.error().message;
  EXPECT_EQ((*single)[5], (KvTypes{GgmlType::Q8_0, GgmlType::Q4_0}));
  EXPECT_EQ((*single)[7], (KvTypes{GgmlType::Q5_1, GgmlType::IQ4_NL}));
  EXPECT_EQ((*single)[6], defaults);

  const auto later_wins = parse_kv_layers("0-3:q8_0/q8_0,2:f32/bf16", 4, defaults);
  ASSERT_TRUE(later_wins.ok());
  EXPECT_EQ((*later_wins)[2], (KvTypes{GgmlType::F32, GgmlType::BF16}));
  EXPECT_EQ((*later_wins)[3], (KvTypes{GgmlType::Q8_0, GgmlType::Q8_0}));

  const auto empty = parse_kv_layers("", 3, defaults);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::vector<KvTypes>(3, defaults));
}

// "+sN", "+wR", "+keep=TYPE": a range's kept positions; unnamed ones come from the defaults (the flags).
TEST(KvTypes, ParsesKeptRangesPerLayer) {
  const KvTypes defaults{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kKeysValues, {0, 8, GgmlType::F16}};
  const auto layers = parse_kv_layers("0:nl4_h/nl3_h+s1+w16+keep=q8_0,1:q8_0/q4_0+r0+w0,2:q4_0/q4_0+s2", 4, defaults);
  ASSERT_TRUE(layers.ok()) << layers.error().message;
  EXPECT_EQ((*layers)[0],
            (KvTypes{GgmlType::NL4_H, GgmlType::NL3_H, KvRotation::kKeysValues, {1, 16, GgmlType::Q8_0}}));
  EXPECT_EQ((*layers)[1], (KvTypes{GgmlType::Q8_0, GgmlType::Q4_0, KvRotation::kNone, {0, 0, GgmlType::F16}}));
  EXPECT_EQ((*layers)[2], (KvTypes{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kKeysValues, {2, 8, GgmlType::F16}}));
  EXPECT_EQ((*layers)[3], defaults);
  // kv_types_name writes what the parser reads back.
  for (const KvTypes& t : *layers) {
    const auto again = parse_kv_layers("0:" + kv_types_name(t), 1, KvTypes{});
    ASSERT_TRUE(again.ok()) << kv_types_name(t) << ": " << again.error().message;
    EXPECT_EQ(again->front(), t) << kv_types_name(t);
  }
  EXPECT_EQ(kv_types_name((*layers)[0]), "nl4_h/nl3_h+rkv+s1+w16+keep=q8_0");
  for (const char* bad : {"0:q4_0/q4_0+w", "0:q4_0/q4_0+s-1", "0:q4_0/q4_0+wx", "0:q4_0/q4_0+", "0:q4_0/q4_0+keep=q4_K",
                          "0:q4_0/q4_0+x16"}) {
    const auto parsed = parse_kv_layers(bad, 4, defaults);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find(std::string_view(bad).substr(2)), std::string::npos)
        << parsed.error().message;
  }
}

TEST(KvTypes, RejectsBadLayerSpecs) {
  const KvTypes defaults;
  struct Case {
    const char* spec;
    const char* expect;  // part of the message
  };
  for (const Case& c : {Case{"0-22:f16/f16", "outside 0-21"}, Case{"22:q8_0/q4_0", "outside 0-21"},
                        Case{"3-1:f16/f16", "outside"}, Case{"a:f16/f16", "invalid layer range"},
                        Case{"-1:f16/f16", "invalid layer range"}, Case{"0:f16", "expected FIRST[-LAST]"},
                        Case{"0-1", "expected FIRST[-LAST]"}, Case{"0:f16/q4_K", "invalid KV cache type"},
                        Case{"0:f16/f16,", "expected FIRST[-LAST]"}, Case{"0:xx/f16", "invalid KV cache type"}}) {
    const auto layers = parse_kv_layers(c.spec, 22, defaults);
    ASSERT_FALSE(layers.ok()) << c.spec;
    EXPECT_NE(layers.error().message.find(c.expect), std::string::npos) << c.spec << ": " << layers.error().message;
  }
}

TEST(KvCache, TinyLlamaBytesAreExact) {
  const KvCacheShape shape{22, 8192, 4, 64};
  const std::vector<KvTypes> f16(22, KvTypes{GgmlType::F16, GgmlType::F16});
  EXPECT_EQ(KvCache::bytes_per_token(shape, f16), 22528u);
  const std::vector<KvTypes> k8v4(22, KvTypes{GgmlType::Q8_0, GgmlType::Q4_0});
  EXPECT_EQ(KvCache::bytes_per_token(shape, k8v4), 22u * 256u * (34u + 18u) / 32u);

  const auto cache = KvCache::create(shape, k8v4);
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  EXPECT_EQ(cache->k_bytes(), 8192ull * 22 * 256 * 34 / 32);
  EXPECT_EQ(cache->v_bytes(), 8192ull * 22 * 256 * 18 / 32);
  const auto cache16 = KvCache::create(shape, f16);
  ASSERT_TRUE(cache16.ok());
  EXPECT_EQ(cache16->k_bytes() + cache16->v_bytes(), 176ull << 20);  // 176 MiB at 8K (DESIGN.md §2)
}

TEST(KvCache, RowsPadOnlyToTheBlockSize) {
  // stories260K-like rows of 4 heads x 8 = 32 values: no padding; 3 x 6 = 18 values pad to 32 when quantized.
  EXPECT_EQ(KvCache::bytes_per_token({1, 1, 4, 8}, {{GgmlType::Q4_0, GgmlType::Q8_0}}), 18u + 34u);
  EXPECT_EQ(KvCache::bytes_per_token({1, 1, 3, 6}, {{GgmlType::Q4_0, GgmlType::F16}}), 18u + 36u);
  EXPECT_EQ(
      KvCache::bytes_per_token({2, 1, 3, 6}, {{GgmlType::F32, GgmlType::BF16}, {GgmlType::Q5_1, GgmlType::IQ4_NL}}),
      72u + 36u + 24u + 18u);
}

TEST(KvCache, CreateRejectsBadArguments) {
  EXPECT_FALSE(KvCache::create({2, 16, 4, 64}, {KvTypes{}}).ok());
  EXPECT_FALSE(KvCache::create({1, 16, 4, 64}, {KvTypes{GgmlType::Q4_K, GgmlType::F16}}).ok());
  EXPECT_FALSE(KvCache::create({1, 16, 4, 64}, {KvTypes{GgmlType::F16, GgmlType::Q8_1}}).ok());
  EXPECT_FALSE(KvCache::create({1, 0, 4, 64}, {KvTypes{}}).ok());
  EXPECT_FALSE(KvCache::create({1, 16, 0, 64}, {KvTypes{}}).ok());
}

// store() writes row t at position pos + t as quantize_row_ref would (iq4_nl: its no-search variant,
// the cache's quantizer; "_h" types: quantize_head_row_ref), whether rows need padding or not,
// and whether they arrive one by one or together. Centring is off by default: rows are stored as given.
TEST(KvCache, StorePlacesQuantizedRows) {
  for (GgmlType type : kKvCacheTypes) {
    for (const KvCacheShape& shape :
         {KvCacheShape{2, 12, 4, 8}, KvCacheShape{2, 12, 3, 6}, KvCacheShape{2, 12, 2, 64}}) {
      const int row_values = shape.n_head_kv * shape.head_dim;
      const int padded = KvCache::padded_row_values(type, row_values);
      auto cache = KvCache::create(shape, std::vector<KvTypes>(2, KvTypes{type, GgmlType::F32}));
      if (is_head_scaled(type) && shape.head_dim % kHeadGroup != 0) {  // refused, with the reason
        ASSERT_FALSE(cache.ok());
        EXPECT_NE(cache.error().message.find("multiple of 8"), std::string::npos) << cache.error().message;
        continue;
      }
      ASSERT_TRUE(cache.ok());
      const std::vector<float> k = random_rows(12, row_values, 1);
      const std::vector<float> v = random_rows(12, row_values, 2);
      cache->store(1, 0, 5, k.data(), v.data());
      for (int t = 5; t < 12; ++t) cache->store(1, t, 1, &k[size_t(t) * row_values], &v[size_t(t) * row_values]);

      const KvLayerView view = cache->layer(1);
      EXPECT_EQ(view.k_mean, nullptr);
      std::vector<float> staged(size_t(padded), 0.0f);  // [padded] the row as the cache should see it
      std::vector<uint8_t> expected(view.k_row_bytes);
      for (int t = 0; t < 12; ++t) {
        std::copy_n(&k[size_t(t) * row_values], row_values, staged.begin());
        if (type == GgmlType::IQ4_NL) {
          quantize_row_iq4_nl_nosearch_ref(staged.data(), reinterpret_cast<BlockIQ4_NL*>(expected.data()), padded);
        } else if (is_head_scaled(type)) {
          quantize_head_row_ref(type, staged.data(), expected.data(), shape.n_head_kv, shape.head_dim);
        } else {
          quantize_row_ref(type, staged.data(), expected.data(), padded);
        }
        ASSERT_EQ(0, std::memcmp(expected.data(), view.k + size_t(t) * view.k_row_bytes, view.k_row_bytes))
            << type_name(type) << " row " << t << " of " << shape.n_head_kv << "x" << shape.head_dim;
        ASSERT_EQ(0, std::memcmp(&v[size_t(t) * row_values], view.v + size_t(t) * view.v_row_bytes, view.v_row_bytes));
      }
    }
  }
}

// Centring: the store of position 0 sets the mean of its rows; every row (then and later) is stored as
// row - mean; a later store at position 0 replaces the mean. Float sides are never centred.
TEST(KvCache, CentredRowsAreStoredMinusThePromptMean) {
  KvCacheShape shape{1, 16, 2, 32};
  shape.centre_keys = shape.centre_values = true;
  const int row_values = 64;
  auto cache = KvCache::create(shape, {KvTypes{GgmlType::Q8_0, GgmlType::F16}});
  ASSERT_TRUE(cache.ok());
  std::vector<float> k = random_rows(16, row_values, 5);
  for (size_t i = 0; i < k.size(); ++i) k[i] += 3.0f;  // a common offset
  const std::vector<float> v = random_rows(16, row_values, 6);
  cache->store(0, 0, 8, k.data(), v.data());
  cache->store(0, 8, 8, &k[8 * row_values], &v[8 * row_values]);
  const KvLayerView view = cache->layer(0);
  ASSERT_NE(view.k_mean, nullptr);
  EXPECT_EQ(view.v_mean, nullptr);
  std::vector<float> mean(size_t(row_values), 0.0f);
  std::vector<float> row(static_cast<size_t>(row_values));
  for (int t = 0; t < 8; ++t) {
    for (int i = 0; i < row_values; ++i) mean[size_t(i)] += k[size_t(t) * row_values + i] / 8.0f;
  }
  for (int i = 0; i < row_values; ++i) EXPECT_EQ(view.k_mean[i], f32_to_fp16(mean[size_t(i)]));
  std::vector<uint8_t> expected(view.k_row_bytes);
  for (int t = 0; t < 16; ++t) {
    for (int i = 0; i < row_values; ++i) row[size_t(i)] = k[size_t(t) * row_values + i] - fp16_to_f32(view.k_mean[i]);
    quantize_row_ref(GgmlType::Q8_0, row.data(), expected.data(), row_values);
    ASSERT_EQ(0, std::memcmp(expected.data(), view.k + size_t(t) * view.k_row_bytes, view.k_row_bytes)) << t;
  }
  cache->store(0, 0, 1, &k[5 * row_values], v.data());  // a new sequence: its first row is the mean
  for (int i = 0; i < row_values; ++i) EXPECT_EQ(cache->layer(0).k_mean[i], f32_to_fp16(k[size_t(5) * row_values + i]));
}

// The separate half of the accuracy story: what each type loses against the f32 rows it was given
// (attention_test.cpp measures the kernel against the same dequantized values).
TEST(KvCache, QuantizationErrorPerType) {
  const KvCacheShape shape{1, 256, 4, 64};
  const int row_values = 256;
  const std::vector<float> x = random_rows(shape.n_ctx, row_values, 7);
  for (GgmlType type : kKvCacheTypes) {
    if (type_traits(type).type_size != 8 && is_head_scaled(type)) continue;  // nl*_h: Gaussian rows, below
    auto cache = KvCache::create(shape, {KvTypes{type, type}});
    ASSERT_TRUE(cache.ok());
    cache->store(0, 0, shape.n_ctx, x.data(), x.data());
    const KvLayerView view = cache->layer(0);
    std::vector<float> row(static_cast<size_t>(row_values));
    double err = 0.0, ref = 0.0;
    for (int t = 0; t < shape.n_ctx; ++t) {
      dequantize_kv_row_ref(type, view.k + size_t(t) * view.k_row_bytes, row.data(), shape.n_head_kv, shape.head_dim);
      for (int i = 0; i < row_values; ++i) {
        if (view.k_mean != nullptr) row[size_t(i)] += fp16_to_f32(view.k_mean[i]);
        const double e = double(row[size_t(i)]) - double(x[size_t(t) * row_values + i]);
        err += e * e;
        ref += double(x[size_t(t) * row_values + i]) * x[size_t(t) * row_values + i];
      }
    }
    const double nmse = err / ref;
    EXPECT_LE(nmse, max_quant_nmse(type)) << type_name(type);
    RecordProperty(std::string("nmse_") + std::string(type_name(type)), std::to_string(nmse));
    if (type != GgmlType::F32) {
      EXPECT_GT(nmse, max_quant_nmse(type) / 100) << type_name(type) << ": suspiciously exact";
    }
  }
}

// nl*_h on N(0, 1) rows: within [kNlAdaptive, kNlSlack] x the Lloyd-Max MSE of their bit width (a wrong
// level table, scale or packing lands far outside), and every extra bit pays (NMSE falls ~4x per bit).
TEST(KvCache, NonLinearHeadTypesReachTheGaussianBound) {
  const KvCacheShape shape{1, 256, 4, 64};
  const int row_values = 256;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(shape.n_ctx) * row_values);  // [n_ctx, row_values]
  for (float& value : x) value = normal(rng);
  for (GgmlType type : {GgmlType::NL5_H, GgmlType::NL4_H, GgmlType::NL3_H, GgmlType::NL2_H}) {
    std::vector<uint8_t> row(kv_row_bytes(type, shape.n_head_kv, shape.head_dim));
    std::vector<float> back(static_cast<size_t>(row_values));
    double err = 0.0, ref = 0.0;
    for (int t = 0; t < shape.n_ctx; ++t) {
      const float* xt = &x[size_t(t) * row_values];
      quantize_head_row_ref(type, xt, row.data(), shape.n_head_kv, shape.head_dim);
      dequantize_kv_row_ref(type, row.data(), back.data(), shape.n_head_kv, shape.head_dim);
      for (int i = 0; i < row_values; ++i) {
        err += (double(back[size_t(i)]) - xt[i]) * (double(back[size_t(i)]) - xt[i]);
        ref += double(xt[i]) * xt[i];
      }
    }
    const double bound = kLloydMaxMse[head_bits(type)];
    EXPECT_LE(err / ref, kNlSlack * bound) << type_name(type);
    EXPECT_GE(err / ref, kNlAdaptive * bound) << type_name(type);
    RecordProperty(std::string("nmse_") + std::string(type_name(type)), std::to_string(err / ref));
  }
}

// Gemma 3's pattern (5 windowed layers of every 6): windowed layers keep window + max_batch - 1 rows rounded
// up to whole attention chunks, global layers every position; the figures are what create() allocates.
TEST(KvCache, WindowedLayersKeepExactRings) {
  const int n_layer = 12, window = 1024, batch = 512, ctx = 32768;
  std::vector<int> windows(n_layer);
  for (int l = 0; l < n_layer; ++l) windows[size_t(l)] = l % 6 < 5 ? window : 0;
  KvCacheShape shape{n_layer, ctx, 4, 256, windows, batch};
  shape.centre_keys = shape.centre_values = true;                                          // the means count too
  const int ring = (window + batch - 1 + kKvRingAlign - 1) / kKvRingAlign * kKvRingAlign;  // 1536
  EXPECT_EQ(ring, 1536);
  for (int l = 0; l < n_layer; ++l) EXPECT_EQ(shape.rows(l), windows[size_t(l)] ? ring : ctx) << l;
  const std::vector<KvTypes> k8v4(n_layer, {GgmlType::Q8_0, GgmlType::Q4_0});
  const uint64_t row_k = 4 * 256 / 32 * 34, row_v = 4 * 256 / 32 * 18;
  const uint64_t means = uint64_t(n_layer) * 2 * 4 * 256 * 2;  // centring: an f16 row per quantized side and layer
  const uint64_t expected = (10ull * ring + 2ull * ctx) * (row_k + row_v) + means;
  EXPECT_EQ(KvCache::bytes(shape, k8v4), expected);
  EXPECT_EQ(KvCache::key_bytes(shape, k8v4), (10ull * ring + 2ull * ctx) * row_k + means / 2);
  auto cache = KvCache::create(shape, k8v4);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(cache->bytes(), expected);
  // The naive n_ctx x bytes/token figure is ~4.9x this one.
  EXPECT_NEAR(double(KvCache::bytes_per_token(shape, k8v4) * ctx) / double(expected), 4.9, 0.1);
  // A short context needs no ring: every layer holds n_ctx rows.
  KvCacheShape short_shape{n_layer, 1000, 4, 256, windows, batch};
  short_shape.centre_keys = short_shape.centre_values = true;
  EXPECT_EQ(KvCache::bytes(short_shape, k8v4), KvCache::bytes_per_token(short_shape, k8v4) * 1000 + means);
  // A query reads at most its window on windowed layers.
  EXPECT_EQ(KvCache::bytes_attended(shape, k8v4, 8192), (10ull * window + 2ull * 8192) * (row_k + row_v));
}

TEST(KvCache, RingStoreWrapsAndKeepsTheWindow) {
  const int window = 70, batch = 16, ctx = 1000, row = 2 * 8;
  const KvCacheShape shape{1, ctx, 2, 8, {window}, batch};
  ASSERT_EQ(shape.rows(0), 128);
  auto cache = KvCache::create(shape, {{GgmlType::F32, GgmlType::F32}});
  ASSERT_TRUE(cache.ok());
  std::vector<float> k(size_t(ctx) * row), v(size_t(ctx) * row);
  for (size_t i = 0; i < k.size(); ++i) k[i] = float(i), v[i] = -float(i);
  for (int pos = 0; pos < ctx; pos += batch) {
    const int n = std::min(batch, ctx - pos);
    cache->store(0, pos, n, k.data() + size_t(pos) * row, v.data() + size_t(pos) * row);
  }
  const KvLayerView view = cache->layer(0);
  EXPECT_EQ(view.n_rows, 128);
  EXPECT_EQ(view.window, window);
  // The last 128 positions are in row position % 128.
  for (int pos = ctx - 128; pos < ctx; ++pos) {
    const auto* krow = reinterpret_cast<const float*>(view.k + size_t(pos % 128) * view.k_row_bytes);
    const auto* vrow = reinterpret_cast<const float*>(view.v + size_t(pos % 128) * view.v_row_bytes);
    EXPECT_EQ(krow[0], float(pos * row)) << pos;
    EXPECT_EQ(vrow[row - 1], -float(pos * row + row - 1)) << pos;
  }
}

TEST(KvCache, RejectsBadWindows) {
  EXPECT_FALSE(KvCache::create({2, 16, 4, 64, {8}}, std::vector<KvTypes>(2)).ok());
  EXPECT_FALSE(KvCache::create({1, 16, 4, 64, {-1}}, std::vector<KvTypes>(1)).ok());
  EXPECT_FALSE(KvCache::create({1, 16, 4, 64, {8}, 0}, std::vector<KvTypes>(1)).ok());
}

// Sinks and a recent window (kv_cache.h): a quantized side keeps N + R + kKvRecentSlice - 1 rows of the keep
// type beside its own; a float side keeps none. Every figure counts them exactly.
TEST(KvCache, KeptRowsAreCountedExactly) {
  const int ctx = 4096, n_layer = 3, sinks = 4, recent = 64;
  const KvCacheShape shape{n_layer, ctx, 4, 64};
  const KvKept keep{sinks, recent};
  const int kept_rows = sinks + recent + kKvRecentSlice - 1;
  EXPECT_EQ(kept_sink_rows(keep, ctx) + kept_recent_rows(keep, ctx), kept_rows);
  std::vector<KvTypes> types = {{GgmlType::Q8_0, GgmlType::Q4_0, KvRotation::kNone, keep},
                                {GgmlType::F16, GgmlType::Q4_0, KvRotation::kNone, keep},
                                {GgmlType::F16, GgmlType::F16, KvRotation::kNone, keep}};
  const uint64_t row_q8 = 4 * 64 / 32 * 34, row_q4 = 4 * 64 / 32 * 18, row_f16 = 4 * 64 * 2;
  const uint64_t own = uint64_t(ctx) * (row_q8 + row_q4 + row_f16 + row_q4 + 2 * row_f16);
  const uint64_t kept = uint64_t(kept_rows) * 3 * row_f16;  // three quantized sides
  EXPECT_EQ(KvCache::bytes(shape, types), own + kept);
  auto cache = KvCache::create(shape, types);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(cache->bytes(), own + kept);
  EXPECT_TRUE(cache->kept(0).any() && cache->kept(1).any());
  EXPECT_FALSE(cache->kept(2).any());  // nothing quantized: nothing to keep
  EXPECT_EQ(cache->bytes_holding(ctx), own + kept);
  EXPECT_EQ(cache->bytes_holding(2), 2 * (own / ctx) + 2 * 2 * 3 * row_f16);  // 2 sink rows + 2 ring rows
  // A query at 4095 reads sinks and its window from the kept rows, the rest from the layer's own.
  const uint64_t kept_read = uint64_t(sinks + recent);
  EXPECT_EQ(KvCache::bytes_attended(shape, types, ctx),
            (ctx - kept_read) * (row_q8 + 2 * row_q4) + kept_read * 3 * row_f16 + uint64_t(ctx) * 3 * row_f16);
  // Rewinding is exact while the ring still holds the window before the rewind point.
  const int ring = kept_recent_rows(keep, ctx);
  EXPECT_TRUE(cache->can_rewind(1000, 1000 - (ring - recent)));
  EXPECT_FALSE(cache->can_rewind(1000, 1000 - (ring - recent) - 1));
  // Kept in q8_0 instead: the same rows at q8_0's size.
  for (KvTypes& t : types) t.kept.type = GgmlType::Q8_0;
  EXPECT_EQ(KvCache::bytes(shape, types), own + uint64_t(kept_rows) * 3 * row_q8);
  // A short context caps both stores at n_ctx rows.
  const KvKept long_keep{20, 30};
  EXPECT_EQ(kept_sink_rows(long_keep, 10), 10);
  EXPECT_EQ(kept_recent_rows(long_keep, 10), 10);
  auto tiny = KvCache::create({1, 10, 4, 64}, {{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kNone, long_keep}});
  ASSERT_TRUE(tiny.ok());
  EXPECT_TRUE(tiny->can_rewind(10, 0));  // the ring is the whole context
}

// Each layer keeps its own positions (a per-layer spec's "+s1+w16+keep=q8_0"): its stores, views and bytes.
TEST(KvCache, KeptRangesArePerLayer) {
  const int ctx = 512;
  const KvCacheShape shape{3, ctx, 4, 64};
  const std::vector<KvTypes> types = {{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kNone, {1, 16, GgmlType::Q8_0}},
                                      {GgmlType::Q4_0, GgmlType::Q4_0},
                                      {GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kNone, {0, 8}}};
  const uint64_t row_q8 = 4 * 64 / 32 * 34, row_q4 = 4 * 64 / 32 * 18, row_f16 = 4 * 64 * 2;
  const uint64_t own = uint64_t(ctx) * 3 * 2 * row_q4;
  const uint64_t kept = 2 * ((1 + 16 + kKvRecentSlice - 1) * row_q8 + (8 + kKvRecentSlice - 1) * row_f16);
  EXPECT_EQ(KvCache::bytes(shape, types), own + kept);
  EXPECT_EQ(KvCache::key_bytes(shape, types) + KvCache::value_bytes(shape, types), own + kept);
  EXPECT_EQ(KvCache::side_bytes(shape, 0, GgmlType::Q4_0, KvSide::kKey, types[0].kept),
            ctx * row_q4 + (1 + 16 + kKvRecentSlice - 1) * row_q8);
  auto cache = KvCache::create(shape, types);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(cache->bytes(), own + kept);
  const KvKeptViews first = cache->kept(0), middle = cache->kept(1), last = cache->kept(2);
  EXPECT_EQ(first.sinks, 1);
  EXPECT_EQ(first.recent, 16);
  EXPECT_EQ(first.ring, 16 + kKvRecentSlice - 1);
  EXPECT_EQ(first.window.k_type, GgmlType::Q8_0);
  EXPECT_FALSE(middle.any());
  EXPECT_EQ(last.sinks, 0);
  EXPECT_EQ(last.recent, 8);
  EXPECT_EQ(last.window.v_type, GgmlType::F16);
  // Rewinding is limited by the smallest ring's slack, here layer 2's (kKvRecentSlice - 1 rows).
  EXPECT_TRUE(cache->can_rewind(100, 100 - (kKvRecentSlice - 1)));
  EXPECT_FALSE(cache->can_rewind(100, 100 - kKvRecentSlice));
}

TEST(KvCache, KeptRowsHoldWhatWasStored) {
  const int ctx = 200, row = 2 * 32, sinks = 3, recent = 20;
  const KvCacheShape shape{1, ctx, 2, 32};
  const std::vector<KvTypes> types = {{GgmlType::Q4_0, GgmlType::F32, KvRotation::kNone, {sinks, recent}}};
  auto cache = KvCache::create(shape, types);
  ASSERT_TRUE(cache.ok());
  std::vector<float> k(size_t(ctx) * row), v(size_t(ctx) * row);
  for (size_t i = 0; i < k.size(); ++i) k[i] = float(i % 1000) / 64.0f, v[i] = -float(i);  // f16-exact keys
  for (int pos = 0; pos < ctx; pos += 37) {  // stores longer than the ring
    const int n = std::min(37, ctx - pos);
    cache->store(0, pos, n, k.data() + size_t(pos) * row, v.data() + size_t(pos) * row);
  }
  const KvKeptViews kept = cache->kept(0);
  ASSERT_TRUE(kept.any());
  EXPECT_EQ(kept.sinks, sinks);
  EXPECT_EQ(kept.recent, recent);
  EXPECT_EQ(kept.sink.k_type, GgmlType::F16);
  EXPECT_EQ(kept.sink.v_type, GgmlType::F32);  // the float side reads its own rows
  EXPECT_EQ(kept.sink.v, cache->layer(0).v);
  const auto key_at = [&](const KvLayerView& view, int row_index, int i) {
    return fp16_to_f32(reinterpret_cast<const uint16_t*>(view.k + size_t(row_index) * view.k_row_bytes)[i]);
  };
  for (int pos = 0; pos < sinks; ++pos) EXPECT_EQ(key_at(kept.sink, pos, 5), k[size_t(pos) * row + 5]) << pos;
  const int ring = kept.ring;
  for (int pos = ctx - ring; pos < ctx; ++pos) {
    EXPECT_EQ(key_at(kept.window, pos % ring, 7), k[size_t(pos) * row + 7]) << pos;
  }
  // copy_from carries the kept rows.
  auto copy = KvCache::create(shape, types);
  ASSERT_TRUE(copy.ok() && copy->copy_from(*cache));
  EXPECT_EQ(key_at(copy->kept(0).window, (ctx - 1) % ring, 7), k[size_t(ctx - 1) * row + 7]);
  EXPECT_EQ(key_at(copy->kept(0).sink, 2, 9), k[size_t(2) * row + 9]);
}

TEST(KvCache, RejectsBadKeptRanges) {
  const KvCacheShape shape{1, 16, 4, 64};
  EXPECT_FALSE(KvCache::create(shape, {{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kNone, {-1, 0}}}).ok());
  const auto bad =
      KvCache::create(shape, {{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kNone, {0, 4, GgmlType::Q4_K}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("q4_K"), std::string::npos) << bad.error().message;
  const KvCacheShape odd{1, 16, 2, 12};  // head_dim 12: no head-scaled type
  EXPECT_FALSE(
      KvCache::create(odd, {{GgmlType::Q4_0, GgmlType::Q4_0, KvRotation::kNone, {0, 4, GgmlType::NL5_H}}}).ok());
}

}  // namespace
}  // namespace kvq
