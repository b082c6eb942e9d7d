// kvq perplexity: llama.cpp-compatible perplexity of a text (DESIGN.md §5), optionally saving a
// KL-divergence baseline (--kld-base) or comparing against one (--kld).
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/model_setup.h"
#include "eval/interrupt.h"
#include "eval/model_eval.h"
#include "util/progress.h"

namespace kvq::cli {
namespace {

struct PerplexityArgs {
  std::string model;
  std::string text;
  int n_ctx = 512;
  int chunks = 0;
  int threads = 0;
  std::string kld_base;  // write the baseline here
  std::string kld;       // compare against this baseline
  bool json = false;
  KvOptions kv;
};

nlohmann::json kld_json(const eval::KldStats& k) {
  return {{"n", k.n},
          {"kld_mean", k.kld_mean},
          {"kld_stderr", k.kld_stderr},
          {"kld_median", k.kld_median},
          {"kld_p99", k.kld_p99},
          {"kld_max", k.kld_max},
          {"ppl_ratio", k.ppl_ratio},
          {"ppl_ratio_stderr", k.ppl_ratio_stderr},
          {"ln_ppl_ratio", k.ln_ppl_ratio},
          {"ln_ppl_ratio_stderr", k.ln_ppl_ratio_stderr},
          {"rms_dp", k.rms_dp},
          {"rms_dp_stderr", k.rms_dp_stderr},
          {"top1_pct", k.top1_pct},
          {"top1_pct_stderr", k.top1_pct_stderr}};
}

void print_kld(const eval::KldStats& k) {
  std::printf("KL-divergence over %lld positions:\n", static_cast<long long>(k.n));
  std::printf("  mean KLD       %.6f ± %.6f\n", k.kld_mean, k.kld_stderr);
  std::printf("  median KLD     %.6f\n", k.kld_median);
  std::printf("  99th pct KLD   %.6f\n", k.kld_p99);
  std::printf("  max KLD        %.6f\n", k.kld_max);
  std::printf("  PPL ratio      %.5f ± %.5f (PPL / base PPL)\n", k.ppl_ratio, k.ppl_ratio_stderr);
  std::printf("  RMS Δp         %.4f ± %.4f %%\n", 100.0 * k.rms_dp, 100.0 * k.rms_dp_stderr);
  std::printf("  same top token %.3f ± %.3f %%\n", k.top1_pct, k.top1_pct_stderr);
}

int run_perplexity_command(const PerplexityArgs& args) {
  if (!args.kld.empty() && !args.kld_base.empty()) {
    return report_error(make_error("--kld-base (write a baseline) and --kld (compare with one) "
                                   "are separate runs; give one of them")),
           1;
  }
  const std::atomic<bool>& stop = eval::install_interrupt_handler();
  const int threads = set_threads(args.threads);
  auto loaded = load_model(args.model, args.kv);
  if (!loaded) return report_error(loaded.error()), 1;
  Model& model = *loaded->model;
  auto tokenizer = Tokenizer::from_gguf(model.file());
  if (!tokenizer) return report_error(tokenizer.error()), 1;
  auto text = read_text_file(args.text);
  if (!text) return report_error(text.error()), 1;

  const eval::EvalText tokens = eval::tokenize_eval_text(*tokenizer, *text);
  auto plan = eval::plan_chunks(tokens.tokens.size(), args.n_ctx, args.chunks);
  if (!plan) return report_error(make_error("{}: {}", args.text, plan.error().message)), 1;
  auto cache = make_checked_cache(*loaded, args.n_ctx);
  if (!cache) return report_error(cache.error()), 1;

  eval::KldIdentity identity;
  if (Status st = eval::fingerprint_model(args.model, identity); !st) {
    return report_error(st.error()), 1;
  }
  eval::fingerprint_text(*text, identity);
  identity.n_vocab = model.config().n_vocab;
  identity.n_ctx = plan->n_ctx;
  identity.n_chunks = plan->n_chunks;
  identity.base_kv = describe_kv_types(loaded->kv_types);

  std::optional<eval::KldBase> compare, record;
  if (!args.kld.empty()) {
    auto base = eval::KldBase::load(args.kld);
    if (!base) return report_error(base.error()), 1;
    if (Status st = base->check_matches(identity); !st) {
      return report_error(make_error("{}: {}", args.kld, st.message())), 1;
    }
    compare.emplace(std::move(*base));
  }
  if (!args.kld_base.empty()) record.emplace(identity);

  std::fprintf(stderr, "kvq: %s: %zu tokens, %d chunks of %d, scoring %lld tokens; %d threads; KV %s\n",
               args.text.c_str(), tokens.tokens.size(), plan->n_chunks, plan->n_ctx,
               static_cast<long long>(plan->scored_total()), threads, describe_cache_memory(*cache).c_str());
  ProgressBar bar(double(plan->n_chunks));
  eval::ModelPerplexityOptions options;
  options.max_chunks = args.chunks;
  options.record_base = record ? &*record : nullptr;
  options.compare_base = compare ? &*compare : nullptr;
  options.stop = &stop;
  options.on_chunk = [&](int done, int total) { bar.update(double(done), fmt::format("chunk {}/{}", done, total)); };
  auto result = eval::model_perplexity(model, *cache, tokens, options);
  bar.finish();
  if (!result) return report_error(result.error()), 1;
  const eval::PerplexityResult& r = result->ppl;
  if (r.interrupted) {
    std::fprintf(stderr, "kvq: interrupted after %d of %d chunks; the estimate covers those\n", r.n_chunks,
                 plan->n_chunks);
  }
  if (record && !r.interrupted) {
    if (Status st = record->save(args.kld_base); !st) return report_error(st.error()), 1;
    std::fprintf(stderr, "kvq: KLD base written to %s (%zu positions)\n", args.kld_base.c_str(), record->size());
  } else if (record) {
    std::fprintf(stderr, "kvq: no KLD base written: the run was interrupted\n");
  }

  if (args.json) {
    nlohmann::json j = {{"model", args.model},
                        {"text", args.text},
                        {"kv", describe_kv_types(loaded->kv_types)},
                        {"n_ctx", plan->n_ctx},
                        {"n_chunks", r.n_chunks},
                        {"n_scored", r.nll.count},
                        {"ppl", r.ppl()},
                        {"ppl_stderr", r.ppl_stderr()},
                        {"mean_nll", r.nll.mean()},
                        {"seconds", r.seconds},
                        {"tokens_per_second", r.tokens_per_second},
                        {"threads", threads},
                        {"interrupted", r.interrupted}};
    if (result->kld) j["kld"] = kld_json(*result->kld);
    print_json(j);
  } else {
    std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl(), r.ppl_stderr());
    std::printf("tokens scored: %lld over %d chunks of %d; %.1f tok/s (%.2f s)\n", static_cast<long long>(r.nll.count),
                r.n_chunks, plan->n_ctx, r.tokens_per_second, r.seconds);
    if (result->kld) print_kld(*result->kld);
  }
  std::fflush(stdout);
  return r.interrupted ? eval::kInterruptedExitCode : 0;
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* cmd =
      app.add_subcommand("perplexity", "perplexity of a text, llama.cpp's method; KL-divergence against a baseline");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-f,--file", args->text, "text file")->required();
  cmd->add_option("-c,--ctx-size", args->n_ctx, "context length = chunk size")->capture_default_str();
  cmd->add_option("--chunks", args->chunks, "evaluate at most this many chunks (0 = all)")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--kld-base", args->kld_base,
                  "save this run's log-probabilities as a KL-divergence baseline (run it with the "
                  "reference cache, f16 by default)");
  cmd->add_option("--kld", args->kld, "compare with a baseline saved by --kld-base");
  cmd->add_flag("--json", args->json, "print the result as JSON");
  add_kv_options(cmd, args->kv);
  cmd->callback([args] { set_exit_code(run_perplexity_command(*args)); });
}

}  // namespace kvq::cli
