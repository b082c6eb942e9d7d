// Pieces shared by the subcommands: KV-type flags, sizes, error reporting, JSON output.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_spec_file.h"
#include "kv/kv_types.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "util/result.h"

namespace kvq::cli {

// --kvq-key/--kvq-val (bits or type name), -ctk/-ctv (llama.cpp spelling), --kvq-layers, and the
// KVQ_KEY / KVQ_VAL environment mirrors. Flags win over the environment.
struct KvOptions {
  std::string key;
  std::string val;
  std::string rotation;  // --kvq-rot: none, k, kv
  std::string layers;
  std::string centre = "off";  // --kvq-centre: on, off (kv/kv_cache.h, Centring)
  int sinks = 0;               // --kvq-sinks: first positions kept at --kvq-keep (kv/kv_cache.h)
  int window = 0;              // --kvq-window: recent positions every query reads at --kvq-keep
  std::string keep = "f16";    // --kvq-keep: their type
};
// Adds --kvq-sinks, --kvq-window and --kvq-keep (also the sweep's, which has no other KV flags).
void add_kept_options(CLI::App* command, KvOptions& options);
// The cache layout `options` ask for (--kvq-centre).
KvCacheLayout kv_cache_layout(const KvOptions& options);
// The kept positions of every layer a spec does not set (--kvq-sinks, --kvq-window, --kvq-keep).
Result<KvKept> kv_kept(const KvOptions& options);
void add_kv_options(CLI::App* command, KvOptions& options);
// --temp, --top-k, --top-p, --min-p with their defaults.
void add_sampling_options(CLI::App* command, SamplerParams& params);
// Per-layer K/V types for `model` (default f16/f16). --kvq-layers @FILE reads a spec file written by
// `kvq tune` (kv/kv_spec_file.h), refused when it was made for another model.
Result<std::vector<KvTypes>> resolve_kv_types(const KvOptions& options, const ModelIdentity& model);
// "q8_0/q4_0", or "mixed (n layers)" when layers differ.
std::string describe_kv_types(const std::vector<KvTypes>& types);

// Distinct cache types named by `names` (bits or type names); errors name the flag.
Result<std::vector<GgmlType>> parse_kv_type_list(const std::vector<std::string>& names, const char* flag);

// "a,b,,c" -> {"a", "b", "", "c"} (views into `text`). Not std::views::split: clang 14 rejects it with
// libstdc++ 12's ranges, and the sanitized suite is built with clang.
std::vector<std::string_view> split_commas(std::string_view text);

// The whole file as bytes; errors name the file.
Result<std::string> read_text_file(const std::string& path);

// Prints "kvq: error: ..." on stderr and sets the process exit code to 1.
void report_error(const Error& error);

// "176.00 MiB", "1.09 GiB"
std::string format_bytes(double bytes);
// "4GiB", "512M", "1e9", "800MB" -> bytes. Error names the flag value.
Result<uint64_t> parse_size(const std::string& text);

// Sets the OpenMP thread count (0 = all cores); returns the count in use.
int set_threads(int n_threads);

void print_json(const nlohmann::json& j);

}  // namespace kvq::cli
