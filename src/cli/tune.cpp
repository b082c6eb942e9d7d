// kvq tune: per-layer key and value types chosen for a memory budget or a quality target. Measures each
// slot's KL-divergence on calibration chunks against one f16 baseline, predicts an assignment's cost as
// their sum, searches the best assignment (eval/tune.h), keeps whichever of it, the best predicted uniform
// configurations and the first/last-layers-higher heuristic measures best as a whole on the calibration
// chunks (budget runs), then measures them all on held-out chunks.
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_setup.h"
#include "cli/tune_output.h"
#include "eval/interrupt.h"
#include "eval/model_eval.h"
#include "eval/report.h"
#include "eval/tune_cache.h"
#include "model/identity.h"
#include "util/progress.h"
#include "util/system.h"

namespace kvq::cli {
namespace {

struct TuneArgs {
  std::string model;
  std::string text;
  int n_ctx = 256;
  std::string budget;              // "5.0" bits/value, "2GiB" bytes at -c, "2GiB@32768" bytes at a context
  double max_kld = -1;             // < 0: not given
  double max_dppl = -1;            // percent; < 0: not given
  std::vector<std::string> types;  // empty: eval::kTuneCandidates
  int calib_chunks = 8;
  int eval_chunks = 64;
  int uniform_measured = 3;
  bool no_eval = false;
  std::string out = "kvq-tune.json";
  std::string resume;
  bool json = false;
  int threads = 0;
  KvOptions kept;  // --kvq-sinks, --kvq-window, --kvq-keep: kept by every quantized candidate
};

// The target, and the cache shape its bytes are counted at.
struct ParsedTarget {
  eval::TuneTarget target;
  KvCacheShape shape;
  std::string text;
};

Result<ParsedTarget> parse_target(const TuneArgs& args, const Model& model) {
  const int given = int(!args.budget.empty()) + int(args.max_kld >= 0) + int(args.max_dppl >= 0);
  if (given != 1) return make_error("give exactly one of --budget, --max-kld, --max-dppl ({} given)", given);
  ParsedTarget p;
  p.shape = model.cache_shape(args.n_ctx);
  if (args.max_kld >= 0 || args.max_dppl >= 0) {
    const bool kld = args.max_kld >= 0;
    p.target.kind = kld ? eval::TuneTarget::Kind::kMaxKld : eval::TuneTarget::Kind::kMaxDppl;
    p.target.max_value = kld ? args.max_kld : args.max_dppl;
    p.text = kld ? fmt::format("KLD <= {}", args.max_kld) : fmt::format("ΔPPL <= {}%", args.max_dppl);
    return p;
  }
  const std::string& b = args.budget;
  const size_t at = b.find('@');
  char* end = nullptr;
  const double bits = std::strtod(b.c_str(), &end);
  if (at == std::string::npos && end && *end == '\0' && end != b.c_str()) {
    // A bare number: bits per value, averaged over every K and V value as `kvq info` counts them.
    if (!(bits > 0 && bits <= 64)) {
      return make_error("--budget {}: a bare number is bits per value, in (0, 64]; bytes take a unit (2GiB, 1e9B)", b);
    }
    const uint64_t f16 = KvCache::bytes(p.shape, std::vector<KvTypes>(size_t(p.shape.n_layer)));
    p.target.budget_bytes = uint64_t(std::floor(bits / 16.0 * double(f16)));
    p.text = fmt::format("{} bits/value = {} bytes at {} tokens", bits, p.target.budget_bytes, args.n_ctx);
    return p;
  }
  auto bytes = parse_size(b.substr(0, at));
  if (!bytes)
    return make_error("--budget: {} (or bits per value, e.g. 5.0; or bytes at a context, 2GiB@32768)",
                      bytes.error().message);
  int ctx = args.n_ctx;
  if (at != std::string::npos) {
    const std::string ctx_text = b.substr(at + 1);
    const auto [ptr, ec] = std::from_chars(ctx_text.data(), ctx_text.data() + ctx_text.size(), ctx);
    if (ec != std::errc() || ptr != ctx_text.data() + ctx_text.size() || ctx <= 0) {
      return make_error("--budget {}: '{}' is not a context length", b, ctx_text);
    }
    p.shape = model.cache_shape(ctx);
  }
  p.target.budget_bytes = *bytes;
  p.text = fmt::format("{} bytes ({}) at {} tokens", *bytes, format_bytes(double(*bytes)), ctx);
  return p;
}

// The candidates, f16 first: it is always the reference the others are measured against, and a
// choice only when --types names it (or is not given).
struct Candidates {
  std::vector<GgmlType> types;
  bool baseline_is_choice = true;
};

Result<Candidates> candidate_types(const TuneArgs& args) {
  Candidates c{std::vector<GgmlType>(std::begin(eval::kTuneCandidates), std::end(eval::kTuneCandidates)), true};
  if (args.types.empty()) return c;
  auto parsed = parse_kv_type_list(args.types, "--types");
  if (!parsed) return parsed.error();
  c.types = {GgmlType::F16};
  c.baseline_is_choice = false;
  for (GgmlType t : *parsed) {
    if (t == GgmlType::F16)
      c.baseline_is_choice = true;
    else
      c.types.push_back(t);
  }
  return c;
}

int run_tune(const TuneArgs& args) {
  const std::atomic<bool>& stop = eval::install_interrupt_handler();
  const auto start = std::chrono::steady_clock::now();
  const int threads = set_threads(args.threads);
  auto candidates = candidate_types(args);
  if (!candidates) return report_error(candidates.error()), 1;
  const std::vector<GgmlType>* types = &candidates->types;
  auto model = Model::load(args.model);
  if (!model) return report_error(model.error()), 1;
  Model& m = **model;
  const ModelConfig& c = m.config();
  auto kept = kv_kept(args.kept);
  if (!kept) return report_error(kept.error()), 1;
  if (is_head_scaled(kept->type) && c.head_dim % kHeadGroup != 0) {
    return report_error(make_error("--kvq-keep {} needs a head_dim that is a multiple of {}; this model's is {}",
                                   type_name(kept->type), kHeadGroup, c.head_dim)),
           1;
  }
  if (args.types.empty() && c.head_dim % kHeadGroup != 0) {  // the default list: drop what this model cannot store
    std::erase_if(candidates->types, [](GgmlType t) { return is_head_scaled(t); });
  }
  eval::SensitivityTable table(c.n_layer, candidates->types, candidates->baseline_is_choice, *kept);
  auto target = parse_target(args, m);
  if (!target) return report_error(target.error()), 1;
  if (target->target.kind == eval::TuneTarget::Kind::kBudget) {
    // An impossible budget is refused before any measuring: the smallest type on every slot.
    uint64_t least = UINT64_MAX;
    for (size_t t = 0; t < types->size(); ++t) {
      if (t == 0 && !candidates->baseline_is_choice) continue;
      const GgmlType type = (*types)[t];
      least = std::min(least,
                       KvCache::bytes(target->shape, std::vector<KvTypes>(c.n_layer, table.layer_types(type, type))));
    }
    const uint64_t f16 = KvCache::bytes(target->shape, std::vector<KvTypes>(size_t(c.n_layer)));
    if (target->target.budget_bytes < least) {
      return report_error(make_error("--budget {}: {} bytes ({:.3f} bits/value) is below the smallest assignment, "
                                     "{} bytes ({:.3f} bits/value: the smallest candidate type on every layer)",
                                     args.budget, target->target.budget_bytes,
                                     16.0 * double(target->target.budget_bytes) / double(f16), least,
                                     16.0 * double(least) / double(f16))),
             1;
    }
  }
  auto tokenizer = Tokenizer::from_gguf(m.file());
  if (!tokenizer) return report_error(tokenizer.error()), 1;
  auto text = read_text_file(args.text);
  if (!text) return report_error(text.error()), 1;
  const eval::EvalText tokens = eval::tokenize_eval_text(*tokenizer, *text);
  const eval::TuneSplit split{args.n_ctx, args.calib_chunks, args.eval_chunks};
  if (Status st = eval::check_split(split, tokens.tokens.size()); !st) {
    return report_error(make_error("{}: {}", args.text, st.message())), 1;
  }
  if (args.n_ctx > c.n_ctx_train) {
    std::fprintf(stderr, "kvq: warning: context %d exceeds the model's trained context %d\n", args.n_ctx,
                 c.n_ctx_train);
  }

  eval::TuneBackend backend;
  backend.tokens = tokens.tokens;
  backend.n_vocab = c.n_vocab;
  backend.bos = tokens.bos;
  backend.n_layer = c.n_layer;
  if (Status st = eval::fingerprint_model(args.model, backend.identity); !st) return report_error(st.error()), 1;
  eval::fingerprint_text(*text, backend.identity);
  backend.make_evaluator = [&m](std::vector<KvTypes> layers, int n_ctx) -> Result<eval::ChunkEvaluator> {
    // Rotated as the CLI's default (auto) rotates them, so a tuned spec runs as it was measured.
    for (KvTypes& t : layers) t.rotation = KvRotation::kAuto, t = resolve_rotation(t);
    auto cache = m.make_cache(n_ctx, layers);
    if (!cache) return cache.error();
    auto owned = std::make_shared<KvCache>(std::move(*cache));  // lives as long as the evaluator
    return eval::ChunkEvaluator([&m, owned](std::span<const int32_t> chunk, float* logits) {
      return m.forward(chunk, 0, *owned, logits, true);
    });
  };

  const eval::TuneCacheKey cache_key{backend.identity, c.n_layer, args.n_ctx, args.calib_chunks, kv_kept_name(*kept)};
  if (!args.resume.empty() && std::filesystem::exists(args.resume)) {
    auto saved = read_text_file(args.resume);
    if (!saved) return report_error(saved.error()), 1;
    auto taken = eval::load_tune_cache(*saved, cache_key, table);
    if (!taken) return report_error(make_error("--resume {}: {}", args.resume, taken.error().message)), 1;
    std::fprintf(stderr, "kvq: %s: %d measurements reused, %d to go\n", args.resume.c_str(), *taken,
                 table.unmeasured());
  }
  const int n_compared = 2 + args.uniform_measured + 1;  // a baseline, tuned, uniform, first/last
  const double measure_chunks = eval::sensitivity_chunks(table, split);
  const bool budget_run = target->target.kind == eval::TuneTarget::Kind::kBudget;
  const double total = measure_chunks + (budget_run ? n_compared * split.calib_chunks : 0) +
                       (args.no_eval ? 0 : n_compared * split.eval_chunks);
  std::fprintf(stderr,
               "kvq: %s: %zu tokens; %d layers x 2 sides x %zu types, %d slots to measure on %d calibration "
               "chunks of %d, held-out %d chunks; %d threads\n",
               args.text.c_str(), tokens.tokens.size(), c.n_layer, types->size() - 1, table.unmeasured(),
               split.calib_chunks, split.n_ctx, split.eval_chunks, threads);

  ProgressBar bar(total);
  double chunks_done = 0;  // before the running step
  eval::TuneCallbacks callbacks;
  callbacks.stop = &stop;
  callbacks.progress = [&](double done, std::string_view status) { bar.update(chunks_done + done, status); };
  callbacks.on_measurement = [&](int, KvSide, GgmlType, const eval::SlotMeasurement&) -> Status {
    if (args.resume.empty()) return Status::Ok();
    return eval::write_file_atomic(args.resume, eval::tune_cache_text(cache_key, table));
  };
  auto finished = eval::measure_sensitivities(backend, split, table, callbacks);
  chunks_done = measure_chunks;
  if (!finished) return bar.finish(), report_error(finished.error()), 1;
  if (!*finished) {
    bar.finish();
    std::fprintf(stderr, "kvq: interrupted: %d slots still unmeasured%s\n", table.unmeasured(),
                 args.resume.empty()
                     ? " (give --resume FILE to keep measurements across runs)"
                     : fmt::format("; the others are in {}, rerun with the same --resume", args.resume).c_str());
    return eval::kInterruptedExitCode;
  }

  auto tuned = eval::search_assignment(table, target->shape, target->target);
  if (!tuned) return bar.finish(), report_error(tuned.error()), 1;
  TuneReport report;
  report.model = args.model;
  report.target = target->text;
  report.n_ctx = args.n_ctx;
  report.split = split;
  // In a quality-target run the comparison budget is what the tuned assignment takes.
  report.budget_bytes =
      target->target.kind == eval::TuneTarget::Kind::kBudget ? target->target.budget_bytes : tuned->bytes;
  report.compared.push_back({"tuned", *tuned, std::nullopt, std::nullopt});
  std::vector<eval::TuneChoice> uniform = eval::uniform_choices(table, target->shape, report.budget_bytes);
  for (int i = 0; i < std::min<int>(args.uniform_measured, int(uniform.size())); ++i) {
    report.compared.push_back({"uniform", uniform[size_t(i)], std::nullopt, std::nullopt});
  }
  if (auto heuristic = eval::first_last_choice(table, target->shape, report.budget_bytes); heuristic) {
    report.compared.push_back({"first/last", *heuristic, std::nullopt, std::nullopt});
  } else {
    std::fprintf(stderr, "kvq: %s\n", heuristic.error().message.c_str());
  }
  if (budget_run) {
    // The finalists measured as wholes on the calibration chunks: the lowest KLD is the tuned assignment.
    std::vector<std::vector<KvTypes>> finalists;
    for (const TuneCandidate& cand : report.compared) finalists.push_back(cand.choice.layers);
    auto kld = eval::measure_finalists(backend, split, finalists, callbacks, chunks_done);
    if (!kld) return bar.finish(), report_error(kld.error()), stop.load() ? eval::kInterruptedExitCode : 1;
    chunks_done += double(finalists.size() + 1) * split.calib_chunks;
    size_t best = 0;
    for (size_t i = 0; i < kld->size(); ++i) {
      report.compared[i].calibration_kld = (*kld)[i];
      if ((*kld)[i] < (*kld)[best]) best = i;
    }
    if (best != 0) {
      std::fprintf(stderr, "kvq: on the calibration chunks %s (%s, KLD %.3e) beats the search's optimum (%.3e)\n",
                   report.compared[best].label.c_str(), eval::kv_layers_string(finalists[best]).c_str(), (*kld)[best],
                   (*kld)[0]);
      *tuned = report.compared[best].choice;
      report.compared[0].choice = *tuned;
      report.compared[0].calibration_kld = (*kld)[best];
    }
  }
  report.tune_seconds = seconds_since(start);
  std::fprintf(stderr, "kvq: measured and searched in %s\n", format_duration(report.tune_seconds).c_str());

  if (!args.no_eval) {
    auto held_out = eval::HeldOutEvaluation::create(backend, split, callbacks, 0);
    if (!held_out) return bar.finish(), report_error(held_out.error()), stop.load() ? eval::kInterruptedExitCode : 1;
    chunks_done += split.eval_chunks;
    report.base_ppl = held_out->base_ppl();
    for (TuneCandidate& cand : report.compared) {
      auto r = held_out->evaluate(cand.choice.layers, callbacks, 0);
      if (!r) return bar.finish(), report_error(r.error()), stop.load() ? eval::kInterruptedExitCode : 1;
      cand.held_out = *r;
      chunks_done += split.eval_chunks;
    }
    // The best uniform configuration is the one of lowest held-out KLD; the others go. (Not the lowest
    // ΔPPL: on a few thousand tokens ΔPPL moves by its noise, and picking the least of several noisy
    // values would flatter the uniform side.)
    auto is_uniform = [](const TuneCandidate& t) { return t.label == "uniform"; };
    auto best = report.compared.end();
    for (auto it = report.compared.begin(); it != report.compared.end(); ++it) {
      if (is_uniform(*it) &&
          (best == report.compared.end() || it->held_out->kld.kld_mean < best->held_out->kld.kld_mean)) {
        best = it;
      }
    }
    std::vector<TuneCandidate> kept;
    for (auto it = report.compared.begin(); it != report.compared.end(); ++it) {
      if (!is_uniform(*it) || it == best) kept.push_back(*it);
    }
    report.compared = std::move(kept);
    report.eval_seconds = seconds_since(start) - report.tune_seconds;
  }
  bar.finish();

  KvSpecFile spec;
  spec.model = identify_model(m.file(), c);
  spec.layers = tuned->layers;
  spec.tuned_json = nlohmann::json{
      {"target", report.target},
      {"n_ctx", args.n_ctx},
      {"bytes", tuned->bytes},
      {"predicted_kld", tuned->predicted_kld},
      {"text",
       args.text}}.dump();
  report.spec_path = args.out;
  if (Status st = eval::write_file_atomic(args.out, kv_spec_file_text(spec)); !st) return report_error(st.error()), 1;

  if (args.json) {
    print_json(tune_json(report, table, target->shape));
  } else {
    std::cout << tune_layer_table(table, target->shape, tuned->layers) << "\n"
              << "--kvq-layers " << eval::kv_layers_string(tuned->layers) << "\n\n"
              << tune_comparison_table(report, target->shape) << std::flush;
  }
  std::fprintf(stderr, "kvq: %s; spec written to %s (use --kvq-layers @%s); %s in all\n", report.target.c_str(),
               args.out.c_str(), args.out.c_str(), format_duration(seconds_since(start)).c_str());
  return 0;
}

}  // namespace

void register_tune(CLI::App& app) {
  auto args = std::make_shared<TuneArgs>();
  CLI::App* cmd = app.add_subcommand("tune", "per-layer K/V types chosen for a memory budget or a quality target");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-f,--file", args->text, "text file: calibration chunks first, then held-out ones")->required();
  cmd->add_option("-c,--ctx-size", args->n_ctx, "context length = chunk size")->capture_default_str();
  cmd->add_option("--budget", args->budget,
                  "memory budget: bits per value (5.0), bytes at -c (2GiB), or bytes at a context (2GiB@32768)");
  cmd->add_option("--max-kld", args->max_kld, "quality target: predicted mean KLD at most this; minimises memory");
  cmd->add_option("--max-dppl", args->max_dppl, "quality target: predicted ΔPPL at most this many percent");
  cmd->add_option("--types", args->types, "candidate types, comma-separated (f16 always included; default all)")
      ->delimiter(',');
  cmd->add_option("--calib-chunks", args->calib_chunks, "calibration chunks (the first ones)")->capture_default_str();
  cmd->add_option("--eval-chunks", args->eval_chunks, "held-out chunks (after the calibration ones)")
      ->capture_default_str();
  cmd->add_option("--uniform-measured", args->uniform_measured,
                  "uniform configurations measured on held-out text (the best predicted ones)")
      ->capture_default_str();
  cmd->add_flag("--no-eval", args->no_eval, "skip the held-out measurement");
  cmd->add_option("-o,--out", args->out, "JSON spec file to write (for --kvq-layers @FILE)")->capture_default_str();
  cmd->add_option("--resume", args->resume, "measurements file: read when present, rewritten after each one");
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  add_kept_options(cmd, args->kept);
  cmd->callback([args] { set_exit_code(run_tune(*args)); });
}

}  // namespace kvq::cli
