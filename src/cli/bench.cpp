// kvq bench: prompt-processing and generation speed per K/V pair and context depth, with the
// achieved memory bandwidth against this machine's, measured in the same process.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <numeric>
#include <random>

#include "cli/bench_streams.h"
#include "cli/commands.h"
#include "cli/model_setup.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "util/system.h"

namespace kvq::cli {
namespace {

// The V column of bench tables: the value type, with the pair's rotation when it has one ("q4_0+rkv").
std::string value_label(const KvTypes& pair) {
  const std::string name = kv_types_name(pair);
  return name.substr(name.find('/') + 1);
}

struct BenchArgs {
  std::string model;
  std::string n_prompt = "512";
  std::string n_gen = "64";
  std::string depths = "0";
  std::vector<std::string> keys{"f16"};
  std::vector<std::string> values{"f16"};
  std::vector<std::string> pairs;  // "K/V" entries; replaces the keys x values cross product
  std::string streams;             // "1,2,4,8": batched decode of that many sequences instead
  int repetitions = 3;
  int threads = 0;
  std::string output = "md";
  KvOptions kept;  // --kvq-sinks, --kvq-window, --kvq-keep: the same for every pair
};

Result<std::vector<int>> parse_int_list(const std::string& text, const char* flag) {
  std::vector<int> out;
  for (std::string_view part : split_commas(text)) {
    std::string s(part);
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < 0 || v > (1 << 24)) {
      return make_error("{}: '{}' is not a non-negative integer list", flag, text);
    }
    out.push_back(int(v));
  }
  return out;
}

struct Stats {
  double median = 0, mean = 0, stdev = 0;
};
Stats stats_of(std::vector<double> v) {
  Stats s;
  std::sort(v.begin(), v.end());
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  double var = 0;
  for (double x : v) var += (x - s.mean) * (x - s.mean);
  s.stdev = v.size() > 1 ? std::sqrt(var / double(v.size() - 1)) : 0.0;
  return s;
}

// The types of the matrices the forward pass multiplies, in order of first use.
std::vector<GgmlType> matrix_types(const ModelWeights& w) {
  std::vector<GgmlType> types;
  const auto add = [&](const WeightMatrix& m) {
    if (m.data != nullptr && std::find(types.begin(), types.end(), m.type) == types.end()) types.push_back(m.type);
  };
  for (const LayerWeights& l : w.layers) {
    for (const WeightMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) add(*m);
  }
  add(w.output);
  return types;
}

// The kernels a test runs on this CPU, so that every figure can be traced to the code that produced it:
// per weight type the matmul kernel at the test's tokens per step, and for generation the attention kernel.
nlohmann::json kernels_of(const Model& model, const KvTypes& pair, int n_tokens, bool decode) {
  const ModelConfig& c = model.config();
  nlohmann::json k = nlohmann::json::object();
  for (GgmlType t : matrix_types(model.weights())) k[std::string(type_name(t))] = matmul_kernel_name(t, n_tokens);
  if (decode) k["attention"] = attention_decode_kernel_name(pair.k, pair.v, c.n_head / c.n_head_kv, c.head_dim);
  return k;
}

int run_bench(const BenchArgs& args) {
  const int threads = set_threads(args.threads);
  auto prompts = parse_int_list(args.n_prompt, "-p");
  auto gens = parse_int_list(args.n_gen, "-n");
  auto depths = parse_int_list(args.depths, "--depth");
  auto keys = parse_kv_type_list(args.keys, "--kvq-key");
  auto values = parse_kv_type_list(args.values, "--kvq-val");
  for (const Error* e : {prompts.ok() ? nullptr : &prompts.error(), gens.ok() ? nullptr : &gens.error(),
                         depths.ok() ? nullptr : &depths.error(), keys.ok() ? nullptr : &keys.error(),
                         values.ok() ? nullptr : &values.error()}) {
    if (e) return report_error(*e), 1;
  }
  if (args.output != "md" && args.output != "csv" && args.output != "json") {
    return report_error(make_error("-o '{}': expected md, csv or json", args.output)), 1;
  }
  auto kept = kv_kept(args.kept);
  if (!kept) return report_error(kept.error()), 1;
  std::vector<KvTypes> kv_pairs;
  for (GgmlType k : *keys) {
    for (GgmlType v : *values) kv_pairs.push_back(resolve_rotation({k, v, KvRotation::kAuto, *kept}));
  }
  if (!args.pairs.empty()) {
    kv_pairs.clear();
    for (const std::string& pair : args.pairs) {  // K/V[+rk|+rkv|+r0]: one item of a layer spec, rotation auto
      auto one = parse_kv_layers("0:" + pair, 1, {GgmlType::F16, GgmlType::F16, KvRotation::kAuto, *kept});
      if (!one) {
        return report_error(make_error("--kv-pairs: '{}' is not K/V (e.g. q8_0/q4_0 or q8_0/q4_0+rkv): {}", pair,
                                       one.error().message)),
               1;
      }
      kv_pairs.push_back(resolve_rotation(one->front()));
    }
  }
  std::sort(depths->begin(), depths->end());
  if (args.repetitions < 1) return report_error(make_error("-r must be at least 1")), 1;

  auto loaded = load_model(args.model, args.kept);
  if (!loaded) return report_error(loaded.error()), 1;
  Model& model = *loaded->model;
  const ModelConfig& c = model.config();
  const std::string cpu = cpu_model_name();
  const uint64_t l2_kib = cpu_l2_cache_bytes() / 1024;  // sizes the prompt kernels' token blocks
  std::fprintf(stderr, "kvq bench: %s, SIMD target %s, L2 %llu KiB per core\n", cpu.c_str(), simd_target_name(),
               static_cast<unsigned long long>(l2_kib));
  if (args.kept.sinks > 0 || args.kept.window > 0) {
    std::fprintf(stderr, "kvq bench: every quantized side also keeps %d sinks and a window of %d at %s\n",
                 args.kept.sinks, args.kept.window, args.kept.keep.c_str());
  }
  std::fprintf(stderr, "kvq bench: measuring memory bandwidth with %d threads...\n", threads);
  double machine_gbs = measure_read_bandwidth_gbs(threads);
  std::fprintf(stderr, "kvq bench: %.1f GB/s read bandwidth\n", machine_gbs);
  const double weight_bytes = double(model.weights().total_bytes);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> random_token(0, c.n_vocab - 1);
  nlohmann::json rows = nlohmann::json::array();
  std::vector<float> logits(size_t(c.n_vocab));  // [n_vocab]

  if (!args.streams.empty()) {
    auto counts = parse_int_list(args.streams, "--streams");
    if (!counts) return report_error(counts.error()), 1;
    for (int n : *counts) {
      if (n < 1) return report_error(make_error("--streams: counts must be at least 1")), 1;
    }
    for (const KvTypes pair : kv_pairs) {
      for (int depth : *depths) {
        std::fprintf(stderr, "kvq bench: %s, %s streams at depth %d, in turn...\n", kv_types_name(pair).c_str(),
                     args.streams.c_str(), depth);
        StreamsTest t{*counts, depth, gens->front(), prompts->front(), 256, args.repetitions};
        auto results = bench_streams(model, std::vector<KvTypes>(size_t(c.n_layer), pair), t, rng);
        if (!results) return report_error(results.error()), 1;
        // Against one stream: the median of the ratios of runs made in the same repetition.
        const nlohmann::json* single = nullptr;
        for (const auto& r : *results) {
          if (r["streams"] == 1) single = &r;
        }
        for (const auto& r : *results) {
          std::vector<double> tps = r["tok_s"], ttft = r["ttft_ms"];
          const Stats s = stats_of(tps);
          nlohmann::json row = {{"model", args.model},
                                {"key", type_name(pair.k)},
                                {"value", value_label(pair)},
                                {"rotation", kv_rotation_name(pair.rotation)},
                                {"test", fmt::format("tg{}", t.n_gen)},
                                {"streams", r["streams"]},
                                {"depth", depth},
                                {"threads", threads},
                                {"repetitions", args.repetitions},
                                {"tok_s_median", s.median},
                                {"tok_s_stdev", s.stdev},
                                {"tok_s_runs", tps}};  // per repetition
          if (single) {
            std::vector<double> ratios;
            for (size_t i = 0; i < tps.size(); ++i) ratios.push_back(tps[i] / (*single)["tok_s"][i].get<double>());
            row["vs_1_stream_median"] = stats_of(ratios).median;
          }
          if (!ttft.empty()) row["ttft_ms_median"] = stats_of(ttft).median, row["ttft_prompt"] = t.n_prompt;
          rows.push_back(row);
        }
      }
    }
    if (args.output == "json") return print_json(rows), 0;
    std::cout << fmt::format(
        "model {}, {} threads, {} repetitions (every count in each, in turn): aggregate decode of N sequences "
        "in one pass per step; vs 1 stream: median of same-repetition ratios; TTFT of a {}-token prompt while "
        "N - 1 others decode\n\n",
        args.model, threads, args.repetitions, prompts->front());
    std::cout << "| K | V | streams | depth | aggregate tok/s | per stream | vs 1 stream | TTFT ms |\n";
    std::cout << "|---|---|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& r : rows) {
      const double tps = r["tok_s_median"], n = r["streams"];
      std::cout << fmt::format(
          "| {} | {} | {} | {} | {:.2f} ± {:.2f} | {:.2f} | {} | {} |\n", r["key"].get<std::string>(),
          r["value"].get<std::string>(), r["streams"].get<int>(), r["depth"].get<int>(), tps,
          r["tok_s_stdev"].get<double>(), tps / n,
          r.contains("vs_1_stream_median") ? fmt::format("{:.2f}x", r["vs_1_stream_median"].get<double>()) : "",
          r.contains("ttft_ms_median") ? fmt::format("{:.0f}", r["ttft_ms_median"].get<double>()) : "");
    }
    return 0;
  }

