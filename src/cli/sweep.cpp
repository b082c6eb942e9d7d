// kvq sweep: the K type x V type x context matrix of perplexity and KL-divergence in one command.
// Markdown on stdout; CSV + JSON (rewritten after every finished row) and gnuplot charts in -o DIR.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "cli/model_setup.h"
#include "eval/interrupt.h"
#include "eval/model_eval.h"
#include "eval/report.h"
#include "util/progress.h"
#include "util/system.h"

namespace kvq::cli {
namespace {

struct SweepArgs {
  std::string model;
  std::string text;
  std::vector<std::string> keys = {"f16", "q8_0", "q4_0"};
  std::vector<std::string> vals = {"f16", "q8_0", "q4_0"};
  std::vector<std::string> rotations = {"auto"};
  KvOptions kept;  // --kvq-centre, --kvq-sinks, --kvq-window, --kvq-keep: the same for every row
  std::vector<int> contexts = {512};
  int chunks = 0;
  int threads = 0;
  std::string out_dir = "kvq-sweep";
  bool no_charts = false;
};

int run_sweep_command(const SweepArgs& args) {
  const std::atomic<bool>& stop = eval::install_interrupt_handler();
  const auto start = std::chrono::steady_clock::now();
  eval::SweepSpec spec;
  auto keys = parse_kv_type_list(args.keys, "--keys");
  if (!keys) return report_error(keys.error()), 1;
  auto vals = parse_kv_type_list(args.vals, "--vals");
  if (!vals) return report_error(vals.error()), 1;
  spec.keys = *keys;
  spec.vals = *vals;
  spec.rotations.clear();
  for (const std::string& name : args.rotations) {
    auto rotation = parse_kv_rotation(name);
    if (!rotation) return report_error(make_error("--rot: {}", rotation.error().message)), 1;
    spec.rotations.push_back(*rotation);
  }
  auto kept = kv_kept(args.kept);
  if (!kept) return report_error(kept.error()), 1;
  spec.kept = *kept;
  spec.contexts = args.contexts;
  spec.max_chunks = args.chunks;

  const int threads = set_threads(args.threads);
  auto model = Model::load(args.model);
  if (!model) return report_error(model.error()), 1;
  const KvCacheLayout layout = kv_cache_layout(args.kept);
  (*model)->set_kv_layout(layout);
  const ModelConfig& c = (*model)->config();
  auto tokenizer = Tokenizer::from_gguf((*model)->file());
  if (!tokenizer) return report_error(tokenizer.error()), 1;
  auto text = read_text_file(args.text);
  if (!text) return report_error(text.error()), 1;
  const eval::EvalText tokens = eval::tokenize_eval_text(*tokenizer, *text);

  eval::KldIdentity identity;
  if (Status st = eval::fingerprint_model(args.model, identity); !st) {
    return report_error(st.error()), 1;
  }
  eval::fingerprint_text(*text, identity);
  const eval::SweepBackend backend = eval::model_sweep_backend(**model, tokens, identity);

  auto total = eval::sweep_total_tokens(spec, tokens.tokens.size());
  if (!total) return report_error(make_error("{}: {}", args.text, total.error().message)), 1;
  // Up-front checks: a long context is allowed but flagged; the largest cache must fit.
  uint64_t largest = 0;
  for (int n_ctx : spec.contexts) {
    if (n_ctx > c.n_ctx_train) {
      std::fprintf(stderr, "kvq: warning: context %d exceeds the model's trained context %d\n", n_ctx, c.n_ctx_train);
    }
    largest = std::max(largest, backend.cache_bytes(spec.base, n_ctx));
    for (GgmlType k : spec.keys) {
      for (GgmlType v : spec.vals) largest = std::max(largest, backend.cache_bytes({k, v}, n_ctx));
    }
  }
  const uint64_t weights = (*model)->weights().total_bytes;
  if (const uint64_t available = available_memory_bytes(); available && largest + weights > available) {
    return report_error(make_error("the largest cache ({}) + weights ({}) exceed the {} available; "
                                   "use smaller contexts",
                                   format_bytes(double(largest)), format_bytes(double(weights)),
                                   format_bytes(double(available)))),
           1;
  }
  std::vector<std::string> options;  // what applies to every row
  if (layout.centre) options.push_back("centred");
  if (args.kept.sinks > 0 || args.kept.window > 0) {
    options.push_back(fmt::format("sinks {}, window {} at {}", args.kept.sinks, args.kept.window, args.kept.keep));
  }
  const std::string cache_options = options.empty() ? "none" : fmt::format("{}", fmt::join(options, "; "));
  std::fprintf(stderr,
               "kvq: %s: %zu tokens; %zu K x %zu V types x %zu rotations x %zu contexts, %.0f tokens to "
               "evaluate; %d threads; cache options: %s; results in %s/\n",
               args.text.c_str(), tokens.tokens.size(), spec.keys.size(), spec.vals.size(), spec.rotations.size(),
               spec.contexts.size(), *total, threads, cache_options.c_str(), args.out_dir.c_str());

  eval::SweepMeta meta;
  meta.model = args.model;
  meta.text = args.text;
  meta.text_bytes = text->size();
  meta.n_tokens = int64_t(tokens.tokens.size());
  meta.max_chunks = args.chunks;
  meta.threads = threads;
  meta.base_kv = kv_types_name(spec.base);
  meta.cache_options = cache_options;
  meta.complete = false;

  ProgressBar bar(*total);
  eval::SweepCallbacks callbacks;
  callbacks.stop = &stop;
  callbacks.progress = [&](double done, double all, std::string_view status) { bar.update(done, status); };
  callbacks.on_row = [&](const std::vector<eval::SweepRow>& rows) -> Status {
    const eval::SweepRow& r = rows.back();
    bar.message(fmt::format("kvq: {} @ {}: PPL {:.4f} ({:+.2f}%), KLD {:.2e}, top-1 {:.2f}%", kv_types_name(r.kv),
                            r.n_ctx, r.ppl, r.dppl_pct, r.kld.kld_mean, r.kld.top1_pct));
    meta.seconds = seconds_since(start);
    return eval::write_sweep_data(args.out_dir, rows, meta);
  };
  auto result = eval::run_sweep(spec, backend, callbacks);
  bar.finish();
  if (!result) return report_error(result.error()), 1;

  meta.complete = !result->interrupted;
  meta.seconds = seconds_since(start);
  if (Status st = eval::write_sweep_data(args.out_dir, result->rows, meta); !st) {
    return report_error(st.error()), 1;
  }
  if (!args.no_charts && !result->rows.empty()) {
    auto scripts = eval::write_sweep_chart_scripts(args.out_dir, result->rows);
    if (!scripts) return report_error(scripts.error()), 1;
    const std::string gnuplot = eval::find_program("gnuplot");
    if (gnuplot.empty()) {
      std::fprintf(stderr,
                   "kvq: gnuplot not found: wrote the chart scripts (%s/*.gp) but no "
                   "PNG/SVG; install gnuplot and run them there\n",
                   args.out_dir.c_str());
    } else if (Status st = eval::render_charts(gnuplot, args.out_dir, *scripts); !st) {
      std::fprintf(stderr, "kvq: warning: %s\n", st.message().c_str());
    }
  }
  std::cout << eval::sweep_markdown(result->rows) << std::flush;
  std::fprintf(stderr, "kvq: %zu rows in %s; wrote %s/sweep.csv, sweep.json%s\n", result->rows.size(),
               format_duration(meta.seconds).c_str(), args.out_dir.c_str(), args.no_charts ? "" : " and charts");
  if (result->interrupted) {
    std::fprintf(stderr, "kvq: interrupted: the %zu finished rows are kept\n", result->rows.size());
    return eval::kInterruptedExitCode;
  }
  return 0;
}

}  // namespace

void register_sweep(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand("sweep", "perplexity and KL-divergence over every K type x V type x context");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-f,--file", args->text, "text file")->required();
  cmd->add_option("--keys", args->keys, "key cache types, comma-separated")->delimiter(',')->capture_default_str();
  cmd->add_option("--vals", args->vals, "value cache types, comma-separated")->delimiter(',')->capture_default_str();
  cmd->add_option("--rot", args->rotations,
                  "rotations, comma-separated: none, k (keys), kv (keys and values), auto (kv when K or V is "
                  "quantized)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-c,--ctx-size", args->contexts, "context lengths, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--chunks", args->chunks, "chunks per context (0 = all the text holds)")->capture_default_str();
  cmd->add_option("-o,--out", args->out_dir, "output folder for CSV, JSON and charts")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--no-charts", args->no_charts, "skip the gnuplot scripts and images");
  cmd->add_option("--kvq-centre", args->kept.centre, "centre quantized sides on the first batch's mean (kv/kv_cache.h)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  add_kept_options(cmd, args->kept);
  cmd->callback([args] { set_exit_code(run_sweep_command(*args)); });
}

}  // namespace kvq::cli
