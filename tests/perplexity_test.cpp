// kvq perplexity: the method on a fake model (exact expectations), the KL-divergence baseline
// format, and the real code path against llama.cpp's numbers (fixtures/perplexity).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "eval/kld.h"
#include "eval/model_eval.h"
#include "eval/perplexity.h"
#include "test_util.h"

namespace kvq::eval {
namespace {

// Two implementations of the same method on the same file (fixtures/README.md): f32/f16 caches
// land within a fraction of a percent; quantized caches differ more (flash attention, rounding).
constexpr double kPplTolFloatCache = 0.005;
constexpr double kPplTolQuantCache = 0.02;
// Under ASan only a few chunks run: their mean NLL is that of a text sample, not of the fixture's
// whole text (synth-mini's random weights make samples vary by ~0.5 nat); a broken forward pass
// is still off by more.
constexpr double kNllTolSanitizedSample = 0.75;
constexpr int kSanitizedChunks = 3;
// A run against its own base: only the uint16 storage of the base remains (≈2e-8, kld.h).
constexpr double kMaxSelfKld = 1e-6;
constexpr double kMaxSelfLnPplRatio = 1e-6;
// f16 instead of f32 keys/values: rounding at 2^-11 relative moves no perplexity digit that matters.
constexpr double kMaxKldF16VsF32 = 1e-4;
constexpr double kPplTolF16VsF32 = 0.002;

// ---- The method on a fake model -------------------------------------------------------------

// Logits that depend only on the token at a position: a "bigram model" with known probabilities.
Status bigram_logits(std::span<const int32_t> tokens, float* logits, int n_vocab, float noise, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  for (size_t i = 0; i < tokens.size(); ++i) {
    for (int v = 0; v < n_vocab; ++v) {
      logits[i * size_t(n_vocab) + size_t(v)] = float((tokens[i] * 7 + v * 3) % n_vocab) * 0.05f + noise * gauss(rng);
    }
  }
  return Status::Ok();
}

TEST(LogSoftmax, NormalisedAndShiftInvariant) {
  const float logits[4] = {1000.0f, 1001.0f, 999.0f, -50.0f};  // naive exp would overflow
  double out[4];
  log_softmax(logits, 4, out);
  double sum = 0;
  for (double lp : out) sum += std::exp(lp);
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_NEAR(out[1] - out[0], 1.0, 1e-9);
  EXPECT_NEAR(out[1], -std::log(1 + std::exp(-1.0) + std::exp(-2.0)), 1e-9);
}

TEST(NllStats, MatchesLlamaCppFormula) {
  NllStats s;
  const double values[] = {1.0, 2.0, 4.0, 3.0};
  for (double v : values) s.add(v);
  EXPECT_DOUBLE_EQ(s.mean(), 2.5);
  EXPECT_NEAR(s.ppl(), std::exp(2.5), 1e-12);
  // var = E[x^2] - E[x]^2 = 7.5 - 6.25; stderr(PPL) = sqrt(var / (n - 1)) * PPL
  EXPECT_NEAR(s.ppl_stderr(), std::sqrt(1.25 / 3.0) * std::exp(2.5), 1e-9);
}

TEST(PlanChunks, FixtureShapes) {
  // 28,770 tokens (fixtures/tokenize/tok-stories260K-ts60k.ids) -> the fixture's chunk counts.
  EXPECT_EQ(plan_chunks(28770, 128, 0)->n_chunks, 224);
  EXPECT_EQ(plan_chunks(28770, 256, 0)->n_chunks, 112);
  EXPECT_EQ(plan_chunks(28770, 512, 0)->n_chunks, 56);
  EXPECT_EQ(plan_chunks(28770, 512, 10)->n_chunks, 10);
  EXPECT_EQ(plan_chunks(28770, 512, 0)->scored_per_chunk(), 255);
  EXPECT_FALSE(plan_chunks(1000, 512, 0).ok());  // < 2 * n_ctx, as llama.cpp refuses
  EXPECT_FALSE(plan_chunks(1000, 2, 0).ok());
}

TEST(RunPerplexity, BosPerChunkTargetsAndUniformPpl) {
  constexpr int kVocab = 16, kCtx = 8;
  std::vector<int32_t> tokens(50);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(2 + i % 13);
  std::vector<std::vector<int32_t>> seen;
  PerplexityRun run;
  run.tokens = tokens;
  run.plan = *plan_chunks(tokens.size(), kCtx, 0);
  run.n_vocab = kVocab;
  run.bos = 1;
  run.evaluate = [&](std::span<const int32_t> chunk, float* logits) {
    seen.emplace_back(chunk.begin(), chunk.end());
    std::fill(logits, logits + chunk.size() * kVocab, 0.5f);  // uniform: PPL = n_vocab
    return Status::Ok();
  };
  std::vector<std::pair<int, int32_t>> scored;  // (pos, target)
  run.observe = [&](const ScoredPosition& p) { scored.emplace_back(p.pos, p.target); };
  auto r = run_perplexity(run);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(seen.size(), 6u);  // 50 / 8
  for (size_t c = 0; c < seen.size(); ++c) {
    EXPECT_EQ(seen[c][0], 1) << "chunk " << c << " starts with BOS";
    EXPECT_EQ(seen[c][1], tokens[c * kCtx + 1]);
  }
  ASSERT_EQ(scored.size(), 6u * 3u);  // positions 4, 5, 6 of each chunk
  EXPECT_EQ(scored[0].first, 4);
  EXPECT_EQ(scored[0].second, tokens[5]);
  EXPECT_EQ(scored[2].first, 6);
  EXPECT_EQ(scored[2].second, tokens[7]);
  EXPECT_EQ(r->nll.count, 18);
  EXPECT_NEAR(r->ppl(), double(kVocab), 1e-9);
  EXPECT_NEAR(r->ppl_stderr(), 0.0, 1e-12);
  EXPECT_FALSE(r->interrupted);
}

TEST(RunPerplexity, StopsAfterTheCurrentChunk) {
  std::vector<int32_t> tokens(100, 3);
  std::atomic<bool> stop{false};
  int calls = 0;
  PerplexityRun run;
  run.tokens = tokens;
  run.plan = *plan_chunks(tokens.size(), 10, 0);
  run.n_vocab = 8;
  run.evaluate = [&](std::span<const int32_t> chunk, float* logits) {
    if (++calls == 3) stop = true;  // Ctrl-C arrives during chunk 3
    return bigram_logits(chunk, logits, 8, 0.0f, 1);
  };
  run.stop = &stop;
  auto r = run_perplexity(run);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->interrupted);
  EXPECT_EQ(r->n_chunks, 3);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r->nll.count, 3 * 4);
}

