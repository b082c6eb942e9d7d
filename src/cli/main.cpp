// kvq: the command-line front-end. Each subcommand lives in its own file and registers here.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

// llama.cpp spells the cache-type flags -ctk / -ctv and the server's slots -np; CLI11 only takes one-letter
// short flags, so those are rewritten to their long forms before parsing.
std::vector<std::string> llama_cpp_flag_aliases(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {  // CLI11 parses a reversed vector
    std::string arg = argv[i];
    for (auto [alias, name] :
         {std::pair{"-ctk", "--cache-type-k"}, std::pair{"-ctv", "--cache-type-v"}, std::pair{"-np", "--parallel"}}) {
      const std::string a = alias;
      if (arg == a)
        arg = name;
      else if (arg.rfind(a + "=", 0) == 0)
        arg = name + arg.substr(a.size());
    }
    args.push_back(arg);
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  // Named here: the arguments are parsed from a vector, so CLI11 never sees argv[0] for the usage line.
  CLI::App app{"kvq: LLM inference with independent key and value precisions in the KV cache", "kvq"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvq 0.1.0");
  kvq::cli::register_commands(app);
  try {
    app.parse(llama_cpp_flag_aliases(argc, argv));
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return kvq::cli::exit_code();
}
