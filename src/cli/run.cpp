// kvq run: generate text from a prompt; stats on stderr.
#include <chrono>
#include <iostream>
#include <random>

#include "cli/commands.h"
#include "cli/model_setup.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/system.h"

namespace kvq::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  int n_predict = 128;
  int n_ctx = 0;  // 0 = min(trained context, 4096)
  int threads = 0;
  int64_t seed = -1;
  SamplerParams sampling;
  KvOptions kv;
};

int run_generate(RunArgs args) {
  const int threads = set_threads(args.threads);
  auto loaded = load_model(args.model, args.kv);
  if (!loaded) return report_error(loaded.error()), 1;
  Model& model = *loaded->model;
  const ModelConfig& c = model.config();
  auto tokenizer = Tokenizer::from_gguf(model.file());
  if (!tokenizer) return report_error(tokenizer.error()), 1;

  const int n_ctx = args.n_ctx > 0 ? args.n_ctx : std::min(c.n_ctx_train, 4096);
  std::vector<int32_t> tokens = tokenizer->encode(args.prompt, true);
  if (tokens.empty()) tokens.push_back(tokenizer->bos());
  if (int(tokens.size()) >= n_ctx) {
    return report_error(make_error("the prompt is {} tokens; it does not fit a context of {}", tokens.size(), n_ctx)),
           1;
  }
  auto cache = make_checked_cache(*loaded, n_ctx);
  if (!cache) return report_error(cache.error()), 1;
  std::fprintf(stderr, "kvq: %s, %d threads, context %d, prompt %zu tokens\n", args.model.c_str(), threads, n_ctx,
               tokens.size());

  if (args.seed < 0)
    args.sampling.seed = std::random_device{}();
  else
    args.sampling.seed = uint64_t(args.seed);
  Sampler sampler(args.sampling);
  std::vector<float> logits(size_t(c.n_vocab));  // [n_vocab] of the last evaluated token

  std::cout << args.prompt << std::flush;
  auto start = std::chrono::steady_clock::now();
  if (Status st = model.forward(tokens, 0, *cache, logits.data(), false); !st) {
    return report_error(st.error()), 1;
  }
  const double prompt_seconds = seconds_since(start);
  const int n_prompt = int(tokens.size());

  start = std::chrono::steady_clock::now();
  int n_generated = 0;
  int pos = n_prompt;
  while (n_generated < args.n_predict && pos < n_ctx) {
    const int32_t next = sampler.sample(logits.data(), c.n_vocab);
    if (tokenizer->is_eog(next)) break;
    std::string piece = tokenizer->token_to_piece(next);
    // After an empty prompt the first word's SentencePiece space prefix is not text the user wrote.
    if (n_generated == 0 && args.prompt.empty() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    std::cout << piece << std::flush;
    ++n_generated;
    if (n_generated == args.n_predict || pos + 1 >= n_ctx) break;
    const int32_t one[1] = {next};
    if (Status st = model.forward(one, pos, *cache, logits.data(), false); !st) {
      return report_error(st.error()), 1;
    }
    ++pos;
  }
  const double gen_seconds = seconds_since(start);
  std::cout << std::endl;

  // Each generated token streams every weight once plus the cache up to its position.
  const double weight_bytes = double(model.weights().total_bytes);
  const double kv_per_token = double(cache->bytes()) / n_ctx;
  const double mean_depth = n_prompt + n_generated / 2.0;
  const double gen_tps = n_generated > 1 ? (n_generated - 1) / gen_seconds : 0.0;
  std::fprintf(stderr,
               "\nkvq: prompt %d tokens in %.2f s (%.1f tok/s); generated %d tokens (%.2f tok/s, "
               "%.1f ms/token, %.1f GB/s)\nkvq: KV %s\n",
               n_prompt, prompt_seconds, n_prompt / prompt_seconds, n_generated, gen_tps,
               gen_tps > 0 ? 1000.0 / gen_tps : 0.0, gen_tps * (weight_bytes + kv_per_token * mean_depth) / 1e9,
               describe_cache_memory(*cache).c_str());
  return 0;
}

}  // namespace

void register_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "generate text from a prompt");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", args->prompt, "prompt text")->capture_default_str();
  cmd->add_option("-n,--n-predict", args->n_predict, "tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx-size", args->n_ctx, "context length (0 = min(trained, 4096))")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  add_sampling_options(cmd, args->sampling);
  cmd->add_option("--seed", args->seed, "sampling seed (-1 = random)")->capture_default_str();
  add_kv_options(cmd, args->kv);
  cmd->callback([args] { set_exit_code(run_generate(*args)); });
}

}  // namespace kvq::cli