TEST(RunPerplexity, EvaluatorErrorNamesTheChunk) {
  std::vector<int32_t> tokens(40, 3);
  PerplexityRun run;
  run.tokens = tokens;
  run.plan = *plan_chunks(tokens.size(), 10, 0);
  run.n_vocab = 8;
  int calls = 0;
  run.evaluate = [&](std::span<const int32_t>, float*) -> Status {
    return ++calls == 2 ? Status(make_error("boom")) : Status::Ok();
  };
  auto r = run_perplexity(run);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("chunk 2 of 4"), std::string::npos) << r.error().message;
}

// ---- KL-divergence ---------------------------------------------------------------------------

struct FakeRun {
  std::vector<int32_t> tokens;
  ChunkPlan plan;
  KldIdentity identity;
};

FakeRun fake_run(int n_vocab) {
  FakeRun f;
  f.tokens.resize(400);
  for (size_t i = 0; i < f.tokens.size(); ++i) f.tokens[i] = int32_t((i * 31 + 7) % n_vocab);
  f.plan = *plan_chunks(f.tokens.size(), 32, 0);
  f.identity.n_vocab = n_vocab;
  f.identity.n_ctx = 32;
  f.identity.n_chunks = f.plan.n_chunks;
  f.identity.model_bytes = 1234;
  f.identity.model_hash = 0xabc;
  f.identity.model_path = "fake.gguf";
  fingerprint_text("some text", f.identity);
  return f;
}

Result<PerplexityResult> run_fake(const FakeRun& f, int n_vocab, float noise, uint32_t seed, PositionObserver observe) {
  PerplexityRun run;
  run.tokens = f.tokens;
  run.plan = f.plan;
  run.n_vocab = n_vocab;
  run.bos = 1;
  uint32_t chunk_seed = seed;
  run.evaluate = [&](std::span<const int32_t> chunk, float* logits) {
    return bigram_logits(chunk, logits, n_vocab, noise, chunk_seed++);
  };
  run.observe = std::move(observe);
  return run_perplexity(run);
}

