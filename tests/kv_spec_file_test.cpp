// The JSON spec file of `kvq tune` and `--kvq-layers @FILE`: the parser's round trip and its errors,
// the refusal of a spec made for another model, the measurements file of --resume, and the command
// line end to end on stories260K (the spec running `run` and `perplexity` exactly as its string does,
// the budget met by the cache arithmetic, the refusals with their figures).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/tune_cache.h"
#include "kv/kv_spec_file.h"
#include "model/identity.h"
#include "model/model.h"
#include "test_util.h"

namespace kvq {
namespace {

using test::CommandResult;
using test::run_kvq;

KvSpecFile sample_spec() {
  KvSpecFile spec;
  spec.model = ModelIdentity{"stories260K", 3, 0x0123456789abcdefull};
  spec.layers = {{GgmlType::Q8_0, GgmlType::Q4_0, KvRotation::kNone, {1, 16, GgmlType::Q8_0}},
                 {GgmlType::F16, GgmlType::IQ4_NL},
                 {GgmlType::Q5_1, GgmlType::Q4_1, KvRotation::kNone, {0, 8}}};
  spec.tuned_json = R"({"bytes":123})";
  return spec;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(KvSpecFile, RoundTrip) {
  const KvSpecFile spec = sample_spec();
  auto parsed = parse_kv_spec_file(kv_spec_file_text(spec));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->model.name, "stories260K");
  EXPECT_EQ(parsed->model.n_layer, 3);
  EXPECT_EQ(parsed->model.fingerprint, spec.model.fingerprint);
  EXPECT_EQ(parsed->layers, spec.layers);
  EXPECT_EQ(nlohmann::json::parse(parsed->tuned_json)["bytes"], 123);
}

TEST(KvSpecFile, MalformedFilesNameWhatIsWrong) {
  const std::string good = kv_spec_file_text(sample_spec());
  auto edited = [&](auto edit) {
    nlohmann::json j = nlohmann::json::parse(good);
    edit(j);
    return j.dump();
  };
  const std::pair<std::string, std::string> cases[] = {
      {"{\"kvq_spec\": 1, ", "not valid JSON"},
      {"[1, 2]", "must hold a JSON object"},
      {edited([](auto& j) { j["kvq_spec"] = 2; }), "version 2"},
      {edited([](auto& j) { j.erase("model"); }), "\"model\" must be an object"},
      {edited([](auto& j) { j["model"]["n_layer"] = "3"; }), "\"n_layer\" must be an integer"},
      {edited([](auto& j) { j["model"]["n_layer"] = -1; }), "\"n_layer\" is -1"},
      {edited([](auto& j) { j["model"]["fingerprint"] = "xyz"; }), "16 hex digits"},
      {edited([](auto& j) { j["layers"].erase(2); }), "has 2 entries; the model has 3"},
      {edited([](auto& j) { j["layers"][2]["layer"] = 0; }), "layer 0 appears twice"},
      {edited([](auto& j) { j["layers"][0]["window"] = -2; }), "\"window\" is -2"},
      {edited([](auto& j) { j["layers"][0]["sinks"] = "1"; }), "\"sinks\" must be an integer"},
      {edited([](auto& j) { j["layers"][0]["keep"] = "q4_K"; }), "layer 0 \"keep\""},
      {edited([](auto& j) { j["layers"][1]["layer"] = 7; }), "\"layer\" is 7, expected 0..2"},
      {edited([](auto& j) { j["layers"][1]["v"] = "q3_x"; }), "invalid KV cache type 'q3_x'"},
      {edited([](auto& j) { j["layers"][1].erase("k"); }), "\"k\" must be a string"},
      {edited([](auto& j) { j["tuned"] = 5; }), "\"tuned\" must be an object"},
  };
  for (const auto& [text, expected] : cases) {
    auto r = parse_kv_spec_file(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find(expected), std::string::npos) << r.error().message;
  }
}

TEST(KvSpecFile, RefusedOnAnotherModel) {
  const KvSpecFile spec = sample_spec();
  EXPECT_TRUE(check_kv_spec_model(spec, spec.model).ok());
  const Status layers = check_kv_spec_model(spec, ModelIdentity{"stories260K", 5, spec.model.fingerprint});
  ASSERT_FALSE(layers.ok());
  EXPECT_NE(layers.message().find("3 layers"), std::string::npos) << layers.message();
  EXPECT_NE(layers.message().find("has 5"), std::string::npos) << layers.message();
  const Status other = check_kv_spec_model(spec, ModelIdentity{"stories260K", 3, 42});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.message().find("0123456789abcdef"), std::string::npos) << other.message();
  EXPECT_NE(other.message().find("000000000000002a"), std::string::npos) << other.message();
}

TEST(KvSpecFile, FingerprintTellsModelsApart) {
  auto identity_of = [](const std::string& relative) {
    auto model = Model::load(test::shared_path(relative));
    EXPECT_TRUE(model.ok());
    return identify_model((*model)->file(), (*model)->config());
  };
  const ModelIdentity small = identity_of("data/models/stories260K/stories260K.gguf");
  const ModelIdentity f32 = identity_of("data/models/stories15M/stories15M.gguf");
  const ModelIdentity q8 = identity_of("data/models/stories15M/stories15M-q8_0.gguf");
  EXPECT_EQ(small.n_layer, 5);
  EXPECT_NE(small.fingerprint, f32.fingerprint);
  // Same tensors requantized: the same model for its KV sensitivities (model/identity.h).
  EXPECT_EQ(f32.fingerprint, q8.fingerprint);
}

TEST(TuneCache, RoundTripAndRefusalOfAnotherRun) {
  eval::TuneCacheKey key;
  key.identity.model_bytes = 1000;
  key.identity.model_hash = 0xfeed;
  key.identity.text_bytes = 77;
  key.identity.text_hash = 0xbeef;
  key.n_layer = 2;
  key.n_ctx = 64;
  key.calib_chunks = 3;
  eval::SensitivityTable table(2, {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0});
  table.at(1, KvSide::kValue, 2) = eval::SlotMeasurement{0.25, 0.125, true};
  table.at(0, KvSide::kKey, 1) = eval::SlotMeasurement{1e-5, -2e-6, true};
  const std::string text = eval::tune_cache_text(key, table);

  eval::SensitivityTable loaded(2, {GgmlType::F16, GgmlType::Q4_0});  // q8_0 is not a candidate now
  auto taken = eval::load_tune_cache(text, key, loaded);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  EXPECT_EQ(*taken, 1);
  EXPECT_TRUE(loaded.at(1, KvSide::kValue, 1).measured);
  EXPECT_EQ(loaded.at(1, KvSide::kValue, 1).kld, 0.25);
  EXPECT_EQ(loaded.at(1, KvSide::kValue, 1).ln_ppl_ratio, 0.125);
  EXPECT_EQ(loaded.unmeasured(), 3);

  eval::TuneCacheKey other = key;
  other.calib_chunks = 4;
  auto refused = eval::load_tune_cache(text, other, loaded);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("calib_chunks = 3; this run has 4"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(eval::load_tune_cache("{\"kvq_tune_measurements\": 1", key, loaded).ok());
}

// The command line: one small tune of stories260K shared by the end-to-end tests.
const std::string kModel = test::shared_path("data/models/stories260K/stories260K.gguf");
const std::string kText = test::shared_path("data/text/tinystories_val.txt");
const std::string kSmallTune =
    "tune -m " + kModel + " -f " + kText +
    " -t 1 -c 64 --calib-chunks 2 --eval-chunks 2 --types f16,q8_0,q4_0 --uniform-measured 1";

struct TunedSpec {
  std::string path;
  nlohmann::json result;
};

const TunedSpec& tuned_spec() {
  static const TunedSpec spec = [] {
    TunedSpec s;
    s.path = test::temp_dir() + "/tuned-260k.json";
    const CommandResult r = run_kvq(kSmallTune + " --budget 600000B@2048 --json -o " + s.path);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    s.result = nlohmann::json::parse(r.out, nullptr, false);
    return s;
  }();
  return spec;
}

TEST(TuneCli, BudgetInBytesAtAContextIsMetByTheAllocation) {
  const TunedSpec& s = tuned_spec();
  ASSERT_FALSE(s.result.is_discarded());
  EXPECT_EQ(s.result["budget_bytes"], 600000);
  auto text = test::read_text_file(s.path);
  auto spec = parse_kv_spec_file(text);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  auto model = Model::load(kModel);
  ASSERT_TRUE(model.ok());
  auto cache = (*model)->make_cache(2048, spec->layers);
  ASSERT_TRUE(cache.ok());
  const uint64_t allocated = cache->bytes();
  EXPECT_LE(allocated, 600000u);
  EXPECT_EQ(s.result["compared"][0]["bytes"], allocated);
  EXPECT_EQ(s.result["compared"][0]["label"], "tuned");
  EXPECT_EQ(s.result["layers"].size(), 5u);
}

TEST(TuneCli, SpecFileRunsLikeItsLayerString) {
  const TunedSpec& s = tuned_spec();
  const std::string layers = s.result["kvq_layers"].get<std::string>();
  const std::string run = "run -m " + kModel + " -t 1 -p \"Once upon a time\" -n 24 --temp 0 --kvq-layers ";
  const CommandResult by_file = run_kvq(run + "@" + s.path);
  const CommandResult by_string = run_kvq(run + "\"" + layers + "\"");
  ASSERT_EQ(by_file.exit_code, 0);
  EXPECT_EQ(by_file.out, by_string.out);
  const std::string ppl = "perplexity -m " + kModel + " -f " + kText + " -t 1 -c 64 --chunks 4 --json --kvq-layers ";
  const auto a = nlohmann::json::parse(run_kvq(ppl + "@" + s.path).out, nullptr, false);
  const auto b = nlohmann::json::parse(run_kvq(ppl + "\"" + layers + "\"").out, nullptr, false);
  ASSERT_FALSE(a.is_discarded());
  EXPECT_EQ(a["ppl"], b["ppl"]);
  EXPECT_EQ(a["kv"], "per-layer mix");
}

TEST(TuneCli, RefusalsGiveTheFigures) {
  const TunedSpec& s = tuned_spec();
  const std::string other_model = test::shared_path("data/models/stories15M/stories15M.gguf");
  const CommandResult wrong = run_kvq("run -m " + other_model + " -p x -n 1 --kvq-layers @" + s.path, true);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.out.find("made for a model of 5 layers"), std::string::npos) << wrong.out;
  EXPECT_NE(wrong.out.find("has 6"), std::string::npos) << wrong.out;

  const std::string broken = test::temp_dir() + "/broken-spec.json";
  write_file(broken, test::read_text_file(s.path).substr(0, 40));
  const CommandResult bad =
      run_kvq("perplexity -m " + kModel + " -f " + kText + " -c 64 --kvq-layers @" + broken, true);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("not valid JSON"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.out.find("internal error"), std::string::npos);

  const CommandResult low = run_kvq(kSmallTune + " --budget 4.0", true);
  EXPECT_EQ(low.exit_code, 1);
  EXPECT_NE(low.out.find("4.000 bits/value"), std::string::npos) << low.out;
  EXPECT_NE(low.out.find("4.500 bits/value"), std::string::npos) << low.out;

  const CommandResult unmet = run_kvq("tune -m " + kModel + " -f " + kText +
                                          " -t 1 -c 64 --calib-chunks 2 --eval-chunks 2 --types q8_0 --max-kld 1e-12",
                                      true);
  EXPECT_EQ(unmet.exit_code, 1);
  EXPECT_NE(unmet.out.find("no assignment of the candidate types meets KLD <= 1e-12: the best predicts"),
            std::string::npos)
      << unmet.out;
  EXPECT_NE(unmet.out.find("0-4:q8_0/q8_0"), std::string::npos) << unmet.out;
}

TEST(TuneCli, ResumeReusesEveryMeasurement) {
  const std::string resume = test::temp_dir() + "/resume-260k.json";
  std::filesystem::remove(resume);
  const std::string cmd =
      kSmallTune + " --budget 6.5 --no-eval --resume " + resume + " -o " + test::temp_dir() + "/r.json";
  const CommandResult first = run_kvq(cmd, true);
  ASSERT_EQ(first.exit_code, 0) << first.out;
  const auto saved = nlohmann::json::parse(test::read_text_file(resume));
  EXPECT_EQ(saved["measurements"].size(), 5u * 2 * 2);  // layers x sides x (q8_0, q4_0)
  const CommandResult second = run_kvq(cmd, true);
  ASSERT_EQ(second.exit_code, 0) << second.out;
  EXPECT_NE(second.out.find("20 measurements reused, 0 to go"), std::string::npos) << second.out;
}

// `kvq tune --kvq-window R`: every quantized candidate is measured and counted with the kept positions, the
// spec carries them, the allocation meets the budget, and measurements taken without them are not reused.
TEST(TuneCli, KeptPositionsAreMeasuredCountedAndWritten) {
  const std::string resume = test::temp_dir() + "/resume-kept-260k.json";
  const std::string out = test::temp_dir() + "/kept.json";
  std::filesystem::remove(resume);
  const std::string kept = " --kvq-sinks 1 --kvq-window 8 --kvq-keep q8_0";
  const CommandResult r = run_kvq(kSmallTune + " --budget 7.0 --no-eval --json --resume " + resume + " -o " + out + kept);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto result = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << r.out;
  auto spec = parse_kv_spec_file(test::read_text_file(out));
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  for (const KvTypes& t : spec->layers) {
    if (type_traits(t.k).quantized || type_traits(t.v).quantized) {
      EXPECT_EQ(t.kept, (KvKept{1, 8, GgmlType::Q8_0})) << kv_types_name(t);
    }
  }
  EXPECT_NE(result["kvq_layers"].get<std::string>().find("+s1+w8+keep=q8_0"), std::string::npos);
  auto model = Model::load(kModel);
  ASSERT_TRUE(model.ok());
  auto cache = (*model)->make_cache(64, spec->layers);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(result["compared"][0]["bytes"], cache->bytes());
  EXPECT_LE(cache->bytes(), uint64_t(std::floor(7.0 / 16 * double(KvCache::bytes(cache->shape(),
                                                                             std::vector<KvTypes>(5))))));
  const CommandResult other = run_kvq(kSmallTune + " --budget 7.0 --no-eval --resume " + resume + " -o " + out, true);
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.out.find("kept positions s1+w8+keep=q8_0; this run keeps none"), std::string::npos) << other.out;
}

}  // namespace
}  // namespace kvq
