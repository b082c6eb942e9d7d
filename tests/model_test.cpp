// End-to-end checks of the forward pass against an independent implementation (llama.cpp fixtures)
// and a golden greedy generation on the real stories260K model.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/model.h"
#include "sample/sampler.h"
#include "test_util.h"

namespace kvq {
namespace {

// Two correct implementations of the same file differ only by rounding and summation order
// (fixtures/README.md): a wrong kernel lands at KLD >= 0.1.
constexpr double kMaxKldFloatWeights = 1e-3;       // f32 / f16 / bf16 weights
constexpr double kMaxKldQuantizedWeights = 5e-3;   // activations are quantized to 8 bits on the fly
constexpr double kMinArgmaxAgreement = 0.98;       // f32 / f16 / bf16 weights
constexpr double kMaxKldInt8QueryRounding = 1e-4;  // the same cache read with 8-bit or f32 queries (NEON: 2.6e-5)
constexpr double kMinArgmaxAgreementStories = 0.995;
// Same KV quantization as the fixture: our KLD to it must be far below its KLD to the f32 cache.
constexpr double kMaxKldFractionOfFixtureGap = 0.25;

using test::Agreement;
using test::compare_logits;
using test::LogitsFixture;

LogitsFixture read_logits_fixture(const std::string& name) {
  return test::read_logits_fixture(test::shared_path("fixtures/logits/" + name));
}

std::vector<float> run_all_logits(const std::string& model_path, const std::vector<int32_t>& tokens, KvTypes kv) {
  auto model = Model::load(model_path);
  EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
  if (!model.ok()) return {};
  Model& m = **model;
  auto cache = m.make_cache(int(tokens.size()), std::vector<KvTypes>(m.config().n_layer, kv));
  EXPECT_TRUE(cache.ok()) << (cache.ok() ? "" : cache.error().message);
  if (!cache.ok()) return {};
  std::vector<float> logits(tokens.size() * size_t(m.config().n_vocab));  // [n_tokens, n_vocab]
  EXPECT_TRUE(m.forward(tokens, 0, *cache, logits.data(), true).ok());
  return logits;
}

class WeightTypeLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(WeightTypeLogits, MatchesReferenceImplementation) {
  const std::string weights = GetParam();
  const LogitsFixture f = read_logits_fixture("logits-synth-mini-" + weights + ".kv-f32-f32.gguf");
  ASSERT_FALSE(f.tokens.empty());
  const auto logits = run_all_logits(test::shared_path("fixtures/models/synth-mini-" + weights + ".gguf"), f.tokens,
                                     {GgmlType::F32, GgmlType::F32});
  ASSERT_EQ(logits.size(), f.logits.size());
  const Agreement a = compare_logits(f.logits.data(), logits.data(), int(f.tokens.size()), f.n_vocab);
  const bool float_weights = weights == "f32" || weights == "f16" || weights == "bf16";
  EXPECT_LE(a.mean_kld, float_weights ? kMaxKldFloatWeights : kMaxKldQuantizedWeights) << weights;
  // Top-token agreement is only meaningful where the weights are not themselves the noise source.
  if (float_weights) {
    EXPECT_GE(a.argmax, kMinArgmaxAgreement) << weights;
  }
  std::printf("synth-mini %-7s KLD %.2e argmax %.1f%%\n", weights.c_str(), a.mean_kld, 100 * a.argmax);
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, WeightTypeLogits,
                         ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl",
                                           "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"));

TEST(Stories260K, LogitsMatchReferenceImplementation) {
  const LogitsFixture f = read_logits_fixture("logits-stories260K.kv-f32-f32.fa0.gguf");
  ASSERT_FALSE(f.tokens.empty());
  const auto logits = run_all_logits(test::shared_path("data/models/stories260K/stories260K.gguf"), f.tokens,
                                     {GgmlType::F32, GgmlType::F32});
  ASSERT_EQ(logits.size(), f.logits.size());
  const Agreement a = compare_logits(f.logits.data(), logits.data(), int(f.tokens.size()), f.n_vocab);
  EXPECT_LE(a.mean_kld, kMaxKldFloatWeights);
  EXPECT_GE(a.argmax, kMinArgmaxAgreementStories);
}

TEST(Stories260K, F16CacheMatchesReference) {
  const LogitsFixture f = read_logits_fixture("logits-stories260K.kv-f16-f16.fa1.gguf");
  ASSERT_FALSE(f.tokens.empty());
  const auto logits = run_all_logits(test::shared_path("data/models/stories260K/stories260K.gguf"), f.tokens,
                                     {GgmlType::F16, GgmlType::F16});
  const Agreement a = compare_logits(f.logits.data(), logits.data(), int(f.tokens.size()), f.n_vocab);
  EXPECT_LE(a.mean_kld, kMaxKldFloatWeights);
  EXPECT_GE(a.argmax, kMinArgmaxAgreementStories);
}

TEST(Stories260K, GreedyGenerationIsGolden) {
  auto model = Model::load(test::shared_path("data/models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  Model& m = **model;
  const std::vector<int> expected =
      test::read_ids_file(test::shared_path("data/models/stories260K/stories260K.greedy256.ids"));
  ASSERT_EQ(expected.size(), 256u);
  auto cache = m.make_cache(257, std::vector<KvTypes>(m.config().n_layer, {GgmlType::F32, GgmlType::F32}));
  ASSERT_TRUE(cache.ok());
  std::vector<float> logits(size_t(m.config().n_vocab));  // [n_vocab]
  int32_t token = 1;                                      // BOS
  for (int pos = 0; pos < 256; ++pos) {
    const int32_t one[1] = {token};
    ASSERT_TRUE(m.forward(one, pos, *cache, logits.data(), false).ok());
    token = argmax(logits.data(), m.config().n_vocab);
    ASSERT_EQ(token, expected[pos]) << "at position " << pos;
  }
}

// Quantized KV caches against llama.cpp with the same K/V types (f32 weights, flash attention).
struct KvCase {
  const char* fixture_types;  // "q8_0-q4_0.fa1"
  GgmlType k, v;
};

class QuantizedCacheLogits : public ::testing::TestWithParam<KvCase> {};

TEST_P(QuantizedCacheLogits, MatchReferenceWithSameQuantization) {
  const KvCase c = GetParam();
  const LogitsFixture f32_cache = read_logits_fixture("logits-synth-mini-f32.kv-f32-f32.gguf");
  const LogitsFixture fixture =
      read_logits_fixture(std::string("logits-synth-mini-f32.kv-") + c.fixture_types + ".gguf");
  ASSERT_FALSE(fixture.tokens.empty());
  const auto logits =
      run_all_logits(test::shared_path("fixtures/models/synth-mini-f32.gguf"), fixture.tokens, {c.k, c.v});
  const int n = int(fixture.tokens.size());
  const Agreement ours = compare_logits(fixture.logits.data(), logits.data(), n, fixture.n_vocab);
  const Agreement gap = compare_logits(f32_cache.logits.data(), fixture.logits.data(), n, fixture.n_vocab);
  const Agreement ours_vs_f32 = compare_logits(f32_cache.logits.data(), logits.data(), n, fixture.n_vocab);
  std::printf("kv %-16s KLD to fixture %.2e (fixture to f32 cache %.2e, ours to f32 cache %.2e)\n", c.fixture_types,
              ours.mean_kld, gap.mean_kld, ours_vs_f32.mean_kld);
  EXPECT_LE(ours.mean_kld, std::max(kMaxKldFractionOfFixtureGap * gap.mean_kld, kMaxKldFloatWeights));
}

INSTANTIATE_TEST_SUITE_P(FixturePairs, QuantizedCacheLogits,
                         ::testing::Values(KvCase{"f16-f16.fa1", GgmlType::F16, GgmlType::F16},
                                           KvCase{"q8_0-q8_0.fa1", GgmlType::Q8_0, GgmlType::Q8_0},
                                           KvCase{"q8_0-q4_0.fa1", GgmlType::Q8_0, GgmlType::Q4_0},
                                           KvCase{"q4_0-q8_0.fa1", GgmlType::Q4_0, GgmlType::Q8_0},
                                           KvCase{"q4_0-q4_0.fa1", GgmlType::Q4_0, GgmlType::Q4_0},
                                           KvCase{"q5_1-q5_0.fa1", GgmlType::Q5_1, GgmlType::Q5_0},
                                           KvCase{"q4_1-iq4_nl.fa1", GgmlType::Q4_1, GgmlType::IQ4_NL},
                                           KvCase{"q8_0-f16.fa0", GgmlType::Q8_0, GgmlType::F16}));

// The finding kvq is built on: keys are more sensitive than values.
TEST(QuantizedCache, KeysAreMoreSensitiveThanValues) {
  const LogitsFixture f = read_logits_fixture("logits-synth-mini-f32.kv-f32-f32.gguf");
  const std::string model = test::shared_path("fixtures/models/synth-mini-f32.gguf");
  const auto k8v4 = run_all_logits(model, f.tokens, {GgmlType::Q8_0, GgmlType::Q4_0});
  const auto k4v8 = run_all_logits(model, f.tokens, {GgmlType::Q4_0, GgmlType::Q8_0});
  const int n = int(f.tokens.size());
  const double kld_k8v4 = compare_logits(f.logits.data(), k8v4.data(), n, f.n_vocab).mean_kld;
  const double kld_k4v8 = compare_logits(f.logits.data(), k4v8.data(), n, f.n_vocab).mean_kld;
  EXPECT_LT(kld_k8v4, kld_k4v8);
}

TEST(Prefill, ChunkedEqualsAllAtOnce) {
  const LogitsFixture f = read_logits_fixture("logits-synth-mini-f32.kv-f32-f32.gguf");
  auto model = Model::load(test::shared_path("fixtures/models/synth-mini-f32.gguf"));
  ASSERT_TRUE(model.ok());
  Model& m = **model;
  const int n_vocab = m.config().n_vocab, n = 64;
  // The last cases keep sinks and a recent window (kv/kv_cache.h): each query of a prefill sees its own window,
  // on every layer (2) or on the first only (3: the other layers attend whole slices). Same types as the second,
  // so all take the same kernel paths (and query rounding) on every target.
  for (int kept : {0, 1, 2, 3}) {
    const KvTypes kv = kept == 0 ? KvTypes{GgmlType::F16, GgmlType::F16} : KvTypes{GgmlType::Q8_0, GgmlType::Q4_0};
    std::vector<KvTypes> types(size_t(m.config().n_layer), kv);
    if (kept >= 2) {
      for (size_t l = 0; l < types.size(); ++l) types[l].kept = kept == 2 || l == 0 ? KvKept{2, 20} : KvKept{};
    }
    std::vector<int32_t> tokens(f.tokens.begin(), f.tokens.begin() + n);
    auto all = m.make_cache(n, types);
    auto chunked = m.make_cache(n, types);
    ASSERT_TRUE(all.ok() && chunked.ok());
    std::vector<float> expected(size_t(n) * n_vocab), got(size_t(n) * n_vocab);  // [n, n_vocab]
    ASSERT_TRUE(m.forward(tokens, 0, *all, expected.data(), true).ok());
    // 40 tokens of prefill, then 7, then one at a time.
    int pos = 0;
    for (int len : {40, 7}) {
      ASSERT_TRUE(
          m.forward(std::span(tokens).subspan(pos, len), pos, *chunked, got.data() + size_t(pos) * n_vocab, true).ok());
      pos += len;
    }
    for (; pos < n; ++pos) {
      ASSERT_TRUE(
          m.forward(std::span(tokens).subspan(pos, 1), pos, *chunked, got.data() + size_t(pos) * n_vocab, true).ok());
    }
    const Agreement a = compare_logits(expected.data(), got.data(), n, n_vocab);
    if (kept >= 2) {
      // The kept cases' prefill runs 4-query slices, which may take the integer K·q (queries rounded to 8 bits:
      // NEON sdot, AVX-512 VNNI) where single queries take f32; synth-mini's flat logits then flip a near-tie.
      EXPECT_LE(a.mean_kld, kMaxKldInt8QueryRounding);
      EXPECT_GE(a.argmax, kMinArgmaxAgreement);
    } else {
      EXPECT_LE(a.mean_kld, 1e-6);
      EXPECT_EQ(a.argmax, 1.0);
    }
  }
}

// Sinks and a recent window on a real model: a window over the whole context kept in f32 is the f32 cache
// (every key read from the kept ring), and a short one in f16 brings q4_0/q4_0 closer to it.
TEST(KeptRanges, WholeWindowIsTheFloatCacheAndShortOnesHelp) {
  const LogitsFixture f = read_logits_fixture("logits-synth-mini-f32.kv-f32-f32.gguf");
  auto model = Model::load(test::shared_path("fixtures/models/synth-mini-f32.gguf"));
  ASSERT_TRUE(model.ok());
  Model& m = **model;
  const int n = int(f.tokens.size()), n_vocab = m.config().n_vocab;
  const auto logits_of = [&](KvTypes kv, int sinks, int recent, GgmlType keep) {
    kv.kept = {sinks, recent, keep};
    auto cache = m.make_cache(n, std::vector<KvTypes>(m.config().n_layer, kv));
    EXPECT_TRUE(cache.ok());
    std::vector<float> logits(size_t(n) * n_vocab);  // [n, n_vocab]
    EXPECT_TRUE(m.forward(f.tokens, 0, *cache, logits.data(), true).ok());
    return logits;
  };
  const KvTypes q4{GgmlType::Q4_0, GgmlType::Q4_0};
  const auto f32_cache = logits_of({GgmlType::F32, GgmlType::F32}, 0, 0, GgmlType::F16);
  const auto whole = logits_of(q4, 0, n, GgmlType::F32);
  EXPECT_LE(compare_logits(f32_cache.data(), whole.data(), n, n_vocab).mean_kld, 1e-9);
  const double plain = compare_logits(f32_cache.data(), logits_of(q4, 0, 0, GgmlType::F16).data(), n, n_vocab).mean_kld;
  const double kept = compare_logits(f32_cache.data(), logits_of(q4, 4, 16, GgmlType::F16).data(), n, n_vocab).mean_kld;
  std::printf("q4_0/q4_0 KLD to the f32 cache: %.3e plain, %.3e with 4 sinks and a window of 16\n", plain, kept);
  EXPECT_LT(kept, 0.8 * plain);
}

TEST(Model, RejectsBadInput) {
  auto missing = Model::load("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/model.gguf"), std::string::npos);
  auto vocab_only = Model::load(test::shared_path("data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
  ASSERT_FALSE(vocab_only.ok());
  auto model = Model::load(test::shared_path("data/models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(model.ok());
  auto cache = (*model)->make_cache(8, std::vector<KvTypes>((*model)->config().n_layer));
  ASSERT_TRUE(cache.ok());
  std::vector<float> logits(size_t((*model)->config().n_vocab));
  const std::vector<int32_t> too_long(9, 1), bad_id{100000};
  EXPECT_FALSE((*model)->forward(too_long, 0, *cache, logits.data(), false).ok());
  EXPECT_FALSE((*model)->forward(bad_id, 0, *cache, logits.data(), false).ok());
}

}  // namespace
}  // namespace kvq