TEST(Kld, SelfIsZeroThroughTheFile) {
  constexpr int kVocab = 300;  // odd-sized rows are padded on disk
  const FakeRun f = fake_run(kVocab);
  KldBase base(f.identity);
  auto r0 = run_fake(f, kVocab, 0.5f, 7, [&](const ScoredPosition& p) { base.append(p); });
  ASSERT_TRUE(r0.ok());
  const std::string path = test::temp_dir() + "/self.kld";
  ASSERT_TRUE(base.save(path).ok());
  auto loaded = KldBase::load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->check_matches(f.identity).ok());
  ASSERT_EQ(loaded->size(), size_t(f.plan.scored_total()));
  KldAccumulator acc(*loaded);
  auto r1 = run_fake(f, kVocab, 0.5f, 7, [&](const ScoredPosition& p) { acc.add(p); });
  ASSERT_TRUE(r1.ok());
  const KldStats s = acc.finish();
  EXPECT_EQ(s.n, f.plan.scored_total());
  EXPECT_LT(s.kld_mean, kMaxSelfKld);
  EXPECT_LT(s.kld_max, 10 * kMaxSelfKld);
  EXPECT_LT(std::fabs(s.ln_ppl_ratio), kMaxSelfLnPplRatio);
  EXPECT_LT(s.rms_dp, 1e-6);
  EXPECT_DOUBLE_EQ(s.top1_pct, 100.0);
}

TEST(Kld, MatchesExactComputationForAPerturbedRun) {
  constexpr int kVocab = 64;
  const FakeRun f = fake_run(kVocab);
  KldBase base(f.identity);
  std::vector<std::vector<double>> base_lp, other_lp;
  std::vector<int32_t> targets;
  ASSERT_TRUE(run_fake(f, kVocab, 0.3f, 11, [&](const ScoredPosition& p) {
                base.append(p);
                base_lp.emplace_back(p.log_probs.begin(), p.log_probs.end());
                targets.push_back(p.target);
              }).ok());
  KldAccumulator acc(base);
  ASSERT_TRUE(run_fake(f, kVocab, 0.3f, 99,
                       [&](const ScoredPosition& p) {  // other noise
                         acc.add(p);
                         other_lp.emplace_back(p.log_probs.begin(), p.log_probs.end());
                       })
                  .ok());
  const KldStats s = acc.finish();
  double kld = 0, dnll = 0;
  for (size_t i = 0; i < base_lp.size(); ++i) {
    for (int v = 0; v < kVocab; ++v) kld += std::exp(base_lp[i][v]) * (base_lp[i][v] - other_lp[i][v]);
    dnll += base_lp[i][size_t(targets[i])] - other_lp[i][size_t(targets[i])];
  }
  kld /= double(base_lp.size());
  dnll /= double(base_lp.size());
  EXPECT_GT(s.kld_mean, 1e-3);               // the perturbation is visible...
  EXPECT_NEAR(s.kld_mean, kld, 1e-3 * kld);  // ...and measured to the storage's precision
  EXPECT_NEAR(s.ln_ppl_ratio, dnll, 1e-6);
  EXPECT_GT(s.kld_stderr, 0.0);
  EXPECT_LE(s.kld_median, s.kld_p99);
  EXPECT_LE(s.kld_p99, s.kld_max);
  EXPECT_LT(s.top1_pct, 100.0);
}

TEST(Kld, BaseIsRefusedForAnotherRun) {
  const FakeRun f = fake_run(32);
  KldBase base(f.identity);
  auto mismatch = [&](auto change) {
    KldIdentity other = f.identity;
    change(other);
    return base.check_matches(other);
  };
  EXPECT_TRUE(base.check_matches(f.identity).ok());
  KldIdentity moved = f.identity;
  moved.model_path = "elsewhere/fake.gguf";  // a copied model still matches
  EXPECT_TRUE(base.check_matches(moved).ok());
  EXPECT_FALSE(mismatch([](KldIdentity& i) { i.model_hash ^= 1; }).ok());
  EXPECT_FALSE(mismatch([](KldIdentity& i) { i.model_bytes += 1; }).ok());
  EXPECT_FALSE(mismatch([](KldIdentity& i) { fingerprint_text("other text", i); }).ok());
  EXPECT_FALSE(mismatch([](KldIdentity& i) { i.n_ctx *= 2; }).ok());
  EXPECT_FALSE(mismatch([](KldIdentity& i) { i.n_chunks -= 1; }).ok());
  const Status st = mismatch([](KldIdentity& i) { i.n_ctx = 64; });
  EXPECT_NE(st.message().find("-c 32"), std::string::npos) << st.message();
}

