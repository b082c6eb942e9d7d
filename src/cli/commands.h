// Subcommand registration. Each subcommand file defines one register_* function; its callback stores
// the process exit code (0 success, 1 user/file error) with set_exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace kvq::cli {

void register_commands(CLI::App& app);
int exit_code();
void set_exit_code(int code);

void register_info(CLI::App& app);
void register_synth(CLI::App& app);
void register_run(CLI::App& app);
void register_bench(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_sweep(CLI::App& app);
void register_serve(CLI::App& app);
void register_chat(CLI::App& app);
void register_tune(CLI::App& app);

}  // namespace kvq::cli