  const int max_new =
      std::max(*std::max_element(prompts->begin(), prompts->end()), *std::max_element(gens->begin(), gens->end()));
  for (const KvTypes pair : kv_pairs) {
    const GgmlType k = pair.k;
    loaded->kv_types.assign(size_t(c.n_layer), pair);
    // One cache per pair, filled once up to each depth in turn (random tokens: only speed matters,
    // so the positions that tests at a shallower depth overwrote are as good as the originals).
    auto cache = make_checked_cache(*loaded, depths->back() + std::max(max_new, 1));
    if (!cache) return report_error(cache.error()), 1;
    int filled = 0;
    for (int depth : *depths) {
      if (depth > filled) {
        std::vector<int32_t> fill(static_cast<size_t>(depth - filled));
        for (auto& t : fill) t = random_token(rng);
        std::fprintf(stderr, "kvq bench: %s filling the context to %d tokens...\n", kv_types_name(pair).c_str(), depth);
        KVQ_CHECK(model.forward(fill, filled, *cache, logits.data(), false).ok());
        filled = depth;
      }
      auto record = [&](const std::string& test, int n_tokens, const std::vector<double>& tps,
                        double bytes_per_token_step) {
        const Stats s = stats_of(tps);
        nlohmann::json row = {{"model", args.model},
                              {"key", type_name(k)},
                              {"value", value_label(pair)},
                              {"rotation", kv_rotation_name(pair.rotation)},
                              {"sinks", args.kept.sinks},
                              {"window", args.kept.window},
                              {"test", test},
                              {"n_tokens", n_tokens},
                              {"depth", depth},
                              {"threads", threads},
                              {"repetitions", args.repetitions},
                              {"tok_s_median", s.median},
                              {"tok_s_mean", s.mean},
                              {"tok_s_stdev", s.stdev},
                              {"cpu", cpu},
                              {"simd_target", simd_target_name()},
                              {"l2_kib", l2_kib},
                              {"kernels", kernels_of(model, pair, test[0] == 't' ? 1 : n_tokens, test[0] == 't')}};
        if (bytes_per_token_step > 0) {
          row["gbs"] = s.median * bytes_per_token_step / 1e9;
        }
        std::fprintf(stderr, "kvq bench: %s %s @ %d: %.2f ± %.2f tok/s\n", kv_types_name(pair).c_str(), test.c_str(),
                     depth, s.median, s.stdev);
        rows.push_back(row);
      };
      for (int p : *prompts) {
        if (p == 0) continue;
        std::vector<int32_t> batch(static_cast<size_t>(p));
        std::vector<double> tps;
        for (int r = -1; r < args.repetitions; ++r) {  // r = -1: untimed warm-up
          for (auto& t : batch) t = random_token(rng);
          const auto start = std::chrono::steady_clock::now();
          KVQ_CHECK(model.forward(batch, depth, *cache, logits.data(), false).ok());
          if (r >= 0) tps.push_back(p / seconds_since(start));
        }
        record("pp" + std::to_string(p), p, tps, 0.0);
      }
      for (int n : *gens) {
        if (n == 0) continue;
        std::vector<double> tps;
        for (int r = -1; r < args.repetitions; ++r) {  // r = -1: untimed warm-up
          const auto start = std::chrono::steady_clock::now();
          for (int i = 0; i < n; ++i) {
            const int32_t one[1] = {random_token(rng)};
            KVQ_CHECK(model.forward(one, depth + i, *cache, logits.data(), false).ok());
          }
          if (r >= 0) tps.push_back(n / seconds_since(start));
        }
        // A generated token reads every weight and the cache up to its position (or its window) once.
        const double kv_read = double(KvCache::bytes_attended(cache->shape(), loaded->kv_types, depth + n / 2));
        record("tg" + std::to_string(n), n, tps, weight_bytes + kv_read);
      }
    }
  }

