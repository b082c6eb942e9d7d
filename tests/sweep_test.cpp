// kvq sweep: the matrix orchestration on a fake model (row order, one baseline per context,
// persisted rows surviving a stop), the CSV / JSON / Markdown / gnuplot outputs, and a small real
// sweep on stories260K.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/model_eval.h"
#include "eval/report.h"
#include "eval/sweep.h"
#include "test_util.h"

namespace kvq::eval {
namespace {

constexpr int kVocab = 48;
constexpr KvTypes kF16{GgmlType::F16, GgmlType::F16};
// The baseline compared with its own stored form (kld.h: ~2e-8).
constexpr double kMaxBaselineSelfKld = 1e-6;

// A fake model whose logits get noisier the fewer bits the cache has, deterministically per
// (configuration, chunk content): like a real model, a re-run of a configuration is identical.
struct FakeModel {
  std::vector<int32_t> tokens;
  std::map<std::string, int> evaluators_made;  // "k/v@ctx" -> count
  int chunks_evaluated = 0;
  std::function<void()> after_chunk;  // test hook (e.g. raise the stop flag)

  FakeModel() {
    tokens.resize(2000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 17 + i / 7) % kVocab);
  }

  SweepBackend backend() {
    SweepBackend b;
    b.tokens = tokens;
    b.n_vocab = kVocab;
    b.bos = 1;
    b.identity.model_path = "fake.gguf";
    b.make_evaluator = [this](KvTypes kv, int n_ctx) -> Result<ChunkEvaluator> {
      ++evaluators_made[fmt::format("{}@{}", kv_types_name(kv), n_ctx)];
      const double noise = 0.02 * (32.0 - bits_per_value(kv.k) - bits_per_value(kv.v));
      return ChunkEvaluator([this, noise](std::span<const int32_t> chunk, float* logits) {
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < chunk.size(); ++i) {
          h = (h ^ uint64_t(chunk[i])) * 1099511628211ull;
          for (int v = 0; v < kVocab; ++v) {
            const uint64_t r = (h ^ uint64_t(v) * 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
            const double u = double(r >> 11) / double(1ull << 53) - 0.5;
            logits[i * kVocab + size_t(v)] = float(((chunk[i] + v) % 5 == 0 ? 2.0 : 0.0) + noise * u);
          }
        }
        ++chunks_evaluated;
        if (after_chunk) after_chunk();
        return Status::Ok();
      });
    };
    b.cache_bytes = [](KvTypes kv, int n_ctx) {
      return uint64_t(std::llround(64.0 * n_ctx * (bits_per_value(kv.k) + bits_per_value(kv.v)) / 8));
    };
    return b;
  }
};

SweepSpec small_spec() {
  SweepSpec spec;
  spec.keys = {GgmlType::F16, GgmlType::Q4_0};
  spec.vals = {GgmlType::F16, GgmlType::Q8_0};
  spec.contexts = {32, 64};
  spec.max_chunks = 5;
  return spec;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

TEST(Sweep, EveryPairAndContextWithOneBaselineEach) {
  FakeModel fake;
  const SweepBackend backend = fake.backend();
  auto r = run_sweep(small_spec(), backend, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->interrupted);
  ASSERT_EQ(r->rows.size(), 8u);
  // f16/f16 is in the matrix: its row is the baseline run, so each configuration runs once.
  for (const auto& [name, count] : fake.evaluators_made) EXPECT_EQ(count, 1) << name;
  EXPECT_EQ(fake.evaluators_made.size(), 8u);
  EXPECT_EQ(fake.chunks_evaluated, 8 * 5);
  for (size_t i = 0; i < r->rows.size(); ++i) {
    const SweepRow& row = r->rows[i];
    EXPECT_EQ(row.n_ctx, i < 4 ? 32 : 64);
    EXPECT_EQ(row.n_chunks, 5);
    EXPECT_EQ(row.n_scored, 5 * (row.n_ctx - 1 - row.n_ctx / 2));
    EXPECT_NEAR(row.dppl_pct, 100.0 * (row.ppl / row.base_ppl - 1.0), 1e-9);
    EXPECT_EQ(row.kv_bytes, backend.cache_bytes(row.kv, row.n_ctx));
    EXPECT_NEAR(row.saved_pct, 100.0 * (1.0 - double(row.kv_bytes) / double(row.base_kv_bytes)), 1e-9);
    EXPECT_NEAR(row.bits_per_value, (bits_per_value(row.kv.k) + bits_per_value(row.kv.v)) / 2, 1e-12);
    if (row.kv == kF16) {
      EXPECT_NEAR(row.dppl_pct, 0.0, 1e-12);
      EXPECT_LT(row.kld.kld_mean, kMaxBaselineSelfKld);
      EXPECT_DOUBLE_EQ(row.kld.top1_pct, 100.0);
    } else {
      EXPECT_GT(row.kld.kld_mean, 1e-5) << kv_types_name(row.kv);  // noisier than the base
    }
  }
  EXPECT_EQ(r->rows[0].kv, kF16);  // run order: baseline first in each context
  // More noise (fewer bits) -> larger divergence from the baseline.
  EXPECT_GT(r->rows[3].kld.kld_mean, r->rows[1].kld.kld_mean);  // q4_0/q8_0 > f16/q8_0
}

TEST(Sweep, BaselineOutsideTheMatrixRunsOncePerContextWithoutARow) {
  FakeModel fake;
  SweepSpec spec = small_spec();
  spec.keys = {GgmlType::Q8_0};
  spec.vals = {GgmlType::Q4_0, GgmlType::Q8_0};
  auto r = run_sweep(spec, fake.backend(), {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rows.size(), 4u);
  EXPECT_EQ(fake.evaluators_made["f16/f16@32"], 1);
  EXPECT_EQ(fake.evaluators_made["f16/f16@64"], 1);
  for (const SweepRow& row : r->rows) EXPECT_NE(row.kv, kF16);
  auto total = sweep_total_tokens(spec, fake.tokens.size());
  ASSERT_TRUE(total.ok());
  EXPECT_DOUBLE_EQ(*total, 3 * 5 * 32 + 3 * 5 * 64);
}

// The rotation axis: auto resolves per pair (none for a float cache, kv for a quantized one), and pairs that
// resolve alike run once.
TEST(Sweep, RotationAxisResolvesAutoAndRunsEachPairOnce) {
  FakeModel fake;
  SweepSpec spec = small_spec();
  spec.contexts = {32};
  spec.rotations = {KvRotation::kNone, KvRotation::kAuto, KvRotation::kKeysValues};
  auto r = run_sweep(spec, fake.backend(), {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<std::string> names;
  for (const SweepRow& row : r->rows) names.push_back(kv_types_name(row.kv));
  const std::vector<std::string> expected = {"f16/f16",  "f16/f16+rkv",  "f16/q8_0",  "f16/q8_0+rkv",
                                             "q4_0/f16", "q4_0/f16+rkv", "q4_0/q8_0", "q4_0/q8_0+rkv"};
  EXPECT_EQ(names, expected);
}

TEST(Sweep, TooShortTextFailsBeforeAnyWork) {
  FakeModel fake;
  SweepSpec spec = small_spec();
  spec.contexts = {32, 4096};
  auto r = run_sweep(spec, fake.backend(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(fake.chunks_evaluated, 0);
  EXPECT_NE(r.error().message.find("4096"), std::string::npos) << r.error().message;
}

// The CLI's row sink: rewrite CSV + JSON after every finished row.
struct DiskSink {
  std::string dir;
  SweepMeta meta;
  std::function<void(size_t)> after_write;
  Status operator()(const std::vector<SweepRow>& rows) {
    KVQ_RETURN_IF_ERROR(write_sweep_data(dir, rows, meta));
    if (after_write) after_write(rows.size());
    return Status::Ok();
  }
};

void expect_rows_on_disk(const std::string& dir, size_t n_rows) {
  const std::vector<std::string> lines = split(test::read_text_file(dir + "/sweep.csv"), '\n');
  ASSERT_EQ(lines.size(), n_rows + 1);
  EXPECT_EQ(split(lines[0], ','), kCsvColumns);
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(split(lines[i], ',').size(), kCsvColumns.size()) << lines[i];
  }
  const auto json = nlohmann::json::parse(test::read_text_file(dir + "/sweep.json"));
  ASSERT_EQ(json.at("rows").size(), n_rows);
  EXPECT_FALSE(std::filesystem::exists(dir + "/sweep.csv.tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/sweep.json.tmp"));
}

TEST(Sweep, StopBetweenRowsKeepsTheFinishedRowsOnDisk) {
  FakeModel fake;
  std::atomic<bool> stop{false};
  DiskSink sink{test::temp_dir() + "/stop-between", {}, {}};
  sink.meta.complete = false;
  sink.after_write = [&](size_t n) {
    if (n == 3) stop = true;  // Ctrl-C right after the third row was written
  };
  SweepCallbacks callbacks;
  callbacks.stop = &stop;
  callbacks.on_row = std::ref(sink);
  auto r = run_sweep(small_spec(), fake.backend(), callbacks);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->interrupted);
  EXPECT_EQ(r->rows.size(), 3u);
  expect_rows_on_disk(sink.dir, 3);
  EXPECT_EQ(fake.chunks_evaluated, 3 * 5);  // nothing started after the stop
}

TEST(Sweep, StopInsideARowDropsOnlyThatRow) {
  FakeModel fake;
  std::atomic<bool> stop{false};
  DiskSink sink{test::temp_dir() + "/stop-inside", {}, {}};
  fake.after_chunk = [&] {
    if (fake.chunks_evaluated == 5 * 5 + 2) stop = true;  // 2 chunks into the sixth run
  };
  SweepCallbacks callbacks;
  callbacks.stop = &stop;
  callbacks.on_row = std::ref(sink);
  auto r = run_sweep(small_spec(), fake.backend(), callbacks);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->interrupted);
  EXPECT_EQ(r->rows.size(), 5u);
  EXPECT_EQ(fake.chunks_evaluated, 5 * 5 + 2);  // stopped after the current chunk
  expect_rows_on_disk(sink.dir, 5);
}

TEST(Sweep, ProgressReachesTheTotal) {
  FakeModel fake;
  double last_done = -1, total = 0;
  SweepCallbacks callbacks;
  callbacks.progress = [&](double done, double all, std::string_view status) {
    EXPECT_GE(done, last_done);
    EXPECT_FALSE(status.empty());
    last_done = done;
    total = all;
  };
  ASSERT_TRUE(run_sweep(small_spec(), fake.backend(), callbacks).ok());
  EXPECT_DOUBLE_EQ(last_done, total);
  EXPECT_DOUBLE_EQ(total, 4 * 5 * 32 + 4 * 5 * 64);
}

TEST(Report, JsonCsvAndMarkdownSchemas) {
  FakeModel fake;
  auto r = run_sweep(small_spec(), fake.backend(), {});
  ASSERT_TRUE(r.ok());
  SweepMeta meta;
  meta.model = "fake.gguf";
  meta.base_kv = "f16/f16";
  const nlohmann::json j = sweep_json(r->rows, meta);
  for (const char* key :
       {"model", "text", "text_bytes", "n_tokens", "max_chunks", "threads", "base_kv", "complete", "seconds"}) {
    EXPECT_TRUE(j.at("meta").contains(key)) << key;
  }
  ASSERT_EQ(j.at("rows").size(), r->rows.size());
  for (const auto& row : j.at("rows")) {
    EXPECT_EQ(row.size(), kCsvColumns.size());
    for (const std::string& column : kCsvColumns) {
      ASSERT_TRUE(row.contains(column)) << column;
      if (column == "type_k" || column == "type_v" || column == "rotation")
        EXPECT_TRUE(row[column].is_string());
      else
        EXPECT_TRUE(row[column].is_number()) << column;
    }
  }
  EXPECT_EQ(j["rows"][1]["type_v"], "q8_0");
  EXPECT_EQ(j["rows"][4]["n_ctx"], 64);

  const std::vector<std::string> csv = split(sweep_csv(r->rows), '\n');
  ASSERT_EQ(csv.size(), r->rows.size() + 1);
  const std::vector<std::string> first = split(csv[1], ',');
  EXPECT_EQ(first[0], "f16");
  EXPECT_EQ(first[2], "none");
  EXPECT_EQ(first[4], "32");
  EXPECT_NEAR(std::stod(first[10]), r->rows[0].ppl, 1e-6 * r->rows[0].ppl);  // "ppl"

  const std::vector<std::string> md = split(sweep_markdown(r->rows), '\n');
  ASSERT_EQ(md.size(), r->rows.size() + 2);
  EXPECT_EQ(md[0].rfind("| K | V | rotation | bits/value | context | KV MiB", 0), 0u) << md[0];
  EXPECT_EQ(md[2].rfind("| f16 | f16 | none | 16.00 | 32 |", 0), 0u) << md[2];
}

TEST(Report, ChartScriptsRenderWithGnuplot) {
  FakeModel fake;
  auto r = run_sweep(small_spec(), fake.backend(), {});
  ASSERT_TRUE(r.ok());
  const std::string dir = test::temp_dir() + "/charts";
  auto scripts = write_sweep_chart_scripts(dir, r->rows);
  ASSERT_TRUE(scripts.ok()) << scripts.error().message;
  ASSERT_EQ(scripts->size(), 4u);
  for (const std::string& s : *scripts) {
    const std::string text = test::read_text_file(dir + "/" + s);
    EXPECT_NE(text.find("pngcairo"), std::string::npos);
    EXPECT_NE(text.find("set terminal svg"), std::string::npos);
  }
  EXPECT_NE(test::read_text_file(dir + "/dppl_vs_context.gp").find("K/V q4_0/q8_0"), std::string::npos);
  const std::string gnuplot = find_program("gnuplot");
  if (gnuplot.empty()) GTEST_SKIP() << "gnuplot not installed: scripts checked, not rendered";
  ASSERT_TRUE(render_charts(gnuplot, dir, *scripts).ok());
  for (const std::string& s : *scripts) {
    const std::string stem = s.substr(0, s.size() - 3);
    for (const char* ext : {".png", ".svg"}) {
      const std::string image = dir + "/" + stem + ext;
      ASSERT_TRUE(std::filesystem::exists(image)) << image;
      EXPECT_GT(std::filesystem::file_size(image), 1000u) << image;
    }
  }
  EXPECT_EQ(test::read_text_file(dir + "/kld_vs_bits.png").substr(1, 3), "PNG");
}

TEST(Report, FindProgram) {
  EXPECT_FALSE(find_program("sh").empty());
  EXPECT_TRUE(find_program("kvq-no-such-program-here").empty());
}

TEST(SweepModel, Stories260KSmallMatrix) {
  auto model = Model::load(test::shared_path("data/models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto tokenizer = Tokenizer::from_gguf((*model)->file());
  ASSERT_TRUE(tokenizer.ok());
  const std::string text = test::read_text_file(test::shared_path("data/text/tinystories_val.txt")).substr(0, 60000);
  const EvalText tokens = tokenize_eval_text(*tokenizer, text);
  KldIdentity identity;
  fingerprint_text(text, identity);
  const SweepBackend backend = model_sweep_backend(**model, tokens, identity);
  SweepSpec spec;
  spec.keys = {GgmlType::F16, GgmlType::Q4_0};
  spec.vals = {GgmlType::F16, GgmlType::Q4_0};
  spec.contexts = {128};
  spec.max_chunks = test::sanitized() ? 2 : 24;
  auto r = run_sweep(spec, backend, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->rows.size(), 4u);
  const SweepRow& base = r->rows[0];
  const SweepRow& q4q4 = r->rows[3];
  EXPECT_EQ(base.kv, kF16);
  EXPECT_LT(base.kld.kld_mean, kMaxBaselineSelfKld);
  EXPECT_GT(base.ppl, 1.0);
  EXPECT_LT(base.ppl, 10.0);  // llama.cpp: 4.06 over the whole 60 KB at this context
  EXPECT_GT(q4q4.kld.kld_mean, base.kld.kld_mean);
  EXPECT_GT(q4q4.saved_pct, 60.0);  // 4.5 of 16 bits per value, plus any row padding
  EXPECT_EQ(q4q4.kv_bytes * 16, backend.cache_bytes(kF16, 128) * 16 * q4q4.kv_bytes / backend.cache_bytes(kF16, 128));
}

}  // namespace
}  // namespace kvq::eval
