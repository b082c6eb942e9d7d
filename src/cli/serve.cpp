// kvq serve: an OpenAI-compatible HTTP server with N concurrent sequences (serve/http_server.h). Every
// slot's cache is allocated at start-up, after checking all of them against --mem-budget or free memory.
#include <csignal>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/model_setup.h"
#include "serve/chat_format.h"
#include "serve/http_server.h"
#include "util/system.h"

namespace kvq::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int n_ctx = 0;  // per slot; 0 = min(trained, 4096)
  int queue = 64;
  int threads = 0;
  int prefill_chunk = 256;
  std::string alias;  // empty: the file's stem
  std::string chat_template;
  std::string mem_budget;
  SamplerParams sampling;
  KvOptions kv;
};

std::atomic<bool> g_stop_requested{false};
extern "C" void on_stop_signal(int) { g_stop_requested = true; }

int run_serve(ServeArgs args) {
  const int threads = set_threads(args.threads);
  auto loaded = load_model(args.model, args.kv);
  if (!loaded) return report_error(loaded.error()), 1;
  Model& model = *loaded->model;
  auto tokenizer = Tokenizer::from_gguf(model.file());
  if (!tokenizer) return report_error(tokenizer.error()), 1;
  if (args.n_ctx == 0) args.n_ctx = std::min(model.config().n_ctx_train, 4096);
  if (args.parallel <= 0 || args.n_ctx <= 1 || args.queue < 0 || args.port < 0 || args.port > 65535) {
    return report_error(make_error("--parallel, -c, --queue must be positive and --port in 0..65535")), 1;
  }
  // Every slot's cache, all at once, against the budget (or the memory this machine has free).
  const uint64_t per_slot = KvCache::bytes(model.cache_shape(args.n_ctx), loaded->kv_types);
  const uint64_t needed = per_slot * uint64_t(args.parallel) + model.weights().total_bytes;
  uint64_t limit = available_memory_bytes();
  std::string limit_name = "available memory";
  if (!args.mem_budget.empty()) {
    auto budget = parse_size(args.mem_budget);
    if (!budget) return report_error(make_error("--mem-budget: {}", budget.error().message)), 1;
    limit = *budget, limit_name = "--mem-budget";
  }
  if (limit && needed > limit) {
    return report_error(make_error("{} slots of context {} do not fit: KV {} per slot ({}) x {} + weights {} = {} > {} "
                                   "{}; use fewer slots, a smaller -c or smaller K/V types",
                                   args.parallel, args.n_ctx, format_bytes(double(per_slot)),
                                   describe_kv_types(loaded->kv_types), args.parallel,
                                   format_bytes(double(model.weights().total_bytes)), format_bytes(double(needed)),
                                   limit_name, format_bytes(double(limit)))),
           1;
  }
  auto formatter = serve::make_chat_formatter(model.file(), *tokenizer, args.chat_template);
  if (!formatter) return report_error(formatter.error()), 1;

  serve::EngineOptions engine_options{args.parallel, args.n_ctx, loaded->kv_types, args.queue, args.prefill_chunk};
  auto engine = serve::Engine::create(model, *tokenizer, engine_options);
  if (!engine) return report_error(engine.error()), 1;
  serve::ServerOptions server_options;
  server_options.host = args.host;
  server_options.port = args.port;
  server_options.model_id = args.alias.empty() ? std::filesystem::path(args.model).stem().string() : args.alias;
  server_options.defaults = args.sampling;
  serve::HttpServer server(**engine, *tokenizer, server_options, *formatter);
  if (Status st = server.bind(); !st) return report_error(st.error()), 1;

  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  std::thread watcher([&] {
    while (!g_stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::fprintf(stderr, "kvq serve: stopping: finishing the requests in flight\n");
    (*engine)->drain();
    server.stop();
  });
  std::fprintf(stderr,
               "kvq serve: %s as '%s' on http://%s:%d, %d slots x %d tokens (KV %s, %s per slot), %d threads%s\n",
               args.model.c_str(), server_options.model_id.c_str(), args.host.c_str(), server.port(), args.parallel,
               args.n_ctx, describe_kv_types(loaded->kv_types).c_str(), format_bytes(double(per_slot)).c_str(), threads,
               *formatter ? "" : ", no chat template (chat requests get 400)");
  server.serve();
  g_stop_requested = true;
  watcher.join();
  return 0;
}

}  // namespace

void register_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with concurrent sequences");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("--host", args->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", args->port, "port (0 = any free one)")->capture_default_str();
  cmd->add_option("--parallel", args->parallel, "slots: sequences decoded together")->capture_default_str();
  cmd->add_option("-c,--ctx-size", args->n_ctx, "context of each slot, prompt + answer (0 = min(trained, 4096))")
      ->capture_default_str();
  cmd->add_option("--queue", args->queue, "requests that may wait for a slot; beyond: 503")->capture_default_str();
  cmd->add_option("--prefill-chunk", args->prefill_chunk, "prompt tokens per step while others decode")
      ->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--alias", args->alias, "model id in /v1/models and requests (default: the file's stem)");
  cmd->add_option("--chat-template", args->chat_template, "Jinja chat template file (overrides the model's)");
  cmd->add_option("--mem-budget", args->mem_budget,
                  "refuse to start if weights + all slots' KV exceed this (e.g. 8GiB)");
  add_sampling_options(cmd, args->sampling);  // the defaults of requests that leave a field out
  add_kv_options(cmd, args->kv);
  cmd->callback([args] { set_exit_code(run_serve(*args)); });
}

}  // namespace kvq::cli