  // Shared machines drift: measure again after the tests and compare against the better of the two.
  machine_gbs = std::max(machine_gbs, measure_read_bandwidth_gbs(threads));
  std::fprintf(stderr, "kvq bench: %.1f GB/s read bandwidth (best of before and after)\n", machine_gbs);
  for (auto& r : rows) {
    r["machine_gbs"] = machine_gbs;
    if (r.contains("gbs")) r["bandwidth_fraction"] = r["gbs"].get<double>() / machine_gbs;
  }
  if (args.output == "json") {
    print_json(rows);
  } else if (args.output == "csv") {
    std::cout << "model,key,value,test,depth,threads,tok_s_median,tok_s_stdev,gbs,bandwidth_fraction,machine_gbs\n";
    for (const auto& r : rows) {
      std::cout << fmt::format(
          "{},{},{},{},{},{},{:.3f},{:.3f},{},{},{:.2f}\n", r["model"].get<std::string>(), r["key"].get<std::string>(),
          r["value"].get<std::string>(), r["test"].get<std::string>(), r["depth"].get<int>(), r["threads"].get<int>(),
          r["tok_s_median"].get<double>(), r["tok_s_stdev"].get<double>(),
          r.contains("gbs") ? fmt::format("{:.2f}", r["gbs"].get<double>()) : "",
          r.contains("gbs") ? fmt::format("{:.3f}", r["bandwidth_fraction"].get<double>()) : "", machine_gbs);
    }
  } else {
    std::cout << fmt::format("model {} ({}), {} threads, {} repetitions, machine read bandwidth {:.1f} GB/s\n",
                             args.model, format_bytes(weight_bytes), threads, args.repetitions, machine_gbs);
    std::cout << fmt::format("{}, SIMD target {}, L2 {} KiB per core; kernels:\n", cpu, simd_target_name(), l2_kib);
    std::vector<std::string> seen;  // one line per distinct set of kernels
    for (const auto& r : rows) {
      const std::string test = r["test"];
      std::string entry =
          test[0] == 't' ? "- generation, " + r["key"].get<std::string>() + "/" + r["value"].get<std::string>() + ":"
                         : "- " + test + ":";
      for (const auto& [name, kernel] : r["kernels"].items())
        entry += " " + name + " = " + kernel.get<std::string>() + ";";
      entry.pop_back();
      if (std::find(seen.begin(), seen.end(), entry) == seen.end()) seen.push_back(entry), std::cout << entry << "\n";
    }
    std::cout << "\n";
    std::cout << "| K | V | test | depth | tok/s (median ± stdev) | GB/s | of bandwidth |\n";
    std::cout << "|---|---|---|---:|---:|---:|---:|\n";
    for (const auto& r : rows) {
      std::cout << fmt::format(
          "| {} | {} | {} | {} | {:.2f} ± {:.2f} | {} | {} |\n", r["key"].get<std::string>(),
          r["value"].get<std::string>(), r["test"].get<std::string>(), r["depth"].get<int>(),
          r["tok_s_median"].get<double>(), r["tok_s_stdev"].get<double>(),
          r.contains("gbs") ? fmt::format("{:.1f}", r["gbs"].get<double>()) : "",
          r.contains("gbs") ? fmt::format("{:.0f}%", 100 * r["bandwidth_fraction"].get<double>()) : "");
    }
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "prompt processing and generation speed");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--n-prompt", args->n_prompt, "prompt lengths, comma-separated (0 = skip)")->capture_default_str();
  cmd->add_option("-n,--n-gen", args->n_gen, "generated tokens, comma-separated (0 = skip)")->capture_default_str();
  cmd->add_option("-d,--depth", args->depths, "context depths, comma-separated")->capture_default_str();
  cmd->add_option("--kvq-key,--cache-type-k", args->keys,
                  "key cache types (also -ctk), comma-separated (bits or names), env KVQ_KEY")
      ->delimiter(',')
      ->capture_default_str()
      ->envname("KVQ_KEY");
  cmd->add_option("--kvq-val,--cache-type-v", args->values,
                  "value cache types (also -ctv), comma-separated (bits or names), env KVQ_VAL")
      ->delimiter(',')
      ->capture_default_str()
      ->envname("KVQ_VAL");
  cmd->add_option("--kv-pairs", args->pairs, "K/V pairs to compare, e.g. f16/f16,q8_0/q4_0 (instead of keys x values)")
      ->delimiter(',');
  cmd->add_option("--streams", args->streams,
                  "batched decode of N sequences per step, comma-separated (e.g. 1,2,4,8): aggregate tok/s of -n steps "
                  "and the time to first token of a -p prompt while the others decode");
  cmd->add_option("-r,--repetitions", args->repetitions, "repetitions per test")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("-o,--output", args->output, "md, csv or json")->capture_default_str();
  add_kept_options(cmd, args->kept);
  cmd->callback([args] { set_exit_code(run_bench(*args)); });
}

}  // namespace kvq::cli
