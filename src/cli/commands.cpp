#include "cli/commands.h"

namespace kvq::cli {
namespace {
int g_exit_code = 0;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void register_commands(CLI::App& app) {
  register_info(app);
  register_synth(app);
  register_run(app);
  register_bench(app);
  register_perplexity(app);
  register_sweep(app);
  register_serve(app);
  register_chat(app);
  register_tune(app);
}

}  // namespace kvq::cli