TEST(Kld, CorruptFilesAreErrors) {
  const FakeRun f = fake_run(40);
  KldBase base(f.identity);
  ASSERT_TRUE(run_fake(f, 40, 0.1f, 3, [&](const ScoredPosition& p) { base.append(p); }).ok());
  const std::string path = test::temp_dir() + "/corrupt.kld";
  ASSERT_TRUE(base.save(path).ok());
  const std::string good = test::read_text_file(path);
  auto write = [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return KldBase::load(path);
  };
  EXPECT_TRUE(write(good).ok());
  EXPECT_FALSE(write(good.substr(0, good.size() - 1)).ok());
  EXPECT_FALSE(write(good + "x").ok());
  EXPECT_FALSE(write(good.substr(0, 30)).ok());
  EXPECT_FALSE(write("not a base file at all").ok());
  std::string bad_version = good;
  bad_version[8] = 9;
  EXPECT_FALSE(write(bad_version).ok());
  EXPECT_FALSE(KldBase::load(test::temp_dir() + "/missing.kld").ok());
}

// ---- The real code path against llama.cpp ----------------------------------------------------

std::string text_60k() {
  return test::read_text_file(test::shared_path("data/text/tinystories_val.txt")).substr(0, 60000);
}

std::string model_path(const std::string& name) {
  if (name == "stories260K.gguf") return test::shared_path("data/models/stories260K/" + name);
  return test::shared_path("fixtures/models/" + name);
}

struct ModelRun {
  std::unique_ptr<Model> model;
  EvalText text;
};

ModelRun load(const std::string& name) {
  ModelRun m;
  auto model = Model::load(model_path(name));
  EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
  if (!model.ok()) return m;
  m.model = std::move(*model);
  auto tokenizer = Tokenizer::from_gguf(m.model->file());
  EXPECT_TRUE(tokenizer.ok());
  if (tokenizer.ok()) m.text = tokenize_eval_text(*tokenizer, text_60k());
  return m;
}

Result<ModelPerplexityResult> run_model(ModelRun& m, int n_ctx, KvTypes kv, int chunks, KldBase* record = nullptr,
                                        const KldBase* compare = nullptr) {
  auto cache = m.model->make_cache(n_ctx, std::vector<KvTypes>(size_t(m.model->config().n_layer), kv));
  if (!cache) return cache.error();
  ModelPerplexityOptions options;
  options.max_chunks = chunks;
  options.record_base = record;
  options.compare_base = compare;
  return model_perplexity(*m.model, *cache, m.text, options);
}

KldIdentity identity_for(ModelRun& m, const std::string& name, const ModelPerplexityResult& r) {
  KldIdentity id;
  EXPECT_TRUE(fingerprint_model(model_path(name), id).ok());
  fingerprint_text(text_60k(), id);
  id.n_vocab = m.model->config().n_vocab;
  id.n_ctx = r.plan.n_ctx;
  id.n_chunks = r.plan.n_chunks;
  return id;
}

class ReferenceRow : public ::testing::TestWithParam<int> {};

TEST_P(ReferenceRow, MatchesLlamaCpp) {
  const auto reference =
      nlohmann::json::parse(test::read_text_file(test::shared_path("fixtures/perplexity/perplexity-reference.json")));
  const auto& row = reference.at("rows").at(size_t(GetParam()));
  const std::string name = row.at("model");
  const int n_ctx = row.at("n_ctx");
  const KvTypes kv{*parse_kv_type(row.at("type_k").get<std::string>()),
                   *parse_kv_type(row.at("type_v").get<std::string>())};
  const bool float_cache = !type_traits(kv.k).quantized && !type_traits(kv.v).quantized;
  SCOPED_TRACE(fmt::format("{} n_ctx {} {}", name, n_ctx, kv_types_name(kv)));

  ModelRun m = load(name);
  ASSERT_TRUE(m.model);
  const int chunks = test::sanitized() ? kSanitizedChunks : 0;
  auto r = run_model(m, n_ctx, kv, chunks);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double ppl = r->ppl.ppl();
  if (test::sanitized()) {
    EXPECT_EQ(r->ppl.n_chunks, kSanitizedChunks);
    EXPECT_NEAR(r->ppl.nll.mean(), std::log(row.at("ppl").get<double>()), kNllTolSanitizedSample);
    return;
  }
  EXPECT_EQ(r->plan.n_chunks, row.at("n_chunks").get<int>());
  const double tol = float_cache ? kPplTolFloatCache : kPplTolQuantCache;
  EXPECT_NEAR(ppl, row.at("ppl").get<double>(), tol * row.at("ppl").get<double>());
  // The error estimate is the same formula over nearly the same NLL values.
  EXPECT_NEAR(r->ppl.ppl_stderr(), row.at("ppl_stderr").get<double>(), 0.05 * row.at("ppl_stderr").get<double>());
  std::printf("  %s n_ctx %d %s: PPL %.4f ± %.5f (llama.cpp %.4f), %.0f tok/s\n", name.c_str(), n_ctx,
              kv_types_name(kv).c_str(), ppl, r->ppl.ppl_stderr(), row.at("ppl").get<double>(),
              r->ppl.tokens_per_second);
}

