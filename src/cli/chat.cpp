// kvq chat: terminal chat with the model's own chat template. One engine slot holds the conversation, so
// each turn only evaluates what is new (the slot reuses its cached prefix). Ctrl-C stops the answer being
// written, not the program; /reset starts over; Ctrl-D or /exit leaves. Works with piped input too.
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_setup.h"
#include "serve/chat_format.h"
#include "serve/engine.h"
#include "util/system.h"

namespace kvq::cli {
namespace {

struct ChatArgs {
  std::string model;
  std::string system;
  std::string chat_template;
  int n_ctx = 0;       // 0 = min(trained, 4096)
  int n_predict = -1;  // per answer; -1 = until the end of the turn or of the context
  int threads = 0;
  int64_t seed = -1;
  SamplerParams sampling;
  KvOptions kv;
};

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

int run_chat(ChatArgs args) {
  set_threads(args.threads);
  auto loaded = load_model(args.model, args.kv);
  if (!loaded) return report_error(loaded.error()), 1;
  Model& model = *loaded->model;
  auto tokenizer = Tokenizer::from_gguf(model.file());
  if (!tokenizer) return report_error(tokenizer.error()), 1;
  auto formatter = serve::make_chat_formatter(model.file(), *tokenizer, args.chat_template);
  if (!formatter) return report_error(formatter.error()), 1;
  if (!*formatter) {
    return report_error(make_error("{} has no chat template (tokenizer.chat_template): give one with --chat-template "
                                   "FILE",
                                   args.model)),
           1;
  }
  if (args.n_ctx <= 0) args.n_ctx = std::min(model.config().n_ctx_train, 4096);
  auto cache_check = make_checked_cache(*loaded, args.n_ctx);  // the up-front memory refusal, with figures
  if (!cache_check) return report_error(cache_check.error()), 1;
  const std::string memory = describe_cache_memory(*cache_check);
  cache_check = make_error("released");  // the engine allocates its own slot
  auto engine = serve::Engine::create(model, *tokenizer, {1, args.n_ctx, loaded->kv_types, 1, 256});
  if (!engine) return report_error(engine.error()), 1;

  const bool interactive = isatty(STDIN_FILENO);
  std::signal(SIGINT, on_interrupt);
  std::fprintf(stderr, "kvq chat: %s, context %d, KV %s%s\n", args.model.c_str(), args.n_ctx, memory.c_str(),
               interactive ? "\n  /reset starts over, Ctrl-C stops an answer, Ctrl-D leaves" : "");
  std::vector<serve::ChatMessage> history;
  if (!args.system.empty()) history.push_back({"system", args.system});
  std::mt19937_64 seeds(args.seed >= 0 ? uint64_t(args.seed) : std::random_device{}());
  std::string line;
  for (;;) {
    if (interactive) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.resize(args.system.empty() ? 0 : 1);
      std::fprintf(stderr, "kvq chat: conversation cleared\n");
      continue;
    }
    history.push_back({"user", line});
    auto text = (*formatter)(history);
    if (!text) {
      report_error(text.error());
      history.pop_back();
      continue;
    }
    std::vector<int32_t> prompt = tokenizer->encode(*text, false, /*parse_special=*/true);
    if (tokenizer->add_bos() && (prompt.empty() || prompt.front() != tokenizer->bos())) {
      prompt.insert(prompt.begin(), tokenizer->bos());
    }
    serve::GenerationParams params{args.sampling, args.n_predict, {}};
    params.sampling.seed = seeds();
    serve::SubmitStatus status;
    std::string message;
    auto job = (*engine)->submit(std::move(prompt), params, status, message);
    if (!job) {
      report_error(make_error("{}; /reset starts a new conversation", message));
      history.pop_back();
      continue;
    }
    g_interrupted = false;
    const auto start = std::chrono::steady_clock::now();
    std::string answer;
    serve::GenerationEvent done;
    while (!done.done) {
      if (g_interrupted) job->cancel();
      for (serve::GenerationEvent& e : job->wait(std::chrono::milliseconds(50))) {
        std::cout << e.text << std::flush;
        answer += e.text;
        if (e.done) done = e;
      }
    }
    std::cout << "\n" << std::flush;
    const double seconds = seconds_since(start);
    history.push_back({"assistant", answer});
    std::fprintf(stderr, "kvq chat: %s%d prompt tokens (%d reused), %d generated, %.1f tok/s\n",
                 done.error == "cancelled" ? "stopped; " : "", done.prompt_tokens, done.cached_tokens,
                 done.completion_tokens, seconds > 0 ? done.completion_tokens / seconds : 0.0);
  }
  return 0;
}

}  // namespace

void register_chat(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "terminal chat with the model's chat template");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("--system", args->system, "system message");
  cmd->add_option("--chat-template", args->chat_template, "Jinja chat template file (overrides the model's)");
  cmd->add_option("-c,--ctx-size", args->n_ctx, "context length of the conversation (0 = min(trained, 4096))")
      ->capture_default_str();
  cmd->add_option("-n,--n-predict", args->n_predict, "most tokens per answer (-1 = no limit)")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  add_sampling_options(cmd, args->sampling);
  cmd->add_option("--seed", args->seed, "sampling seed (-1 = random)")->capture_default_str();
  add_kv_options(cmd, args->kv);
  cmd->callback([args] { set_exit_code(run_chat(*args)); });
}

}  // namespace kvq::cli