INSTANTIATE_TEST_SUITE_P(Fixture, ReferenceRow, ::testing::Range(0, 8));

TEST(ModelKld, SelfRunThroughTheFileIsZero) {
  ModelRun m = load("stories260K.gguf");
  ASSERT_TRUE(m.model);
  const int chunks = test::sanitized() ? kSanitizedChunks : 40;
  const KvTypes f16{GgmlType::F16, GgmlType::F16};
  auto plan = plan_chunks(m.text.tokens.size(), 128, chunks);
  ASSERT_TRUE(plan.ok());
  KldIdentity id;
  ASSERT_TRUE(fingerprint_model(model_path("stories260K.gguf"), id).ok());
  fingerprint_text(text_60k(), id);
  id.n_vocab = m.model->config().n_vocab;
  id.n_ctx = 128;
  id.n_chunks = plan->n_chunks;
  KldBase base(id);
  auto r0 = run_model(m, 128, f16, chunks, &base);
  ASSERT_TRUE(r0.ok()) << r0.error().message;
  const std::string path = test::temp_dir() + "/stories.kld";
  ASSERT_TRUE(base.save(path).ok());
  auto loaded = KldBase::load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->check_matches(identity_for(m, "stories260K.gguf", *r0)).ok());
  auto r1 = run_model(m, 128, f16, chunks, nullptr, &*loaded);
  ASSERT_TRUE(r1.ok()) << r1.error().message;
  ASSERT_TRUE(r1->kld.has_value());
  EXPECT_LT(r1->kld->kld_mean, kMaxSelfKld);
  EXPECT_LT(std::fabs(r1->kld->ln_ppl_ratio), kMaxSelfLnPplRatio);
  EXPECT_DOUBLE_EQ(r1->kld->top1_pct, 100.0);
  EXPECT_DOUBLE_EQ(r1->ppl.ppl(), r0->ppl.ppl());  // the forward pass is deterministic
}

TEST(ModelKld, F16CacheMatchesF32Cache) {
  ModelRun m = load("stories260K.gguf");
  ASSERT_TRUE(m.model);
  const int chunks = test::sanitized() ? kSanitizedChunks : 40;
  auto plan = plan_chunks(m.text.tokens.size(), 256, chunks);
  ASSERT_TRUE(plan.ok());
  KldIdentity id;
  id.n_vocab = m.model->config().n_vocab;
  id.n_ctx = 256;
  id.n_chunks = plan->n_chunks;
  KldBase base(id);  // in memory: f32 cache as the baseline
  auto f32 = run_model(m, 256, {GgmlType::F32, GgmlType::F32}, chunks, &base);
  ASSERT_TRUE(f32.ok()) << f32.error().message;
  auto f16 = run_model(m, 256, {GgmlType::F16, GgmlType::F16}, chunks, nullptr, &base);
  ASSERT_TRUE(f16.ok()) << f16.error().message;
  EXPECT_NEAR(f16->ppl.ppl(), f32->ppl.ppl(), kPplTolF16VsF32 * f32->ppl.ppl());
  EXPECT_LT(f16->kld->kld_mean, kMaxKldF16VsF32);
  EXPECT_GT(f16->kld->top1_pct, 99.0);
  // ...while a 4-bit cache is measurably worse than f16: the KLD sees the difference.
  auto q4 = run_model(m, 256, {GgmlType::Q4_0, GgmlType::Q4_0}, chunks, nullptr, &base);
  ASSERT_TRUE(q4.ok()) << q4.error().message;
  EXPECT_GT(q4->kld->kld_mean, 10 * f16->kld->kld_mean);
}

}  // namespace
}  // namespace kvq::eval
